/* virtkeep - virtkeepd: the scheduler daemon (see daemon.h and
 * virtkeepd(8)).  A foreground process: run it under systemd (Type=simple)
 * or a terminal; it logs to stderr (with journal priority prefixes under
 * systemd) or to syslog. */
#include <config.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "src/daemon/daemon.h"
#include "common/version.h"

static void usage(FILE *f)
{
    fputs("Usage: virtkeepd [OPTIONS]\n"
          "\n"
          "Run the virtkeep scheduler: backups, copies, prunes and drills of every domain\n"
          "whose policy has objectives, and the control API for `virtkeep status` and\n"
          "`virtkeep jobs`.  Runs in the foreground; SIGTERM stops it, SIGHUP reloads the\n"
          "configuration.\n"
          "\n"
          "Options ([daemon] keys of the configuration give the defaults):\n"
          "  --config FILE       configuration file (default: the system or user file)\n"
          "  --catalog PATH      catalog database (default: [catalog] path)\n"
          "  -c, --connect URI   libvirt URI (default: $LIBVIRT_DEFAULT_URI, qemu:///system)\n"
          "  --socket PATH       control socket (default: [daemon] socket,\n"
          "                      " API_DEFAULT_SOCKET ")\n"
          "  --log stderr|syslog where log lines go (default: [daemon] log, stderr)\n"
          "  --tick SECONDS      time between scheduler passes (default: [daemon] tick, 10s)\n"
          "  --once              one scheduler pass; wait for its jobs; exit\n"
          "  -v, --verbose       debug logging\n"
          "  -h, --help          this help\n"
          "  -V, --version       the version\n"
          "\n"
          "Exit status: 0 stopped cleanly, 1 failed to start, 2 usage error.\n"
          "See virtkeepd(8).\n",
          f);
}

enum { OPT_CONFIG = 256, OPT_CATALOG, OPT_SOCKET, OPT_LOG, OPT_TICK, OPT_ONCE };

static int options_parse(int argc, char **argv, struct daemon_options *o)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"catalog", required_argument, NULL, OPT_CATALOG},
        {"connect", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"log", required_argument, NULL, OPT_LOG},
        {"tick", required_argument, NULL, OPT_TICK},
        {"once", no_argument, NULL, OPT_ONCE},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CONFIG:
            o->config_path = optarg;
            break;
        case OPT_CATALOG:
            o->catalog_path = optarg;
            break;
        case 'c':
            o->connect_uri = optarg;
            break;
        case OPT_SOCKET:
            o->socket_path = optarg;
            break;
        case OPT_LOG:
            if (strcmp(optarg, "stderr") != 0 && strcmp(optarg, "syslog") != 0) {
                fprintf(stderr, "virtkeepd: --log takes 'stderr' or 'syslog', not '%s'\n", optarg);
                return 2;
            }
            o->log = optarg;
            break;
        case OPT_TICK:
            if (vk_duration_parse(optarg, &o->tick) < 0) {
                fprintf(stderr, "virtkeepd: --tick: %s\n", vk_error_message());
                return 2;
            }
            if (o->tick == 0) {
                fprintf(stderr, "virtkeepd: --tick takes a positive duration, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_ONCE:
            o->once = true;
            break;
        case 'v':
            vk_log_set_level(VK_LOG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("virtkeepd %s\n", vk_version());
            return 0;
        default:
            fputs("Try 'virtkeepd --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "virtkeepd: unexpected argument '%s'\nTry 'virtkeepd --help'.\n",
                argv[optind]);
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    struct daemon_options o = {0};
    struct daemon *d;
    int r;

    /* From the start (daemon_new already opens the catalog):
     * a peer that goes away is an error to log, not a silent death.  Workers
     * get the default back before exec; virtkeep ignores it again. */
    signal(SIGPIPE, SIG_IGN);
    vk_log_init("virtkeepd");
    if ((r = options_parse(argc, argv, &o)) >= 0)
        return r;
    if (!(d = daemon_new(&o))) {
        vk_log_error("%s", vk_error_message());
        return 1;
    }
    r = daemon_run(d);
    if (r < 0)
        vk_log_error("%s", vk_error_message());
    daemon_free(d);
    return r < 0 ? 1 : 0;
}
