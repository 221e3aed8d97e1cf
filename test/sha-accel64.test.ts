// Checks the host SHA-256 / SHA-1 of shim's block functions (emu/sha-accel64.ts): FIPS 180-4 against node:crypto, the
// hooked calls against Debian's shim running the same calls in Unicorn, and a real shim -> GRUB -> Linux Gen2 run.
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { createCpu, type Cpu, type X86Reg } from "../emu/cpu.ts";
import { ShaAccelerator, findBlockFunctions, sha1Blocks, sha256Blocks, shaAccelTotals } from "../emu/sha-accel64.ts";
import { readLayout } from "../images/layout.ts";
import { runGen2 } from "../emu/gen2.ts";
import { prng } from "./helpers.ts";
import { gen2Manifest, openGen2 } from "./gen2-fixtures.ts";

const SHIM = "/usr/lib/shim/shimx64.efi.signed";
/** FIPS 180-4 5.3.3 and 5.3.1 initial hash values. */
const IV256 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const IV1 = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
const HASHES = [
  { algo: "sha256", iv: IV256, compress: sha256Blocks, fn: "sha256_block_data_order", words: 8 },
  { algo: "sha1", iv: IV1, compress: sha1Blocks, fn: "sha1_block_data_order", words: 5 },
] as const;

/** FIPS 180-4 5.1.1 padding: the message, 0x80, zeros, the 64-bit big-endian bit length. */
function pad(msg: Buffer): Buffer {
  const blocks = Math.floor((msg.length + 8) / 64) + 1;
  const out = Buffer.alloc(blocks * 64);
  msg.copy(out);
  out[msg.length] = 0x80;
  out.writeBigUInt64BE(BigInt(msg.length) * 8n, out.length - 8);
  return out;
}

describe.each(HASHES)("host $algo compression (FIPS 180-4)", ({ algo, iv, compress }) => {
  it("matches node:crypto on random messages of 1..40 blocks", () => {
    for (let i = 0; i < 200; i++) {
      const len = (i * 37 + (i >> 3) * 11) % (40 * 64 - 9);
      const msg = prng(i + 1, len);
      const padded = pad(msg);
      const h = Uint32Array.from(iv);
      // Offset inside a larger buffer and split into two calls: a mid-state continues like OpenSSL's *_Update.
      const buf = Buffer.concat([Buffer.alloc(7 + (i % 5)), padded]);
      const off = buf.length - padded.length, n = padded.length / 64, first = i % n;
      compress(h, buf, off, first);
      compress(h, buf, off + first * 64, n - first);
      const digest = Buffer.alloc(4 * iv.length);
      h.forEach((w, j) => digest.writeUInt32BE(w, 4 * j));
      expect(digest.toString("hex"), `message of ${len} bytes`).toBe(createHash(algo).update(msg).digest("hex"));
    }
  });
});

/** Debian's shim mapped at `base` as its sections' VirtualAddress say (PE/COFF section table), in 64 MiB of RAM. */
function loadShim(base: number): { cpu: Cpu; end: number } {
  const pe = fs.readFileSync(SHIM);
  const nt = pe.readUInt32LE(0x3c), sections = pe.readUInt16LE(nt + 6), optSize = pe.readUInt16LE(nt + 20);
  const cpu = createCpu(64 * 2 ** 20, {}, "long");
  let end = base;
  for (let i = 0; i < sections; i++) {
    const s = nt + 24 + optSize + 40 * i;
    const vsize = pe.readUInt32LE(s + 8), va = pe.readUInt32LE(s + 12), rawSize = pe.readUInt32LE(s + 16), raw = pe.readUInt32LE(s + 20);
    cpu.write(base + va, pe.subarray(raw, raw + Math.min(rawSize, vsize)));
    end = Math.max(end, base + va + vsize);
  }
  return { cpu, end };
}

