/* The ssh:// backend against the harness sshd (run by test-transport-ssh.sh,
 * which exports VK_SSH_* and prepares keys and known_hosts files in
 * $VK_SSH_FIXTURES): the whole contract suite, then what only SSH shows --
 * host keys, credentials, secrets, lost connections.
 *
 * "Full" is a 1 MiB tmpfs mounted on the target directory and "unwritable" a
 * read-only bind mount of it.  Both need the private mount namespace the
 * driver runs in (VK_TEST_PRIVATE_MOUNTS=1), shared with the sshd, so that the
 * mounts vanish with the test.  Lost connections are made by killing the
 * sshd processes that serve this program's session (children of the
 * listener $VK_SSHD_PID); the last test kills the listener itself.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "tests/lib/transport-contract.h"
#include "transport/transport.h"

#define MiB (1024 * 1024)

static const char *host, *port, *user, *user_key, *known_hosts, *fixtures, *host_fp, *scratch;
static int sshd_pid;
static char contract_root[512], specific_root[512];
static char specific_url[1024];

/* ------------------------------------------------------------------ */
/* The contract fixture                                                */

struct mounts {
    const char *root;
    int stacked;
};

static bool private_mounts(void)
{
    const char *v = getenv("VK_TEST_PRIVATE_MOUNTS");

    return v && strcmp(v, "1") == 0;
}

static int mount_failed(const char *what)
{
    print_message("cannot %s: %s\n", what, strerror(errno));
    return errno == EPERM || errno == EACCES ? CONTRACT_UNAVAILABLE : -1;
}

static int ssh_make_unwritable(void *opaque)
{
    struct mounts *m = opaque;

    if (!private_mounts())
        return CONTRACT_UNAVAILABLE;
    if (mount(m->root, m->root, NULL, MS_BIND, NULL) < 0)
        return mount_failed("bind-mount the target");
    m->stacked++;
    if (mount(NULL, m->root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        return mount_failed("remount the target read-only");
    return 0;
}

static int ssh_make_full(void *opaque)
{
    struct mounts *m = opaque;

    if (!private_mounts())
        return CONTRACT_UNAVAILABLE;
    if (mount("vk-full", m->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0)
        return mount_failed("mount a 1 MiB tmpfs on the target");
    m->stacked++;
    return 0;
}

static int ssh_leftovers(void *opaque, unsigned int *count)
{
    const struct mounts *m = opaque;

    return contract_count_temp_files(m->root, count);
}

static int ssh_restore(void *opaque)
{
    struct mounts *m = opaque;

    for (; m->stacked > 0; m->stacked--)
        if (umount2(m->root, 0) < 0 && umount2(m->root, MNT_DETACH) < 0)
            return mount_failed("unmount the target");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static char *fixture(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];

    snprintf(p, sizeof buf[0], "%s/%s", fixtures, name);
    return p;
}

static struct transport_options base_opts(void)
{
    return (struct transport_options){
        .key_file = user_key, .known_hosts = known_hosts, .timeout_seconds = 20};
}

static struct transport *open_ok(const struct transport_options *o)
{
    struct transport *t = transport_open("remote", specific_url, o);

    if (!t)
        fail_msg("cannot open %s: %s", specific_url, vk_error_message());
    return t;
}

/* transport_open fails with CODE and a message holding every NEEDLE. */
static void open_refused(const struct transport_options *o, enum vk_error_code code, ...)
{
    struct transport *t = transport_open("remote", specific_url, o);
    const char *msg = vk_error_message(), *needle;
    va_list ap;

    if (t) {
        transport_close(t);
        fail_msg("the target was opened; expected '%s'", vk_error_code_name(code));
    }
    print_message("refused as expected: %s\n", msg);
    if (vk_error_code() != code)
        fail_msg("expected '%s', got '%s': %s", vk_error_code_name(code),
                 vk_error_code_name(vk_error_code()), msg);
    assert_non_null(strstr(msg, "target 'remote'"));
    va_start(ap, code);
    while ((needle = va_arg(ap, const char *)) != NULL)
        if (!strstr(msg, needle))
            fail_msg("no '%s' in: %s", needle, msg);
    va_end(ap);
}

static void pattern(uint8_t *buf, size_t len, unsigned int seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 12)) & 0xff);
}

static int temp_found;

static int temp_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (strstr(path, ".vk-tmp-")) {
        print_message("temp file on the server: %s\n", path);
        temp_found++;
    }
    return 0;
}

/* Temp files under ROOT, seen on the server's disk. */
static int temp_files_in(const char *root)
{
    temp_found = 0;
    nftw(root, temp_cb, 16, FTW_PHYS);
    return temp_found;
}

