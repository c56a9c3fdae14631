// Pieces shared by the aoe-client and aoe-bench command lines.

/** A command-line mistake: printed without a stack, exit status 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/** "e1.2", "1.2" → {shelf: 1, slot: 2}. */
export function parseTargetAddress(text: string): { shelf: number; slot: number } {
  const m = /^e?(\d+)\.(\d+)$/i.exec(text.trim());
  if (m === null) throw new CliError(`not a target address: "${text}" (write shelf.slot as e1.2 or 1.2)`);
  const shelf = Number(m[1]);
  const slot = Number(m[2]);
  if (shelf > 65534) throw new CliError(`shelf ${shelf} is out of range: use 0..65534 (65535 is the broadcast shelf)`);
  if (slot > 254) throw new CliError(`slot ${slot} is out of range: use 0..254 (255 is the broadcast slot)`);
  return { shelf, slot };
}

/** A namespace name ("blue") or path ("/run/netns/blue") → the path. */
export function netnsPath(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  return value.includes('/') ? value : `/run/netns/${value}`;
}

/** Classic hex dump: offset, 16 bytes in hex, printable ASCII. */
export function hexDump(data: Uint8Array, baseOffset = 0): string {
  const lines: string[] = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, Math.min(i + 16, data.length));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0'));
    const left = hex.slice(0, 8).join(' ');
    const right = hex.slice(8).join(' ');
    const text = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${(baseOffset + i).toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${text}|`);
  }
  return lines.join('\n');
}

export function hex4(v: number): string {
  return `0x${v.toString(16).padStart(4, '0')}`;
}

/** Prints a failure the way every command of the project does, and sets the exit status. */
export function reportFailure(program: string, e: unknown): void {
  const err = e as Error;
  const known = ['CliError', 'AoeError', 'AtaError', 'TimeoutError', 'ReplyFormatError', 'RangeError'];
  // Errors from the native addon carry the errno name in `code` and say what to do in the message.
  const native = typeof (err as { code?: unknown })?.code === 'string';
  const text =
    known.includes(err?.name) || native || /native addon|no network interface|is down/.test(String(err?.message))
      ? err.message
      : (err?.stack ?? String(e));
  process.stderr.write(`${program}: ${text}\n`);
  process.exitCode = 1;
}
