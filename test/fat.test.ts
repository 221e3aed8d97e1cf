// FAT12/16/32 reader against volumes made by mkfs.fat and filled by mtools (mmd, mcopy -s) from a
// real directory tree: long names, case-insensitive lookup, 2000 entries in one directory, a
// volume inside an MBR partition, and damaged BPBs, FAT chains and directories.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource } from "../images/source.ts";
import { ImageError } from "../images/errors.ts";
import { PartitionView, resolvePath, readFileAt, type FileHandle, type FileSystem } from "../images/fs.ts";
import { readLayout } from "../images/layout.ts";
import { openFat, probeFat } from "../images/fat.ts";
import { prng, sh, shAsync, tmpdir, rawDisk } from "./helpers.ts";

const BIG = prng(11, 3 * 1024 * 1024 + 777);

function makeTree(root: string): void {
  const w = (p: string, data: string | Buffer) => { fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true }); fs.writeFileSync(path.join(root, p), data); };
  w("EFI/BOOT/BOOTX64.EFI", prng(5, 70000));
  w("EFI/debian/grub.cfg", "search.fs_uuid 1234 root\nconfigfile $prefix/grub.cfg\n");
  w("a/b/c/d/deep.txt", "deep\n");
  w("README.TXT", "short 8.3 name\n");
  w("Mixed Case Name With Spaces.conf", "long name\n");
  w(`long/${"x".repeat(200)}-end.txt`, "very long name\n");
  w("unicode/grüße-ファイル.txt", "utf16 name\n");
  w("empty", "");
  w("big.bin", BIG);
  fs.mkdirSync(path.join(root, "many"));
  // Names whose 8.3 aliases differ in the base (mtools' ~N alias search is quadratic otherwise);
  // the 4-letter extension still needs a long-name entry for each.
  for (let i = 0; i < 2000; i++) fs.writeFileSync(path.join(root, "many", `f${i}.conf`), `entry ${i}\n`);
}

let DIR = "", SRC = "";

const VARIANTS = [
  { kind: "fat12", mkfs: ["-F", "12", "-s", "8"], kib: 12 * 1024 },
  { kind: "fat16", mkfs: ["-F", "16", "-s", "4"], kib: 64 * 1024 },
  { kind: "fat32", mkfs: ["-F", "32", "-s", "1"], kib: 64 * 1024 },
];
const imgOf = (kind: string) => path.join(DIR, `${kind}.img`);

async function buildFat(file: string, mkfs: string[], kib: number): Promise<void> {
  await shAsync("mkfs.fat", [...mkfs, "-n", "BOOTGATE", "-i", "1234abcd", "-C", file, String(kib)]);
  const entries = fs.readdirSync(SRC).map((n) => path.join(SRC, n));
  await shAsync("mcopy", ["-s", "-i", file, ...entries, "::/"]);
}

beforeAll(async () => {
  DIR = tmpdir("bootgate-fat-");
  SRC = path.join(DIR, "src");
  fs.mkdirSync(SRC);
  makeTree(SRC);
  await Promise.all(VARIANTS.map((v) => buildFat(imgOf(v.kind), v.mkfs, v.kib)));
});

function compareTree(fsys: FileSystem, dev: BlockDevice): number {
  let files = 0;
  const walk = (h: FileHandle, rel: string): void => {
    const names = fsys.readdir(h).sort();
    expect(names, rel).toEqual(fs.readdirSync(path.join(SRC, rel)).sort());
    for (const n of names) {
      const p = path.join(SRC, rel, n);
      const c = fsys.lookup(h, n)!;
      const st = fsys.stat(c);
      const ls = fs.statSync(p);
      if (ls.isDirectory()) { expect(st.type).toBe("dir"); walk(c, path.join(rel, n)); continue; }
      files++;
      expect(st.type).toBe("file");
      expect(st.size, p).toBe(ls.size);
      const want = fs.readFileSync(p);
      expect(fsys.read(c, 0, ls.size).equals(want), p).toBe(true);
      if (rel === "many" && files % 97 !== 0) continue;       // extents of a sample of the 2000
      const ex = fsys.extents(c);
      const bytes = Buffer.concat(ex.map((e) => Buffer.from(dev.read(e.lba, e.count))));
      expect(bytes.subarray(0, want.length).equals(want), `extents of ${p}`).toBe(true);
      expect(bytes.length).toBeLessThan(want.length + 512);
    }
  };
  walk(fsys.root(), ".");
  return files;
}

