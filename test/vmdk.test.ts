// VMDK driver: qemu-img-made monolithicSparse/streamOptimized/monolithicFlat/twoGbMaxExtent* disks read
// back byte-identical to the raw original, delta disks over a parent, and hostile inputs refused with codes.
import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { openImage } from "../images/registry.ts";
import { ImageError } from "../images/errors.ts";
import type { BlockDevice } from "../images/block.ts";
import { tmpdir, sh, prng, sha256 } from "./helpers.ts";
import { assertSameSectors, refuses } from "./image-asserts.ts";

const KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
const SIZE = 6 * MiB + 4608;        // not a whole grain: the last grain is partial
let dir: string;
let raw: Buffer;

/** Random, zero, compressible and single-sector areas, so grains of every kind exist. */
function makeRaw(): Buffer {
  const b = Buffer.alloc(SIZE);
  prng(1, MiB).copy(b, 0);                                        // [0,1M) random
  Buffer.from("bootgate vmdk grain ".repeat(60000)).copy(b, 2 * MiB, 0, MiB);   // [2M,3M) compressible
  prng(2, 32 * KiB).copy(b, 3 * MiB);                             // half a grain
  prng(3, 512).copy(b, 4 * MiB + 512);                            // one sector in a zero grain
  prng(4, MiB + 4608).copy(b, 5 * MiB);                           // through the last sector
  return b;
}

const convert = (sub: string, name: string, extra: string[] = []): string => {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  const out = path.join(d, "disk.vmdk");
  sh("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", `subformat=${sub}${extra.length ? "," + extra.join(",") : ""}`, path.join(dir, "disk.raw"), out]);
  return out;
};

/** Copy `file` to `name` in the test folder and let `edit` change its bytes. */
function patched(file: string, name: string, edit: (b: Buffer) => Buffer | void): string {
  const b = fs.readFileSync(file);
  const r = edit(b) ?? b;
  const out = path.join(dir, name);
  fs.writeFileSync(out, r);
  return out;
}

const gdOf = (b: Buffer) => Number(b.readBigUInt64LE(56));
const gtOf = (b: Buffer, i = 0) => b.readUInt32LE(gdOf(b) * 512 + i * 4);
const gteOf = (b: Buffer, gt: number, i: number) => b.readUInt32LE(gt * 512 + i * 4);

beforeAll(() => {
  dir = tmpdir("bootgate-vmdk-");
  raw = makeRaw();
  fs.writeFileSync(path.join(dir, "disk.raw"), raw);
});

describe("VMDK subformats made by qemu-img read back every sector", () => {
  for (const sub of ["monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"]) {
    it(sub, () => {
      const f = convert(sub, sub, ["adapter_type=lsilogic", "hwversion=6"]);
      const d = openImage(f);
      expect(d.format).toBe("vmdk");
      expect(d.info.subformat).toBe(sub);
      expect(d.info.geometry?.heads).toBeGreaterThan(0);
      expect(d.info.details?.adapterType).toBe("lsilogic");
      expect(d.info.details?.virtualHWVersion).toBe("6");
      expect(d.info.diskId).toMatch(/^0x[0-9a-f]{8}$/);
      if (sub === "streamOptimized") expect(d.info.details?.compressed).toBe(true);
      assertSameSectors(d, raw);
      expect(d.info.findings).toEqual([]);
      d.close();
    });
  }

  it("reads an extent file opened directly (no descriptor) as its own disk", () => {
    const d = openImage(path.join(dir, "twoGbMaxExtentSparse", "disk-s001.vmdk"));
    assertSameSectors(d, raw);
    d.close();
  });
});

