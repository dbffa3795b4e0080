/* virtkeep - small helpers shared by every module. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

static void *oom(void)
{
    vk_error(VK_ERR_INTERNAL, "out of memory");
    return NULL;
}

void *vk_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    return p ? p : oom();
}

void *vk_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom();
}

void *vk_realloc_array(void *ptr, size_t n, size_t size)
{
    void *p = reallocarray(ptr, n ? n : 1, size ? size : 1);
    return p ? p : oom();
}

char *vk_strdup(const char *s)
{
    char *p = strdup(s ? s : "");
    return p ? p : oom();
}

char *vk_strndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    return p ? p : oom();
}

char *vk_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int r;

    va_start(ap, fmt);
    r = vasprintf(&s, fmt, ap);
    va_end(ap);
    return r < 0 ? oom() : s;
}

void vk_strv_free(char **strv)
{
    if (!strv)
        return;
    for (size_t i = 0; strv[i]; i++)
        free(strv[i]);
    free(strv);
}

size_t vk_strv_len(char *const *strv)
{
    size_t n = 0;
    while (strv && strv[n])
        n++;
    return n;
}

char *vk_trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

char **vk_strv_split(const char *str, char sep)
{
    char **v = NULL;
    size_t n = 0;
    const char *p = str;

    for (;;) {
        const char *e = strchr(p, sep);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *item = vk_strndup(p, len), **nv;
        char *t;

        if (!item)
            goto fail;
        t = vk_trim(item);
        if (!*t) {
            free(item);
            vk_error(VK_ERR_INVALID, "empty item in list '%s'", str);
            goto fail;
        }
        memmove(item, t, strlen(t) + 1);
        nv = vk_realloc_array(v, n + 2, sizeof *v);
        if (!nv) {
            free(item);
            goto fail;
        }
        v = nv;
        v[n++] = item;
        v[n] = NULL;
        if (!e)
            return v;
        p = e + 1;
    }
fail:
    vk_strv_free(v);
    return NULL;
}

bool vk_strv_contains(char *const *strv, const char *s)
{
    for (size_t i = 0; strv && strv[i]; i++)
        if (strcmp(strv[i], s) == 0)
            return true;
    return false;
}

int vk_strv_add(char ***strv, const char *s)
{
    size_t n = vk_strv_len(*strv);
    char **v = vk_realloc_array(*strv, n + 2, sizeof *v);

    if (!v)
        return -1;
    *strv = v;
    v[n + 1] = NULL;
    v[n] = vk_strdup(s);
    return v[n] ? 0 : -1;
}

int vk_parse_uint(const char *str, unsigned long long max, unsigned long long *out)
{
    unsigned long long v;
    char *end;

    if (!str || !isdigit((unsigned char)*str))
        goto bad;
    errno = 0;
    v = strtoull(str, &end, 10);
    if (errno || *end || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    vk_error(VK_ERR_INVALID, "invalid number '%s': expected a whole number from 0 to %llu",
             str ? str : "", max);
    return -1;
}

int vk_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t r = write(fd, p, len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

ssize_t vk_pread_all(int fd, void *buf, size_t len, off_t offset)
{
    char *p = buf;
    size_t done = 0;

    while (done < len) {
        ssize_t r = pread(fd, p + done, len - done, offset + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

uint64_t vk_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
