// Running the QEMU guest inside the guest namespace and reading its serial console.
//
// The guest's COM1 is QEMU's stdio: every line it prints reaches `onLine`, is kept
// in a log file, and lines of the form
//     AOETEST <tag> key=value key=value ...
// (anywhere in the line: BIOS and kernel output may share it) are parsed into
// GuestLine records. QEMU's stdin is the guest's serial input, a back channel
// the host uses to tell the guest about events ("target killed") or to type
// commands into a shell.

import * as fs from 'node:fs';
import { Proc, commandLine, inNetns } from './process';
import { GUEST_MAC, TAP_IF } from './topology';

export interface GuestLine {
  tag: string;
  fields: Record<string, string>;
  raw: string;
  /** ms since QEMU started, as seen by the host. */
  atMs: number;
}

const LINE_RE = /AOETEST ([A-Za-z][\w-]*)((?: [\w.-]+=\S*)*)/;

export function parseGuestLine(line: string, atMs = 0): GuestLine | null {
  const m = LINE_RE.exec(line);
  if (!m) return null;
  const fields: Record<string, string> = {};
  for (const kv of m[2].trim().split(' ').filter(Boolean)) {
    const eq = kv.indexOf('=');
    fields[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { tag: m[1], fields, raw: m[0], atMs };
}

export interface Accel {
  name: 'kvm' | 'tcg';
  args: string[];
}

/** KVM only when the CPU advertises vmx/svm (a paravirtual /dev/kvm cannot run these guests); TCG otherwise. */
export function chooseAccel(): Accel {
  const forced = process.env.AOE_INTEROP_ACCEL;
  let kvm = false;
  if (forced === 'kvm') kvm = true;
  else if (forced !== 'tcg') {
    const flags = fs.readFileSync('/proc/cpuinfo', 'utf8');
    kvm = /^flags\s*:.*\b(vmx|svm)\b/m.test(flags) && fs.existsSync('/dev/kvm');
  }
  return kvm
    ? { name: 'kvm', args: ['-accel', 'kvm', '-cpu', 'host'] }
    : { name: 'tcg', args: ['-accel', 'tcg,thread=multi', '-cpu', 'max'] };
}

export interface QemuOptions {
  /** Network namespace that holds the tap device. */
  ns: string;
  /** The tap device in `ns`; default tap0. */
  tap?: string;
  /** The guest NIC's MAC; default GUEST_MAC. Guests sharing a bridge need different ones. */
  mac?: string;
  name: string;
  /** Serial console log (appended). */
  logFile: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** Boot from the network through the NIC's option ROM (no -kernel). */
  netBoot?: boolean;
  memMiB?: number;
  /** Let a guest reboot reset the machine (default: a reboot ends QEMU, -no-reboot). */
  allowReboot?: boolean;
  /** Add isa-debug-exit at port 0xf4 (a write there ends QEMU). */
  debugExit?: boolean;
  /** QEMU is killed after this long. */
  timeoutMs: number;
  onLine?: (line: string) => void;
}

export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  ms: number;
}

export class Qemu {
  readonly accel: Accel;
  readonly results: GuestLine[] = [];
  readonly child: Proc;
  readonly done: Promise<QemuExit>;
  private readonly start = Date.now();
  private waiters: Array<{ pred: (l: GuestLine) => boolean; resolve: (l: GuestLine) => void }> = [];
  private timedOut = false;

  constructor(opts: QemuOptions) {
    this.accel = chooseAccel();
    const args = [
      '-name',
      opts.name,
      '-no-user-config',
      '-nodefaults',
      // graphics=off: SeaBIOS and iPXE copy their screen text to the serial port (useful in failure logs)
      '-machine',
      'pc,graphics=off',
      ...this.accel.args,
      '-smp',
      '1', // one vCPU: the Linux aoe driver hung with two (see docs/interop.md)
      '-m',
      String(opts.memMiB ?? 384),
      '-display',
      'none',
      '-vga',
      'none',
      '-chardev',
      'stdio,id=con0,signal=off',
      '-serial',
      'chardev:con0',
      '-monitor',
      'none',
      '-netdev',
      `tap,id=n0,ifname=${opts.tap ?? TAP_IF},script=no,downscript=no`,
      // the NIC ROM is only loaded when the guest boots from the network
      '-device',
      `virtio-net-pci,netdev=n0,mac=${opts.mac ?? GUEST_MAC}${opts.netBoot ? '' : ',romfile='}`,
    ];
    if (!opts.allowReboot) args.push('-no-reboot');
    if (opts.debugExit) args.push('-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04');
    if (opts.netBoot) args.push('-boot', 'n');
    if (opts.kernel) args.push('-kernel', opts.kernel);
    if (opts.initrd) args.push('-initrd', opts.initrd);
    if (opts.append !== undefined) args.push('-append', opts.append);
    fs.appendFileSync(opts.logFile, `# ${commandLine(...inNetns(opts.ns, 'qemu-system-x86_64', args))}\n`);

    this.child = new Proc('qemu-system-x86_64', args, {
      netns: opts.ns,
      label: opts.name,
      logFile: opts.logFile,
      stdin: 'pipe',
      onLine: (line) => {
        opts.onLine?.(line);
        const parsed = parseGuestLine(line, Date.now() - this.start);
        if (!parsed) return;
        this.results.push(parsed);
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(parsed)) return true;
          w.resolve(parsed);
          return false;
        });
      },
    });
    const timer = setTimeout(() => {
      this.timedOut = true;
      this.child.signal('SIGKILL');
    }, opts.timeoutMs);
    this.done = this.child.exited.then((e) => {
      clearTimeout(timer);
      return { ...e, timedOut: this.timedOut, ms: Date.now() - this.start };
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Resolves with the first result line (already seen or to come) that matches; rejects when QEMU ends first or after timeoutMs. */
  waitFor(pred: (l: GuestLine) => boolean, timeoutMs: number): Promise<GuestLine> {
    const seen = this.results.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`guest line not seen within ${timeoutMs} ms`)), timeoutMs);
      const w = {
        pred,
        resolve: (l: GuestLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      this.waiters.push(w);
      void this.done.then(() => {
        if (this.waiters.includes(w)) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error('QEMU ended before the guest printed the line'));
        }
      });
    });
  }

  /** All result lines with this tag. */
  lines(tag: string): GuestLine[] {
    return this.results.filter((l) => l.tag === tag);
  }

  /** The first result line with this tag, or an empty record. */
  first(tag: string): Record<string, string> {
    return this.results.find((l) => l.tag === tag)?.fields ?? {};
  }

  /** Writes to the guest's serial input. */
  send(text: string): void {
    this.child.write(text);
  }

  /** Ends QEMU by pid: SIGKILL at once, a guest has nothing to save. */
  async kill(): Promise<void> {
    this.child.signal('SIGKILL');
    await this.child.exited;
  }
}
