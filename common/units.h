/* virtkeep - size and duration parsers and formatters.
 *
 * Sizes: "4096", "512K", "4GiB", "1.5G", "10 MB".  K/M/G/T/P/E and KiB...EiB
 * are powers of 1024 (as qemu-img and virsh use them); KB/MB/GB/TB are
 * powers of 1000.  A bare number is bytes.
 *
 * Durations: "90", "90s", "15m", "1h30m", "2d", "1w", "500ms" is rejected
 * (the unit is the second).  A bare number is seconds.
 *
 * Parsers are strict: empty strings, signs, garbage, trailing text, a unit
 * repeated or out of order, and values above VK_SIZE_MAX or VK_DURATION_MAX
 * all fail with VK_ERR_INVALID and a message that quotes the input.
 */
#ifndef VIRTKEEP_UNITS_H
#define VIRTKEEP_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* The largest size and duration a parser accepts: 1 EiB, 100 years.  Far
 * beyond any disk, part or period, yet small enough that callers can turn
 * them into int64 bytes, seconds, milliseconds or nanoseconds, or add them
 * to the current time, without overflow. */
#define VK_SIZE_MAX (1ULL << 60)
#define VK_DURATION_MAX (36500ULL * 86400)

int vk_size_parse(const char *str, uint64_t *bytes);
int vk_duration_parse(const char *str, uint64_t *seconds);

/* "1.5 GiB", "512 B", "4.0 MiB": binary units, at most one decimal. */
char *vk_size_format(uint64_t bytes, char *buf, size_t len);
/* "1h30m", "15m", "45s", "2d3h", "0s": exact, largest units first. */
char *vk_duration_format(uint64_t seconds, char *buf, size_t len);

#define VK_SIZE_BUFLEN 32
#define VK_DURATION_BUFLEN 48

#endif
