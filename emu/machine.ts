// The synthetic PC the Gen1 firmware runs on: guest RAM layout and the port I/O bus with the devices boot code
// polls — 8254 PIT (Intel 8254 datasheet), port 61h (IBM PC/AT TRM), 8042 keyboard controller, MC146818 CMOS/RTC,
// port 92h fast A20, 8259 PICs, VGA and 16550 UART registers. Unknown ports are logged and read as all-ones.
import { VirtualClock, NS_PER_PORT_ACCESS, PIT_HZ } from "./clock.ts";
import { Trace } from "./trace.ts";
import type { Cpu, Mmr } from "./cpu.ts";

/** Guest physical memory layout (real-mode view), the addresses a PC/AT BIOS uses. */
export const MEM = {
  IVT: 0x0000,
  BDA: 0x0400,
  /** Boot sector load address 0000:7C00 (BIOS Boot Specification 1.01, 6.5.1). */
  BOOT: 0x7c00,
  /** Extended BIOS data area: the top 1 KiB of conventional memory (639 KiB usable, as Hyper-V's BIOS). */
  EBDA: 0x9fc00,
  VGA_TEXT: 0xb8000,
  BIOS_SEG: 0xf000,
  /** Our BIOS image: F0000-FFFFF (SMBIOS, RSDP, tables, one INT stub per vector). */
  BIOS: 0xf0000,
  STUBS: 0xfd000,
  HIGH_MEM: 0x100000,
} as const;

/** Offset in segment F000 of the stub for vector n: `INT n ; IRET` (4 bytes each). */
export const stubOffset = (n: number): number => 0xd000 + n * 4;

/** Whether the bytes at `at` are `pattern`, where -1 matches any byte (code signatures with addresses left open). */
export function bytesMatch(ram: Uint8Array, at: number, pattern: readonly number[]): boolean {
  if (at < 0 || at + pattern.length > ram.length) return false;
  for (let i = 0; i < pattern.length; i++) if (pattern[i] >= 0 && ram[at + i] !== pattern[i]) return false;
  return true;
}

export type PortIn = (port: number, size: number) => number;
export type PortOut = (port: number, size: number, value: number) => void;

interface PitChannel { mode: number; reload: number; access: number; writeLow: boolean; readLow: boolean;
  latched?: number; start: number; gateStart: number; loadPending?: number }

/** Devices on the port bus. Small state machines; everything derives time from the one VirtualClock. */
export class Machine {
  readonly clock: VirtualClock;
  readonly trace: Trace;
  readonly serial: number[] = [];
  a20 = true;
  /** Set when the guest asks for a CPU reset (8042 command FEh, port 92h bit 0). */
  resetRequested?: string;
  private ins = new Map<number, PortIn>();
  private outs = new Map<number, PortOut>();
  private unknownPorts = new Map<number, number>();
  private pit: PitChannel[] = [0, 1, 2].map(() => ({ mode: 3, reload: 65536, access: 3, writeLow: true, readLow: true, start: 0, gateStart: 0 }));
  private port61 = 0;
  private cmosIndex = 0;
  private cmosRam = new Uint8Array(128);
  private kbcStatusCmd = false;
  private kbcPendingCmd = 0;
  private kbcOut: number[] = [];
  private kbcOutputPort = 0x03;
  private picMask = [0xb8, 0x8f];
  private vgaCrtcIndex = 0;
  private vgaCrtc = new Uint8Array(32);
  private serialRegs = new Uint8Array(8);
  portAccesses = 0;

  /** `shared`: a clock and trace that outlive this machine (Gen2 powers on again after a reset with the same ones). */
  constructor(readonly cpu: Cpu, readonly memoryBytes: number, traceEvents = 256, shared?: { clock: VirtualClock; trace: Trace }) {
    this.clock = shared?.clock ?? new VirtualClock();
    this.trace = shared?.trace ?? new Trace(() => this.clock.now / 1000, traceEvents);
    this.installDevices();
  }