static int temp_files(void)
{
    return temp_files_in(specific_root);
}

/* Kill every process below PID (not PID itself). */
static int kill_children_of(int pid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int killed = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[64], buf[512], *p;
        FILE *f;
        int child, ppid;
        if (sscanf(de->d_name, "%d", &child) != 1)
            continue;
        snprintf(path, sizeof path, "/proc/%d/stat", child);
        if (!(f = fopen(path, "re")))
            continue;
        p = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == pid) {
            killed += kill_children_of(child);
            if (kill(child, SIGKILL) == 0)
                killed++;
        }
    }
    closedir(d);
    return killed;
}

/* Drop this program's SSH session: the server side dies. */
static void kill_session(void)
{
    struct timespec ts = {0, 200 * 1000 * 1000};

    if (kill_children_of(sshd_pid) == 0)
        fail_msg("no sshd session process below %d to kill", sshd_pid);
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */
/* Host keys                                                           */

static void test_host_key_changed(void **state)
{
    struct transport_options o = base_opts();

    (void)state;
    o.known_hosts = fixture("known_hosts.changed");
    open_refused(&o, VK_ERR_AUTH, "SHA256:", host_fp, "CHANGED", "ssh-keygen -R", NULL);
}

static void test_host_unknown(void **state)
{
    struct transport_options o = base_opts();

    (void)state;
    o.known_hosts = fixture("known_hosts.unknown");
    open_refused(&o, VK_ERR_AUTH, "SHA256:", host_fp, "unknown", "known_hosts.unknown", NULL);
    /* A missing known_hosts file knows no host: refused too, never created. */
    o.known_hosts = fixture("known_hosts.missing");
    open_refused(&o, VK_ERR_AUTH, host_fp, "does not exist", NULL);
    assert_int_equal(access(fixture("known_hosts.missing"), F_OK), -1);
}

static void test_host_key_hashed(void **state)
{
    struct transport_options o = base_opts();
    struct transport *t;
    struct transport_stat st;

    (void)state;
    o.known_hosts = fixture("known_hosts.hashed");
    t = open_ok(&o);
    assert_int_equal(transport_check(t), 0);
    assert_int_equal(transport_put(t, "hashed/obj", "abc", 3), 0);
    assert_int_equal(transport_stat(t, "hashed/obj", &st), 0);
    assert_int_equal(st.size, 3);
    assert_int_equal(transport_delete(t, "hashed/obj"), 0);
    transport_close(t);
}

/* ------------------------------------------------------------------ */
/* Credentials                                                         */

static void test_wrong_user_key(void **state)
{
    struct transport_options o = base_opts();

    (void)state;
    o.key_file = fixture("stranger_key");
    open_refused(&o, VK_ERR_AUTH, "refused", user, "stranger_key", NULL);
    o.key_file = fixture("no_such_key");
    open_refused(&o, VK_ERR_NOT_FOUND, "no_such_key", NULL);
}

static void test_encrypted_key(void **state)
{
    struct transport_options o = base_opts();
    struct transport *t;

    (void)state;
    o.key_file = fixture("enc_key");
    o.passphrase_file = fixture("passphrase");
    t = open_ok(&o);
    assert_int_equal(transport_check(t), 0);
    transport_close(t);

    o.passphrase_file = NULL;
    o.passphrase_env = "VK_TEST_PASSPHRASE";
    setenv("VK_TEST_PASSPHRASE", "correct horse battery", 1);
    t = open_ok(&o);
    transport_close(t);
    setenv("VK_TEST_PASSPHRASE", "wrong horse", 1);
    open_refused(&o, VK_ERR_AUTH, "enc_key", "passphrase is wrong", NULL);
    assert_null(strstr(vk_error_message(), "horse"));
    unsetenv("VK_TEST_PASSPHRASE");
    open_refused(&o, VK_ERR_AUTH, "VK_TEST_PASSPHRASE", "not set", NULL);

    o.passphrase_env = NULL;
    open_refused(&o, VK_ERR_AUTH, "enc_key", "passphrase_file", NULL);
    o.passphrase_file = fixture("passphrase.wrong");
    open_refused(&o, VK_ERR_AUTH, "passphrase is wrong", NULL);
    assert_null(strstr(vk_error_message(), "horse"));
    /* A passphrase file others can read is refused before it is read. */
    o.passphrase_file = fixture("passphrase.readable");
    open_refused(&o, VK_ERR_PERMISSION, "passphrase.readable", "chmod 600", "0644", NULL);
    assert_null(strstr(vk_error_message(), "horse"));
}

static void test_agent(void **state)
{
    struct transport_options o = base_opts();
    const char *sock = getenv("VK_TEST_AGENT_SOCK");
    struct transport *t;

    (void)state;
    o.key_file = NULL;
    unsetenv("SSH_AUTH_SOCK");
    open_refused(&o, VK_ERR_AUTH, "SSH_AUTH_SOCK", "key_file", NULL);
    if (!sock)
        fail_msg("the driver started no ssh-agent (VK_TEST_AGENT_SOCK)");
    setenv("SSH_AUTH_SOCK", sock, 1);
    t = open_ok(&o);
    assert_int_equal(transport_check(t), 0);
    transport_close(t);
    unsetenv("SSH_AUTH_SOCK");
}

static void test_user_option(void **state)
{
    struct transport_options o = base_opts();
    char url[1024];
    struct transport *t;

    (void)state;
    /* No user in the URL: the user option is used. */
    snprintf(url, sizeof url, "ssh://%s:%s%s", host, port, specific_root);
    o.user = "nobody-here";
    assert_null(transport_open("remote", url, &o));
    assert_int_equal(vk_error_code(), VK_ERR_AUTH);
    assert_non_null(strstr(vk_error_message(), "nobody-here"));
    o.user = user;
    t = transport_open("remote", url, &o);
    if (!t)
        fail_msg("cannot open %s: %s", url, vk_error_message());
    assert_int_equal(transport_check(t), 0);
    transport_close(t);
}

static void test_connection_refused(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    struct transport_options o = base_opts();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[1024], where[64];
    uint64_t start;

    (void)state;
    /* A port that was free a moment ago: nothing listens there. */
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    snprintf(where, sizeof where, "127.0.0.1:%u", ntohs(sa.sin_port));
    snprintf(url, sizeof url, "ssh://%s@%s%s", user, where, specific_root);
    start = vk_now_ns();
    assert_null(transport_open("remote", url, &o));
    assert_true(vk_now_ns() - start < 5ULL * 1000000000);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), where));
    assert_non_null(strstr(vk_error_message(), "refused"));
}

