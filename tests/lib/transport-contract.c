/* virtkeep - the transport contract suite (see transport-contract.h).
 *
 * Only the public transport.h API is used here: these are the promises every
 * backend keeps.  Objects are filled with a position-dependent pattern so
 * that a misplaced, missing or stale byte is caught.
 */
#include <config.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/error.h"
#include "tests/lib/transport-contract.h"
#include "transport/transport.h"

#define MiB (1024 * 1024)

struct ctx {
    struct contract_fixture *fx;
    struct transport *t;
    bool hooked; /* a make_* hook ran: teardown restores */
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static uint8_t pattern_byte(uint64_t pos, unsigned int seed)
{
    uint64_t x = (pos + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed * 0xC2B2AE3D27D4EB4FULL);

    x ^= x >> 29;
    return (uint8_t)(x ^ (x >> 17));
}

static void pattern_fill(uint8_t *buf, uint64_t offset, size_t len, unsigned int seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_byte(offset + i, seed);
}

static void assert_pattern(const uint8_t *buf, uint64_t offset, size_t len, unsigned int seed)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pattern_byte(offset + i, seed))
            fail_msg("byte %llu is 0x%02x, expected 0x%02x (seed %u)",
                     (unsigned long long)(offset + i), buf[i], pattern_byte(offset + i, seed),
                     seed);
}

/* Put SIZE pattern bytes under KEY in 1 MiB writes; must succeed. */
static void put_pattern(struct transport *t, const char *key, size_t size, unsigned int seed)
{
    struct transport_writer *w = transport_put_begin(t, key, 0);
    uint8_t *buf = malloc(MiB);

    assert_non_null(buf);
    if (!w)
        fail_msg("put_begin '%s': %s", key, vk_error_message());
    for (size_t done = 0; done < size;) {
        size_t n = size - done < MiB ? size - done : MiB;
        pattern_fill(buf, done, n, seed);
        if (transport_writer_write(w, buf, n) < 0)
            fail_msg("write '%s': %s", key, vk_error_message());
        done += n;
    }
    free(buf);
    assert_int_equal(transport_writer_bytes(w), size);
    if (transport_writer_commit(w) < 0)
        fail_msg("commit '%s': %s", key, vk_error_message());
}

/* KEY holds exactly SIZE pattern bytes of SEED. */
static void assert_object(struct transport *t, const char *key, size_t size, unsigned int seed)
{
    struct transport_stat st;
    uint8_t *buf = malloc(MiB);

    assert_non_null(buf);
    if (transport_stat(t, key, &st) < 0)
        fail_msg("stat '%s': %s", key, vk_error_message());
    assert_int_equal(st.size, size);
    for (size_t done = 0; done < size;) {
        size_t n = size - done < MiB ? size - done : MiB;
        ssize_t r = transport_get_range(t, key, done, buf, n);
        if (r < 0)
            fail_msg("read '%s': %s", key, vk_error_message());
        assert_int_equal(r, n);
        assert_pattern(buf, done, n, seed);
        done += n;
    }
    assert_int_equal(transport_get_range(t, key, size, buf, 16), 0);
    free(buf);
}

/* The last call failed with CODE and its message names the target and KEY. */
static void assert_failed(struct ctx *c, enum vk_error_code code, const char *key)
{
    const char *msg = vk_error_message();
    char target[256];

    snprintf(target, sizeof target, "target '%s'", c->fx->name);
    assert_non_null(msg);
    if (vk_error_code() != code)
        fail_msg("expected error '%s', got '%s': %s", vk_error_code_name(code),
                 vk_error_code_name(vk_error_code()), msg);
    if (!strstr(msg, target) || (key && !strstr(msg, key)))
        fail_msg("message does not name %s and key '%s': %s", target, key ? key : "", msg);
}

/* Try to put SIZE bytes under KEY; returns the code of the first failure
 * (VK_ERR_NONE if the put succeeded) and copies its message to MSG. */