  // ---- memory helpers (linear addresses in guest RAM) ----
  get ram(): Buffer { return this.cpu.ram; }
  u8(a: number): number { return a < this.ram.length ? this.ram[a] : 0xff; }
  u16(a: number): number { return a + 2 <= this.ram.length ? this.ram.readUInt16LE(a) : 0xffff; }
  u32(a: number): number { return a + 4 <= this.ram.length ? this.ram.readUInt32LE(a) : 0xffffffff; }
  w8(a: number, v: number): void { if (a < this.ram.length) this.ram[a] = v & 0xff; }
  w16(a: number, v: number): void { if (a + 2 <= this.ram.length) this.ram.writeUInt16LE(v & 0xffff, a); }
  w32(a: number, v: number): void { if (a + 4 <= this.ram.length) this.ram.writeUInt32LE(v >>> 0, a); }
  /** A NUL-terminated string of at most `max` bytes (Latin-1). */
  cstr(a: number, max: number): string {
    let s = "";
    for (let i = 0; i < max && a + i < this.ram.length; i++) {
      const c = this.ram[a + i];
      if (c === 0) break;
      s += String.fromCharCode(c);
    }
    return s;
  }

  /** CR0.PE: the guest is in protected mode. */
  protectedMode(): boolean { return (this.cpu.reg("CR0") & 1) === 1; }

  /** Linear base of a segment register's selector: selector*16 in real mode, the GDT descriptor's base otherwise. */
  segBase(sel: number): number {
    if (!this.protectedMode()) return (sel & 0xffff) * 16;
    return this.gdtBase(sel);
  }

  /** The GDT descriptor of a selector (its linear address), or undefined for an LDT selector or one past the limit. */
  private descriptor(sel: number, gdt: Mmr): number | undefined {
    const off = sel & 0xfff8;
    return (sel & 4) === 0 && off + 8 <= gdt.limit + 1 ? gdt.base + off : undefined;
  }

  /** The base in a selector's GDT descriptor (0 where there is none). Pass `gdt` when reading several selectors. */
  gdtBase(sel: number, gdt: Mmr = this.cpu.mmr("GDTR")): number {
    const d = this.descriptor(sel, gdt);
    return d === undefined ? 0 : (this.u16(d + 2) | (this.u8(d + 4) << 16) | (this.u8(d + 7) << 24)) >>> 0;
  }

  /** Protected mode with a 32-bit code segment (the D bit of CS's descriptor): the code's operand size is 32. */
  code32(gdt?: Mmr): boolean {
    if (!this.protectedMode()) return false;
    const g = gdt ?? this.cpu.mmr("GDTR");
    const d = this.descriptor(this.cpu.reg("CS"), g);
    return d !== undefined && (this.u8(d + 6) & 0x40) !== 0;
  }

  /** Linear address of the current instruction. */
  pcLinear(): number { return (this.segBase(this.cpu.reg("CS")) + this.cpu.reg("EIP")) >>> 0; }

  // ---- port bus ----
  onIn(port: number, fn: PortIn): void { this.ins.set(port, fn); }
  onOut(port: number, fn: PortOut): void { this.outs.set(port, fn); }

  portIn(port: number, size: number): number {
    this.portAccesses++;
    this.clock.advance(NS_PER_PORT_ACCESS);
    const fn = this.ins.get(port);
    if (fn) return fn(port, size);
    this.noteUnknown(port, "in");
    return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
  }

  portOut(port: number, size: number, value: number): void {
    this.portAccesses++;
    this.clock.advance(NS_PER_PORT_ACCESS);
    const fn = this.outs.get(port);
    if (fn) { fn(port, size, value); return; }
    this.noteUnknown(port, "out", value);
  }

  private noteUnknown(port: number, dir: string, value?: number): void {
    const n = this.unknownPorts.get(port) ?? 0;
    if (n === 0 && this.unknownPorts.size < 256) {
      this.trace.add("port", `unmodelled port ${dir} 0x${port.toString(16)}`, value === undefined ? { port } : { port, value });
    }
    if (n < 1e9) this.unknownPorts.set(port, n + 1);
  }

