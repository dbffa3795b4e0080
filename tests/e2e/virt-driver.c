/* virt-driver: one src/virt.h operation per invocation, for
 * tests/e2e/test-virt-e2e.sh.  Errors print the recorded message and exit 1;
 * a failure that calls for a full backup (virt_error_needs_full) exits 2,
 * a missing guest agent exits 3.  The URI is $VK_LIBVIRT_URI or
 * qemu:///system. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "src/virt/virt.h"

struct ctx {
    struct virt_conn *c;
    struct virt_domain *d;
    struct virt_disk_list disks;
    char **selected;
};

static const char *failure_name(enum virt_failure f)
{
    static const char *const names[] = {"none",          "other",   "inconsistent",
                                        "bitmap-exists", "missing", "no-agent"};
    return (size_t)f < VK_ARRAY_SIZE(names) ? names[f] : "?";
}

static int fail(void)
{
    fprintf(stderr, "virt-driver: %s [%s]\n", vk_error_message(),
            failure_name(virt_last_failure()));
    if (virt_last_failure() == VIRT_FAIL_NO_AGENT)
        return 3;
    return virt_error_needs_full() ? 2 : 1;
}

static char *file_read(const char *path)
{
    CLEANUP_FCLOSE FILE *fp = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0;

    if (!fp || getdelim(&buf, &len, '\0', fp) < 0) {
        free(buf);
        vk_error(VK_ERR_IO, "cannot read '%s'.", path);
        return NULL;
    }
    return buf;
}

static int ctx_open(struct ctx *x, const char *domain)
{
    const char *uri = getenv("VK_LIBVIRT_URI");
    CLEANUP_FREE char *xml = NULL;

    x->c = virt_conn_open(uri ? uri : "qemu:///system", 0);
    if (!x->c || !(x->d = virt_domain_lookup(x->c, domain)))
        return -1;
    xml = virt_domain_get_xml(x->d, 0);
    if (!xml || virt_disks_parse(xml, &x->disks) < 0)
        return -1;
    x->selected = virt_disks_select(&x->disks, x->d->name, NULL, NULL);
    return x->selected ? 0 : -1;
}

static void ctx_close(struct ctx *x)
{
    vk_strv_free(x->selected);
    virt_disks_clear(&x->disks);
    virt_domain_free(x->d);
    virt_conn_close(x->c);
}

static int print_free(char *s)
{
    if (!s)
        return -1;
    fputs(s, stdout);
    free(s);
    return 0;
}

static int do_list(struct ctx *x, char **a, int n)
{
    char **names = virt_checkpoint_list(
        x->d, n > 0 && strcmp(a[0], "all") == 0 ? VIRT_CHECKPOINT_LIST_ALL : 0);
    if (!names)
        return -1;
    for (size_t i = 0; names[i]; i++)
        printf("%s\n", names[i]);
    vk_strv_free(names);
    return 0;
}

/* backup-begin RUNDIR SOCKET CHECKPOINT|- INCREMENTAL|- */
static int do_begin(struct ctx *x, char **a, int n)
{
    CLEANUP_FREE char *bxml = NULL, *cxml = NULL;
    const char *cp = n > 2 && strcmp(a[2], "-") ? a[2] : NULL;
    const char *inc = n > 3 && strcmp(a[3], "-") ? a[3] : NULL;

    if (n < 2)
        return vk_error(VK_ERR_INVALID, "usage: backup-begin DOM RUNDIR SOCKET [CP [INC]]"), -1;
    bxml = virt_backup_xml_build(a[1], a[0], inc, &x->disks, x->selected, 0);
    if (cp)
        cxml = virt_checkpoint_xml_build(cp, NULL, 0, &x->disks, x->selected, 0);
    if (!bxml || (cp && !cxml))
        return -1;
    return virt_backup_begin(x->d, bxml, cxml, 0);
}

static int do_abort(struct ctx *x, char **a, int n)
{
    (void)a;
    (void)n;
    if (virt_backup_abort(x->d, 30000) < 0)
        return -1;
    printf("%d\n", virt_backup_is_active(x->d));
    return 0;
}

static int do_redefine(struct ctx *x, char **a, int n)
{
    CLEANUP_FREE char *xml = n > 0 ? file_read(a[0]) : NULL;
    bool validate = n > 1 && strcmp(a[1], "validate") == 0;

    if (!xml)
        return -1;
    return virt_checkpoint_redefine(x->d, xml, validate ? VIRT_CHECKPOINT_VALIDATE : 0);
}