static enum vk_error_code put_expect_failure(struct transport *t, const char *key, size_t size,
                                             char *msg, size_t msglen)
{
    struct transport_writer *w;
    uint8_t *buf = calloc(1, 64 * 1024);
    enum vk_error_code code = VK_ERR_NONE;

    assert_non_null(buf);
    vk_error_clear();
    w = transport_put_begin(t, key, 0);
    for (size_t done = 0; w && done < size; done += 64 * 1024) {
        pattern_fill(buf, done, 64 * 1024, 7);
        if (transport_writer_write(w, buf, 64 * 1024) < 0) {
            code = vk_error_code();
            snprintf(msg, msglen, "%s", vk_error_message());
            transport_writer_abort(w);
            w = NULL;
        }
    }
    if (w && transport_writer_commit(w) == 0) {
        snprintf(msg, msglen, "(no error)");
    } else if (code == VK_ERR_NONE) {
        code = vk_error_code();
        snprintf(msg, msglen, "%s", vk_error_message() ? vk_error_message() : "(null)");
    }
    free(buf);
    return code;
}

struct collect {
    char **keys;
    uint64_t *sizes;
    size_t n, cap;
    size_t stop_after; /* 0: never */
};

static int collect_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    struct collect *col = opaque;

    if (col->n == col->cap) {
        col->cap = col->cap ? col->cap * 2 : 16;
        col->keys = realloc(col->keys, col->cap * sizeof *col->keys);
        col->sizes = realloc(col->sizes, col->cap * sizeof *col->sizes);
        assert_non_null(col->keys);
        assert_non_null(col->sizes);
    }
    col->keys[col->n] = strdup(key);
    col->sizes[col->n] = st->size;
    col->n++;
    return col->stop_after && col->n == col->stop_after ? 7 : 0;
}

static void collect_free(struct collect *col)
{
    for (size_t i = 0; i < col->n; i++)
        free(col->keys[i]);
    free(col->keys);
    free(col->sizes);
    memset(col, 0, sizeof *col);
}

static void list_keys(struct transport *t, const char *prefix, struct collect *col)
{
    memset(col, 0, sizeof *col);
    if (transport_list(t, prefix, collect_cb, col) != 0)
        fail_msg("list '%s': %s", prefix, vk_error_message());
}

/* The target holds exactly these keys (in this order). */
static void assert_keys(struct transport *t, const char *prefix, const char *const *want,
                        size_t nwant)
{
    struct collect col;

    list_keys(t, prefix, &col);
    if (col.n != nwant)
        fail_msg("list '%s' gave %zu keys, expected %zu (first: '%s')", prefix, col.n, nwant,
                 col.n ? col.keys[0] : "");
    for (size_t i = 0; i < nwant; i++)
        assert_string_equal(col.keys[i], want[i]);
    collect_free(&col);
}

static unsigned int temp_found;

static int temp_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    temp_found += strstr(path + ftw->base, ".vk-tmp-") != NULL;
    return 0;
}

int contract_count_temp_files(const char *dir, unsigned int *count)
{
    temp_found = 0;
    if (nftw(dir, temp_entry, 16, FTW_PHYS) < 0) {
        print_message("cannot walk '%s': %s\n", dir, strerror(errno));
        return -1;
    }
    *count = temp_found;
    return 0;
}

/* Nothing that failed or aborted puts left behind is kept on the target
 * (WHEN says after what).  Without a hook: a failure in strict mode. */
static void assert_no_leftovers(struct ctx *c, const char *when)
{
    const char *strict = getenv("VIRTKEEP_TEST_STRICT");
    unsigned int n = 0;
    int r;

    if (!c->fx->leftovers) {
        if (strict && strcmp(strict, "1") == 0)
            fail_msg("the fixture cannot count leftovers (strict mode)");
        print_message("not checked: the fixture cannot count leftovers\n");
        return;
    }
    r = c->fx->leftovers(c->fx->opaque, &n);
    if (r == CONTRACT_UNAVAILABLE && !(strict && strcmp(strict, "1") == 0))
        return;
    if (r != 0)
        fail_msg("the fixture cannot count the leftovers %s", when);
    if (n != 0)
        fail_msg("%u partial objects or uploads are left on the target %s", n, when);
}

/* Many small operations in PAR_THREADS threads, each with a transport of
 * its own (what any backend allows): a remote server's latency, not the
 * client, is what a long series of puts or deletes waits for (radosgw:
 * ~30 ms a put here).  FN does item I on T; it runs outside cmocka (no
 * asserts in threads): it returns -1 with the error recorded. */
#define PAR_THREADS 8

struct par_job {
    struct contract_fixture *fx;
    unsigned int first, total;
    int (*fn)(struct transport *t, unsigned int i, void *arg);
    void *arg;
    pthread_t th;
    char err[512];
};

