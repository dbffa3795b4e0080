/* virtkeep - the PostgreSQL backend of the catalog (libpq).
 *
 * Selected by a postgresql:// (or postgres://) URL, which goes to libpq as
 * it is (its query parameters too: sslmode, sslrootcert, passfile, service,
 * connect_timeout ...), except for one parameter of ours:
 *
 *   password_file=/PATH   a file holding the password on its first line;
 *                         it must be a regular file of ours, mode 0600 or
 *                         stricter
 *
 * The password is never taken from the URL itself (user:password@ and
 * password= are refused without repeating them): it comes from that file,
 * from libpq's own password file (passfile=, PGPASSFILE, ~/.pgpass) or its
 * service file, so it is never on a command line or in a log.
 *
 * Statements are sent with PQexecParams, their parameters typed (text,
 * int8, float8) and in text form; the whole result is read at once.  The
 * portable SQL of the other files is translated here (catalog-int.h):
 * ?N -> $N, instr( -> strpos(, and the schema's SQLite type names.
 *
 * A dropped connection (server restart, pg_terminate_backend, network):
 *   - outside a transaction, a statement that cannot have been applied (a
 *     read, or one the server refused because it was shutting the session
 *     down, SQLSTATE 57P01-57P03) is retried once on a new connection; any
 *     other fails with a message saying it may or may not have been
 *     applied, and the next statement reconnects;
 *   - inside catalog_begin(), the server has rolled the transaction back:
 *     the statement fails saying so, and so does every statement until the
 *     caller's catalog_rollback(); then the next catalog_begin() reconnects
 *     and the caller retries the whole transaction.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

/* Type OIDs (server/catalog/pg_type_d.h, stable). */
#define OID_INT8 20
#define OID_TEXT 25
#define OID_FLOAT8 701

#define MAX_PARAMS 32
#define PASSWORD_MAX 1024

struct pg {
    PGconn *conn;
    char *url;       /* the URL for libpq: ours without password_file */
    char *password;  /* from password_file, or NULL (libpq finds its own) */
    bool tx_lost;    /* the connection went away inside catalog_begin() */
    bool committing; /* COMMIT is on its way */
};

#define PG(cat) ((struct pg *)(cat)->db)
#define RES(stmt) ((PGresult *)(stmt)->handle)

/* ---- the URL and the password file ------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode N bytes of S. */
static char *url_decode(const char *s, size_t n)
{
    char *out = vk_calloc(1, n + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    return out;
}

/* Read the password from PATH: a regular file owned by us, not accessible
 * by group or others; its first line, without the newline. */
static char *read_password_file(const char *url, const char *path)
{
    char buf[PASSWORD_MAX + 2];
    struct stat st;
    ssize_t n;
    size_t len = 0;
    char *pw;
    int fd;

    if (path[0] != '/') {
        vk_error(VK_ERR_INVALID, "catalog '%s': password_file '%s' is not an absolute path", url,
                 path);
        return NULL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1) {
        vk_error_errno(errno, "catalog '%s': cannot open password file '%s'", url, path);
        return NULL;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        vk_error(VK_ERR_INVALID, "catalog '%s': password file '%s' is not a regular file", url,
                 path);
        close(fd);
        return NULL;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077)) {
        vk_error(VK_ERR_PERMISSION,
                 "catalog '%s': password file '%s' must belong to this user and be readable by "
                 "no one else (mode %04o): run 'chmod 600 %s'",
                 url, path, (unsigned int)(st.st_mode & 07777), path);
        close(fd);
        return NULL;
    }
    while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) != 0) {
        if (n == -1) {
            if (errno == EINTR)
                continue;
            vk_error_errno(errno, "catalog '%s': cannot read password file '%s'", url, path);
            close(fd);
            explicit_bzero(buf, sizeof buf);
            return NULL;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0] || strlen(buf) > PASSWORD_MAX) {
        vk_error(VK_ERR_INVALID, "catalog '%s': password file '%s' %s", url, path,
                 buf[0] ? "holds a line that is too long" : "is empty");
        explicit_bzero(buf, sizeof buf);
        return NULL;
    }
    pw = vk_strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return pw;
}

/* Split URL into what libpq gets (without password_file=) and the password
 * file, refusing a password written in the URL. */
