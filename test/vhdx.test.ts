// VHDX driver: qemu-img-made dynamic/fixed disks read back byte-identical to the raw original, a
// 4096-byte-sector disk, a differencing chain, and hostile inputs refused with stable codes.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { openImage } from "../images/registry.ts";
import { ImageError } from "../images/errors.ts";
import type { BlockDevice } from "../images/block.ts";
import { crc32c } from "../images/crc.ts";
import { tmpdir, sh, prng, sha256 } from "./helpers.ts";
import { assertSameSectors, refuses } from "./image-asserts.ts";

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
let dir: string;
let raw: Buffer;
const f = (name: string) => path.join(dir, name);

// --- [MS-VHDX] structure helpers for building test inputs from real qemu-img output ---
/** GUID text -> its on-disk mixed-endian bytes. */
function guidBytes(s: string): Buffer {
  const h = s.replace(/[{}-]/g, "");
  const b = Buffer.from(h, "hex");
  b.subarray(0, 4).reverse(); b.subarray(4, 6).reverse(); b.subarray(6, 8).reverse();
  return b;
}
function guidText(b: Buffer): string {
  const c = Buffer.from(b);
  c.subarray(0, 4).reverse(); c.subarray(4, 6).reverse(); c.subarray(6, 8).reverse();
  const h = c.toString("hex").toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
const HEADERS = [64 * 1024, 128 * 1024];
const REGION_TABLES = [192 * 1024, 256 * 1024];
const ITEM = {
  fileParameters: "CAA16737-FA36-4D43-B3B6-33F0AA44E76B",
  virtualDiskSize: "2FA54224-CD1B-4876-B211-5DBED83BF4B8",
  logicalSectorSize: "8141BF1D-A96F-4709-BA47-F233A8FAAB5F",
  physicalSectorSize: "CDA348C7-445D-4471-9CC9-E9885251C556",
  parentLocator: "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C",
};
const fixHeader = (b: Buffer, at: number) => b.writeUInt32LE(crc32c(b.subarray(at, at + 4096), 4), at + 4);
const fixRegion = (b: Buffer, at: number) => b.writeUInt32LE(crc32c(b.subarray(at, at + 65536), 4), at + 4);
function region(b: Buffer, guid: string): { off: number; len: number; entryAt: number } {
  const n = b.readUInt32LE(REGION_TABLES[0] + 8);
  for (let i = 0; i < n; i++) {
    const e = REGION_TABLES[0] + 16 + i * 32;
    if (guidText(b.subarray(e, e + 16)) === guid) return { off: Number(b.readBigUInt64LE(e + 16)), len: b.readUInt32LE(e + 24), entryAt: e - REGION_TABLES[0] };
  }
  throw new Error(`no region ${guid}`);
}
const BAT = "2DC27766-F623-4200-9D64-115E9BFD4A08", METADATA = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
/** The metadata item `guid` of the file in `b`, as a view to edit in place. */
function item(b: Buffer, guid: string): Buffer {
  const m = region(b, METADATA).off;
  const n = b.readUInt16LE(m + 10);
  for (let i = 0; i < n; i++) {
    const e = m + 32 + i * 32;
    if (guidText(b.subarray(e, e + 16)) === guid) {
      const off = b.readUInt32LE(e + 16);
      return b.subarray(m + off, m + off + b.readUInt32LE(e + 20));
    }
  }
  throw new Error(`no metadata item ${guid}`);
}
function currentHeader(b: Buffer): Buffer {
  const [h1, h2] = HEADERS.map((o) => b.subarray(o, o + 4096));
  return h1.readBigUInt64LE(8) >= h2.readBigUInt64LE(8) ? h1 : h2;
}
function patch(src: string, dst: string, edit: (b: Buffer) => Buffer | void): string {
  const b = fs.readFileSync(src);
  fs.writeFileSync(dst, edit(b) ?? b);
  return dst;
}

/**
 * Differencing VHDX, built from a real qemu-img dynamic VHDX because qemu-img cannot create one
 * ("Backing file not supported for file format 'vhdx'"). Spec-exact edits: File Parameters
 * HasParent; a Parent Locator metadata item (type B04AEFB7-..., keys parent_linkage,
 * relative_path, absolute_win32_path) added to the metadata table; ZERO payload entries turned
 * NOT_PRESENT (so the parent shows through); a 1 MiB sector bitmap block appended and entered in
 * the BAT (entry chunkRatio, state SB_BLOCK_PRESENT) for the blocks in `partial`.
 */
function makeDifferencing(childSrc: string, dst: string, parentLinkage: string, locator: Record<string, string>,
                          partial: Map<number, Buffer> = new Map()): string {
  let b = fs.readFileSync(childSrc);
  const fp = item(b, ITEM.fileParameters);
  fp.writeUInt32LE(fp.readUInt32LE(4) | 2, 4);
  const lss = item(b, ITEM.logicalSectorSize).readUInt32LE(0);
  const bs = fp.readUInt32LE(0);
  const chunkRatio = (2 ** 23 * lss) / bs;
  const vsize = Number(item(b, ITEM.virtualDiskSize).readBigUInt64LE(0));
  const blocks = Math.ceil(vsize / bs);
  expect(blocks).toBeLessThan(chunkRatio);      // one chunk: payload entries 0..blocks-1, bitmap entry chunkRatio
  const bat = region(b, BAT).off;
  for (let i = 0; i < blocks; i++) if ((b.readUInt32LE(bat + i * 8) & 7) === 2) b.writeBigUInt64LE(0n, bat + i * 8);
  // Parent locator item after the last existing item.
  const m = region(b, METADATA).off;
  const n = b.readUInt16LE(m + 10);
  let free = 64 * 1024;
  for (let i = 0; i < n; i++) free = Math.max(free, b.readUInt32LE(m + 32 + i * 32 + 16) + b.readUInt32LE(m + 32 + i * 32 + 20));
  free = Math.ceil(free / 8) * 8;
  const keys = Object.entries({ parent_linkage: parentLinkage, ...locator });
  const strs: Buffer[] = [];
  const head = Buffer.alloc(20 + keys.length * 12);
  guidBytes("B04AEFB7-D19E-4A81-B789-25B8E9445913").copy(head, 0);
  head.writeUInt16LE(keys.length, 18);
  let at = head.length;
  keys.forEach(([k, v], i) => {
    const kb = Buffer.from(k, "utf16le"), vb = Buffer.from(v, "utf16le");
    head.writeUInt32LE(at, 20 + i * 12); head.writeUInt32LE(at + kb.length, 24 + i * 12);
    head.writeUInt16LE(kb.length, 28 + i * 12); head.writeUInt16LE(vb.length, 30 + i * 12);
    strs.push(kb, vb); at += kb.length + vb.length;
  });
  const loc = Buffer.concat([head, ...strs]);
  loc.copy(b, m + free);
  const e = m + 32 + n * 32;
  guidBytes(ITEM.parentLocator).copy(b, e);
  b.writeUInt32LE(free, e + 16); b.writeUInt32LE(loc.length, e + 20); b.writeUInt32LE(4, e + 24); // IsRequired
  b.writeUInt16LE(n + 1, m + 10);
  if (partial.size) {
    const sbAt = Math.ceil(b.length / MiB) * MiB;
    const sb = Buffer.alloc(MiB);
    const slice = bs / lss / 8;
    for (const [blk, bits] of partial) {
      bits.copy(sb, (blk % chunkRatio) * slice);
      const lo = b.readUInt32LE(bat + blk * 8);
      expect(lo & 7).toBe(6);
      b.writeUInt32LE((lo & ~7) | 7, bat + blk * 8);       // PAYLOAD_BLOCK_PARTIALLY_PRESENT
    }
    b.writeBigUInt64LE(BigInt(sbAt / MiB) << 20n | 6n, bat + chunkRatio * 8);  // SB_BLOCK_PRESENT
    b = Buffer.concat([b, Buffer.alloc(sbAt - b.length), sb]);
  }
  fs.writeFileSync(dst, b);
  return dst;
}

beforeAll(() => {
  dir = tmpdir("bootgate-vhdx-");
  raw = prng(0x7ee1, SIZE);
  raw.fill(0, 6 * MiB, 12 * MiB);
  fs.writeFileSync(f("disk.raw"), raw);
  sh("sfdisk", ["-q", f("disk.raw")], { input: "label: gpt\nstart=2048, size=40000, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n" });
  raw = fs.readFileSync(f("disk.raw"));
  const conv = (opts: string, out: string) => sh("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "-o", opts, f("disk.raw"), f(out)]);
  conv("subformat=dynamic", "dynamic.vhdx");
  conv("subformat=fixed", "fixed.vhdx");
  conv("subformat=dynamic,block_size=1M,log_size=2M", "small-blocks.vhdx");
  // Hostile inputs start from a small real VHDX (4 MiB of data in 1 MiB blocks) to keep the test fast.
  fs.writeFileSync(f("head.raw"), raw.subarray(0, 4 * MiB));
  sh("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=1M", f("head.raw"), f("hostile.vhdx")]);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("VHDX made by qemu-img reads back byte-identical", () => {
  for (const [name, sub] of [["dynamic.vhdx", "dynamic"], ["fixed.vhdx", "fixed"], ["small-blocks.vhdx", "dynamic"]] as const) {
    it(`${name}: every sector including the last, subformat ${sub}`, () => {
      const d = openImage(f(name));
      expect(d.format).toBe("vhdx");
      expect(d.info.subformat).toBe(sub);
      expect(d.info.virtualSize).toBe(SIZE);
      expect(d.sectorSize).toBe(512);
      expect(d.info.creator).toMatch(/QEMU/);
      expect(d.info.diskId).toMatch(/^[0-9A-F]{8}-([0-9A-F]{4}-){3}[0-9A-F]{12}$/);
      expect(d.info.findings).toEqual([]);
      assertSameSectors(d, raw, { pad: true });
      d.close();
    });
  }

  it("a VHDX with 4096-byte logical sectors: sectorSize 4096, same bytes", () => {
    // qemu-img 7.2 cannot make one (no logical sector size option in `qemu-img create -f vhdx -o help`):
    // patch the Logical/Physical Sector Size items of a qemu-img VHDX. With 24 blocks per chunk of
    // 32768 the BAT layout is unchanged, so only the sector size differs.
    const f4k = patch(f("small-blocks.vhdx"), f("4k.vhdx"), (b) => {
      item(b, ITEM.logicalSectorSize).writeUInt32LE(4096, 0);
      item(b, ITEM.physicalSectorSize).writeUInt32LE(4096, 0);
    });
    const d = openImage(f4k);
    expect(d.sectorSize).toBe(4096);
    expect(d.info.sectorSize).toBe(4096);
    expect(d.info.physicalSectorSize).toBe(4096);
    expect(d.sectorCount).toBe(SIZE / 4096);
    expect(d.info.details?.chunkRatio).toBe(32768);
    assertSameSectors(d, raw, { pad: true });
    d.close();
    if (fs.existsSync("/usr/bin/vhdiinfo")) expect(sh("vhdiinfo", [f4k])).toMatch(/Bytes per sector\s*:\s*4096/);
  });

  it("one header with a flipped bit: the other one is used, with a finding", () => {
    const g = patch(f("dynamic.vhdx"), f("onehdr.vhdx"), (b) => { b[HEADERS[0] + 40] ^= 0x08; });
    const d = openImage(g);
    expect(d.info.findings.map((x) => x.code)).toEqual(["VHDX_HEADER_INVALID"]);
    expect(d.info.details?.headerInUse).toBe(2);
    assertSameSectors(d, raw, { pad: true });
    d.close();
  });
});

describe("differencing VHDX chain", () => {
  let childSrc: string, expected: Buffer, bits: Buffer, linkage: string;
  beforeAll(() => {
    const overlay = Buffer.alloc(SIZE);
    prng(0xd1ff, 2 * MiB).copy(overlay, 1 * MiB);      // blocks 1, 2: fully present in the child
    prng(0xd200, MiB).copy(overlay, 8 * MiB);          // block 8: partially present
    fs.writeFileSync(f("overlay.raw"), overlay);
    childSrc = f("overlay.vhdx");
    sh("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=1M", f("overlay.raw"), childSrc]);
    bits = Buffer.alloc(MiB / 512 / 8);
    for (let i = 0; i < bits.length; i++) bits[i] = [0xff, 0x00, 0xc1, 0x3e, 0x12, 0x80, 0x01, 0x6b][i % 8];
    expected = Buffer.from(raw);
    overlay.copy(expected, MiB, MiB, 3 * MiB);
    for (let s = 0; s < MiB / 512; s++) {
      if ((bits[s >> 3] >> (s & 7)) & 1) overlay.copy(expected, 8 * MiB + s * 512, 8 * MiB + s * 512, 8 * MiB + (s + 1) * 512);
    }
    linkage = `{${guidText(currentHeader(fs.readFileSync(f("small-blocks.vhdx"))).subarray(32, 48)).toLowerCase()}}`;
  });

  it("reads child blocks, sector-bitmap-selected sectors, and the parent elsewhere", () => {
    const child = makeDifferencing(childSrc, f("child.vhdx"), linkage,
      { relative_path: ".\\small-blocks.vhdx", absolute_win32_path: "D:\\Hyper-V\\small-blocks.vhdx" }, new Map([[8, bits]]));
    const d = openImage(child);
    expect(d.info.subformat).toBe("differencing");
    expect(d.info.parent?.path).toBe(fs.realpathSync(f("small-blocks.vhdx")));
    expect(d.info.findings).toEqual([]);
    assertSameSectors(d, expected, { pad: true });
    d.close();
    if (fs.existsSync("/usr/bin/vhdiinfo")) expect(sh("vhdiinfo", [child])).toMatch(/Differential/i);
  });

  it("flags a parent whose DataWriteGuid differs from the child's parent_linkage", () => {
    const child = makeDifferencing(childSrc, f("child-stale.vhdx"), "{11111111-2222-3333-4444-555555555555}",
      { relative_path: "small-blocks.vhdx" });
    const d = openImage(child);
    expect(d.info.findings.find((x) => x.code === "VHDX_PARENT_LINKAGE_MISMATCH")?.severity).toBe("error");
    d.close();
  });

  it("refuses a parent locator pointing outside the image's folder", () => {
    fs.mkdirSync(f("sub"), { recursive: true });
    fs.mkdirSync(f("outside"), { recursive: true });
    fs.copyFileSync(f("small-blocks.vhdx"), f("outside/hidden-base.vhdx"));
    const child = makeDifferencing(childSrc, f("sub/child.vhdx"), linkage,
      { relative_path: "..\\outside\\hidden-base.vhdx", absolute_win32_path: path.join(dir, "outside", "hidden-base.vhdx") });
    refuses(child, "E_PARENT_MISSING");
  });

  it("refuses a parent chain that loops (a.vhdx -> b.vhdx -> a.vhdx)", () => {
    makeDifferencing(childSrc, f("a.vhdx"), linkage, { relative_path: "b.vhdx" });
    makeDifferencing(childSrc, f("b.vhdx"), linkage, { relative_path: "a.vhdx" });
    refuses(f("a.vhdx"), "E_PARENT_LOOP");
  });
});

describe("hostile VHDX inputs", () => {
  const src = () => f("hostile.vhdx");
  it("refuses a VHDX truncated to 200 KiB", () => {
    refuses(patch(src(), f("t200k.vhdx"), (b) => b.subarray(0, 200 * 1024)), "E_VHDX_TRUNCATED");
  });
  it("refuses a VHDX cut after its metadata region (payload blocks missing)", () => {
    refuses(patch(src(), f("t4m.vhdx"), (b) => b.subarray(0, 4 * MiB)), "E_VHDX_BAT_ENTRY");
  });
  it("refuses a VHDX whose file type identifier is zeroed (a .vhdx is never read as raw)", () => {
    refuses(patch(src(), f("noident.vhdx"), (b) => { b.fill(0, 0, 8); }), "E_VHDX_SIGNATURE");
  });
  it("refuses a VHDX whose two headers both have a flipped bit", () => {
    refuses(patch(src(), f("twohdr.vhdx"), (b) => { b[HEADERS[0] + 70] ^= 1; b[HEADERS[1] + 70] ^= 1; }), "E_VHDX_HEADER");
  });
  it("refuses a VHDX whose region table entries point past the file", () => {
    refuses(patch(src(), f("regpast.vhdx"), (b) => {
      const e = region(b, METADATA).entryAt;
      for (const t of REGION_TABLES) { b.writeBigUInt64LE(1024n * BigInt(MiB), t + e + 16); fixRegion(b, t); }
    }), "E_VHDX_TRUNCATED");
  });
  it("refuses a VHDX whose region table entry count is 2^32-1", () => {
    refuses(patch(src(), f("regcount.vhdx"), (b) => {
      for (const t of REGION_TABLES) { b.writeUInt32LE(0xffffffff, t + 8); fixRegion(b, t); }
    }), "E_VHDX_REGION");
  });
  it("refuses a VHDX whose block size is 0", () => {
    refuses(patch(src(), f("bs0.vhdx"), (b) => { item(b, ITEM.fileParameters).writeUInt32LE(0, 0); }), "E_VHDX_BLOCK_SIZE");
  });
  it("refuses a VHDX whose block size is not a power of two (3 MiB)", () => {
    refuses(patch(src(), f("bs3.vhdx"), (b) => { item(b, ITEM.fileParameters).writeUInt32LE(3 * MiB, 0); }), "E_VHDX_BLOCK_SIZE");
  });
  it("refuses a VHDX whose logical sector size is 1000", () => {
    refuses(patch(src(), f("lss.vhdx"), (b) => { item(b, ITEM.logicalSectorSize).writeUInt32LE(1000, 0); }), "E_VHDX_SECTOR_SIZE");
  });
  it("refuses a VHDX whose BAT would need more than 2^26 entries (64 TiB in 1 MiB blocks)", () => {
    refuses(patch(src(), f("hugebat.vhdx"), (b) => { item(b, ITEM.virtualDiskSize).writeBigUInt64LE(64n * 2n ** 40n, 0); }), "E_VHDX_BAT_LIMIT");
  });
  it("refuses a VHDX whose virtual size is 2^64-1", () => {
    refuses(patch(src(), f("hugesize.vhdx"), (b) => { item(b, ITEM.virtualDiskSize).writeBigUInt64LE(2n ** 64n - 1n, 0); }), "E_VHDX_SIZE");
  });
  it("refuses a VHDX whose log must be replayed, naming the fix", () => {
    const e = refuses(patch(src(), f("log.vhdx"), (b) => {
      for (const h of HEADERS) { b.fill(0x5a, h + 48, h + 64); fixHeader(b, h); }
    }), "E_VHDX_LOG_REPLAY");
    expect(e.message).toMatch(/qemu-img check -r all/);
    expect(e.message).toMatch(/Hyper-V/);
  });
});

describe("VHDX open cost does not grow with the virtual size", () => {
  it("opens a 2.5 TiB sparse VHDX about as fast as a 128 MiB one (times printed, not asserted)", () => {
    sh("qemu-img", ["create", "-q", "-f", "vhdx", f("small.vhdx"), "128M"]);
    sh("qemu-img", ["create", "-q", "-f", "vhdx", f("huge.vhdx"), "2560G"]);
    const time = (file: string) => {
      const t0 = performance.now();
      const d = openImage(file);
      const last = Buffer.from(d.read(d.sectorCount - 1, 1));
      const ms = performance.now() - t0;
      expect(last.every((x) => x === 0)).toBe(true);
      const size = d.info.virtualSize;
      d.close();
      return { ms, size };
    };
    time(f("small.vhdx"));                            // warm up module loading
    const a = time(f("small.vhdx")), b = time(f("huge.vhdx"));
    expect(b.size).toBe(2560 * 2 ** 30);
    console.log(`VHDX open + read last sector: 128 MiB ${a.ms.toFixed(2)} ms, 2.5 TiB sparse ${b.ms.toFixed(2)} ms`);
  });
});
