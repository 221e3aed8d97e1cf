// qcow2 driver: qemu-img-made v2/v3, compressed, extended-L2 and odd-cluster-size images read back
// byte-identical to the raw original, backing chains written with qemu-io, and hostile inputs refused.
import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { openImage } from "../images/registry.ts";
import { ImageError } from "../images/errors.ts";
import type { BlockDevice } from "../images/block.ts";
import { tmpdir, sh, prng, sha256 } from "./helpers.ts";
import { assertSameSectors, refuses } from "./image-asserts.ts";

const KiB = 1024, MiB = 1024 * KiB;
const SIZE = 6 * MiB + 4608;        // not a whole cluster: the last cluster is partial
let dir: string;
let raw: Buffer;
let rawFile: string;

function makeRaw(): Buffer {
  const b = Buffer.alloc(SIZE);
  prng(21, MiB).copy(b, 0);                                        // [0,1M) random (stays uncompressed)
  Buffer.from("bootgate qcow2 cluster ".repeat(50000)).copy(b, 2 * MiB, 0, MiB);   // compressible
  prng(22, 40 * KiB).copy(b, 3 * MiB);                             // part of a cluster
  prng(23, 512).copy(b, 4 * MiB + 512);                            // one sector in a zero cluster
  prng(24, MiB + 4608).copy(b, 5 * MiB);                           // through the last sector
  return b;
}

const convert = (name: string, args: string[]): string => {
  const out = path.join(dir, name);
  sh("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", ...args, rawFile, out]);
  return out;
};

function patched(file: string, name: string, edit: (b: Buffer) => Buffer | void): string {
  const b = fs.readFileSync(file);
  const out = path.join(dir, name);
  fs.writeFileSync(out, edit(b) ?? b);
  return out;
}

/** qemu-img map entries (JSON) of an image. */
const qmap = (f: string): { start: number; length: number; data: boolean; offset?: number }[] =>
  JSON.parse(sh("qemu-img", ["map", "--output=json", f]));
const l1Of = (b: Buffer) => Number(b.readBigUInt64BE(40));
const l2Of = (b: Buffer, i = 0) => Number(b.readBigUInt64BE(l1Of(b) + i * 8) & 0x00fffffffffffe00n);

beforeAll(() => {
  dir = tmpdir("bootgate-qcow2-");
  raw = makeRaw();
  rawFile = path.join(dir, "disk.raw");
  fs.writeFileSync(rawFile, raw);
});

describe("qcow2 images made by qemu-img read back every sector", () => {
  const cases: [string, string[], Record<string, unknown>][] = [
    ["plain", [], { version: 3, clusterSize: 65536 }],
    ["compressed", ["-c"], { version: 3 }],
    ["compat-0.10", ["-o", "compat=0.10"], { version: 2 }],
    ["extended-l2", ["-o", "extended_l2=on"], { extendedL2: true }],
    ["cluster-512", ["-o", "cluster_size=512"], { clusterSize: 512 }],
    ["cluster-2M", ["-o", "cluster_size=2M"], { clusterSize: 2 * MiB }],
    ["compressed-4k", ["-c", "-o", "cluster_size=4096"], { clusterSize: 4096 }],
  ];
  for (const [name, args, details] of cases) {
    it(name, () => {
      const f = convert(`${name}.qcow2`, args);
      if (args.includes("-c")) {
        // qemu-img map shows compressed clusters as data without a host offset: make sure some exist.
        expect(qmap(f).some((m) => m.data && m.offset === undefined)).toBe(true);
      }
      const d = openImage(f);
      expect(d.format).toBe("qcow2");
      expect(d.info.details).toMatchObject(details);
      assertSameSectors(d, raw);
      expect(d.info.findings).toEqual([]);
      d.close();
    });
  }
});

