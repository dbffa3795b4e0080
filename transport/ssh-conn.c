/* virtkeep - the ssh:// backend: connecting, strict host key checking,
 * authentication and reconnects.
 *
 * The host key is checked against a known_hosts file (plain, hashed and
 * [host]:port entries) and an unknown or changed key is refused with its
 * SHA256 fingerprint: nothing is ever added to known_hosts here.  Secrets
 * (key passphrases, passwords) come from files readable only by their owner
 * or from environment variables; they never appear in messages and are wiped
 * after use.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "transport/ssh-int.h"

#define KEEPALIVE_SECONDS 30
#define SECRET_MAX 4096
/* The SFTP channel's receive window: enough data in flight for a fast link
 * with some latency (libssh2's default is 2 MiB). */
#define SFTP_WINDOW (16u * 1024 * 1024)

/* Ciphers and MACs: fast and sound ones only (no CBC, arcfour, 3DES, SHA-1
 * or MD5), the fastest here first.  libssh2 drops the names it does not
 * implement (1.10 has neither GCM, chacha20-poly1305 nor the -etm MACs) and
 * the server picks from what is left; the first of the list that it also
 * offers wins.  Measured on loopback with libssh2 1.10 and OpenSSL 3
 * (AES-NI, SHA-NI): aes128-ctr + hmac-sha2-256 costs the least CPU;
 * hmac-sha2-512 costs more per byte where SHA-NI computes SHA-256. */
static const char cipher_pref[] = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,"
                                  "aes256-gcm@openssh.com,aes256-ctr,aes192-ctr";
static const char mac_pref[] = "hmac-sha2-256-etm@openssh.com,hmac-sha2-256,"
                               "hmac-sha2-512-etm@openssh.com,hmac-sha2-512";

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

static void lib_init(void)
{
    lib_rc = libssh2_init(0);
}

