// The CPUID the Gen1 guest sees: an x86-64 Intel CPU under a Microsoft hypervisor (leaf 40000000h "Microsoft Hv"),
// without the TSC feature bit: Unicorn's RDTSC reads the host clock, so hiding it makes boot loaders (GRUB's
// grub_tsc_init) time themselves with the BIOS tick count, which follows the deterministic virtual clock.
import type { Cpu } from "./cpu.ts";

const str4 = (s: string) => Buffer.from(s.padEnd(4, "\0"), "latin1").readUInt32LE(0);
const BRAND = "Intel(R) Xeon(R) CPU (bootgate virtual Gen1)".padEnd(48, "\0");

/**
 * Fill EAX..EDX for the leaf in EAX (subleaf ECX) the way the hook expects. `tsc`: report the TSC (Gen2: GRUB's
 * x86_64-efi build refuses to run without one and calibrates it with the firmware's Stall).
 */
export function cpuidLeaf(cpu: Cpu, opts: { tsc?: boolean } = {}): void {
  const leaf = cpu.reg("EAX") >>> 0;
  let r: [number, number, number, number] = [0, 0, 0, 0];
  // EDX leaf 1: FPU VME DE PSE MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFSH MMX FXSR SSE SSE2 (no TSC)
  const edx1 = [0, 1, 2, 3, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26].reduce((a, bit) => a | (1 << bit), 0) >>> 0;
  // ECX leaf 1: SSE3 SSSE3 CX16 SSE4.1 SSE4.2 POPCNT, hypervisor present
  const ecx1 = [0, 9, 13, 19, 20, 23, 31].reduce((a, bit) => a | (1 << bit), 0) >>> 0;
  switch (leaf) {
    case 0x0: r = [0xd, str4("Genu"), str4("ntel"), str4("ineI")]; break;
    case 0x1: r = [0x000306f2, 0x00010800, ecx1, (edx1 | (opts.tsc ? 1 << 4 : 0)) >>> 0]; break;
    case 0x40000000: r = [0x40000005, str4("Micr"), str4("osof"), str4("t Hv")]; break;
    case 0x40000001: r = [str4("Hv#1"), 0, 0, 0]; break;
    case 0x80000000: r = [0x80000008, 0, 0, 0]; break;
    case 0x80000001: r = [0, 0, 0x1, ((1 << 11) | (1 << 20) | (1 << 29)) >>> 0]; break;   // LAHF; SYSCALL, NX, LM
    case 0x80000002: case 0x80000003: case 0x80000004: {
      const b = Buffer.from(BRAND, "latin1").subarray((leaf - 0x80000002) * 16);
      r = [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)];
      break;
    }
    case 0x80000008: r = [0x3028, 0, 0, 0]; break;                                        // 40-bit physical, 48-bit virtual
    default: break;
  }
  if (cpu.mode === "long") {
    // CPUID zero-extends into RAX..RDX in 64-bit mode.
    cpu.setReg64("RAX", BigInt(r[0])); cpu.setReg64("RBX", BigInt(r[1])); cpu.setReg64("RCX", BigInt(r[2])); cpu.setReg64("RDX", BigInt(r[3]));
  } else {
    cpu.setReg("EAX", r[0]); cpu.setReg("EBX", r[1]); cpu.setReg("ECX", r[2]); cpu.setReg("EDX", r[3]);
  }
}
