/* Unit tests for the common layer: errors, logging, units, util, cleanup, JSON, XML. */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/units.h"
#include "common/util.h"
#include "common/xml.h"

static void test_error_set_and_prefix(void **state)
{
    (void)state;
    vk_error_clear();
    assert_null(vk_error_message());
    assert_int_equal(vk_error_code(), VK_ERR_NONE);

    vk_error(VK_ERR_NOT_FOUND, "domain '%s' not found", "web1");
    assert_string_equal(vk_error_message(), "domain 'web1' not found");
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);

    vk_error_prefix("cannot back up '%s'", "web1");
    assert_string_equal(vk_error_message(), "cannot back up 'web1': domain 'web1' not found");
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    vk_error_clear();
}

static void test_error_errno(void **state)
{
    (void)state;
    vk_error_errno(ENOSPC, "cannot write '%s'", "x.tar");
    assert_int_equal(vk_error_code(), VK_ERR_NO_SPACE);
    assert_int_equal(vk_error_errnum(), ENOSPC);
    assert_non_null(strstr(vk_error_message(), "cannot write 'x.tar': "));
    assert_non_null(strstr(vk_error_message(), strerror(ENOSPC)));

    assert_int_equal(vk_error_code_from_errno(EACCES), VK_ERR_PERMISSION);
    assert_int_equal(vk_error_code_from_errno(ENOENT), VK_ERR_NOT_FOUND);
    assert_int_equal(vk_error_code_from_errno(ECONNREFUSED), VK_ERR_NETWORK);
    assert_int_equal(vk_error_code_from_errno(EIO), VK_ERR_IO);
    assert_string_equal(vk_error_code_name(VK_ERR_NO_SPACE), "no-space");
    assert_string_equal(vk_error_code_name((enum vk_error_code)999), "unknown");
    vk_error_clear();
}

static void *thread_sets_error(void *arg)
{
    (void)arg;
    vk_error(VK_ERR_IO, "thread error");
    return (void *)(uintptr_t)(vk_error_code() == VK_ERR_IO);
}

static void test_error_thread_local(void **state)
{
    pthread_t th;
    void *ret;

    (void)state;
    vk_error(VK_ERR_INVALID, "main error");
    assert_int_equal(pthread_create(&th, NULL, thread_sets_error, NULL), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_true((uintptr_t)ret);
    /* The worker's error did not replace ours. */
    assert_string_equal(vk_error_message(), "main error");
    vk_error_clear();
}

static void test_size_parse_good(void **state)
{
    static const struct {
        const char *in;
        uint64_t out;
    } cases[] = {
        {"0", 0},
        {"4096", 4096},
        {"512K", 512 * 1024},
        {"4GiB", 4ULL << 30},
        {"4gib", 4ULL << 30},
        {"4 GiB", 4ULL << 30},
        {"1.5G", 3ULL << 29},
        {"10MB", 10000000},
        {"1T", 1ULL << 40},
        {"100B", 100},
        {"1EiB", 1ULL << 60},
        {"1152921504606846976", 1ULL << 60},
        {"1024P", 1ULL << 60},
    };
    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(cases); i++) {
        uint64_t v = 1;
        assert_int_equal(vk_size_parse(cases[i].in, &v), 0);
        assert_true(v == cases[i].out);
    }
}

static void test_size_parse_garbage(void **state)
{
    static const char *const bad[] = {
        "",
        "G",
        "-1",
        "+1",
        "4GG",
        "4 G B",
        "4Gx",
        "1.5",
        "0x10",
        "4.G",
        " 4G",
        "4 ",
        "16EiB",
        "18446744073709551616",
        "99999999999999999999999",
        "1e9",
        "4\tGiB",
        "nan",
    };
    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(bad); i++) {
        uint64_t v = 12345;
        vk_error_clear();
        if (vk_size_parse(bad[i], &v) == 0)
            fail_msg("size '%s' was accepted as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(v, 12345);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        assert_non_null(strstr(vk_error_message(), "invalid size '"));
    }
    assert_int_equal(vk_size_parse(NULL, &(uint64_t){0}), -1);
}