/* ------------------------------------------------------------------ */
/* Lost connections                                                    */

static int specific_setup(void **state)
{
    struct transport_options o = base_opts();

    *state = open_ok(&o);
    return 0;
}

static int specific_teardown(void **state)
{
    transport_close(*state);
    vk_error_clear();
    return 0;
}

/* Write until a write fails (the connection is gone); returns the error. */
static enum vk_error_code write_until_failure(struct transport_writer *w, uint8_t *buf)
{
    for (int i = 0; i < 256; i++)
        if (transport_writer_write(w, buf, MiB) < 0)
            return vk_error_code();
    return VK_ERR_NONE;
}

/* Is KEY on T exactly MIBS mebibytes of pattern(i) for each mebibyte i? */
static void assert_object_mibs(struct transport *t, const char *key, int mibs)
{
    uint8_t *buf = malloc(MiB), *back = malloc(MiB);
    struct transport_stat st;

    assert_non_null(buf);
    assert_non_null(back);
    assert_int_equal(transport_stat(t, key, &st), 0);
    assert_int_equal(st.size, (uint64_t)mibs * MiB);
    for (int i = 0; i < mibs; i++) {
        pattern(buf, MiB, (unsigned int)i);
        assert_int_equal(transport_get_range(t, key, (uint64_t)i * MiB, back, MiB), MiB);
        assert_memory_equal(back, buf, MiB);
    }
    free(buf);
    free(back);
}

/* The session dies mid-upload: the put resumes on a new one, from the
 * bytes the server acknowledged, and the object is whole. */
static void test_killed_mid_upload(void **state)
{
    struct transport *t = *state;
    struct transport_writer *w;
    uint8_t *buf = malloc(MiB), back[64];

    assert_non_null(buf);
    pattern(buf, MiB, 1);
    assert_int_equal(transport_put(t, "kill/old", buf, 1000), 0);
    w = transport_put_begin(t, "kill/new", 0);
    assert_non_null(w);
    for (int i = 0; i < 8; i++) {
        pattern(buf, MiB, (unsigned int)i);
        if (i == 4) {
            assert_int_equal(temp_files(), 1);
            kill_session();
        }
        assert_int_equal(transport_writer_write(w, buf, MiB), 0);
    }
    assert_int_equal(transport_writer_commit(w), 0);
    assert_object_mibs(t, "kill/new", 8);
    assert_int_equal(temp_files(), 0);
    pattern(buf, MiB, 1);
    assert_int_equal(transport_get_range(t, "kill/old", 0, back, sizeof back), sizeof back);
    assert_memory_equal(back, buf, sizeof back);
    free(buf);
}