describe("FAT built by mkfs.fat + mcopy", () => {
  for (const v of VARIANTS) {
    it(`reads back the whole tree: ${v.kind}`, () => {
      const dev = rawDisk(imgOf(v.kind));
      try {
        expect(probeFat(dev)).toBe(true);
        const f = openFat(dev);
        expect(f.kind).toBe(v.kind);
        expect(f.label).toBe("BOOTGATE");
        expect(f.uuid).toBe("1234-ABCD");
        expect(dev.info.findings).toEqual([]);
        expect(compareTree(f, dev)).toBe(2000 + 9);
        // Case-insensitive lookup by long name, as firmware and vfat do.
        expect(readFileAt(f, "/efi/boot/bootx64.efi", 1 << 20)!.equals(prng(5, 70000))).toBe(true);
        expect(readFileAt(f, "/MIXED CASE NAME WITH SPACES.CONF", 100)!.toString()).toBe("long name\n");
        expect(resolvePath(f, "/many/F1999.CONF")).toBeDefined();
        expect(resolvePath(f, "/many/f2000.conf")).toBeUndefined();
        const many = resolvePath(f, "/many")!;
        expect(f.readdir(many).length).toBe(2000);
        // Reads at an offset across cluster boundaries.
        const big = resolvePath(f, "/big.bin")!;
        expect(f.read(big, 1_000_001, 200_000).equals(BIG.subarray(1_000_001, 1_200_001))).toBe(true);
        expect(f.read(big, BIG.length - 10, 100).length).toBe(10);
        expect(f.stat(big).id).not.toBe(f.stat(resolvePath(f, "/README.TXT")!).id);
      } finally { dev.close(); }
    });
  }

  it("maps files of a FAT32 volume inside an MBR partition to whole-disk LBAs", async () => {
    const vol = path.join(DIR, "part.img"), disk = path.join(DIR, "mbr-disk.img");
    await shAsync("mkfs.fat", ["-F", "32", "-n", "ESP", "-C", vol, String(40 * 1024)]);
    sh("mmd", ["-i", vol, "::/EFI", "::/EFI/BOOT"]);
    sh("mcopy", ["-i", vol, path.join(SRC, "EFI/BOOT/BOOTX64.EFI"), "::/EFI/BOOT/BOOTX64.EFI"]);
    sh("truncate", ["-s", "48M", disk]);
    sh("sfdisk", ["-q", disk], { input: "label: dos\nstart=2048, size=81920, type=c, bootable\n" });
    sh("dd", [`if=${vol}`, `of=${disk}`, "bs=1M", "seek=1", "conv=notrunc", "status=none"]);
    const dev = rawDisk(disk);
    try {
      const p = readLayout(dev).partitions[0];
      expect(p.content.kind).toBe("fat32");
      const f = openFat(new PartitionView(dev, p.startLba, p.sectorCount));
      const h = resolvePath(f, "/EFI/BOOT/BOOTX64.EFI")!;
      const ex = f.extents(h);
      expect(ex[0].lba).toBeGreaterThan(2048);
      const bytes = Buffer.concat(ex.map((e) => Buffer.from(dev.read(e.lba, e.count))));
      expect(bytes.subarray(0, 70000).equals(prng(5, 70000))).toBe(true);
    } finally { dev.close(); }
  });
});

// ---- hostile input -------------------------------------------------------------------------------

function codeOf(f: () => unknown): string {
  try { f(); } catch (e) { if (e instanceof ImageError) return e.code; throw e; }
  return "no error";
}