static void *par_main(void *opaque)
{
    struct par_job *j = opaque;
    struct transport *t = transport_open(j->fx->name, j->fx->url, j->fx->opts);

    if (!t) {
        snprintf(j->err, sizeof j->err, "cannot open: %s", vk_error_message());
        return NULL;
    }
    for (unsigned int i = j->first; i < j->total; i += PAR_THREADS)
        if (j->fn(t, i, j->arg) < 0) {
            snprintf(j->err, sizeof j->err, "%s", vk_error_message());
            break;
        }
    transport_close(t);
    return NULL;
}

static void run_parallel(struct ctx *c, unsigned int total,
                         int (*fn)(struct transport *t, unsigned int i, void *arg), void *arg,
                         const char *what)
{
    struct par_job jobs[PAR_THREADS];

    for (unsigned int k = 0; k < PAR_THREADS; k++) {
        jobs[k] = (struct par_job){.fx = c->fx, .first = k, .total = total, .fn = fn, .arg = arg};
        assert_int_equal(pthread_create(&jobs[k].th, NULL, par_main, &jobs[k]), 0);
    }
    for (unsigned int k = 0; k < PAR_THREADS; k++)
        pthread_join(jobs[k].th, NULL);
    for (unsigned int k = 0; k < PAR_THREADS; k++)
        if (jobs[k].err[0])
            fail_msg("%s: %s", what, jobs[k].err);
}

/* Run a fixture hook; false when the test was skipped. */
static bool run_hook(struct ctx *c, int (*hook)(void *), const char *what)
{
    const char *strict = getenv("VIRTKEEP_TEST_STRICT");
    int r;

    if (hook) {
        r = hook(c->fx->opaque);
        if (r == 0) {
            c->hooked = true;
            return true;
        }
        if (r != CONTRACT_UNAVAILABLE)
            fail_msg("the fixture could not make the target %s", what);
    }
    if (strict && strcmp(strict, "1") == 0)
        fail_msg("the fixture cannot make the target %s (strict mode)", what);
    print_message("skipped: the fixture cannot make the target %s here\n", what);
    skip();
    return false;
}

static void restore_target(struct ctx *c)
{
    c->hooked = false;
    assert_int_equal(c->fx->restore(c->fx->opaque), 0);
}

/* ------------------------------------------------------------------ */
/* Setup and teardown: every test gets an empty target and an open one. */

static int delete_one(struct transport *t, unsigned int i, void *arg)
{
    const struct collect *col = arg;

    return transport_delete(t, col->keys[i]);
}

static int ctx_setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    struct collect col;

    assert_non_null(c);
    c->fx = *state;
    c->t = transport_open(c->fx->name, c->fx->url, c->fx->opts);
    if (!c->t)
        fail_msg("cannot open %s: %s", c->fx->url, vk_error_message());
    list_keys(c->t, "", &col);
    run_parallel(c, (unsigned int)col.n, delete_one, &col, "cannot empty the target");
    collect_free(&col);
    assert_keys(c->t, "", NULL, 0);
    *state = c;
    return 0;
}

