/* virtkeep - command line front end: global options, the command table,
 * help, and the mapping from errors to exit codes.  The commands live in
 * cli-*.c files. */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "src/cli/cli.h"
#include "src/conf/conf.h"
#include "common/version.h"
#include "transport/transport.h"

#define DEFAULT_URI "qemu:///system"

static int cmd_help(struct cli *cli, int argc, char **argv);
static int cmd_version(struct cli *cli, int argc, char **argv);

/* Commands, in the order --help lists them.  backup, list, show and restore
 * slot in here. */
const struct cli_command cli_commands[] = {
    {"help", "[COMMAND]", "Show help for virtkeep or for one command.", NULL, cmd_help},
    {"version", "", "Show the version.", NULL, cmd_version},
    {"config", "check [--json] [FILE]", "Validate a configuration file.",
     "Reads FILE (by default the file given with --config, or the default configuration\n"
     "file) and checks every section and key: syntax, values, references between\n"
     "sections, target URLs and the permissions of secret files.  Prints\n"
     "\"FILE: OK (N targets, N policies, N domains)\", or the first error as\n"
     "FILE:LINE: [SECTION] KEY: what is wrong: what is expected.\n"
     "\n"
     "  --json   print the result as a JSON object on stdout:\n"
     "           {\"file\", \"valid\", \"targets\", \"policies\", \"domains\"} or\n"
     "           {\"file\", \"valid\": false, \"error\": {\"message\", \"line\"}}\n"
     "\n"
     "Exit status: 0 when the file is valid, 2 when it is not or cannot be read.\n",
     cli_cmd_config},
    {"targets", "[--json] [URL...]", "List targets and whether each is reachable.",
     "Lists the targets of the configuration file, and the URLs given as arguments, with\n"
     "their scheme and whether each is reachable (opened and checked for writing).\n"
     "A URL is file:///PATH (or an absolute path), ssh://[USER@]HOST[:PORT]/PATH or\n"
     "s3://BUCKET/PREFIX.  URLs work without any configuration file; credentials for\n"
     "ssh and s3 come from [target NAME] sections (never from the command line).\n"
     "\n"
     "  --json   print {\"targets\": [{\"name\", \"url\", \"scheme\", \"reachable\",\n"
     "           \"error\"}, ...], \"unreachable\": N} on stdout\n"
     "\n"
     "Exit status: 0 when every target is reachable, 5 when some are not, 2 for a\n"
     "usage or configuration error, 3 for an argument that is neither a URL nor a\n"
     "configured target.\n",
     cli_cmd_targets},
    {"backup", "DOMAIN [OPTIONS]", "Back up the disks of a domain.",
     "Backs up every disk of DOMAIN (cdrom, floppy and LUN devices are skipped) into one\n"
     "archive per disk, DOMAIN/BACKUP_ID/DISK.tar, then DOMAIN/BACKUP_ID/manifest.json on\n"
     "the target, and records it in the catalog.  A running domain is read through a\n"
     "libvirt pull-mode backup job, a shut-off one through qemu-nbd; both leave a\n"
     "checkpoint (except copy) so that the next incremental works either way.\n"
     "\n"
     "  --level LEVEL       full, inc (since the last backup), diff (since the last full),\n"
     "                      copy (no checkpoint) or auto (default: inc when the chain is\n"
     "                      usable, else full).  When an inc or diff cannot be taken (no\n"
     "                      chain, checkpoint inconsistent after a QEMU crash, stale\n"
     "                      bitmap) a full is taken instead and one line says why.\n"
     "                      Raw disks have no dirty bitmap: they are backed up in full.\n"
     "  --target NAME|URL   a configured target or a URL (file:///PATH, ssh://, s3://);\n"
     "                      default: the first target of the domain's policy\n"
     "  --disks LIST        back up only these disks (vda,vdb)\n"
     "  --exclude LIST      back up every disk but these\n"
     "  --quiesce           freeze the guest file systems (guest agent) around the start;\n"
     "                      fails when the domain has no agent\n"
     "  --compress-level N  zstd level 1..19 (default 3)\n"
     "  --threads N         compression threads (default: online CPUs)\n"
     "  --json              print the result as one JSON object on stdout: backup, domain,\n"
     "                      level, requested_level, parent, reason, checkpoint, target,\n"
     "                      status, started, finished, duration_seconds, bytes_read,\n"
     "                      bytes_stored, disks [{disk, format, virtual_size, key,\n"
     "                      archive_size, sha256, data_bytes, zero_bytes, stored_bytes,\n"
     "                      chunks}], manifest_key\n"
     "\n"
     "On a terminal, progress (bytes, rate, ETA) is shown on stderr; otherwise only one\n"
     "summary line is printed on stdout (none with -q).  A failed or interrupted backup\n"
     "is marked failed in the catalog and leaves no archive, no libvirt job and no new\n"
     "checkpoint behind.  Only one backup of a domain runs at a time.\n"
     "\n"
     "Exit status: 0 done, 1 failed, 2 usage or configuration error (also: no target),\n"
     "3 unknown domain or target, 4 another backup of the domain is running,\n"
     "130 interrupted (SIGINT or SIGTERM).\n",
     cli_cmd_backup},
    {"list", "[DOMAIN] [--json]", "List the backups in the catalog.",
     "Lists the backups of DOMAIN (or of every domain), oldest first: id, domain, level,\n"
     "status, start time (UTC), parent and stored size.  Failed backups are listed with\n"
     "their reason.\n"
     "\n"
     "  --json   print {\"backups\": [{id, domain, level, status, checkpoint, parent,\n"
     "           error, started, finished, bytes_read, bytes_written, bytes_stored, pid,\n"
     "           locations: [{disk, target, key, size, sha256}]}]} on stdout\n",
     cli_cmd_list},
    {"show", "BACKUP [--json]", "Show everything about one backup.",
     "Shows the fields of backup BACKUP, its disks, where its archives are stored (target,\n"
     "key, size, sha256), its checkpoint and the chain a restore needs (oldest first).\n"
     "\n"
     "  --json   the same as one JSON object (list fields plus checkpoint_xml,\n"
     "           domain_xml, disks, locations, chain, chain_error)\n"
     "\n"
     "Exit status: 0, or 3 when BACKUP is not in the catalog.\n",
     cli_cmd_show},
    {"restore", "DOMAIN --dest DIR [OPTIONS]", "Restore the disks of a domain to a point in time.",
     "Picks the newest committed backup of DOMAIN at or before TIME (or backup ID, or\n"
     "the latest), merges the indexes of its chain (full + incs, or full + diff) so that\n"
     "each block is read once from the newest backup that holds it, verifies every\n"
     "chunk it reads (sha256), and writes one qcow2 image per disk, DIR/DISK.qcow2\n"
     "(e.g. DIR/vda.qcow2), through qemu-nbd.  Zero ranges become zero clusters.\n"
     "An image is written under a temporary name and renamed only when complete.\n"
     "\n"
     "  --at TIME        RFC 3339 (2026-11-28T01:02:03Z, or with an offset), 'now', or\n"
     "                   a duration ago ('2h ago', '15m ago')\n"
     "  --backup ID      restore exactly this backup\n"
     "  --dest DIR       where the images go (created when missing)\n"
     "  --disks LIST     restore only these disks (vda,vdb)\n"
     "  --from TARGET    read from this target (name or URL) instead of the recorded one\n"
     "  --force          replace existing images in DIR; with --define, replace the\n"
     "                   definition of a shut-off domain of the same name (keeping its UUID)\n"
     "  --define         define the domain (persistent) from the XML saved with the backup,\n"
     "                   its disks pointing at the restored images (qcow2); disks not\n"
     "                   restored are left out of the definition and named.  A domain of\n"
     "                   that name already defined is refused unless --force.\n"
     "  --name NEW       define it as NEW, beside the original: no UUID, no MAC addresses,\n"
     "                   no fixed graphics ports, no NVRAM path (libvirt makes new ones)\n"
     "  --start          start the defined domain (implies --define)\n"
     "  --json           print {chain, disks: [{disk, path, virtual_size, cluster_size,\n"
     "                   compat, bytes_written, zero_bytes, chunks_read,\n"
     "                   frame_bytes_fetched, raw_bytes_decompressed, index_bytes_fetched,\n"
     "                   merged_data_bytes, merged_frame_bytes, seconds}], job, seconds,\n"
     "                   estimate_seconds, defined, started, dropped_disks} on stdout\n"
     "\n"
     "Images keep the source image's qcow2 cluster size and compat level (recorded in\n"
     "the manifest).  The restore job records the planner's estimate (see plan restore)\n"
     "next to the measured duration.  SIGINT or SIGTERM stops the restore: no temporary\n"
     "image and no qemu-nbd are left, and the exit status is 130.\n"
     "\n"
     "Exit status: 0 done, 1 failed (a corrupt chunk names backup, disk and offset),\n"
     "2 usage error, existing destination or domain without --force, 3 no such domain or\n"
     "backup, 130 interrupted.\n",
     cli_cmd_restore},
    {"verify", "BACKUP|DOMAIN [OPTIONS]", "Re-read the archives of backups and check them.",
     "Checks every recorded copy of backup BACKUP, or of every committed backup of DOMAIN:\n"
     "the object size against the catalog, the trailer, the index and its sha256, every\n"
     "chunk (zstd and sha256), and the sha256 of each archive against the catalog and the\n"
     "manifest.  Each problem names the backup, the disk, the chunk and its offset.\n"
     "\n"
     "  --quick          structure and sizes only: no chunk is read\n"
     "  --from TARGET    check only the copies on this target (name or URL)\n"
     "  --json           print {items: [{backup, disk, target, key, ok, chunks, bytes,\n"
     "                   error}], failed} on stdout\n"
     "\n"
     "Exit status: 0 all good, 1 something is corrupt or missing, 3 unknown backup.\n",
     cli_cmd_verify},
    {"catalog", "rebuild --target NAME|URL [--json]",
     "Rebuild the catalog from the manifests on a target.",
     "Reads every DOMAIN/BACKUP_ID/manifest.json on the target, checks each archive it\n"
     "names (present, with the recorded size) and records the domains, the backups\n"
     "(committed, level, parent, checkpoint, XML, times, sizes), their disks and the\n"
     "archive locations in the catalog (--catalog), which is created when missing.\n"
     "Merging is idempotent: backups already recorded only get this target's locations\n"
     "added, so a rebuild never overwrites a catalog; a recorded backup that disagrees\n"
     "with its manifest is reported as a conflict and left alone.  Backup directories\n"
     "without a manifest (incomplete backups) and unreadable manifests are reported by\n"
     "name and recorded nowhere.\n"
     "\n"
     "  --target NAME|URL  the target to read (a configured name or a URL); required\n"
     "  --json             print {target, manifests, added, known, domains, backups,\n"
     "                     incomplete, unreadable, conflicts} on stdout\n"
     "\n"
     "Exit status: 0 done, 1 some manifests were unreadable or in conflict (the rest is\n"
     "recorded) or the target could not be read, 2 usage error, 3 unknown target.\n",
     cli_cmd_catalog},
    {"plan", "restore DOMAIN [--at TIME|--backup ID] [--target NAME] [--json] | dr [OPTIONS]",
     "Show what a restore (or a disaster recovery) would read, lose and take.",
     "plan restore DOMAIN: resolves the chain a restore would use (as restore does), reads\n"
     "only the indexes of its archives, merges them and shows the bytes to read per archive\n"
     "and per target, the data lost (RPO: TIME, or now, minus the time of the chosen\n"
     "backup) and an estimated duration.  The estimate of a target comes from the recent\n"
     "DR drills that read it (source drill: seconds = overhead + bytes / rate fitted to\n"
     "them), else from the read throughput measured on earlier jobs (source throughput),\n"
     "else 100 MiB/s (source guess).\n"
     "\n"
     "  --at TIME        as for restore (RFC 3339, 'now', '2h ago')\n"
     "  --backup ID      plan the restore of exactly this backup\n"
     "  --target NAME    read from this target (name or URL), as restore --from\n"
     "  --disks LIST     only these disks\n"
     "  --json           print {domain, backup, chain, backup_time, at, rpo_seconds,\n"
     "                   archives: [{backup, disk, target, key, read_bytes, index_bytes,\n"
     "                   chunks}], targets: [{target, bytes, rate, overhead, samples,\n"
     "                   source, guess, seconds}], read_bytes, disk_bytes,\n"
     "                   virtual_bytes, estimate_seconds, estimate_source, guess,\n"
     "                   drill: {id, time, actual_seconds, estimate_seconds, bytes_read,\n"
     "                   samples} (when learned from drills)} on stdout\n"
     "\n"
     "plan dr [--target NAME] [--parallel N] [--at TIME] [--json]: the disaster recovery\n"
     "plan of every domain of the configuration and the catalog: the restore of each\n"
     "one's latest backup (at or before TIME), estimated as above, ordered by policy\n"
     "priority (1 first, unset last; ties: the least RTO slack first, then the name) and\n"
     "scheduled on N parallel restore slots (default 1; a domain starts on the first slot\n"
     "free).  Each domain's RTO is judged by its finish offset, waiting in the queue\n"
     "included; its RPO by the age of its latest backup.  Reasons are given for every\n"
     "objective missed.\n"
     "\n"
     "Exit status: 0, 1 an archive cannot be read, 2 usage error, 3 no such domain or\n"
     "backup; plan dr: 6 when some RTO or RPO objective would be missed.\n",
     cli_cmd_plan},
    {"snapshot", "create|list|revert|delete DOMAIN [NAME]",
     "Create, list, revert or delete external snapshots.",
     "  snapshot create DOMAIN [NAME] [--quiesce] [--memory] [--dir DIR] [--json]\n"
     "      External disk-only snapshot (default NAME vk-YYYYmmddTHHMMSS, UTC): each\n"
     "      writable file or block disk gets an overlay IMAGE.NAME next to its image (or\n"
     "      DIR/IMAGE.NAME with --dir) and new writes go there.  --quiesce freezes the\n"
     "      guest file systems through the guest agent (fails without one); --memory\n"
     "      takes a full-system snapshot of a running domain, its memory state going to\n"
     "      DOMAIN.NAME.mem beside the first overlay.  Checkpoints and backups go on.\n"
     "  snapshot list DOMAIN [--json]\n"
     "      Snapshots, oldest first: name, time, state, disks, current.  --json prints\n"
     "      {domain, snapshots: [{name, parent, state, created, current, external,\n"
     "      memory_file, disks: [{disk, overlay, base}]}]}.\n"
     "  snapshot revert DOMAIN NAME [--memory]\n"
     "      Put the disks back as they were when NAME was taken: the domain is stopped,\n"
     "      the overlays above the snapshot (and snapshots taken after it) are discarded,\n"
     "      a fresh overlay is put on the snapshot's base, and a running domain is\n"
     "      started again (--memory: restored from the snapshot's memory state).\n"
     "      virtkeep's checkpoints are discarded: the next backup is a full.\n"
     "  snapshot delete DOMAIN NAME\n"
     "      Merge the overlays of NAME back into their bases (block commit with pivot\n"
     "      for the active layer; qemu-img commit when the domain is shut off), then\n"
     "      remove the snapshot's metadata, overlays and memory file.\n"
     "\n"
     "Exit status: 0 done, 1 failed, 2 usage error (also: name taken, overlay exists),\n"
     "3 unknown domain or snapshot.\n",
     cli_cmd_snapshot},
    {"copy", "BACKUP|DOMAIN --to TARGET [OPTIONS]", "Copy backups to another target.",
     "Copies the archives of backup BACKUP, or of every committed backup of DOMAIN (oldest\n"
     "first, so that parents arrive before their children), then each backup's manifest,\n"
     "to TARGET (a configured target or a URL).  Each object streams from the copy with\n"
     "the best measured read throughput (or from --from) and its sha256 is checked on\n"
     "arrival against the catalog; an archive is then re-opened on TARGET (trailer,\n"
     "index).  The new copies are recorded in the catalog with throughput samples.\n"
     "Objects already on TARGET with the recorded size and sha256 are skipped: a second\n"
     "copy is a no-op.  A failed copy leaves no partial object on TARGET.\n"
     "\n"
     "  --to TARGET      where the copies go (name or URL); required\n"
     "  --from TARGET    read from this target (name or URL) instead of the fastest copy\n"
     "  --json           print {target, items: [{backup, disk, key, action (copied or\n"
     "                   skipped), source, size, sha256, seconds}], backups_copied,\n"
     "                   backups_skipped, objects_copied, bytes_copied, job, seconds,\n"
     "                   error} on stdout\n"
     "\n"
     "Exit status: 0 done, 1 failed (the message names backup, disk, source and\n"
     "destination), 2 usage error, 3 unknown backup, domain or target.\n",
     cli_cmd_copy},
    {"migrate", "DOMAIN --to URI [OPTIONS]", "Migrate a domain to another host, after pre-checks.",
     "Checks, all together and before anything moves: the destination is reachable; the\n"
     "CPU is compatible (virConnectCompareHypervisorCPU with the domain's <cpu>; for\n"
     "host-passthrough, and host-model before it is expanded, the source host's CPU; with\n"
     "no <cpu>, QEMU's default qemu64); the destination has the memory free; every disk is\n"
     "visible at the same path (shared storage: a storage volume there, or the file on\n"
     "this machine readable by the destination daemon's user) or, with --copy-storage, its\n"
     "destination image exists or is created (qemu-img, same format and size) where there\n"
     "is room; no domain of that name or UUID exists there.  Then the domain migrates\n"
     "(persistent on the destination, undefined on the source), with progress from the\n"
     "job statistics on a terminal, and post-checks.  A shut-off domain is moved offline.\n"
     "\n"
     "  --to URI                 the destination libvirt URI\n"
     "  --live | --offline       live (default for running domains) or paused copy\n"
     "  --copy-storage           copy the disks too (destination images at the same path,\n"
     "                           or under --dest-dir DIR)\n"
     "  --dest-dir DIR           with --copy-storage: the images go to DIR/NAME\n"
     "  --max-downtime MS        the longest pause QEMU may take to switch over\n"
     "  --bandwidth MIB          limit to MIB MiB/s\n"
     "  --auto-converge          slow the guest's CPUs down until it converges\n"
     "  --postcopy-after SECS    switch to post-copy when not done after SECS\n"
     "  --parallel-connections N migrate over N connections\n"
     "  --timeout SECS           abort (domain stays on the source) when not done by then\n"
     "  --migrate-uri URI        where QEMU sends the stream (e.g. tcp://10.0.0.2)\n"
     "  --unsafe                 allow shared storage libvirt deems unsafe (two daemons on\n"
     "                           one machine seeing the same path)\n"
     "  --dry-run                run the pre-checks only: table, exit 0 when all pass\n"
     "  --json                   print {domain, to, ok, dry_run, live, postcopy, aborted,\n"
     "                           source_running, seconds, downtime_ms, data_total, job,\n"
     "                           error, checks: [{check, status, detail}]}\n"
     "\n"
     "SIGINT, SIGTERM, --timeout or a failure aborts the job: the domain keeps running\n"
     "on the source.  The job (kind migrate), its outcome and the measured downtime go\n"
     "into the catalog.\n"
     "\n"
     "--planned moves the domain cold, through backups, to a host that cannot take a live\n"
     "migration: checks (reachable, memory, name/UUID, backup target, disks, destination\n"
     "pool), a backup while it runs, a graceful shutdown, a final incremental, a restore\n"
     "uploaded into the destination's storage pool (sparse streams, any libvirt URI), a\n"
     "read-back of each volume (SHA-256), define and start there, undefine on the source\n"
     "(its disk files stay).  The downtime runs from the shutdown request to the domain\n"
     "running on the destination (job kind migrate-planned).  A failure after the\n"
     "shutdown removes what was made on the destination and starts the domain again on\n"
     "the source.\n"
     "  --planned                a planned (cold) move through backups\n"
     "  --via TARGET             the backup target (default: the policy's first target)\n"
     "  --shutdown-timeout SECS  wait that long for the guest to shut down (default 120)\n"
     "  --force                  destroy the domain when it does not shut down in time\n"
     "  --dest-pool POOL         the destination storage pool (default \"default\")\n"
     "\n"
     "Exit status: 0 migrated (or all pre-checks passed), 1 failed or a pre-check failed,\n"
     "2 usage error, 3 unknown domain, 130 interrupted.\n",
     cli_cmd_migrate},
    {"evacuate", "--to URI[,URI...] [OPTIONS]", "Migrate every running domain off a host.",
     "Moves every running domain of the source (--from, default -c) and, with\n"
     "--include-stopped, every shut-off persistent one (offline).  Each domain goes to the\n"
     "destination with the most free memory (less what was already placed there) that\n"
     "passes its pre-checks (see migrate); the largest domains are placed first.  N\n"
     "migrations run at a time; one failure does not stop the others.\n"
     "\n"
     "  --from URI         the host to empty\n"
     "  --to URI,...       the destinations\n"
     "  --parallel N       migrations at a time (default 1)\n"
     "  --include-stopped  move shut-off domains too\n"
     "  --dry-run          placement and pre-checks only\n"
     "  --json             print {domains: [{domain, destination, outcome, seconds,\n"
     "                     downtime_ms, error, checks, ...}], failed}\n"
     "  and the tuning options of migrate: --max-downtime, --bandwidth, --auto-converge,\n"
     "  --postcopy-after, --parallel-connections, --timeout, --migrate-uri, --unsafe\n"
     "\n"
     "The report lists each domain, its destination, outcome (migrated, failed, planned),\n"
     "duration and downtime.\n"
     "\n"
     "Exit status: 0 all moved, 1 some failed, 2 usage error, 130 interrupted.\n",
     cli_cmd_evacuate},
    {"prune", "[DOMAIN] [--dry-run] [--json]", "Delete the backups retention no longer keeps.",
     "Applies the retention rules of each domain's policy (of DOMAIN only, when given):\n"
     "keep_last N keeps the N newest backups; keep_hourly, keep_daily, keep_weekly (ISO\n"
     "weeks), keep_monthly and keep_yearly N keep the newest backup of each of the N\n"
     "most recent hours, days... that have a backup (UTC); keep_within D keeps every\n"
     "backup less than D older than the newest.  The rules add up.  A backup that a kept\n"
     "backup needs (the full and the incrementals before a kept inc, the full of a kept\n"
     "diff) is always kept.  Failed backups older than the newest good one are deleted.\n"
     "Domains whose policy has no keep rule are left alone.\n"
     "\n"
     "Crash-safe: the doomed backups are marked in the catalog first; then, newest\n"
     "first, each backup's manifest is deleted from every target (so that a rebuilt\n"
     "catalog never sees a half-deleted backup), then its archives, then its catalog\n"
     "rows.  A prune that was interrupted is finished by the next one, before anything\n"
     "new is decided.  Libvirt checkpoints are not touched.\n"
     "\n"
     "  --dry-run  show what would be kept and deleted, and why; change nothing\n"
     "  --json     print {dry_run, backups: [{backup, domain, action (keep, delete,\n"
     "             deleted, marked), reason, resumed, objects_deleted, bytes_deleted}],\n"
     "             kept, deleted, objects_deleted, bytes_deleted, error} on stdout\n"
     "\n"
     "Exit status: 0 done, 1 failed (an object could not be deleted), 2 usage error or\n"
     "DOMAIN has no retention policy, 3 a target is unknown or its directory, bucket or\n"
     "host is missing.  After a failure the rest stays marked for the next prune.\n",
     cli_cmd_prune},
    {"drill", "DOMAIN [--backup ID] [--from TARGET] [--scratch DIR] [--keep] [--json]",
     "Run a DR drill: restore to scratch, verify, measure and record.",
     "Restores the latest committed backup of DOMAIN (or backup ID) into a fresh scratch\n"
     "directory (mkdtemp under /var/tmp, or DIR, which must be missing or empty), then\n"
     "verifies it: every chunk restored is checked against its sha256 while restoring,\n"
     "every archive of the chain is re-read in full as verify does, and each restored\n"
     "image must pass 'qemu-img check' with the disk's virtual size.  The measured\n"
     "restore time is recorded in the catalog next to the estimate made before starting\n"
     "(with the bytes read and the outcome), and later restore estimates learn from it.\n"
     "The scratch directory is removed afterwards, also on failure or interruption.\n"
     "\n"
     "  --backup ID      drill this backup instead of the latest\n"
     "  --from TARGET    read from this target (name or URL)\n"
     "  --scratch DIR    restore into DIR (missing or empty)\n"
     "  --keep           leave the restored images in the scratch directory\n"
     "  --json           print {domain, backup, chain, scratch, kept, targets,\n"
     "                   estimate_seconds, estimate_source, actual_seconds,\n"
     "                   verify_seconds, bytes_read, disk_bytes, chunks_verified, disks,\n"
     "                   drill_id, job_id, ok, error} on stdout\n"
     "\n"
     "Exit status: 0 the drill verified ok, 1 the restore or the verification failed (the\n"
     "message names the disk and the chunk), 2 usage error or a non-empty --scratch,\n"
     "3 no such domain or backup, 130 interrupted.\n",
     cli_cmd_drill},
    {"status", "[DOMAIN] [--socket PATH] [--json]",
     "Show each domain against its RPO and RTO objectives.",
     "For each [domain] with a policy (or DOMAIN only): the latest good backup, the RPO\n"
     "exposure now (time since that backup) against the objective, the estimated restore\n"
     "time of the current chain against the RTO, the chain length, consecutive failed\n"
     "backups, the next job the scheduler has, and the objectives that are violated, with\n"
     "the reason.  The answer comes from virtkeepd over its unix socket (--socket PATH,\n"
     "else [daemon] socket, else /run/virtkeep/virtkeepd.sock), or over [daemon] listen\n"
     "with the token of [daemon] token_file.  When no daemon answers, the same status is\n"
     "computed from the catalog and the configuration, and \"virtkeepd is not running\" is\n"
     "printed on stderr.\n"
     "\n"
     "  --socket PATH  the daemon's unix socket\n"
     "  --json         print {now, daemon, violations, domains: [{domain, policy,\n"
     "                 last_backup, last_success, rpo_exposure, rpo, rpo_violated,\n"
     "                 rpo_reason, rto_estimate, rto, rto_violated, rto_reason,\n"
     "                 chain_length, failures, next_job: {kind, due, target, reason}}]}\n"
     "                 (times in Unix seconds, durations in seconds, null when unknown)\n"
     "\n"
     "Exit status: 0 every objective is met, 6 an RPO or RTO objective is violated (for\n"
     "monitoring scripts), 1 failed, 2 usage or configuration error, 3 unknown domain.\n",
     cli_cmd_status},
    {"jobs", "[--all] [--json] | cancel ID", "List the daemon's jobs, or cancel one.",
     "Lists the jobs virtkeepd runs or has queued, then the recent jobs of the catalog\n"
     "(the last 20; --all for every one).  When no daemon answers, only the catalog's jobs\n"
     "are listed and \"virtkeepd is not running\" is printed on stderr.\n"
     "'jobs cancel ID' asks virtkeepd to cancel job ID: the job cleans up and is recorded\n"
     "as cancelled.\n"
     "\n"
     "  --all          every job of the catalog, not only the recent ones\n"
     "  --socket PATH  the daemon's unix socket (default as for status)\n"
     "  --json         print {daemon, active: [{id, kind, domain, target, backup_id,\n"
     "                 level, state, pid, started}], recent: [{id, kind, domain, target,\n"
     "                 backup_id, state, pid, started, finished, progress_done,\n"
     "                 progress_total, estimate_seconds, elapsed_seconds, error}]}\n"
     "\n"
     "Exit status: 0 done, 1 failed (cancel: virtkeepd is not running), 2 usage error,\n"
     "3 cancel: the daemon runs no job ID.\n",
     cli_cmd_jobs},
    {NULL, NULL, NULL, NULL, NULL},
};

