/* Unit tests of the backup engine's pure pieces: the per-domain lock, the
 * options of `virtkeep backup`, the JSON result and the summary line, and
 * the progress line. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/backup/backup.h"
#include "src/cli/cli.h"
#include "common/progress.h"

/* ---- lock ------------------------------------------------------------- */

static char *tmpdir_make(void)
{
    char tmpl[] = "/tmp/vk-backup-unit-XXXXXX";
    char *d = mkdtemp(tmpl);

    assert_non_null(d);
    return vk_asprintf("%s/locks/sub", d); /* missing components are created */
}

static void tmpdir_remove(char *dir)
{
    CLEANUP_FREE char *cmd = vk_asprintf("rm -rf '%.*s'", (int)(strlen(dir) - 10), dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static void test_lock_same_process(void **state)
{
    char *dir = tmpdir_make();
    struct backup_lock *a, *b, *c;
    CLEANUP_FREE char *want = NULL;

    (void)state;
    a = backup_lock_acquire(dir, "web1", 0);
    assert_non_null(a);
    b = backup_lock_acquire(dir, "web1", 0);
    assert_null(b);
    assert_int_equal(vk_error_code(), VK_ERR_BUSY);
    want = vk_asprintf("another backup of domain 'web1' is running (pid %ld)", (long)getpid());
    assert_string_equal(vk_error_message(), want);
    /* Another domain is independent. */
    c = backup_lock_acquire(dir, "db1", 0);
    assert_non_null(c);
    backup_lock_release(a);
    b = backup_lock_acquire(dir, "web1", 0);
    assert_non_null(b);
    backup_lock_release(b);
    backup_lock_release(c);
    tmpdir_remove(dir);
}

static void test_lock_other_process(void **state)
{
    char *dir = tmpdir_make();
    int ready[2], go[2], status;
    char ch = 0;
    pid_t pid;
    struct backup_lock *l;
    CLEANUP_FREE char *want = NULL;

    (void)state;
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct backup_lock *cl = backup_lock_acquire(dir, "web1", 0);
        ch = cl ? 'y' : 'n';
        if (write(ready[1], &ch, 1) != 1 || read(go[0], &ch, 1) != 1)
            _exit(2);
        backup_lock_release(cl);
        _exit(0);
    }
    assert_int_equal(read(ready[0], &ch, 1), 1);
    assert_int_equal(ch, 'y');
    assert_null(backup_lock_acquire(dir, "web1", 0));
    assert_int_equal(vk_error_code(), VK_ERR_BUSY);
    want = vk_asprintf("another backup of domain 'web1' is running (pid %ld)", (long)pid);
    assert_string_equal(vk_error_message(), want);
    assert_int_equal(write(go[1], "x", 1), 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    l = backup_lock_acquire(dir, "web1", 0);
    assert_non_null(l);
    backup_lock_release(l);
    for (int i = 0; i < 2; i++) {
        close(ready[i]);
        close(go[i]);
    }
    tmpdir_remove(dir);
}

/* Any name libvirt allows locks a file inside DIR, named as in object
 * keys (".hidden-vm" -> "%2Ehidden-vm.lock"); the empty name is refused. */
static void test_lock_odd_names(void **state)
{
    static const char *const names[][2] = {
        {".hidden-vm", "%2Ehidden-vm.lock"},
        {"../etc", "%2E.%2Fetc.lock"},
        {"a/b", "a%2Fb.lock"},
        {"..", "%2E..lock"},
    };
    char *dir = tmpdir_make();
    struct stat st;

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(names); i++) {
        CLEANUP_FREE char *path = vk_asprintf("%s/%s", dir, names[i][1]);
        struct backup_lock *l = backup_lock_acquire(dir, names[i][0], 0);
        if (!l)
            fail_msg("cannot lock '%s': %s", names[i][0], vk_error_message());
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_null(backup_lock_acquire(dir, names[i][0], 0));
        assert_int_equal(vk_error_code(), VK_ERR_BUSY);
        backup_lock_release(l);
        assert_int_equal(unlink(path), 0);
    }
    assert_null(backup_lock_acquire(dir, "", 0));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    tmpdir_remove(dir);
}

/* ---- options ---------------------------------------------------------- */

static int parse(struct backup_options *o, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    va_start(ap, o);
    argv[argc++] = (char *)"backup";
    while ((argv[argc] = va_arg(ap, char *)) != NULL)
        argc++;
    va_end(ap);
    return cli_backup_options_parse(argc, argv, o);
}

static void test_options_defaults(void **state)
{
    struct backup_options o;

    (void)state;
    assert_int_equal(parse(&o, "web1", NULL), 0);
    assert_string_equal(o.domain, "web1");
    assert_int_equal(o.level, CATALOG_LEVEL_AUTO);
    assert_int_equal(o.compress_level, BACKUP_COMPRESS_LEVEL_DEFAULT);
    assert_int_equal(o.threads, 0);
    assert_null(o.target);
    assert_null(o.disks);
    assert_false(o.quiesce);
    assert_false(o.json);
    backup_options_clear(&o);
}

static void test_options_all(void **state)
{
    struct backup_options o;

    (void)state;
    /* Options may come after the domain, as in "backup web1 --level diff". */
    assert_int_equal(parse(&o, "--level", "diff", "--target", "file:///b", "--disks", "vda, vdb",
                           "web1", "--quiesce", "--compress-level", "19", "--threads", "2",
                           "--json", NULL),
                     0);
    assert_int_equal(o.level, CATALOG_LEVEL_DIFF);
    assert_string_equal(o.target, "file:///b");
    assert_int_equal(vk_strv_len(o.disks), 2);
    assert_string_equal(o.disks[1], "vdb");
    assert_true(o.quiesce);
    assert_int_equal(o.compress_level, 19);
    assert_int_equal(o.threads, 2);
    assert_true(o.json);
    backup_options_clear(&o);

    static const char *const levels[] = {"full", "inc", "diff", "copy", "auto"};
    static const enum catalog_level want[] = {CATALOG_LEVEL_FULL, CATALOG_LEVEL_INC,
                                              CATALOG_LEVEL_DIFF, CATALOG_LEVEL_COPY,
                                              CATALOG_LEVEL_AUTO};
    for (size_t i = 0; i < VK_ARRAY_SIZE(levels); i++) {
        assert_int_equal(parse(&o, "--level", levels[i], "d", NULL), 0);
        assert_int_equal(o.level, want[i]);
        backup_options_clear(&o);
    }
    assert_int_equal(parse(&o, "--exclude", "vdb", "d", NULL), 0);
    assert_string_equal(o.exclude[0], "vdb");
    backup_options_clear(&o);
    assert_int_equal(parse(&o, "--help", NULL), 1);
    backup_options_clear(&o);
}

static void expect_invalid(struct backup_options *o, const char *needle)
{
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    if (!strstr(vk_error_message(), needle))
        fail_msg("'%s' does not contain '%s'", vk_error_message(), needle);
    backup_options_clear(o);
}

static void test_options_errors(void **state)
{
    struct backup_options o;

    (void)state;
    assert_int_equal(parse(&o, NULL), -1);
    expect_invalid(&o, "no domain");
    assert_int_equal(parse(&o, "a", "b", NULL), -1);
    expect_invalid(&o, "more than one domain");
    assert_int_equal(parse(&o, "--level", "weekly", "d", NULL), -1);
    expect_invalid(&o, "invalid level 'weekly'");
    assert_int_equal(parse(&o, "--compress-level", "0", "d", NULL), -1);
    expect_invalid(&o, "compression level '0'");
    assert_int_equal(parse(&o, "--compress-level", "20", "d", NULL), -1);
    expect_invalid(&o, "compression level '20'");
    assert_int_equal(parse(&o, "--threads", "x", "d", NULL), -1);
    expect_invalid(&o, "thread count 'x'");
    assert_int_equal(parse(&o, "--disks", "vda", "--exclude", "vdb", "d", NULL), -1);
    expect_invalid(&o, "cannot be given together");
    assert_int_equal(parse(&o, "--disks", "vda,,vdb", "d", NULL), -1);
    expect_invalid(&o, "--disks");
    assert_int_equal(parse(&o, "--bogus", "d", NULL), -1);
    expect_invalid(&o, "--bogus");
    assert_int_equal(parse(&o, "--target", NULL), -1);
    expect_invalid(&o, "--target");
}

/* ---- result ----------------------------------------------------------- */

static void result_fill(struct backup_result *r)
{
    struct backup_result_disk *d;

    memset(r, 0, sizeof *r);
    r->id = vk_strdup("web1-20261128T010203Z");
    r->domain = vk_strdup("web1");
    r->level = CATALOG_LEVEL_FULL;
    r->requested_level = CATALOG_LEVEL_AUTO;
    r->reason = vk_strdup("checkpoint 'virtkeep-x' is inconsistent (QEMU crashed?), discarded it");
    r->checkpoint = vk_strdup("virtkeep-y");
    r->target = vk_strdup("local");
    r->started = 1795827723;
    r->finished = 1795827735;
    r->wall_ns = 12400000000ull;
    r->bytes_read = 1610612736ull;
    r->bytes_stored = 734003200ull;
    r->manifest_key = vk_strdup("web1/web1-20261128T010203Z/manifest.json");
    for (int i = 0; i < 2; i++) {
        d = backup_result_disk_add(r);
        assert_non_null(d);
        d->disk = vk_asprintf("vd%c", 'a' + i);
        d->format = vk_strdup("qcow2");
        d->virtual_size = 1ull << 30;
        d->key = vk_asprintf("web1/web1-20261128T010203Z/vd%c.tar", 'a' + i);
        d->archive_size = 1000 + (uint64_t)i;
        memset(d->sha256, 'a' + i, ARCHIVE_SHA256_HEX_LEN);
        d->data_bytes = 4096;
        d->zero_bytes = 8192;
        d->stored_bytes = 100;
        d->chunks = 1;
    }
}

static const char *jget(struct json_object *o, const char *key)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(o, key, &v));
    return v ? json_object_get_string(v) : NULL;
}

