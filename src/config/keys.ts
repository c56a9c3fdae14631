// The one table of configuration keys. Every setting of vbladed, of vblade's
// long options and of an export in vblade.conf(5) is one KeyDef here: its
// name, default, type, the field it sets and whether a reload applies it.
// The parser, the settings, the tunables, the reload's restart list, --help,
// the man page and the example config are all derived from this table.

import { MAC_LIST_CAPACITY } from '../aoe/constants';
import {
  DEFAULT_INITIATOR_ROWS,
  DEFAULT_MAX_VIEWS,
  MAX_INITIATOR_ROWS,
  DEFAULT_TUNABLES,
  DEFAULT_VIEWS_MIN_FREE,
  DEFAULT_PER_BOOT_GAP,
  MAX_MAX_VIEWS,
  MAX_ANNOUNCE_SECONDS,
  MAX_DUPLICATE_PROBE_MS,
  MAX_DUPLICATE_RETRY_SECONDS,
  MAX_SPIN_MICROS,
  SPIN_POLICIES,
  type ExportConfig,
  type ServingTunables,
} from './export-config';
import { DEFAULT_NBD_CONNECTIONS, DEFAULT_REMOTE_TIMEOUT, MAX_NBD_CONNECTIONS, MAX_REMOTE_TIMEOUT } from '../remote/remote-uri';
import { DEFAULT_CEPH_CONF, DEFAULT_CEPH_ID } from '../remote/ceph-conf';
import { writtenValue, type Listen, type ValueSpec } from './values';
import { DEFAULT_BUFFER_COUNT, MAX_BUFFER_COUNT } from './vblade-args';

