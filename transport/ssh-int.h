/* virtkeep - the ssh:// backend's shared state (ssh.c: operations;
 * ssh-conn.c: connection, host key check, authentication, reconnects).
 *
 * One SSH session with one SFTP channel per target, used under a mutex: every
 * operation locks it.  A connection found dead marks the session broken;
 * idempotent operations then reconnect with backoff and retry.  A put in
 * flight resumes on the new connection: the bytes the server acknowledged
 * are in its temp file, the rest are still in the put's buffer.  A put that
 * gives up leaves its temp file to be removed on the next connect.
 *
 * Every blocking wait on the server is bounded by the I/O timeout: the
 * target's timeout_seconds, else the environment variable
 * VIRTKEEP_SSH_TIMEOUT (seconds), else SSH_DEFAULT_TIMEOUT_S.
 */
#ifndef VIRTKEEP_TRANSPORT_SSH_INT_H
#define VIRTKEEP_TRANSPORT_SSH_INT_H

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport/transport-int.h"

#define SSH_TMP_MARK TRANSPORT_TMP_MARK
#define SSH_ATTEMPTS 5           /* connection attempts of an operation */
#define SSH_DEFAULT_TIMEOUT_S 60 /* the I/O timeout when none is configured */
#define SSH_TIMEOUT_ENV "VIRTKEEP_SSH_TIMEOUT"
#define SSH_TIMEOUT_MAX_S 86400

/* The read handle kept open between ranged reads of one object, and what
 * it read ahead: BUF[OFF, LEN) holds the object's bytes that end at POS. */
struct ssh_reader {
    LIBSSH2_SFTP_HANDLE *h; /* NULL when none */
    char *key;
    uint64_t pos;            /* the offset the handle returns next */
    unsigned int generation; /* of the session that opened it */
    uint64_t used_ns;        /* when it was last used */
    bool deep;               /* the last read asked libssh2 to read far ahead */
    char *buf;               /* the read-ahead buffer, kept across objects */
    size_t off, len;
};

struct ssh {
    pthread_mutex_t lock;
    char *host;
    int port;
    char *hostport; /* "host:port" or "[v6]:port", for messages */
    char *user;
    char *root; /* "" (login directory), "/" or "/srv/vk" */
    char *key_file;
    char *known_hosts;
    char *passphrase_file;
    char *passphrase_env;
    char *password_file;
    long timeout_ms;

    int sock;
    LIBSSH2_SESSION *session;
    LIBSSH2_SFTP *sftp;
    unsigned int generation; /* bumped by every connect */
    bool broken;             /* the connection is dead: reconnect before use */
    bool no_fsync;           /* the server lacks fsync@openssh.com */
    char **orphans;          /* temp files to remove once connected again */
    size_t n_orphans;
    struct ssh_reader rd;
};

/* ssh-conn.c */
/* The I/O timeout in *TIMEOUT_MS: OPTION_SECONDS (the target's
 * timeout_seconds) when not 0, else ENV (the value of $VIRTKEEP_SSH_TIMEOUT,
 * NULL or "" when unset), else SSH_DEFAULT_TIMEOUT_S.  ENV must be whole
 * seconds from 1 to SSH_TIMEOUT_MAX_S; anything else fails with
 * VK_ERR_INVALID naming the variable. */
int ssh_timeout_parse(const char *env, unsigned int option_seconds, long *timeout_ms);
int ssh_conf_init(struct ssh *s, const struct transport_url *url,
                  const struct transport_options *opts);
void ssh_conf_free(struct ssh *s);
/* Connect, check the host key, authenticate, start SFTP; one attempt. */
int ssh_connect(struct ssh *s);
void ssh_disconnect(struct ssh *s);
/* A usable session: reconnects once if the last one broke. */
int ssh_ensure(struct ssh *s);
/* Sleep before attempt ATTEMPT (1, 2, ...): exponential, capped. */
void ssh_backoff(unsigned int attempt);
/* Remember a temp file left by a put whose connection died. */
void ssh_orphan_add(struct ssh *s, const char *path);
/* Why the connection failed, for messages: "no answer within the I/O
 * timeout of N s" or the library's message. */
const char *ssh_lost_reason(struct ssh *s, char *buf, size_t len);

#endif
