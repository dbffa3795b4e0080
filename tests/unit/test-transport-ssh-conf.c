/* The ssh:// backend's I/O timeout, without an SSH server: how
 * ssh_timeout_parse reads the target's timeout_seconds and
 * $VIRTKEEP_SSH_TIMEOUT, that transport_open refuses a bad value before it
 * connects, and that the timeout bounds a handshake with a server that
 * never answers (a listening socket nobody accepts on).
 */
#include <config.h>

#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "transport/ssh-int.h"
#include "transport/transport.h"

#define UNTOUCHED (-12345L)

static void test_default(void **state)
{
    long ms = UNTOUCHED;

    (void)state;
    assert_int_equal(ssh_timeout_parse(NULL, 0, &ms), 0);
    assert_int_equal(ms, SSH_DEFAULT_TIMEOUT_S * 1000L);
    ms = UNTOUCHED;
    assert_int_equal(ssh_timeout_parse("", 0, &ms), 0); /* set but empty: unset */
    assert_int_equal(ms, SSH_DEFAULT_TIMEOUT_S * 1000L);
}

static void test_env(void **state)
{
    long ms = UNTOUCHED;

    (void)state;
    assert_int_equal(ssh_timeout_parse("5", 0, &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(ssh_timeout_parse("1", 0, &ms), 0);
    assert_int_equal(ms, 1000);
    assert_int_equal(ssh_timeout_parse("86400", 0, &ms), 0);
    assert_int_equal(ms, 86400L * 1000);
}

/* The target's own timeout_seconds wins over the environment, even over a
 * value that would be refused. */
static void test_option_wins(void **state)
{
    long ms = UNTOUCHED;

    (void)state;
    assert_int_equal(ssh_timeout_parse("5", 7, &ms), 0);
    assert_int_equal(ms, 7000);
    ms = UNTOUCHED;
    assert_int_equal(ssh_timeout_parse("soon", 3, &ms), 0);
    assert_int_equal(ms, 3000);
    ms = UNTOUCHED;
    assert_int_equal(ssh_timeout_parse(NULL, 90, &ms), 0);
    assert_int_equal(ms, 90000);
}

static void test_env_refused(void **state)
{
    static const char *const bad[] = {"0",  "abc", "5s",    "-1",   " 5",
                                      "5 ", "1.5", "86401", "0x10", "99999999999999999999999"};

    (void)state;
    for (size_t i = 0; i < VK_ARRAY_SIZE(bad); i++) {
        long ms = UNTOUCHED;
        const char *msg;
        vk_error_clear();
        if (ssh_timeout_parse(bad[i], 0, &ms) != -1)
            fail_msg("'%s' was taken as a timeout (%ld ms)", bad[i], ms);
        assert_int_equal(ms, UNTOUCHED);
        assert_int_equal(vk_error_code(), VK_ERR_INVALID);
        msg = vk_error_message();
        assert_non_null(msg);
        assert_non_null(strstr(msg, SSH_TIMEOUT_ENV));
        assert_non_null(strstr(msg, bad[i]));
        assert_non_null(strstr(msg, "86400"));
    }
}

/* transport_open reads the variable and refuses a bad one before it
 * connects: port 1 on the loopback would be refused otherwise. */
static void test_open_refuses_bad_env(void **state)
{
    struct transport *t;

    (void)state;
    assert_int_equal(setenv(SSH_TIMEOUT_ENV, "ten", 1), 0);
    t = transport_open("offsite", "ssh://vk@127.0.0.1:1/srv/vk", NULL);
    unsetenv(SSH_TIMEOUT_ENV);
    assert_null(t);
    assert_int_equal(vk_error_code(), VK_ERR_INVALID);
    assert_non_null(strstr(vk_error_message(), "VIRTKEEP_SSH_TIMEOUT='ten'"));
    assert_null(strstr(vk_error_message(), "connect"));
}

/* A server that accepts the TCP connection and never speaks: the
 * handshake gives up after the timeout from the environment. */
static void test_timeout_bounds_handshake(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char url[128];
    struct transport *t;
    uint64_t t0, elapsed;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    snprintf(url, sizeof url, "ssh://vk@127.0.0.1:%u/srv/vk", (unsigned int)ntohs(sa.sin_port));
    assert_int_equal(setenv(SSH_TIMEOUT_ENV, "1", 1), 0);
    t0 = vk_now_ns();
    t = transport_open("mute", url, NULL);
    elapsed = vk_now_ns() - t0;
    unsetenv(SSH_TIMEOUT_ENV);
    close(fd);
    assert_null(t);
    print_message("after %.2f s: %s\n", (double)elapsed / 1e9, vk_error_message());
    assert_int_equal(vk_error_code(), VK_ERR_NETWORK);
    assert_non_null(strstr(vk_error_message(), "I/O timeout of 1 s"));
    assert_true(elapsed >= 900ULL * 1000000);
    assert_true(elapsed < 10ULL * 1000000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_option_wins),
        cmocka_unit_test(test_env_refused),
        cmocka_unit_test(test_open_refuses_bad_env),
        cmocka_unit_test(test_timeout_bounds_handshake),
    };

    unsetenv(SSH_TIMEOUT_ENV);
    return cmocka_run_group_tests_name("transport-ssh-conf", tests, NULL, NULL);
}
