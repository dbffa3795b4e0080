/* virtkeep - deterministic disk content for the benchmarks.
 *
 *   gendisk --version
 *   gendisk make [--size S] [--random S] [--text S] [--zero S] [--seed N] RAW LAYOUT
 *   gendisk extract RAW LAYOUT OUT
 *
 * `make` writes RAW, a sparse raw image of --size bytes (default 4 GiB), and
 * LAYOUT, one line per region: "KIND OFFSET LENGTH", KIND being random
 * (incompressible), text (words from a fixed vocabulary, about 3-4x with
 * zstd -1) or zero (to be allocated with explicit zeros in the qcow2; left as
 * a hole in RAW).  Regions are multiples of 64 KiB (the qcow2 cluster), of
 * mixed lengths (64 KiB to 32 MiB), shuffled over the disk with holes
 * between them.  Everything derives from --seed through splitmix64 and
 * xoshiro256**, so the same arguments give the same bytes on every machine.
 *
 * `extract` concatenates the regions of LAYOUT read from RAW into OUT: the
 * allocated data alone, the input of the zstd baseline.
 *
 * The version string names the generator and its defaults: run.sh caches
 * images under it, so change it whenever the output would change.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/units.h"
#include "common/util.h"

#define GENDISK_VERSION "gendisk-v1"

#define UNIT ((uint64_t)64 * 1024) /* region granularity: one qcow2 cluster */
#define IO_SIZE (4 * 1024 * 1024)  /* write and copy buffer */

enum kind { KIND_RANDOM, KIND_TEXT, KIND_ZERO, KIND_HOLE };

static const char *const kind_names[] = {"random", "text", "zero", "hole"};

struct region {
    enum kind kind;
    uint64_t units;
};

struct layout {
    struct region *regions;
    size_t nr;
    size_t alloc;
};

struct rng {
    uint64_t s[4];
};

/* ------------------------------------------------------------------------ */
/* PRNG: splitmix64 seeds xoshiro256** (Blackman and Vigna). */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n small: the modulo bias is negligible here. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* ------------------------------------------------------------------------ */
/* Content. */

static void fill_random(struct rng *r, unsigned char *buf, size_t len)
{
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t v = rng_next(r);
        memcpy(buf + i, &v, 8);
    }
    if (i < len) {
        uint64_t v = rng_next(r);
        memcpy(buf + i, &v, len - i);
    }
}

static const char *const vocabulary[] = {
    "the",        "of",        "and",       "to",         "in",        "is",         "that",
    "for",        "it",        "as",        "with",       "was",       "on",         "be",
    "by",         "this",      "are",       "from",       "or",        "at",         "an",
    "which",      "not",       "have",      "disk",       "backup",    "domain",     "snapshot",
    "checkpoint", "archive",   "block",     "extent",     "offset",    "length",     "chunk",
    "index",      "server",    "client",    "request",    "response",  "error",      "warning",
    "kernel",     "memory",    "process",   "thread",     "file",      "directory",  "network",
    "interface",  "address",   "packet",    "buffer",     "queue",     "timeout",    "retry",
    "session",    "user",      "group",     "permission", "config",    "service",    "daemon",
    "journal",    "started",   "stopped",   "failed",     "succeeded", "connection", "accepted",
    "refused",    "closed",    "read",      "write",      "open",      "sync",       "flush",
    "mount",      "volume",    "partition", "sector",     "cluster",   "bitmap",     "dirty",
    "allocated",  "zero",      "hole",      "image",      "format",    "version",    "header",
    "trailer",    "checksum",  "digest",    "compressed", "stored",    "restore",    "verify",
    "catalog",    "target",    "remote",    "local",      "scheduler", "policy",     "retention",
    "migration",  "host",      "guest",     "virtual",    "machine",   "device",     "driver",
    "module",     "library",   "function",  "argument",   "return",    "value",      "pointer",
    "structure",  "between",   "after",     "before",     "during",    "while",      "until",
    "because",    "however",   "therefore", "although",   "whenever",  "otherwise",  "quickly",
    "slowly",     "carefully", "exactly",   "roughly",    "always",    "never",      "sometimes",
    "usually",    "rarely",    "again",     "already",    "system",    "database",   "transaction",
    "commit",     "rollback",  "table",     "column",     "row",       "query",      "result",
    "schema",     "replica",   "monday",    "tuesday",    "wednesday", "thursday",   "friday",
    "weekend",    "january",   "february",  "march",      "april",     "september",  "december",
};

#define NWORDS VK_ARRAY_SIZE(vocabulary)