static const char usage_text[] =
    "Usage: virtkeep [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Back up, snapshot and migrate libvirt/QEMU domains.\n"
    "\n"
    "Global options (before the command):\n"
    "  -c, --connect URI   libvirt connection URI (default: $LIBVIRT_DEFAULT_URI,\n"
    "                      else qemu:///system)\n"
    "      --config FILE   configuration file (default: /etc/virtkeep/virtkeep.conf\n"
    "                      for root, else $XDG_CONFIG_HOME/virtkeep/virtkeep.conf);\n"
    "                      a missing default file is fine, a missing FILE is an error\n"
    "      --catalog PATH  catalog database (default: [catalog] path in the\n"
    "                      configuration, else /var/lib/virtkeep/catalog.db for\n"
    "                      root, else $XDG_DATA_HOME/virtkeep/catalog.db)\n"
    "  -q, --quiet         print errors only\n"
    "  -v, --verbose       print debugging messages\n"
    "  -h, --help          show this help and exit\n"
    "  -V, --version       show the version and exit\n"
    "\n"
    "Commands:\n";

static const char usage_tail[] =
    "\n"
    "Run 'virtkeep help COMMAND' for a command's options.\n"
    "\n"
    "Exit status:\n"
    "  0    success\n"
    "  1    the operation failed\n"
    "  2    usage or configuration error\n"
    "  3    not found (unknown domain, backup or target)\n"
    "  4    busy or locked by another job\n"
    "  5    some targets are unreachable (targets)\n"
    "  6    an RPO or RTO objective is violated (status)\n"
    "  130  interrupted\n"
    "\n"
    "Environment:\n"
    "  VIRTKEEP_DEBUG       1 for debugging messages, 'data' to add data-path ones\n"
    "  LIBVIRT_DEFAULT_URI  the default for --connect\n"
    "  XDG_CONFIG_HOME      where the default configuration lives (~/.config)\n"
    "  XDG_DATA_HOME        where the default catalog lives (~/.local/share)\n"
    "\n"
    "Files:\n"
    "  /etc/virtkeep/virtkeep.conf   configuration (root)\n"
    "  /var/lib/virtkeep/catalog.db  catalog (root)\n"
    "\n"
    "Secrets (SSH keys and passwords, S3 secret keys) are read from files that only\n"
    "their owner can read, or from environment variables named in the configuration;\n"
    "never from the command line.  See virtkeep(1).\n";

