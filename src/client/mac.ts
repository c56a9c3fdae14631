// Ethernet addresses: six bytes in a Uint8Array, printed as aa:bb:cc:dd:ee:ff.

export const BROADCAST_MAC: Readonly<Uint8Array> = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Parses "aa:bb:cc:dd:ee:ff", "aa-bb-…" or "aabbccddeeff"; throws with the offending text otherwise. */
export function parseMac(text: string): Uint8Array {
  const hex = text.trim().toLowerCase();
  const parts = /^[0-9a-f]{12}$/.test(hex) ? hex.match(/../g)! : hex.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-f]{1,2}$/.test(p))) {
    throw new Error(`not a MAC address: "${text}" (expected six hex bytes like 02:00:00:00:00:01)`);
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

export function formatMac(bytes: Uint8Array, offset = 0): string {
  let out = '';
  for (let i = 0; i < 6; i++) {
    if (i > 0) out += ':';
    out += bytes[offset + i].toString(16).padStart(2, '0');
  }
  return out;
}