/* Sizes and durations end at a sane maximum, far below what would
 * overflow int64 bytes or seconds (or nanoseconds) in the callers: the
 * error says so and names the limit. */
static void test_units_bounds(void **state)
{
    static const char *const big_sizes[] = {
        "1152921504606846977",
        "1025P",
        "1.1EiB",
        "2EiB",
        "8EiB",
        "15EiB",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "2000PB",
    };
    static const char *const long_durations[] = {
        "30000000000000w",
        "3153600001",
        "36500d1s",
        "5218w",
        "876001h",
        "9223372036854775807",
        "9223372036854775808s",
        "18446744073709551615",
    };
    uint64_t v;

    (void)state;
    assert_int_equal(vk_size_parse("1EiB", &v), 0);
    assert_true(v == 1ULL << 60);
    for (size_t i = 0; i < VK_ARRAY_SIZE(big_sizes); i++) {
        v = 3;
        vk_error_clear();
        if (vk_size_parse(big_sizes[i], &v) == 0)
            fail_msg("size '%s' was accepted as %llu", big_sizes[i], (unsigned long long)v);
        assert_int_equal(v, 3);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        assert_non_null(strstr(vk_error_message(), "too large (the limit is 1 EiB)"));
    }
    assert_int_equal(vk_duration_parse("36500d", &v), 0);
    assert_true(v == 36500ULL * 86400);
    assert_int_equal(vk_duration_parse("3153600000", &v), 0);
    assert_true(v == 36500ULL * 86400);
    /* Even in nanoseconds the largest duration fits in an int64. */
    assert_true(v * 1000000000ULL <= (uint64_t)INT64_MAX);
    for (size_t i = 0; i < VK_ARRAY_SIZE(long_durations); i++) {
        v = 3;
        vk_error_clear();
        if (vk_duration_parse(long_durations[i], &v) == 0)
            fail_msg("duration '%s' was accepted as %llu", long_durations[i],
                     (unsigned long long)v);
        assert_int_equal(v, 3);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        assert_non_null(strstr(vk_error_message(), "too large (the limit is 36500d"));
    }
}

static void test_duration_parse(void **state)
{
    static const struct {
        const char *in;
        uint64_t out;
    } good[] = {
        {"0", 0},         {"90", 90},         {"90s", 90},     {"15m", 900},
        {"1h30m", 5400},  {"1h30m15s", 5415}, {"2d", 172800},  {"1w", 604800},
        {"1w2d", 777600}, {"1H", 3600},       {"36h", 129600},
    };
    static const char *const bad[] = {
        "",
        "m",
        "1x",
        "15mm",
        "30m1h",
        "1h1h",
        "-5m",
        "1.5h",
        "1h 30m",
        "h30m",
        "5ms",
        "99999999999999999999w",
        "40000000000000w",
    };
    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(good); i++) {
        uint64_t v = 1;
        if (vk_duration_parse(good[i].in, &v) != 0)
            fail_msg("duration '%s' rejected: %s", good[i].in, vk_error_message());
        assert_true(v == good[i].out);
    }
    for (size_t i = 0; i < VK_ARRAY_SIZE(bad); i++) {
        uint64_t v = 7;
        vk_error_clear();
        if (vk_duration_parse(bad[i], &v) == 0)
            fail_msg("duration '%s' was accepted as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(v, 7);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        assert_non_null(strstr(vk_error_message(), "invalid duration"));
    }
}