static const char *session_msg(LIBSSH2_SESSION *session)
{
    char *msg = NULL;

    if (!session)
        return "unknown error";
    libssh2_session_last_error(session, &msg, NULL, 0);
    return msg && *msg ? msg : "unknown error";
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static char *default_user(void)
{
    struct passwd *pw = getpwuid(geteuid());

    if (!pw) {
        vk_error(VK_ERR_INVALID, "no user in the URL and none in the options, and the current "
                                 "user has no name: give ssh://USER@HOST/PATH");
        return NULL;
    }
    return vk_strdup(pw->pw_name);
}

static char *default_known_hosts(void)
{
    const char *home = getenv("HOME");
    struct passwd *pw;

    if (home && home[0] == '/')
        return vk_asprintf("%s/.ssh/known_hosts", home);
    pw = getpwuid(geteuid());
    if (pw && pw->pw_dir && pw->pw_dir[0] == '/')
        return vk_asprintf("%s/.ssh/known_hosts", pw->pw_dir);
    vk_error(VK_ERR_INVALID, "no known_hosts file is configured and HOME is not set: give "
                             "known_hosts = PATH");
    return NULL;
}

static int dup_opt(char **out, const char *value)
{
    *out = NULL;
    return !value || (*out = vk_strdup(value)) ? 0 : -1;
}

int ssh_timeout_parse(const char *env, unsigned int option_seconds, long *timeout_ms)
{
    unsigned long long secs = SSH_DEFAULT_TIMEOUT_S;

    if (option_seconds)
        secs = option_seconds;
    else if (env && *env && (vk_parse_uint(env, SSH_TIMEOUT_MAX_S, &secs) < 0 || secs == 0)) {
        vk_error(VK_ERR_INVALID, "%s='%s' is not a timeout in seconds (1 to %d)", SSH_TIMEOUT_ENV,
                 env, SSH_TIMEOUT_MAX_S);
        return -1;
    }
    *timeout_ms = (long)secs * 1000;
    return 0;
}

int ssh_conf_init(struct ssh *s, const struct transport_url *url,
                  const struct transport_options *opts)
{
    s->sock = -1;
    s->port = url->port ? url->port : 22;
    if (ssh_timeout_parse(getenv(SSH_TIMEOUT_ENV), opts->timeout_seconds, &s->timeout_ms) < 0)
        return -1;
    if (!(s->host = vk_strdup(url->host)) || !(s->root = vk_strdup(url->path)))
        return -1;
    s->hostport = strchr(s->host, ':') ? vk_asprintf("[%s]:%d", s->host, s->port)
                                       : vk_asprintf("%s:%d", s->host, s->port);
    if (!s->hostport)
        return -1;
    if (url->user || opts->user)
        s->user = vk_strdup(url->user ? url->user : opts->user);
    else
        s->user = default_user();
    if (!s->user)
        return -1;
    s->known_hosts = opts->known_hosts ? vk_strdup(opts->known_hosts) : default_known_hosts();
    if (!s->known_hosts)
        return -1;
    if (dup_opt(&s->key_file, opts->key_file) < 0 ||
        dup_opt(&s->passphrase_file, opts->passphrase_file) < 0 ||
        dup_opt(&s->passphrase_env, opts->passphrase_env) < 0 ||
        dup_opt(&s->password_file, opts->password_file) < 0)
        return -1;
    return 0;
}

void ssh_conf_free(struct ssh *s)
{
    free(s->host);
    free(s->hostport);
    free(s->user);
    free(s->root);
    free(s->key_file);
    free(s->known_hosts);
    free(s->passphrase_file);
    free(s->passphrase_env);
    free(s->password_file);
    for (size_t i = 0; i < s->n_orphans; i++)
        free(s->orphans[i]);
    free(s->orphans);
    free(s->rd.key);
    s->rd.key = NULL;
    free(s->rd.buf);
    s->rd.buf = NULL;
}

/* ------------------------------------------------------------------ */
/* Secrets                                                             */

static void secret_free(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

static void cleanup_secret(char **p)
{
    secret_free(*p);
}
#define CLEANUP_SECRET __attribute__((cleanup(cleanup_secret)))

static char *secret_check_fd(int fd, const char *what, const char *path)
{
    struct stat st;
    char *buf;
    ssize_t n;

    if (fstat(fd, &st) < 0) {
        vk_error_errno(errno, "cannot read the %s file '%s'", what, path);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        vk_error(VK_ERR_INVALID, "the %s file '%s' is not a regular file", what, path);
        return NULL;
    }
    if (st.st_mode & 077) {
        vk_error(VK_ERR_PERMISSION,
                 "the %s file '%s' is accessible by group or others (mode %04o): run "
                 "'chmod 600 %s'",
                 what, path, (unsigned int)(st.st_mode & 07777), path);
        return NULL;
    }
    if (!(buf = vk_calloc(1, SECRET_MAX + 1)))
        return NULL;
    n = read(fd, buf, SECRET_MAX + 1);
    if (n < 0 || n > SECRET_MAX) {
        if (n < 0)
            vk_error_errno(errno, "cannot read the %s file '%s'", what, path);
        else
            vk_error(VK_ERR_INVALID, "the %s file '%s' is longer than %d bytes", what, path,
                     SECRET_MAX);
        secret_free(buf);
        return NULL;
    }
    buf[strcspn(buf, "\r\n")] = '\0'; /* the first line is the secret */
    return buf;
}

/* The secret in PATH, a regular file readable only by its owner. */
static char *secret_read_file(const char *path, const char *what)
{
    CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        vk_error_errno(errno, "cannot open the %s file '%s'", what, path);
        return NULL;
    }
    return secret_check_fd(fd, what, path);
}

static char *secret_read_env(const char *name, const char *what)
{
    const char *v = getenv(name);

    if (!v) {
        vk_error(VK_ERR_AUTH, "the environment variable '%s' that should hold the %s is not set",
                 name, what);
        return NULL;
    }
    return vk_strdup(v);
}

/* ------------------------------------------------------------------ */
/* TCP                                                                 */

static int wait_connected(int fd, long timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof(int);
    int r, err = 0;

    do
        r = poll(&p, 1, (int)timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return ETIMEDOUT;
    if (r < 0)
        return errno;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

static int tcp_try(const struct addrinfo *ai, long timeout_ms, int *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    int one = 1;

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        *err = errno == EINPROGRESS ? wait_connected(fd, timeout_ms) : errno;
    else
        *err = 0;
    if (*err == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        *err = errno;
    if (*err) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
}

static int tcp_connect(struct ssh *s)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    int r, err = ECONNREFUSED, fd = -1;

    snprintf(port, sizeof port, "%d", s->port);
    r = getaddrinfo(s->host, port, &hints, &res);
    if (r != 0) {
        vk_error(VK_ERR_NETWORK, "cannot resolve host '%s': %s", s->host, gai_strerror(r));
        return -1;
    }
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = tcp_try(ai, s->timeout_ms, &err);
    freeaddrinfo(res);
    if (fd < 0 && err == ETIMEDOUT)
        vk_error(VK_ERR_NETWORK, "cannot connect to %s: no answer within the I/O timeout of %ld s",
                 s->hostport, s->timeout_ms / 1000);
    else if (fd < 0)
        vk_error(VK_ERR_NETWORK, "cannot connect to %s: %s", s->hostport, strerror(err));
    return fd;
}

/* ------------------------------------------------------------------ */
/* Host key                                                            */

static int knownhost_keybit(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
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

static const char *hostkey_type_name(int type)
{
    static const char *const names[] = {
        [LIBSSH2_HOSTKEY_TYPE_RSA] = "ssh-rsa",
        [LIBSSH2_HOSTKEY_TYPE_DSS] = "ssh-dss",
        [LIBSSH2_HOSTKEY_TYPE_ECDSA_256] = "ecdsa-sha2-nistp256",
        [LIBSSH2_HOSTKEY_TYPE_ECDSA_384] = "ecdsa-sha2-nistp384",
        [LIBSSH2_HOSTKEY_TYPE_ECDSA_521] = "ecdsa-sha2-nistp521",
        [LIBSSH2_HOSTKEY_TYPE_ED25519] = "ssh-ed25519",
    };

    if (type < 0 || (size_t)type >= VK_ARRAY_SIZE(names) || !names[type])
        return "unknown";
    return names[type];
}

/* Base64 of LEN bytes, without '=' padding when STRIP (as OpenSSH shows
 * fingerprints). */
static char *base64(const unsigned char *data, size_t len, bool strip)
{
    char *out = vk_malloc(4 * ((len + 2) / 3) + 1);
    size_t n;

    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    n = strlen(out);
    while (strip && n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    return out;
}

/* "SHA256:..." of the server's host key. */
static char *hostkey_fingerprint(LIBSSH2_SESSION *session)
{
    const char *hash = libssh2_hostkey_hash(session, LIBSSH2_HOSTKEY_HASH_SHA256);
    CLEANUP_FREE char *b64 = NULL;

    if (!hash)
        return vk_strdup("SHA256:(unavailable)");
    if (!(b64 = base64((const unsigned char *)hash, 32, true)))
        return NULL;
    return vk_asprintf("SHA256:%s", b64);
}

/* Is KEYB64 listed in an "@revoked" line? */
static bool line_revokes(const char *line, const char *keyb64)
{
    const char *p;
    size_t n = strlen(keyb64);

    if (strncmp(line, "@revoked", 8) != 0)
        return false;
    p = strstr(line, keyb64);
    return p && (p[n] == '\0' || p[n] == ' ' || p[n] == '\t' || p[n] == '\n' || p[n] == '\r');
}

/* Load the known_hosts file line by line: a line libssh2 cannot parse (a key
 * type it does not know, a marker) is skipped instead of failing the whole
 * file.  *REVOKED is set when an @revoked line lists KEYB64.  A missing file
 * is empty. */
static int known_hosts_load(struct ssh *s, LIBSSH2_KNOWNHOSTS *kh, const char *keyb64,
                            bool *revoked, bool *missing)
{
    CLEANUP_FCLOSE FILE *f = fopen(s->known_hosts, "re");
    CLEANUP_FREE char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned int lineno = 0;

    *revoked = *missing = false;
    if (!f) {
        if (errno == ENOENT) {
            *missing = true;
            return 0;
        }
        vk_error_errno(errno, "cannot read known_hosts file '%s'", s->known_hosts);
        return -1;
    }
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[0] == '#' || strspn(line, " \t\r\n") == (size_t)len)
            continue;
        if (line[0] == '@') {
            *revoked = *revoked || line_revokes(line, keyb64);
            continue;
        }
        if (libssh2_knownhost_readline(kh, line, (size_t)len, LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
            vk_debug("known_hosts file '%s': line %u skipped (not understood)", s->known_hosts,
                     lineno);
    }
    return 0;
}

static int hostkey_refuse_unknown(struct ssh *s, const char *type, const char *fp, bool missing)
{
    vk_error(VK_ERR_AUTH,
             "the host key of %s is unknown: the server offers the %s key %s, which is not in "
             "known_hosts file '%s'%s; refusing to connect.  Check this fingerprint with the "
             "server's administrator (ssh-keygen -lf on the server's host key), then add the "
             "key to '%s' yourself, e.g. with 'ssh-keyscan -p %d %s >> %s'",
             s->hostport, type, fp, s->known_hosts, missing ? " (the file does not exist)" : "",
             s->known_hosts, s->port, s->host, s->known_hosts);
    return -1;
}

static int hostkey_refuse_changed(struct ssh *s, const char *type, const char *fp)
{
    vk_error(VK_ERR_AUTH,
             "the host key of %s has CHANGED: the server offers the %s key %s, which does not "
             "match the key recorded in known_hosts file '%s'; refusing to connect (someone may "
             "be intercepting the connection).  If the server's key was replaced on purpose, "
             "check the new fingerprint with its administrator, remove the old entry with "
             "'ssh-keygen -R \"[%s]:%d\" -f %s' and add the new key",
             s->hostport, type, fp, s->known_hosts, s->host, s->port, s->known_hosts);
    return -1;
}

static int hostkey_check_with(struct ssh *s, LIBSSH2_KNOWNHOSTS *kh)
{
    size_t len;
    int type, keybit, r;
    const char *key = libssh2_session_hostkey(s->session, &len, &type);
    CLEANUP_FREE char *fp = NULL;
    CLEANUP_FREE char *keyb64 = NULL;
    bool revoked, missing;

    if (!key || (keybit = knownhost_keybit(type)) < 0) {
        vk_error(VK_ERR_AUTH, "the server %s offers a host key of a type that cannot be checked",
                 s->hostport);
        return -1;
    }
    if (!(fp = hostkey_fingerprint(s->session)) ||
        !(keyb64 = base64((const unsigned char *)key, len, false)))
        return -1;
    if (known_hosts_load(s, kh, keyb64, &revoked, &missing) < 0)
        return -1;
    if (revoked) {
        vk_error(VK_ERR_AUTH, "the host key %s of %s is marked @revoked in known_hosts file '%s'",
                 fp, s->hostport, s->known_hosts);
        return -1;
    }
    r = libssh2_knownhost_checkp(
        kh, s->host, s->port, key, len,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | keybit, NULL);
    if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
        vk_debug("host key of %s: %s %s matches '%s'", s->hostport, hostkey_type_name(type), fp,
                 s->known_hosts);
        return 0;
    }
    if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
        return hostkey_refuse_changed(s, hostkey_type_name(type), fp);
    if (r == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
        return hostkey_refuse_unknown(s, hostkey_type_name(type), fp, missing);
    vk_error(VK_ERR_AUTH, "cannot check the host key of %s against known_hosts file '%s'",
             s->hostport, s->known_hosts);
    return -1;
}

static int hostkey_check(struct ssh *s)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->session);
    int r;

    if (!kh) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    r = hostkey_check_with(s, kh);
    libssh2_knownhost_free(kh);
    return r;
}

/* ------------------------------------------------------------------ */
/* Authentication                                                      */

static bool session_dead(int rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_TIMEOUT ||
           rc == LIBSSH2_ERROR_SOCKET_TIMEOUT;
}

static int auth_failed(struct ssh *s, int rc, const char *how)
{
    if (session_dead(rc))
        vk_error(VK_ERR_NETWORK, "the connection to %s was lost during authentication: %s",
                 s->hostport, session_msg(s->session));
    else
        vk_error(VK_ERR_AUTH, "the server %s refused %s for user '%s'", s->hostport, how, s->user);
    return -1;
}

static char *key_passphrase(struct ssh *s)
{
    if (s->passphrase_file)
        return secret_read_file(s->passphrase_file, "passphrase");
    if (s->passphrase_env)
        return secret_read_env(s->passphrase_env, "passphrase");
    return vk_strdup("");
}

static int auth_key_file(struct ssh *s)
{
    CLEANUP_SECRET char *pass = NULL;
    CLEANUP_FREE char *how = NULL;
    int rc;

    if (access(s->key_file, R_OK) < 0) {
        vk_error_errno(errno, "cannot read key file '%s'", s->key_file);
        return -1;
    }
    if (!(pass = key_passphrase(s)))
        return -1;
    rc = libssh2_userauth_publickey_fromfile_ex(s->session, s->user, (unsigned int)strlen(s->user),
                                                NULL, s->key_file, pass);
    if (rc == 0)
        return 0;
    if (rc == LIBSSH2_ERROR_FILE) {
        vk_error(VK_ERR_AUTH,
                 "cannot load key file '%s': %s, or it is not a private key this build can read",
                 s->key_file,
                 *pass ? "the passphrase is wrong"
                       : "it may be encrypted (give passphrase_file or passphrase_env)");
        return -1;
    }
    how = vk_asprintf("the key in '%s'", s->key_file);
    return auth_failed(s, rc, how ? how : "the key");
}

static int auth_password(struct ssh *s)
{
    CLEANUP_SECRET char *pw = secret_read_file(s->password_file, "password");
    int rc;

    if (!pw)
        return -1;
    rc = libssh2_userauth_password_ex(s->session, s->user, (unsigned int)strlen(s->user), pw,
                                      (unsigned int)strlen(pw), NULL);
    return rc == 0 ? 0 : auth_failed(s, rc, "the password from the password file");
}

static int agent_try(struct ssh *s, LIBSSH2_AGENT *agent)
{
    struct libssh2_agent_publickey *id = NULL, *prev = NULL;

    if (libssh2_agent_connect(agent) != 0 || libssh2_agent_list_identities(agent) != 0) {
        vk_error(VK_ERR_AUTH, "cannot use the ssh-agent at '%s': %s", getenv("SSH_AUTH_SOCK"),
                 session_msg(s->session));
        return -1;
    }
    while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
        if (libssh2_agent_userauth(agent, s->user, id) == 0)
            return 0;
        prev = id;
    }
    vk_error(VK_ERR_AUTH, "the server %s refused every key of the ssh-agent for user '%s'",
             s->hostport, s->user);
    return -1;
}

static int auth_agent(struct ssh *s)
{
    LIBSSH2_AGENT *agent;
    int r;

    if (!getenv("SSH_AUTH_SOCK")) {
        vk_error(VK_ERR_AUTH, "no key_file is configured and no ssh-agent is running "
                              "(SSH_AUTH_SOCK is not set): give key_file = PATH");
        return -1;
    }
    if (!(agent = libssh2_agent_init(s->session))) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    r = agent_try(s, agent);
    libssh2_agent_disconnect(agent);
    libssh2_agent_free(agent);
    return r;
}

static int authenticate(struct ssh *s)
{
    if (s->key_file)
        return auth_key_file(s);
    if (s->password_file)
        return auth_password(s);
    return auth_agent(s);
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

static void orphans_clean(struct ssh *s)
{
    for (size_t i = 0; i < s->n_orphans; i++) {
        int rc =
            libssh2_sftp_unlink_ex(s->sftp, s->orphans[i], (unsigned int)strlen(s->orphans[i]));
        vk_debug("%s: removed the temp file '%s' of an interrupted put: %s", s->hostport,
                 s->orphans[i], rc == 0 ? "ok" : "failed");
        free(s->orphans[i]);
    }
    s->n_orphans = 0;
}

void ssh_orphan_add(struct ssh *s, const char *path)
{
    char **v = vk_realloc_array(s->orphans, s->n_orphans + 1, sizeof *v);
    char *p = vk_strdup(path);

    if (v)
        s->orphans = v;
    if (!v || !p) {
        free(p);
        return;
    }
    s->orphans[s->n_orphans++] = p;
}

const char *ssh_lost_reason(struct ssh *s, char *buf, size_t len)
{
    int rc = s->session ? libssh2_session_last_errno(s->session) : 0;

    if (rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT) {
        snprintf(buf, len, "no answer within the I/O timeout of %ld s", s->timeout_ms / 1000);
        return buf;
    }
    return session_msg(s->session);
}

/* A large receive window, keepalives well within the I/O timeout.  A
 * window that cannot grow only costs speed. */
static void session_tune(struct ssh *s)
{
    LIBSSH2_CHANNEL *ch = libssh2_sftp_get_channel(s->sftp);
    long keepalive = s->timeout_ms / 2000;
    unsigned long window = ch ? libssh2_channel_window_read_ex(ch, NULL, NULL) : 0;

    if (ch && window < SFTP_WINDOW &&
        libssh2_channel_receive_window_adjust2(ch, SFTP_WINDOW - window, 1, NULL) == 0)
        window = SFTP_WINDOW;
    if (keepalive > KEEPALIVE_SECONDS)
        keepalive = KEEPALIVE_SECONDS;
    libssh2_keepalive_config(s->session, 1, keepalive > 1 ? (unsigned int)keepalive : 1);
    vk_debug("%s: cipher %s, MAC %s, SFTP receive window %lu", s->hostport,
             libssh2_session_methods(s->session, LIBSSH2_METHOD_CRYPT_CS),
             libssh2_session_methods(s->session, LIBSSH2_METHOD_MAC_CS), window);
}

/* The names of comma-separated PREF that this libssh2 implements, in
 * PREF's order ("" when none).  libssh2_session_method_pref would drop
 * the others itself, but 1.10 does it with an overlapping memcpy. */
static char *methods_supported(struct ssh *s, int method_type, const char *pref)
{
    const char **algs = NULL;
    int n = libssh2_session_supported_algs(s->session, method_type, &algs);
    CLEANUP_STRV char **names = vk_strv_split(pref, ',');
    char *out = vk_calloc(1, strlen(pref) + 1);

    for (size_t i = 0; out && names && names[i] && n > 0; i++)
        for (int j = 0; j < n; j++)
            if (strcmp(names[i], algs[j]) == 0) {
                if (*out)
                    strcat(out, ",");
                strcat(out, names[i]);
                break;
            }
    if (algs)
        libssh2_free(s->session, algs);
    if (!names) {
        free(out);
        return NULL;
    }
    return out;
}

/* Only the methods of PREF may be used. */
static int methods_prefer(struct ssh *s, int method_type, const char *pref)
{
    CLEANUP_FREE char *ok = methods_supported(s, method_type, pref);

    if (!ok)
        return -1;
    if (*ok && libssh2_session_method_pref(s->session, method_type, ok) == 0)
        return 0;
    vk_error(VK_ERR_INTERNAL, "this libssh2 implements none of the SSH methods '%s'", pref);
    return -1;
}

static int session_start(struct ssh *s)
{
    char why[96];
    int rc;

    if (!(s->session = libssh2_session_init())) {
        vk_error(VK_ERR_INTERNAL, "out of memory");
        return -1;
    }
    libssh2_session_set_blocking(s->session, 1);
    libssh2_session_set_timeout(s->session, s->timeout_ms);
    if (methods_prefer(s, LIBSSH2_METHOD_CRYPT_CS, cipher_pref) < 0 ||
        methods_prefer(s, LIBSSH2_METHOD_CRYPT_SC, cipher_pref) < 0 ||
        methods_prefer(s, LIBSSH2_METHOD_MAC_CS, mac_pref) < 0 ||
        methods_prefer(s, LIBSSH2_METHOD_MAC_SC, mac_pref) < 0)
        return -1;
    rc = libssh2_session_handshake(s->session, s->sock);
    if (rc != 0) {
        vk_error(VK_ERR_NETWORK, "the SSH handshake with %s failed: %s", s->hostport,
                 ssh_lost_reason(s, why, sizeof why));
        return -1;
    }
    if (hostkey_check(s) < 0 || authenticate(s) < 0)
        return -1;
    if (!(s->sftp = libssh2_sftp_init(s->session))) {
        rc = libssh2_session_last_errno(s->session);
        vk_error(session_dead(rc) ? VK_ERR_NETWORK : VK_ERR_IO,
                 "cannot start SFTP on %s as user '%s': %s", s->hostport, s->user,
                 session_msg(s->session));
        return -1;
    }
    session_tune(s);
    return 0;
}

int ssh_connect(struct ssh *s)
{
    pthread_once(&lib_once, lib_init);
    if (lib_rc != 0) {
        vk_error(VK_ERR_INTERNAL, "cannot initialize libssh2");
        return -1;
    }
    if ((s->sock = tcp_connect(s)) < 0)
        return -1;
    if (session_start(s) < 0) {
        s->broken = vk_error_code() == VK_ERR_NETWORK;
        ssh_disconnect(s);
        return -1;
    }
    s->generation++;
    s->broken = false;
    vk_debug("connected to %s as '%s' (SFTP)", s->hostport, s->user);
    orphans_clean(s);
    return 0;
}

void ssh_disconnect(struct ssh *s)
{
    /* A dead connection is closed first so that the goodbyes below fail at
     * once instead of waiting for the timeout. */
    if (s->broken && s->sock >= 0)
        shutdown(s->sock, SHUT_RDWR);
    if (s->sftp)
        libssh2_sftp_shutdown(s->sftp);
    if (s->session) {
        if (!s->broken)
            libssh2_session_disconnect(s->session, "virtkeep: done");
        libssh2_session_free(s->session);
    }
    if (s->sock >= 0)
        close(s->sock);
    s->sftp = NULL;
    s->session = NULL;
    s->sock = -1;
    s->rd.h = NULL; /* it went with the session */
}

int ssh_ensure(struct ssh *s)
{
    int next;

    if (s->session && !s->broken) {
        /* Sends a keepalive only when one is due; a dead link shows here. */
        if (libssh2_keepalive_send(s->session, &next) == 0)
            return 0;
        s->broken = true;
    }
    if (s->session || s->sock >= 0) {
        s->broken = true;
        ssh_disconnect(s);
        vk_debug("reconnecting to %s", s->hostport);
    }
    return ssh_connect(s);
}

void ssh_backoff(unsigned int attempt)
{
    long ms = 100L << (attempt > 5 ? 5 : attempt - 1);
    struct timespec ts;

    if (ms > 2000)
        ms = 2000;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}