describe("hand-written descriptors over qemu-made flat extents", () => {
  let flatDir: string;
  beforeAll(() => { flatDir = path.dirname(convert("monolithicFlat", "esx")); });

  it("an ESXi createType=\"vmfs\" descriptor with a VMFS extent and pvscsi adapter", () => {
    const f = path.join(flatDir, "esx.vmdk");
    fs.writeFileSync(f, [
      "# Disk DescriptorFile", "version=1", 'encoding="UTF-8"', "CID=fffffffe", "parentCID=ffffffff", 'createType="vmfs"', "",
      "# Extent description", `RW ${SIZE / 512} VMFS "disk-flat.vmdk"`, "", "# The Disk Data Base", "#DDB", "",
      'ddb.adapterType = "pvscsi"', 'ddb.geometry.cylinders = "0"', 'ddb.geometry.heads = "255"', 'ddb.geometry.sectors = "63"',
      'ddb.longContentID = "0b5d7a3f8e2c4d1a9f6b3c2dfffffffe"', 'ddb.thinProvisioned = "1"',
      'ddb.uuid = "60 00 C2 9b 1c 2d 3e 4f-50 61 72 83 94 a5 b6 c7"', 'ddb.virtualHWVersion = "14"', "",
    ].join("\n"));
    const d = openImage(f);
    expect(d.info.subformat).toBe("vmfs");
    expect(d.info.details).toMatchObject({ adapterType: "pvscsi", virtualHWVersion: "14" });
    expect(d.info.geometry).toEqual({ cylinders: 0, heads: 255, sectorsPerTrack: 63 });
    assertSameSectors(d, raw);
    d.close();
  });

  it("a CRLF descriptor mixing FLAT extents at offsets with a ZERO extent", () => {
    const f = path.join(flatDir, "mixed.vmdk");
    fs.writeFileSync(f, ["# Disk DescriptorFile", 'createType="custom"', 'RW 2048 FLAT "disk-flat.vmdk" 4096',
      "RW 1024 ZERO", 'RDONLY 4096 FLAT "disk-flat.vmdk" 0', ""].join("\r\n"));
    const want = Buffer.concat([raw.subarray(2 * MiB, 3 * MiB), Buffer.alloc(512 * KiB), raw.subarray(0, 2 * MiB)]);
    const d = openImage(f);
    assertSameSectors(d, want);
    d.close();
  });

  it("refuses an ESXi snapshot delta (VMFSSPARSE extent) with a clear message", () => {
    const f = path.join(flatDir, "snap-000001.vmdk");
    fs.writeFileSync(f, '# Disk DescriptorFile\nCID=12345678\nparentCID=fffffffe\ncreateType="vmfsSparse"\n' +
      'parentFileNameHint="esx.vmdk"\nRW 12297 VMFSSPARSE "snap-000001-delta.vmdk"\n');
    expect(refuses(f, "E_VMDK_SNAPSHOT_DELTA").message).toContain("consolidate");
  });
});

describe("twoGbMaxExtent disks span several extent files", () => {
  const WIDE = 2 * GiB + 3 * MiB;
  const regions: [number, Buffer][] = [
    [0, prng(11, 256 * KiB)], [2 * GiB - 96 * KiB, prng(12, 192 * KiB)], [WIDE - 64 * KiB, prng(13, 64 * KiB)],
  ];
  beforeAll(() => {
    const f = path.join(dir, "wide.raw");
    fs.writeFileSync(f, "");
    fs.truncateSync(f, WIDE);
    const fd = fs.openSync(f, "r+");
    for (const [at, b] of regions) fs.writeSync(fd, b, 0, b.length, at);
    fs.closeSync(fd);
  });
  for (const sub of ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"]) {
    it(`${sub} across the 2 GiB extent boundary`, () => {
      const out = path.join(dir, `wide-${sub}`, "w.vmdk");
      fs.mkdirSync(path.dirname(out), { recursive: true });
      sh("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", `subformat=${sub}`, path.join(dir, "wide.raw"), out]);
      const d = openImage(out);
      expect((d.info.details?.extents as unknown[]).length).toBe(2);
      expect(d.sectorCount * 512).toBe(WIDE);
      for (const [at, b] of regions) {
        expect(d.readBytes(at, b.length).equals(b)).toBe(true);
        if (at > 0) expect(d.readBytes(at - 4096, 4096).equals(Buffer.alloc(4096))).toBe(true);
      }
      // A zero stretch in the middle of each extent, and the last sector.
      expect(Buffer.from(d.read(1_000_000, 2048)).equals(Buffer.alloc(2048 * 512))).toBe(true);
      expect(Buffer.from(d.read(4_150_000, 2048)).equals(Buffer.alloc(2048 * 512))).toBe(true);
      expect(Buffer.from(d.read(d.sectorCount - 1, 1)).equals(regions[2][1].subarray(-512))).toBe(true);
      d.close();
    });
  }
});

