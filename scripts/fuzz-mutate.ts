// Seeded, deterministic mutations for the fuzzing harness (scripts/fuzz.ts): bit flips, byte sets,
// boundary integers at header offsets, truncation, extension, block duplication and splicing, kept as
// a patch list over the seed so a 64 MiB disk is never copied per case.
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource, type ByteSource } from "../images/source.ts";
import { truncated } from "../images/errors.ts";

/** mulberry32: a small seeded PRNG; the same (seed, target, case) always gives the same stream. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number { return n <= 1 ? 0 : Math.floor((this.u32() / 2 ** 32) * n); }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]; }
  chance(p: number): boolean { return this.u32() / 2 ** 32 < p; }
}

/** FNV-1a of a string: turns (seed, target name, case number) into one PRNG seed. */
export function caseSeed(seed: number, target: string, n: number): number {
  let h = 0x811c9dc5;
  for (const c of `${seed}/${target}/${n}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** A valid input the mutations start from: bytes in memory, or a (large) file read through. */
export interface Seed {
  name: string;
  bytes?: Buffer;
  file?: string;
  size: number;
  /** Byte ranges [offset, length] the parser reads on the clean seed (the mutation targets); empty: anywhere. */
  hot: [number, number][];
}

export interface Patch { off: number; bytes: Buffer }

/** One case's input: the seed, a new size, and patches applied in order. */
export interface Mutated {
  seed: Seed;
  size: number;
  patches: Patch[];
  /** What was done, for the crash report ("bitflip@0x1c8 int32=0xffffffff@0x200 truncate 4096"). */
  recipe: string[];
  /** Seed bytes past this offset were truncated away (an extension after a truncation reads zeros there). */
  cut?: number;
}

const BOUNDARY16 = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xfffe, 0xffff];
const BOUNDARY32 = [0, 1, 0xff, 0x100, 0xfff, 0x1000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x10000, 0x200];
const BOUNDARY64 = [0n, 1n, 0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0xffffffffn, 0x100000000n, 0x20000000000000n];
const BYTE_SETS = [0x00, 0xff, 0x7f, 0x80, 0x01];

/** A byte offset inside a hot range (or anywhere), aligned down to `align`. */
function hotOffset(r: Rng, seed: Seed, size: number, align = 1): number {
  let off: number;
  if (seed.hot.length && r.chance(0.9)) {
    const [o, l] = r.pick(seed.hot);
    off = o + r.int(Math.max(1, l));
  } else off = r.int(Math.max(1, size));
  off -= off % align;
  return Math.max(0, Math.min(off, Math.max(0, size - 1)));
}

/** Mutate `seed` with 1..4 operations drawn from `r`; `others` are splice donors (seeds of the same target). */
export function mutate(r: Rng, seed: Seed, others: Seed[]): Mutated {
  const m: Mutated = { seed, size: seed.size, patches: [], recipe: [] };
  const ops = 1 + (r.chance(0.5) ? 0 : r.int(4));
  for (let i = 0; i < ops; i++) {
    const k = r.int(100);
    if (k < 22) {
      const off = hotOffset(r, seed, m.size);
      const b = readMutated(m, off, 1);
      const bit = r.int(8);
      b[0] ^= 1 << bit;
      m.patches.push({ off, bytes: b }); m.recipe.push(`bitflip@${off}^${bit}`);
    } else if (k < 40) {
      const off = hotOffset(r, seed, m.size), v = r.pick(BYTE_SETS);
      m.patches.push({ off, bytes: Buffer.from([v]) }); m.recipe.push(`set${v.toString(16)}@${off}`);
    } else if (k < 70) {
      const width = r.pick([2, 4, 4, 8]), off = hotOffset(r, seed, m.size, width);
      const b = Buffer.alloc(width), be = r.chance(0.15);
      if (width === 2) { const v = r.pick(BOUNDARY16); if (be) b.writeUInt16BE(v); else b.writeUInt16LE(v); }
      else if (width === 4) {
        const v = r.chance(0.2) ? m.size >>> 0 : r.pick(BOUNDARY32);
        if (be) b.writeUInt32BE(v >>> 0); else b.writeUInt32LE(v >>> 0);
      } else { const v = r.pick(BOUNDARY64); if (be) b.writeBigUInt64BE(v); else b.writeBigUInt64LE(v); }
      m.patches.push({ off, bytes: b }); m.recipe.push(`int${width * 8}${be ? "be" : ""}=0x${b.toString("hex")}@${off}`);
    } else if (k < 76) {
      const cut = r.chance(0.7) && seed.hot.length ? hotOffset(r, seed, m.size) : r.int(m.size);
      m.size = Math.min(m.size, cut); m.cut = Math.min(m.cut ?? m.size, m.size); m.recipe.push(`truncate ${m.size}`);
    } else if (k < 80) {
      const add = r.pick([1, 511, 512, 4096, 65536]);
      const fill = r.chance(0.5) ? 0 : 0xff;
      if (fill) m.patches.push({ off: m.size, bytes: Buffer.alloc(add, fill) });
      m.size += add; m.recipe.push(`extend +${add} ${fill ? "ff" : "00"}`);
    } else if (k < 88) {
      const len = r.pick([16, 64, 512, 4096]), from = hotOffset(r, seed, m.size), to = hotOffset(r, seed, m.size);
      m.patches.push({ off: to, bytes: readMutated(m, from, Math.min(len, Math.max(0, m.size - from))) });
      m.recipe.push(`dup ${len}@${from}->${to}`);
    } else if (k < 94) {
      const donor = others.length ? r.pick(others) : seed;
      const len = r.pick([8, 64, 512, 4096]);
      const from = hotOffset(r, donor, donor.size), to = hotOffset(r, seed, m.size);
      const bytes = readSeed(donor, from, Math.min(len, donor.size - from));
      m.patches.push({ off: to, bytes }); m.recipe.push(`splice ${donor.name}:${from}+${bytes.length}->${to}`);
    } else {
      const off = hotOffset(r, seed, m.size), len = 1 + r.int(32);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = r.int(256);
      m.patches.push({ off, bytes: b }); m.recipe.push(`rand 0x${b.toString("hex")}@${off}`);
    }
  }
  return m;
}

const sources = new Map<string, FileSource>();

/** Seed bytes [off, off+len), zeros past its end. */
export function readSeed(seed: Seed, off: number, len: number): Buffer {
  const out = Buffer.alloc(Math.max(0, len));
  if (off >= seed.size || len <= 0) return out;
  if (seed.bytes) seed.bytes.copy(out, 0, off, Math.min(seed.size, off + len));
  else {
    let src = sources.get(seed.file!);
    if (!src) { src = new FileSource(seed.file!); sources.set(seed.file!, src); }
    src.readUpTo(off, len).copy(out, 0);
  }
  return out;
}

/** The mutated input's bytes [off, off+len) (clipped to its size): seed bytes, then the patches in order. */
export function readMutated(m: Mutated, off: number, len: number): Buffer {
  const n = Math.max(0, Math.min(len, m.size - off));
  const out = readSeed(m.seed, off, Math.max(0, Math.min(n, (m.cut ?? m.seed.size) - off)));
  const buf = out.length === n ? out : Buffer.concat([out, Buffer.alloc(n - out.length)]);
  for (const p of m.patches) {
    const a = Math.max(off, p.off), b = Math.min(off + n, p.off + p.bytes.length);
    if (a < b) p.bytes.copy(buf, a - off, a - p.off, b - p.off);
  }
  return buf;
}

/** The whole mutated input (small inputs, and crash files). */
export const materialize = (m: Mutated): Buffer => readMutated(m, 0, m.size);

/** A read-only ByteSource over a mutated input (container drivers read through it). */
export function mutatedSource(m: Mutated, name: string, log?: [number, number][]): ByteSource {
  return {
    path: name,
    size: m.size,
    readUpTo(offset, length) {
      if (offset >= m.size || length <= 0) return Buffer.alloc(0);
      log?.push([offset, length]);
      return readMutated(m, offset, length);
    },
    readInto(dst, offset) {
      if (offset >= m.size || dst.length === 0) return 0;
      log?.push([offset, dst.length]);
      const b = readMutated(m, offset, Math.min(dst.length, m.size - offset));
      dst.set(b);
      return b.length;
    },
    read(offset, length, what = "data") {
      if (offset < 0 || length < 0 || !Number.isSafeInteger(offset + length) || offset + length > m.size) {
        throw truncated("E_TRUNCATED", `${name}: ${what} at byte ${offset} (+${length}) lies past the end of the file (${m.size} bytes)`);
      }
      log?.push([offset, length]);
      return readMutated(m, offset, length);
    },
    close() { /* nothing held */ },
  };
}

/** A raw 512-byte-sector disk over a mutated input (readLayout, filesystem readers, LVM). */
export function mutatedDisk(m: Mutated, name: string, log?: [number, number][]): BlockDevice {
  const d = new Disk({
    info: { format: "raw", path: name, fileSize: m.size, virtualSize: m.size, sectorSize: 512, findings: [] },
    readInto(dst, offset) { readMutated(m, offset, dst.length).copy(dst); },
    close() { /* nothing held */ },
  });
  if (log) d.onRead.push((x) => log.push([x.lba * 512, x.count * 512]));
  return d;
}

/** The unmutated seed as a Mutated (for recording hot ranges). */
export const clean = (seed: Seed): Mutated => ({ seed, size: seed.size, patches: [], recipe: [] });

/** Merge read records into hot ranges: small reads kept as they are, long ones cut to their first 64 KiB. */
export function hotRanges(log: [number, number][]): [number, number][] {
  const seen = new Set<string>(), out: [number, number][] = [];
  for (const [o, l] of log) {
    const k = `${o}:${l}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push([o, Math.min(l, 65536)]);
    if (out.length >= 4096) break;
  }
  return out;
}

