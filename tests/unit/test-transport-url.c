/* Unit tests of target URL parsing, key validation and the backend
 * registry: good input gives the expected fields, garbage a clear error. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "transport/transport-int.h"
#include "transport/transport.h"

struct good_url {
    const char *url;
    const char *scheme, *user, *host;
    int port;
    const char *path, *query;
};

static void assert_str_or_null(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

static void test_url_good(void **state)
{
    static const struct good_url cases[] = {
        {"file:///var/backups/vk", "file", NULL, NULL, 0, "/var/backups/vk", NULL},
        {"file:///var/backups/vk/", "file", NULL, NULL, 0, "/var/backups/vk", NULL},
        {"file:///", "file", NULL, NULL, 0, "/", NULL},
        {"FILE://localhost/srv/a%20b%2Fc", "file", NULL, NULL, 0, "/srv/a b/c", NULL},
        {"/var/backups", "file", NULL, NULL, 0, "/var/backups", NULL},
        {"/var/50%/x?y#z//", "file", NULL, NULL, 0, "/var/50%/x?y#z", NULL},
        {"ssh://user@host:2222/srv/vk", "ssh", "user", "host", 2222, "/srv/vk", NULL},
        {"ssh://backup.example.com/srv", "ssh", NULL, "backup.example.com", 0, "/srv", NULL},
        {"ssh://host", "ssh", NULL, "host", 0, "", NULL},
        {"ssh://host:1/", "ssh", NULL, "host", 1, "/", NULL},
        {"ssh://u@[::1]:65535/x", "ssh", "u", "::1", 65535, "/x", NULL},
        {"ssh://[fe80::1%25eth0]/x", "ssh", NULL, "fe80::1%eth0", 0, "/x", NULL},
        {"ssh://[2001:db8::7]/", "ssh", NULL, "2001:db8::7", 0, "/", NULL},
        {"ssh://us%40er@10.0.0.1/p%3Fq", "ssh", "us@er", "10.0.0.1", 0, "/p?q", NULL},
        {"s3://bucket/prefix?endpoint=http://127.0.0.1:4568&region=us-east-1", "s3", NULL, "bucket",
         0, "prefix", "endpoint=http://127.0.0.1:4568&region=us-east-1"},
        {"s3://bucket", "s3", NULL, "bucket", 0, "", NULL},
        {"s3://my.bucket-1//a/b/", "s3", NULL, "my.bucket-1", 0, "a/b", NULL},
        {"s3://b/?region=x", "s3", NULL, "b", 0, "", "region=x"},
    };
    struct transport_url u;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct good_url *c = &cases[i];
        if (transport_url_parse(c->url, &u) < 0)
            fail_msg("'%s' was refused: %s", c->url, vk_error_message());
        assert_string_equal(u.scheme, c->scheme);
        assert_str_or_null(u.user, c->user);
        assert_str_or_null(u.host, c->host);
        assert_int_equal(u.port, c->port);
        assert_string_equal(u.path, c->path);
        assert_str_or_null(u.query, c->query);
        transport_url_clear(&u);
        assert_null(u.scheme);
        assert_null(u.path);
    }
    transport_url_clear(NULL);
}

/* A URL or an absolute path is a target by itself; anything else names a
 * configured [target]. */
static void test_is_url(void **state)
{
    (void)state;
    assert_true(transport_is_url("/srv/backups"));
    assert_true(transport_is_url("file:///srv/backups"));
    assert_true(transport_is_url("s3://bucket/prefix"));
    assert_false(transport_is_url("offsite"));
    assert_false(transport_is_url("srv/backups"));
}

static void test_url_query(void **state)
{
    struct transport_url u;
    char *v;

    (void)state;
    assert_int_equal(transport_url_parse("s3://b/p?endpoint=http%3A%2F%2Fh%3A1&region=eu&flag&"
                                         "a%26b=c%3Dd&empty=",
                                         &u),
                     0);
    assert_string_equal(v = transport_url_query_get(&u, "endpoint"), "http://h:1");
    free(v);
    assert_string_equal(v = transport_url_query_get(&u, "region"), "eu");
    free(v);
    assert_string_equal(v = transport_url_query_get(&u, "flag"), "");
    free(v);
    assert_string_equal(v = transport_url_query_get(&u, "a&b"), "c=d");
    free(v);
    assert_string_equal(v = transport_url_query_get(&u, "empty"), "");
    free(v);
    assert_null(transport_url_query_get(&u, "missing"));
    assert_null(transport_url_query_get(&u, "regio"));
    assert_null(transport_url_query_get(&u, NULL));
    assert_null(transport_url_query_get(NULL, "region"));
    transport_url_clear(&u);
    assert_int_equal(transport_url_parse("s3://b/p", &u), 0);
    assert_null(transport_url_query_get(&u, "region"));
    transport_url_clear(&u);
}

