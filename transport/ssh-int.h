/* virtkeep - the ssh:// backend's shared state (ssh.c: operations;
 * ssh-conn.c: connection, host key check, authentication, reconnects).
 *
 * One SSH session with one SFTP channel per target, used under a mutex: every
 * operation locks it.  A connection found dead marks the session broken;
 * idempotent operations then reconnect with backoff and retry, and a put in
 * flight on the dead session fails (its temp file is removed on the next
 * reconnect).
 */
#ifndef VIRTKEEP_TRANSPORT_SSH_INT_H
#define VIRTKEEP_TRANSPORT_SSH_INT_H

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <pthread.h>
#include <stdbool.h>

#include "transport/transport-int.h"

#define SSH_TMP_MARK TRANSPORT_TMP_MARK
#define SSH_ATTEMPTS 5 /* connection attempts of an idempotent operation */

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
};

/* ssh-conn.c */
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

#endif