static void test_formatters(void **state)
{
    char b[VK_SIZE_BUFLEN], d[VK_DURATION_BUFLEN];

    (void)state;
    assert_string_equal(vk_size_format(0, b, sizeof b), "0 B");
    assert_string_equal(vk_size_format(1023, b, sizeof b), "1023 B");
    assert_string_equal(vk_size_format(1024, b, sizeof b), "1 KiB");
    assert_string_equal(vk_size_format(3ULL << 29, b, sizeof b), "1.5 GiB");
    assert_string_equal(vk_size_format(4ULL << 30, b, sizeof b), "4 GiB");
    assert_string_equal(vk_size_format(UINT64_MAX, b, sizeof b), "16.0 EiB");

    assert_string_equal(vk_duration_format(0, d, sizeof d), "0s");
    assert_string_equal(vk_duration_format(45, d, sizeof d), "45s");
    assert_string_equal(vk_duration_format(900, d, sizeof d), "15m");
    assert_string_equal(vk_duration_format(5400, d, sizeof d), "1h30m");
    assert_string_equal(vk_duration_format(183600, d, sizeof d), "2d3h");
    assert_string_equal(vk_duration_format(90061, d, sizeof d), "1d1h1m1s");

    /* Round trips. */
    for (uint64_t s = 0; s < 200000; s += 997) {
        uint64_t back;
        assert_int_equal(vk_duration_parse(vk_duration_format(s, d, sizeof d), &back), 0);
        assert_true(back == s);
    }
}

static void test_strv_split(void **state)
{
    CLEANUP_STRV char **v = NULL;
    CLEANUP_STRV char **bad = NULL;

    (void)state;
    v = vk_strv_split("vda, vdb ,vdc", ',');
    assert_non_null(v);
    assert_int_equal(vk_strv_len(v), 3);
    assert_string_equal(v[0], "vda");
    assert_string_equal(v[1], "vdb");
    assert_string_equal(v[2], "vdc");
    assert_true(vk_strv_contains(v, "vdb"));
    assert_false(vk_strv_contains(v, "vdd"));
    assert_int_equal(vk_strv_add(&v, "vdd"), 0);
    assert_true(vk_strv_contains(v, "vdd"));
    assert_int_equal(vk_strv_len(v), 4);
    assert_null(v[4]);
    assert_int_equal(vk_strv_add(&bad, "first"), 0); /* from no list at all */
    assert_int_equal(vk_strv_len(bad), 1);
    vk_strv_free(bad);
    bad = NULL;

    bad = vk_strv_split("vda,,vdb", ',');
    assert_null(bad);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
}

static void test_parse_uint(void **state)
{
    unsigned long long v = 0;

    (void)state;
    assert_int_equal(vk_parse_uint("42", 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(vk_parse_uint("101", 100, &v), -1);
    assert_int_equal(vk_parse_uint("-1", 100, &v), -1);
    assert_int_equal(vk_parse_uint("4x", 100, &v), -1);
    assert_int_equal(vk_parse_uint("", 100, &v), -1);
    assert_int_equal(vk_parse_uint(" 4", 100, &v), -1);
    assert_int_equal(v, 42);
}

static int freed_by_cleanup;

static void test_cleanup_scope(void **state)
{
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    {
        CLEANUP_CLOSE int fd = fds[0];
        CLEANUP_FREE char *s = vk_strdup("scratch");
        (void)fd;
        assert_non_null(s);
    }
    /* The read end was closed by the cleanup. */
    errno = 0;
    assert_int_equal(close(fds[0]), -1);
    assert_int_equal(errno, EBADF);
    {
        CLEANUP_CLOSE int fd = fds[1];
        int kept = VK_STEAL_FD(fd);
        assert_int_equal(fd, -1);
        freed_by_cleanup = kept;
    }
    assert_int_equal(close(freed_by_cleanup), 0);
}

static void test_log_levels(void **state)
{
    static int evaluated;
    (void)state;
    vk_log_set_level(VK_LOG_WARN);
    evaluated = 0;
    /* A disabled level must not evaluate its arguments. */
    vk_debug("never %d", ++evaluated);
    vk_info("never %d", ++evaluated);
    assert_int_equal(evaluated, 0);
    vk_log_set_level(VK_LOG_INFO);
}

/* The sinks of a daemon: the sd-daemon "<N>" prefix for the journal, the
 * syslog priorities, no program name in syslog lines. */
static void test_log_prefix(void **state)
{
    char buf[64];

    (void)state;
    vk_log_init("virtkeepd");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_JOURNAL, VK_LOG_QUIET, buf, sizeof buf),
                        "<3>virtkeepd: error: ");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_JOURNAL, VK_LOG_WARN, buf, sizeof buf),
                        "<4>virtkeepd: warning: ");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_JOURNAL, VK_LOG_INFO, buf, sizeof buf),
                        "<6>virtkeepd: ");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_JOURNAL, VK_LOG_DEBUG, buf, sizeof buf),
                        "<7>virtkeepd: debug: ");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_STDERR, VK_LOG_WARN, buf, sizeof buf),
                        "virtkeepd: warning: ");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_STDERR, VK_LOG_INFO, buf, sizeof buf),
                        "virtkeepd: ");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_SYSLOG, VK_LOG_QUIET, buf, sizeof buf),
                        "error: ");
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_SYSLOG, VK_LOG_INFO, buf, sizeof buf), "");
    /* A short buffer is cut, never overrun. */
    assert_string_equal(vk_log_prefix(VK_LOG_SINK_JOURNAL, VK_LOG_QUIET, buf, 6), "<3>vi");
    assert_int_equal(setenv("JOURNAL_STREAM", "8:12345", 1), 0);
    assert_int_equal(vk_log_sink_auto(), VK_LOG_SINK_JOURNAL);
    assert_int_equal(setenv("JOURNAL_STREAM", "", 1), 0);
    assert_int_equal(vk_log_sink_auto(), VK_LOG_SINK_STDERR);
    assert_int_equal(unsetenv("JOURNAL_STREAM"), 0);
    assert_int_equal(vk_log_sink_auto(), VK_LOG_SINK_STDERR);
    vk_log_init("virtkeep");
}