struct bad_url {
    const char *url;
    const char *why; /* a piece of the message */
};

static void test_url_bad(void **state)
{
    static const struct bad_url cases[] = {
        {"", "empty"},
        {"relative/path", "missing scheme"},
        {"backups", "missing scheme"},
        {"file:relative", "missing scheme"},
        {"file:/abs", "missing scheme"},
        {"://host/x", "missing scheme"},
        {"1ssh://host/x", "missing scheme"},
        {"ftp://host/x", "unknown scheme 'ftp'"},
        {"file://relative/path", "absolute path"},
        {"file://", "no path"},
        {"file://localhost", "no path"},
        {"file:///a?b=c", "no query"},
        {"file:///a#frag", "fragment"},
        {"file:///a%zz", "percent-escape"},
        {"file:///a%2", "percent-escape"},
        {"file:///a%", "percent-escape"},
        {"file:///a%00b", "control character"},
        {"file:///a%0ab", "control character"},
        {"file:///a\nb", "control character"},
        {"file:///a\tb", "control character"},
        {"/abs/\x7f", "control character"},
        {"ssh://", "host name is empty"},
        {"ssh:///srv", "host name is empty"},
        {"ssh://user@/srv", "host name is empty"},
        {"ssh://@host/srv", "user name"},
        {"ssh://host:0/p", "port"},
        {"ssh://host:65536/p", "port"},
        {"ssh://host:99999999999999999999/p", "port"},
        {"ssh://host:/p", "port"},
        {"ssh://host:abc/p", "port"},
        {"ssh://host:22x/p", "port"},
        {"ssh://host:-1/p", "port"},
        {"ssh://host:22:23/p", "port"},
        {"ssh://ho st/p", "invalid character"},
        {"ssh://ho%41st/p", "invalid character"},
        {"ssh://[::1/p", "closing ']'"},
        {"ssh://[]/p", "IPv6"},
        {"ssh://[zz::1]/p", "IPv6"},
        {"ssh://[::1]x/p", "after the IPv6"},
        {"ssh://[::1]:/p", "port"},
        {"ssh://[fe80::1%25]/p", "zone"},
        {"ssh://[fe80::1%25e/th]/p", "closing ']'"},
        {"ssh://a@b@host/p", "more than one '@'"},
        {"ssh://host/p%zz", "percent-escape"},
        {"ssh://host/p?x=%", "percent-escape"},
        {"ssh://host/p?&x=1", "empty parameter"},
        {"ssh://host/p?=1", "empty parameter"},
        {"s3://", "bucket name is empty"},
        {"s3:///prefix", "bucket name is empty"},
        {"s3://bucket:99/x", "invalid character"},
        {"s3://user@bucket/x", "no user"},
        {"s3://bu cket/x", "invalid character"},
        {"s3://b/a/../c", "key prefix"},
        {"s3://b/a//c", "key prefix"},
        {"s3://b/x?endpoint=%4", "percent-escape"},
        {"s3://b/x?a=1&&b=2", "empty parameter"},
    };
    struct transport_url u;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_url *c = &cases[i];
        memset(&u, 0xa5, sizeof u); /* garbage in OUT must not matter */
        vk_error_clear();
        if (transport_url_parse(c->url, &u) == 0)
            fail_msg("'%s' was accepted", c->url);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        if (!strstr(vk_error_message(), c->why) || !strstr(vk_error_message(), "URL"))
            fail_msg("'%s': message does not say '%s': %s", c->url, c->why, vk_error_message());
        assert_null(u.scheme);
        assert_null(u.host);
        assert_null(u.path);
        transport_url_clear(&u);
    }
    assert_int_equal(transport_url_parse(NULL, &u), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    vk_error_clear();
}

static void test_url_password_not_echoed(void **state)
{
    struct transport_url u;

    (void)state;
    assert_int_equal(transport_url_parse("ssh://root:hunter2@host/srv", &u), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "password"));
    assert_null(strstr(vk_error_message(), "hunter2"));
    assert_int_equal(transport_url_parse("s3://k:secret@bucket/x", &u), -1);
    assert_null(strstr(vk_error_message(), "secret"));
    /* Control characters are not echoed either. */
    assert_int_equal(transport_url_parse("file:///a\033[2Jb", &u), -1);
    assert_null(strchr(vk_error_message(), '\033'));
    vk_error_clear();
}

