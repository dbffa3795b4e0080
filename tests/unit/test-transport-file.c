/* The file:// backend: the contract suite on a fresh temp directory, then
 * what only a local directory can show (temp files, modes, pruning, a
 * missing root).
 *
 * "Unwritable" is a read-only bind mount of the root on itself and "full" a
 * 1 MiB tmpfs mounted on it.  Mounting needs root (CI runs as root); the
 * program first moves into a private mount namespace, so whatever happens,
 * its mounts vanish with it, and it unmounts them itself in teardown too.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "tests/lib/transport-contract.h"
#include "transport/transport.h"

static char parent[] = "/tmp/vk-transport-XXXXXX";
static char contract_root[64];
static char file_root[64];
static bool have_ns; /* we are in a private mount namespace */

/* ------------------------------------------------------------------ */
/* The fixture                                                         */

struct mounts {
    const char *root;
    int stacked; /* mounts on top of root */
};

static int mount_failed(const char *what)
{
    print_message("cannot %s: %s\n", what, strerror(errno));
    return errno == EPERM || errno == EACCES || !have_ns ? CONTRACT_UNAVAILABLE : -1;
}

static int file_make_unwritable(void *opaque)
{
    struct mounts *m = opaque;

    /* Without a private namespace, a mount would outlive a crash: refuse. */
    if (!have_ns)
        return CONTRACT_UNAVAILABLE;
    if (mount(m->root, m->root, NULL, MS_BIND, NULL) < 0)
        return mount_failed("bind-mount the target");
    m->stacked++;
    if (mount(NULL, m->root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        return mount_failed("remount the target read-only");
    return 0;
}

static int file_make_full(void *opaque)
{
    struct mounts *m = opaque;

    if (!have_ns)
        return CONTRACT_UNAVAILABLE;
    if (mount("vk-full", m->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0750") < 0)
        return mount_failed("mount a 1 MiB tmpfs on the target");
    m->stacked++;
    return 0;
}

static int file_leftovers(void *opaque, unsigned int *count)
{
    const struct mounts *m = opaque;

    return contract_count_temp_files(m->root, count);
}

static int file_restore(void *opaque)
{
    struct mounts *m = opaque;

    for (; m->stacked > 0; m->stacked--)
        if (umount2(m->root, 0) < 0 && umount2(m->root, MNT_DETACH) < 0)
            return mount_failed("unmount the target");
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void enter_mount_namespace(void)
{
    if (unshare(CLONE_NEWNS) < 0)
        return;
    /* Our mounts must not propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return;
    have_ns = true;
}

/* ------------------------------------------------------------------ */
/* What only a local directory shows                                   */

static struct transport *open_root(const char *url)
{
    struct transport *t = transport_open("local", url, NULL);

    if (!t)
        fail_msg("cannot open %s: %s", url, vk_error_message());
    return t;
}

static int file_setup(void **state)
{
    rm_rf(file_root);
    assert_int_equal(mkdir(file_root, 0755), 0);
    *state = open_root(file_root);
    return 0;
}

static int file_teardown(void **state)
{
    transport_close(*state);
    vk_error_clear();
    return 0;
}

static char *path_of(const char *rel)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof buf[0], "%s%s%s", file_root, *rel ? "/" : "", rel);
    return p;
}

static bool exists(const char *rel)
{
    struct stat st;

    return lstat(path_of(rel), &st) == 0;
}

/* Names in directory REL, "." and ".." left out; returns the count and the
 * first name in FIRST. */
static int dir_names(const char *rel, char *first, size_t len)
{
    DIR *d = opendir(path_of(rel));
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n++ == 0)
            snprintf(first, len, "%s", de->d_name);
    }
    closedir(d);
    return n;
}

static int count_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    (void)key;
    (void)st;
    (*(int *)opaque)++;
    return 0;
}

static int count_keys(struct transport *t, const char *prefix)
{
    int n = 0;

    assert_int_equal(transport_list(t, prefix, count_cb, &n), 0);
    return n;
}

static mode_t mode_of(const char *rel)
{
    struct stat st;

    assert_int_equal(lstat(path_of(rel), &st), 0);
    return st.st_mode & 07777;
}

static void test_temp_file_and_modes(void **state)
{
    struct transport *t = *state;
    struct transport_writer *w = transport_put_begin(t, "a/b/obj.tar", 0);
    char name[300];

    assert_non_null(w);
    assert_int_equal(transport_writer_write(w, "data", 4), 0);
    /* In flight: one hidden, marked temp file beside the final name. */
    assert_int_equal(dir_names("a/b", name, sizeof name), 1);
    assert_int_equal(strncmp(name, ".obj.tar.vk-tmp-", 16), 0);
    assert_int_equal(strlen(name), 16 + 6);
    assert_false(exists("a/b/obj.tar"));
    assert_int_equal(count_keys(t, ""), 0);
    assert_int_equal(transport_writer_commit(w), 0);
    assert_int_equal(dir_names("a/b", name, sizeof name), 1);
    assert_string_equal(name, "obj.tar");
    assert_int_equal(mode_of("a/b/obj.tar"), 0640);
    assert_int_equal(mode_of("a"), 0750);
    assert_int_equal(mode_of("a/b"), 0750);
}

static void test_stale_temp_files_hidden(void **state)
{
    struct transport *t = *state;
    struct transport_stat st;
    FILE *f;

    assert_int_equal(transport_put(t, "d/real", "r", 1), 0);
    /* What a crash in the middle of a put leaves behind. */
    assert_non_null(f = fopen(path_of(".x.vk-tmp-123456"), "w"));
    fclose(f);
    assert_non_null(f = fopen(path_of("d/.y.vk-tmp-abcdef"), "w"));
    fclose(f);
    assert_int_equal(count_keys(t, ""), 1);
    assert_int_equal(count_keys(t, "d/"), 1);
    assert_int_equal(transport_stat(t, "d/.y.vk-tmp-abcdef", &st), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
}

static void test_delete_prunes_parents(void **state)
{
    struct transport *t = *state;

    assert_int_equal(transport_put(t, "p/q/r/obj", "x", 1), 0);
    assert_int_equal(transport_put(t, "p/q/sibling", "y", 1), 0);
    assert_int_equal(transport_delete(t, "p/q/r/obj"), 0);
    assert_false(exists("p/q/r"));
    assert_true(exists("p/q/sibling"));
    assert_int_equal(transport_delete(t, "p/q/sibling"), 0);
    assert_false(exists("p"));
    assert_true(exists("")); /* never the root */
    assert_int_equal(transport_put(t, "top", "z", 1), 0);
    assert_int_equal(transport_delete(t, "top"), 0);
    assert_true(exists(""));
}

static void test_abort_prunes_parents(void **state)
{
    struct transport *t = *state;
    struct transport_writer *w = transport_put_begin(t, "n/m/obj", 0);
    char name[300];

    assert_non_null(w);
    assert_true(exists("n/m"));
    transport_writer_abort(w);
    assert_false(exists("n"));
    assert_int_equal(dir_names("", name, sizeof name), 0);
}

static void test_check_leaves_nothing(void **state)
{
    struct transport *t = *state;
    char name[300];

    assert_int_equal(transport_check(t), 0);
    assert_int_equal(dir_names("", name, sizeof name), 0);
    assert_string_equal(transport_scheme(t), "file");
}

static void test_missing_root(void **state)
{
    char url[600];
    struct transport *t;
    struct transport_stat st;
    int n = 0;

    (void)state;
    snprintf(url, sizeof url, "file://%s", path_of("not-mounted"));
    t = open_root(url);
    assert_int_equal(transport_check(t), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_non_null(strstr(vk_error_message(), "does not exist"));
    assert_non_null(strstr(vk_error_message(), "target 'local'"));
    /* A put never creates the root (an unmounted disk stays unfilled). */
    assert_int_equal(transport_put(t, "x/y", "1", 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_false(exists("not-mounted"));
    /* Listing fails rather than showing an empty target. */
    assert_int_equal(transport_list(t, "", count_cb, &n), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_non_null(strstr(vk_error_message(), "does not exist"));
    assert_int_equal(transport_stat(t, "x/y", &st), -1);
    assert_non_null(strstr(vk_error_message(), "does not exist"));
    transport_close(t);
}

static void test_root_is_a_file(void **state)
{
    struct transport *t;
    FILE *f;

    (void)state;
    assert_non_null(f = fopen(path_of("plain"), "w"));
    fclose(f);
    t = open_root(path_of("plain"));
    assert_int_equal(transport_check(t), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "not a directory"));
    assert_int_equal(transport_put(t, "k", "1", 1), -1);
    transport_close(t);
}

static void test_url_forms_same_root(void **state)
{
    struct transport *t = *state, *t2;
    char url[600];
    struct transport_stat st;

    assert_int_equal(mkdir(path_of("with space"), 0755), 0);
    snprintf(url, sizeof url, "file://%s/with%%20space/", file_root);
    t2 = open_root(url);
    assert_int_equal(transport_put(t2, "obj", "12345", 5), 0);
    assert_int_equal(transport_stat(t, "with space/obj", &st), 0);
    assert_int_equal(st.size, 5);
    transport_close(t2);
    snprintf(url, sizeof url, "file://localhost%s", file_root);
    t2 = open_root(url);
    assert_int_equal(transport_stat(t2, "with space/obj", &st), 0);
    transport_close(t2);
}

static void test_counters(void **state)
{
    struct transport *t = *state;
    struct transport_counters cnt;
    char buf[1000] = {0};

    transport_counters_get(t, &cnt);
    assert_int_equal(cnt.bytes_written, 0);
    assert_int_equal(cnt.bytes_read, 0);
    assert_int_equal(transport_put(t, "c1", buf, 1000), 0);
    assert_int_equal(transport_put(t, "c2", buf, 24), 0);
    assert_int_equal(transport_get_range(t, "c1", 700, buf, 1000), 300);
    transport_writer_abort(transport_put_begin(t, "c3", 0)); /* not counted */
    transport_counters_get(t, &cnt);
    assert_int_equal(cnt.bytes_written, 1024);
    assert_int_equal(cnt.puts, 2);
    assert_int_equal(cnt.bytes_read, 300);
    assert_int_equal(cnt.gets, 1);
}

static void test_long_name(void **state)
{
    struct transport *t = *state;
    char key[300];

    memset(key, 'n', 255);
    key[255] = '\0';
    assert_int_equal(transport_put(t, key, "long", 4), 0);
    assert_int_equal(count_keys(t, "nnn"), 1);
    assert_int_equal(transport_delete(t, key), 0);
}

static int file_specific_run(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, file_setup, file_teardown)
    const struct CMUnitTest tests[] = {
        T(test_temp_file_and_modes),
        T(test_stale_temp_files_hidden),
        T(test_delete_prunes_parents),
        T(test_abort_prunes_parents),
        T(test_check_leaves_nothing),
        T(test_missing_root),
        T(test_root_is_a_file),
        T(test_url_forms_same_root),
        T(test_counters),
        T(test_long_name),
    };
#undef T
    return cmocka_run_group_tests_name("transport-file", tests, NULL, NULL);
}

int main(void)
{
    static struct mounts m;
    static struct contract_fixture fx = {
        .name = "contract",
        .make_unwritable = file_make_unwritable,
        .make_full = file_make_full,
        .restore = file_restore,
        .leftovers = file_leftovers,
        .opaque = &m,
        .full_put_bytes = 2 * 1024 * 1024,
    };
    int failed;

    umask(022);
    enter_mount_namespace();
    if (!mkdtemp(parent)) {
        perror("mkdtemp");
        return 77;
    }
    snprintf(contract_root, sizeof contract_root, "%s/contract", parent);
    snprintf(file_root, sizeof file_root, "%s/file", parent);
    if (mkdir(contract_root, 0755) < 0) {
        perror("mkdir");
        return 99;
    }
    m.root = contract_root;
    fx.url = contract_root;
    failed = transport_contract_run("transport-contract-file", &fx);
    file_restore(&m);
    failed += file_specific_run();
    rm_rf(parent);
    return failed ? 1 : 0;
}
