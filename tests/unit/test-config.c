/* Unit tests for the configuration file (src/config.c, src/config-keys.c):
 * good files parse completely; every kind of malformed input gives the exact
 * FILE:LINE and message, and nothing crashes. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/conf/conf.h"

static struct config *parse(const char *text)
{
    return config_parse_buffer("t.conf", text, strlen(text), CONFIG_NO_FILE_CHECKS);
}

/* TEXT must fail with exactly MESSAGE, at LINE. */
static void expect_error(const char *text, unsigned int line, const char *message)
{
    struct config *cfg = parse(text);

    if (cfg)
        fail_msg("parsed without error: %s", text);
    assert_non_null(vk_error_message());
    assert_string_equal(vk_error_message(), message);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_int_equal(config_error_line(), line);
    vk_error_clear();
}

/* The ssh and s3 backends may not be in this build: their targets then use
 * file:// URLs, with the same credential keys. */
static const char good_format[] = "; virtkeep configuration\n"
                                  "[catalog]\n"
                                  "path = /var/lib/virtkeep/catalog.db\n"
                                  "\n"
                                  "[target local]\n"
                                  "url = file:///srv/backup\n"
                                  "\n"
                                  "[target offsite]\n"
                                  "url = %s\n"
                                  "user = backup\n"
                                  "key_file = /etc/virtkeep/id_ed25519\n"
                                  "known_hosts = /etc/virtkeep/known_hosts\n"
                                  "\n"
                                  "[target cloud]\n"
                                  "url = %s\n"
                                  "access_key_id = AKIAEXAMPLE\n"
                                  "secret_key_env = VK_SECRET\n"
                                  "region = eu-west-1\n"
                                  "endpoint = http://127.0.0.1:4568\n"
                                  "ca_file = /etc/ssl/certs/ca.pem\n"
                                  "\n"
                                  "[domain web1]\n" /* a forward reference to a policy */
                                  "  policy = gold\n"
                                  "  exclude = vdb, vdc\n"
                                  "  quiesce = try\n"
                                  "\n"
                                  "[policy gold]\n"
                                  "rpo = 1h\n"
                                  "rto = 30m ; inline comment\n"
                                  "keep_last = 5\n"
                                  "keep_daily = 7\n"
                                  "keep_weekly = 4\n"
                                  "keep_monthly = 12\n"
                                  "keep_within = 2d\n"
                                  "full_every = 1w\n"
                                  "targets = local, offsite\n"
                                  "\n"
                                  "[domain db one]\n"
                                  "disks = vda\n";

static const char *ssh_scheme(void)
{
    return transport_scheme_supported("ssh") ? "ssh" : "file";
}

static const char *s3_scheme(void)
{
    return transport_scheme_supported("s3") ? "s3" : "file";
}

static struct config *parse_good(void)
{
    CLEANUP_FREE char *text = NULL;

    text =
        vk_asprintf(good_format,
                    transport_scheme_supported("ssh") ? "ssh://backup@vault.example.com:2222/srv/vk"
                                                      : "file:///srv/vk",
                    transport_scheme_supported("s3") ? "s3://bucket/prefix" : "/srv/bucket");
    assert_non_null(text);
    return parse(text);
}

static void test_good_targets(void **state)
{
    struct config *cfg = parse_good();
    const struct config_target *t;
    struct transport_options opts;

    (void)state;
    assert_non_null(cfg);
    assert_string_equal(cfg->file, "t.conf");
    assert_string_equal(cfg->catalog_path, "/var/lib/virtkeep/catalog.db");
    assert_int_equal(cfg->n_targets, 3);
    t = config_target_find(cfg, "local");
    assert_non_null(t);
    assert_string_equal(t->url, "file:///srv/backup");
    assert_string_equal(t->scheme, "file");
    assert_int_equal(t->line, 5);
    assert_null(t->key_file);
    t = config_target_find(cfg, "offsite");
    assert_string_equal(t->scheme, ssh_scheme());
    assert_string_equal(t->user, "backup");
    assert_string_equal(t->key_file, "/etc/virtkeep/id_ed25519");
    assert_string_equal(t->known_hosts, "/etc/virtkeep/known_hosts");
    t = config_target_find(cfg, "cloud");
    assert_string_equal(t->scheme, s3_scheme());
    assert_string_equal(t->access_key_id, "AKIAEXAMPLE");
    assert_string_equal(t->secret_key_env, "VK_SECRET");
    assert_null(t->secret_key_file);
    assert_string_equal(t->region, "eu-west-1");
    config_target_options(t, &opts);
    assert_string_equal(opts.endpoint, "http://127.0.0.1:4568");
    assert_string_equal(opts.ca_file, "/etc/ssl/certs/ca.pem");
    assert_string_equal(opts.secret_key_env, "VK_SECRET");
    assert_null(opts.key_file);
    assert_null(config_target_find(cfg, "nope"));
    config_free(cfg);
}