  unknownPortCounts(): Record<string, number> {
    return Object.fromEntries([...this.unknownPorts].map(([p, n]) => ["0x" + p.toString(16), n]));
  }

  // ---- devices ----
  private installDevices(): void {
    const ignore: PortOut = () => {};
    const zero: PortIn = () => 0;
    // POST code, delay and DMA controller ports: writes are harmless, reads give 0.
    for (const p of [0x80, 0xed, 0xee]) { this.onOut(p, ignore); this.onIn(p, zero); }
    for (let p = 0x00; p <= 0x0f; p++) { this.onOut(p, ignore); this.onIn(p, zero); }
    for (let p = 0x81; p <= 0x8f; p++) { this.onOut(p, ignore); this.onIn(p, zero); }
    for (let p = 0xc0; p <= 0xdf; p++) { this.onOut(p, ignore); this.onIn(p, zero); }
    this.installPit();
    this.installKbc();
    this.installCmos();
    this.installPic();
    this.installVga();
    for (const base of [0x3f8, 0x2f8]) this.installUart(base);
    // Port 92h (PS/2 system control port A): bit 1 A20, bit 0 fast reset.
    this.onIn(0x92, () => (this.a20 ? 2 : 0));
    this.onOut(0x92, (_p, _s, v) => {
      this.setA20((v & 2) !== 0, "port 92h");
      if (v & 1) this.resetRequested = "port 92h bit 0 (fast reset)";
    });
  }

  setA20(on: boolean, via: string): void {
    if (on !== this.a20) this.trace.add("note", `A20 ${on ? "enabled" : "disabled"} via ${via}`);
    this.a20 = on;
  }

  // 8254 PIT: channel counts derive from the virtual clock; port 61h bit 5 is channel 2's OUT.
  private pitValue(ch: number): { count: number; out: boolean } {
    const c = this.pit[ch];
    const now = this.clock.pitCycles();
    const gated = ch === 2 ? (this.port61 & 1) !== 0 : true;
    const since = gated ? Math.max(0, now - Math.max(c.start, c.gateStart)) : 0;
    const reload = c.reload;
    if (c.mode === 0 || c.mode === 1) {
      const left = reload - since;
      return { count: ((left % 65536) + 65536) % 65536, out: left <= 0 };
    }
    const left = reload - (since % reload);
    const phase = since % reload;
    return { count: c.mode === 3 ? (left * 2) % 65536 : left % 65536, out: c.mode === 3 ? phase < reload / 2 : left !== 1 };
  }

  private installPit(): void {
    for (let ch = 0; ch < 3; ch++) {
      const port = 0x40 + ch;
      this.onIn(port, () => {
        const c = this.pit[ch];
        const v = c.latched ?? this.pitValue(ch).count;
        let b: number;
        if (c.access === 1) b = v & 0xff;
        else if (c.access === 2) b = v >> 8;
        else { b = c.readLow ? v & 0xff : v >> 8; c.readLow = !c.readLow; }
        if (c.access !== 3 || c.readLow) c.latched = undefined;
        return b;
      });
      this.onOut(port, (_p, _s, v) => {
        const c = this.pit[ch];
        const set = (r: number) => { c.reload = r === 0 ? 65536 : r; c.start = this.clock.pitCycles(); };
        if (c.access === 1) set((c.reload & 0xff00) | (v & 0xff));
        else if (c.access === 2) set(((v & 0xff) << 8) | (c.reload & 0xff));
        else if (c.writeLow) { c.loadPending = v & 0xff; c.writeLow = false; }
        else { set((c.loadPending ?? 0) | ((v & 0xff) << 8)); c.writeLow = true; }
      });
    }
    this.onIn(0x43, () => 0xff);
    this.onOut(0x43, (_p, _s, v) => {
      const ch = (v >> 6) & 3;
      if (ch === 3) return;                       // read-back command: not used by boot code we know
      const c = this.pit[ch];
      const access = (v >> 4) & 3;
      if (access === 0) { c.latched = this.pitValue(ch).count; c.readLow = true; return; }
      c.access = access; c.mode = (v >> 1) & 7; if (c.mode > 5) c.mode -= 4;
      c.writeLow = true; c.readLow = true; c.latched = undefined;
    });
    // Port 61h: bit 0 gate 2, bit 1 speaker, bit 4 refresh toggle (every 15 us), bit 5 OUT2.
    this.onIn(0x61, () => {
      const refresh = Math.floor(this.clock.now / 15_000) & 1;
      return (this.port61 & 0x0f) | (refresh << 4) | (this.pitValue(2).out ? 0x20 : 0);
    });
    this.onOut(0x61, (_p, _s, v) => {
      if ((v & 1) && !(this.port61 & 1)) this.pit[2].gateStart = this.clock.pitCycles();
      this.port61 = v & 0x0f;
    });
  }