static void test_killed_before_commit(void **state)
{
    struct transport *t = *state;
    struct transport_writer *w;
    struct transport_stat st;
    uint8_t buf[4096], back[4096];

    pattern(buf, sizeof buf, 2);
    assert_int_equal(transport_put(t, "commit/obj", buf, 100), 0);
    w = transport_put_begin(t, "commit/obj", 0);
    assert_non_null(w);
    assert_int_equal(transport_writer_write(w, buf, sizeof buf), 0);
    /* The old version stands until the commit, which resumes on a new
     * session and replaces it whole. */
    kill_session();
    assert_int_equal(transport_stat(t, "commit/obj", &st), 0);
    assert_int_equal(st.size, 100);
    kill_session();
    assert_int_equal(transport_writer_commit(w), 0);
    assert_int_equal(transport_stat(t, "commit/obj", &st), 0);
    assert_int_equal(st.size, sizeof buf);
    assert_int_equal(transport_get_range(t, "commit/obj", 0, back, sizeof back), sizeof back);
    assert_memory_equal(back, buf, sizeof back);
    assert_int_equal(temp_files(), 0);
}

static int count_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    (void)key;
    (void)st;
    (*(int *)opaque)++;
    return 0;
}

static int keys_cb(void *opaque, const char *key, const struct transport_stat *st)
{
    char *all = opaque;
    size_t n = strlen(all);

    (void)st;
    snprintf(all + n, 1024 - n, "%s ", key);
    return 0;
}

/* KEY on T is exactly the LEN bytes of BUF. */
static void assert_object_prefix(struct transport *t, const char *key, const uint8_t *buf,
                                 size_t len)
{
    uint8_t back[4096];

    assert_true(len <= sizeof back);
    assert_int_equal(transport_get_range(t, key, 0, back, sizeof back), (ssize_t)len);
    assert_memory_equal(back, buf, len);
}

static void test_reconnect_idempotent(void **state)
{
    struct transport *t = *state;
    struct transport_stat st;
    uint8_t buf[3000], back[3000];
    int n = 0;

    pattern(buf, sizeof buf, 3);
    assert_int_equal(transport_put(t, "idem/a", buf, sizeof buf), 0);
    assert_int_equal(transport_put(t, "idem/b", buf, 10), 0);
    kill_session();
    assert_int_equal(transport_stat(t, "idem/a", &st), 0);
    assert_int_equal(st.size, sizeof buf);
    kill_session();
    assert_int_equal(transport_get_range(t, "idem/a", 100, back, 2000), 2000);
    assert_memory_equal(back, buf + 100, 2000);
    kill_session();
    assert_int_equal(transport_list(t, "idem/", count_cb, &n), 0);
    assert_int_equal(n, 2);
    kill_session();
    assert_int_equal(transport_delete(t, "idem/b"), 0);
    kill_session();
    assert_int_equal(transport_check(t), 0);
    assert_int_equal(transport_delete(t, "idem/a"), 0);
    /* A put that begins on a dead connection simply reconnects. */
    kill_session();
    assert_int_equal(transport_put(t, "idem/c", buf, 5), 0);
    assert_int_equal(transport_delete(t, "idem/c"), 0);
}

/* Read [OFF, OFF + LEN) of KEY, an object of SIZE bytes whose content is
 * WHOLE, and compare. */
static void read_check(struct transport *t, const char *key, const uint8_t *whole, size_t size,
                       uint64_t off, size_t len, uint8_t *back)
{
    size_t want = off >= size ? 0 : (size - off < len ? size - off : len);
    ssize_t n = transport_get_range(t, key, off, back, len);

    if (n != (ssize_t)want)
        fail_msg("read of %zu at %llu: %zd bytes, not %zu (%s)", len, (unsigned long long)off, n,
                 want, n < 0 ? vk_error_message() : "short");
    if (want && memcmp(back, whole + off, want) != 0)
        fail_msg("read of %zu at %llu: wrong bytes", len, (unsigned long long)off);
}

/* Ranged reads in the patterns readers use, checked byte for byte:
 * streaming in blocks (the read-ahead buffer), small and large gaps
 * forward (read through, or seek), back, across and past the end. */
