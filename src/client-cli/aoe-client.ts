// aoe-client: the project's AoE initiator on the command line.
//
//   aoe-client discover [eS.N] --if IF [--netns NS]
//   aoe-client identify eS.N --if IF
//   aoe-client read eS.N LBA [COUNT] [--out FILE | --check] --if IF
//   aoe-client write eS.N LBA (--in FILE | --pattern COUNT) --if IF
//   aoe-client flush eS.N [--ext] --if IF
//   aoe-client config eS.N [read|test|prefix|set|fset] [STRING] --if IF
//   aoe-client mask eS.N [list|add|del] [MAC...] --if IF
//   aoe-client reserve eS.N [read|set|force|release] [MAC...] --if IF

import { readFileSync, writeFileSync } from 'node:fs';
import yargs, { Argv, CommandModule } from 'yargs';
import { AoeClient, DiscoveredTarget, Target } from '../client/client';
import {
  CliError,
  clientVersion,
  failHandler,
  hex4,
  hexDump,
  netnsPath,
  parseTargetAddress,
  reportFailure,
  type CommandUsage,
} from './common';
import { parseMac } from '../client/mac';
import { checkSectors, fillSectors } from '../client/pattern';
import { MASK_ERROR_NAMES, SECTOR_SIZE, SHELF_BROADCAST, SLOT_BROADCAST } from '../client/wire';

interface GlobalArgs {
  if?: string;
  netns?: string;
  timeout: number;
  retries: number;
  json: boolean;
  mac?: string;
}