/* A row's owner is (pid, start time): a live process with the pid but
 * another start time (the pid was reused) is not the owner, and neither is
 * a zombie nor a reaped process. */
static void test_proc_owner(void **state)
{
    uint64_t self = 0, kid_start = 0;
    pid_t kid;
    int status;

    (void)state;
    assert_int_equal(vk_proc_start_time(getpid(), &self), 0);
    assert_true(self > 0);
    assert_true(vk_proc_alive(getpid(), self));
    assert_true(vk_proc_alive(getpid(), 0)); /* start unknown: the pid decides */
    assert_false(vk_proc_alive(getpid(), self + 1));
    assert_false(vk_proc_alive(getpid(), self - 1));
    assert_false(vk_proc_alive(0, 0));
    assert_false(vk_proc_alive(-1, 0));
    assert_false(vk_proc_alive((int64_t)INT32_MAX + 1, 0));

    /* A zombie keeps its pid and start time, but it is not running. */
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0)
        _exit(0);
    for (int i = 0; i < 500; i++) {
        char st[64], buf[256];
        FILE *f;
        snprintf(st, sizeof st, "/proc/%d/stat", (int)kid);
        f = fopen(st, "r");
        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof buf, f));
        fclose(f);
        if (strstr(buf, ") Z "))
            break;
        usleep(10000);
    }
    assert_int_equal(vk_proc_start_time(kid, &kid_start), 0);
    assert_true(kid_start >= self);
    assert_false(vk_proc_alive(kid, kid_start));
    assert_false(vk_proc_alive(kid, 0));
    assert_int_equal(waitpid(kid, &status, 0), kid);
    /* Reaped: no process has the pid (until it is reused). */
    assert_false(vk_proc_alive(kid, kid_start));
    assert_int_equal(vk_proc_start_time(kid, &kid_start), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
}

/* A listening socket of 127.0.0.1 on a free port, its address in *SA. */
static int loopback_listen(struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof *sa;

    assert_true(fd >= 0);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof *sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
    return fd;
}

/* Who owns each end of a loopback connection (/proc/net/tcp): the client's
 * end its creator, the server's end (accepted or not yet) the owner of the
 * listening socket. */