static int parse_url(const char *url, char **libpq_url, char **password_file)
{
    const char *auth = strstr(url, "://") + 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', auth_len);
    const char *q = strchr(url, '?');
    FILE *out;
    char *buf = NULL;
    size_t size = 0;
    bool first = true;

    *libpq_url = NULL;
    *password_file = NULL;
    if (at && memchr(auth, ':', (size_t)(at - auth))) {
        vk_error(VK_ERR_INVALID,
                 "catalog URL '%.*s...' holds a password: put it in a 0600 file "
                 "(password_file=/PATH, or libpq's PGPASSFILE or service file) instead",
                 (int)(auth - url), url);
        return -1;
    }
    out = open_memstream(&buf, &size);
    if (!out) {
        vk_error_errno(errno, "cannot parse catalog URL");
        return -1;
    }
    fwrite(url, 1, q ? (size_t)(q - url) : strlen(url), out);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        size_t len = strcspn(p, "&");
        size_t key_len = strcspn(p, "=");

        if (key_len > len)
            key_len = len;
        if (key_len == 8 && strncmp(p, "password", 8) == 0) {
            fclose(out);
            free(buf);
            free(*password_file);
            *password_file = NULL;
            vk_error(VK_ERR_INVALID,
                     "catalog URL '%.*s' holds a password (password=): put it in a 0600 file "
                     "(password_file=/PATH, or libpq's PGPASSFILE or service file) instead",
                     (int)(q - url), url);
            return -1;
        }
        if (key_len == 13 && strncmp(p, "password_file", 13) == 0) {
            free(*password_file);
            *password_file = key_len < len ? url_decode(p + 14, len - 14) : vk_strdup("");
        } else if (len) {
            fputc(first ? '?' : '&', out);
            fwrite(p, 1, len, out);
            first = false;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    if (fclose(out) != 0 || !buf) {
        free(buf);
        free(*password_file);
        *password_file = NULL;
        vk_error(VK_ERR_INTERNAL, "out of memory parsing catalog URL");
        return -1;
    }
    *libpq_url = buf;
    return 0;
}

/* ---- errors -------------------------------------------------------------- */

static enum vk_error_code code_from_sqlstate(const char *state)
{
    if (!state)
        return VK_ERR_NETWORK;
    if (strncmp(state, "23", 2) == 0)
        return VK_ERR_INVALID;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
        return VK_ERR_BUSY;
    if (strcmp(state, "53100") == 0)
        return VK_ERR_NO_SPACE;
    if (strcmp(state, "42501") == 0)
        return VK_ERR_PERMISSION;
    if (strncmp(state, "28", 2) == 0)
        return VK_ERR_AUTH;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0)
        return VK_ERR_NETWORK;
    return VK_ERR_INTERNAL;
}

static enum catalog_fault fault_from_sqlstate(const char *state)
{
    if (state && strcmp(state, "23505") == 0)
        return CATALOG_FAULT_UNIQUE;
    if (state && strcmp(state, "23503") == 0)
        return CATALOG_FAULT_FOREIGN_KEY;
    return CATALOG_FAULT_OTHER;
}

/* libpq's message, on one line: no trailing newline, later lines joined. */
static char *one_line(const char *msg)
{
    char *s = vk_strdup(msg && *msg ? msg : "unknown error");
    size_t n;

    if (!s)
        return NULL;
    for (char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    }
    n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

static int res_error(struct catalog *cat, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    CLEANUP_FREE char *msg = one_line(primary ? primary : PQerrorMessage(PG(cat)->conn));

    cat->fault = fault_from_sqlstate(state);
    vk_error(code_from_sqlstate(state), "catalog '%s': %s", cat->path, msg ? msg : "error");
    return -1;
}

/* ---- the connection ------------------------------------------------------ */

static void notice(void *opaque, const char *message)
{
    struct catalog *cat = opaque;
    CLEANUP_FREE char *msg = one_line(message);

    vk_debug("catalog '%s': %s", cat->path, msg ? msg : "");
}

static int pg_open_conn(struct catalog *cat)
{
    struct pg *pg = PG(cat);
    const char *keys[8], *vals[8];
    CLEANUP_FREE char *msg = NULL;
    int n = 0;

    /* Before dbname, so that the URL can override them; the password
     * after, where the URL cannot have one. */
    keys[n] = "application_name", vals[n++] = "virtkeep";
    keys[n] = "connect_timeout", vals[n++] = "10";
    keys[n] = "client_encoding", vals[n++] = "UTF8";
    keys[n] = "dbname", vals[n++] = pg->url;
    if (pg->password)
        keys[n] = "password", vals[n++] = pg->password;
    keys[n] = NULL, vals[n] = NULL;

    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (!pg->conn) {
        vk_error(VK_ERR_INTERNAL, "cannot connect to catalog '%s': out of memory", cat->path);
        return -1;
    }
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        msg = one_line(PQerrorMessage(pg->conn));
        vk_error(msg && (strstr(msg, "password") || strstr(msg, "authentication")) ? VK_ERR_AUTH
                                                                                   : VK_ERR_NETWORK,
                 "cannot connect to catalog '%s': %s", cat->path, msg ? msg : "");
        PQfinish(pg->conn);
        pg->conn = NULL;
        return -1;
    }
    PQsetNoticeProcessor(pg->conn, notice, cat);
    return 0;
}