static void test_key_valid(void **state)
{
    static const char *const good[] = {
        "a",
        "web1/20261128T010000Z/vda.tar",
        "a.b",
        "..a",
        "a..",
        ".hidden/x",
        "a/.b/c",
        "x-y_z~1 2",
        "lost+found/x",
        "vk-tmp",
        "dir/.vk-tmp",
    };
    static const char *const bad[] = {
        "",          "/abs", "a/",   "a//b",  ".",
        "..",        "../x", "a/..", "a/./b", "./a",
        "a/../b",    "a\nb", "\x01", "a\x7f", "x/.y.vk-tmp-abcdef",
        "z.vk-tmp-",
    };
    char key[TRANSPORT_KEY_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (transport_key_valid(good[i]) < 0)
            fail_msg("'%s' was refused: %s", good[i], vk_error_message());
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vk_error_clear();
        if (transport_key_valid(bad[i]) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        assert_non_null(strstr(vk_error_message(), "invalid key"));
    }
    assert_int_equal(transport_key_valid("../x"), -1);
    assert_string_equal(vk_error_message(),
                        "invalid key '../x': it has a '.' or '..' path component");
    assert_int_equal(transport_key_valid(NULL), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);

    /* Length: 1024 bytes in components of at most 255. */
    memset(key, 'k', sizeof key);
    for (size_t i = 200; i < TRANSPORT_KEY_MAX; i += 200)
        key[i] = '/';
    key[TRANSPORT_KEY_MAX] = '\0';
    assert_int_equal(transport_key_valid(key), 0);
    key[TRANSPORT_KEY_MAX] = 'k';
    key[TRANSPORT_KEY_MAX + 1] = '\0';
    assert_int_equal(transport_key_valid(key), -1);
    memset(key, 'k', 256);
    key[256] = '\0';
    assert_int_equal(transport_key_valid(key), -1);
    assert_non_null(strstr(vk_error_message(), "255"));
    key[255] = '\0';
    assert_int_equal(transport_key_valid(key), 0);
    vk_error_clear();
}

/* A backend stub: every method is a dummy, one is left out per case. */
static int stub_open(struct transport *t, const struct transport_url *u,
                     const struct transport_options *o)
{
    (void)t, (void)u, (void)o;
    return 0;
}

static void test_registry(void **state)
{
    struct transport_ops ops = transport_file;
    struct transport *t;

    (void)state;
    assert_true(transport_scheme_supported("file"));
    assert_false(transport_scheme_supported("ftp"));
    assert_false(transport_scheme_supported(""));
    assert_false(transport_scheme_supported(NULL));
    assert_non_null(strstr(transport_schemes(), "file"));
    assert_int_equal(transport_ops_validate(&transport_file), 0);

    ops.scheme = "stub";
    ops.open = stub_open;
    assert_int_equal(transport_ops_validate(&ops), 0);
    ops.remove = NULL;
    assert_int_equal(transport_ops_validate(&ops), -1);
    assert_int_equal(vk_error_code(), VK_ERR_INTERNAL);
    assert_string_equal(vk_error_message(),
                        "transport backend 'stub' lacks the required method 'remove'");
    ops.remove = transport_file.remove;
    ops.put_commit = NULL;
    assert_int_equal(transport_ops_validate(&ops), -1);
    assert_non_null(strstr(vk_error_message(), "'put_commit'"));
    ops.put_commit = transport_file.put_commit;
    ops.scheme = NULL;
    assert_int_equal(transport_ops_validate(&ops), -1);
    assert_int_equal(transport_ops_validate(NULL), -1);

    /* Opening: a bad URL names the target; no transport comes back. */
    t = transport_open("offsite", "ftp://x/y", NULL);
    assert_null(t);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "cannot open target 'offsite': "));
    t = transport_open(NULL, "nonsense", NULL);
    assert_null(t);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    t = transport_open(NULL, "/tmp", NULL);
    assert_non_null(t);
    assert_string_equal(transport_name(t), "/tmp");
    assert_string_equal(transport_scheme(t), "file");
    transport_close(t);
    transport_close(NULL);
    vk_error_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),
        cmocka_unit_test(test_url_query),
        cmocka_unit_test(test_is_url),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_url_password_not_echoed),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_registry),
    };

    return cmocka_run_group_tests_name("transport-url", tests, NULL, NULL);
}
