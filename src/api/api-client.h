/* virtkeep - the CLI's side of virtkeepd's control API (src/api.h), over
 * libcurl: HTTP on the unix socket, or on the loopback address with the
 * bearer token.
 */
#ifndef VIRTKEEP_API_CLIENT_H
#define VIRTKEEP_API_CLIENT_H

#include <stdbool.h>

struct config;
struct json_object;

struct api_endpoint {
    char *socket_path; /* unix socket, or NULL: TCP */
    char *url;         /* "http://localhost" on the socket, "http://HOST:PORT" on TCP */
    char *token;       /* TCP: the bearer token */
    char *name;        /* for messages: the socket path or the listen address */
};

struct api_client {
    struct api_endpoint ends[2]; /* tried in order until one answers */
    unsigned int count;
    long timeout_ms;
};

/* Where to reach the daemon: SOCKET when given (and nothing else); else
 * [daemon] socket (or API_DEFAULT_SOCKET), then [daemon] listen with the
 * token of [daemon] token_file when both are set and the token is
 * readable.  CFG may be NULL.  -1 on ENOMEM or an unusable listen value. */
int api_client_init(struct api_client *cl, const struct config *cfg, const char *socket,
                    unsigned int flags);
void api_client_clear(struct api_client *cl);

/* METHOD PATH ("/v1/status"); a 2xx JSON answer goes to *OUT (put it).
 * When no endpoint answers: -1 with VK_ERR_NETWORK ("virtkeepd is not
 * running ...").  An error answer: -1 with the server's message and the
 * code its HTTP status maps to (404 VK_ERR_NOT_FOUND, 400 VK_ERR_INVALID,
 * 409 VK_ERR_BUSY, 401 VK_ERR_AUTH, else VK_ERR_INTERNAL). */
int api_client_call(struct api_client *cl, const char *method, const char *path,
                    struct json_object **out);

#endif
