// INT 15h system services: memory size queries (E820h per ACPI 6.5 section 15.1 "INT 15H, E820H", E801h, 88h),
// A20 gate (2400h-2403h), system configuration (C0h), waits (86h), block move (87h); APM (53h) and the other
// optional interfaces are reported absent with the conventional CF=1, AH=86h ("function not supported").
import type { Gen1Bios, ServiceDef } from "./gen1-bios.ts";
import { MEM } from "../emu/machine.ts";
import { acpiRegions } from "./smbios.ts";

export const E820 = { RAM: 1, RESERVED: 2, ACPI: 3, NVS: 4 } as const;
const NOT_SUPPORTED = 0x86;

/** The Hyper-V Gen1 style memory map (as a Linux guest's dmesg shows it) for `memoryBytes` of RAM (<= 3.75 GiB). */
export function e820Map(memoryBytes: number): { base: number; length: number; type: number }[] {
  const { dataStart, nvsStart, end } = acpiRegions(memoryBytes);
  return [
    { base: 0, length: MEM.EBDA, type: E820.RAM },
    { base: MEM.EBDA, length: 0xa0000 - MEM.EBDA, type: E820.RESERVED },
    { base: 0xe0000, length: 0x20000, type: E820.RESERVED },
    { base: MEM.HIGH_MEM, length: dataStart - MEM.HIGH_MEM, type: E820.RAM },
    { base: dataStart, length: nvsStart - dataStart, type: E820.ACPI },
    { base: nvsStart, length: end - nvsStart, type: E820.NVS },
    { base: 0xfffc0000, length: 0x40000, type: E820.RESERVED },
  ];
}

function memBytes(b: Gen1Bios): number { return b.profile.memoryMiB * 2 ** 20; }