static void test_read_patterns(void **state)
{
    struct transport *t = *state;
    const size_t size = 12 * MiB + 12345;
    uint8_t *whole = malloc(size), *back = malloc(5 * MiB);
    uint64_t off = 0, x = 42;

    assert_non_null(whole);
    assert_non_null(back);
    pattern(whole, size, 9);
    assert_int_equal(transport_put(t, "reads/obj", whole, size), 0);
    for (int i = 0; i < 8; i++, off += 256 * 1024) /* streaming, 256 KiB at a time */
        read_check(t, "reads/obj", whole, size, off, 256 * 1024, back);
    read_check(t, "reads/obj", whole, size, off + 1536, 70000, back); /* over a header */
    off += 1536 + 70000;
    read_check(t, "reads/obj", whole, size, off, 100, back);                  /* from the buffer */
    read_check(t, "reads/obj", whole, size, off + 100 + 3 * MiB, 4096, back); /* through */
    read_check(t, "reads/obj", whole, size, off + 50, 2 * MiB, back);         /* back a bit */
    read_check(t, "reads/obj", whole, size, 5 * MiB, 5 * MiB, back);          /* big, direct */
    read_check(t, "reads/obj", whole, size, 10 * MiB, 5 * MiB, back);         /* to the end */
    read_check(t, "reads/obj", whole, size, 0, 1, back);                      /* again at 0 */
    read_check(t, "reads/obj", whole, size, size - 10, 64 * 1024, back);      /* across it */
    read_check(t, "reads/obj", whole, size, size, 100, back);                 /* at the end */
    read_check(t, "reads/obj", whole, size, size + 5000, 100, back);          /* past it */
    read_check(t, "reads/obj", whole, size, 12 * MiB - 100, 1000, back);
    read_check(t, "reads/obj", whole, size, 12 * MiB + 3000, 1000, back); /* gap to the end */
    for (int i = 0; i < 200; i++) { /* random places and lengths, some in a row */
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        if (i % 3)
            off = (x >> 20) % (size + 1000);
        read_check(t, "reads/obj", whole, size, off, (size_t)((x >> 8) % (600 * 1024)) + 1, back);
        off += (x >> 8) % (600 * 1024) + 1 + (i % 2 ? 0 : (x >> 40) % 5000);
    }
    assert_int_equal(transport_delete(t, "reads/obj"), 0);
    free(whole);
    free(back);
}

/* Keys under PREFIX on T, joined by ' ' (static). */
static const char *keys_under(struct transport *t, const char *prefix)
{
    static char all[1024];

    all[0] = '\0';
    assert_int_equal(transport_list(t, prefix, keys_cb, all), 0);
    return all;
}

/* A process killed in the middle of a put leaves its temp file on the
 * server: it is never listed, and transport_purge_temps removes it (and
 * nothing else), then the directory once it is empty. */
