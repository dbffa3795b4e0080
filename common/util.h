/* virtkeep - small helpers shared by every module. */
#ifndef VIRTKEEP_UTIL_H
#define VIRTKEEP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that records VK_ERR_INTERNAL "out of memory" on failure. */
void *vk_malloc(size_t size);
void *vk_calloc(size_t n, size_t size);
void *vk_realloc_array(void *ptr, size_t n, size_t size);
char *vk_strdup(const char *s);
char *vk_strndup(const char *s, size_t n);
char *vk_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* NULL-terminated string vectors. */
void vk_strv_free(char **strv);
size_t vk_strv_len(char *const *strv);
/* Split "a,b, c" on commas; trims spaces; rejects empty items. */
char **vk_strv_split(const char *str, char sep);
bool vk_strv_contains(char *const *strv, const char *s);
/* Append a copy of S to the NULL-terminated *STRV (NULL: an empty list).
 * -1 on ENOMEM, *STRV still NULL-terminated and owned by the caller. */
int vk_strv_add(char ***strv, const char *s);

/* Strict integer parsing: whole string, base 10, range-checked. */
int vk_parse_uint(const char *str, unsigned long long max, unsigned long long *out);

/* Write and read whole buffers, retrying on EINTR and short counts. */
int vk_write_all(int fd, const void *buf, size_t len);
ssize_t vk_pread_all(int fd, void *buf, size_t len, off_t offset);

/* Monotonic clock in nanoseconds. */
uint64_t vk_now_ns(void);

/* Trim leading and trailing white space in place; returns s. */
char *vk_trim(char *s);

#endif