/** AX=E820h: query system address map, one entry per call; EBX is the continuation value. */
function int15_e820(b: Gen1Bios): void {
  const c = b.cpu;
  if (c.reg("AL") !== 0x20) { b.unknown(0x15, NOT_SUPPORTED); return; }
  const map = e820Map(memBytes(b));
  const i = c.reg("EBX"), size = c.reg("ECX");
  if (c.reg("EDX") !== 0x534d4150 || size < 20 || i >= map.length) { b.fail(NOT_SUPPORTED); return; }
  const e = map[i];
  const at = c.reg("ES") * 16 + c.reg("DI");
  const out = Buffer.alloc(24);
  out.writeBigUInt64LE(BigInt(e.base), 0);
  out.writeBigUInt64LE(BigInt(e.length), 8);
  out.writeUInt32LE(e.type, 16);
  out.writeUInt32LE(1, 20);                          // ACPI 3.0 extended attributes: enabled
  const n = size >= 24 ? 24 : 20;
  b.m.ram.set(out.subarray(0, n), at);
  c.setReg("EAX", 0x534d4150);
  c.setReg("ECX", n);
  c.setReg("EBX", i + 1 < map.length ? i + 1 : 0);
  b.setCF(false);
}
/** AX=E801h: AX/CX = KiB between 1 MiB and 16 MiB, BX/DX = 64 KiB blocks above 16 MiB (below the ACPI areas). */
function int15_e801(b: Gen1Bios): void {
  const c = b.cpu;
  if (c.reg("AL") !== 0x01) { b.unknown(0x15, NOT_SUPPORTED); return; }
  const top = acpiRegions(memBytes(b)).dataStart;
  const low = Math.min(0x3c00, Math.max(0, (top - MEM.HIGH_MEM) / 1024));
  const high = Math.min(0xffff, Math.max(0, Math.floor((top - 16 * 2 ** 20) / 65536)));
  c.setReg("AX", low); c.setReg("CX", low); c.setReg("BX", high); c.setReg("DX", high);
  b.setCF(false);
}
/** AH=88h: extended memory size in KiB above 1 MiB (capped at FC00h = 63 MiB like most BIOSes). */
function int15_88(b: Gen1Bios): void {
  b.cpu.setReg("AX", Math.min(0xfc00, (acpiRegions(memBytes(b)).dataStart - MEM.HIGH_MEM) / 1024));
  b.setCF(false);
}
/** AH=C0h: return system configuration table pointer in ES:BX. */
function int15_c0(b: Gen1Bios): void {
  b.cpu.setReg("ES", MEM.BIOS_SEG); b.cpu.setReg("BX", 0xe6f5);
  b.ok();
}
/** AH=C1h: return extended BIOS data area segment in ES. */
function int15_c1(b: Gen1Bios): void { b.cpu.setReg("ES", MEM.EBDA >> 4); b.setCF(false); }
/** AX=2400h/2401h/2402h/2403h: disable / enable / query / query support of the A20 gate. */
function int15_24(b: Gen1Bios): void {
  const c = b.cpu, al = c.reg("AL");
  if (al === 0x00) b.m.setA20(false, "INT 15h AX=2400h");
  else if (al === 0x01) b.m.setA20(true, "INT 15h AX=2401h");
  else if (al === 0x02) c.setReg("AL", b.m.a20 ? 1 : 0);
  else if (al === 0x03) c.setReg("BX", 0x0003);    // keyboard controller and port 92h
  else { b.unknown(0x15, NOT_SUPPORTED); return; }
  b.ok();
}
/** AH=86h: wait CX:DX microseconds (advances the virtual clock). */
function int15_86(b: Gen1Bios): void {
  const us = (b.cpu.reg("CX") << 16 | b.cpu.reg("DX")) >>> 0;
  b.m.clock.advance(us * 1000);
  b.syncTicks();
  b.ok();
}
/** AH=87h: move CX words between the descriptors of the GDT at ES:SI (+10h source, +18h destination). */
function int15_87(b: Gen1Bios): void {
  const c = b.cpu, m = b.m;
  const gdt = c.reg("ES") * 16 + c.reg("SI");
  const base = (d: number) => (m.u16(d + 2) | (m.u8(d + 4) << 16) | (m.u8(d + 7) << 24)) >>> 0;
  const src = base(gdt + 0x10), dst = base(gdt + 0x18), len = c.reg("CX") * 2;
  if (len > 0x10000 || src + len > m.ram.length || dst + len > m.ram.length) { b.fail(0x02); return; }
  c.write(dst, Buffer.from(m.ram.subarray(src, src + len)));
  b.ok();
}
/** AH=90h/91h: device busy / interrupt complete (OS hooks; nothing to do). */
function int15_90(b: Gen1Bios): void { b.ok(); }
/** AH=4Fh: keyboard intercept — pass the scan code through unchanged. */
function int15_4f(b: Gen1Bios): void { b.setCF(true); }
/** AH=53h: APM — absent on this machine. */
function int15_53(b: Gen1Bios): void { b.fail(NOT_SUPPORTED); }
/** AX=EC00h: tell the BIOS the target operating mode (Linux setup on x86-64) — accepted by few BIOSes; absent. */
function int15_ec(b: Gen1Bios): void { b.fail(NOT_SUPPORTED); }
/** AX=E980h: Intel SpeedStep (IST) query, asked by Linux setup — absent. */
function int15_e9(b: Gen1Bios): void { b.fail(NOT_SUPPORTED); }
/** AX=E881h: 32-bit E801h variant — absent (callers fall back to E801h). */
function int15_e8_81(b: Gen1Bios): void { b.fail(NOT_SUPPORTED); }

export const int15Services: ServiceDef[] = [
  { int: 0x15, ah: 0xe8, al: 0x20, name: "int15_e820", fn: int15_e820 },
  { int: 0x15, ah: 0xe8, al: 0x01, name: "int15_e801", fn: int15_e801 },
  { int: 0x15, ah: 0xe8, al: 0x81, name: "int15_e881", fn: int15_e8_81 },
  { int: 0x15, ah: 0x88, name: "int15_88", fn: int15_88 },
  { int: 0x15, ah: 0xc0, name: "int15_c0", fn: int15_c0 },
  { int: 0x15, ah: 0xc1, name: "int15_c1", fn: int15_c1 },
  { int: 0x15, ah: 0x24, name: "int15_24", fn: int15_24 },
  { int: 0x15, ah: 0x86, name: "int15_86", fn: int15_86 },
  { int: 0x15, ah: 0x87, name: "int15_87", fn: int15_87 },
  { int: 0x15, ah: 0x90, name: "int15_90", fn: int15_90 },
  { int: 0x15, ah: 0x91, name: "int15_91", fn: int15_90 },
  { int: 0x15, ah: 0x4f, name: "int15_4f", fn: int15_4f },
  { int: 0x15, ah: 0x53, name: "int15_53", fn: int15_53 },
  { int: 0x15, ah: 0xec, name: "int15_ec", fn: int15_ec },
  { int: 0x15, ah: 0xe9, name: "int15_e9", fn: int15_e9 },
];