static void test_good_policies_domains(void **state)
{
    struct config *cfg = parse_good();
    const struct config_policy *p;
    const struct config_domain *d;

    (void)state;
    assert_non_null(cfg);
    assert_int_equal(cfg->n_policies, 1);
    p = config_policy_find(cfg, "gold");
    assert_non_null(p);
    assert_int_equal(p->rpo, 3600);
    assert_int_equal(p->rto, 1800);
    assert_int_equal(p->keep_last, 5);
    assert_int_equal(p->keep_daily, 7);
    assert_int_equal(p->keep_weekly, 4);
    assert_int_equal(p->keep_monthly, 12);
    assert_int_equal(p->keep_within, 2 * 86400);
    assert_int_equal(p->full_every, 7 * 86400);
    assert_int_equal(vk_strv_len(p->targets), 2);
    assert_string_equal(p->targets[0], "local");
    assert_string_equal(p->targets[1], "offsite");
    assert_int_equal(cfg->n_domains, 2);
    d = config_domain_find(cfg, "web1");
    assert_string_equal(d->policy, "gold");
    assert_null(d->disks);
    assert_int_equal(vk_strv_len(d->exclude), 2);
    assert_string_equal(d->exclude[1], "vdc");
    assert_string_equal(d->quiesce, "try");
    d = config_domain_find(cfg, "db one");
    assert_non_null(d);
    assert_null(d->policy);
    assert_string_equal(d->disks[0], "vda");
    assert_null(d->disks[1]);
    config_free(cfg);
}

static void test_empty_and_comments(void **state)
{
    struct config *cfg;

    (void)state;
    /* An empty file is a valid configuration with nothing in it, like a
     * missing default file. */
    cfg = parse("");
    assert_non_null(cfg);
    assert_int_equal(cfg->n_targets + cfg->n_policies + cfg->n_domains, 0);
    assert_null(cfg->catalog_path);
    config_free(cfg);
    cfg = parse("; only\n# comments\n\n   \n");
    assert_non_null(cfg);
    assert_int_equal(cfg->n_targets, 0);
    config_free(cfg);
    /* An empty section is fine too, except a target, which needs a url. */
    cfg = parse("[catalog]\n[policy p]\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->n_policies, 1);
    assert_int_equal(config_policy_find(cfg, "p")->rpo, 0);
    config_free(cfg);
}

static void test_bom_crlf_no_final_newline(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = parse("\xEF\xBB\xBF[target a]\r\nurl = /srv/a\r\n[policy p]\r\nrpo = 15m");
    assert_non_null(cfg);
    assert_string_equal(cfg->targets[0].url, "/srv/a");
    assert_string_equal(cfg->targets[0].scheme, "file");
    assert_int_equal(cfg->policies[0].rpo, 900);
    config_free(cfg);
}

/* inih keeps at most 49 bytes of a section name; ours are longer. */
static void test_long_section_name(void **state)
{
    char name[101], text[200];
    struct config *cfg;

    (void)state;
    memset(name, 'd', 100);
    name[100] = '\0';
    snprintf(text, sizeof text, "[domain %s]\ndisks = vda\n", name);
    cfg = parse(text);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_domains, 1);
    assert_string_equal(cfg->domains[0].name, name);
    assert_string_equal(cfg->domains[0].disks[0], "vda");
    config_free(cfg);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("[policy p]\nrpo = 1h\nthis line is wrong\nrto = 1x\n", 3,
                 "t.conf:3: expected KEY = VALUE, a section header such as [target NAME], or a "
                 "comment starting with ';' or '#'");
    expect_error("[policy p]\n[target a\n", 2,
                 "t.conf:2: unterminated section header: expected [TYPE NAME], such as "
                 "[target offsite]");
    expect_error("[policy p] x\n", 1,
                 "t.conf:1: unexpected text after the section header: expected a comment "
                 "starting with ';' or nothing");
    expect_error("[policy p]\n= 1h\n", 2,
                 "t.conf:2: missing key name before '=': expected KEY = VALUE");
    expect_error("rpo = 1h\n[policy p]\n", 1,
                 "t.conf:1: key 'rpo' is outside any section: expected a section header such as "
                 "[target NAME] before it");
}

