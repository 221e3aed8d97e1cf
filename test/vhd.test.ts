// VHD driver: qemu-img-made fixed/dynamic disks read back byte-identical to the raw original, a
// differencing chain, creator quirks, and hostile inputs (each refused with a stable ImageError code).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { openImage } from "../images/registry.ts";
import { ImageError } from "../images/errors.ts";
import type { BlockDevice } from "../images/block.ts";
import { tmpdir, sh, prng, sha256 } from "./helpers.ts";
import { assertSameSectors, refuses } from "./image-asserts.ts";

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
const BLOCK = 2 * MiB;            // qemu's VHD block size
let dir: string;
let raw: Buffer;

const vhdChecksum = (b: Buffer, at: number) => {
  let s = 0;
  for (let i = 0; i < b.length; i++) if (i < at || i >= at + 4) s = (s + b[i]) >>> 0;
  return (~s) >>> 0;
};
function fixFooter(f: Buffer): void { f.writeUInt32BE(vhdChecksum(f, 64), 64); }

/** Copy `src` to `dst` and edit its end footer (and the copy at 0 when `both`), fixing checksums unless told not to. */
function patchFooter(src: string, dst: string, edit: (f: Buffer) => void, opts: { both?: boolean; fix?: boolean } = {}): string {
  const b = fs.readFileSync(src);
  const ends = [b.length - 512, ...(opts.both ? [0] : [])];
  for (const o of ends) {
    const f = b.subarray(o, o + 512);
    edit(f);
    if (opts.fix !== false) fixFooter(f);
  }
  fs.writeFileSync(dst, b);
  return dst;
}

/** Copy a qemu dynamic VHD and edit its dynamic header (at footer.dataOffset), fixing its checksum. */
function patchDynHeader(src: string, dst: string, edit: (h: Buffer) => void): string {
  const b = fs.readFileSync(src);
  const at = Number(b.readBigUInt64BE(b.length - 512 + 16));
  const h = b.subarray(at, at + 1024);
  edit(h);
  h.writeUInt32BE(vhdChecksum(h, 36), 36);
  fs.writeFileSync(dst, b);
  return dst;
}

const W2RU = 0x57327275, W2KU = 0x57326b75;

/**
 * Differencing VHD, built from a real qemu-img dynamic VHD because qemu-img cannot create one
 * ("Backing file not supported for file format 'vpc'"). Minimal, spec-exact edits: footer Disk
 * Type 4 in both copies; dynamic header Parent Unique Id, Parent Unicode Name (UTF-16BE) and
 * parent locator entries whose UTF-16LE path data is appended before the end footer; a chosen
 * block bitmap; all checksums recomputed.
 */
function makeDifferencing(childSrc: string, dst: string, parentUid: Buffer, name: string,
                          locators: { code: number; path: string }[], bitmaps: Map<number, Buffer> = new Map()): string {
  const b = fs.readFileSync(childSrc);
  const footer = Buffer.from(b.subarray(b.length - 512));
  const body = Buffer.from(b.subarray(0, b.length - 512));
  const dynAt = Number(footer.readBigUInt64BE(16));
  const dh = body.subarray(dynAt, dynAt + 1024);
  const batAt = Number(dh.readBigUInt64BE(16));
  for (const [blk, bm] of bitmaps) {
    const sec = body.readUInt32BE(batAt + blk * 4);
    expect(sec).not.toBe(0xffffffff);
    bm.copy(body, sec * 512);
  }
  parentUid.copy(dh, 40);
  dh.fill(0, 64, 576);
  for (let i = 0; i < name.length; i++) dh.writeUInt16BE(name.charCodeAt(i), 64 + i * 2);
  const extra: Buffer[] = [];
  let at = body.length;
  locators.forEach((l, i) => {
    const data = Buffer.from(l.path, "utf16le");
    const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
    data.copy(padded);
    const e = 576 + i * 24;
    dh.writeUInt32BE(l.code, e);
    dh.writeUInt32BE(padded.length, e + 4);
    dh.writeUInt32BE(data.length, e + 8);
    dh.writeBigUInt64BE(BigInt(at), e + 16);
    extra.push(padded);
    at += padded.length;
  });
  dh.writeUInt32BE(vhdChecksum(dh, 36), 36);
  footer.writeUInt32BE(4, 60);
  fixFooter(footer);
  footer.copy(body, 0);
  fs.writeFileSync(dst, Buffer.concat([body, ...extra, footer]));
  return dst;
}

