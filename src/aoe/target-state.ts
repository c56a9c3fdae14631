// The protocol state of one export: what AoE commands read and change.
// Plain data; the daemon persists config, mask and reserve when `version`
// moves.

import { MAX_CONFIG_LEN } from './constants';
import { MacList } from './mac-list';

export class TargetState {
  /** Config string bytes (AoE leaves their meaning to the initiators). */
  readonly config = new Uint8Array(MAX_CONFIG_LEN);
  configLen = 0;
  readonly mask = new MacList();
  readonly reserve = new MacList();
  /** Bumped by every change to config, mask or reserve. */
  version = 0;
  /** Take Mac Mask edits and Reserve sets sent to the broadcast shelf or slot (broadcast-edit.ts). */
  broadcastEdits = false;

  constructor(
    public shelf: number,
    public slot: number,
    /** Exported size in sectors. */
    public sectors: number,
    public readOnly: boolean,
    public bufferCount: number,
    /** The 512-byte IDENTIFY DEVICE page (identify.ts). */
    public identify: Uint8Array,
  ) {}

  configString(): string {
    let s = '';
    for (let i = 0; i < this.configLen; i++) s += String.fromCharCode(this.config[i]);
    return s;
  }

  /** Sets the config string from latin1 text (persisted state, config file). */
  setConfigString(text: string): void {
    const n = Math.min(text.length, MAX_CONFIG_LEN);
    for (let i = 0; i < n; i++) this.config[i] = text.charCodeAt(i) & 0xff;
    this.config.fill(0, n);
    this.configLen = n;
  }
}
