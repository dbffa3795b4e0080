/* virtkeep - smoke test: an SFTP round trip with libssh2.
 *
 * Usage: smoke-sftp HOST PORT USER KEY KNOWN_HOSTS REMOTE_PATH
 *
 * Connects to HOST:PORT, checks the server's host key strictly against
 * KNOWN_HOSTS (an unknown or changed key is refused), authenticates USER with
 * the private KEY (KEY.pub is the public half), writes 1 MiB to REMOTE_PATH
 * over SFTP, reads it back, compares, and removes it.
 *
 * Exit status: 0 success, 1 failure, 2 usage, 3 host key refused.
 */
#include <config.h>

#include <arpa/inet.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"

#define FILE_SIZE (1u << 20)
#define EXIT_HOSTKEY 3

struct conn {
    int sock;
    LIBSSH2_SESSION *session;
    LIBSSH2_SFTP *sftp;
};

static const char *session_error(LIBSSH2_SESSION *s)
{
    char *msg = NULL;

    libssh2_session_last_error(s, &msg, NULL, 0);
    return msg != NULL ? msg : "unknown error";
}

static int tcp_connect(const char *host, unsigned int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd;

    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "smoke-sftp: '%s' is not an IPv4 address\n", host);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
        perror("smoke-sftp: cannot connect to the SSH server");
        if (fd != -1)
            close(fd);
        return -1;
    }
    return fd;
}

static int knownhost_keybit(int hostkey_type)
{
    switch (hostkey_type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default:
        return -1;
    }
}

/* Returns 0 when the host key matches known_hosts, EXIT_HOSTKEY when it is
 * unknown or changed, 1 on other errors. */
static int check_host_key(struct conn *c, const char *host, unsigned int port, const char *file)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(c->session);
    const char *key;
    size_t len;
    int type, keybit, r, ret = 1;

    if (kh == NULL)
        return 1;
    if (libssh2_knownhost_readfile(kh, file, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
        fprintf(stderr, "smoke-sftp: cannot read known_hosts '%s'\n", file);
        goto out;
    }
    key = libssh2_session_hostkey(c->session, &len, &type);
    keybit = knownhost_keybit(type);
    if (key == NULL || keybit == -1) {
        fprintf(stderr, "smoke-sftp: unsupported host key type %d\n", type);
        goto out;
    }
    r = libssh2_knownhost_checkp(
        kh, host, (int)port, key, len,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | keybit, NULL);
    if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
        ret = 0;
    } else if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
        fprintf(stderr, "smoke-sftp: host key of [%s]:%u does not match '%s': refused\n", host,
                port, file);
        ret = EXIT_HOSTKEY;
    } else if (r == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND) {
        fprintf(stderr, "smoke-sftp: host [%s]:%u is not in '%s': refused\n", host, port, file);
        ret = EXIT_HOSTKEY;
    } else {
        fprintf(stderr, "smoke-sftp: cannot check the host key of [%s]:%u\n", host, port);
    }
out:
    libssh2_knownhost_free(kh);
    return ret;
}

static int sftp_write_file(struct conn *c, const char *path, const unsigned char *buf, size_t len)
{
    LIBSSH2_SFTP_HANDLE *h;
    size_t done = 0;

    h = libssh2_sftp_open(c->sftp, path, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
                          0600);
    if (h == NULL) {
        fprintf(stderr, "smoke-sftp: cannot create '%s': %s\n", path, session_error(c->session));
        return -1;
    }
    while (done < len) {
        ssize_t n = libssh2_sftp_write(h, (const char *)buf + done, len - done);

        if (n <= 0) {
            fprintf(stderr, "smoke-sftp: cannot write '%s': %s\n", path, session_error(c->session));
            libssh2_sftp_close(h);
            return -1;
        }
        done += (size_t)n;
    }
    if (libssh2_sftp_close(h) != 0) {
        fprintf(stderr, "smoke-sftp: cannot close '%s': %s\n", path, session_error(c->session));
        return -1;
    }
    return 0;
}