export const LOG_DESTINATIONS = ['auto', 'stdout', 'stderr', 'syslog', 'file'] as const;
export const LOG_FORMATS = ['json', 'text'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const SYSLOG_FORMATS = ['rfc3164', 'rfc5424'] as const;

export type LogDestination = (typeof LOG_DESTINATIONS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type SyslogFormat = (typeof SYSLOG_FORMATS)[number];

/** The [daemon] section, the long options or the environment as written: only the keys that were set, as strings. */
export type DaemonKeys = Partial<Record<string, string>>;

/** The daemon settings with every default applied: what the [daemon] keys set. */
export interface DaemonSettings extends ServingTunables {
  name: string;
  /** undefined = in memory only. */
  stateDir?: string;
  runDir: string;
  pidFile: string;
  /** undefined = no control socket. */
  controlSocket?: string;
  controlGroup?: string;
  /** host and port, or undefined = off. */
  metrics?: Listen;
  /** Metrics on a non-loopback address are intended (no warning). */
  metricsAllowRemote: boolean;
  log: LogDestination;
  logFile?: string;
  logFormat: LogFormat;
  logLevel: LogLevel;
  syslogFormat: SyslogFormat;
  stopTimeoutSeconds: number;
  /** undefined = stay the user that started the daemon. */
  user?: string;
  /** Directory of config fragments (`vblade ctl add`); undefined = none read. Resolved by load.ts (configDirOf). */
  configDir?: string;
}

interface KeyText extends ValueSpec {
  /** How the default reads in help and docs when it is computed or unset. */
  defaultText?: string;
  /** One line: what the key does. */
  meaning: string;
  /** The matching vblade option, for the docs. */
  vbladeOption?: string;
  /** Placeholder for the value in --help (e.g. DIR). */
  arg?: string;
  /** Export keys that must be present. */
  required?: boolean;
  /** An environment variable read as this key's value when neither the file nor the command line sets it (kept for scripts that used it before the key existed). */
  environment?: string;
}

/** A [daemon] key: also a long option of vbladed. */
export interface DaemonKeyDef extends KeyText {
  section: 'daemon';
  field: keyof DaemonSettings;
  /** applies: a reload puts a changed value in force; restart: it waits for the next start (and the reload says so). */
  reload: 'applies' | 'restart';
}

/** An [export eS.L] key; a reload applies every one of them (the export is changed or added again). */
export interface ExportKeyDef extends KeyText {
  section: 'export';
  field: keyof ExportConfig;
}

/** A key of a [group NAME] section: a named list of MACs that mac-mask values name as @NAME. */
export interface GroupKeyDef extends KeyText {
  section: 'group';
  field: 'macs';
}

export type KeyDef = DaemonKeyDef | ExportKeyDef | GroupKeyDef;

/**
 * A key of the serving core's tunables: its default is DEFAULT_TUNABLES's,
 * and, fixed when the serving process starts, it needs a restart.
 */
function tunable(
  field: keyof ServingTunables,
  def: Omit<DaemonKeyDef, 'section' | 'field' | 'default' | 'reload'>,
): DaemonKeyDef {
  return { ...def, section: 'daemon', field, default: writtenValue(DEFAULT_TUNABLES[field]), reload: 'restart' };
}

export const KEYS: readonly KeyDef[] = [
  // [daemon]: also the long options of vbladed (--state-dir DIR ...).
  {
    key: 'name',
    section: 'daemon',
    field: 'name',
    reload: 'restart',
    type: 'name',
    default: '',
    arg: 'NAME',
    defaultText: 'the config file name without .conf; eS.L@NETIF on the command line',
    meaning:
      'Instance name: names the pid file and control socket and tells instances apart in the log; up to 64 letters, digits and _ . @ -, not starting with a dot.',
  },
  {
    key: 'state-dir',
    section: 'daemon',
    field: 'stateDir',
    off: 'none',
    reload: 'restart',
    type: 'path',
    default: '/var/lib/vblade',
    arg: 'DIR',
    meaning:
      'Where config strings, MAC masks and reservations are kept across restarts; "none" keeps them in memory only. Must belong to the daemon\'s user and be writable by nobody else (mode 0750 or stricter), as must every directory above it (root\'s, or sticky like /tmp).',
  },
  {
    key: 'config-dir',
    section: 'daemon',
    field: 'configDir',
    off: 'none',
    reload: 'applies',
    type: 'path',
    default: '',
    arg: 'DIR',
    defaultText: 'the config file name without .conf, plus .d (/etc/vblade.conf: /etc/vblade.d)',
    meaning:
      'Directory of config fragments: its *.conf files, read in name order after the config file, add [export] and [group] sections; "vblade ctl add" writes one per export there. Must be a directory of root or the daemon\'s user that nobody else may write; a missing one holds no fragments. Not the config file\'s own directory, where the file would be read again as a fragment. "none" reads none.',
  },
  {
    key: 'run-dir',
    section: 'daemon',
    field: 'runDir',
    reload: 'restart',
    type: 'path',
    default: '/run/vblade',
    arg: 'DIR',
    meaning:
      "Directory for the pid file, the control socket and the per-export lock files. Must belong to the daemon's user and be writable by nobody else (e.g. mode 0755).",
  },
  {
    key: 'pid-file',
    section: 'daemon',
    field: 'pidFile',
    reload: 'restart',
    type: 'path',
    default: '',
    arg: 'FILE',
    defaultText: 'RUN-DIR/NAME.pid',
    meaning: 'The supervisor writes its pid here and removes the file on exit.',
  },
  {
    key: 'control-socket',
    section: 'daemon',
    field: 'controlSocket',
    off: 'none',
    reload: 'restart',
    type: 'path',
    default: '',
    arg: 'FILE',
    defaultText: 'RUN-DIR/NAME.sock',
    meaning: 'Unix socket for "vblade ctl"; "none" turns it off.',
  },
  {
    key: 'control-group',
    section: 'daemon',
    field: 'controlGroup',
    reload: 'restart',
    type: 'string',
    default: '',
    arg: 'GROUP',
    defaultText: "the daemon's own group",
    meaning: 'Group that owns the control socket (mode 0660); its members may run "vblade ctl".',
  },
  {
    key: 'metrics',
    section: 'daemon',
    field: 'metrics',
    off: 'off',
    reload: 'restart',
    type: 'listen',
    default: '',
    arg: 'HOST:PORT',
    defaultText: 'off',
    meaning: 'Serve Prometheus metrics over HTTP at this address, e.g. 127.0.0.1:9469.',
  },
  {
    key: 'metrics-allow-remote',
    section: 'daemon',
    field: 'metricsAllowRemote',
    reload: 'restart',
    type: 'bool',
    default: 'no',
    meaning:
      'Metrics on an address other than loopback (0.0.0.0, a LAN address) are intended and only your Prometheus can reach them (a firewall, IPAddressAllow=): no warning at start and in --check.',
  },
  {
    key: 'log',
    section: 'daemon',
    field: 'log',
    reload: 'restart',
    type: 'enum',
    default: 'auto',
    values: LOG_DESTINATIONS,
    arg: 'WHERE',
    meaning:
      'Log destination; auto = file when log-file is set, else syslog for vbladed and stderr for vblade. syslog without /dev/log goes to the journal socket, else to log-file.',
  },
  {
    key: 'log-file',
    section: 'daemon',
    field: 'logFile',
    reload: 'restart',
    type: 'path',
    default: '',
    arg: 'FILE',
    defaultText: 'unset; the syslog fallback is /var/log/vblade/NAME.log',
    meaning:
      "Append the log to this file; reopened on SIGHUP so log rotation works. With log = syslog, where records go when there is no /dev/log and no journal socket. Never opened through a symbolic link; made with mode 0640, its directory 0750 when missing (not its parent); the directory and those above it must be root's or the daemon's and not writable by others.",
  },
  {
    key: 'log-format',
    section: 'daemon',
    field: 'logFormat',
    reload: 'restart',
    type: 'enum',
    default: 'json',
    values: LOG_FORMATS,
    arg: 'FORMAT',
    meaning:
      'json: one pino JSON object per line; text: a readable line per record. Unset, in the foreground with the log on a terminal (vblade --config, vbladed --foreground --log=stderr): text.',
  },
  {
    key: 'log-level',
    section: 'daemon',
    field: 'logLevel',
    reload: 'applies',
    type: 'enum',
    default: 'info',
    values: LOG_LEVELS,
    arg: 'LEVEL',
    meaning: 'Least severe level that is logged.',
  },
  {
    key: 'syslog-format',
    section: 'daemon',
    field: 'syslogFormat',
    reload: 'restart',
    type: 'enum',
    default: 'rfc3164',
    values: SYSLOG_FORMATS,
    arg: 'FORMAT',
    meaning: 'Framing of records sent to /dev/log with the tag vbladed.',
  },
  {
    key: 'stop-timeout',
    section: 'daemon',
    field: 'stopTimeoutSeconds',
    reload: 'restart',
    type: 'count',
    default: '30',
    arg: 'SECONDS',
    meaning: 'On SIGTERM, how long to wait for in-flight writes to finish before killing the worker.',
  },
  tunable('spinMicros', {
    key: 'spin-us',
    type: 'count',
    arg: 'MICROSECONDS',
    range: [0, MAX_SPIN_MICROS],
    environment: 'AOE_SPIN_US',
    meaning: `After each batch of requests, how many microseconds (0..${MAX_SPIN_MICROS}) the server keeps polling for more before it sleeps; more saves a wake-up under dense load and costs CPU.`,
  }),
  tunable('spinPolicy', {
    key: 'spin-policy',
    type: 'enum',
    values: SPIN_POLICIES,
    arg: 'adaptive|always',
    meaning:
      'adaptive: poll (spin-us) only while polls find the next frame, and pause polling when they do not (a CPU shared with the initiator or other work, a slow initiator); always: poll after every batch.',
  }),
  tunable('mapInMemory', {
    key: 'map-in-memory',
    type: 'bool',
    arg: 'yes|no',
    environment: 'AOE_MAP',
    meaning:
      'Map backing files that live on tmpfs or ramfs into memory so a request is one copy (files with holes are never mapped).',
  }),
  tunable('duplicateProbeMs', {
    key: 'duplicate-probe-ms',
    type: 'count',
    arg: 'MILLISECONDS',
    range: [0, MAX_DUPLICATE_PROBE_MS],
    meaning: `At start-up, how long (0..${MAX_DUPLICATE_PROBE_MS} ms) to wait for another target answering one of our shelf.slot addresses on an interface, or another process of ours serving it on this host; such an export is not served unless shared = yes. 0 does not look.`,
  }),
  tunable('duplicateRetrySeconds', {
    key: 'duplicate-retry-s',
    type: 'count',
    arg: 'SECONDS',
    range: [1, MAX_DUPLICATE_RETRY_SECONDS],
    meaning: `How often (1..${MAX_DUPLICATE_RETRY_SECONDS} s) an export left out because another target or process served its address is tried again (claim and probe, quietly); it is served once the address is free.`,
  }),
  {
    key: 'user',
    section: 'daemon',
    field: 'user',
    reload: 'restart',
    type: 'string',
    default: '',
    arg: 'USER',
    defaultText: 'stay the user that started it',
    meaning:
      'Started as root, the serving process switches to this user (and its groups) once its backing files and sockets are open, keeping only CAP_NET_RAW and CAP_LEASE (for the read lease views hold on their image, also of views a reload adds). Use a dedicated user (useradd --system vblade), not nobody, which other daemons share. state-dir and the files of exports added by a reload must be usable by the user.',
  },
  tunable('announceSeconds', {
    key: 'announce-interval',
    type: 'count',
    arg: 'SECONDS',
    range: [0, MAX_ANNOUNCE_SECONDS],
    meaning:
      'Seconds between unsolicited announcements of every export on every interface that is up, so that initiators started before the target find it without waiting for their next discovery (Linux: 60 s); 0 announces only at start, on link up and when an export is added.',
  }),

  // [export eS.L]
  {
    key: 'file',
    section: 'export',
    field: 'file',
    type: 'store',
    default: '',
    required: true,
    defaultText: 'required unless null-store = yes',
    meaning:
      "Backing file or block device, or an NBD export: nbd://HOST[:PORT]/NAME or nbd+unix:///NAME?socket=/PATH (served through libnbd: apt-get install libnbd0). The server gives the size and whether it is writable; a server that goes away fails requests after remote-timeout and is reconnected to. An NBD export cannot have views, views-dir, detect-zeroes or direct; its socket must be a socket of root or the daemon's user in directories only they can change. TLS, vsock and ssh URIs are refused. Or a Ceph RBD image: rbd:POOL/IMAGE or rbd:POOL/NAMESPACE/IMAGE (served through librbd: apt-get install librbd1; see ceph-conf and ceph-id). The image gives the size, and an image grown with rbd resize is served larger at the next size check; FLUSH and sync (-s) are rbd flushes, and librbd's cache is off unless ceph.conf sets rbd cache (a cache in a gateway breaks failover). An rbd export cannot have shared = yes (two gateways without fencing can lose writes), views, views-dir (rbd has its own snapshots and clones), detect-zeroes or direct. A file whose name starts with rbd: is written ./rbd:NAME.",
  },
  {
    key: 'interfaces',
    section: 'export',
    field: 'interfaces',
    type: 'interfaces',
    default: '',
    required: true,
    defaultText: 'required',
    meaning:
      'Network interfaces to serve on, separated by spaces or commas; several are several paths to one disk. One that does not exist (yet) is waited for while the others serve.',
  },
  {
    key: 'read-only',
    section: 'export',
    field: 'readOnly',
    type: 'bool',
    default: 'no',
    vbladeOption: '-r',
    meaning: 'Refuse writes.',
  },
  {
    key: 'direct',
    section: 'export',
    field: 'direct',
    type: 'bool',
    default: 'no',
    vbladeOption: '-d',
    meaning: 'Open the backing store with O_DIRECT (bypass the page cache).',
  },
  {
    key: 'sync',
    section: 'export',
    field: 'sync',
    type: 'bool',
    default: 'no',
    vbladeOption: '-s',
    meaning: 'Acknowledge a write only once it is on stable storage.',
  },
  {
    key: 'detect-zeroes',
    section: 'export',
    field: 'detectZeroes',
    off: 'off',
    type: 'enum',
    default: 'off',
    values: ['off', 'unmap'],
    meaning:
      'unmap: a write whose data is all zero punches a hole in the file instead (fallocate PUNCH_HOLE), so a thin (sparse) file stays thin when initiators zero blocks; reads of the range return zeros as before. Regular files on a file system that can punch holes (ext4, XFS, btrfs, tmpfs) and views only; refused for a block device. off: every write is written.',
  },
  {
    key: 'offset',
    section: 'export',
    field: 'offsetSectors',
    type: 'sectors',
    default: '0',
    vbladeOption: '-o',
    meaning: 'Sectors (512 bytes) to skip at the start of the backing store.',
  },
  {
    key: 'length',
    section: 'export',
    field: 'lengthSectors',
    type: 'sectors',
    default: '',
    vbladeOption: '-l',
    defaultText: 'to the end of the backing store',
    meaning: 'Sectors to export, starting at offset.',
  },
  {
    key: 'mac-mask',
    section: 'export',
    field: 'macMask',
    type: 'macs',
    default: '',
    vbladeOption: '-m',
    defaultText: 'empty: every initiator',
    meaning: `Initiator MACs allowed to use the export, separated by spaces or commas, and @NAME for the MACs of [group NAME] (the expanded list holds at most ${MAC_LIST_CAPACITY}); a value changed here, also through a changed group, wins over the saved mask (at start and on reload), otherwise the saved mask wins.`,
  },
  {
    key: 'broadcast-edits',
    section: 'export',
    field: 'broadcastEdits',
    type: 'bool',
    default: 'no',
    meaning:
      "Take MAC mask edits, reserve sets and config string sets sent to the broadcast shelf or slot; by default they must name this export exactly (one forged broadcast frame must not lock everyone out of every export, nor rewrite every export's config string).",
  },
  {
    key: 'buffer-count',
    section: 'export',
    field: 'bufferCount',
    type: 'count',
    default: String(DEFAULT_BUFFER_COUNT),
    vbladeOption: '-b',
    range: [1, MAX_BUFFER_COUNT],
    meaning: `Buffer Count advertised to initiators: requests each may keep outstanding (1..${MAX_BUFFER_COUNT}).`,
  },
  {
    key: 'shared',
    section: 'export',
    field: 'shared',
    off: 'no',
    type: 'bool',
    default: 'no',
    meaning:
      'Another writer of this disk is intended (a cluster file system such as OCFS2 or GFS2): allow another read-write export of the same file, in this configuration or in another of our processes on this host (when it says shared = yes too), and another target answering this shelf.slot (vblade: --shared). Not a failover mechanism: two hosts serving one ordinary disk can lose acknowledged writes (docs/failover.md).',
  },
  {
    key: 'views',
    section: 'export',
    field: 'views',
    off: 'none',
    type: 'enum',
    default: 'none',
    values: ['none', 'per-initiator', 'per-boot'],
    meaning:
      'per-initiator: each initiator MAC reads and writes its own copy-on-write clone of file (made on its first ATA request, normally IDENTIFY; kept across restarts), and file itself is never written; needs views-dir on the same reflink file system (XFS made with mkfs.xfs -m reflink=1, or btrfs). per-boot: the same, and what a machine wrote is discarded when it boots again (kiosk labs): at an IDENTIFY from it after it sent no ATA request for per-boot-gap seconds, when its view was written. A machine with its disk open sends no IDENTIFY (docs/views.md).',
  },
  {
    key: 'per-boot-gap',
    section: 'export',
    field: 'perBootGap',
    type: 'count',
    default: '',
    defaultText: String(DEFAULT_PER_BOOT_GAP),
    range: [1, 86400],
    arg: 'SECONDS',
    meaning:
      "With views = per-boot: how long a machine must have sent no ATA request before its IDENTIFY counts as a new boot and its view is discarded. Shorter than the machine's shortest reboot (last request to firmware IDENTIFY: measure it, fast desktops and VMs reboot in well under the default); IDENTIFY that comes sooner keeps its data.",
  },
  {
    key: 'views-dir',
    section: 'export',
    field: 'viewsDir',
    type: 'path',
    default: '',
    defaultText: 'required with views = per-initiator',
    meaning:
      "Directory of the views and snapshots (one subdirectory per export, created if missing, mode 0700, owned by the user = user when one is set); on the same file system as file, which must make reflinks. It and its export subdirectories must belong to root or the daemon's user and be writable by nobody else, and no directory above it may be writable by others (unless sticky, like /tmp): otherwise the start is refused with the chmod or chown that fixes it.",
  },
  {
    key: 'max-views',
    section: 'export',
    field: 'maxViews',
    type: 'count',
    // Unset unless written (exports without views carry no such field); the views code applies the default.
    default: '',
    defaultText: String(DEFAULT_MAX_VIEWS),
    range: [1, MAX_MAX_VIEWS],
    meaning:
      'With views = per-initiator: how many views the export may have; a new initiator beyond it gets an error reply (views that exist keep working). Each view is a file that can grow to the size of file, and a frame from a new source MAC asks for one.',
  },
  {
    key: 'views-min-free',
    section: 'export',
    field: 'viewsMinFree',
    type: 'count',
    default: '',
    defaultText: String(DEFAULT_VIEWS_MIN_FREE),
    range: [0, 90],
    arg: 'PERCENT',
    meaning:
      'With views = per-initiator: percent of the views file system kept free; below it no new view is made, so that the views that exist keep room to write. 0 = no floor.',
  },
  {
    key: 'initiator-rows',
    section: 'export',
    field: 'initiatorRows',
    type: 'count',
    default: '',
    defaultText: String(DEFAULT_INITIATOR_ROWS),
    range: [0, MAX_INITIATOR_ROWS],
    meaning: `Initiator MACs whose requests, bytes and errors are counted each in a row of their own (vblade ctl stats --by-initiator, the vblade_initiator_* metrics); when a new MAC finds every row taken it takes the row of a MAC seen only once (else of the least active one), whose figures move to the row "other"; busy initiators keep theirs. Bounds memory and label count however many MACs frames claim to come from. 0: only "other" (0..${MAX_INITIATOR_ROWS}).`,
  },
  {
    key: 'nbd-connections',
    section: 'export',
    field: 'nbdConnections',
    type: 'count',
    default: '',
    defaultText: String(DEFAULT_NBD_CONNECTIONS),
    range: [1, MAX_NBD_CONNECTIONS],
    meaning: `With file = nbd://...: connections to the server (1..${MAX_NBD_CONNECTIONS}), each driven by a thread of its own; 1 when the server does not allow several (no multi-conn).`,
  },
  {
    key: 'remote-timeout',
    section: 'export',
    field: 'remoteTimeout',
    type: 'count',
    default: '',
    defaultText: String(DEFAULT_REMOTE_TIMEOUT),
    range: [1, MAX_REMOTE_TIMEOUT],
    arg: 'SECONDS',
    meaning:
      'With file = nbd://...: seconds a request may wait for the server (or, while it is away, for a reconnection) before it fails with an I/O error; the connection is then dropped and made again with back-off. Also bounds a handshake. With file = rbd:...: sets client_mount_timeout, rados_mon_op_timeout and rados_osd_op_timeout (unset: what ceph.conf sets, else 30), so a cluster that does not answer fails the start or the request instead of hanging.',
  },
  {
    key: 'ceph-conf',
    section: 'export',
    field: 'cephConf',
    type: 'path',
    default: '',
    defaultText: DEFAULT_CEPH_CONF,
    arg: 'FILE',
    meaning:
      "With file = rbd:...: the cluster's ceph.conf (its monitors, and the keyring that holds ceph-id's key). It must be a regular file of root or the daemon's user that others cannot change, in directories only they can change.",
  },
  {
    key: 'ceph-id',
    section: 'export',
    field: 'cephId',
    type: 'cephid',
    default: '',
    defaultText: DEFAULT_CEPH_ID,
    arg: 'ID',
    meaning:
      "With file = rbd:...: the cephx client the export connects as, without \"client.\" (its key comes from the keyring ceph.conf names); it needs rbd caps on the pool: ceph auth get-or-create client.ID mon 'profile rbd' osd 'profile rbd pool=POOL'.",
  },
  {
    key: 'null-store',
    section: 'export',
    field: 'nullStore',
    type: 'bool',
    default: 'no',
    meaning: 'Serve zeros and drop writes without touching storage (network tests); needs null-sectors, ignores file.',
  },
  {
    key: 'null-sectors',
    section: 'export',
    field: 'nullSectors',
    type: 'sectors',
    default: '',
    defaultText: 'required with null-store',
    meaning: 'Size of a null store in sectors.',
  },

  // [group NAME]
  {
    key: 'macs',
    section: 'group',
    field: 'macs',
    type: 'macs',
    default: '',
    required: true,
    defaultText: 'required',
    meaning: `Initiator MACs of the group, separated by spaces or commas (at most ${MAC_LIST_CAPACITY}); a group lists MACs, not other groups.`,
  },
];

/** The key of that name in a section, or undefined when the section has none. */
export function keyDef(section: KeyDef['section'], key: string): KeyDef | undefined {
  return KEYS.find((k) => k.section === section && k.key === key);
}

/** The keys of an [export eS.L] section, in table order. */
export const EXPORT_KEYS: readonly ExportKeyDef[] = KEYS.filter((k): k is ExportKeyDef => k.section === 'export');

/** The keys of the [daemon] section, in table order (the order --help, the docs and a reload's warning list them in). */
export const DAEMON_KEYS: readonly DaemonKeyDef[] = KEYS.filter((k): k is DaemonKeyDef => k.section === 'daemon');

/** The [daemon] keys of the serving core's tunables, which vblade takes as long options too. */
export const TUNABLE_KEYS: readonly DaemonKeyDef[] = DAEMON_KEYS.filter((k) => k.field in DEFAULT_TUNABLES);
