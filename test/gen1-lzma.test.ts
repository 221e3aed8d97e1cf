// GRUB i386-pc core.img LZMA on the host (emu/gen1-lzma.ts): differential boots of the Debian-built GRUB fixture with
// and without the accelerator, stopped at the decoder's return, must leave the same registers and memory (except the
// documented dead stack temporaries); corrupted streams are declined and left to the guest's own decoder.
import * as fs from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { beforeAll, describe, expect, it, vi } from "vitest";
import type { Cpu } from "../emu/cpu.ts";
import { runGen1 } from "../emu/gen1.ts";
import { findGrubLzmaCall, installGrubLzmaAccel, type GrubLzmaStats } from "../emu/gen1-lzma.ts";
import { decodeLzmaRaw } from "../images/lzma.ts";
import { ensureGen1Fixtures, GEN1_DIR, openRaw } from "./gen1-fixtures.ts";
import { prng, sh, tmpdir } from "./helpers.ts";

// runGen1 creates its Cpu inside; wrap createCpu so a test can add hooks to it. runGen1 runs with accelerate: false
// (its own accelerators off) and the test installs the one under test itself.
const ctl = vi.hoisted(() => ({ setup: undefined as undefined | ((cpu: Cpu) => void) }));
vi.mock("../emu/cpu.ts", async (importOriginal) => {
  const orig = await importOriginal<typeof import("../emu/cpu.ts")>();
  return { ...orig, createCpu: (...a: Parameters<typeof orig.createCpu>) => { const c = orig.createCpu(...a); ctl.setup?.(c); return c; } };
});

const REGS = ["EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP", "EIP", "EFLAGS", "CS", "DS", "ES", "SS"] as const;
/** Guest RAM compared: everything up to 2 MiB (the decompressor, its stack, the kernel at 1 MiB and the probabilities). */
const COMPARED = 2 * 2 ** 20;
/** core.img is at LBA 1 and loaded at 0x8000; the stream starts at decompressor_end (ESI at the decoder's entry). */
const CORE_FILE = 0x200, CORE_LOAD = 0x8000;

interface AtReturn { regs: Record<string, number>; ram: Buffer; ms: number; stats?: GrubLzmaStats; entryEsi: number }
/** How a boot that never got back from the decoder ended (the stop and its register window). */
interface Ended { stop: unknown; registers?: Record<string, string>; stats?: GrubLzmaStats }

/**
 * Boot `file` under runGen1 until GRUB's decoder returns to post_reed_solomon; snapshot registers and RAM there.
 * A boot that ends before (the guest's decoder faulting on a corrupted stream) gives how it ended instead.
 */
function bootToDecoderReturn(file: string, accel: boolean): AtReturn | Ended {
  let snap: AtReturn | undefined, stats: GrubLzmaStats | undefined, entryEsi = -1;
  const t0 = performance.now();
  ctl.setup = (cpu) => {
    if (accel) stats = installGrubLzmaAccel(cpu).stats;
    let armed = false;
    cpu.addCodeHook(0x8200, 0x8200, () => {
      const site = findGrubLzmaCall(cpu.ram);
      if (!site || armed) return;
      armed = true;
      cpu.addCodeHook(site.entry, site.entry, () => { entryEsi = cpu.reg("ESI"); });
      cpu.addCodeHook(site.ret, site.ret, () => {
        const regs: Record<string, number> = {};
        for (const r of REGS) regs[r] = cpu.reg(r);
        snap = { regs, ram: Buffer.from(cpu.ram.subarray(0, COMPARED)), ms: performance.now() - t0, stats, entryEsi };
        throw new Error("stop at the decoder's return");   // ends runGen1 (a hook error stops the CPU)
      });
    });
  };
  try {
    const r = runGen1(openRaw(file), { memoryMiB: 64, maxWallMs: 30_000, accelerate: false });   // only the accelerator under test
    return snap ?? { stop: r.stop, registers: r.trace.window?.registers, stats };
  } finally {
    ctl.setup = undefined;
  }
}

function returned(x: AtReturn | Ended): AtReturn {
  if (!("regs" in x)) throw new Error(`did not reach the decoder's return: ${JSON.stringify(x.stop)}`);
  return x;
}

/** Offsets where two RAM snapshots differ, as [first, last] runs. */
function diffRuns(a: Buffer, b: Buffer): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const last = runs[runs.length - 1];
    if (last && last[1] >= i - 16) last[1] = i; else runs.push([i, i]);
  }
  return runs;
}