describe("qcow2 backing chains", () => {
  let base: string;
  beforeAll(() => { base = convert("base.qcow2", []); });

  it("a top image written with qemu-io reads through to its backing file", () => {
    const top = path.join(dir, "top.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top]);
    sh("qemu-io", ["-c", "write -P 0xab 1M 64k", "-c", "write -z 64k 64k", "-c", "write -P 0xcd 3100k 4k", top]);
    const want = Buffer.from(raw);
    want.fill(0xab, MiB, MiB + 64 * KiB);
    want.fill(0, 64 * KiB, 128 * KiB);                               // v3 zero cluster hides the backing data
    want.fill(0xcd, 3100 * KiB, 3104 * KiB);
    sh("qemu-img", ["convert", "-O", "raw", top, path.join(dir, "top.raw")]);
    expect(fs.readFileSync(path.join(dir, "top.raw")).equals(want)).toBe(true);
    const d = openImage(top);
    expect(d.info.details).toMatchObject({ backingFile: "base.qcow2", backingFormat: "qcow2" });
    expect(d.info.parent?.format).toBe("qcow2");
    assertSameSectors(d, want);
    d.close();
  });

  it("extended L2 subclusters: a 4 KiB write leaves the rest of the cluster to the backing file", () => {
    const top = path.join(dir, "top-ext.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "-o", "extended_l2=on", "-b", "base.qcow2", "-F", "qcow2", top]);
    sh("qemu-io", ["-c", "write -P 0x5a 3076k 4k", "-c", "write -z 8k 2k", top]);
    const want = Buffer.from(raw);
    want.fill(0x5a, 3076 * KiB, 3080 * KiB);
    want.fill(0, 8 * KiB, 10 * KiB);
    const d = openImage(top);
    expect(d.info.details?.extendedL2).toBe(true);
    assertSameSectors(d, want);
    d.close();
  });

  it("a raw backing file (-F raw) and a smaller backing file read as zeros past its end", () => {
    const small = path.join(dir, "small.raw");
    fs.writeFileSync(small, raw.subarray(0, 2 * MiB));
    const top = path.join(dir, "over-raw.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "-b", "small.raw", "-F", "raw", top, String(SIZE)]);
    const want = Buffer.alloc(SIZE);
    raw.copy(want, 0, 0, 2 * MiB);
    const d = openImage(top);
    expect(d.info.parent?.format).toBe("raw");
    assertSameSectors(d, want);
    d.close();
  });

  it("a qcow2 over a VMDK parent", () => {
    sh("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", rawFile, path.join(dir, "vbase.vmdk")]);
    const top = path.join(dir, "over-vmdk.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "-b", "vbase.vmdk", "-F", "vmdk", top]);
    const d = openImage(top);
    expect(d.info.parent?.format).toBe("vmdk");
    assertSameSectors(d, raw);
    d.close();
  });
});

describe("qcow2 features that are refused or reported", () => {
  it("refuses an AES-encrypted qcow2 (crypt_method 1; LUKS is crypt_method 2, same check)", () => {
    // LUKS creation spends seconds benchmarking PBKDF2, so the fast legacy AES format stands in.
    const f = path.join(dir, "enc.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "--object", "secret,id=sec0,data=abc", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", f, "1M"]);
    expect(refuses(f, "E_QCOW2_ENCRYPTED").message).toContain("crypt_method 1");
  });

  it("refuses an external data file (incompatible feature bit 2)", () => {
    const f = path.join(dir, "datafile.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "-o", `data_file=${path.join(dir, "datafile.raw")}`, f, "1M"]);
    expect(refuses(f, "E_QCOW2_DATA_FILE").message).toContain("datafile.raw");
  });

  it("refuses zstd-compressed clusters (compression_type 1)", () => {
    const f = path.join(dir, "zstd.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "-o", "compression_type=zstd", f, "1M"]);
    refuses(f, "E_QCOW2_COMPRESSION");
  });

  it("refuses an unknown incompatible feature bit 10, naming the bit", () => {
    const f = patched(convert("feat.qcow2", []), "feat10.qcow2", (b) => { b[78] |= 0x04; });
    expect(refuses(f, "E_QCOW2_FEATURE").message).toContain("bit 10");
  });

  it("reports the dirty bit as a finding and still reads", () => {
    const f = patched(convert("dirty-src.qcow2", []), "dirty.qcow2", (b) => { b[79] |= 0x01; });
    const d = openImage(f);
    expect(d.info.findings.map((x) => x.code)).toEqual(["QCOW2_DIRTY"]);
    expect(d.info.findings[0].severity).toBe("warning");
    assertSameSectors(d, raw);
    d.close();
  });

  it("reports the corrupt bit (set by QEMU on overlapping metadata) as a finding", () => {
    const f = patched(convert("corrupt-src.qcow2", []), "corrupt-bit.qcow2", (b) => { b[79] |= 0x02; });
    const d = openImage(f);
    expect(d.info.findings.map((x) => x.code)).toEqual(["QCOW2_CORRUPT_FLAG"]);
    d.close();
  });

  it("reports internal snapshots", () => {
    const f = convert("snap.qcow2", []);
    sh("qemu-img", ["snapshot", "-c", "before", f]);
    const d = openImage(f);
    expect(d.info.findings.map((x) => x.code)).toEqual(["QCOW2_INTERNAL_SNAPSHOTS"]);
    d.close();
  });
});

describe("hostile qcow2 inputs are refused with ImageError", () => {
  let plain: string, comp: string;
  beforeAll(() => {
    plain = convert("h-plain.qcow2", []);
    comp = convert("h-comp.qcow2", ["-c"]);
  });

  it("refuses a qcow2 truncated to 50 bytes", () => {
    refuses(patched(plain, "t50.qcow2", (b) => b.subarray(0, 50)), "E_TRUNCATED");
  });

  it("refuses a qcow2 truncated before its L2 tables", () => {
    refuses(patched(plain, "t-l2.qcow2", (b) => b.subarray(0, l2Of(b))), "E_QCOW2_L2_OFFSET");
  });

  it("refuses reads from a qcow2 truncated after its metadata (data clusters gone)", () => {
    refuses(patched(plain, "t-data.qcow2", (b) => b.subarray(0, l2Of(b) + 65536)), "E_TRUNCATED", { read: true });
  });

  it("refuses a qcow2 whose header is zeroed (.qcow2 is never read as raw)", () => {
    refuses(patched(plain, "zero-hdr.qcow2", (b) => { b.fill(0, 0, 512); }), "E_QCOW2_MAGIC");
  });

  it("refuses cluster_bits 40", () => {
    refuses(patched(plain, "cb40.qcow2", (b) => { b.writeUInt32BE(40, 20); }), "E_QCOW2_CLUSTER_BITS");
  });

  it("refuses an L1 size of 2^31 entries", () => {
    refuses(patched(plain, "l1big.qcow2", (b) => { b.writeUInt32BE(2 ** 31, 36); }), "E_QCOW2_L1_SIZE");
  });

  it("refuses an L1 table too small for the virtual size", () => {
    refuses(patched(plain, "l1small.qcow2", (b) => { b.writeBigUInt64BE(2n ** 40n, 24); }), "E_QCOW2_L1_SIZE");
  });

  it("refuses an L1 entry pointing past the end of the file", () => {
    refuses(patched(plain, "l1eof.qcow2", (b) => { b.writeBigUInt64BE(0x8000_00ff_ffff_0000n, l1Of(b)); }), "E_QCOW2_L2_OFFSET");
  });

  it("refuses a virtual size of 2^60 bytes", () => {
    refuses(patched(plain, "huge.qcow2", (b) => { b.writeBigUInt64BE(2n ** 60n, 24); }), "E_SIZE_LIMIT");
  });

  it("refuses a compressed cluster that inflates to 16 MiB (a zip bomb in a 64 KiB cluster)", () => {
    const f = patched(comp, "bomb.qcow2", (b) => {
      // First compressed L2 entry: bit 62 set; host offset in bits 0..53 (cluster_bits 16).
      const l2 = l2Of(b);
      let e = 0n;
      for (let i = 0; i < 8192 && !(e >> 62n & 1n); i++) e = b.readBigUInt64BE(l2 + i * 8);
      expect(e >> 62n & 1n).toBe(1n);
      const off = Number(e & ((1n << 54n) - 1n));
      const nsec = Number((e >> 54n) & 0xffn) + 1;
      const bomb = zlib.deflateRawSync(Buffer.alloc(16 * MiB));
      expect(bomb.length).toBeGreaterThan(nsec * 512 - (off % 512));   // longer than the slot: grow the slot
      bomb.copy(b, off);
      const grown = (e & ~(0xffn << 54n)) | (BigInt(Math.ceil((bomb.length + off % 512) / 512) - 1) << 54n);
      for (let i = 0; i < 8192; i++) if (b.readBigUInt64BE(l2 + i * 8) === e) b.writeBigUInt64BE(grown, l2 + i * 8);
    });
    refuses(f, "E_QCOW2_COMPRESSED", { read: true });
  });

  it("refuses a backing-file loop (a -> b -> a)", () => {
    const a = path.join(dir, "loop-a.qcow2"), b = path.join(dir, "loop-b.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", b, "1M"]);
    sh("qemu-img", ["create", "-f", "qcow2", "-b", "loop-b.qcow2", "-F", "qcow2", a]);
    sh("qemu-img", ["rebase", "-u", "-b", "loop-a.qcow2", "-F", "qcow2", b]);
    refuses(a, "E_PARENT_LOOP");
  });

  it("refuses a backing file named ../../etc/passwd that exists outside the image folder", () => {
    const inner = path.join(dir, "esc", "a", "b");
    fs.mkdirSync(inner, { recursive: true });
    fs.mkdirSync(path.join(dir, "esc", "etc"));
    fs.writeFileSync(path.join(dir, "esc", "etc", "passwd"), Buffer.alloc(MiB));
    const f = path.join(inner, "evil.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", "-u", "-b", "../../etc/passwd", "-F", "raw", f, "1M"]);
    refuses(f, "E_PARENT_MISSING");
  });
});

describe("a 2.5 TiB sparse qcow2 opens as cheaply as a 128 MiB one", () => {
  it("opens both and reads their last sectors", () => {
    const small = path.join(dir, "s128m.qcow2"), big = path.join(dir, "big.qcow2");
    sh("qemu-img", ["create", "-f", "qcow2", small, "128M"]);
    sh("qemu-img", ["create", "-f", "qcow2", big, "2560G"]);
    sh("qemu-io", ["-c", "write -P 0x77 2621439M 1M", big]);
    const time = (f: string) => {
      const t0 = performance.now();
      const d = openImage(f);
      const last = Buffer.from(d.read(d.sectorCount - 1, 1));
      const ms = performance.now() - t0;
      d.close();
      return { ms, last, sectors: d.sectorCount };
    };
    const s = time(small), b = time(big);
    console.log(`qcow2 open + last-sector read: 128 MiB ${s.ms.toFixed(2)} ms, 2.5 TiB ${b.ms.toFixed(2)} ms`);
    expect(b.sectors).toBe(2560 * 2 * 1024 * 1024);
    expect(s.last.equals(Buffer.alloc(512))).toBe(true);
    expect(b.last.equals(Buffer.alloc(512, 0x77))).toBe(true);
  });
});