static int do_delete(struct ctx *x, char **a, int n)
{
    bool meta = n > 1 && strcmp(a[1], "metadata") == 0;
    return n < 1 ? -1
                 : virt_checkpoint_delete(x->d, a[0], meta ? VIRT_CHECKPOINT_METADATA_ONLY : 0);
}

static int do_offline(struct ctx *x, char **a, int n)
{
    const char *parent = n > 1 ? a[1] : NULL;
    return n < 1 ? -1
                 : print_free(virt_checkpoint_create_offline(x->d, a[0], parent, &x->disks,
                                                             x->selected, 0));
}

/* nbd-map DISK RUNDIR BITMAP: qemu-nbd on the image, nbdinfo --map of the
 * bitmap context, stop. */
static int do_nbd_map(struct ctx *x, char **a, int n)
{
    const struct virt_disk *disk = n > 2 ? virt_disks_find(&x->disks, a[0]) : NULL;
    struct virt_nbd *nbd;
    CLEANUP_FREE char *cmd = NULL;
    int r;

    if (!disk)
        return vk_error(VK_ERR_INVALID, "usage: nbd-map DOM DISK RUNDIR BITMAP"), -1;
    nbd = virt_nbd_start(disk, a[1], a[2], 0);
    if (!nbd)
        return -1;
    cmd = vk_asprintf("nbdinfo --map='%s' 'nbd+unix:///%s?socket=%s'", nbd->bitmap_context,
                      nbd->export_name, nbd->socket);
    fflush(stdout);
    r = cmd ? system(cmd) : -1;
    virt_nbd_stop(nbd);
    if (r != 0)
        vk_error(VK_ERR_IO, "nbdinfo failed.");
    return r == 0 ? 0 : -1;
}

static int dispatch(struct ctx *x, const char *op, char **a, int n)
{
    if (strcmp(op, "checkpoint-list") == 0)
        return do_list(x, a, n);
    if (strcmp(op, "checkpoint-xml") == 0)
        return n < 1 ? -1 : print_free(virt_checkpoint_get_xml(x->d, a[0]));
    if (strcmp(op, "checkpoint-current") == 0)
        return print_free(virt_checkpoint_current(x->d));
    if (strcmp(op, "checkpoint-redefine") == 0)
        return do_redefine(x, a, n);
    if (strcmp(op, "checkpoint-delete") == 0)
        return do_delete(x, a, n);
    if (strcmp(op, "checkpoint-offline") == 0)
        return do_offline(x, a, n);
    if (strcmp(op, "checkpoint-check") == 0)
        return n < 1 ? -1 : virt_checkpoint_check(x->d, a[0], &x->disks, x->selected, 0);
    if (strcmp(op, "checkpoint-discard") == 0)
        return n < 1 ? -1 : virt_checkpoint_discard(x->d, a[0], &x->disks, x->selected, 0);
    if (strcmp(op, "backup-begin") == 0)
        return do_begin(x, a, n);
    if (strcmp(op, "backup-xml") == 0)
        return print_free(virt_backup_get_xml(x->d));
    if (strcmp(op, "backup-abort") == 0)
        return do_abort(x, a, n);
    if (strcmp(op, "nbd-map") == 0)
        return do_nbd_map(x, a, n);
    if (strcmp(op, "freeze") == 0)
        return virt_fs_freeze(x->d);
    vk_error(VK_ERR_INVALID, "unknown operation '%s'.", op);
    return -1;
}

int main(int argc, char **argv)
{
    struct ctx x = {0};
    int r;

    if (argc >= 3 && strcmp(argv[1], "rundir-create") == 0) {
        char *dir = virt_rundir_create(argv[2], 0);
        return dir ? (printf("%s\n", dir), free(dir), 0) : fail();
    }
    if (argc >= 3 && strcmp(argv[1], "rundir-remove") == 0)
        return virt_rundir_remove(argv[2]) == 0 ? 0 : fail();
    if (argc < 3) {
        fprintf(stderr, "usage: virt-driver OPERATION DOMAIN [ARGS...]\n");
        return 1;
    }
    r = ctx_open(&x, argv[2]);
    if (r == 0)
        r = dispatch(&x, argv[1], argv + 3, argc - 3);
    r = r == 0 ? 0 : fail();
    ctx_close(&x);
    return r;
}