/** Registers equal; RAM equal except the decoder's temporaries, below its locals (return address E = ESP - 4). */
function expectSameState(host: AtReturn, guest: AtReturn): void {
  expect(host.regs).toEqual(guest.regs);
  const e = guest.regs.ESP - 4;
  for (const [lo, hi] of diffRuns(host.ram, guest.ram)) {
    expect(lo, `RAM differs at ${lo.toString(16)}..${hi.toString(16)}`).toBeGreaterThanOrEqual(e - 96);
    expect(hi, `RAM differs at ${lo.toString(16)}..${hi.toString(16)}`).toBeLessThan(e - 40);
  }
}

/** The kind of the decoder's last symbol, from its locals (state at E-24, rep0 at E-28) and its output. */
function lastSymbol(x: AtReturn): string {
  const e = x.regs.ESP - 4, state = x.ram.readUInt32LE(e - 24), rep0 = x.ram.readUInt32LE(e - 28);
  if (state >= 7) return "a match";
  if (state < 4) return "a literal";
  const end = x.regs.EDI, byte = x.ram[end - 1], matchByte = x.ram[end - 1 - rep0];
  return (byte >> 1) === (matchByte >> 1) ? "a literal coded against the match byte to its last bit" : "a literal that left the match byte";
}

let clean: string;
beforeAll(() => { ensureGen1Fixtures(); clean = path.join(GEN1_DIR, "grub-mbr.img"); }, 900_000);

/** A copy of the GRUB fixture with `patch` applied to core.img's compressed stream (stream offset -> bytes). */
function corruptCopy(streamStart: number, at: number, bytes: Buffer): string {
  const f = path.join(tmpdir(), "grub-corrupt.img");
  fs.copyFileSync(clean, f);
  const fd = fs.openSync(f, "r+");
  try { fs.writeSync(fd, bytes, 0, bytes.length, CORE_FILE + (streamStart - CORE_LOAD) + at); } finally { fs.closeSync(fd); }
  return f;
}