describe("VMDK delta disks read through their parent", () => {
  it("a qemu-img delta with written sectors and zeroed grains (GTE 1) over a monolithicSparse parent", () => {
    const d0 = path.join(dir, "delta");
    fs.mkdirSync(d0);
    const base = path.join(d0, "base.vmdk"), top = path.join(d0, "top.vmdk");
    sh("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", path.join(dir, "disk.raw"), base]);
    sh("qemu-img", ["create", "-f", "vmdk", "-o", "zeroed_grain=on", "-b", "base.vmdk", "-F", "vmdk", top]);
    sh("qemu-io", ["-c", "write -P 0xab 1M 64k", "-c", "write -z 64k 64k", "-c", "write -P 0xcd 3100k 4k", top]);
    const b = fs.readFileSync(top);
    expect(gteOf(b, gtOf(b), 1)).toBe(1);                     // the zeroed grain really is GTE 1
    const want = Buffer.from(raw);
    want.fill(0xab, MiB, MiB + 64 * KiB);
    want.fill(0, 64 * KiB, 128 * KiB);
    want.fill(0xcd, 3100 * KiB, 3104 * KiB);
    const expected = path.join(d0, "expected.raw");
    sh("qemu-img", ["convert", "-O", "raw", top, expected]);
    expect(fs.readFileSync(expected).equals(want)).toBe(true);  // our model of the delta agrees with qemu
    const d = openImage(top);
    expect(d.info.parent?.format).toBe("vmdk");
    expect(d.info.details?.parentFileNameHint).toBe("base.vmdk");
    assertSameSectors(d, want);
    expect(d.info.findings).toEqual([]);
    d.close();
    // Writing to the parent changes its CID: the delta no longer matches.
    sh("qemu-io", ["-c", "write -P 0x11 0 512", base]);
    const d2 = openImage(top);
    expect(d2.info.findings.map((f) => f.code)).toEqual(["VMDK_PARENT_CID_MISMATCH"]);
    d2.close();
  });
});

/**
 * Rewrite qemu's streamOptimized file in the VMware stream layout (VMDK 1.1 "Stream-Optimized Compressed
 * Sparse Extents"): header with gdOffset = GD_AT_END, grains with markers, GT and GD markers, footer, EOS.
 * No Debian tool writes this layout (qemu-img puts the GD/GTs first), so the test re-lays qemu's real grains.
 */
function toVmwareStream(src: Buffer): Buffer {
  const out: Buffer[] = [];
  let sector = 0;
  const put = (b: Buffer) => { const p = Buffer.alloc(Math.ceil(b.length / 512) * 512); b.copy(p); out.push(p); sector += p.length / 512; };
  const marker = (numSectors: number, type: number) => {
    const m = Buffer.alloc(512); m.writeBigUInt64LE(BigInt(numSectors), 0); m.writeUInt32LE(type, 12); return m;
  };
  const hdr = Buffer.from(src.subarray(0, 512));
  const descOff = Number(hdr.readBigUInt64LE(28)), descSize = Number(hdr.readBigUInt64LE(36));
  const gdEntries = Math.ceil(Number(hdr.readBigUInt64LE(12)) / (128 * 512));
  hdr.writeBigUInt64LE(0n, 48);                                   // no redundant GD in a stream
  hdr.writeBigUInt64LE(0xffffffffffffffffn, 56);
  put(hdr);
  put(src.subarray(descOff * 512, (descOff + descSize) * 512));
  const gd = Buffer.alloc(gdEntries * 4);
  const gts: Buffer[] = [];
  for (let i = 0; i < gdEntries; i++) {
    const oldGt = src.readUInt32LE(gdOf(src) * 512 + i * 4);
    const gt = Buffer.alloc(2048);
    for (let j = 0; j < 512 && oldGt; j++) {
      const gte = gteOf(src, oldGt, j);
      if (gte === 0) continue;
      const size = src.readUInt32LE(gte * 512 + 8);
      gt.writeUInt32LE(sector, j * 4);
      put(src.subarray(gte * 512, gte * 512 + 12 + size));
    }
    gts.push(gt);
  }
  gts.forEach((gt, i) => { put(marker(4, 1)); gd.writeUInt32LE(sector, i * 4); put(gt); });
  put(marker(Math.ceil(gd.length / 512), 2));
  const gdSector = sector;
  put(gd);
  put(marker(1, 3));
  const footer = Buffer.from(hdr);
  footer.writeBigUInt64LE(BigInt(gdSector), 56);
  put(footer);
  put(Buffer.alloc(512));                                         // end-of-stream marker
  return Buffer.concat(out);
}