/* A word index skewed towards the front of the vocabulary (the smaller of
 * two uniform draws), as word frequencies are in real text. */
static const char *pick_word(struct rng *r)
{
    uint64_t v = rng_next(r);
    uint64_t a = (v & 0xffffffff) % NWORDS, b = (v >> 32) % NWORDS;
    return vocabulary[a < b ? a : b];
}

/* Decimal digits of V (< 10^20) into TOK; returns their count. */
static size_t put_number(char *tok, uint64_t v)
{
    char digits[20];
    size_t n = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        tok[i] = digits[n - 1 - i];
    return n;
}

static size_t put_word(char *tok, const char *word)
{
    size_t n = strlen(word);

    memcpy(tok, word, n);
    return n;
}

/* Append the next token (a word, a number, punctuation, then a space or a
 * line break at column 72) to BUF at *POS, truncated at LEN.  This is the
 * hot loop of the generator: no stdio. */
static void put_token(struct rng *r, char *buf, size_t len, size_t *pos, size_t *col)
{
    char tok[48];
    uint64_t roll = rng_below(r, 100);
    size_t n;

    if (roll < 4)
        n = put_number(tok, rng_below(r, 100000));
    else
        n = put_word(tok, pick_word(r));
    if (roll >= 4 && roll < 10)
        tok[n++] = ',';
    else if (roll >= 10 && roll < 16)
        tok[n++] = '.';
    tok[n++] = ' ';
    if (*col + n > 72) {
        tok[n - 1] = '\n';
        *col = 0;
    } else {
        *col += n;
    }
    if (n > len - *pos)
        n = len - *pos;
    memcpy(buf + *pos, tok, n);
    *pos += n;
}

static void fill_text(struct rng *r, unsigned char *buf, size_t len)
{
    size_t pos = 0, col = 0;

    while (pos < len)
        put_token(r, (char *)buf, len, &pos, &col);
}

/* ------------------------------------------------------------------------ */
/* Layout. */

static int layout_add(struct layout *l, enum kind kind, uint64_t units)
{
    if (l->nr == l->alloc) {
        size_t n = l->alloc ? 2 * l->alloc : 256;
        struct region *p = vk_realloc_array(l->regions, n, sizeof(*p));
        if (!p)
            return -1;
        l->regions = p;
        l->alloc = n;
    }
    l->regions[l->nr].kind = kind;
    l->regions[l->nr].units = units;
    l->nr++;
    return 0;
}

/* Mostly short regions, some medium, a few long ones (in units). */
static uint64_t draw_units(struct rng *r)
{
    uint64_t roll = rng_below(r, 10);

    if (roll < 5)
        return 1 + rng_below(r, 16);
    if (roll < 9)
        return 16 + rng_below(r, 112);
    return 128 + rng_below(r, 385);
}

static int layout_add_kind(struct layout *l, struct rng *r, enum kind kind, uint64_t budget)
{
    while (budget > 0) {
        uint64_t n = draw_units(r);
        if (n > budget)
            n = budget;
        if (layout_add(l, kind, n) < 0)
            return -1;
        budget -= n;
    }
    return 0;
}

static void layout_shuffle(struct layout *l, struct rng *r)
{
    for (size_t i = l->nr; i > 1; i--) {
        size_t j = rng_below(r, i);
        struct region t = l->regions[i - 1];
        l->regions[i - 1] = l->regions[j];
        l->regions[j] = t;
    }
}

/* Spread HOLE units over the nr + 1 gaps around the regions (random
 * weights), giving a new list with the holes in place. */
static int layout_spread_holes(struct layout *l, struct rng *r, uint64_t hole)
{
    struct layout out = {0};
    CLEANUP_FREE uint64_t *w = vk_calloc(l->nr + 1, sizeof(*w));
    uint64_t sum = 0, given = 0;

    if (!w)
        return -1;
    for (size_t i = 0; i <= l->nr; i++)
        sum += w[i] = 1 + rng_below(r, 1000);
    for (size_t i = 0; i <= l->nr; i++) {
        uint64_t h = i == l->nr ? hole - given : hole * w[i] / sum;
        given += h;
        if ((h && layout_add(&out, KIND_HOLE, h) < 0) ||
            (i < l->nr && layout_add(&out, l->regions[i].kind, l->regions[i].units) < 0)) {
            free(out.regions);
            return -1;
        }
    }
    free(l->regions);
    *l = out;
    return 0;
}

struct make_options {
    uint64_t size, random, text, zero, seed;
};

