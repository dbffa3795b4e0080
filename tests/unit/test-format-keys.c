/* Unit tests for object keys (src/format/keys.c, docs/FORMAT.md "Object
 * keys"): every domain name libvirt allows becomes a safe key component
 * that decodes back to it; plain names are kept as they are. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/format/format.h"
#include "transport/transport.h"

/* A component is safe: not empty, not "." or "..", no leading '.', no '/',
 * no control character, no temp file mark; as a key, the transports take it. */
static void assert_safe(const char *c)
{
    CLEANUP_FREE char *key = vk_asprintf("%s/x", c);

    assert_true(c[0] != '\0' && c[0] != '.');
    assert_null(strchr(c, '/'));
    assert_null(strstr(c, ".vk-tmp-"));
    for (const char *p = c; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    assert_non_null(key);
    if (transport_key_valid(key) < 0)
        fail_msg("'%s' is not a valid key: %s", key, vk_error_message());
}

static void round_trip(const char *name)
{
    CLEANUP_FREE char *enc = format_name_encode(name);
    CLEANUP_FREE char *dec = NULL;

    assert_non_null(enc);
    assert_safe(enc);
    dec = format_name_decode(enc);
    if (!dec)
        fail_msg("'%s' (from '%s') does not decode: %s", enc, name, vk_error_message());
    assert_string_equal(dec, name);
}

static void test_encode(void **state)
{
    static const char *const cases[][2] = {
        {"web1", "web1"},
        {"web1-20261128T010203Z", "web1-20261128T010203Z"},
        {"vda.tar", "vda.tar"},
        {"manifest.json", "manifest.json"},
        {"a..b", "a..b"},
        {"my vm (old)", "my vm (old)"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {".hidden-vm", "%2Ehidden-vm"},
        {".hidden-vm-20261207T212923Z", "%2Ehidden-vm-20261207T212923Z"},
        {".", "%2E"},
        {"..", "%2E."},
        {"...", "%2E.."},
        {"../etc", "%2E.%2Fetc"},
        {"a/b", "a%2Fb"},
        {"/", "%2F"},
        {"50%", "50%25"},
        {"%2Ehidden", "%252Ehidden"},
        {"a\nb", "a%0Ab"},
        {"\x7f", "%7F"},
        {"x.vk-tmp-y", "x%2Evk-tmp-y"},
        {"x.vk-tmp", "x.vk-tmp"},
    };

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(cases); i++) {
        CLEANUP_FREE char *enc = format_name_encode(cases[i][0]);
        assert_non_null(enc);
        assert_string_equal(enc, cases[i][1]);
        round_trip(cases[i][0]);
    }
    vk_error_clear();
    assert_null(format_name_encode(""));
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_null(format_name_encode(NULL));
}

/* Every byte in every position, and random names, round-trip. */
static void test_round_trip_all(void **state)
{
    char name[8];
    unsigned int seed = 12345;

    (void)state;
    for (unsigned int c = 1; c < 256; c++) {
        name[0] = (char)c, name[1] = '\0';
        round_trip(name);
        name[0] = 'a', name[1] = (char)c, name[2] = '\0';
        round_trip(name);
        name[0] = '.', name[1] = (char)c, name[2] = '.', name[3] = '\0';
        round_trip(name);
    }
    for (int i = 0; i < 5000; i++) {
        size_t len = 1 + (size_t)(rand_r(&seed) % (sizeof name - 1));
        for (size_t j = 0; j < len; j++) {
            static const char pick[] = "./%%-aZ09vk-tmp\n\x7f\xc3";
            name[j] = pick[rand_r(&seed) % (sizeof pick - 1)];
        }
        name[len] = '\0';
        round_trip(name);
    }
}

/* Only what the encoder writes decodes: one name, one key. */
static void test_decode_strict(void **state)
{
    static const char *const bad[] = {
        "",  "%",  "%2",  "%2G", "%G2", "%2e", "%41",        ".x",
        ".", "..", "a/b", "%00", "x%",  "x%4", "a.vk-tmp-b",
    };

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(bad); i++) {
        char *dec;
        vk_error_clear();
        dec = format_name_decode(bad[i]);
        if (dec)
            fail_msg("'%s' decoded to '%s'", bad[i], dec);
        assert_int_equal(vk_error_code(), VK_ERR_CORRUPT);
    }
    assert_null(format_name_decode(NULL));
}

static void test_object_key(void **state)
{
    CLEANUP_FREE char *a = format_object_key("web1", "web1-20261128T010203Z", "vda.tar");
    CLEANUP_FREE char *b =
        format_object_key(".hidden-vm", ".hidden-vm-20261207T212923Z", "manifest.json");
    CLEANUP_FREE char *c = format_object_key("..", "..-20261207T212923Z", "vda.tar");

    (void)state;
    assert_string_equal(a, "web1/web1-20261128T010203Z/vda.tar");
    assert_string_equal(b, "%2Ehidden-vm/%2Ehidden-vm-20261207T212923Z/manifest.json");
    assert_string_equal(c, "%2E./%2E.-20261207T212923Z/vda.tar");
    assert_int_equal(transport_key_valid(b), 0);
    assert_int_equal(transport_key_valid(c), 0);
    assert_null(format_object_key("", "x", "vda.tar"));
    assert_null(format_object_key("x", "", "vda.tar"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_round_trip_all),
        cmocka_unit_test(test_decode_strict),
        cmocka_unit_test(test_object_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