static void usage_print(FILE *fp)
{
    fputs(usage_text, fp);
    for (const struct cli_command *c = cli_commands; c->name; c++) {
        char head[64];
        snprintf(head, sizeof head, "%s %s", c->name, c->synopsis);
        fprintf(fp, "  %-30s %s\n", head, c->summary);
    }
    fputs(usage_tail, fp);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("virtkeep: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_exit_code(enum vk_error_code code)
{
    switch (code) {
    case VK_ERR_NONE:
        return CLI_EXIT_OK;
    case VK_ERR_INVALID:
        return CLI_EXIT_USAGE;
    case VK_ERR_NOT_FOUND:
        return CLI_EXIT_NOT_FOUND;
    case VK_ERR_BUSY:
        return CLI_EXIT_BUSY;
    case VK_ERR_INTERRUPTED:
        return CLI_EXIT_INTERRUPTED;
    default:
        return CLI_EXIT_FAILED;
    }
}

int cli_error_last(void)
{
    const char *msg = vk_error_message();

    cli_error("%s", msg ? msg : "unknown error");
    return vk_error_code() == VK_ERR_NONE ? CLI_EXIT_FAILED : cli_exit_code(vk_error_code());
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;

    fputs("virtkeep: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (command)
        fprintf(stderr, "\nTry 'virtkeep help %s'.\n", command);
    else
        fputs("\nTry 'virtkeep --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

const struct cli_command *cli_command_find(const char *name)
{
    for (const struct cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

void cli_command_help(const struct cli_command *cmd)
{
    printf("Usage: virtkeep [GLOBAL OPTIONS] %s %s\n\n%s\n", cmd->name, cmd->synopsis,
           cmd->summary);
    if (cmd->help)
        printf("\n%s", cmd->help);
}

int cli_option_error(const struct cli_command *cmd)
{
    /* getopt_long has already said what was wrong. */
    fprintf(stderr, "Try 'virtkeep help %s'.\n", cmd->name);
    return CLI_EXIT_USAGE;
}

void cli_json_print(struct json_object *obj)
{
    puts(json_object_to_json_string_ext(obj,
                                        JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(obj);
}

struct json_object *cli_json_string(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

int cli_option_default(const struct cli_command *cmd, int c)
{
    if (c != 'h')
        return cli_option_error(cmd);
    cli_command_help(cmd);
    return CLI_EXIT_OK;
}

int cli_json_options_parse(const struct cli_command *cmd, int argc, char **argv,
                           const char *shortopts, bool *json)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        if (c != 'j')
            return cli_option_default(cmd, c);
        *json = true;
    }
    return -1;
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd;

    (void)cli;
    if (argc > 2)
        return cli_usage_error("help", "help takes at most one command name");
    if (argc < 2) {
        usage_print(stdout);
        return CLI_EXIT_OK;
    }
    cmd = cli_command_find(argv[1]);
    if (!cmd)
        return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    cli_command_help(cmd);
    return CLI_EXIT_OK;
}

static int cmd_version(struct cli *cli, int argc, char **argv)
{
    (void)cli;
    (void)argv;
    if (argc > 1)
        return cli_usage_error("version", "version takes no arguments");
    printf("virtkeep %s\n", vk_version());
    return CLI_EXIT_OK;
}

int cli_config_load(struct cli *cli)
{
    const char *path = cli->config_path;
    struct stat st;

    if (cli->config)
        return CLI_EXIT_OK;
    if (!path) {
        cli->default_config = config_default_path(geteuid());
        if (!cli->default_config) {
            cli_error_last();
            return CLI_EXIT_USAGE;
        }
        path = cli->default_config;
        if (stat(path, &st) < 0 && errno == ENOENT) {
            vk_debug("no configuration file '%s': using none", path);
            cli->config = config_new_empty(path);
            return cli->config ? CLI_EXIT_OK : cli_error_last();
        }
    }
    vk_debug("reading configuration file '%s'", path);
    cli->config = config_parse_file(path, 0);
    if (!cli->config) {
        cli_error_last();
        if (!cli->config_path && !config_error_line())
            fprintf(stderr, "Give another file with --config FILE.\n");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

const char *cli_catalog_path(struct cli *cli)
{
    if (cli->catalog_path)
        return cli->catalog_path;
    if (cli->config && cli->config->catalog_path)
        return cli->config->catalog_path;
    if (!cli->default_catalog)
        cli->default_catalog = config_default_catalog(geteuid());
    return cli->default_catalog;
}

enum { OPT_CONFIG = 256, OPT_CATALOG };

/* Parse the global options; returns -1 to go on, else an exit code. */
static int global_options(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"catalog", required_argument, NULL, OPT_CATALOG},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "+c:qvhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli->connect_uri = optarg;
            break;
        case OPT_CONFIG:
            cli->config_path = optarg;
            break;
        case OPT_CATALOG:
            cli->catalog_path = optarg;
            break;
        case 'q':
            cli->quiet = true, cli->verbose = false;
            break;
        case 'v':
            cli->verbose = true, cli->quiet = false;
            break;
        case 'h':
            usage_print(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("virtkeep %s\n", vk_version());
            return CLI_EXIT_OK;
        default:
            fputs("Try 'virtkeep --help'.\n", stderr);
            return CLI_EXIT_USAGE;
        }
    }
    return -1;
}

static void cli_init(struct cli *cli)
{
    const char *uri = getenv("LIBVIRT_DEFAULT_URI");

    memset(cli, 0, sizeof *cli);
    cli->connect_uri = uri && *uri ? uri : DEFAULT_URI;
}

static void cli_clear(struct cli *cli)
{
    config_free(cli->config);
    free(cli->default_config);
    free(cli->default_catalog);
}

static int cli_run(struct cli *cli, int argc, char **argv)
{
    const struct cli_command *cmd;
    int r = global_options(cli, argc, argv);

    if (r >= 0)
        return r;
    if (cli->quiet)
        vk_log_set_level(VK_LOG_QUIET);
    if (cli->verbose)
        vk_log_set_level(VK_LOG_DEBUG);
    if (optind >= argc)
        return cli_usage_error(NULL, "no command given");
    cmd = cli_command_find(argv[optind]);
    if (!cmd)
        return cli_usage_error(NULL, "unknown command '%s'", argv[optind]);
    vk_debug("command '%s', libvirt URI '%s'", cmd->name, cli->connect_uri);
    argc -= optind;
    argv += optind;
    optind = 0; /* the command parses its own options from the start */
    return cmd->run(cli, argc, argv);
}

int main(int argc, char **argv)
{
    struct cli cli;
    int r;

    /* A peer that goes away (libvirtd, an SSH server, the reader of our
     * output) must be an error we report and clean up after, not a
     * silent death by SIGPIPE that leaves a backup 'running'. */
    signal(SIGPIPE, SIG_IGN);
    vk_log_init("virtkeep");
    cli_init(&cli);
    r = cli_run(&cli, argc, argv);
    cli_clear(&cli);
    if (fflush(stdout) != 0 && r == CLI_EXIT_OK) {
        cli_error("cannot write the output: %s", strerror(errno));
        r = CLI_EXIT_FAILED;
    }
    return r;
}

volatile sig_atomic_t cli_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

static void signals_set(void (*handler)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_signals_catch(void)
{
    cli_interrupted = 0;
    signals_set(on_signal);
}

void cli_signals_default(void)
{
    signals_set(SIG_DFL);
}