static int layout_build(struct layout *l, const struct make_options *o)
{
    struct rng r;
    uint64_t total = o->size / UNIT;
    uint64_t used = (o->random + o->text + o->zero) / UNIT;

    if (used > total) {
        vk_error(VK_ERR_INVALID,
                 "the regions (%" PRIu64 " bytes) do not fit on a disk of %" PRIu64 " bytes",
                 used * UNIT, o->size);
        return -1;
    }
    rng_seed(&r, o->seed);
    if (layout_add_kind(l, &r, KIND_RANDOM, o->random / UNIT) < 0 ||
        layout_add_kind(l, &r, KIND_TEXT, o->text / UNIT) < 0 ||
        layout_add_kind(l, &r, KIND_ZERO, o->zero / UNIT) < 0)
        return -1;
    layout_shuffle(l, &r);
    return layout_spread_holes(l, &r, total - used);
}

/* ------------------------------------------------------------------------ */
/* make */

static int write_region(int fd, const char *path, enum kind kind, uint64_t offset, uint64_t length,
                        uint64_t seed, unsigned char *buf)
{
    struct rng r;

    /* Each region has its own stream, so a change in one region's content
     * or length leaves the others' bytes alone. */
    rng_seed(&r, seed ^ (offset * 0x9e3779b97f4a7c15ULL));
    for (uint64_t done = 0; done < length;) {
        size_t n = length - done < IO_SIZE ? length - done : IO_SIZE;
        if (kind == KIND_RANDOM)
            fill_random(&r, buf, n);
        else
            fill_text(&r, buf, n);
        if (lseek(fd, (off_t)(offset + done), SEEK_SET) < 0 || vk_write_all(fd, buf, n) < 0) {
            vk_error_errno(errno, "cannot write to image '%s' at offset %" PRIu64, path,
                           offset + done);
            return -1;
        }
        done += n;
    }
    return 0;
}

static int write_image(const struct layout *l, const struct make_options *o, const char *raw,
                       FILE *lay, const char *laypath)
{
    CLEANUP_CLOSE int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CLEANUP_FREE unsigned char *buf = vk_malloc(IO_SIZE);
    uint64_t offset = 0;

    if (fd < 0) {
        vk_error_errno(errno, "cannot create image '%s'", raw);
        return -1;
    }
    if (!buf)
        return -1;
    if (ftruncate(fd, (off_t)o->size) < 0) {
        vk_error_errno(errno, "cannot size image '%s'", raw);
        return -1;
    }
    for (size_t i = 0; i < l->nr; i++) {
        enum kind k = l->regions[i].kind;
        uint64_t len = l->regions[i].units * UNIT;
        if ((k == KIND_RANDOM || k == KIND_TEXT) &&
            write_region(fd, raw, k, offset, len, o->seed, buf) < 0)
            return -1;
        if (k != KIND_HOLE &&
            fprintf(lay, "%s %" PRIu64 " %" PRIu64 "\n", kind_names[k], offset, len) < 0) {
            vk_error_errno(errno, "cannot write layout '%s'", laypath);
            return -1;
        }
        offset += len;
    }
    if (fsync(fd) < 0) {
        vk_error_errno(errno, "cannot flush image '%s'", raw);
        return -1;
    }
    return 0;
}

static void print_summary(const struct layout *l)
{
    uint64_t bytes[4] = {0}, count[4] = {0};

    for (size_t i = 0; i < l->nr; i++) {
        bytes[l->regions[i].kind] += l->regions[i].units * UNIT;
        count[l->regions[i].kind]++;
    }
    for (int k = KIND_RANDOM; k <= KIND_HOLE; k++)
        printf("%s_bytes=%" PRIu64 " %s_regions=%" PRIu64 "\n", kind_names[k], bytes[k],
               kind_names[k], count[k]);
    printf("allocated_bytes=%" PRIu64 "\n",
           bytes[KIND_RANDOM] + bytes[KIND_TEXT] + bytes[KIND_ZERO]);
}

static int parse_size_opt(const char *name, const char *arg, uint64_t *out)
{
    if (vk_size_parse(arg, out) < 0)
        return -1;
    if (*out % UNIT) {
        vk_error(VK_ERR_INVALID, "option --%s '%s' is not a multiple of 64 KiB", name, arg);
        return -1;
    }
    return 0;
}