/**
 * Re-apply a recipe (Mutated.recipe) to a seed: how a crash input is kept as text in a
 * regression test instead of a binary file. `donors` resolves splice sources by seed name.
 */
export function applyRecipe(seed: Seed, steps: string[], donors: Seed[] = []): Mutated {
  const m: Mutated = { seed, size: seed.size, patches: [], recipe: [] };
  for (const op of steps) {
    let x: RegExpExecArray | null;
    if ((x = /^bitflip@(\d+)\^(\d)$/.exec(op))) {
      const off = Number(x[1]), b = readMutated(m, off, 1);
      b[0] ^= 1 << Number(x[2]);
      m.patches.push({ off, bytes: b });
    } else if ((x = /^set([0-9a-f]+)@(\d+)$/.exec(op))) m.patches.push({ off: Number(x[2]), bytes: Buffer.from([parseInt(x[1], 16)]) });
    else if ((x = /^int\d+(?:be)?=0x([0-9a-f]+)@(\d+)$/.exec(op))) m.patches.push({ off: Number(x[2]), bytes: Buffer.from(x[1], "hex") });
    else if ((x = /^rand 0x([0-9a-f]+)@(\d+)$/.exec(op))) m.patches.push({ off: Number(x[2]), bytes: Buffer.from(x[1], "hex") });
    else if ((x = /^truncate (\d+)$/.exec(op))) { m.size = Math.min(m.size, Number(x[1])); m.cut = Math.min(m.cut ?? m.size, m.size); }
    else if ((x = /^extend \+(\d+) (00|ff)$/.exec(op))) {
      if (x[2] === "ff") m.patches.push({ off: m.size, bytes: Buffer.alloc(Number(x[1]), 0xff) });
      m.size += Number(x[1]);
    } else if ((x = /^dup (\d+)@(\d+)->(\d+)$/.exec(op))) {
      const from = Number(x[2]);
      m.patches.push({ off: Number(x[3]), bytes: readMutated(m, from, Math.min(Number(x[1]), Math.max(0, m.size - from))) });
    } else if ((x = /^splice (.+):(\d+)\+(\d+)->(\d+)$/.exec(op))) {
      const donor = [seed, ...donors].find((d) => d.name === x![1]);
      if (!donor) throw new Error(`recipe splices from unknown seed ${x[1]}`);
      m.patches.push({ off: Number(x[4]), bytes: readSeed(donor, Number(x[2]), Number(x[3])) });
    } else throw new Error(`unknown recipe step '${op}'`);
    m.recipe.push(op);
  }
  return m;
}