static void test_tcp_socket_uid(void **state)
{
    struct sockaddr_in srv, cli, none;
    socklen_t len = sizeof cli;
    int lfd = loopback_listen(&srv), c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int pfd[2];
    uid_t uid = 12345;
    pid_t kid;

    (void)state;
    assert_int_equal(connect(c, (struct sockaddr *)&srv, sizeof srv), 0);
    assert_int_equal(getsockname(c, (struct sockaddr *)&cli, &len), 0);
    assert_int_equal(vk_tcp_socket_uid((struct sockaddr *)&cli, (struct sockaddr *)&srv, &uid), 0);
    assert_int_equal(uid, geteuid());
    uid = 12345;
    assert_int_equal(vk_tcp_socket_uid((struct sockaddr *)&srv, (struct sockaddr *)&cli, &uid), 0);
    assert_int_equal(uid, geteuid());
    none = cli;
    none.sin_port = htons(ntohs(cli.sin_port) == 1 ? 2 : 1);
    assert_int_equal(vk_tcp_socket_uid((struct sockaddr *)&srv, (struct sockaddr *)&none, &uid),
                     -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    close(c);
    close(lfd);
    if (geteuid() != 0)
        return;

    /* A server run by another user (nobody): its end of our connection is
     * that user's. */
    assert_int_equal(pipe(pfd), 0);
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        struct sockaddr_in sa;
        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
            _exit(1);
        lfd = loopback_listen(&sa);
        if (write(pfd[1], &sa, sizeof sa) != sizeof sa)
            _exit(1);
        pause(); /* until the parent is done */
        _exit(0);
    }
    assert_int_equal(read(pfd[0], &srv, sizeof srv), sizeof srv);
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&srv, sizeof srv), 0);
    len = sizeof cli;
    assert_int_equal(getsockname(c, (struct sockaddr *)&cli, &len), 0);
    assert_int_equal(vk_tcp_socket_uid((struct sockaddr *)&srv, (struct sockaddr *)&cli, &uid), 0);
    assert_int_equal(uid, 65534);
    assert_int_equal(vk_tcp_socket_uid((struct sockaddr *)&cli, (struct sockaddr *)&srv, &uid), 0);
    assert_int_equal(uid, 0);
    close(c);
    close(pfd[1]);
    close(pfd[0]);
    kill(kid, SIGKILL);
    assert_int_equal(waitpid(kid, NULL, 0), kid);
}

static void test_json_strict(void **state)
{
    static const char *const keys[] = {"format", "version", "name", "size", "note", NULL};
    const char *good = "{\"format\":\"f\",\"version\":1,\"name\":\"a\",\"size\":7,"
                       "\"note\":null}\n";
    struct json_object *o, *s;
    char *name = NULL, *note = NULL;
    uint64_t size = 0;

    (void)state;
    o = vk_json_parse(good, strlen(good), "the test document");
    assert_non_null(o);
    assert_int_equal(vk_json_check_object(o, keys, "the test document"), 0);
    assert_int_equal(vk_json_check_format(o, "f", 1, "the test document"), 0);
    assert_int_equal(vk_json_get_str(o, "name", false, "the test document", &name), 0);
    assert_string_equal(name, "a");
    assert_int_equal(vk_json_get_str(o, "note", true, "the test document", &note), 0);
    assert_null(note);
    assert_int_equal(vk_json_get_u64(o, "size", "the test document", &size), 0);
    assert_int_equal(size, 7);
    assert_int_equal(vk_json_check_format(o, "f", 2, "the test document"), -1);
    assert_int_equal(vk_error_code(), VK_ERR_UNSUPPORTED);
    assert_int_equal(vk_json_get_u64(o, "name", "the test document", &size), -1);
    assert_string_equal(vk_error_message(),
                        "the test document is corrupt: key 'name' is not an integer");
    json_object_put(o);
    free(name);

    assert_null(vk_json_parse("{} x", 4, "the test document"));
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    assert_null(vk_json_parse("[1]", 3, "the test document"));
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    vk_error_clear();

    assert_null(vk_json_string_or_null(NULL));
    s = vk_json_string_or_null("x");
    assert_string_equal(json_object_get_string(s), "x");
    json_object_put(s);
}