/** A small FAT volume (type `bits`) with a big file and a subdirectory, then `edit` applied to its bytes. */
function damaged(name: string, bits: 12 | 16 | 32, edit: (b: Buffer, f: FileSystem) => void): string {
  const img = path.join(DIR, `bad-${name}.img`);
  const base = path.join(DIR, `base-fat${bits}.img`);
  if (!fs.existsSync(base)) {
    sh("mkfs.fat", ["-F", String(bits), "-s", "1", "-C", base, String(bits === 32 ? 40 * 1024 : bits === 16 ? 4 * 1024 : 1024)]);
    sh("mmd", ["-i", base, "::/sub", "::/sub/inner"]);
    sh("mcopy", ["-i", base, path.join(SRC, "EFI/BOOT/BOOTX64.EFI"), "::/big"]);
  }
  fs.copyFileSync(base, img);
  const b = fs.readFileSync(img);
  const dev = rawDisk(img);
  try { edit(b, openFat(dev)); } finally { dev.close(); }
  fs.writeFileSync(img, b);
  return img;
}

function openCode(img: string, action: (f: FileSystem) => unknown = () => 0): string {
  const dev = rawDisk(img);
  try { return codeOf(() => action(openFat(dev))); } finally { dev.close(); }
}

/** First cluster of a file from its extents, and the byte offset of FAT entry `c` in the first FAT. */
function firstCluster(b: Buffer, f: FileSystem, p: string): number {
  const lba = f.extents(resolvePath(f, p)!)[0].lba;
  const bps = b.readUInt16LE(11), spc = b[13], rsv = b.readUInt16LE(14), nf = b[16], re = b.readUInt16LE(17);
  const fsz = b.readUInt16LE(22) || b.readUInt32LE(36);
  const data = rsv + nf * fsz + Math.ceil(re * 32 / bps);
  return (lba - data) / spc + 2;
}
const fat32At = (b: Buffer, c: number) => b.readUInt16LE(14) * 512 + 4 * c;