static int ctx_teardown(void **state)
{
    struct ctx *c = *state;

    if (c->hooked)
        c->fx->restore(c->fx->opaque);
    transport_close(c->t);
    vk_error_clear();
    free(c);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The contract                                                        */

static void test_round_trip(void **state)
{
    struct ctx *c = *state;
    static const char text[] = "hello, target";
    struct transport_stat st;
    void *buf;
    size_t len;
    time_t now = time(NULL);

    assert_int_equal(transport_check(c->t), 0);
    assert_string_equal(transport_name(c->t), c->fx->name);
    assert_int_equal(transport_put(c->t, "rt/hello.txt", text, strlen(text)), 0);
    assert_int_equal(transport_stat(c->t, "rt/hello.txt", &st), 0);
    assert_int_equal(st.size, strlen(text));
    /* Clocks of remote targets may drift a little; a day is plenty. */
    assert_true(st.mtime == 0 || (st.mtime > now - 86400 && st.mtime < now + 86400));
    assert_int_equal(transport_get_all(c->t, "rt/hello.txt", 1024, &buf, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(buf, text, len);
    assert_int_equal(((char *)buf)[len], '\0');
    free(buf);
    assert_int_equal(transport_get_all(c->t, "rt/hello.txt", len - 1, &buf, &len), -1);
    assert_failed(c, VK_ERR_INVALID, "rt/hello.txt");
    assert_null(buf);
    assert_int_equal(transport_get_all(c->t, "rt/missing", 1024, &buf, &len), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "rt/missing");
}

static void test_stream_small_writes(void **state)
{
    struct ctx *c = *state;
    struct transport_writer *w = transport_put_begin(c->t, "stream/small", 0);
    uint8_t buf[64];
    uint64_t off = 0;

    assert_non_null(w);
    assert_int_equal(transport_writer_write(w, buf, 0), 0);
    for (unsigned int i = 0; i < 40000; i++) {
        size_t n = 1 + i % 61;
        pattern_fill(buf, off, n, 11);
        assert_int_equal(transport_writer_write(w, buf, n), 0);
        off += n;
    }
    assert_int_equal(transport_writer_bytes(w), off);
    assert_int_equal(transport_writer_commit(w), 0);
    assert_object(c->t, "stream/small", off, 11);
}

static void test_stream_big_writes(void **state)
{
    struct ctx *c = *state;
    const size_t size = 20 * MiB, slices[] = {8 * MiB, 8 * MiB - 1, 4 * MiB + 1};
    uint8_t *data = malloc(size);
    struct transport_writer *w;
    void *back;
    size_t len, off = 0;

    assert_non_null(data);
    pattern_fill(data, 0, size, 12);
    w = transport_put_begin(c->t, "stream/big/20MiB", 0);
    assert_non_null(w);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(transport_writer_write(w, data + off, slices[i]), 0);
        off += slices[i];
    }
    assert_int_equal(off, size);
    assert_int_equal(transport_writer_commit(w), 0);
    assert_int_equal(transport_get_all(c->t, "stream/big/20MiB", 32 * MiB, &back, &len), 0);
    assert_int_equal(len, size);
    assert_memory_equal(back, data, size);
    free(back);
    free(data);
    assert_object(c->t, "stream/big/20MiB", size, 12);
}

/* 12 MiB: on S3 (5 MiB parts) a multipart upload with parts already sent. */
static void test_interrupted_put(void **state)
{
    struct ctx *c = *state;
    struct transport_writer *w = transport_put_begin(c->t, "int/aborted", 0);
    uint8_t *buf = malloc(MiB);
    struct transport_stat st;

    assert_non_null(w);
    assert_non_null(buf);
    for (int i = 0; i < 12; i++) {
        pattern_fill(buf, (uint64_t)i * MiB, MiB, 13);
        assert_int_equal(transport_writer_write(w, buf, MiB), 0);
    }
    /* Midway: nothing under the final key. */
    assert_int_equal(transport_stat(c->t, "int/aborted", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "int/aborted");
    assert_int_equal(transport_get_range(c->t, "int/aborted", 0, buf, 16), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "int/aborted");
    assert_keys(c->t, "", NULL, 0);
    transport_writer_abort(w);
    transport_writer_abort(NULL);
    assert_int_equal(transport_stat(c->t, "int/aborted", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "int/aborted");
    assert_keys(c->t, "", NULL, 0);
    assert_no_leftovers(c, "after an aborted put");
    free(buf);
}

static void test_uncommitted_invisible(void **state)
{
    struct ctx *c = *state;
    static const char *const only_done[] = {"pend/done"};
    struct transport_writer *w;
    struct transport_stat st;
    uint8_t buf[4096];

    put_pattern(c->t, "pend/done", 1000, 14);
    /* A writer that is simply never committed while others look. */
    w = transport_put_begin(c->t, "pend/open", 0);
    assert_non_null(w);
    pattern_fill(buf, 0, sizeof buf, 15);
    assert_int_equal(transport_writer_write(w, buf, sizeof buf), 0);
    assert_keys(c->t, "", only_done, 1);
    assert_keys(c->t, "pend/o", NULL, 0);
    assert_int_equal(transport_stat(c->t, "pend/open", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "pend/open");
    assert_int_equal(transport_delete(c->t, "pend/open"), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "pend/open");
    /* It can still be committed afterwards, whole. */
    assert_int_equal(transport_writer_commit(w), 0);
    assert_object(c->t, "pend/open", sizeof buf, 15);
}

static void test_overwrite(void **state)
{
    struct ctx *c = *state;
    struct transport_writer *w;
    uint8_t *buf = malloc(300000);

    assert_non_null(buf);
    put_pattern(c->t, "ow/obj", 100000, 21);
    /* An aborted overwrite changes nothing. */
    w = transport_put_begin(c->t, "ow/obj", 0);
    assert_non_null(w);
    pattern_fill(buf, 0, 5000, 22);
    assert_int_equal(transport_writer_write(w, buf, 5000), 0);
    transport_writer_abort(w);
    assert_object(c->t, "ow/obj", 100000, 21);
    /* A bigger one: the old content stays until the commit. */
    w = transport_put_begin(c->t, "ow/obj", 0);
    assert_non_null(w);
    pattern_fill(buf, 0, 300000, 23);
    assert_int_equal(transport_writer_write(w, buf, 300000), 0);
    assert_object(c->t, "ow/obj", 100000, 21);
    assert_int_equal(transport_writer_commit(w), 0);
    assert_object(c->t, "ow/obj", 300000, 23);
    /* A smaller one leaves no stale tail. */
    put_pattern(c->t, "ow/obj", 777, 24);
    assert_object(c->t, "ow/obj", 777, 24);
    free(buf);
}

static void test_overwrite_concurrent(void **state)
{
    struct ctx *c = *state;
    struct transport_writer *a = transport_put_begin(c->t, "ow/race", 0);
    struct transport_writer *b = transport_put_begin(c->t, "ow/race", 0);
    static const char *const one[] = {"ow/race"};
    uint8_t buf[5000];

    assert_non_null(a);
    assert_non_null(b);
    pattern_fill(buf, 0, 5000, 31);
    assert_int_equal(transport_writer_write(a, buf, 5000), 0);
    pattern_fill(buf, 0, 3000, 32);
    assert_int_equal(transport_writer_write(b, buf, 3000), 0);
    assert_int_equal(transport_writer_commit(a), 0);
    assert_object(c->t, "ow/race", 5000, 31);
    assert_int_equal(transport_writer_commit(b), 0);
    assert_object(c->t, "ow/race", 3000, 32);
    assert_keys(c->t, "", one, 1);
}

static void test_ranged_edges(void **state)
{
    struct ctx *c = *state;
    uint8_t buf[256];

    put_pattern(c->t, "range/obj", 1000, 41);
    memset(buf, 0xee, sizeof buf);
    assert_int_equal(transport_get_range(c->t, "range/obj", 0, buf, 10), 10);
    assert_pattern(buf, 0, 10, 41);
    assert_int_equal(buf[10], 0xee);
    assert_int_equal(transport_get_range(c->t, "range/obj", 999, buf, 1), 1);
    assert_pattern(buf, 999, 1, 41);
    assert_int_equal(transport_get_range(c->t, "range/obj", 500, buf, 256), 256);
    assert_pattern(buf, 500, 256, 41);
    /* Spanning the end: short. */
    assert_int_equal(transport_get_range(c->t, "range/obj", 990, buf, 100), 10);
    assert_pattern(buf, 990, 10, 41);
    assert_int_equal(transport_get_range(c->t, "range/obj", 999, buf, 256), 1);
    assert_pattern(buf, 999, 1, 41);
    /* At and beyond the end: 0. */
    assert_int_equal(transport_get_range(c->t, "range/obj", 1000, buf, 10), 0);
    assert_int_equal(transport_get_range(c->t, "range/obj", 1001, buf, 10), 0);
    assert_int_equal(transport_get_range(c->t, "range/obj", 1ULL << 40, buf, 10), 0);
    /* Zero length. */
    assert_int_equal(transport_get_range(c->t, "range/obj", 0, buf, 0), 0);
    assert_int_equal(transport_get_range(c->t, "range/obj", 500, buf, 0), 0);
    /* Missing. */
    assert_int_equal(transport_get_range(c->t, "range/none", 0, buf, 10), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "range/none");
}

static void test_empty_object(void **state)
{
    struct ctx *c = *state;
    static const char *const one[] = {"empty"};
    struct transport_stat st;
    uint8_t buf[8];
    void *all;
    size_t len;

    assert_int_equal(transport_put(c->t, "empty", "", 0), 0);
    assert_int_equal(transport_stat(c->t, "empty", &st), 0);
    assert_int_equal(st.size, 0);
    assert_int_equal(transport_get_range(c->t, "empty", 0, buf, sizeof buf), 0);
    assert_int_equal(transport_get_all(c->t, "empty", 10, &all, &len), 0);
    assert_int_equal(len, 0);
    free(all);
    assert_keys(c->t, "", one, 1);
}

static void test_stat_missing(void **state)
{
    struct ctx *c = *state;
    struct transport_stat st;

    assert_int_equal(transport_stat(c->t, "nothing/here", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "nothing/here");
    /* A prefix of existing keys is not an object. */
    put_pattern(c->t, "dir/sub/obj", 10, 51);
    assert_int_equal(transport_stat(c->t, "dir/sub", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "dir/sub");
    assert_int_equal(transport_stat(c->t, "dir/sub/obj/deeper", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "dir/sub/obj/deeper");
    assert_int_equal(transport_stat(c->t, "dir/sub/obj", &st), 0);
    assert_int_equal(st.size, 10);
}

/* 1000 keys: many/NN/MMM (10 x 100), put in a scrambled order. */
static int put_many_one(struct transport *t, unsigned int i, void *arg)
{
    unsigned int k = (i * 389) % 1000; /* 389 is prime to 1000: a permutation */
    char key[64];

    (void)arg;
    snprintf(key, sizeof key, "many/%02u/%03u", k / 100, k % 100);
    return transport_put(t, key, key, strlen(key) - k % 7);
}

static void put_many(struct ctx *c)
{
    run_parallel(c, 1000, put_many_one, NULL, "cannot put the 1000 keys");
}

static void test_list_many(void **state)
{
    struct ctx *c = *state;
    struct collect col;
    char key[64];

    put_many(c);
    assert_int_equal(transport_put(c->t, "many/03x", "x", 1), 0);
    assert_int_equal(transport_put(c->t, "manx", "y", 1), 0);
    list_keys(c->t, "", &col);
    assert_int_equal(col.n, 1002);
    for (size_t i = 0; i + 1 < col.n; i++)
        if (strcmp(col.keys[i], col.keys[i + 1]) >= 0)
            fail_msg("not in byte order: '%s' before '%s'", col.keys[i], col.keys[i + 1]);
    assert_string_equal(col.keys[0], "manx");
    for (unsigned int k = 0; k < 1000; k++) {
        /* many/03x sorts after many/03/099 and before many/04/000. */
        size_t at = 1 + k + (k >= 400);
        snprintf(key, sizeof key, "many/%02u/%03u", k / 100, k % 100);
        assert_string_equal(col.keys[at], key);
        assert_int_equal(col.sizes[at], strlen(key) - k % 7);
    }
    assert_string_equal(col.keys[401], "many/03x");
    collect_free(&col);

    list_keys(c->t, "many/03/", &col);
    assert_int_equal(col.n, 100);
    assert_string_equal(col.keys[0], "many/03/000");
    assert_string_equal(col.keys[99], "many/03/099");
    collect_free(&col);
    list_keys(c->t, "many/03", &col); /* a string prefix, not a directory */
    assert_int_equal(col.n, 101);
    assert_string_equal(col.keys[100], "many/03x");
    collect_free(&col);
    list_keys(c->t, "many/05/04", &col);
    assert_int_equal(col.n, 10);
    assert_string_equal(col.keys[0], "many/05/040");
    collect_free(&col);
    list_keys(c->t, "many/", &col);
    assert_int_equal(col.n, 1001);
    collect_free(&col);
    list_keys(c->t, "many/10", &col);
    assert_int_equal(col.n, 0);
    collect_free(&col);
}

static void test_list_order_and_stop(void **state)
{
    struct ctx *c = *state;
    static const char *const want[] = {"order/B", "order/a.txt", "order/a/b", "order/a0",
                                       "order/z/y/x"};
    struct collect col = {.stop_after = 3};

    /* Byte order is not directory order: '.' < '/' < '0'. */
    for (size_t i = 5; i-- > 0;)
        assert_int_equal(transport_put(c->t, want[i], "o", 1), 0);
    assert_keys(c->t, "", want, 5);
    assert_keys(c->t, "order/a", want + 1, 3);
    assert_int_equal(transport_list(c->t, "", collect_cb, &col), 7);
    assert_int_equal(col.n, 3);
    assert_string_equal(col.keys[2], "order/a/b");
    collect_free(&col);
    assert_int_equal(transport_list(c->t, "/abs", collect_cb, &col), -1);
    assert_failed(c, VK_ERR_INVALID, "/abs");
    assert_int_equal(transport_list(c->t, "../", collect_cb, &col), -1);
    assert_failed(c, VK_ERR_INVALID, "../");
    assert_int_equal(transport_list(c->t, "a//", collect_cb, &col), -1);
    assert_failed(c, VK_ERR_INVALID, "a//");
    assert_int_equal(col.n, 0);
}

static void test_delete(void **state)
{
    struct ctx *c = *state;
    static const char *const left[] = {"del/a/keep", "del/b"};
    struct transport_stat st;
    uint8_t buf[4];

    put_pattern(c->t, "del/a/gone", 100, 61);
    put_pattern(c->t, "del/a/keep", 100, 62);
    put_pattern(c->t, "del/b", 100, 63);
    put_pattern(c->t, "del/c/d/e", 100, 64);
    assert_int_equal(transport_delete(c->t, "del/a/gone"), 0);
    assert_int_equal(transport_stat(c->t, "del/a/gone", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "del/a/gone");
    assert_int_equal(transport_get_range(c->t, "del/a/gone", 0, buf, 4), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "del/a/gone");
    assert_int_equal(transport_delete(c->t, "del/a/gone"), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "del/a/gone");
    /* A prefix is not an object. */
    assert_int_equal(transport_delete(c->t, "del/c"), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "del/c");
    assert_object(c->t, "del/c/d/e", 100, 64);
    assert_int_equal(transport_delete(c->t, "del/c/d/e"), 0);
    assert_keys(c->t, "", left, 2);
    /* The same place can be written again. */
    put_pattern(c->t, "del/c/d/e", 50, 65);
    assert_object(c->t, "del/c/d/e", 50, 65);
    assert_object(c->t, "del/a/keep", 100, 62);
}

static void test_invalid_keys(void **state)
{
    struct ctx *c = *state;
    char long_key[TRANSPORT_KEY_MAX + 2], long_part[300];
    size_t key_max = c->fx->key_max ? c->fx->key_max : TRANSPORT_KEY_MAX;
    const char *bad[] = {"../x",
                         "/abs",
                         "a//b",
                         "",
                         "a/",
                         ".",
                         "..",
                         "a/./b",
                         "a/../b",
                         "x/..",
                         "a\nb",
                         "a\x7f",
                         "tmp/.x.vk-tmp-abcdef",
                         long_key,
                         long_part};
    struct transport_stat st;
    uint8_t buf[4];
    void *all;
    size_t len;

    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    memset(long_part, 'p', sizeof long_part - 1);
    long_part[sizeof long_part - 1] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *k = bad[i];
        const char *shown = strchr(k, '\n') || strchr(k, '\x7f') ? NULL : k;
        assert_int_equal(transport_put(c->t, k, "x", 1), -1);
        assert_failed(c, VK_ERR_INVALID, shown);
        assert_null(transport_put_begin(c->t, k, 0));
        assert_failed(c, VK_ERR_INVALID, shown);
        assert_int_equal(transport_stat(c->t, k, &st), -1);
        assert_failed(c, VK_ERR_INVALID, shown);
        assert_int_equal(transport_get_range(c->t, k, 0, buf, 4), -1);
        assert_failed(c, VK_ERR_INVALID, shown);
        assert_int_equal(transport_get_all(c->t, k, 10, &all, &len), -1);
        assert_failed(c, VK_ERR_INVALID, shown);
        assert_int_equal(transport_delete(c->t, k), -1);
        assert_failed(c, VK_ERR_INVALID, shown);
    }
    assert_int_equal(transport_put(c->t, NULL, "x", 1), -1);
    assert_failed(c, VK_ERR_INVALID, NULL);
    memset(long_key + 200, '/', 1); /* components within 255 */
    memset(long_key + 400, '/', 1);
    memset(long_key + 600, '/', 1);
    memset(long_key + 800, '/', 1);
    if (key_max < TRANSPORT_KEY_MAX) { /* the backend's own limit */
        long_key[key_max + 1] = '\0';
        assert_int_equal(transport_put(c->t, long_key, "x", 1), -1);
        assert_failed(c, VK_ERR_INVALID, NULL);
        assert_null(transport_put_begin(c->t, long_key, 0));
        assert_failed(c, VK_ERR_INVALID, NULL);
        assert_int_equal(transport_stat(c->t, long_key, &st), -1);
        assert_failed(c, VK_ERR_INVALID, NULL);
    }
    long_key[key_max] = '\0'; /* exactly the limit is fine */
    if (transport_put(c->t, long_key, "x", 1) < 0)
        fail_msg("a key of %zu bytes: %s", key_max, vk_error_message());
    assert_keys(c->t, "", (const char *const[]){long_key}, 1);
    assert_null(transport_put_begin(c->t, "ok", 1u << 31)); /* unknown flag */
    assert_failed(c, VK_ERR_INVALID, "ok");
}

static void test_unwritable(void **state)
{
    struct ctx *c = *state;
    static const char *const keep[] = {"ro/keep"};
    char msg[1024];

    put_pattern(c->t, "ro/keep", 4096, 71);
    if (!run_hook(c, c->fx->make_unwritable, "unwritable"))
        return;
    assert_int_equal(put_expect_failure(c->t, "ro/new", 100000, msg, sizeof msg),
                     VK_ERR_PERMISSION);
    assert_failed(c, VK_ERR_PERMISSION, "ro/new");
    assert_int_equal(put_expect_failure(c->t, "ro/keep", 100000, msg, sizeof msg),
                     VK_ERR_PERMISSION);
    assert_failed(c, VK_ERR_PERMISSION, "ro/keep");
    assert_object(c->t, "ro/keep", 4096, 71);
    assert_int_equal(transport_delete(c->t, "ro/keep"), -1);
    assert_failed(c, VK_ERR_PERMISSION, "ro/keep");
    assert_int_equal(transport_check(c->t), -1);
    assert_failed(c, VK_ERR_PERMISSION, NULL);
    assert_keys(c->t, "", keep, 1);
    assert_no_leftovers(c, "after puts to a read-only target");
    restore_target(c);
    assert_int_equal(transport_check(c->t), 0);
    assert_keys(c->t, "", keep, 1);
    assert_object(c->t, "ro/keep", 4096, 71);
    put_pattern(c->t, "ro/new", 10, 72);
}

static void test_full(void **state)
{
    struct ctx *c = *state;
    static const char *const keep[] = {"nospace/keep"};
    size_t big = c->fx->full_put_bytes ? c->fx->full_put_bytes : 4 * MiB;
    struct transport_stat st;
    char msg[1024];

    if (!run_hook(c, c->fx->make_full, "full"))
        return;
    put_pattern(c->t, "nospace/keep", 4096, 81);
    assert_int_equal(put_expect_failure(c->t, "nospace/big", big, msg, sizeof msg),
                     VK_ERR_NO_SPACE);
    assert_failed(c, VK_ERR_NO_SPACE, "nospace/big");
    if (!strstr(msg, "is full"))
        fail_msg("the message does not say the target is full: %s", msg);
    assert_int_equal(transport_stat(c->t, "nospace/big", &st), -1);
    assert_failed(c, VK_ERR_NOT_FOUND, "nospace/big");
    /* A failed overwrite keeps the old object whole. */
    assert_int_equal(put_expect_failure(c->t, "nospace/keep", big, msg, sizeof msg),
                     VK_ERR_NO_SPACE);
    assert_object(c->t, "nospace/keep", 4096, 81);
    assert_keys(c->t, "", keep, 1);
    /* The failed puts left their space free again. */
    assert_no_leftovers(c, "after puts to a full target");
    put_pattern(c->t, "nospace/again", 4096, 82);
    assert_object(c->t, "nospace/again", 4096, 82);
    restore_target(c);
}

/* Whatever a test left behind, the target is restored at the end. */
static struct contract_fixture *running;

static int group_teardown(void **state)
{
    (void)state;
    if (running && running->restore)
        running->restore(running->opaque);
    return 0;
}

int transport_contract_run(const char *suite_name, struct contract_fixture *fx)
{
#define T(f) cmocka_unit_test_prestate_setup_teardown(f, ctx_setup, ctx_teardown, fx)
    const struct CMUnitTest tests[] = {
        T(test_round_trip),
        T(test_stream_small_writes),
        T(test_stream_big_writes),
        T(test_interrupted_put),
        T(test_uncommitted_invisible),
        T(test_overwrite),
        T(test_overwrite_concurrent),
        T(test_ranged_edges),
        T(test_empty_object),
        T(test_stat_missing),
        T(test_list_many),
        T(test_list_order_and_stop),
        T(test_delete),
        T(test_invalid_keys),
        T(test_unwritable),
        T(test_full),
    };
#undef T
    running = fx;
    return cmocka_run_group_tests_name(suite_name, tests, NULL, group_teardown);
}