static void test_result_json(void **state)
{
    struct backup_result r;
    struct json_object *j, *disks, *d1;

    (void)state;
    result_fill(&r);
    j = backup_result_to_json(&r);
    assert_string_equal(jget(j, "backup"), "web1-20261128T010203Z");
    assert_string_equal(jget(j, "level"), "full");
    assert_string_equal(jget(j, "requested_level"), "auto");
    assert_null(jget(j, "parent"));
    assert_non_null(strstr(jget(j, "reason"), "inconsistent"));
    assert_string_equal(jget(j, "checkpoint"), "virtkeep-y");
    assert_string_equal(jget(j, "status"), "committed");
    assert_string_equal(jget(j, "bytes_read"), "1610612736");
    assert_string_equal(jget(j, "started"), "1795827723");
    assert_string_equal(jget(j, "duration_seconds"), "12.4");
    assert_string_equal(jget(j, "manifest_key"), "web1/web1-20261128T010203Z/manifest.json");
    assert_true(json_object_object_get_ex(j, "disks", &disks));
    assert_int_equal(json_object_array_length(disks), 2);
    d1 = json_object_array_get_idx(disks, 1);
    assert_string_equal(jget(d1, "disk"), "vdb");
    assert_string_equal(jget(d1, "archive_size"), "1001");
    assert_int_equal(strlen(jget(d1, "sha256")), 64);
    assert_string_equal(jget(d1, "zero_bytes"), "8192");
    json_object_put(j);
    backup_result_clear(&r);
}

