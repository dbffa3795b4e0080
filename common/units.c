/* virtkeep - size and duration parsers and formatters. */
#include <config.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "units.h"

struct unit {
    const char *name;
    uint64_t factor;
};

static const struct unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1ULL << 10},
    {"kib", 1ULL << 10},
    {"kb", 1000ULL},
    {"m", 1ULL << 20},
    {"mib", 1ULL << 20},
    {"mb", 1000000ULL},
    {"g", 1ULL << 30},
    {"gib", 1ULL << 30},
    {"gb", 1000000000ULL},
    {"t", 1ULL << 40},
    {"tib", 1ULL << 40},
    {"tb", 1000000000000ULL},
    {"p", 1ULL << 50},
    {"pib", 1ULL << 50},
    {"pb", 1000000000000000ULL},
    {"e", 1ULL << 60},
    {"eib", 1ULL << 60},
    {"eb", 1000000000000000000ULL},
};

static const struct unit *find_unit(const struct unit *units, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(units[i].name, name) == 0)
            return &units[i];
    return NULL;
}

/* Parse leading decimal digits (and optionally one fraction).  Returns the
 * number of characters consumed, 0 if there were no digits. */
static size_t parse_decimal(const char *s, uint64_t *whole, uint64_t *frac, uint64_t *frac_div,
                            bool allow_fraction, bool *overflow)
{
    size_t i = 0;

    *whole = 0;
    *frac = 0;
    *frac_div = 1;
    *overflow = false;
    while (isdigit((unsigned char)s[i])) {
        unsigned int d = (unsigned int)(s[i] - '0');
        if (*whole > (UINT64_MAX - d) / 10)
            *overflow = true;
        else
            *whole = *whole * 10 + d;
        i++;
    }
    if (i == 0)
        return 0;
    if (allow_fraction && s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
        i++;
        while (isdigit((unsigned char)s[i])) {
            if (*frac_div < 1000000000000ULL) {
                *frac = *frac * 10 + (uint64_t)(s[i] - '0');
                *frac_div *= 10;
            }
            i++;
        }
    }
    return i;
}

int vk_size_parse(const char *str, uint64_t *bytes)
{
    uint64_t whole, frac, frac_div, result;
    const struct unit *u;
    bool overflow;
    size_t n;
    const char *p;

    if (!str || !*str) {
        vk_error(VK_ERR_INVALID, "invalid size '': expected a number with an optional unit, "
                                 "such as 4096, 512K or 4GiB");
        return -1;
    }
    n = parse_decimal(str, &whole, &frac, &frac_div, true, &overflow);
    if (n == 0)
        goto garbage;
    p = str + n;
    if (*p == ' ' && p[1] != '\0' && p[1] != ' ')
        p++; /* "4 GiB" */
    else if (*p == ' ')
        goto garbage;
    u = find_unit(size_units, sizeof size_units / sizeof size_units[0], p);
    if (!u)
        goto garbage;
    if (overflow || (u->factor > 1 && whole > UINT64_MAX / u->factor))
        goto too_big;
    result = whole * u->factor;
    if (frac) {
        uint64_t extra;
        if (u->factor == 1) /* fractions of a byte make no sense */
            goto garbage;
        extra = (uint64_t)((long double)frac / (long double)frac_div * (long double)u->factor);
        if (result > UINT64_MAX - extra)
            goto too_big;
        result += extra;
    }
    if (result > VK_SIZE_MAX)
        goto too_big;
    *bytes = result;
    return 0;

garbage:
    vk_error(VK_ERR_INVALID,
             "invalid size '%s': expected a number with an optional unit "
             "(B, K/KiB, M/MiB, G/GiB, T/TiB, P/PiB, E/EiB, or KB/MB/GB/TB for powers of 1000)",
             str);
    return -1;
too_big:
    vk_error(VK_ERR_INVALID, "invalid size '%s': too large (the limit is 1 EiB)", str);
    return -1;
}

static const struct unit duration_units[] = {
    {"w", 7 * 86400ULL}, {"d", 86400ULL}, {"h", 3600ULL}, {"m", 60ULL}, {"s", 1ULL},
};
#define N_DURATION_UNITS (sizeof duration_units / sizeof duration_units[0])

/* Index of the unit spelled at p (one letter), or -1. */
static int duration_unit_at(const char *p)
{
    for (size_t i = 0; i < N_DURATION_UNITS; i++)
        if (tolower((unsigned char)*p) == duration_units[i].name[0])
            return (int)i;
    return -1;
}

int vk_duration_parse(const char *str, uint64_t *seconds)
{
    uint64_t total = 0, value, frac, frac_div;
    int last_unit = -1;
    bool overflow;
    const char *p = str;

    if (!str || !*str)
        goto garbage;
    while (*p) {
        size_t n = parse_decimal(p, &value, &frac, &frac_div, false, &overflow);
        int ui;
        uint64_t factor;

        if (n == 0)
            goto garbage;
        p += n;
        if (*p == '\0' && last_unit < 0) {
            ui = (int)N_DURATION_UNITS - 1; /* a bare number is seconds */
        } else {
            ui = duration_unit_at(p);
            if (ui < 0 || ui <= last_unit)
                goto garbage; /* unknown, repeated or out of order */
            p++;
        }
        factor = duration_units[ui].factor;
        if (overflow || value > UINT64_MAX / factor || total > UINT64_MAX - value * factor)
            goto too_big;
        total += value * factor;
        if (total > VK_DURATION_MAX)
            goto too_big;
        last_unit = ui;
    }
    *seconds = total;
    return 0;

garbage:
    vk_error(VK_ERR_INVALID,
             "invalid duration '%s': expected a number of seconds or units in order "
             "w, d, h, m, s, such as 90s, 15m, 1h30m or 7d",
             str ? str : "");
    return -1;
too_big:
    vk_error(VK_ERR_INVALID,
             "invalid duration '%s': too large (the limit is 36500d, about 100 years)", str);
    return -1;
}

char *vk_size_format(uint64_t bytes, char *buf, size_t len)
{
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned int i = 0;
    uint64_t div = 1;

    while (i + 1 < sizeof names / sizeof names[0] && bytes / div >= 1024) {
        div <<= 10;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else if (bytes % div == 0)
        snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / div), names[i]);
    else
        snprintf(buf, len, "%.1f %s", (double)bytes / (double)div, names[i]);
    return buf;
}

char *vk_duration_format(uint64_t seconds, char *buf, size_t len)
{
    size_t used = 0;

    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (seconds == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    /* Weeks read badly in reports: start at days. */
    for (size_t i = 1; i < N_DURATION_UNITS; i++) {
        uint64_t f = duration_units[i].factor;
        uint64_t v = seconds / f;
        int r;

        if (v == 0)
            continue;
        seconds -= v * f;
        r = snprintf(buf + used, len - used, "%llu%s", (unsigned long long)v,
                     duration_units[i].name);
        if (r < 0 || (size_t)r >= len - used)
            break;
        used += (size_t)r;
    }
    return buf;
}