static bool conn_bad(struct pg *pg)
{
    return !pg->conn || PQstatus(pg->conn) == CONNECTION_BAD;
}

static bool readable(PGconn *conn)
{
    struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};

    return p.fd >= 0 && poll(&p, 1, 0) == 1;
}

static int lost_in_tx(struct catalog *cat, const char *why)
{
    CLEANUP_FREE char *msg = one_line(why);

    PG(cat)->tx_lost = true;
    cat->fault = CATALOG_FAULT_OTHER;
    vk_error(VK_ERR_NETWORK,
             "catalog '%s': the connection to the server was lost in the middle of a transaction, "
             "which the server rolled back (%s): roll it back and retry it",
             cat->path, msg ? msg : "");
    return -1;
}

/* Before a statement: a transaction lost with its connection stays lost
 * until the caller rolls back; otherwise a dead connection is replaced.  A
 * connection the server ended while it was idle (a restart, an idle
 * timeout, pg_terminate_backend) shows it in what it already sent: read
 * that first, so that such a connection is replaced before a statement is
 * sent on it. */
static int ensure_conn(struct catalog *cat)
{
    struct pg *pg = PG(cat);

    if (pg->tx_lost && cat->in_tx) {
        vk_error(VK_ERR_NETWORK,
                 "catalog '%s': the connection was lost in the middle of this transaction, "
                 "which the server rolled back: roll it back and retry it",
                 cat->path);
        return -1;
    }
    pg->tx_lost = false;
    /* Nothing is in flight: anything readable was sent unasked (the
     * server's farewell, then the end of the stream). */
    for (int i = 0; i < 8 && !conn_bad(pg) && readable(pg->conn); i++) {
        if (!PQconsumeInput(pg->conn))
            vk_debug("catalog '%s': the server ended the connection", cat->path);
    }
    if (!conn_bad(pg))
        return 0;
    if (cat->in_tx)
        return lost_in_tx(cat, pg->conn ? PQerrorMessage(pg->conn) : "no connection");
    vk_debug("catalog '%s': reconnecting", cat->path);
    return pg_open_conn(cat);
}

/* ---- SQL translation ----------------------------------------------------- */

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Does S start with the words of WORDS (single spaces between them in
 * WORDS, any white space in S)?  Returns the length matched, or 0. */
static size_t match_words(const char *s, const char *words)
{
    const char *p = s;

    for (const char *w = words; *w;) {
        if (*w == ' ') {
            if (*p != ' ' && *p != '\n' && *p != '\t')
                return 0;
            while (*p == ' ' || *p == '\n' || *p == '\t')
                p++;
            w++;
            continue;
        }
        if (*p != *w)
            return 0;
        p++, w++;
    }
    return word_char(*p) ? 0 : (size_t)(p - s);
}

/* The portable SQL of catalog/ in PostgreSQL's dialect.  DDL: also map the
 * schema's type names. */