static void test_section_errors(void **state)
{
    (void)state;
    expect_error("[policy p]\n[frob x]\n", 2,
                 "t.conf:2: [frob x]: unknown section type 'frob': expected [catalog], "
                 "[daemon], [target NAME], [policy NAME] or [domain NAME]");
    expect_error("[]\n", 1,
                 "t.conf:1: []: empty section header: expected [catalog], [daemon], [target "
                 "NAME], [policy NAME] or [domain NAME]");
    expect_error("[target]\n", 1, "t.conf:1: [target]: missing name: expected [target NAME]");
    expect_error("[catalog main]\n", 1,
                 "t.conf:1: [catalog main]: unexpected name 'main': expected [catalog] alone");
    expect_error("[target a/b]\n", 1,
                 "t.conf:1: [target a/b]: invalid target name 'a/b': expected letters, digits, "
                 "'_', '.' and '-' (at most 64, starting with a letter or digit)");
    expect_error("[domain a/b]\n", 1,
                 "t.conf:1: [domain a/b]: invalid domain name 'a/b': expected a libvirt domain "
                 "name without '/', '[', ']' or ';'");
    expect_error("[policy p]\nrpo = 1h\n\n[policy p]\n", 4,
                 "t.conf:4: [policy p]: duplicate section: it is already defined at line 1");
    expect_error("[catalog]\n[catalog]\n", 2,
                 "t.conf:2: [catalog]: duplicate section: it is already defined at line 1");
}

static void test_key_errors(void **state)
{
    (void)state;
    expect_error("[policy gold]\nrpo = 1h\ncolour = red\n", 3,
                 "t.conf:3: [policy gold] colour: unknown key: expected one of rpo, rto, "
                 "keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, "
                 "keep_within, full_every, targets, priority, max_chain, quiesce, window, "
                 "drill_every, encryption, encryption_key_file, immutable_days");
    expect_error("[policy gold]\nrpo = 1h\nrpo = 2h\n", 3,
                 "t.conf:3: [policy gold] rpo: duplicate key: it is already set at line 2");
    expect_error("[policy gold]\nrpo =\n", 2,
                 "t.conf:2: [policy gold] rpo: missing value: expected a positive duration such "
                 "as 90s, 15m, 1h30m or 7d");
    expect_error("[catalog]\npath = relative.db\n", 2,
                 "t.conf:2: [catalog] path: invalid path 'relative.db': expected an absolute "
                 "path");
    /* An indented line is a key of its own, never a continuation. */
    expect_error("[policy gold]\nrpo = 1h\n    rpo = 2h\n", 3,
                 "t.conf:3: [policy gold] rpo: duplicate key: it is already set at line 2");
}

