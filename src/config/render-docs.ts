// Texts rendered from the key table (keys.ts), their only source: the long
// options in `vbladed --help` and `vblade --help`, systemd/vblade.conf.example
// and docs/vblade.conf.5 (scripts/render-config-docs.js writes the two files;
// a test fails when the committed ones differ).

import { DAEMON_KEYS, KEYS, type KeyDef } from './keys';
import { MAC_MASK_CAPACITY, MAX_SHELF, MAX_SLOT } from './vblade-args';
import { packageVersion } from './package-version';

function defaultShown(k: KeyDef): string {
  return k.defaultText ?? (k.default === '' ? 'unset' : k.default);
}

/** Long options of vbladed/vblade for --help, one key per entry: every [daemon] key, or those given. */
export function renderDaemonHelp(width = 100, keys: readonly KeyDef[] = DAEMON_KEYS): string {
  const rows = keys.map((k) => {
    const left = `  --${k.key} ${k.arg ?? 'VALUE'}`;
    const env = k.environment ? `, or ${k.environment} from the environment` : '';
    const right = `${k.meaning} [default: ${defaultShown(k)}${env}]`;
    return { left, right };
  });
  const pad = Math.max(...rows.map((r) => r.left.length)) + 2;
  return rows
    .map((r) =>
      wrap(r.right, width - pad)
        .map((l, i) => (i === 0 ? r.left.padEnd(pad) : ' '.repeat(pad)) + l)
        .join('\n'),
    )
    .join('\n');
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

function commentBlock(k: KeyDef): string {
  const values = k.values ? ` One of: ${k.values.join(', ')}.` : '';
  const opt = k.vbladeOption ? ` (vblade ${k.vbladeOption})` : '';
  const env = k.environment ? ` When unset here and on the command line, the environment variable ${k.environment} is used.` : '';
  const lines = wrap(`${k.meaning}${opt}${values} Default: ${defaultShown(k)}.${env}`, 76).map((l) => `# ${l}`);
  return lines.join('\n');
}

/** systemd/vblade.conf.example: every key, commented, with its default. */
export function renderExampleConfig(): string {
  const out: string[] = [
    '# vblade.conf: exports served by one vbladed (see vblade.conf(5)).',
    '# Generated from src/config/keys.ts; regenerate with',
    '#   node scripts/render-config-docs.js',
    '# A comment starts with # or ; at the start of a line or after a blank:',
    '#   interfaces = eth1 eth2   # two paths to one disk',
    '# A # or ; inside a word (file = /srv/disk#1.img) or in "..." is part of',
    '# the value. A value runs to the end of the line or to a comment; quote it',
    '# as "..." to keep leading or trailing spaces.',
    '',
    '[daemon]',
  ];
  for (const k of KEYS.filter((x) => x.section === 'daemon')) {
    out.push(commentBlock(k));
    out.push(`#${k.key} = ${k.default}`);
    out.push('');
  }
  out.push('# One section per export, named by its AoE address eSHELF.SLOT');
  out.push(`# (shelf 0..${MAX_SHELF}, slot 0..${MAX_SLOT}).`);
  out.push('[export e1.1]');
  const example: Record<string, string> = { file: '/srv/vblade/disk1.img', interfaces: 'eth1 eth2' };
  for (const k of KEYS.filter((x) => x.section === 'export')) {
    out.push(commentBlock(k));
    if (example[k.key]) out.push(`${k.key} = ${example[k.key]}`);
    else out.push(`#${k.key} = ${k.default}`);
    out.push('');
  }
  out.push('# A second export: read-only, on one interface, only for two initiators.');
  out.push('#[export e1.2]');
  out.push('#file = /dev/vg0/boot');
  out.push('#interfaces = eth1');
  out.push('#read-only = yes');
  out.push('#mac-mask = 52:54:00:12:34:56, 52:54:00:12:34:57');
  out.push('');
  out.push('# A named group of MACs, for the exports that share it: mac-mask = @lab');
  out.push('# (alone or beside other groups and MACs).');
  out.push('#[group lab]');
  for (const k of KEYS.filter((x) => x.section === 'group')) {
    out.push(commentBlock(k));
    out.push(`#${k.key} = 52:54:00:12:34:56 52:54:00:12:34:57`);
  }
  return out.join('\n') + '\n';
}

/** Escapes text for roff: backslashes, leading dots/quotes, hyphens in options. */
function roff(s: string): string {
  let t = s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  if (/^[.']/.test(t)) t = '\\&' + t;
  return t;
}

/** The date of the man page's text, for its .TH line: change it with the text. */
const MAN_PAGE_DATE = '2026-12-07';

/** The opening of the man page: name, synopsis and the file format. */
const MAN_PAGE_HEAD: readonly string[] = [
  '.\\" Generated from src/config/keys.ts by scripts/render-config-docs.js; do not edit.',
  `.TH VBLADE.CONF 5 "${MAN_PAGE_DATE}" "aoe-target ${packageVersion()}" "File Formats"`,
  '.SH NAME',
  'vblade.conf \\- exports and daemon settings of vbladed',
  '.SH SYNOPSIS',
  '.B /etc/vblade.conf',
  '.SH DESCRIPTION',
  'The file declares any number of ATA over Ethernet exports served by one',
  '.BR vbladed (8)',
  'process, and settings of the daemon itself.',
  'It is read at start and again on',
  '.BR SIGHUP ;',
  'a reload adds, removes, changes and resizes exports without disturbing the ones',
  'whose section did not change.',
  'A reload applies completely or not at all: it first opens the backing file and',
  'looks up the interfaces of every new or changed export, and any problem refuses',
  'it with nothing changed.',
  '.PP',
  'The file is plain text in sections.',
  'A section starts with a header line in brackets:',
  '.B [daemon]',
  'for the daemon settings (at most once),',
  '.BI "[export e" SHELF . SLOT ]',
  'for each export, named by its AoE address (shelf 0\\(en' + MAX_SHELF + ', slot 0\\(en' + MAX_SLOT + ';',
  'the leading e may be left out), and',
  '.BI "[group " NAME ]',
  'for a list of MACs that exports share (MAC GROUPS).',
  'Other lines are',
  '.IB key " = " value',
  'pairs.',
  'A comment starts with',
  '.B #',
  'or',
  '.B ;',
  'at the start of a line, or after a blank (space or tab) outside double',
  'quotes, and runs to the end of the line, so',
  '.B "interfaces = eth1 eth2   # two paths"',
  'means eth1 and eth2.',
  'A',
  '.B #',
  'or',
  '.B ;',
  'that does not follow a blank is part of the value',
  '.RB ( "file = /srv/disk#1.img" ),',
  'and so is one inside double quotes.',
  'A value runs from after the',
  '.B =',
  'to the end of the line or to a comment, with surrounding blanks removed;',
  'write it in double quotes to keep them, or a blank followed by',
  '.BR # ,',
  'with',
  '.B \\e"',
  'for a quote inside.',
  'Booleans are',
  '.BR yes / no',
  '(also true/false, on/off, 1/0).',
  'Numbers are decimal or 0x hexadecimal; a leading zero does not mean octal.',
  'Lists are separated by blanks or commas.',
  'An empty value means the default.',
  'Relative paths are taken relative to the directory of the file.',
  '.PP',
  'Every problem is reported at once as',
  '.IB file : line : " what is wrong; what to do"',
  'and the file is not used until all are fixed; on a reload the daemon keeps',
  'running with the previous configuration.',
  'Check a file without starting anything with',
  '.BR "vbladed \\-\\-check \\-\\-config" " FILE" ,',
  'which also opens every backing file and looks up every interface.',
];

/** The [group] section, before its key. */
const MAN_PAGE_GROUPS: readonly string[] = [
  '.SH MAC GROUPS',
  'A',
  '.BI "[group " NAME ]',
  'section names a list of initiator MACs once, for the exports that share it.',
  'A',
  '.B mac\\-mask',
  'names it as',
  '.BI @ NAME,',
  'alone or beside other groups and MACs',
  '.RB ( "mac\\-mask = @lab @teachers 52:54:00:12:34:56" );',
  "the export's mask is the expanded list, which may hold at most " + MAC_MASK_CAPACITY + ' MACs.',
  'A group lists MACs only, not other groups.',
  'NAME is up to 32 letters, digits,',
  '.B _',
  'and',
  '.BR \\- ,',
  'starting with a letter.',
  'A group may be declared before or after the exports that name it, and in a fragment.',
  'An unknown group is an error; a group no export names is a warning.',
  'A reload that changes a group changes the mask of every export that names it',
  '(as a changed',
  '.B mac\\-mask',
  'would; see STATE).',
];

/** Fragments: config-dir and `vblade ctl add`. */
const MAN_PAGE_FRAGMENTS: readonly string[] = [
  '.SH FRAGMENTS',
  'After the file, the daemon reads the',
  '.B *.conf',
  'files of',
  '.B config\\-dir',
  "(by default the file's name without",
  '.B .conf',
  'plus',
  '.BR .d :',
  '.I /etc/vblade.d',
  'for',
  '.IR /etc/vblade.conf )',
  'in name order, at start and on every reload.',
  'A fragment holds',
  '.B [export]',
  'and',
  '.B [group]',
  'sections, checked with the file as one configuration: an address declared in',
  'two places is an error.',
  '.B "vblade ctl add"',
  'writes one fragment per export',
  '.RI ( eSHELF.SLOT .conf)',
  'and',
  '.B "vblade ctl remove"',
  'deletes it; see',
  '.BR vblade (8).',
  'The directory must not be a symbolic link, must belong to root (or the',
  "daemon's user) and be writable by nobody else, and so must every directory",
  'above it; a fragment must be a regular file of root that nobody else may write.',
  'Otherwise the configuration is refused, naming the file and the fix.',
];

/** The man page after the key sections: state, an example, files. */
const MAN_PAGE_TAIL: readonly string[] = [
  '.SH STATE',
  'The config string, MAC mask list and reserve list that initiators set are',
  'saved per export in',
  '.IR state\\-dir / eSHELF.SLOT .json',
  'and restored at start, so they survive restarts and, with a shared state',
  'directory, a failover to another host.',
  'A',
  '.B mac\\-mask',
  'added, changed or removed in the file is applied at the next start or reload',
  'and wins over the saved mask from then on; otherwise the saved mask (which',
  'initiators may have edited) wins.',
  '.PP',
  'A change is acknowledged only once it is on disk. When it cannot be saved',
  '(a full or read\\-only file system) the request gets AoE error 3 and the',
  'saved state stays in force; the log, \\(lqvblade ctl list\\(rq and the metric',
  '.B vblade_export_state_save_failures_total',
  'say so.',
  'A state file that cannot be read (damaged, empty, a directory, a link or',
  'a FIFO in its place) is not followed and not overwritten: its export is',
  '.I held',
  '\\(em it answers nothing \\(em while the other exports serve, until an',
  'operator runs',
  '.BR "vblade ctl restore\\-state" " (after fixing the file) or"',
  '.B vblade ctl reset\\-state',
  '(which sets the file aside as',
  '.IR eSHELF.SLOT .json.corrupt\\- TIME',
  'and starts empty); see',
  '.BR vblade (8).',
  '.SH EXAMPLE',
  '.nf',
  '[daemon]',
  'log\\-format = text',
  'metrics = 127.0.0.1:9469',
  '',
  '[export e1.1]',
  'file = /srv/vblade/disk1.img',
  'interfaces = eth1 eth2',
  'sync = yes',
  '',
  '[group lab]',
  'macs = 52:54:00:12:34:56 52:54:00:12:34:57',
  '',
  '[export e1.2]',
  'file = /dev/vg0/boot',
  'interfaces = eth1',
  'read\\-only = yes',
  'mac\\-mask = @lab',
  '.fi',
  '.SH FILES',
  '.TP',
  '.B /etc/vblade.conf',
  'read by',
  '.BR vblade.service .',
  '.TP',
  '.B /etc/vblade.d/*.conf',
  'its fragments (FRAGMENTS).',
  '.TP',
  '.B /usr/share/doc/aoe\\-target/vblade.conf.example',
  'every key with its default (systemd/vblade.conf.example in the source).',
  '.SH SEE ALSO',
  '.BR vbladed (8),',
  '.BR vblade (8)',
];

/** One key as a man page paragraph. */
function manPageKey(k: KeyDef): string[] {
  const p = ['.TP', `.B ${roff(k.key)}`, roff(k.meaning)];
  if (k.values) p.push(`Values: ${k.values.map(roff).join(', ')}.`);
  if (k.vbladeOption) p.push(`Same as vblade's`, `.B ${roff(k.vbladeOption)}`, 'option.');
  p.push(`Default: ${roff(defaultShown(k))}.`);
  if (k.environment) {
    p.push(
      'When neither the file nor the command line sets it, the environment variable',
      `.B ${roff(k.environment)}`,
      'is used (as before the key existed).',
    );
  }
  return p;
}

/** Which [daemon] keys a reload applies; the others wait for a restart. */
function reloadSentence(): string[] {
  const applied = DAEMON_KEYS.filter((k) => k.reload === 'applies').map((k) => roff(k.key));
  return [
    'A reload applies a changed',
    `.B ${applied.join(', ')}`,
    'at once; a change of any other key takes effect at the next start, and the',
    'reload names the keys that wait for it.',
  ];
}

/** docs/vblade.conf.5, whole. */
export function renderConfManPage(): string {
  const keys = (which: KeyDef['section']): string[] => KEYS.filter((k) => k.section === which).flatMap(manPageKey);
  const out = [
    ...MAN_PAGE_HEAD,
    '.SH DAEMON SETTINGS',
    'Keys of the',
    '.B [daemon]',
    'section.',
    'Each is also a long option of',
    '.BR vbladed (8),',
    'for example',
    '.BR "\\-\\-state\\-dir " DIR ,',
    'which wins over the file.',
    ...reloadSentence(),
    ...keys('daemon'),
    '.SH EXPORT SETTINGS',
    'Keys of an',
    '.B [export]',
    'section.',
    'An export with several interfaces is reachable over each; initiators use',
    'every path.',
    ...keys('export'),
    ...MAN_PAGE_GROUPS,
    ...keys('group'),
    ...MAN_PAGE_FRAGMENTS,
    ...MAN_PAGE_TAIL,
  ];
  return out.join('\n') + '\n';
}