static char *translate(const char *sql, bool ddl)
{
    static const struct {
        const char *from, *to;
    } types[] = {
        {"INTEGER PRIMARY KEY AUTOINCREMENT",
         "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
        {"INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
        {"INTEGER", "BIGINT"},
        {"REAL", "DOUBLE PRECISION"},
        {"TEXT", "TEXT COLLATE \"C\""},
    };
    char *buf = NULL;
    size_t size = 0, n;
    FILE *out = open_memstream(&buf, &size);
    const char *p = sql;

    if (!out)
        return NULL;
    while (*p) {
        if (*p == '\'' || *p == '"') {
            /* A literal or a quoted name, copied as it is ('' inside). */
            char quote = *p;
            const char *end = p + 1;

            while (*end && !(*end == quote && end[1] != quote)) {
                if (*end == quote)
                    end++;
                end++;
            }
            if (*end)
                end++;
            fwrite(p, 1, (size_t)(end - p), out);
            p = end;
        } else if (*p == '?' && p[1] >= '0' && p[1] <= '9') {
            fputc('$', out);
            p++;
        } else if (word_char(*p)) {
            const char *start = p;
            bool done = false;

            while (word_char(*p))
                p++;
            n = (size_t)(p - start);
            if (n == 5 && strncasecmp(start, "instr", 5) == 0 && *p == '(') {
                fputs("strpos", out);
                continue;
            }
            for (size_t i = 0; ddl && !done && i < VK_ARRAY_SIZE(types); i++) {
                size_t m = match_words(start, types[i].from);

                if (m) {
                    fputs(types[i].to, out);
                    p = start + m;
                    done = true;
                }
            }
            if (!done)
                fwrite(start, 1, n, out);
        } else {
            fputc(*p++, out);
        }
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- statements ---------------------------------------------------------- */

/* Was the statement surely not applied, so that it can run again?  A read,
 * or one that the server refused because it was ending the session. */
static bool safe_to_retry(const char *sql, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    while (*sql == ' ' || *sql == '\n')
        sql++;
    if (strncasecmp(sql, "SELECT", 6) == 0 || strncasecmp(sql, "BEGIN", 5) == 0)
        return true;
    return state && strncmp(state, "57P0", 4) == 0;
}

/* The connection went during a statement outside the cases a caller can
 * retry: record it (DURING and TAIL complete the message) and free RES. */
static void conn_lost_error(struct catalog *cat, PGresult *res, const char *during,
                            const char *tail)
{
    CLEANUP_FREE char *msg = one_line(PQerrorMessage(PG(cat)->conn));

    PQclear(res);
    cat->fault = CATALOG_FAULT_OTHER;
    vk_error(VK_ERR_NETWORK, "catalog '%s': the connection to the server was lost%s (%s)%s",
             cat->path, during, msg ? msg : "", tail);
}

/* Run translated SQL with its parameters.  Returns the result of a
 * successful statement, or NULL with the error recorded. */
static PGresult *run(struct catalog *cat, const char *sql, size_t n,
                     const struct catalog_value *vals)
{
    struct pg *pg = PG(cat);
    char text[MAX_PARAMS][32];
    const char *values[MAX_PARAMS];
    Oid types[MAX_PARAMS];
    PGresult *res;
    ExecStatusType status;
    if (n > MAX_PARAMS) {
        vk_error(VK_ERR_INTERNAL, "catalog '%s': too many parameters", cat->path);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        switch (vals[i].type) {
        case 't':
            types[i] = OID_TEXT;
            values[i] = vals[i].u.s;
            break;
        case 'i':
            types[i] = OID_INT8;
            snprintf(text[i], sizeof text[i], "%" PRId64, vals[i].u.i);
            values[i] = text[i];
            break;
        default:
            types[i] = OID_FLOAT8;
            snprintf(text[i], sizeof text[i], "%.17g", vals[i].u.d);
            values[i] = text[i];
            break;
        }
    }
    for (int attempt = 0;; attempt++) {
        if (ensure_conn(cat) == -1)
            return NULL;
        /* Without parameters, PQexec: a script may hold several statements. */
        res = n ? PQexecParams(pg->conn, sql, (int)n, types, values, NULL, NULL, 0)
                : PQexec(pg->conn, sql);
        status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
            return res;
        if (!conn_bad(pg)) {
            res_error(cat, res);
            PQclear(res);
            return NULL;
        }
        /* The connection is gone. */
        if (cat->in_tx && pg->committing) {
            /* The server may have committed before the connection went. */
            pg->tx_lost = true;
            conn_lost_error(cat, res, " during COMMIT",
                            ": the transaction may or may not have been committed");
            return NULL;
        }
        if (cat->in_tx) {
            PQclear(res);
            lost_in_tx(cat, PQerrorMessage(pg->conn));
            return NULL;
        }
        if (attempt == 0 && safe_to_retry(sql, res)) {
            vk_debug("catalog '%s': the connection was lost, retrying once", cat->path);
            PQclear(res);
            continue;
        }
        conn_lost_error(cat, res, "", "; the change may or may not have been made");
        return NULL;
    }
}

static struct catalog_stmt *pg_prepare(struct catalog *cat, const char *sql, size_t n,
                                       const struct catalog_value *vals)
{
    CLEANUP_FREE char *text = translate(sql, false);
    struct catalog_stmt *stmt;
    PGresult *res;

    if (!text) {
        vk_error(VK_ERR_INTERNAL, "catalog '%s': out of memory", cat->path);
        return NULL;
    }
    res = run(cat, text, n, vals);
    if (!res)
        return NULL;
    stmt = vk_calloc(1, sizeof *stmt);
    if (!stmt) {
        PQclear(res);
        return NULL;
    }
    stmt->cat = cat;
    stmt->handle = res;
    stmt->row = -1;
    stmt->rows = PQntuples(res);
    stmt->changes = strtoll(PQcmdTuples(res), NULL, 10);
    return stmt;
}

static int pg_step(struct catalog_stmt *stmt)
{
    if (stmt->row < stmt->rows)
        stmt->row++;
    return stmt->row < stmt->rows ? 1 : 0;
}

static int64_t pg_changes(struct catalog_stmt *stmt)
{
    return stmt->changes;
}

static const char *pg_column_text(struct catalog_stmt *stmt, int col)
{
    if (stmt->row < 0 || stmt->row >= stmt->rows || col >= PQnfields(RES(stmt)) ||
        PQgetisnull(RES(stmt), stmt->row, col))
        return NULL;
    return PQgetvalue(RES(stmt), stmt->row, col);
}

static double pg_column_double(struct catalog_stmt *stmt, int col)
{
    const char *s = pg_column_text(stmt, col);

    return s ? strtod(s, NULL) : 0;
}

static int64_t pg_column_int(struct catalog_stmt *stmt, int col)
{
    const char *s = pg_column_text(stmt, col);

    if (!s)
        return 0;
    if (strpbrk(s, ".eE"))
        return (int64_t)strtod(s, NULL);
    return strtoll(s, NULL, 10);
}

static void pg_finalize(struct catalog_stmt *stmt)
{
    PQclear(RES(stmt));
    free(stmt);
}

/* A script without parameters (PQexec runs several statements). */
static int exec_script(struct catalog *cat, const char *script)
{
    PGresult *res = run(cat, script, 0, NULL);

    PQclear(res);
    return res ? 0 : -1;
}

static int pg_exec_schema(struct catalog *cat, const char *script)
{
    CLEANUP_FREE char *text = translate(script, true);

    if (!text) {
        vk_error(VK_ERR_INTERNAL, "catalog '%s': out of memory", cat->path);
        return -1;
    }
    return exec_script(cat, text);
}

/* ---- transactions -------------------------------------------------------- */

static int pg_begin(struct catalog *cat)
{
    /* One explicit transaction at a time across every client, as SQLite's
     * BEGIN IMMEDIATE gives: callers read then write inside one.  One
     * round trip, retried as a whole when the connection was lost. */
    return exec_script(cat, "BEGIN; SELECT pg_advisory_xact_lock(1447773012)");
}

static int pg_begin_rows(struct catalog *cat)
{
    /* Row locks only: claimers of different leases run side by side, and
     * SKIP LOCKED passes over a row another claimer is deciding on. */
    return exec_script(cat, "BEGIN");
}

_Static_assert(CATALOG_APPLICATION_ID == 1447773012, "the advisory lock is the application id");

static int pg_commit(struct catalog *cat)
{
    PGresult *res;
    bool rolled_back;

    PG(cat)->committing = true;
    res = run(cat, "COMMIT", 0, NULL);
    PG(cat)->committing = false;
    if (!res)
        return -1;
    /* COMMIT of a transaction in which a statement failed rolls back. */
    rolled_back = strcmp(PQcmdStatus(res), "ROLLBACK") == 0;
    PQclear(res);
    if (rolled_back) {
        vk_error(VK_ERR_INVALID,
                 "catalog '%s': the transaction was rolled back: a statement in it failed",
                 cat->path);
        return -1;
    }
    return 0;
}

static void pg_rollback(struct catalog *cat)
{
    struct pg *pg = PG(cat);

    pg->tx_lost = false;
    /* Keep the error that made the caller roll back. */
    if (!conn_bad(pg) && PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
        PQclear(PQexec(pg->conn, "ROLLBACK"));
}

/* ---- schema state -------------------------------------------------------- */

static int pg_schema_read(struct catalog *cat, struct catalog_schema_state *st)
{
    CLEANUP_STMT struct catalog_stmt *stmt = NULL;
    bool ours;

    stmt = catalog_sql_prepare(cat,
                               "SELECT (SELECT count(*) FROM pg_catalog.pg_class c "
                               "  JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace "
                               "  WHERE s.nspname = current_schema()), "
                               "CASE WHEN to_regclass(quote_ident(current_schema()) || "
                               "  '.virtkeep_schema') IS NULL THEN 0 ELSE 1 END",
                               NULL);
    if (!stmt || catalog_sql_step(cat, stmt) != 1)
        return -1;
    st->objects = catalog_sql_int(stmt, 0);
    ours = catalog_sql_int(stmt, 1) == 1;
    st->app_id = 0;
    st->version = 0;
    if (!ours)
        return 0;
    catalog_sql_finalize(&stmt);
    stmt = catalog_sql_prepare(cat, "SELECT application_id, version FROM virtkeep_schema", NULL);
    if (!stmt || catalog_sql_step(cat, stmt) == -1)
        return -1;
    if (stmt->rows != 1) {
        vk_error(VK_ERR_CORRUPT, "catalog '%s' is damaged: table virtkeep_schema has %d rows",
                 cat->path, stmt->rows);
        return -1;
    }
    st->app_id = catalog_sql_int(stmt, 0);
    st->version = catalog_sql_int(stmt, 1);
    return 0;
}

static int pg_schema_write(struct catalog *cat, int64_t version)
{
    if (version == 1 && exec_script(cat, "CREATE TABLE virtkeep_schema ("
                                         "  application_id BIGINT NOT NULL,"
                                         "  version BIGINT NOT NULL)") == -1)
        return -1;
    if (version == 1)
        return catalog_sql_run(cat, "INSERT INTO virtkeep_schema VALUES(?1, 1)", "i",
                               (int64_t)CATALOG_APPLICATION_ID) == 1
                   ? 0
                   : -1;
    return catalog_sql_run(cat, "UPDATE virtkeep_schema SET version = ?1", "i", version) == 1 ? 0
                                                                                              : -1;
}

/* ---- open and close ------------------------------------------------------ */

static void pg_disconnect(struct catalog *cat)
{
    struct pg *pg = PG(cat);

    if (!pg)
        return;
    if (pg->conn)
        PQfinish(pg->conn);
    if (pg->password) {
        explicit_bzero(pg->password, strlen(pg->password));
        free(pg->password);
    }
    free(pg->url);
    free(pg);
    cat->db = NULL;
}

static int pg_connect(struct catalog *cat, unsigned int flags)
{
    CLEANUP_FREE char *password_file = NULL;
    struct catalog_schema_state st;
    struct pg *pg = vk_calloc(1, sizeof *pg);

    if (!pg)
        return -1;
    cat->db = pg;
    if (parse_url(cat->path, &pg->url, &password_file) == -1)
        return -1;
    if (password_file && !(pg->password = read_password_file(cat->path, password_file)))
        return -1;
    if (pg_open_conn(cat) == -1)
        return -1;
    if (flags & CATALOG_OPEN_EXISTING) {
        if (pg_schema_read(cat, &st) == -1)
            return -1;
        if (st.version == 0) {
            vk_error(VK_ERR_NOT_FOUND, "catalog '%s' does not exist (the database has no %s)",
                     cat->path, "virtkeep catalog");
            return -1;
        }
    }
    return catalog_schema_migrate(cat);
}

const struct catalog_backend catalog_backend_pg = {
    .name = "postgresql",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .prepare = pg_prepare,
    .step = pg_step,
    .changes = pg_changes,
    .column_text = pg_column_text,
    .column_int = pg_column_int,
    .column_double = pg_column_double,
    .finalize = pg_finalize,
    .exec_schema = pg_exec_schema,
    .begin = pg_begin,
    .begin_rows = pg_begin_rows,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .schema_read = pg_schema_read,
    .schema_write = pg_schema_write,
};