  // 8042 keyboard controller: status at 64h, data at 60h; A20 through the output port (command D1h).
  private installKbc(): void {
    this.onIn(0x64, () => 0x14 | (this.kbcStatusCmd ? 0x08 : 0) | (this.kbcOut.length ? 0x01 : 0));
    this.onIn(0x60, () => this.kbcOut.shift() ?? 0);
    this.onOut(0x64, (_p, _s, v) => {
      this.kbcStatusCmd = true;
      switch (v) {
        case 0xd1: case 0x60: this.kbcPendingCmd = v; break;          // write output port / command byte
        case 0xd0: this.kbcOut.push(this.kbcOutputPort); break;       // read output port
        case 0x20: this.kbcOut.push(0x45); break;                     // read command byte
        case 0xaa: this.kbcOut.push(0x55); break;                     // self test
        case 0xab: this.kbcOut.push(0x00); break;                     // interface test
        case 0xdd: this.setA20(false, "8042 command DDh"); break;
        case 0xdf: this.setA20(true, "8042 command DFh"); break;
        case 0xfe: this.resetRequested = "8042 command FEh (pulse reset line)"; break;
        default: break;                                               // AD/AE/A7/A8/FF: enable/disable, no reply
      }
    });
    this.onOut(0x60, (_p, _s, v) => {
      this.kbcStatusCmd = false;
      if (this.kbcPendingCmd === 0xd1) {
        this.kbcOutputPort = v & 0xff;
        this.setA20((v & 2) !== 0, "8042 output port");
        if (!(v & 1)) this.resetRequested = "8042 output port bit 0 cleared (reset)";
      } else if (this.kbcPendingCmd === 0) {
        this.kbcOut.push(0xfa);                                       // keyboard acknowledges commands
        if (v === 0xff) this.kbcOut.push(0xaa);
      }
      this.kbcPendingCmd = 0;
    });
  }

  // MC146818 CMOS: RTC in BCD, 24-hour mode; memory size bytes as a PC/AT BIOS fills them.
  private installCmos(): void {
    const c = this.cmosRam;
    const extKb = Math.min(0xfc00, Math.max(0, (this.memoryBytes - MEM.HIGH_MEM) / 1024));
    const above16 = Math.min(0xffff, Math.max(0, (this.memoryBytes - 16 * 2 ** 20) / 65536));
    c[0x0a] = 0x26; c[0x0b] = 0x02; c[0x0d] = 0x80;
    c[0x10] = 0x00;                                   // no floppy drives (Hyper-V: none unless a .vfd is attached)
    c[0x14] = 0x06;                                   // equipment: coprocessor, VGA
    c[0x15] = 0x80; c[0x16] = 0x02;                   // 640 KiB base memory
    c[0x17] = extKb & 0xff; c[0x18] = extKb >> 8;
    c[0x30] = extKb & 0xff; c[0x31] = extKb >> 8;
    c[0x34] = above16 & 0xff; c[0x35] = above16 >> 8;
    const bcd = (n: number) => ((Math.floor(n / 10) % 10) << 4) | (n % 10);
    this.onOut(0x70, (_p, _s, v) => { this.cmosIndex = v & 0x7f; });
    this.onIn(0x70, () => this.cmosIndex);
    this.onIn(0x71, () => {
      const i = this.cmosIndex;
      const t = this.clock.rtc();
      switch (i) {
        case 0x00: return bcd(t.second);
        case 0x02: return bcd(t.minute);
        case 0x04: return bcd(t.hour);
        case 0x06: return 2;                                        // Monday (2024-01-01)
        case 0x07: return bcd(t.day);
        case 0x08: return bcd(t.month);
        case 0x09: return bcd(t.year % 100);
        case 0x32: return bcd(Math.floor(t.year / 100));
        case 0x0a: {                                                // UIP during the last 244 us of each second
          const frac = (this.clock.now % 1e9) / 1e9;
          return (c[0x0a] & 0x7f) | (frac > 1 - 244e-6 ? 0x80 : 0);
        }
        case 0x0c: return 0;
        default: return c[i];
      }
    });
    this.onOut(0x71, (_p, _s, v) => { if (this.cmosIndex >= 0x0e) c[this.cmosIndex] = v & 0xff; });
  }