static void test_purge_killed_put(void **state)
{
    struct transport *t = *state;
    uint8_t *buf = malloc(MiB);
    char dir[600], parent[600];
    struct stat st;
    unsigned int removed = 99;
    int status;
    pid_t pid;

    assert_non_null(buf);
    pattern(buf, MiB, 5);
    assert_int_equal(transport_put(t, "purge/b1/manifest.json", buf, 100), 0);
    assert_int_equal(temp_files(), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct transport_options o = base_opts();
        struct transport *c = transport_open("child", specific_url, &o);
        struct transport_writer *w = c ? transport_put_begin(c, "purge/b1/vda.tar", 0) : NULL;
        for (int i = 0; w && i < 3; i++)
            if (transport_writer_write(w, buf, MiB) < 0)
                _exit(2);
        if (w)
            raise(SIGKILL); /* killed mid-put: no abort, no cleanup */
        _exit(3);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(temp_files(), 1);
    assert_string_equal(keys_under(t, "purge/"), "purge/b1/manifest.json ");
    assert_null(strstr(keys_under(t, ""), ".vk-tmp-"));
    assert_null(strstr(keys_under(t, ""), "vda.tar"));

    assert_int_equal(transport_purge_temps(t, "purge/b1", &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(temp_files(), 0);
    assert_string_equal(keys_under(t, "purge/"), "purge/b1/manifest.json ");
    assert_object_prefix(t, "purge/b1/manifest.json", buf, 100);
    /* Nothing left to remove; the directory stays while it holds objects. */
    assert_int_equal(transport_purge_temps(t, "purge/b1", &removed), 0);
    assert_int_equal(removed, 0);
    snprintf(dir, sizeof dir, "%s/purge/b1", specific_root);
    assert_int_equal(stat(dir, &st), 0);
    /* Once empty, the directory goes too; a missing one is no error. */
    assert_int_equal(transport_delete(t, "purge/b1/manifest.json"), 0);
    snprintf(parent, sizeof parent, "%s/purge", specific_root);
    assert_true(mkdir(parent, 0755) == 0 || errno == EEXIST);
    assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
    assert_int_equal(transport_purge_temps(t, "purge/b1", NULL), 0);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(transport_purge_temps(t, "purge/b1", &removed), 0);
    assert_int_equal(removed, 0);
    /* A key that is not a directory key is refused as every key is. */
    assert_int_equal(transport_purge_temps(t, "purge/../x", &removed), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    free(buf);
}

static void test_missing_root(void **state)
{
    struct transport_options o = base_opts();
    char url[1024];
    struct transport *t;
    struct transport_stat st;

    (void)state;
    snprintf(url, sizeof url, "ssh://%s@%s:%s%s/not-there", user, host, port, specific_root);
    t = transport_open("remote", url, &o);
    assert_non_null(t);
    assert_int_equal(transport_check(t), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_non_null(strstr(vk_error_message(), "does not exist"));
    /* Never created by a put. */
    assert_int_equal(transport_put(t, "x/y", "1", 1), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(transport_stat(t, "x/y", &st), -1);
    assert_non_null(strstr(vk_error_message(), "does not exist"));
    transport_close(t);
    snprintf(url, sizeof url, "%s/not-there", specific_root);
    assert_int_equal(access(url, F_OK), -1);
}

/* Last: the whole server goes away and stays away. */
static void test_server_gone(void **state)
{
    struct transport *t = *state;
    struct transport_writer *w;
    struct transport_stat st;
    char where[64];
    uint64_t start;
    uint8_t *buf = malloc(MiB);

    assert_non_null(buf);
    pattern(buf, MiB, 5);
    assert_int_equal(transport_put(t, "gone/obj", "x", 1), 0);
    w = transport_put_begin(t, "gone/inflight", 0);
    assert_non_null(w);
    assert_int_equal(transport_writer_write(w, buf, MiB), 0);
    kill_children_of(sshd_pid);
    assert_int_equal(kill(sshd_pid, SIGKILL), 0);
    /* The put in flight tries to resume, a bounded number of times. */
    start = vk_now_ns();
    assert_int_equal(write_until_failure(w, buf), VK_ERR_NETWORK);
    print_message("the put failed as expected: %s\n", vk_error_message());
    assert_non_null(strstr(vk_error_message(), "gone/inflight"));
    assert_non_null(strstr(vk_error_message(), "giving up after 5 attempts"));
    assert_true(vk_now_ns() - start < 20ULL * 1000000000);
    transport_writer_abort(w);
    free(buf);
    start = vk_now_ns();
    assert_int_equal(transport_stat(t, "gone/obj", &st), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    snprintf(where, sizeof where, "%s:%s", host, port);
    assert_non_null(strstr(vk_error_message(), where));
    assert_non_null(strstr(vk_error_message(), "gone/obj"));
    /* Bounded retries with backoff: a few seconds, not forever. */
    assert_true(vk_now_ns() - start < 20ULL * 1000000000);
    assert_null(transport_put_begin(t, "gone/new", 0));
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
}

/* ------------------------------------------------------------------ */
/* Through tests/lib/tcp-fault-proxy.py (test-transport-ssh-slow.sh)  */

static const char *proxy_port, *proxy_ctl;
static char slow_root[512], slow_url[1024];

/* Send one command to the proxy; returns its answer (static). */
static const char *proxy(const char *cmd)
{
    static char reply[256];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned long long n;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ssize_t got, len = 0;

    assert_true(fd >= 0);
    assert_int_equal(vk_parse_uint(proxy_ctl, 65535, &n), 0);
    sa.sin_port = htons((uint16_t)n);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(vk_write_all(fd, cmd, strlen(cmd)), 0);
    assert_int_equal(vk_write_all(fd, "\n", 1), 0);
    while (len < (ssize_t)sizeof reply - 1 &&
           (got = read(fd, reply + len, sizeof reply - 1 - (size_t)len)) > 0)
        len += got;
    close(fd);
    reply[len] = '\0';
    return reply;
}

static void proxy_ok(const char *cmd)
{
    const char *r = proxy(cmd);

    if (strcmp(r, "ok\n") != 0)
        fail_msg("the proxy answered '%s' to '%s'", r, cmd);
}

/* A counter from the proxy's stats. */
static unsigned long proxy_stat(const char *name)
{
    const char *r = proxy("stats"), *p = strstr(r, name);
    unsigned long v = 0;

    if (!p || sscanf(p + strlen(name), " %lu", &v) != 1)
        fail_msg("no '%s' in the proxy's stats: %s", name, r);
    return v;
}

static struct transport *slow_open(unsigned int timeout_seconds)
{
    struct transport_options o = base_opts();
    struct transport *t;

    o.timeout_seconds = timeout_seconds;
    t = transport_open("slow", slow_url, &o);
    if (!t)
        fail_msg("cannot open %s: %s", slow_url, vk_error_message());
    return t;
}

/* Put MIBS mebibytes of pattern(i) per mebibyte i, 256 KiB per write;
 * run CMD at the proxy once AT_MIB mebibytes are written (at_mib < 0:
 * never).  Returns what the commit returned. */
static int put_mibs(struct transport *t, const char *key, int mibs, int at_mib, const char *cmd)
{
    struct transport_writer *w = transport_put_begin(t, key, 0);
    uint8_t *buf = malloc(MiB);
    int r = 0;

    assert_non_null(w);
    assert_non_null(buf);
    for (int i = 0; i < mibs && r == 0; i++) {
        if (i == at_mib)
            proxy_ok(cmd);
        pattern(buf, MiB, (unsigned int)i);
        for (int q = 0; q < 4 && r == 0; q++)
            r = transport_writer_write(w, buf + q * (MiB / 4), MiB / 4);
    }
    free(buf);
    if (r < 0) {
        transport_writer_abort(w);
        return -1;
    }
    return transport_writer_commit(w);
}

/* (a) 2 MB/s, 50 ms each way: a 16 MiB put completes and reads back
 * whole, sequentially and at scattered offsets. */
static void test_slow_link(void **state)
{
    struct transport *t = slow_open(10);
    uint8_t *buf = malloc(2 * MiB), back[5000];
    static const uint64_t offsets[] = {15 * MiB + 12345, 3 * MiB - 100, 7 * MiB, 1};
    uint64_t start = vk_now_ns();

    (void)state;
    assert_non_null(buf);
    proxy_ok("slow 2000000 50");
    assert_int_equal(put_mibs(t, "slow/obj", 16, -1, NULL), 0);
    print_message("16 MiB up in %.1f s\n", (double)(vk_now_ns() - start) / 1e9);
    assert_object_mibs(t, "slow/obj", 16);
    for (size_t i = 0; i < VK_ARRAY_SIZE(offsets); i++) {
        uint64_t off = offsets[i];
        pattern(buf, MiB, (unsigned int)(off / MiB));
        pattern(buf + MiB, MiB, (unsigned int)(off / MiB + 1)); /* a read may cross into it */
        assert_int_equal(transport_get_range(t, "slow/obj", off, back, sizeof back), sizeof back);
        assert_memory_equal(back, buf + off % MiB, sizeof back);
    }
    print_message("up and down in %.1f s\n", (double)(vk_now_ns() - start) / 1e9);
    assert_true(vk_now_ns() - start < 45ULL * 1000000000);
    proxy_ok("pass");
    assert_int_equal(transport_delete(t, "slow/obj"), 0);
    transport_close(t);
    free(buf);
}

/* (b) The link stalls mid-upload for longer than the I/O timeout: the put
 * fails after its attempts, naming the target and the timeout, and leaves
 * no object; its temp file goes with the next connection. */
static void test_stall(void **state)
{
    struct transport *t = slow_open(2);
    struct transport_stat st;
    unsigned long conns = proxy_stat("connections");
    uint64_t start = vk_now_ns();
    const char *msg;

    (void)state;
    proxy_ok("pass");
    assert_int_equal(put_mibs(t, "stall/obj", 12, 4, "stall"), -1);
    msg = vk_error_message();
    print_message("the put failed as expected after %.1f s: %s\n",
                  (double)(vk_now_ns() - start) / 1e9, msg);
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(msg, "target 'slow'"));
    assert_non_null(strstr(msg, "stall/obj"));
    assert_non_null(strstr(msg, "I/O timeout of 2 s"));
    assert_non_null(strstr(msg, "giving up after 5 attempts"));
    assert_true(proxy_stat("connections") >= conns + 4); /* it did try again */
    assert_true(vk_now_ns() - start < 30ULL * 1000000000);
    proxy_ok("pass");
    assert_int_equal(transport_stat(t, "stall/obj", &st), -1);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(temp_files_in(slow_root), 0);
    /* And the next put of the key works. */
    assert_int_equal(put_mibs(t, "stall/obj", 2, -1, NULL), 0);
    assert_object_mibs(t, "stall/obj", 2);
    assert_int_equal(transport_delete(t, "stall/obj"), 0);
    transport_close(t);
}

/* (c) The connection is reset mid-upload: the put resumes on a new one and
 * the object is whole. */
static void test_reset(void **state)
{
    struct transport *t = slow_open(10);
    unsigned long resets = proxy_stat("resets");

    (void)state;
    proxy_ok("pass");
    assert_int_equal(put_mibs(t, "reset/obj", 16, 3, "reset 3000000"), 0);
    assert_int_equal(proxy_stat("resets"), resets + 1);
    assert_object_mibs(t, "reset/obj", 16);
    assert_int_equal(temp_files_in(slow_root), 0);
    /* A reset during reads: the read is tried again. */
    proxy_ok("reset 100");
    assert_object_mibs(t, "reset/obj", 16);
    assert_int_equal(proxy_stat("resets"), resets + 2);
    transport_close(t);
}

static int slow_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_link),
        cmocka_unit_test(test_stall),
        cmocka_unit_test(test_reset),
    };

    proxy_port = getenv("VK_PROXY_PORT");
    proxy_ctl = getenv("VK_PROXY_CTL");
    if (!proxy_port || !proxy_ctl) {
        fprintf(stderr, "test-transport-ssh slow: run it through test-transport-ssh-slow.sh\n");
        return 77;
    }
    snprintf(slow_root, sizeof slow_root, "%s/slow", scratch);
    snprintf(slow_url, sizeof slow_url, "ssh://%s@%s:%s%s", user, host, proxy_port, slow_root);
    return cmocka_run_group_tests_name("transport-ssh-slow", tests, NULL, NULL) ? 1 : 0;
}

static int specific_run(void)
{
#define T(f) cmocka_unit_test(f)
#define S(f) cmocka_unit_test_setup_teardown(f, specific_setup, specific_teardown)
    const struct CMUnitTest tests[] = {
        T(test_host_key_changed),  T(test_host_unknown),         T(test_host_key_hashed),
        T(test_wrong_user_key),    T(test_encrypted_key),        T(test_agent),
        T(test_user_option),       T(test_connection_refused),   T(test_missing_root),
        S(test_killed_mid_upload), S(test_killed_before_commit), S(test_reconnect_idempotent),
        S(test_read_patterns),     S(test_purge_killed_put),     S(test_server_gone),
    };
#undef T
#undef S
    return cmocka_run_group_tests_name("transport-ssh", tests, NULL, NULL);
}

int main(int argc, char **argv)
{
    static struct mounts m;
    static struct transport_options opts;
    static struct contract_fixture fx = {
        .name = "contract",
        .opts = &opts,
        .make_unwritable = ssh_make_unwritable,
        .make_full = ssh_make_full,
        .restore = ssh_restore,
        .leftovers = ssh_leftovers,
        .opaque = &m,
        .full_put_bytes = 2 * MiB,
    };
    static char url[1024];
    const char *pid;
    unsigned long long n;
    int failed;

    host = getenv("VK_SSH_HOST");
    port = getenv("VK_SSH_PORT");
    user = getenv("VK_SSH_USER");
    user_key = getenv("VK_SSH_KEY");
    known_hosts = getenv("VK_SSH_KNOWN_HOSTS");
    fixtures = getenv("VK_SSH_FIXTURES");
    host_fp = getenv("VK_SSH_HOST_FP");
    scratch = getenv("VK_SCRATCH");
    pid = getenv("VK_SSHD_PID");
    if (argc > 1 && strcmp(argv[1], "slow") == 0 && host && port && user && user_key &&
        known_hosts && scratch)
        return slow_run();
    if (!host || !port || !user || !user_key || !known_hosts || !fixtures || !host_fp || !scratch ||
        !pid) {
        fprintf(stderr, "test-transport-ssh: run it through test-transport-ssh.sh\n");
        return 77;
    }
    if (vk_parse_uint(pid, INT32_MAX, &n) < 0) {
        fprintf(stderr, "test-transport-ssh: VK_SSHD_PID '%s' is not a process id\n", pid);
        return 99;
    }
    sshd_pid = (int)n;
    snprintf(contract_root, sizeof contract_root, "%s/contract", scratch);
    snprintf(specific_root, sizeof specific_root, "%s/specific", scratch);
    snprintf(url, sizeof url, "ssh://%s@%s:%s%s", user, host, port, contract_root);
    snprintf(specific_url, sizeof specific_url, "ssh://%s@%s:%s%s", user, host, port,
             specific_root);
    opts = base_opts();
    m.root = contract_root;
    fx.url = url;
    failed = transport_contract_run("transport-contract-ssh", &fx);
    ssh_restore(&m);
    failed += specific_run();
    return failed ? 1 : 0;
}