static void test_xml(void **state)
{
    const char *text = "<domain type='kvm'><name> web1 </name><devices>"
                       "<disk device='disk'><source file='/a.qcow2'/><backingStore/></disk>"
                       "<disk device='cdrom'/><disk/></devices></domain>";
    CLEANUP_XMLDOC xmlDoc *doc = NULL;
    CLEANUP_FREE xmlNode **disks = NULL;
    CLEANUP_FREE char *type = NULL;
    CLEANUP_FREE char *name = NULL;
    CLEANUP_FREE char *file = NULL;
    CLEANUP_FREE char *dump = NULL;
    CLEANUP_FREE char *disk = NULL;
    xmlNode *root;

    (void)state;
    assert_null(vk_xml_parse_str("<domain><devices>", VK_ERR_CORRUPT, "test XML"));
    assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    assert_non_null(strstr(vk_error_message(), "cannot parse the test XML: "));
    assert_null(strchr(vk_error_message(), '\n'));
    assert_null(vk_xml_parse_str(NULL, VK_ERR_INVALID, "test XML"));
    assert_string_equal(vk_error_message(), "cannot parse the test XML: it is empty.");
    vk_error_clear();
    assert_null(vk_xml_parse("x", 1, VK_ERR_INVALID, NULL));
    assert_null(vk_error_message());

    doc = vk_xml_parse_str(text, VK_ERR_INVALID, "test XML");
    assert_non_null(doc);
    assert_null(vk_xml_root(doc, "other"));
    root = vk_xml_root(doc, "domain");
    assert_non_null(root);
    assert_true(vk_xml_is(root, "domain"));
    assert_false(vk_xml_is(NULL, "domain"));
    assert_int_equal(vk_xml_attr_get(root, "type", &type), 0);
    assert_string_equal(type, "kvm");
    assert_null(vk_xml_attr(root, "id"));
    assert_null(vk_xml_attr(NULL, "id"));
    name = vk_xml_text(vk_xml_child(root, "name"));
    assert_string_equal(name, " web1 ");
    assert_null(vk_xml_child(NULL, "name"));
    assert_null(vk_xml_text(NULL));

    assert_int_equal(vk_xml_xpath_nodes(doc, "/domain/devices/disk", &disks), 3);
    assert_null(disks[3]);
    assert_true(disks[0] == vk_xml_xpath_first(doc, "/domain/devices/disk"));
    assert_null(vk_xml_xpath_first(doc, "/domain/nothing"));
    file = vk_xml_xpath_string(doc, "string(/domain/devices/disk/source/@file)");
    assert_string_equal(file, "/a.qcow2");
    assert_null(vk_xml_xpath_string(doc, "string(/domain/@id)"));

    vk_xml_remove_children(disks[0], "backingStore");
    vk_xml_remove(disks[2]);
    disk = vk_xml_node_dump(doc, disks[0]);
    assert_string_equal(disk, "<disk device=\"disk\"><source file=\"/a.qcow2\"/></disk>");
    assert_null(vk_xml_node_dump(doc, NULL));
    dump = vk_xml_dump(doc, false, "test XML");
    assert_non_null(strstr(dump, "<disk device=\"cdrom\"/></devices></domain>"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_set_and_prefix),
        cmocka_unit_test(test_error_errno),
        cmocka_unit_test(test_error_thread_local),
        cmocka_unit_test(test_size_parse_good),
        cmocka_unit_test(test_size_parse_garbage),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_units_bounds),
        cmocka_unit_test(test_formatters),
        cmocka_unit_test(test_strv_split),
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_cleanup_scope),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_log_prefix),
        cmocka_unit_test(test_proc_owner),
        cmocka_unit_test(test_tcp_socket_uid),
        cmocka_unit_test(test_json_strict),
        cmocka_unit_test(test_xml),
    };

    unsetenv("VIRTKEEP_DEBUG");
    vk_log_init("test-common");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