const footerUid = (file: string) => { const b = fs.readFileSync(file); return Buffer.from(b.subarray(b.length - 512 + 68, b.length - 512 + 84)); };

beforeAll(() => {
  dir = tmpdir("bootgate-vhd-");
  raw = prng(0x5eed1, SIZE);
  raw.fill(0, 6 * MiB, 12 * MiB);                   // unallocated blocks in the dynamic disks
  fs.writeFileSync(path.join(dir, "disk.raw"), raw);
  sh("sfdisk", ["-q", path.join(dir, "disk.raw")], { input: "label: dos\nstart=2048, size=40000, type=83, bootable\n" });
  raw = fs.readFileSync(path.join(dir, "disk.raw"));
  const r = path.join(dir, "disk.raw");
  sh("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", r, path.join(dir, "fixed.vhd")]);
  sh("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", r, path.join(dir, "dynamic.vhd")]);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("VHD made by qemu-img reads back byte-identical", () => {
  it("fixed, force_size=on (Azure style): every sector, creator 'qem2', current size, CHS from the footer", () => {
    const d = openImage(path.join(dir, "fixed.vhd"));
    expect(d.format).toBe("vhd");
    expect(d.info.subformat).toBe("fixed");
    expect(d.info.virtualSize).toBe(SIZE);
    expect(d.info.fileSize).toBe(SIZE + 512);
    expect(d.info.details?.creatorApp).toBe("qem2");
    expect(d.info.geometry).toEqual({ cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
    expect(d.info.diskId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(d.info.findings).toEqual([]);
    assertSameSectors(d, raw, { pad: true });
    d.close();
  });

  it("dynamic: qemu's CHS-rounded size, zeros past the raw end, unallocated blocks read as zeros", () => {
    const d = openImage(path.join(dir, "dynamic.vhd"));
    expect(d.info.subformat).toBe("dynamic");
    expect(d.info.details?.creatorApp).toBe("qemu");
    const g = d.info.geometry!;
    expect(d.info.virtualSize).toBe(g.cylinders * g.heads * g.sectorsPerTrack * 512);
    expect(d.info.virtualSize).toBeGreaterThanOrEqual(SIZE);
    expect(d.info.details?.blockSize).toBe(BLOCK);
    assertSameSectors(d, raw, { pad: true });
    d.close();
  });

  it("dynamic with the end footer zeroed: uses the copy at offset 0, with a finding", () => {
    const f = patchFooter(path.join(dir, "dynamic.vhd"), path.join(dir, "nofooter.vhd"), (x) => x.fill(0), { fix: false });
    const d = openImage(f);
    expect(d.info.findings.map((x) => x.code)).toContain("VHD_FOOTER_COPY_USED");
    assertSameSectors(d, raw, { pad: true });
    d.close();
  });

  it("fixed with a bad footer checksum: still read, finding VHD_FOOTER_CHECKSUM of severity error", () => {
    const f = patchFooter(path.join(dir, "fixed.vhd"), path.join(dir, "badsum.vhd"), (x) => { x[64] ^= 0x55; }, { fix: false });
    const d = openImage(f);
    const fd = d.info.findings.find((x) => x.code === "VHD_FOOTER_CHECKSUM");
    expect(fd?.severity).toBe("error");
    expect(fd?.message).toMatch(/computed 0x[0-9a-f]{8}/);
    assertSameSectors(d, raw, { pad: true });
    d.close();
  });

  it("creator quirk table: a 'vpc ' disk is sized by CHS, a 'win ' disk by Current Size", () => {
    // Current Size 1 MiB above the CHS size: Virtual PC reads the CHS size, Hyper-V the Current Size.
    const setSize = (x: Buffer, app: string) => {
      x.write(app, 28, "latin1");
      const chs = x.readUInt16BE(56) * x[58] * x[59] * 512;
      x.writeBigUInt64BE(BigInt(chs + MiB), 48);
    };
    const vpc = openImage(patchFooter(path.join(dir, "dynamic.vhd"), path.join(dir, "vpc.vhd"), (x) => setSize(x, "vpc "), { both: true }));
    const g = vpc.info.geometry!;
    const chs = g.cylinders * g.heads * g.sectorsPerTrack * 512;
    expect(vpc.info.virtualSize).toBe(chs);
    expect(vpc.info.findings.map((x) => x.code)).toContain("VHD_SIZE_FIELDS_DIFFER");
    vpc.close();
    const win = openImage(patchFooter(path.join(dir, "dynamic.vhd"), path.join(dir, "win.vhd"), (x) => setSize(x, "win "), { both: true }));
    expect(win.info.virtualSize).toBe(chs + MiB);
    expect(win.info.details?.creatorName).toMatch(/Hyper-V/);
    assertSameSectors(win, raw, { pad: true });
    win.close();
  });

  it("accepts the 511-byte footer of old Virtual PC", () => {
    const b = fs.readFileSync(path.join(dir, "fixed.vhd"));
    const footer = Buffer.from(b.subarray(b.length - 512));
    footer[511] = 0;                                   // the byte the old footer lacks (reserved, zero)
    fixFooter(footer);
    const f = path.join(dir, "old511.vhd");
    fs.writeFileSync(f, Buffer.concat([b.subarray(0, b.length - 512), footer.subarray(0, 511)]));
    const d = openImage(f);
    expect(d.info.findings.map((x) => x.code)).toContain("VHD_OLD_FOOTER");
    assertSameSectors(d, raw, { pad: true });
    d.close();
  });
});

describe("differencing VHD chain", () => {
  let base: string, childSrc: string, expected: Buffer, bitmap3: Buffer;
  beforeAll(() => {
    base = path.join(dir, "base.vhd");
    fs.copyFileSync(path.join(dir, "dynamic.vhd"), base);
    const overlay = Buffer.alloc(SIZE);
    prng(0xc41d, 2 * BLOCK).copy(overlay, 1 * BLOCK);   // blocks 1 and 2: child data
    prng(0xc41e, BLOCK).copy(overlay, 8 * BLOCK);       // block 8: child data, partially present
    fs.writeFileSync(path.join(dir, "overlay.raw"), overlay);
    childSrc = path.join(dir, "overlay-dyn.vhd");
    sh("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", path.join(dir, "overlay.raw"), childSrc]);
    // Block 8's bitmap: a byte pattern mixing whole runs and single-sector alternation.
    bitmap3 = Buffer.alloc(512);
    for (let i = 0; i < 512; i++) bitmap3[i] = [0xff, 0x00, 0xc1, 0x3e, 0x12, 0x80, 0x01, 0x6b][i % 8];
    expected = Buffer.from(raw);
    overlay.copy(expected, 1 * BLOCK, 1 * BLOCK, 3 * BLOCK);
    for (let s = 0; s < BLOCK / 512; s++) {
      if ((bitmap3[s >> 3] >> (7 - (s & 7))) & 1) overlay.copy(expected, 8 * BLOCK + s * 512, 8 * BLOCK + s * 512, 8 * BLOCK + (s + 1) * 512);
    }
  });

  it("reads child sectors where the block bitmap says so, parent sectors elsewhere (W2ru tried first)", () => {
    const child = makeDifferencing(childSrc, path.join(dir, "child.vhd"), footerUid(base), "base.vhd",
      [{ code: W2KU, path: "C:\\VMs\\elsewhere\\base.vhd" }, { code: W2RU, path: ".\\base.vhd" }], new Map([[8, bitmap3]]));
    const d = openImage(child);
    expect(d.info.subformat).toBe("differencing");
    expect(d.info.parent?.path).toBe(fs.realpathSync(base));
    expect((d.info.details?.parentCandidates as string[])[0]).toBe(".\\base.vhd");
    expect(d.info.findings).toEqual([]);
    assertSameSectors(d, expected, { pad: true });
    d.close();
    // An independent reader (libvhdi) agrees the construction is a differencing VHD with this parent.
    if (fs.existsSync("/usr/bin/vhdiinfo")) {
      const out = sh("vhdiinfo", [child]);
      expect(out).toMatch(/Differential/i);
      expect(out.toLowerCase()).toContain(footerUid(base).toString("hex").slice(0, 8));
    }
  });

  it("flags a parent whose unique id differs from the one the child recorded", () => {
    const child = makeDifferencing(childSrc, path.join(dir, "child-wrongid.vhd"), Buffer.alloc(16, 0x42), "base.vhd",
      [{ code: W2RU, path: ".\\base.vhd" }]);
    const d = openImage(child);
    const fd = d.info.findings.find((x) => x.code === "VHD_PARENT_ID_MISMATCH");
    expect(fd?.severity).toBe("error");
    d.close();
  });

  it("refuses a parent locator pointing outside the image's folder (never opens it)", () => {
    const sub = path.join(dir, "sub"), outside = path.join(dir, "outside");
    fs.mkdirSync(sub, { recursive: true });
    fs.mkdirSync(outside, { recursive: true });
    fs.copyFileSync(base, path.join(outside, "secret-base.vhd"));
    const child = makeDifferencing(childSrc, path.join(sub, "child.vhd"), footerUid(base), "secret-base.vhd",
      [{ code: W2RU, path: "..\\outside\\secret-base.vhd" }, { code: W2KU, path: path.join(outside, "secret-base.vhd") }]);
    refuses(child, "E_PARENT_MISSING");
    // ... unless the user allows that folder explicitly.
    const d = openImage(child, { allowDirs: [outside] });
    expect(d.info.parent?.path).toBe(fs.realpathSync(path.join(outside, "secret-base.vhd")));
    d.close();
  });

  it("refuses a parent chain that loops (a.vhd's parent is b.vhd whose parent is a.vhd)", () => {
    makeDifferencing(childSrc, path.join(dir, "a.vhd"), footerUid(base), "b.vhd", [{ code: W2RU, path: ".\\b.vhd" }]);
    makeDifferencing(childSrc, path.join(dir, "b.vhd"), footerUid(base), "a.vhd", [{ code: W2RU, path: ".\\a.vhd" }]);
    refuses(path.join(dir, "a.vhd"), "E_PARENT_LOOP");
  });

  it("refuses a differencing VHD whose parent is missing", () => {
    const child = makeDifferencing(childSrc, path.join(dir, "orphan.vhd"), footerUid(base), "gone.vhd", [{ code: W2RU, path: ".\\gone.vhd" }]);
    refuses(child, "E_PARENT_MISSING");
  });
});

describe("hostile VHD inputs", () => {
  it("refuses a .vhd of 300 bytes", () => {
    const f = path.join(dir, "tiny.vhd");
    fs.writeFileSync(f, fs.readFileSync(path.join(dir, "fixed.vhd")).subarray(-300));
    refuses(f, "E_VHD_TRUNCATED");
  });

  it("refuses a dynamic VHD cut in half (BAT entries point past the end)", () => {
    const b = fs.readFileSync(path.join(dir, "dynamic.vhd"));
    const f = path.join(dir, "half.vhd");
    fs.writeFileSync(f, b.subarray(0, b.length >> 1));
    refuses(f, "E_VHD_BAT_ENTRY");
  });

  it("refuses a fixed VHD whose footer is zeroed (a .vhd is never read as raw)", () => {
    refuses(patchFooter(path.join(dir, "fixed.vhd"), path.join(dir, "zero.vhd"), (x) => x.fill(0), { fix: false }), "E_VHD_COOKIE");
  });

  it("refuses a VHD whose footer disk type has a bit flipped", () => {
    refuses(patchFooter(path.join(dir, "fixed.vhd"), path.join(dir, "type.vhd"), (x) => { x[63] ^= 0x10; }, { fix: false }), "E_VHD_FOOTER");
  });

  it("refuses a VHD whose dynamic header cookie has a bit flipped", () => {
    refuses(patchDynHeader(path.join(dir, "dynamic.vhd"), path.join(dir, "cookie.vhd"), (h) => { h[0] ^= 1; }), "E_VHD_DYN_HEADER");
  });

  it("refuses a VHD whose BAT entry count is 2^32-1", () => {
    refuses(patchDynHeader(path.join(dir, "dynamic.vhd"), path.join(dir, "bat.vhd"), (h) => h.writeUInt32BE(0xffffffff, 28)), "E_VHD_BAT_LIMIT");
  });

  it("refuses a VHD whose block size is 0", () => {
    refuses(patchDynHeader(path.join(dir, "dynamic.vhd"), path.join(dir, "bs0.vhd"), (h) => h.writeUInt32BE(0, 32)), "E_VHD_BLOCK_SIZE");
  });

  it("refuses a VHD whose block size is not a power of two (3 MiB)", () => {
    refuses(patchDynHeader(path.join(dir, "dynamic.vhd"), path.join(dir, "bs3.vhd"), (h) => h.writeUInt32BE(3 * MiB, 32)), "E_VHD_BLOCK_SIZE");
  });

  it("refuses a VHD whose BAT offset lies past the end of the file", () => {
    refuses(patchDynHeader(path.join(dir, "dynamic.vhd"), path.join(dir, "batoff.vhd"), (h) => h.writeBigUInt64BE(2n ** 40n, 16)), "E_VHD_TRUNCATED");
  });

  it("refuses a VHD whose Current Size is 2^64-1", () => {
    refuses(patchFooter(path.join(dir, "fixed.vhd"), path.join(dir, "huge.vhd"), (x) => x.writeBigUInt64BE(2n ** 64n - 1n, 48)), "E_VHD_FOOTER");
  });
});
