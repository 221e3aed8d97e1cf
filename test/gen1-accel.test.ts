// The Gen1 accelerators (emu/loop-accel.ts copy/fill loops, emu/gen1-lzma.ts GRUB's core decompression,
// emu/gen1-grub-int.ts GRUB's BIOS calls without mode switches) against the guest's own code: the same real boot
// with and without them must leave the same guest memory, registers and result at the hand-off.
import { beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { runGen1, type Gen1Result } from "../emu/gen1.ts";
import type { Cpu } from "../emu/cpu.ts";
import { ensureGen1Fixtures, fixture } from "./gen1-fixtures.ts";

beforeAll(() => { ensureGen1Fixtures(); }, 900_000);

const CHUNK = 16 * 2 ** 20;
const REGS = ["EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP", "EIP", "EFLAGS", "CS", "DS", "ES", "SS", "CR0"] as const;

/**
 * Boot to the end and fingerprint the final guest state: a SHA-256 per 16 MiB of RAM, the first 16 MiB itself
 * (where GRUB's core decompressor ran) and the registers.
 */
function boot(name: string, accelerate: boolean): { r: Gen1Result; ram: string[]; low: Buffer; regs: Record<string, number> } {
  let ram: string[] = [];
  let low = Buffer.alloc(0);
  let regs: Record<string, number> = {};
  const r = runGen1(fixture(name), { accelerate, maxWallMs: 120_000, inspect: (cpu: Cpu) => {
    ram = [];
    for (let at = 0; at < cpu.ram.length; at += CHUNK) ram.push(createHash("sha256").update(cpu.ram.subarray(at, at + CHUNK)).digest("hex"));
    low = Buffer.from(cpu.ram.subarray(0, CHUNK));
    regs = Object.fromEntries(REGS.map((x) => [x, cpu.reg(x)]));
  } });
  return { r, ram, low, regs };
}

describe("Gen1 loop accelerator", () => {
  for (const name of ["grub-mbr.img", "grub-menu-timeout.img", "syslinux-fat.img"]) {
    it(`leaves exactly the guest's own state at the hand-off (${name})`, () => {
      const fast = boot(name, true), slow = boot(name, false);
      console.log(`${name}: ${fast.r.stats.wallMs} ms with the accelerator, ${slow.r.stats.wallMs} ms without`);
      expect(fast.r.stop.reason).toBe("handoff");
      expect(slow.r.stop).toEqual(fast.r.stop);
      expect(slow.r.handoff).toEqual(fast.r.handoff);
      expect(slow.r.readLog).toEqual(fast.r.readLog);
      expect(slow.r.stats.events).toBe(fast.r.stats.events);
      expect(slow.regs).toEqual(fast.regs);
      const differing = fast.ram.flatMap((h, i) => (i > 0 && h !== slow.ram[i] ? [`${(i * CHUNK / 2 ** 20)} MiB`] : []));
      expect(differing).toEqual([]);
      // Below 16 MiB only the stack temporaries GRUB's LZMA decoder leaves and the host decoder does not write
      // (emu/gen1-lzma.ts), and the real-mode pushes of GRUB's BIOS-call trampoline (emu/gen1-grub-int.ts), may
      // differ, and only where nothing overwrote them later.
      const dead = [...fast.r.accel?.grubLzma?.unwritten ?? [], ...fast.r.accel?.grubInt?.scratch ?? []];
      if (name.startsWith("grub")) {
        expect(fast.r.accel?.grubLzma?.calls).toBe(1);
        expect(fast.r.accel?.grubInt?.calls).toBeGreaterThan(1000);
      }
      const stray: string[] = [];
      for (let i = 0; i < CHUNK; i++) {
        if (fast.low[i] !== slow.low[i] && !dead.some(([a, b]) => i >= a && i <= b)) stray.push(i.toString(16));
      }
      expect(stray.slice(0, 16)).toEqual([]);
      expect(fast.r.accel?.loops.calls).toBeGreaterThan(0);
    }, 300_000);
  }
});