const GPRS: X86Reg[] = ["RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "RIP"];
/** CF, PF, AF, ZF, SF, OF (Intel SDM vol. 1, 3.4.3.1). */
const STATUS_FLAGS = 0x8d5n;

describe("shim's block functions hooked vs run by the guest", () => {
  const BASE = 0x400000, CTX = 0x1000000, DATA = 0x1001000, STACK = 0x2000000, RET = 0x3000000;

  /** Call one function once in Unicorn (guest code or the hook) and return what a caller could see. */
  function call(fn: string, accelerate: boolean, blocks: number, seed: number) {
    const { cpu, end } = loadShim(BASE);
    try {
      const found = findBlockFunctions(cpu.ram, BASE, end);
      expect(found.map((x) => x.fn.name).sort(), "each signature matches exactly once in shim")
        .toEqual(["sha1_block_data_order", "sha256_block_data_order"]);
      const accel = new ShaAccelerator(cpu);
      if (accelerate) accel.noteCaller(BASE + 0x1000, () => ({ start: BASE, end }));
      cpu.write(CTX, prng(seed, 0x70));
      cpu.write(DATA, prng(seed + 1, blocks * 64));
      cpu.write(RET, Buffer.from([0xf4]));                                  // hlt
      cpu.write(STACK - 0x200, prng(seed + 2, 0x200));                      // the frame starts as garbage
      const rsp = STACK - 8 - 8 * (seed % 8);                             // varies PF of the epilogue
      cpu.write(rsp, Buffer.from(new BigUint64Array([BigInt(RET)]).buffer));
      const junk = prng(seed + 3, 8 * GPRS.length);
      GPRS.forEach((r, i) => cpu.setReg64(r, junk.readBigUInt64LE(8 * i)));
      cpu.setReg64("RDI", BigInt(CTX));
      cpu.setReg64("RSI", BigInt(DATA));
      cpu.setReg64("RDX", BigInt(blocks));
      cpu.setReg64("RSP", BigInt(rsp));
      cpu.setReg64("RIP", BigInt(found.find((x) => x.fn.name === fn)!.at));
      cpu.setReg64("EFLAGS", 0x202n | (BigInt(seed) & STATUS_FLAGS));
      const r = cpu.run(0, 20_000_000);
      expect(r.err, r.errText).toBe(0);
      expect(cpu.hookError).toBeUndefined();
      return {
        regs: Object.fromEntries(GPRS.map((x) => [x, cpu.reg64(x).toString(16)])),
        flags: (cpu.reg64("EFLAGS") & STATUS_FLAGS).toString(16),
        ctx: cpu.read(CTX, 0x70).toString("hex"),
        stack: cpu.read(STACK - 0x200, 0x200).toString("hex"),
        stats: accel.stats,
      };
    } finally {
      cpu.close();
    }
  }

  const cases = HASHES.flatMap((h) => [1, 2, 7].map((blocks) => ({ ...h, blocks })));
  it.each(cases)("$fn leaves the registers, flags, context and frame the guest's code leaves for $blocks block(s)", ({ fn, blocks, words, compress }) => {
    const seed = 100 + blocks + (fn.startsWith("sha1") ? 50 : 0);
    const guest = call(fn, false, blocks, seed);
    const host = call(fn, true, blocks, seed);
    expect(guest.stats.calls).toBe(0);
    expect(host.stats).toMatchObject({ calls: 1, blocks, declined: 0 });
    expect(host.regs).toEqual(guest.regs);
    expect(host.flags).toBe(guest.flags);
    expect(host.ctx).toBe(guest.ctx);
    expect(host.stack).toBe(guest.stack);
    // And it is the hash: h after the blocks equals a host compression from the same state.
    const h = new Uint32Array(words);
    const ctx = prng(seed, 0x70);
    for (let i = 0; i < words; i++) h[i] = ctx.readUInt32LE(4 * i);
    compress(h, prng(seed + 1, blocks * 64), 0, blocks);
    expect(host.ctx.slice(0, 8 * words)).toBe(Buffer.from(h.buffer).toString("hex"));
  });

  it("declines a call whose input runs past the end of RAM and leaves it to the guest", () => {
    const { cpu, end } = loadShim(BASE);
    try {
      const at = findBlockFunctions(cpu.ram, BASE, end).find((x) => x.fn.name === "sha256_block_data_order")!.at;
      const accel = new ShaAccelerator(cpu);
      accel.noteCaller(BASE + 0x1000, () => ({ start: BASE, end }));
      cpu.write(RET, Buffer.from([0xf4]));
      cpu.write(STACK - 8, Buffer.from(new BigUint64Array([BigInt(RET)]).buffer));
      cpu.setReg64("RDI", BigInt(CTX));
      cpu.setReg64("RSI", BigInt(cpu.ram.length - 64));
      cpu.setReg64("RDX", 2n ** 40n);
      cpu.setReg64("RSP", BigInt(STACK - 8));
      cpu.setReg64("RIP", BigInt(at));
      const r = cpu.run(0, 2_000_000);
      expect(accel.stats).toMatchObject({ calls: 0, declined: 1 });
      expect(r.err, "the guest's own read faults past RAM").not.toBe(0);
    } finally {
      cpu.close();
    }
  });
});

describe("shim -> GRUB -> Linux on Gen2 with the accelerator", () => {
  it("hashes GRUB (SHA-256 and SHA-1) and the kernel on the host and hands off the manifest's command line", () => {
    const facts = gen2Manifest().fixtures["gen2-shim-removable.img"];
    const dev = openGen2("gen2-shim-removable.img");
    const before = { calls: shaAccelTotals.calls, blocks: shaAccelTotals.blocks };
    const r = runGen2(dev, readLayout(dev), { secureBoot: "off", maxWallMs: 120_000 });
    expect(r.stop.reason, r.stop.detail).toBe("handoff");
    expect(r.reached).toBe("kernel");
    expect(shaAccelTotals.calls).toBeGreaterThan(before.calls);
    // The ~8 MiB kernel at least (GRUB's shim_lock verify hashes it through shim).
    expect(shaAccelTotals.blocks - before.blocks).toBeGreaterThan(100_000);
    expect(shaAccelTotals.functions.some((f) => f.startsWith("sha256_block_data_order"))).toBe(true);
    expect(shaAccelTotals.functions.some((f) => f.startsWith("sha1_block_data_order"))).toBe(true);
    expect(r.handoff?.cmdline).toBe(facts.cmdline);
  }, 180_000);
});