static void test_result_summary(void **state)
{
    struct backup_result r;
    char *s;

    (void)state;
    result_fill(&r);
    s = backup_result_summary(&r);
    assert_string_equal(s, "backup web1-20261128T010203Z: full of web1, 2 disks, read 1.5 GiB, "
                           "stored 700 MiB in 12s -> target 'local'");
    free(s);
    backup_result_clear(&r);
}

static void test_progress_format(void **state)
{
    char *s;

    (void)state;
    s = progress_format("vda", 0, 2, 512ull << 20, 2048ull << 20, 256.0 * (1 << 20));
    assert_string_equal(s, "vda (1/2)  512 MiB / 2 GiB  25%  256 MiB/s  ETA 6s");
    free(s);
    s = progress_format("vdb", 1, 2, 0, 1 << 20, 0);
    assert_string_equal(s, "vdb (2/2)  0 B / 1 MiB  0%");
    free(s);
    /* Not a terminal: nothing is drawn, and NULL is safe everywhere. */
    FILE *fp = tmpfile();
    assert_null(progress_new(fp, 0));
    fclose(fp);
    progress_update(NULL, "vda", 0, 1, 1, 2);
    progress_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_same_process), cmocka_unit_test(test_lock_other_process),
        cmocka_unit_test(test_lock_odd_names),    cmocka_unit_test(test_options_defaults),
        cmocka_unit_test(test_options_all),       cmocka_unit_test(test_options_errors),
        cmocka_unit_test(test_result_json),       cmocka_unit_test(test_result_summary),
        cmocka_unit_test(test_progress_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