  // 8259 PICs: initialisation words are accepted; the mask registers read back.
  private installPic(): void {
    for (const [cmd, data, i] of [[0x20, 0x21, 0], [0xa0, 0xa1, 1]] as const) {
      this.onOut(cmd, () => {});
      this.onIn(cmd, () => 0);                        // IRR/ISR: nothing pending, nothing in service
      this.onOut(data, (_p, _s, v) => { this.picMask[i] = v & 0xff; });
      this.onIn(data, () => this.picMask[i]);
    }
    for (const p of [0x4d0, 0x4d1]) { this.onOut(p, () => {}); this.onIn(p, () => 0); }   // ELCR
  }

  // VGA: CRTC index/data (cursor), input status 1 with a retrace bit that follows the clock, misc output.
  private installVga(): void {
    for (const p of [0x3c0, 0x3c2, 0x3c4, 0x3c5, 0x3c6, 0x3c7, 0x3c8, 0x3c9, 0x3ce, 0x3cf]) {
      this.onOut(p, () => {});
      this.onIn(p, () => 0);
    }
    this.onIn(0x3c1, () => 0);
    this.onIn(0x3cc, () => 0x67);
    this.onOut(0x3d4, (_p, size, v) => {
      this.vgaCrtcIndex = v & 0x1f;
      if (size === 2) this.vgaCrtc[this.vgaCrtcIndex] = (v >> 8) & 0xff;
    });
    this.onIn(0x3d4, () => this.vgaCrtcIndex);
    this.onOut(0x3d5, (_p, _s, v) => { this.vgaCrtc[this.vgaCrtcIndex] = v & 0xff; });
    this.onIn(0x3d5, () => this.vgaCrtc[this.vgaCrtcIndex]);
    this.onIn(0x3da, () => (Math.floor(this.clock.now / 16_000) % 16 === 0 ? 0x09 : 0x00));
  }

  // 16550 UART: transmit bytes are captured (console=ttyS0 output); LSR always says "transmitter empty".
  private installUart(base: number): void {
    const regs = base === 0x3f8 ? this.serialRegs : new Uint8Array(8);
    this.onOut(base, (_p, _s, v) => {
      if (regs[3] & 0x80) { regs[0] = v; return; }                 // DLAB: divisor latch
      if (base === 0x3f8 && this.serial.length < 65536) this.serial.push(v & 0xff);
    });
    this.onIn(base, () => 0);
    for (let r = 1; r < 8; r++) {
      const reg = r;
      this.onOut(base + reg, (_p, _s, v) => { regs[reg] = v & 0xff; });
      this.onIn(base + reg, () => (reg === 5 ? 0x60 : reg === 6 ? 0xb0 : reg === 2 ? 0xc1 : regs[reg]));
    }
  }

  /** Hz of PIT channel 0 as programmed (18.2 by default). */
  timerHz(): number { return PIT_HZ / this.pit[0].reload; }
}