describe("streamOptimized with the footer (gdOffset GD_AT_END)", () => {
  let stream: string;
  beforeAll(() => {
    stream = path.join(dir, "vmware-stream.vmdk");
    fs.writeFileSync(stream, toVmwareStream(fs.readFileSync(convert("streamOptimized", "so-src"))));
  });
  it("reads every sector through the footer's grain directory", () => {
    expect(fs.readFileSync(stream).readBigUInt64LE(56)).toBe(0xffffffffffffffffn);
    const d = openImage(stream);
    expect(d.info.subformat).toBe("streamOptimized");
    assertSameSectors(d, raw);
    d.close();
  });
  it("refuses a stream whose footer was cut off (truncated download)", () => {
    const b = fs.readFileSync(stream);
    const f = path.join(dir, "cut-stream.vmdk");
    fs.writeFileSync(f, b.subarray(0, b.length - 4096));
    refuses(f, "E_VMDK_FOOTER");
  });
});

describe("hostile VMDK inputs are refused with ImageError", () => {
  let sparse: string, stream: string;
  beforeAll(() => {
    sparse = convert("monolithicSparse", "h-sparse");
    stream = convert("streamOptimized", "h-stream");
  });

  it("refuses a monolithicSparse file truncated to 300 bytes", () => {
    refuses(patched(sparse, "t300.vmdk", (b) => b.subarray(0, 300)), "E_TRUNCATED");
  });

  it("refuses reads from a monolithicSparse file truncated after its grain tables", () => {
    refuses(patched(sparse, "t128k.vmdk", (b) => b.subarray(0, 128 * KiB)), "E_VMDK_GRAIN_OFFSET", { read: true });
  });

  it("refuses a VMDK whose sparse header is zeroed", () => {
    refuses(patched(sparse, "zero-hdr.vmdk", (b) => { b.fill(0, 0, 512); }), "E_VMDK_MAGIC");
  });

  it("refuses a grain directory entry pointing past the end of the file (both GD copies)", () => {
    refuses(patched(sparse, "gd-past-eof.vmdk", (b) => {
      b.writeUInt32LE(0x7fffffff, gdOf(b) * 512);
      b.writeUInt32LE(0x7fffffff, Number(b.readBigUInt64LE(48)) * 512);
    }), "E_VMDK_GT_OFFSET");
  });

  it("falls back to the redundant grain directory when only the primary GD entry points past the end", () => {
    const f = patched(sparse, "gd1-past-eof.vmdk", (b) => { b.writeUInt32LE(0x7fffffff, gdOf(b) * 512); });
    const d = openImage(f);
    expect(d.info.findings.map((x) => x.code)).toEqual(["VMDK_REDUNDANT_GD_USED"]);
    assertSameSectors(d, raw);
    d.close();
  });

  it("reports an unclean shutdown flag as a finding and still reads", () => {
    const d = openImage(patched(sparse, "unclean.vmdk", (b) => { b[72] = 1; }));
    expect(d.info.findings.map((x) => x.code)).toEqual(["VMDK_UNCLEAN_SHUTDOWN"]);
    assertSameSectors(d, raw);
    d.close();
  });

  it("refuses numGTEsPerGT 2^31", () => {
    refuses(patched(sparse, "gtes.vmdk", (b) => { b.writeUInt32LE(2 ** 31, 44); }), "E_VMDK_GT_SIZE");
  });

  it("refuses grainSize 2^40 sectors", () => {
    refuses(patched(sparse, "grain.vmdk", (b) => { b.writeBigUInt64LE(2n ** 40n, 20); }), "E_VMDK_GRAIN_SIZE");
  });

  it("refuses a capacity of 2^50 sectors", () => {
    refuses(patched(sparse, "capacity.vmdk", (b) => { b.writeBigUInt64LE(2n ** 50n, 12); }), "E_SIZE_LIMIT");
  });

  it("refuses a compressed grain that inflates to 16 MiB (a zip bomb in a 64 KiB grain)", () => {
    const f = patched(stream, "bomb.vmdk", (b) => {
      const gte = gteOf(b, gtOf(b), 0);
      const bomb = zlib.deflateSync(Buffer.alloc(16 * MiB));
      expect(bomb.length).toBeLessThan(b.readUInt32LE(gte * 512 + 8));
      b.writeUInt32LE(bomb.length, gte * 512 + 8);
      bomb.copy(b, gte * 512 + 12);
    });
    refuses(f, "E_VMDK_GRAIN", { read: true });
  });

  it("refuses a descriptor whose extent names ../../etc/passwd (the file exists but lies outside the image folder)", () => {
    const inner = path.join(dir, "esc", "a", "b");
    fs.mkdirSync(inner, { recursive: true });
    fs.mkdirSync(path.join(dir, "esc", "etc"));
    fs.writeFileSync(path.join(dir, "esc", "etc", "passwd"), Buffer.alloc(MiB));
    const f = path.join(inner, "evil.vmdk");
    fs.writeFileSync(f, '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n' +
      'RW 2048 FLAT "../../etc/passwd" 0\n');
    const e = refuses(f, "E_EXTENT_MISSING");
    expect(e.message).toContain("../../etc/passwd");
  });

  it("refuses a delta whose parent chain loops (a -> b -> a)", () => {
    const d0 = path.join(dir, "loop");
    fs.mkdirSync(d0);
    const a = path.join(d0, "a.vmdk"), b = path.join(d0, "b.vmdk");
    sh("qemu-img", ["create", "-f", "vmdk", b, "1M"]);
    sh("qemu-img", ["create", "-f", "vmdk", "-b", "b.vmdk", "-F", "vmdk", a]);
    const buf = fs.readFileSync(b);
    const at = Number(buf.readBigUInt64LE(28)) * 512;
    const text = buf.subarray(at, buf.indexOf(0, at)).toString("latin1");
    const looped = text.replace("parentCID=ffffffff", 'parentCID=12345678\nparentFileNameHint="a.vmdk"');
    Buffer.from(looped, "latin1").copy(buf, at);
    fs.writeFileSync(b, buf);
    refuses(a, "E_PARENT_LOOP");
  });

  it("refuses a delta whose parent file is missing", () => {
    const d0 = path.join(dir, "orphan");
    fs.mkdirSync(d0);
    sh("qemu-img", ["create", "-f", "vmdk", path.join(d0, "p.vmdk"), "1M"]);
    sh("qemu-img", ["create", "-f", "vmdk", "-b", "p.vmdk", "-F", "vmdk", path.join(d0, "c.vmdk")]);
    fs.rmSync(path.join(d0, "p.vmdk"));
    refuses(path.join(d0, "c.vmdk"), "E_PARENT_MISSING");
  });

  it("refuses a descriptor listing 20000 extents", () => {
    const f = path.join(dir, "many.vmdk");
    fs.writeFileSync(f, '# Disk DescriptorFile\ncreateType="twoGbMaxExtentFlat"\n' + 'RW 1 ZERO\n'.repeat(20000));
    refuses(f, "E_VMDK_EXTENTS");
  });

  it("refuses a raw device mapping extent (VMFSRDM)", () => {
    const f = path.join(dir, "rdm.vmdk");
    fs.writeFileSync(f, '# Disk DescriptorFile\ncreateType="vmfsRawDeviceMap"\nRW 2048 VMFSRDM "disk-rdm.vmdk"\n');
    refuses(f, "E_VMDK_EXTENT_TYPE");
  });

  it("refuses a flat extent shorter than the descriptor says", () => {
    const flat = convert("monolithicFlat", "h-flat");
    fs.truncateSync(path.join(path.dirname(flat), "disk-flat.vmdk"), MiB);
    refuses(flat, "E_VMDK_EXTENT_TRUNCATED");
  });

  it("refuses a descriptor line of binary garbage", () => {
    const f = path.join(dir, "garbage.vmdk");
    fs.writeFileSync(f, Buffer.concat([Buffer.from("# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\n"), Buffer.from([1, 2, 3, 0x0a])]));
    refuses(f, "E_VMDK_DESCRIPTOR");
  });
});
