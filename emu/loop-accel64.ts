// Host fast-forward of GRUB 2's byte-wise grub_memmove in 64-bit UEFI code (grub-core/kern/misc.c, built by gcc for
// x86_64-efi as two byte loops). Unicorn 2.0.1 spends ~70 ns on every guest store (see loop-accel.ts), and GRUB moves
// the kernel and initrd byte by byte: tens of millions of stores. Code regions are scanned once when their code
// first calls the firmware; the function's entry gets a single-address hook that performs the move on the host and
// leaves exactly the registers and memory the guest's loops would, then returns to the caller.
import type { Cpu } from "./cpu.ts";

/** grub_memmove (dest=RDI, src=RSI, n=RDX; returns dest) as Debian's grub-efi-amd64 2.06 builds it. */
const GRUB_MEMMOVE = Buffer.from(
  "4889f84839f7731531c94839d1740d408a3c0e40883c0848ffc1ebeec3" +
  "488d3c174801d631c948f7d248ffc94839ca740a448a040e4488040febeec3", "hex");
/** Largest region scanned for the idiom, and most regions scanned. */
const MAX_SCAN_BYTES = 32 * 2 ** 20;
const MAX_REGIONS = 64;
const MAX_HOOKS = 16;

export interface Accel64Stats { functions: string[]; calls: number; bytes: number }

export class MemmoveAccelerator {
  readonly stats: Accel64Stats = { functions: [], calls: 0, bytes: 0 };
  private scanned: { start: number; end: number }[] = [];
  private hooked = new Set<number>();

  constructor(private cpu: Cpu) {}

  /** A firmware call returning to `addr`: scan the region [start, end) holding that code once. */
  noteCaller(addr: number, region: () => { start: number; end: number } | undefined): void {
    if (this.scanned.some((r) => addr >= r.start && addr < r.end) || this.scanned.length >= MAX_REGIONS) return;
    const r = region();
    if (!r) return;
    const start = Math.max(0, r.start), end = Math.min(this.cpu.ram.length, r.end, r.start + MAX_SCAN_BYTES);
    this.scanned.push({ start: r.start, end: r.end });
    // Search only the region (Buffer.indexOf on all of RAM would touch every page: tens of µs each, first time).
    const code = this.cpu.ram.subarray(start, end);
    for (let off = code.indexOf(GRUB_MEMMOVE); off >= 0; off = code.indexOf(GRUB_MEMMOVE, off + 1)) {
      const at = start + off;
      if (this.hooked.size >= MAX_HOOKS || this.hooked.has(at)) break;
      this.hooked.add(at);
      this.stats.functions.push(`grub_memmove at ${at.toString(16)}`);
      this.cpu.addCodeHook(at, at, () => this.memmove());
      this.cpu.invalidate(at, at + GRUB_MEMMOVE.length);
    }
  }

  private memmove(): void {
    const cpu = this.cpu;
    const dest = cpu.reg64("RDI"), src = cpu.reg64("RSI"), n = cpu.reg64("RDX");
    const size = BigInt(cpu.ram.length);
    if (n === 0n || dest + n > size || src + n > size) return;       // let the guest do it (and fault) itself
    const d = Number(dest), s = Number(src), len = Number(n);
    const ram = cpu.ram;
    const first = ram[s], last = ram[s + len - 1];
    ram.copyWithin(d, s, s + len);
    cpu.invalidate(d, d + len);
    const rsp = cpu.reg64("RSP");
    const ret = ram.readBigUInt64LE(Number(rsp));
    // The loops' final registers: forward (dest < src) RCX = n, DIL = last byte; backward RDI = dest+n,
    // RSI = src+n, RCX = -(n+1) via NOT RDX, R8B = first byte. RAX = dest either way. Flags: ZF from the exit CMP.
    cpu.setReg64("RAX", dest);
    if (dest < src) {
      cpu.setReg64("RCX", n);
      cpu.setReg64("RDI", (dest & ~0xffn) | BigInt(last));
    } else {
      cpu.setReg64("RDI", dest + n);
      cpu.setReg64("RSI", src + n);
      cpu.setReg64("RDX", BigInt.asUintN(64, ~n));
      cpu.setReg64("RCX", BigInt.asUintN(64, ~n));
      cpu.setReg64("R8", (cpu.reg64("R8") & ~0xffn) | BigInt(first));
    }
    cpu.setReg64("EFLAGS", (cpu.reg64("EFLAGS") & ~0x8d5n) | 0x44n);   // ZF, PF set as after the equal compare
    cpu.setReg64("RSP", rsp + 8n);
    cpu.setReg64("RIP", ret);
    this.stats.calls++;
    this.stats.bytes += len;
  }
}
