// A 512-byte x86 boot sector, assembled here by hand (opcode bytes with
// comments), for the iPXE scenarios. When iPXE's `sanboot aoe:e1.1` hands it the
// AoE disk as BIOS drive DL, it:
//   1. prints   AOETEST ipxe-boot marker=AOE-BOOT-SECTOR-OK drive=<DL in hex>
//   2. reads READ_SECTORS sectors from LBA 1 with INT 13h AH=42h (extended read)
//      and prints   AOETEST ipxe-read sectors=<n> sum=<16-bit checksum in hex>
//   3. writes the first of them back to LBA WRITE_LBA with INT 13h AH=43h and
//      prints   AOETEST ipxe-write lba=<n> status=ok
//   4. ends QEMU through the isa-debug-exit device (port 0xf4).
// Output goes straight to the COM1 UART (port 0x3f8), not through INT 10h:
// SeaBIOS copies INT 10h text to the serial port too, and the two would mix.
// On an INT 13h error it prints   AOETEST ipxe-error step=read|write status=<AX in hex>.
//
// The checksum: bx = 0; for each little-endian 16-bit word w: bx = rol(bx, 1) xor w.

export const READ_SECTORS = 64;
export const WRITE_LBA = 200;
export const MARKER = 'AOE-BOOT-SECTOR-OK';
const ORIGIN = 0x7c00;

/** A tiny one-pass assembler: bytes, labels, and fix-ups resolved at the end. */
class Asm {
  readonly bytes: number[] = [];
  private labels = new Map<string, number>();
  private fixups: Array<{ at: number; label: string; kind: 'rel8' | 'rel16' | 'abs16' }> = [];

  b(...bytes: number[]): this {
    this.bytes.push(...bytes);
    return this;
  }
  label(name: string): this {
    this.labels.set(name, this.bytes.length);
    return this;
  }
  /** 8-bit displacement to `label`, relative to the end of this byte. */
  rel8(label: string): this {
    this.fixups.push({ at: this.bytes.length, label, kind: 'rel8' });
    return this.b(0);
  }
  /** 16-bit displacement to `label`, relative to the end of these two bytes. */
  rel16(label: string): this {
    this.fixups.push({ at: this.bytes.length, label, kind: 'rel16' });
    return this.b(0, 0);
  }
  /** 16-bit absolute address of `label` (segment 0, loaded at 0x7c00). */
  abs16(label: string): this {
    this.fixups.push({ at: this.bytes.length, label, kind: 'abs16' });
    return this.b(0, 0);
  }
  imm16(v: number): this {
    return this.b(v & 0xff, (v >> 8) & 0xff);
  }
  ascii(s: string): this {
    return this.b(...Buffer.from(s, 'ascii'));
  }
  link(): Buffer {
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`boot sector: undefined label ${f.label}`);
      if (f.kind === 'rel8') {
        const d = target - (f.at + 1);
        if (d < -128 || d > 127) throw new Error(`boot sector: ${f.label} out of rel8 range`);
        this.bytes[f.at] = d & 0xff;
      } else {
        const v = f.kind === 'rel16' ? (target - (f.at + 2)) & 0xffff : ORIGIN + target;
        this.bytes[f.at] = v & 0xff;
        this.bytes[f.at + 1] = (v >> 8) & 0xff;
      }
    }
    if (this.bytes.length > 510) throw new Error(`boot sector too long: ${this.bytes.length} bytes`);
    const sector = Buffer.alloc(512);
    Buffer.from(this.bytes).copy(sector);
    sector[510] = 0x55; // boot signature
    sector[511] = 0xaa;
    return sector;
  }
}