static int parse_make_options(int argc, char **argv, struct make_options *o)
{
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'}, {"random", required_argument, NULL, 'r'},
        {"text", required_argument, NULL, 't'}, {"zero", required_argument, NULL, 'z'},
        {"seed", required_argument, NULL, 'S'}, {NULL, 0, NULL, 0},
    };
    unsigned long long seed;
    int c;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 's':
            rc = parse_size_opt("size", optarg, &o->size);
            break;
        case 'r':
            rc = parse_size_opt("random", optarg, &o->random);
            break;
        case 't':
            rc = parse_size_opt("text", optarg, &o->text);
            break;
        case 'z':
            rc = parse_size_opt("zero", optarg, &o->zero);
            break;
        case 'S':
            rc = vk_parse_uint(optarg, UINT64_MAX, &seed);
            o->seed = seed;
            break;
        default:
            vk_error(VK_ERR_INVALID, "usage: gendisk make [OPTIONS] RAW LAYOUT");
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    if (argc - optind != 2) {
        vk_error(VK_ERR_INVALID, "usage: gendisk make [OPTIONS] RAW LAYOUT");
        return -1;
    }
    return 0;
}

static int cmd_make(int argc, char **argv)
{
    struct make_options o = {
        .size = 4ULL << 30,
        .random = 512ULL << 20,
        .text = 768ULL << 20,
        .zero = 256ULL << 20,
        .seed = 20261128,
    };
    struct layout l = {0};
    CLEANUP_FCLOSE FILE *lay = NULL;
    int rc = -1;

    if (parse_make_options(argc, argv, &o) < 0 || layout_build(&l, &o) < 0)
        goto out;
    lay = fopen(argv[optind + 1], "we");
    if (!lay) {
        vk_error_errno(errno, "cannot create layout '%s'", argv[optind + 1]);
        goto out;
    }
    if (write_image(&l, &o, argv[optind], lay, argv[optind + 1]) < 0)
        goto out;
    if (fflush(lay) != 0) {
        vk_error_errno(errno, "cannot write layout '%s'", argv[optind + 1]);
        goto out;
    }
    rc = 0;
    print_summary(&l);
out:
    free(l.regions);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* extract */

static int copy_range(int in, const char *inpath, int out, const char *outpath, uint64_t offset,
                      uint64_t length, unsigned char *buf)
{
    for (uint64_t done = 0; done < length;) {
        size_t n = length - done < IO_SIZE ? length - done : IO_SIZE;
        ssize_t got = vk_pread_all(in, buf, n, (off_t)(offset + done));
        if (got < 0) {
            vk_error_prefix("cannot read image '%s'", inpath);
            return -1;
        }
        if ((size_t)got != n) {
            vk_error(VK_ERR_CORRUPT, "image '%s' ends before offset %" PRIu64, inpath,
                     offset + done + n);
            return -1;
        }
        if (vk_write_all(out, buf, n) < 0) {
            vk_error_prefix("cannot write '%s'", outpath);
            return -1;
        }
        done += n;
    }
    return 0;
}

static int cmd_extract(int argc, char **argv)
{
    CLEANUP_CLOSE int in = -1;
    CLEANUP_CLOSE int out = -1;
    CLEANUP_FCLOSE FILE *lay = NULL;
    CLEANUP_FREE unsigned char *buf = vk_malloc(IO_SIZE);
    char kind[16];
    uint64_t offset, length;

    if (argc != 4) {
        vk_error(VK_ERR_INVALID, "usage: gendisk extract RAW LAYOUT OUT");
        return -1;
    }
    if (!buf)
        return -1;
    in = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        vk_error_errno(errno, "cannot open image '%s'", argv[1]);
        return -1;
    }
    lay = fopen(argv[2], "re");
    if (!lay) {
        vk_error_errno(errno, "cannot open layout '%s'", argv[2]);
        return -1;
    }
    out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        vk_error_errno(errno, "cannot create '%s'", argv[3]);
        return -1;
    }
    while (fscanf(lay, "%15s %" SCNu64 " %" SCNu64, kind, &offset, &length) == 3) {
        if (copy_range(in, argv[1], out, argv[3], offset, length, buf) < 0)
            return -1;
    }
    if (ferror(lay) || !feof(lay)) {
        vk_error(VK_ERR_CORRUPT, "layout '%s' is malformed", argv[2]);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc;

    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", GENDISK_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "make") == 0)
        rc = cmd_make(argc - 1, argv + 1);
    else if (argc >= 2 && strcmp(argv[1], "extract") == 0)
        rc = cmd_extract(argc - 1, argv + 1);
    else {
        vk_error(VK_ERR_INVALID, "usage: gendisk --version | make [OPTIONS] RAW LAYOUT | "
                                 "extract RAW LAYOUT OUT");
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "gendisk: %s\n", vk_error_message());
        return 1;
    }
    return 0;
}