function out(args: GlobalArgs, value: unknown, text: () => string): void {
  process.stdout.write(args.json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}

function openClient(args: GlobalArgs): AoeClient {
  if (args.if === undefined || args.if === '') throw new CliError('name the network interface with --if (for example --if eth1)');
  return AoeClient.open(args.if, { netns: netnsPath(args.netns), timeoutMs: args.timeout, retries: args.retries });
}

/** Opens a client, finds the target (or takes --mac), runs `fn`, closes. */
async function withTarget<T>(args: GlobalArgs & { target: string }, fn: (c: AoeClient, t: Target) => Promise<T>): Promise<T> {
  const addr = parseTargetAddress(args.target);
  const client = openClient(args);
  try {
    const target: Target =
      args.mac !== undefined
        ? { ...addr, mac: parseMac(args.mac) }
        : await client.find(addr.shelf, addr.slot, Math.max(args.timeout * (args.retries + 1), 1000));
    return await fn(client, target);
  } finally {
    client.close();
  }
}

function describeTarget(t: DiscoveredTarget): string {
  const cfg = t.config.length > 0 ? `  config "${t.config}"` : '';
  return `e${t.shelf}.${t.slot}  ${t.macText}  buffers ${t.bufferCount}  sectors/request ${t.sectorCount}  firmware ${hex4(t.firmware)}  aoe v${t.aoeVersion}${cfg}`;
}

function targetArg(y: Argv<GlobalArgs>): Argv<GlobalArgs & { target: string }> {
  return y.positional('target', {
    type: 'string',
    describe: 'the export, as eSHELF.SLOT (e.g. e1.2)',
    demandOption: true,
  });
}

/** Each command's usage and a line that works, for the messages about a command line that does not. */
const COMMAND_USAGE: Record<string, CommandUsage> = {
  discover: { usage: 'discover [target] --if IF', example: 'aoe-client discover --if eth1' },
  identify: { usage: 'identify <target> --if IF', example: 'aoe-client identify e1.1 --if eth1' },
  read: { usage: 'read <target> <lba> [count] --if IF', example: 'aoe-client read e1.1 0 8 --if eth1' },
  write: {
    usage: 'write <target> <lba> (--in FILE | --pattern COUNT) --if IF',
    example: 'aoe-client write e1.1 0 --pattern 8 --if eth1',
  },
  flush: { usage: 'flush <target> [--ext] --if IF', example: 'aoe-client flush e1.1 --if eth1' },
  config: {
    usage: 'config <target> [read|test|prefix|set|fset] [value] --if IF',
    example: 'aoe-client config e1.1 set lab --if eth1',
  },
  mask: {
    usage: 'mask <target> [list|add|del] [macs..] --if IF',
    example: 'aoe-client mask e1.1 add 52:54:00:12:34:56 --if eth1',
  },
  reserve: {
    usage: 'reserve <target> [read|set|force|release] [macs..] --if IF',
    example: 'aoe-client reserve e1.1 set --if eth1',
  },
};

export async function main(argv: string[]): Promise<void> {
  if (argv.includes('--version')) {
    process.stdout.write(`aoe-client ${clientVersion()}\n`);
    return;
  }
  try {
    await buildParser(argv).parseAsync();
  } catch (e) {
    reportFailure('aoe-client', e);
  }
}

export function buildParser(argv: string[]): Argv<GlobalArgs> {
  return globalOptions(yargs(argv))
    .command(discover)
    .command(identify)
    .command(read)
    .command(write)
    .command(flush)
    .command(config)
    .command(mask)
    .command(reserve)
    .demandCommand(1, 'name a command: discover, identify, read, write, flush, config, mask or reserve')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version('version', 'show the version', `aoe-client ${clientVersion()}`)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .check((a) => {
      if (!(a.timeout > 0)) throw new CliError('--timeout is milliseconds to wait for a reply, more than 0, e.g. --timeout 500');
      if (!Number.isInteger(a.retries) || a.retries < 0)
        throw new CliError('--retries is a whole number of retransmissions, 0 or more, e.g. --retries 3');
      return true;
    })
    .fail(failHandler({ program: 'aoe-client', argv, commands: COMMAND_USAGE, example: 'aoe-client discover --if eth1' }));
}

/** The program's name, usage line and the options every command takes. */
function globalOptions(y: Argv): Argv<GlobalArgs> {
  return y
    .scriptName('aoe-client')
    .usage(
      '$0 <command> [target] [arguments] --if IF [--netns NS]\n\nAn ATA-over-Ethernet (AoE r11) initiator: discover exports and talk to one.',
    )
    .option('if', { type: 'string', describe: 'network interface to use (e.g. eth1, veth0)', requiresArg: true })
    .option('netns', {
      type: 'string',
      describe: 'network namespace the interface is in: a name from `ip netns` or a path',
      requiresArg: true,
    })
    .option('timeout', { type: 'number', default: 500, describe: 'ms to wait for a reply before sending again' })
    .option('retries', { type: 'number', default: 3, describe: 'retransmissions before giving up' })
    .option('mac', { type: 'string', describe: "the target's MAC; skips discovery", requiresArg: true })
    .option('json', { type: 'boolean', default: false, describe: 'print results as JSON' });
}

/** One subcommand: its usage, its options (builder) and what it does (handler). */
function subcommand<U>(module: CommandModule<GlobalArgs, U>): CommandModule<GlobalArgs, U> {
  return module;
}

const discover = subcommand({
  command: 'discover [target]',
  describe: 'broadcast a config query and list who answers',
  builder: (y) => y.positional('target', { type: 'string', describe: 'only this export (eS.N); default: every shelf and slot' }),
  handler: async (args) => {
    const addr = args.target !== undefined ? parseTargetAddress(args.target) : { shelf: SHELF_BROADCAST, slot: SLOT_BROADCAST };
    const client = openClient(args);
    try {
      const found = await client.discover(addr.shelf, addr.slot, Math.max(args.timeout, 200));
      out(
        args,
        found.map((t) => ({ ...t, mac: t.macText, configBytes: undefined })),
        () => (found.length === 0 ? `no AoE target answered on ${args.if}` : found.map(describeTarget).join('\n')),
      );
      if (found.length === 0) process.exitCode = 2;
    } finally {
      client.close();
    }
  },
});

const identify = subcommand({
  command: 'identify <target>',
  describe: 'send ATA IDENTIFY DEVICE and show the answer',
  builder: (y) => targetArg(y).option('raw', { type: 'boolean', default: false, describe: 'also dump the 512 bytes' }),
  handler: async (args) => {
    await withTarget(args, async (c, t) => {
      const id = await c.identify(t);
      const { raw, ...fields } = id;
      out(args, { ...fields, bytes: id.sectors * SECTOR_SIZE }, () =>
        [
          `model     ${id.model}`,
          `serial    ${id.serial}`,
          `firmware  ${id.firmwareRevision}`,
          `capacity  ${id.sectors} sectors (${((id.sectors * SECTOR_SIZE) / 2 ** 30).toFixed(3)} GiB), ${id.lba48 ? '48-bit' : '28-bit'} addressing`,
          ...(args.raw ? ['', hexDump(raw)] : []),
        ].join('\n'),
      );
    });
  },
});

const read = subcommand({
  command: 'read <target> <lba> [count]',
  describe: 'read sectors (hex dump, or --out FILE)',
  builder: (y) =>
    targetArg(y)
      .positional('lba', { type: 'number', demandOption: true, describe: 'first sector' })
      .positional('count', { type: 'number', default: 1, describe: 'number of sectors' })
      .option('out', { type: 'string', describe: 'write the data to this file instead of dumping it', requiresArg: true })
      .option('check', { type: 'boolean', default: false, describe: "verify the data is the project's test pattern" }),
  handler: async (args) => {
    checkLba(args.lba, args.count);
    await withTarget(args, async (c, t) => {
      const data = await c.read(t, args.lba, args.count);
      if (args.check) {
        const bad = checkSectors(data, 0, args.lba, args.count);
        if (bad >= 0) throw new CliError(`sector ${args.lba + bad} does not hold the test pattern`);
      }
      printRead(args, data);
    });
  },
});

/** What `read` prints: where the data went, that it holds the pattern, or the data itself. */
function printRead(args: GlobalArgs & { lba: number; count: number; out?: string; check: boolean }, data: Uint8Array): void {
  const { lba, count } = args;
  if (args.out !== undefined) {
    writeFileSync(args.out, data);
    out(args, { lba, count, file: args.out }, () => `read ${count} sectors at LBA ${lba} into ${args.out}`);
  } else if (args.check) {
    out(args, { lba, count, pattern: true }, () => `${count} sectors at LBA ${lba} hold the test pattern`);
  } else {
    out(args, { lba, count, hex: Buffer.from(data).toString('hex') }, () => hexDump(data, lba * SECTOR_SIZE));
  }
}

const write = subcommand({
  command: 'write <target> <lba>',
  describe: 'write sectors from a file (--in) or the test pattern (--pattern COUNT)',
  builder: (y) =>
    targetArg(y)
      .positional('lba', { type: 'number', demandOption: true, describe: 'first sector' })
      .option('in', { type: 'string', describe: 'file to write (padded with zeros to whole sectors)', requiresArg: true })
      .option('pattern', { type: 'number', describe: "write COUNT sectors of the project's test pattern", requiresArg: true })
      .conflicts('in', 'pattern'),
  handler: async (args) => {
    const data = dataToWrite(args);
    const count = data.length / SECTOR_SIZE;
    checkLba(args.lba, count);
    await withTarget(args, async (c, t) => {
      await c.write(t, args.lba, data);
      out(args, { lba: args.lba, count }, () => `wrote ${count} sectors at LBA ${args.lba}`);
    });
  },
});

/** The sectors `write` sends: the file padded to whole sectors, or COUNT sectors of the test pattern. */
function dataToWrite(args: { lba: number; in?: string; pattern?: number }): Uint8Array {
  let data: Uint8Array;
  if (args.in !== undefined) {
    const file = readFileSync(args.in);
    data = new Uint8Array(Math.ceil(file.length / SECTOR_SIZE) * SECTOR_SIZE);
    data.set(file);
  } else if (args.pattern !== undefined) {
    if (!Number.isInteger(args.pattern) || args.pattern < 1) throw new CliError('--pattern takes a number of sectors, 1 or more');
    data = new Uint8Array(args.pattern * SECTOR_SIZE);
    fillSectors(data, 0, args.lba, args.pattern);
  } else {
    throw new CliError('say what to write: --in FILE or --pattern COUNT');
  }
  if (data.length === 0) throw new CliError(`${args.in} is empty: nothing to write`);
  return data;
}

const flush = subcommand({
  command: 'flush <target>',
  describe: 'send FLUSH CACHE and wait for the answer',
  builder: (y) =>
    targetArg(y).option('ext', { type: 'boolean', default: false, describe: 'FLUSH CACHE EXT (0xEA) instead of 0xE7' }),
  handler: async (args) => {
    await withTarget(args, async (c, t) => {
      const r = await c.flush(t, args.ext);
      out(args, { status: r.ata.status, error: r.ata.err }, () => `flushed (status 0x${r.ata.status.toString(16)})`);
    });
  },
});

const config = subcommand({
  command: 'config <target> [action] [value]',
  describe: 'read, test or set the config string',
  builder: (y) =>
    targetArg(y)
      .positional('action', {
        choices: ['read', 'test', 'prefix', 'set', 'fset'] as const,
        default: 'read' as const,
        describe: 'read; test (exact match); prefix (prefix match); set (only if empty); fset (force)',
      })
      .positional('value', { type: 'string', default: '', describe: 'the string' }),
  handler: async (args) => {
    await withTarget(args, async (c, t) => {
      const v = args.value;
      switch (args.action) {
        case 'read': {
          const s = await c.configRead(t);
          return out(args, { config: s }, () => s);
        }
        case 'test':
        case 'prefix': {
          const ok = args.action === 'test' ? await c.configTest(t, v) : await c.configPrefixTest(t, v);
          if (!ok) process.exitCode = 2;
          return out(args, { match: ok }, () => (ok ? 'match' : 'no match (the target stayed silent)'));
        }
        case 'set':
        case 'fset': {
          const s = args.action === 'set' ? await c.configSet(t, v) : await c.configForceSet(t, v);
          return out(args, { config: s }, () => `config string is now "${s}"`);
        }
      }
    });
  },
});

const mask = subcommand({
  command: 'mask <target> [action] [macs..]',
  describe: 'list or edit the MAC mask (who may use the export)',
  builder: (y) =>
    targetArg(y)
      .positional('action', { choices: ['list', 'add', 'del'] as const, default: 'list' as const })
      .positional('macs', { type: 'string', array: true, default: [] as string[], describe: 'MAC addresses' }),
  handler: async (args) => {
    const macs = args.macs.map(String);
    if (args.action !== 'list' && macs.length === 0) throw new CliError(`mask ${args.action} needs one or more MAC addresses`);
    macs.forEach(parseMac);
    await withTarget(args, async (c, t) => {
      if (args.action === 'list') {
        const list = await c.maskRead(t);
        return out(args, { mask: list }, () => (list.length === 0 ? '(empty: everyone may use it)' : list.join('\n')));
      }
      const r = args.action === 'add' ? await c.maskEdit(t, macs, []) : await c.maskEdit(t, [], macs);
      if (r.merror !== 0) {
        throw new CliError(
          `mask ${args.action} failed at directive ${r.dirCount}: ${MASK_ERROR_NAMES[r.merror] ?? `MError ${r.merror}`}`,
        );
      }
      const list = r.directives.map((d) => d.mac);
      return out(args, { mask: list }, () => (list.length === 0 ? '(empty)' : list.join('\n')));
    });
  },
});

const reserve = subcommand({
  command: 'reserve <target> [action] [macs..]',
  describe: 'read, set, force or release the reservation',
  builder: (y) =>
    targetArg(y)
      .positional('action', { choices: ['read', 'set', 'force', 'release'] as const, default: 'read' as const })
      .positional('macs', {
        type: 'string',
        array: true,
        default: [] as string[],
        describe: 'MAC addresses (default for set/force: our own)',
      }),
  handler: async (args) => {
    await withTarget(args, async (c, t) => {
      const macs = args.macs.map(String);
      let list: string[];
      switch (args.action) {
        case 'read':
          list = await c.reserveRead(t);
          break;
        case 'set':
          list = await c.reserveSet(t, macs.length > 0 ? macs : [c.macText]);
          break;
        case 'force':
          list = await c.reserveForceSet(t, macs.length > 0 ? macs : [c.macText]);
          break;
        case 'release':
          list = await c.release(t);
          break;
      }
      out(args, { reserve: list }, () => (list.length === 0 ? '(not reserved)' : list.join('\n')));
    });
  },
});

function checkLba(lba: number, count: number): void {
  // yargs reads a word that is no number as NaN: say what was expected rather than "NaN".
  if (Number.isNaN(lba)) throw new CliError('the LBA must be a sector number (0 .. 2^48-1), e.g. 0');
  if (!Number.isInteger(lba) || lba < 0 || lba >= 2 ** 48) throw new CliError(`LBA ${lba} is not a sector number (0 .. 2^48-1)`);
  if (Number.isNaN(count)) throw new CliError('the count must be a whole number of sectors, 1 or more, e.g. 8');
  if (!Number.isInteger(count) || count < 1) throw new CliError(`count ${count} must be a whole number of sectors, 1 or more`);
}