describe("GRUB core.img LZMA on the host", () => {
  let guest: AtReturn;

  it("leaves the registers, output, probabilities and locals of GRUB's own decoder, faster", () => {
    guest = returned(bootToDecoderReturn(clean, false));
    const host = returned(bootToDecoderReturn(clean, true));
    console.log(`power-on to the end of core.img decompression: guest decoder ${guest.ms.toFixed(0)} ms, host ${host.ms.toFixed(0)} ms ` +
      `(host decode ${host.stats!.hostMs.toFixed(1)} ms, ${host.stats!.bytes} bytes); ${host.stats!.armed.join("; ")}`);
    expect(host.stats).toMatchObject({ calls: 1, declined: [] });
    expect(host.stats!.bytes).toBe(guest.regs.EAX);
    expect(guest.regs.EDI - guest.regs.EAX).toBe(0x100000);      // the output: GRUB_MEMORY_MACHINE_DECOMPRESSION_ADDR
    expectSameState(host, guest);
    const e = guest.regs.ESP - 4;
    console.log(`RAM differing below the return address E: ${diffRuns(host.ram, guest.ram).map(([lo, hi]) => `E-${e - lo}..E-${e - hi}`).join(", ") || "none"}`);
    expect(host.ms).toBeLessThan(guest.ms);
  }, 120_000);

  it("declines a stream whose range-coder byte 0 is not zero; GRUB's decoder (which skips it) unpacks the same kernel", () => {
    const f = corruptCopy(guest.entryEsi, 0, Buffer.from([0x5a]));
    const host = returned(bootToDecoderReturn(f, true)), own = returned(bootToDecoderReturn(f, false));
    expect(host.stats!.calls).toBe(0);
    expect(host.stats!.declined).toEqual([expect.stringContaining("range coder does not start with a zero byte")]);
    expect(diffRuns(host.ram, own.ram)).toEqual([]);
    expect(host.regs).toEqual(own.regs);
    const n = guest.regs.EAX;
    expect(host.ram.subarray(0x100000, 0x100000 + n).equals(guest.ram.subarray(0x100000, 0x100000 + n))).toBe(true);
  }, 120_000);

  it("declines a stream with 64 garbage bytes inside it; the guest's decoder then ends the same way with or without", () => {
    const f = corruptCopy(guest.entryEsi, 300, prng(7, 64));
    const host = bootToDecoderReturn(f, true), own = bootToDecoderReturn(f, false);
    console.log(`garbage stream: ${host.stats!.declined.join("; ")}; the guest's decoder: ${"regs" in own ? "returned" : JSON.stringify(own.stop)}`);
    expect(host.stats!.calls).toBe(0);
    expect(host.stats!.declined).toEqual([expect.stringMatching(/^host decode failed: GRUB core.img: /)]);
    if ("regs" in host && "regs" in own) {
      expect(diffRuns(host.ram, own.ram)).toEqual([]);
      expect(host.regs).toEqual(own.regs);
    } else {
      expect("regs" in host).toBe("regs" in own);
      expect({ ...host, stats: undefined }).toEqual({ ...own, stats: undefined });
    }
  }, 120_000);

  // Other payloads end on other kinds of symbol (ECX/EDX and the locals depend on it): core.img files grub-mkimage
  // builds, put in the fixture's MBR gap with diskboot.img's block list set as grub-bios-setup sets it (LBA 2, the
  // sectors after the first, segment 0820h). The prefix string is the payload's last object, so it picks the kind of
  // the last symbol (found for Debian's grub-pc-bin 2.06-13+deb12u2; the kind is checked so all four stay covered).
  const small = ["biosdisk", "part_msdos", "ext2"];
  it.each([
    ["/grub/boot11", small, "a match"],
    ["/boot/boot0", small, "a literal"],
    ["/normal/i386-pc8", small, "a literal coded against the match byte to its last bit"],
    ["/normal/locale/4", small, "a literal that left the match byte"],
  ])("leaves exactly the guest decoder's state for a grub-mkimage core.img with prefix %s", (prefix, mods, kind) => {
    const dir = tmpdir();
    const core = path.join(dir, "core.img");
    sh("grub-mkimage", ["-O", "i386-pc", "-o", core, "-p", prefix as string, ...(mods as string[])]);
    const img = fs.readFileSync(core);
    const sectors = Math.ceil(img.length / 512);
    expect(sectors).toBeLessThan(2047);
    const padded = Buffer.alloc(sectors * 512);
    img.copy(padded);
    padded.writeBigUInt64LE(2n, 0x200 - 12);
    padded.writeUInt16LE(sectors - 1, 0x200 - 4);
    padded.writeUInt16LE(0x820, 0x200 - 2);
    const f = path.join(dir, "grub-core.img");
    fs.copyFileSync(clean, f);
    const fd = fs.openSync(f, "r+");
    try { fs.writeSync(fd, padded, 0, padded.length, CORE_FILE); } finally { fs.closeSync(fd); }
    const own = returned(bootToDecoderReturn(f, false)), host = returned(bootToDecoderReturn(f, true));
    expect(host.stats).toMatchObject({ calls: 1, declined: [] });
    expect(own.regs.EAX).toBe(img.readUInt32LE(0x200 + 12));
    expectSameState(host, own);
    console.log(`${(mods as string[]).length} modules, prefix ${prefix}: ${own.regs.EAX} bytes; guest ${own.ms.toFixed(0)} ms, host ${host.ms.toFixed(0)} ms`);
    expect(lastSymbol(own)).toBe(kind);
  }, 120_000);

  it("finds the decoder in a core.img that grub-mkimage builds, and its stream decodes to kernel.img and the modules", () => {
    const dir = tmpdir();
    const core = path.join(dir, "core.img");
    sh("grub-mkimage", ["-O", "i386-pc", "-o", core, "-p", "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2", "normal", "linux"]);
    const img = fs.readFileSync(core);
    const ram = Buffer.alloc(0x9000);
    // grub-mkimage's core.img starts with diskboot.img (512 bytes); the decompressor follows at 0x8200.
    img.copy(ram, 0x8000, 0, Math.min(img.length, 0x1000));
    const site = findGrubLzmaCall(ram);
    expect(site).toBeDefined();
    const dec = img.subarray(0x200);
    const compressed = dec.readUInt32LE(8), size = dec.readUInt32LE(12);
    // The stream starts at decompressor_end: the `mov $decompressor_end,%esi` of the call site.
    const esi = ram.readUInt32LE(site!.ret - 26 + 6);
    const off = 0x200 + (esi - 0x8200);
    const out = decodeLzmaRaw(img, off, off + compressed, { lc: 3, lp: 0, pb: 2, dictSize: size, size });
    const kernel = fs.readFileSync("/usr/lib/grub/i386-pc/kernel.img");
    expect(out.data.length).toBe(size);
    expect(out.consumed).toBe(compressed);                    // the stream ends exactly where mkimage says
    // kernel.img is an ELF file: its one PT_LOAD segment (linked at 0x9000) starts at file offset e_phoff's p_offset.
    const phoff = kernel.readUInt32LE(28), pOffset = kernel.readUInt32LE(phoff + 4), fileSz = kernel.readUInt32LE(phoff + 16);
    expect(out.data.subarray(0x100, fileSz).equals(kernel.subarray(pOffset + 0x100, pOffset + fileSz))).toBe(true);
    expect(out.data.includes(Buffer.from("part_msdos"))).toBe(true);
  });
});