export function bootSector(): Buffer {
  const a = new Asm();
  // --- set up segments and stack; remember the boot drive
  a.b(0xfa); //                                  cli
  a.b(0x31, 0xc0); //                            xor  ax, ax
  a.b(0x8e, 0xd8); //                            mov  ds, ax
  a.b(0x8e, 0xc0); //                            mov  es, ax
  a.b(0x8e, 0xd0); //                            mov  ss, ax
  a.b(0xbc).imm16(0x7c00); //                    mov  sp, 0x7c00
  a.b(0xfb); //                                  sti
  a.b(0xfc); //                                  cld
  a.b(0x88, 0x16).abs16('drive'); //             mov  [drive], dl
  // --- 1. the marker, then the drive number
  a.b(0xbe).abs16('msg_boot'); //                mov  si, msg_boot
  a.b(0xe8).rel16('puts'); //                    call puts
  a.b(0x30, 0xff); //                            xor  bh, bh
  a.b(0x8a, 0x1e).abs16('drive'); //             mov  bl, [drive]
  a.b(0xe8).rel16('puthex'); //                  call puthex
  a.b(0xbe).abs16('msg_crlf'); //                mov  si, msg_crlf
  a.b(0xe8).rel16('puts'); //                    call puts
  // --- 2. extended read of READ_SECTORS sectors from LBA 1 to 1000:0000
  a.b(0xb4, 0x42); //                            mov  ah, 0x42
  a.b(0x8a, 0x16).abs16('drive'); //             mov  dl, [drive]
  a.b(0xbe).abs16('dap_read'); //                mov  si, dap_read
  a.b(0xcd, 0x13); //                            int  0x13
  a.b(0x72).rel8('read_failed'); //              jc   read_failed
  a.b(0x1e); //                                  push ds
  a.b(0xb8).imm16(0x1000); //                    mov  ax, 0x1000
  a.b(0x8e, 0xd8); //                            mov  ds, ax
  a.b(0x31, 0xf6); //                            xor  si, si
  a.b(0x31, 0xdb); //                            xor  bx, bx
  a.b(0xb9).imm16(READ_SECTORS * 256); //        mov  cx, words to sum
  a.label('sum');
  a.b(0xad); //                                  lodsw
  a.b(0xd1, 0xc3); //                            rol  bx, 1
  a.b(0x31, 0xc3); //                            xor  bx, ax
  a.b(0xe2).rel8('sum'); //                      loop sum
  a.b(0x1f); //                                  pop  ds
  a.b(0xbe).abs16('msg_sum'); //                 mov  si, msg_sum
  a.b(0xe8).rel16('puts'); //                    call puts
  a.b(0xe8).rel16('puthex'); //                  call puthex      (bx)
  a.b(0xbe).abs16('msg_crlf'); //                mov  si, msg_crlf
  a.b(0xe8).rel16('puts'); //                    call puts
  // --- 3. write the first sector read (LBA 1's data) to WRITE_LBA
  a.b(0xb8).imm16(0x4300); //                    mov  ax, 0x4300  (AH=43h write, AL=0 no verify)
  a.b(0x8a, 0x16).abs16('drive'); //             mov  dl, [drive]
  a.b(0xbe).abs16('dap_write'); //               mov  si, dap_write
  a.b(0xcd, 0x13); //                            int  0x13
  a.b(0x72).rel8('write_failed'); //             jc   write_failed
  a.b(0xbe).abs16('msg_write'); //               mov  si, msg_write
  a.b(0xe8).rel16('puts'); //                    call puts
  // --- 4. leave QEMU: isa-debug-exit turns the byte v into exit status (v << 1) | 1
  a.label('exit');
  a.b(0xba).imm16(0x00f4); //                    mov  dx, 0xf4
  a.b(0xb0, 0x10); //                            mov  al, 0x10    (QEMU exits with 33)
  a.b(0xee); //                                  out  dx, al
  a.label('halt');
  a.b(0xfa); //                                  cli
  a.b(0xf4); //                                  hlt
  a.b(0xeb).rel8('halt'); //                     jmp  halt
  // --- errors: AX (AH = INT 13h status) in hex
  a.label('read_failed');
  a.b(0xbe).abs16('msg_rerr'); //                mov  si, msg_rerr
  a.b(0xeb).rel8('report'); //                   jmp  report
  a.label('write_failed');
  a.b(0xbe).abs16('msg_werr'); //                mov  si, msg_werr
  a.label('report');
  a.b(0x50); //                                  push ax
  a.b(0xe8).rel16('puts'); //                    call puts
  a.b(0x5b); //                                  pop  bx
  a.b(0xe8).rel16('puthex'); //                  call puthex
  a.b(0xbe).abs16('msg_crlf'); //                mov  si, msg_crlf
  a.b(0xe8).rel16('puts'); //                    call puts
  a.b(0xeb).rel8('exit'); //                     jmp  exit
  // --- puts: print the NUL-terminated string at ds:si
  a.label('puts');
  a.b(0xac); //                                  lodsb
  a.b(0x84, 0xc0); //                            test al, al
  a.b(0x74).rel8('puts_done'); //                jz   puts_done
  a.b(0xe8).rel16('putc'); //                    call putc
  a.b(0xeb).rel8('puts'); //                     jmp  puts
  a.label('puts_done');
  a.b(0xc3); //                                  ret
  // --- putc: send AL to COM1 once its transmit holding register is empty
  a.label('putc');
  a.b(0x52); //                                  push dx
  a.b(0x50); //                                  push ax
  a.b(0xba).imm16(0x3fd); //                     mov  dx, 0x3fd   (line status register)
  a.label('putc_wait');
  a.b(0xec); //                                  in   al, dx
  a.b(0xa8, 0x20); //                            test al, 0x20    (THR empty)
  a.b(0x74).rel8('putc_wait'); //                jz   putc_wait
  a.b(0x58); //                                  pop  ax
  a.b(0xba).imm16(0x3f8); //                     mov  dx, 0x3f8   (transmit register)
  a.b(0xee); //                                  out  dx, al
  a.b(0x5a); //                                  pop  dx
  a.b(0xc3); //                                  ret
  // --- puthex: print BX as four hex digits
  a.label('puthex');
  a.b(0xb9).imm16(4); //                         mov  cx, 4
  a.label('puthex_next');
  a.b(0xc1, 0xc3, 0x04); //                      rol  bx, 4
  a.b(0x88, 0xd8); //                            mov  al, bl
  a.b(0x24, 0x0f); //                            and  al, 0x0f
  a.b(0x04, 0x30); //                            add  al, '0'
  a.b(0x3c, 0x39); //                            cmp  al, '9'
  a.b(0x76).rel8('puthex_put'); //               jbe  puthex_put
  a.b(0x04, 0x07); //                            add  al, 'A' - '9' - 1
  a.label('puthex_put');
  a.b(0xe8).rel16('putc'); //                    call putc
  a.b(0xe2).rel8('puthex_next'); //              loop puthex_next
  a.b(0xc3); //                                  ret
  // --- data
  a.label('drive').b(0);
  // disk address packets: size 16, reserved, sector count, buffer offset, buffer segment, 64-bit LBA
  a.label('dap_read').b(0x10, 0).imm16(READ_SECTORS).imm16(0x0000).imm16(0x1000).imm16(1).imm16(0).imm16(0).imm16(0);
  a.label('dap_write').b(0x10, 0).imm16(1).imm16(0x0000).imm16(0x1000).imm16(WRITE_LBA).imm16(0).imm16(0).imm16(0);
  a.label('msg_boot').ascii(`\r\nAOETEST ipxe-boot marker=${MARKER} drive=`).b(0);
  a.label('msg_sum').ascii(`AOETEST ipxe-read sectors=${READ_SECTORS} sum=`).b(0);
  a.label('msg_write').ascii(`AOETEST ipxe-write lba=${WRITE_LBA} status=ok\r\n`).b(0);
  a.label('msg_rerr').ascii('AOETEST ipxe-error step=read status=').b(0);
  a.label('msg_werr').ascii('AOETEST ipxe-error step=write status=').b(0);
  a.label('msg_crlf').ascii('\r\n').b(0);
  return a.link();
}

/** The checksum the boot sector computes over `data` (a whole number of 16-bit words), as 4 hex digits. */
export function bootSectorChecksum(data: Buffer): string {
  let bx = 0;
  for (let i = 0; i + 1 < data.length; i += 2) {
    bx = ((bx << 1) | (bx >> 15)) & 0xffff;
    bx ^= data.readUInt16LE(i);
  }
  return bx.toString(16).toUpperCase().padStart(4, '0');
}