/* [daemon]: the daemon's socket, HTTP address, limits and logging. */
static void test_daemon_section(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = parse("[daemon]\nsocket = /run/vk.sock\nlisten = 127.0.0.1:8750\nlog = syslog\n"
                "max-jobs = 3\nmax_target_jobs = 2\ntick = 5s\n"
                "[policy p]\ndrill-every = 7d\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->daemon.line, 1);
    assert_string_equal(cfg->daemon.socket, "/run/vk.sock");
    assert_string_equal(cfg->daemon.listen, "127.0.0.1:8750");
    assert_string_equal(cfg->daemon.log, "syslog");
    assert_int_equal(cfg->daemon.max_jobs, 3);
    assert_int_equal(cfg->daemon.max_target_jobs, 2);
    assert_int_equal(cfg->daemon.tick, 5);
    assert_null(cfg->daemon.token_file);
    assert_int_equal(config_policy_find(cfg, "p")->drill_every, 7 * 86400);
    config_free(cfg);
    cfg = parse("[policy p]\nrpo = 1h\n");
    assert_int_equal(cfg->daemon.line, 0);
    assert_null(cfg->daemon.socket);
    config_free(cfg);

    expect_error("[daemon]\nlisten = 0.0.0.0:8750\n", 2,
                 "t.conf:2: [daemon] listen: invalid address '0.0.0.0:8750': expected a loopback "
                 "address and port such as 127.0.0.1:8750 or [::1]:8750");
    expect_error("[daemon]\nlisten = 127.0.0.1:0\n", 2,
                 "t.conf:2: [daemon] listen: invalid address '127.0.0.1:0': expected a loopback "
                 "address and port such as 127.0.0.1:8750 or [::1]:8750");
    expect_error("[daemon]\nlog = journal\n", 2,
                 "t.conf:2: [daemon] log: invalid value 'journal': expected stderr or syslog");
    expect_error("[daemon main]\n", 1,
                 "t.conf:1: [daemon main]: unexpected name 'main': expected [daemon] alone");
    expect_error("[daemon]\n[daemon]\n", 2,
                 "t.conf:2: [daemon]: duplicate section: it is already defined at line 1");
}

/* The scheduling and retention keys of issue 7, in both spellings. */
static void test_policy_schedule_keys(void **state)
{
    struct config *cfg;
    const struct config_policy *p;

    (void)state;
    cfg = parse("[target a]\nurl = /srv/a\n[target b]\nurl = /srv/b\n"
                "[policy gold]\nrpo = 15m\nrto = 30m\npriority = 1\nkeep-last = 3\n"
                "keep_hourly = 24\nkeep-daily = 7\nkeep-weekly = 4\nkeep-monthly = 12\n"
                "keep-yearly = 2\ntargets = a, b\nquiesce = try\nwindow = 22:00-06:30\n"
                "max-chain = 20\n"
                "[policy silver]\nwindow = 01:05-02:00\n");
    assert_non_null(cfg);
    p = config_policy_find(cfg, "gold");
    assert_int_equal(p->rpo, 900);
    assert_int_equal(p->rto, 1800);
    assert_int_equal(p->priority, 1);
    assert_int_equal(p->keep_last, 3);
    assert_int_equal(p->keep_hourly, 24);
    assert_int_equal(p->keep_daily, 7);
    assert_int_equal(p->keep_weekly, 4);
    assert_int_equal(p->keep_monthly, 12);
    assert_int_equal(p->keep_yearly, 2);
    assert_int_equal(p->max_chain, 20);
    assert_string_equal(p->quiesce, "try");
    assert_true(p->window.set);
    assert_int_equal(p->window.start, 22 * 60);
    assert_int_equal(p->window.end, 6 * 60 + 30);
    assert_string_equal(p->targets[0], "a");
    assert_string_equal(p->targets[1], "b");
    p = config_policy_find(cfg, "silver");
    assert_int_equal(p->window.start, 65);
    assert_int_equal(p->window.end, 120);
    assert_int_equal(p->priority, 0);
    assert_int_equal(p->max_chain, 0);
    assert_null(p->quiesce);
    config_free(cfg);
    cfg = parse("[policy p]\nrpo = 1h\n");
    assert_false(config_policy_find(cfg, "p")->window.set);
    config_free(cfg);

    /* The same key in both spellings is a duplicate. */
    expect_error("[policy p]\nkeep_last = 1\nkeep-last = 2\n", 3,
                 "t.conf:3: [policy p] keep-last: duplicate key: it is already set at line 2");
    expect_error("[policy p]\nwindow = 22:00\n", 2,
                 "t.conf:2: [policy p] window: invalid window '22:00': expected a daily window "
                 "HH:MM-HH:MM in UTC, such as 22:00-06:00 (start and end differ)");
    expect_error("[policy p]\nwindow = 24:00-01:00\n", 2,
                 "t.conf:2: [policy p] window: invalid window '24:00-01:00': expected a daily "
                 "window HH:MM-HH:MM in UTC, such as 22:00-06:00 (start and end differ)");
    expect_error("[policy p]\nwindow = 03:00-03:00\n", 2,
                 "t.conf:2: [policy p] window: invalid window '03:00-03:00': expected a daily "
                 "window HH:MM-HH:MM in UTC, such as 22:00-06:00 (start and end differ)");
    expect_error("[policy p]\nwindow = 3:00-04:00\n", 2,
                 "t.conf:2: [policy p] window: invalid window '3:00-04:00': expected a daily "
                 "window HH:MM-HH:MM in UTC, such as 22:00-06:00 (start and end differ)");
    expect_error("[policy p]\nquiesce = maybe\n", 2,
                 "t.conf:2: [policy p] quiesce: invalid value 'maybe': expected required, try or "
                 "no");
    expect_error("[policy p]\npriority = high\n", 2,
                 "t.conf:2: [policy p] priority: invalid count 'high': expected a whole number "
                 "from 0 to 1000000 (1 is the most important; 0 or unset, the least)");
}

/* encryption and encryption_key_file: the target's win over the policy's,
 * "none" turns sealing off, every keyring is listed once. */
static void test_encryption(void **state)
{
    const char *text = "[target a]\nurl = file:///a\nencryption = aes-256-gcm\n"
                       "encryption_key_file = /k/a\n"
                       "[target b]\nurl = file:///b\nencryption = none\n"
                       "[target c]\nurl = file:///c\n"
                       "[policy gold]\nencryption = aes-256-gcm\nencryption_key_file = /k/p\n"
                       "[policy plain]\nrpo = 1h\n"
                       "[domain web1]\npolicy = gold\n[domain db1]\npolicy = plain\n";
    struct config *cfg = parse(text);
    const char *file = NULL;
    const char **files;

    (void)state;
    assert_non_null(cfg);
    assert_true(config_encryption(cfg, "a", "db1", &file));
    assert_string_equal(file, "/k/a");
    assert_false(config_encryption(cfg, "b", "web1", &file));
    assert_null(file);
    assert_true(config_encryption(cfg, "c", "web1", &file));
    assert_string_equal(file, "/k/p");
    assert_true(config_encryption(cfg, "file:///x", "web1", &file));
    assert_false(config_encryption(cfg, "c", "db1", &file));
    assert_false(config_encryption(cfg, "c", "nobody", &file));
    files = config_key_files(cfg);
    assert_string_equal(files[0], "/k/a");
    assert_string_equal(files[1], "/k/p");
    assert_null(files[2]);
    free(files);
    config_free(cfg);
    expect_error("[target a]\nurl = file:///a\nencryption = aes-128-cbc\n", 3,
                 "t.conf:3: [target a] encryption: invalid value 'aes-128-cbc': expected "
                 "aes-256-gcm or none");
    expect_error("[policy gold]\nencryption_key_file = keyring\n", 2,
                 "t.conf:2: [policy gold] encryption_key_file: invalid path 'keyring': expected an "
                 "absolute path to a keyring file (virtkeep key create; mode 0600)");
}

static void test_value_errors(void **state)
{
    (void)state;
    expect_error("[policy gold]\nrto = 1h\nrpo = 1x\n", 3,
                 "t.conf:3: [policy gold] rpo: invalid duration '1x': expected a number of "
                 "seconds or units in order w, d, h, m, s, such as 90s, 15m, 1h30m or 7d");
    expect_error("[policy gold]\nrpo = 0\n", 2,
                 "t.conf:2: [policy gold] rpo: invalid duration '0': expected a positive duration "
                 "such as 90s, 15m, 1h30m or 7d");
    /* Bounds: nothing that overflows int64 seconds, nor more than a century. */
    expect_error("[policy gold]\nrto = 1h\nrpo = 30000000000000w\n", 3,
                 "t.conf:3: [policy gold] rpo: invalid duration '30000000000000w': too large (the "
                 "limit is 36500d, about 100 years)");
    expect_error("[policy gold]\nkeep_within = 9223372036854775808\n", 2,
                 "t.conf:2: [policy gold] keep_within: invalid duration '9223372036854775808': "
                 "too large (the limit is 36500d, about 100 years)");
    expect_error("[daemon]\ntick = 36500d1s\n", 2,
                 "t.conf:2: [daemon] tick: invalid duration '36500d1s': too large (the limit is "
                 "36500d, about 100 years)");
    expect_error("[policy gold]\nkeep_last = -1\n", 2,
                 "t.conf:2: [policy gold] keep_last: invalid count '-1': expected a whole number "
                 "from 0 to 1000000");
    expect_error("[policy gold]\nkeep_daily = 1000001\n", 2,
                 "t.conf:2: [policy gold] keep_daily: invalid count '1000001': expected a whole "
                 "number from 0 to 1000000");
    expect_error("[policy gold]\ntargets = a,,b\n", 2,
                 "t.conf:2: [policy gold] targets: empty item in list 'a,,b': expected a "
                 "comma-separated list of target names");
    expect_error("[policy gold]\ntargets = a, a\n", 2,
                 "t.conf:2: [policy gold] targets: 'a' is listed twice: expected a "
                 "comma-separated list of target names");
    expect_error("[target s]\nurl = /b/p\nregion = EU WEST\n", 3,
                 "t.conf:3: [target s] region: invalid region 'EU WEST': expected a region name "
                 "such as us-east-1");
    expect_error("[target s]\nurl = /b/p\nsecret_key_env = 1BAD\n", 3,
                 "t.conf:3: [target s] secret_key_env: invalid environment variable name '1BAD': "
                 "expected the name of an environment variable, such as AWS_SECRET_ACCESS_KEY");
    expect_error("[target s]\nurl = /b/p\nendpoint = ftp://x\n", 3,
                 "t.conf:3: [target s] endpoint: invalid endpoint 'ftp://x': expected an http:// "
                 "or https:// URL");
    expect_error("[domain d]\nquiesce = maybe\n", 2,
                 "t.conf:2: [domain d] quiesce: invalid value 'maybe': expected required (freeze "
                 "the guest file systems, fail without a guest agent), try (warn and go on without "
                 "one) or no");
    expect_error("[domain d]\ndisks = vda\nexclude = vdb\n", 3,
                 "t.conf:3: [domain d] exclude: cannot be given with disks (line 2): expected "
                 "one of them");
}

static void test_url_errors(void **state)
{
    CLEANUP_FREE char *want = NULL;

    (void)state;
    expect_error("[target a]\nuser = x\n\n[policy p]\n", 1,
                 "t.conf:1: [target a]: missing key 'url': expected url = file:///PATH, "
                 "ssh://USER@HOST/PATH or s3://BUCKET/PREFIX");
    want = vk_asprintf("t.conf:2: [target a] url: unknown scheme 'ftp' in URL 'ftp://h/x': "
                       "expected one of %s",
                       transport_schemes());
    expect_error("[target a]\nurl = ftp://h/x\n", 2, want);
    free(want);
    want = vk_asprintf("t.conf:2: [target a] url: invalid URL 'backups': expected "
                       "SCHEME://... (%s) or an absolute path",
                       transport_schemes());
    expect_error("[target a]\nurl = backups\n", 2, want);
    /* A URL the transport layer refuses, with its reason. */
    {
        struct config *cfg = parse("[target a]\nurl = file:///srv/x#part\n");
        assert_null(cfg);
        assert_int_equal(config_error_line(), 2);
        assert_true(strncmp(vk_error_message(), "t.conf:2: [target a] url: ", 26) == 0);
        assert_null(strstr(vk_error_message(), "unknown scheme"));
        assert_non_null(strstr(vk_error_message(), ": expected a target URL: file:///PATH, "));
        vk_error_clear();
    }
}

static void test_reference_errors(void **state)
{
    (void)state;
    /* Reported at the line that refers, not at the end of the file. */
    expect_error("[domain web1]\npolicy = silver\n\n[policy gold]\nrpo = 1h\n", 2,
                 "t.conf:2: [domain web1] policy: policy 'silver' is not defined: expected the "
                 "name of a [policy NAME] section");
    expect_error("[target a]\nurl = /a\n[policy gold]\nrpo = 1h\ntargets = a, b\n", 5,
                 "t.conf:5: [policy gold] targets: target 'b' is not defined: expected the name "
                 "of a [target NAME] section");
    /* The earliest of several errors found after parsing wins. */
    expect_error("[domain d]\npolicy = nope\n[target t]\nuser = u\n", 2,
                 "t.conf:2: [domain d] policy: policy 'nope' is not defined: expected the name "
                 "of a [policy NAME] section");
}

static void test_inline_secrets(void **state)
{
    (void)state;
    expect_error("[target a]\nurl = /x\npassword = hunter2\n", 3,
                 "t.conf:3: [target a] password: secrets are never written inline: expected "
                 "password_file = PATH (a file readable only by its owner)");
    expect_error("[target s]\nurl = /b/p\nsecret_key = abc\n", 3,
                 "t.conf:3: [target s] secret_key: secrets are never written inline: expected "
                 "secret_key_file = PATH or secret_key_env = VARIABLE (a file readable only by "
                 "its owner)");
    expect_error("[target s]\nurl = /b/p\nsecret_access_key = abc\n", 3,
                 "t.conf:3: [target s] secret_access_key: secrets are never written inline: "
                 "expected secret_key_file = PATH or secret_key_env = VARIABLE (a file readable "
                 "only by its owner)");
    expect_error("[target a]\nurl = ssh://u:hunter2@h/x\n", 2,
                 "t.conf:2: [target a] url: the URL contains a password: secrets are never "
                 "written inline; expected password_file = PATH (a file readable only by its "
                 "owner)");
    expect_error("[target s]\nurl = /b/p\nsecret_key_env = K\nsecret_key_file = /k\n", 4,
                 "t.conf:4: [target s] secret_key_file: cannot be given with secret_key_env "
                 "(line 3): expected one of them");
}

/* [catalog] url: a PostgreSQL catalog instead of a file; never with a
 * password in it, and never both url and path. */
static void test_catalog_url(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = parse("[catalog]\nurl = postgresql://vk@db.example.com/virtkeep?sslmode=verify-full"
                "&sslrootcert=/etc/virtkeep/ca.pem&password_file=/etc/virtkeep/db-pw\n");
    if (!cfg)
        fail_msg("%s", vk_error_message());
    assert_string_equal(cfg->catalog_path,
                        "postgresql://vk@db.example.com/virtkeep?sslmode=verify-full"
                        "&sslrootcert=/etc/virtkeep/ca.pem&password_file=/etc/virtkeep/db-pw");
    config_free(cfg);
    expect_error("[catalog]\nurl = postgresql://vk:hunter2@db/virtkeep\n", 2,
                 "t.conf:2: [catalog] url: the catalog URL holds a password: put it in a file "
                 "readable only by its owner (password_file=/PATH in the URL, or libpq's "
                 "PGPASSFILE or service file)");
    expect_error("[catalog]\nurl = postgresql://vk@db/virtkeep?password=hunter2\n", 2,
                 "t.conf:2: [catalog] url: the catalog URL holds a password: put it in a file "
                 "readable only by its owner (password_file=/PATH in the URL, or libpq's "
                 "PGPASSFILE or service file)");
    expect_error("[catalog]\nurl = mysql://db/x\n", 2,
                 "t.conf:2: [catalog] url: invalid catalog URL 'mysql://db/x': expected a "
                 "PostgreSQL URL: postgresql://USER@HOST/DB[?sslmode=...&password_file=/PATH]");
    expect_error("[catalog]\npath = /var/lib/c.db\nurl = postgresql://vk@db/virtkeep\n", 3,
                 "t.conf:3: [catalog] url: cannot be given with path (line 2): expected one of "
                 "them");
}

static void test_secret_file_permissions(void **state)
{
    char dir[] = "/tmp/test-config-XXXXXX";
    CLEANUP_FREE char *key = NULL, *text = NULL, *want = NULL;
    struct config *cfg;
    int fd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    key = vk_asprintf("%s/id_ed25519", dir);
    fd = open(key, O_CREAT | O_WRONLY | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(key, 0644), 0);
    text = vk_asprintf("[target a]\nurl = /x\nkey_file = %s\n", key);

    cfg = config_parse_buffer("t.conf", text, strlen(text), 0);
    assert_null(cfg);
    want = vk_asprintf("t.conf:3: [target a] key_file: secret file '%s' is accessible by group "
                       "or others (mode 0644): run 'chmod 600 %s'",
                       key, key);
    assert_string_equal(vk_error_message(), want);
    free(want);

    assert_int_equal(chmod(key, 0640), 0);
    assert_null(config_parse_buffer("t.conf", text, strlen(text), 0));
    assert_non_null(strstr(vk_error_message(), "(mode 0640): run 'chmod 600 "));

    assert_int_equal(chmod(key, 0600), 0);
    cfg = config_parse_buffer("t.conf", text, strlen(text), 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->targets[0].key_file, key);
    config_free(cfg);

    assert_int_equal(unlink(key), 0);
    assert_null(config_parse_buffer("t.conf", text, strlen(text), 0));
    want = vk_asprintf("t.conf:3: [target a] key_file: cannot use secret file '%s': %s: expected "
                       "an absolute path to a file readable only by its owner (mode 0600)",
                       key, strerror(ENOENT));
    assert_string_equal(vk_error_message(), want);
    /* Without file checks, the same file is only a path. */
    cfg = config_parse_buffer("t.conf", text, strlen(text), CONFIG_NO_FILE_CHECKS);
    assert_non_null(cfg);
    config_free(cfg);
    assert_int_equal(rmdir(dir), 0);
    vk_error_clear();
}

static void test_binary_and_long_lines(void **state)
{
    static const char nul[] = "[policy p]\nrpo = 1h\nrto\0= 1h\n";
    CLEANUP_FREE char *huge = NULL, *want = NULL;
    struct config *cfg;
    size_t n = 5000;

    (void)state;
    cfg = config_parse_buffer("t.conf", nul, sizeof nul - 1, 0);
    assert_null(cfg);
    assert_string_equal(vk_error_message(),
                        "t.conf:3: the line contains a NUL byte: expected text");
    expect_error("[policy p]\nrpo = 1h\x1b[31m\n", 2,
                 "t.conf:2: the line contains the control character 0x1b: expected text");

    huge = vk_malloc(n + 32);
    memcpy(huge, "[policy p]\nrpo = ", 17);
    memset(huge + 17, '9', n);
    huge[17 + n] = '\0';
    cfg = parse(huge);
    assert_null(cfg);
    assert_int_equal(config_error_line(), 2);
    want = vk_strdup("t.conf:2: the line is too long (5006 bytes): the limit is ");
    assert_true(strncmp(vk_error_message(), want, strlen(want)) == 0);
    vk_error_clear();
}

/* Deterministic garbage: every result is a config or a message naming a
 * line of t.conf; nothing crashes (ASan/UBSan in the -san build). */
static void test_garbage_never_crashes(void **state)
{
    static const char alphabet[] = "[]=;#: \t\n\rabcdefghtpolicytarget1h/,\xEF\xBB\xBF\x01\0";
    uint32_t seed = 12345;
    char buf[512];

    (void)state;
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(round % (int)sizeof buf);
        struct config *cfg;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        cfg = config_parse_buffer("t.conf", buf, len, CONFIG_NO_FILE_CHECKS);
        if (!cfg) {
            assert_non_null(vk_error_message());
            assert_true(strncmp(vk_error_message(), "t.conf:", 7) == 0);
            assert_true(config_error_line() >= 1);
        }
        config_free(cfg);
        vk_error_clear();
    }
}