describe("FAT hostile input", () => {
  it("refuses a zeroed boot sector", () => {
    expect(openCode(damaged("zero", 16, (b) => b.fill(0, 0, 512)))).toBe("E_FAT_BPB");
  });
  it("refuses BPB_SecPerClus 3", () => {
    expect(openCode(damaged("spc", 16, (b) => { b[13] = 3; }))).toBe("E_FAT_BPB");
  });
  it("refuses BPB_BytsPerSec 0", () => {
    expect(openCode(damaged("bps", 32, (b) => b.writeUInt16LE(0, 11)))).toBe("E_FAT_BPB");
  });
  it("refuses BPB_FATSz32 0", () => {
    expect(openCode(damaged("fatsz", 32, (b) => b.writeUInt32LE(0, 36)))).toBe("E_FAT_BPB");
  });
  it("refuses BPB_TotSec32 2^32-1 on a 40 MiB device", () => {
    expect(openCode(damaged("totsec", 32, (b) => b.writeUInt32LE(0xffffffff, 32)))).toMatch(/E_FAT_(TRUNCATED|BPB)/);
  });
  it("refuses an image truncated to a quarter", () => {
    const img = damaged("trunc", 32, () => undefined);
    fs.truncateSync(img, 10 * 1024 * 1024);
    expect(openCode(img)).toBe("E_FAT_TRUNCATED");
  });
  it("refuses a FAT32 root cluster outside the volume", () => {
    expect(openCode(damaged("rootclus", 32, (b) => b.writeUInt32LE(0x0ffffff0, 44)))).toBe("E_FAT_BPB");
  });
  it("ends a file's cluster chain that loops back on itself in E_FAT_CHAIN_LOOP", () => {
    const img = damaged("loop", 32, (b, f) => {
      const c = firstCluster(b, f, "/big");
      b.writeUInt32LE(c, fat32At(b, c + 5));                   // the 6th cluster links back to the first
    });
    expect(openCode(img, (f) => f.read(resolvePath(f, "/big")!, 0, 70000))).toBe("E_FAT_CHAIN_LOOP");
  });
  it("ends a FAT16 chain that loops (FAT16 entries)", () => {
    const img = damaged("loop16", 16, (b, f) => {
      const c = firstCluster(b, f, "/big");
      b.writeUInt16LE(c + 2, b.readUInt16LE(14) * 512 + 2 * (c + 10));
    });
    expect(openCode(img, (f) => f.extents(resolvePath(f, "/big")!))).toBe("E_FAT_CHAIN_LOOP");
  });
  it("ends a FAT32 root directory whose chain loops in E_FAT_CHAIN_LOOP", () => {
    const img = damaged("rootloop", 32, (b) => b.writeUInt32LE(b.readUInt32LE(44), fat32At(b, b.readUInt32LE(44))));
    expect(openCode(img)).toBe("E_FAT_CHAIN_LOOP");
  });
  it("refuses a chain running into a free cluster", () => {
    const img = damaged("free", 32, (b, f) => { const c = firstCluster(b, f, "/big"); b.writeUInt32LE(0, fat32At(b, c + 3)); });
    expect(openCode(img, (f) => f.read(resolvePath(f, "/big")!, 0, 10))).toBe("E_FAT_CHAIN");
  });
  it("refuses a FAT12 chain naming cluster 0xFF0 beyond the volume", () => {
    const img = damaged("fat12range", 12, (b, f) => {
      const c = firstCluster(b, f, "/big");
      const off = b.readUInt16LE(14) * 512 + c + (c >> 1);
      const v = b.readUInt16LE(off);
      b.writeUInt16LE(c & 1 ? (v & 0x000f) | (0xff0 << 4) : (v & 0xf000) | 0xff0, off);
    });
    expect(openCode(img, (f) => f.read(resolvePath(f, "/big")!, 0, 10))).toBe("E_FAT_CHAIN");
  });
  it("refuses a file whose size is larger than its cluster chain", () => {
    const img = damaged("short", 32, (b, f) => { b.writeUInt32LE(10_000_000, Number(f.stat(resolvePath(f, "/big")!).id) + 28); });
    expect(openCode(img, (f) => f.read(resolvePath(f, "/big")!, 0, 10))).toBe("E_FAT_CHAIN");
  });
  it("ends a subdirectory linked back to the root (a directory loop) in E_FS_PATH_DEPTH", () => {
    const img = damaged("dirloop", 32, (b, f) => {
      const at = Number(f.stat(resolvePath(f, "/sub/inner")!).id);
      b.writeUInt16LE(0, at + 20); b.writeUInt16LE(b.readUInt32LE(44), at + 26);
    });
    expect(openCode(img, (f) => resolvePath(f, "/sub/inner/sub/inner/big"))).toBe("no error");
    expect(openCode(img, (f) => resolvePath(f, "/" + "sub/inner/".repeat(200) + "big"))).toBe("E_FS_PATH_DEPTH");
  });
  it("refuses a subdirectory entry naming its own directory's cluster", () => {
    const img = damaged("selfloop", 32, (b, f) => {
      const at = Number(f.stat(resolvePath(f, "/sub/inner")!).id);
      const sub = Number(f.stat(resolvePath(f, "/sub")!).id);
      b.copy(b, at + 20, sub + 20, sub + 22); b.copy(b, at + 26, sub + 26, sub + 28);
    });
    expect(openCode(img, (f) => f.readdir(resolvePath(f, "/sub")!))).toBe("E_FAT_DIR_LOOP");
  });
  it("reports a dirty FAT32 volume as a finding", () => {
    const img = damaged("dirty", 32, (b) => b.writeUInt32LE(0x07ffffff, fat32At(b, 1)));
    const dev = rawDisk(img);
    try { openFat(dev); expect(dev.info.findings.map((x) => x.code)).toEqual(["FAT_DIRTY"]); } finally { dev.close(); }
  });
  it("skips deleted entries and orphaned long-name entries", () => {
    const img = damaged("deleted", 16, (b, f) => {
      const at = Number(f.stat(resolvePath(f, "/big")!).id);
      b[at] = 0xe5;
    });
    const dev = rawDisk(img);
    try { const f = openFat(dev); expect(f.readdir(f.root()).sort()).toEqual(["sub"]); } finally { dev.close(); }
  });
});