/* Read the whole file into buf (capacity cap); returns its length or -1. */
static ssize_t sftp_read_file(struct conn *c, const char *path, unsigned char *buf, size_t cap)
{
    LIBSSH2_SFTP_HANDLE *h = libssh2_sftp_open(c->sftp, path, LIBSSH2_FXF_READ, 0);
    size_t done = 0;
    ssize_t n;

    if (h == NULL) {
        fprintf(stderr, "smoke-sftp: cannot open '%s': %s\n", path, session_error(c->session));
        return -1;
    }
    while ((n = libssh2_sftp_read(h, (char *)buf + done, cap - done)) > 0) {
        done += (size_t)n;
        if (done == cap)
            break;
    }
    libssh2_sftp_close(h);
    if (n < 0) {
        fprintf(stderr, "smoke-sftp: cannot read '%s': %s\n", path, session_error(c->session));
        return -1;
    }
    return (ssize_t)done;
}

static void fill_pattern(unsigned char *buf, size_t len)
{
    uint32_t x = 2463534242u;
    size_t i;

    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

static int round_trip(struct conn *c, const char *path)
{
    CLEANUP_FREE unsigned char *out = vk_malloc(FILE_SIZE);
    CLEANUP_FREE unsigned char *in = vk_malloc(FILE_SIZE + 1);
    LIBSSH2_SFTP_ATTRIBUTES attrs;
    ssize_t got;

    if (out == NULL || in == NULL)
        return -1;
    fill_pattern(out, FILE_SIZE);
    if (sftp_write_file(c, path, out, FILE_SIZE) == -1)
        return -1;
    got = sftp_read_file(c, path, in, FILE_SIZE + 1);
    if (got == -1)
        return -1;
    if (got != FILE_SIZE || memcmp(in, out, FILE_SIZE) != 0) {
        fprintf(stderr, "smoke-sftp: '%s' read back %zd bytes that differ from those written\n",
                path, got);
        return -1;
    }
    if (libssh2_sftp_unlink(c->sftp, path) != 0) {
        fprintf(stderr, "smoke-sftp: cannot remove '%s': %s\n", path, session_error(c->session));
        return -1;
    }
    if (libssh2_sftp_stat(c->sftp, path, &attrs) == 0) {
        fprintf(stderr, "smoke-sftp: '%s' still exists after removal\n", path);
        return -1;
    }
    return 0;
}

static int run(struct conn *c, char **argv)
{
    CLEANUP_FREE char *pubkey = NULL;
    unsigned long long port;
    int r;

    if (vk_parse_uint(argv[2], 65535, &port) == -1) {
        fprintf(stderr, "smoke-sftp: port '%s' is not a number\n", argv[2]);
        return 1;
    }
    c->sock = tcp_connect(argv[1], (unsigned int)port);
    if (c->sock == -1)
        return 1;
    c->session = libssh2_session_init();
    if (c->session == NULL || libssh2_session_handshake(c->session, c->sock) != 0) {
        fprintf(stderr, "smoke-sftp: SSH handshake with [%s]:%llu failed\n", argv[1], port);
        return 1;
    }
    r = check_host_key(c, argv[1], (unsigned int)port, argv[5]);
    if (r != 0)
        return r;
    pubkey = vk_asprintf("%s.pub", argv[4]);
    if (pubkey == NULL)
        return 1;
    if (libssh2_userauth_publickey_fromfile(c->session, argv[3], pubkey, argv[4], NULL) != 0) {
        fprintf(stderr, "smoke-sftp: public key authentication of '%s' failed: %s\n", argv[3],
                session_error(c->session));
        return 1;
    }
    c->sftp = libssh2_sftp_init(c->session);
    if (c->sftp == NULL) {
        fprintf(stderr, "smoke-sftp: cannot start SFTP: %s\n", session_error(c->session));
        return 1;
    }
    if (round_trip(c, argv[6]) == -1)
        return 1;
    printf("smoke-sftp: %u bytes written, read back and removed at '%s'\n", FILE_SIZE, argv[6]);
    return 0;
}

int main(int argc, char **argv)
{
    struct conn c = {.sock = -1};
    int r;

    if (argc != 7) {
        fprintf(stderr, "usage: smoke-sftp HOST PORT USER KEY KNOWN_HOSTS REMOTE_PATH\n");
        return 2;
    }
    if (libssh2_init(0) != 0) {
        fprintf(stderr, "smoke-sftp: cannot initialize libssh2\n");
        return 1;
    }
    r = run(&c, argv);
    if (c.sftp != NULL)
        libssh2_sftp_shutdown(c.sftp);
    if (c.session != NULL) {
        libssh2_session_disconnect(c.session, "done");
        libssh2_session_free(c.session);
    }
    if (c.sock != -1)
        close(c.sock);
    libssh2_exit();
    return r;
}