static void test_parse_file(void **state)
{
    char path[] = "/tmp/test-config-XXXXXX";
    struct config *cfg;
    int fd;

    (void)state;
    cfg = config_parse_file("/nonexistent/virtkeep.conf", 0);
    assert_null(cfg);
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    assert_int_equal(config_error_line(), 0);
    assert_non_null(
        strstr(vk_error_message(), "cannot read configuration file '/nonexistent/virtkeep.conf'"));

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(vk_write_all(fd, "[target a]\nurl = /srv\n\n[target b]\n", 34), 0);
    close(fd);
    cfg = config_parse_file(path, 0);
    assert_null(cfg);
    assert_int_equal(config_error_line(), 4);
    assert_true(strncmp(vk_error_message(), path, strlen(path)) == 0);
    assert_string_equal(vk_error_message() + strlen(path),
                        ":4: [target b]: missing key 'url': expected url = file:///PATH, "
                        "ssh://USER@HOST/PATH or s3://BUCKET/PREFIX");
    unlink(path);
    assert_null(config_parse_file("/tmp", 0));
    assert_non_null(strstr(vk_error_message(), "expected a regular file"));
    vk_error_clear();
}

static void test_default_paths(void **state)
{
    CLEANUP_FREE char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    CLEANUP_FREE char *old_home = getenv("HOME") ? vk_strdup(getenv("HOME")) : NULL;

    (void)state;
    a = config_default_path(0);
    assert_string_equal(a, "/etc/virtkeep/virtkeep.conf");
    b = config_default_catalog(0);
    assert_string_equal(b, "/var/lib/virtkeep/catalog.db");

    setenv("XDG_CONFIG_HOME", "/x/config", 1);
    setenv("XDG_DATA_HOME", "/x/data", 1);
    free(a), free(b);
    a = config_default_path(1000);
    b = config_default_catalog(1000);
    assert_string_equal(a, "/x/config/virtkeep/virtkeep.conf");
    assert_string_equal(b, "/x/data/virtkeep/catalog.db");

    unsetenv("XDG_CONFIG_HOME");
    setenv("XDG_DATA_HOME", "relative", 1); /* ignored, as the XDG spec says */
    setenv("HOME", "/home/u", 1);
    c = config_default_path(1000);
    d = config_default_catalog(1000);
    assert_string_equal(c, "/home/u/.config/virtkeep/virtkeep.conf");
    assert_string_equal(d, "/home/u/.local/share/virtkeep/catalog.db");
    unsetenv("HOME");
    assert_null(config_default_path(1000));
    assert_int_equal(vk_error_code(), VK_ERR_NOT_FOUND);
    unsetenv("XDG_DATA_HOME");
    if (old_home)
        setenv("HOME", old_home, 1);
    vk_error_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_targets),
        cmocka_unit_test(test_good_policies_domains),
        cmocka_unit_test(test_empty_and_comments),
        cmocka_unit_test(test_bom_crlf_no_final_newline),
        cmocka_unit_test(test_long_section_name),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_section_errors),
        cmocka_unit_test(test_key_errors),
        cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_encryption),
        cmocka_unit_test(test_policy_schedule_keys),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_reference_errors),
        cmocka_unit_test(test_inline_secrets),
        cmocka_unit_test(test_catalog_url),
        cmocka_unit_test(test_secret_file_permissions),
        cmocka_unit_test(test_binary_and_long_lines),
        cmocka_unit_test(test_garbage_never_crashes),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_default_paths),
        cmocka_unit_test(test_daemon_section),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
