// ext2/3/4 reader against filesystems made by mke2fs -d from a real directory tree (extents,
// 64bit, metadata_csum, flex_bg, meta_bg, inline_data, 1 KiB blocks, classic indirect maps, htree
// directories), inside a GPT disk, and damaged in named ways with debugfs and byte edits.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource } from "../images/source.ts";
import { ImageError } from "../images/errors.ts";
import { PartitionView, resolvePath, readFileAt, type FileHandle, type FileSystem } from "../images/fs.ts";
import { readLayout } from "../images/layout.ts";
import { openExt4, probeExt4 } from "../images/ext4.ts";
import { prng, sh, shAsync, tmpdir, rawDisk } from "./helpers.ts";

const SPARSE_SIZE = 80 * 1024 * 1024;
/** Ten data islands: more extents than i_block holds (4), so the extent tree needs an index node. */
const SPARSE_AT = [0, 5 * 1024 * 1024 + 100, 9 << 20, 13 << 20, 17 << 20, 21 << 20, 33 << 20, 45 << 20, 70 * 1024 * 1024, SPARSE_SIZE - 3000];

/** The source tree every variant is built from. */
function makeTree(root: string): void {
  const w = (p: string, data: string | Buffer) => { fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true }); fs.writeFileSync(path.join(root, p), data); };
  w("etc/fstab", "UUID=1234 / ext4 defaults 0 1\n");
  w("boot/grub/grub.cfg", "set timeout=5\nmenuentry 'Debian' { linux /vmlinuz root=/dev/sda1 }\n");
  w("boot/vmlinuz-6.1.0", prng(7, 3 * 1024 * 1024 + 1234));
  w("a/b/c/d/e/deep.txt", "deep file\n");
  w("tiny.txt", "twenty bytes inline\n");
  w("small/one", "1"); w("small/two", "22");
  w("empty", "");
  w(`long/${"L".repeat(200)}-${"n".repeat(54)}`, "long name\n");
  w("unicode/grüße-ファイル.txt", "utf8 name\n");
  const sp = path.join(root, "sparse.bin");
  const fd = fs.openSync(sp, "w");
  fs.ftruncateSync(fd, SPARSE_SIZE);
  for (const [i, at] of SPARSE_AT.entries()) fs.writeSync(fd, prng(100 + i, 2000), 0, 2000, at);
  fs.closeSync(fd);
  fs.mkdirSync(path.join(root, "many"));
  for (let i = 0; i < 2000; i++) fs.writeFileSync(path.join(root, "many", `file-${String(i).padStart(4, "0")}.conf`), `entry ${i}\n`);
  fs.symlinkSync("/boot/vmlinuz-6.1.0", path.join(root, "vmlinuz"));
  fs.symlinkSync("vmlinuz-6.1.0", path.join(root, "boot/vmlinuz"));
  fs.symlinkSync("../../etc/fstab", path.join(root, "a/b/up-fstab"));
  fs.symlinkSync("/" + "x/".repeat(60) + "slow-symlink-target", path.join(root, "slowlink"));
  fs.linkSync(path.join(root, "boot/vmlinuz-6.1.0"), path.join(root, "boot/hardlink"));
}

let SRC = "";
let DIR = "";

/** Compare the whole filesystem with the source tree: names, types, sizes, bytes, link targets, hard links. */
function compareTree(fsys: FileSystem, dev: BlockDevice): number {
  let files = 0;
  const ids = new Map<number, string | number | undefined>();
  const walk = (h: FileHandle, rel: string): void => {
    const names = fsys.readdir(h).filter((n) => n !== "lost+found").sort();
    expect(names, rel).toEqual(fs.readdirSync(path.join(SRC, rel)).sort());
    for (const n of names) {
      const p = path.join(SRC, rel, n);
      const c = fsys.lookup(h, n)!;
      const st = fsys.stat(c);
      const ls = fs.lstatSync(p);
      if (ls.isSymbolicLink()) {
        expect(st.type).toBe("symlink");
        expect(fsys.readlink(c)).toBe(fs.readlinkSync(p));
      } else if (ls.isDirectory()) {
        expect(st.type).toBe("dir");
        walk(c, path.join(rel, n));
      } else {
        files++;
        expect(st.type, p).toBe("file");
        expect(st.size, p).toBe(ls.size);
        if (ls.nlink > 1) {
          if (ids.has(ls.ino)) expect(st.id).toBe(ids.get(ls.ino)); else ids.set(ls.ino, st.id);
        }
        if (ls.size <= 4 * 1024 * 1024) expect(fsys.read(c, 0, ls.size).equals(fs.readFileSync(p)), p).toBe(true);
        if (ls.size > 0 && ls.size < 8 * 1024 * 1024 && (rel !== "many" || files % 97 === 0)) {
          // The extents must name the sectors holding the file's bytes on the disk.
          const ex = fsys.extents(c);
          const bytes = Buffer.concat(ex.map((e) => Buffer.from(dev.read(e.lba, e.count))));
          const want = fs.readFileSync(p);
          if (bytes.length >= want.length && bytes.subarray(0, want.length).equals(want)) {
            expect(ex.reduce((a, e) => a + e.count, 0) * 512).toBeLessThan(want.length + 4096);
          } else {
            // Inline data: the extent is the inode's own sector, which holds the bytes.
            expect(ex.length).toBe(1);
            expect(bytes.includes(want.subarray(0, Math.min(want.length, 40))), `inline extent of ${p}`).toBe(true);
          }
        }
      }
    }
  };
  walk(fsys.root(), ".");
  return files;
}

/** Non-zero blocks of the sparse source, in order, each clipped at the file size (what mke2fs allocates). */
function sparseAllocated(bs: number): Buffer {
  const src = fs.readFileSync(path.join(SRC, "sparse.bin"));
  const zero = Buffer.alloc(bs);
  const parts: Buffer[] = [];
  for (let o = 0; o < src.length; o += bs) {
    const b = src.subarray(o, Math.min(o + bs, src.length));
    if (!b.equals(zero.subarray(0, b.length))) parts.push(b);
  }
  return Buffer.concat(parts);
}

const VARIANTS: { name: string; cmd: string; args: string[]; kind: string; bs: number }[] = [
  { name: "ext4 (64bit, metadata_csum, flex_bg, extents)", cmd: "mkfs.ext4", args: ["-b", "4096", "-O", "64bit,metadata_csum"], kind: "ext4", bs: 4096 },
  { name: "ext4 with 1 KiB blocks, 32-bit descriptors", cmd: "mkfs.ext4", args: ["-b", "1024", "-O", "^64bit"], kind: "ext4", bs: 1024 },
  { name: "ext4 with inline_data", cmd: "mkfs.ext4", args: ["-b", "4096", "-O", "inline_data"], kind: "ext4", bs: 4096 },
  { name: "ext4 without extents, 1024-byte inodes", cmd: "mkfs.ext4", args: ["-b", "4096", "-O", "^extent,^flex_bg,^64bit", "-I", "1024"], kind: "ext4", bs: 4096 },
  { name: "ext4 with meta_bg", cmd: "mkfs.ext4", args: ["-b", "1024", "-O", "meta_bg,^resize_inode"], kind: "ext4", bs: 1024 },
  { name: "ext2 with 1 KiB blocks, 128-byte inodes (triple indirect)", cmd: "mkfs.ext2", args: ["-b", "1024", "-I", "128"], kind: "ext2", bs: 1024 },
  { name: "ext3", cmd: "mkfs.ext3", args: ["-b", "4096"], kind: "ext3", bs: 4096 },
];

const imgOf = (v: (typeof VARIANTS)[number]) => path.join(DIR, `${v.name.replace(/\W+/g, "_")}.img`);
const mkfsArgs = (v: (typeof VARIANTS)[number], file: string, size: string) =>
  ["-q", "-F", "-L", "root", "-U", "0fd0c1a2-3b4c-4d5e-8f60-718293a4b5c6", "-E", "root_owner=0:0", ...v.args, "-d", SRC, file, size];

beforeAll(async () => {
  DIR = tmpdir("bootgate-ext4-");
  SRC = path.join(DIR, "src");
  fs.mkdirSync(SRC);
  makeTree(SRC);
  // mke2fs spends its time in I/O: build every variant at once.
  await Promise.all([
    // e2fsck -D rebuilds directories as hash trees (mke2fs -d writes linear ones); exit 1 = "fixed".
    ...VARIANTS.map(async (v) => {
      await shAsync(v.cmd, mkfsArgs(v, imgOf(v), "48M"));
      await shAsync("bash", ["-c", 'e2fsck -fyD "$1" >/dev/null; [ $? -le 1 ]', "e2fsck", imgOf(v)]);
    }),
    shAsync(VARIANTS[0].cmd, mkfsArgs(VARIANTS[0], path.join(DIR, "part.img"), "40M")),
  ]);
});

describe("ext2/3/4 built by mke2fs -d", () => {
  for (const v of VARIANTS) {
    it(`reads back the whole tree: ${v.name}`, () => {
      const img = imgOf(v);
      // The fixture really has what this test claims to read (checked with debugfs).
      expect(sh("debugfs", ["-R", "htree /many", img])).toContain("Root node dump");
      if (!v.args.some((a) => a.includes("^extent")) && v.cmd === "mkfs.ext4") {
        expect(sh("debugfs", ["-R", "ex /sparse.bin", img])).toMatch(/^ 1\/ 1 /m);
      }
      const dev = rawDisk(img);
      try {
        expect(probeExt4(dev)).toBe(true);
        const fsys = openExt4(dev);
        expect(fsys.kind).toBe(v.kind);
        expect(fsys.label).toBe("root");
        expect(fsys.uuid).toBe("0fd0c1a2-3b4c-4d5e-8f60-718293a4b5c6");
        expect(fsys.details.blockSize).toBe(v.bs);
        expect(dev.info.findings).toEqual([]);
        expect(compareTree(fsys, dev)).toBe(2000 + 12);
        // Symlinks resolve inside the filesystem (absolute, relative, through ..).
        expect(readFileAt(fsys, "/vmlinuz", 1 << 24)!.equals(fs.readFileSync(path.join(SRC, "boot/vmlinuz-6.1.0")))).toBe(true);
        expect(readFileAt(fsys, "/a/b/up-fstab", 4096)!.toString()).toContain("UUID=1234");
        expect(resolvePath(fsys, "/boot/vmlinuz")).toBeDefined();
        if (v.args.includes("inline_data")) {
          // Small files live in the inode: their extent is the inode's sector, with the bytes inside it.
          const ex = fsys.extents(resolvePath(fsys, "/tiny.txt")!);
          expect(Buffer.from(dev.read(ex[0].lba, 1)).indexOf("twenty bytes inline")).toBeGreaterThan(0);
        }
        // Sparse file: holes read as zeros; only the written blocks are mapped.
        const sp = resolvePath(fsys, "/sparse.bin")!;
        expect(fsys.stat(sp).size).toBe(SPARSE_SIZE);
        for (const [i, at] of SPARSE_AT.entries()) expect(fsys.read(sp, at, 2000).equals(prng(100 + i, 2000))).toBe(true);
        expect(fsys.read(sp, 30 * 1024 * 1024, 4096).every((x) => x === 0)).toBe(true);
        const ex = fsys.extents(sp);
        const mapped = Buffer.concat(ex.map((e) => Buffer.from(dev.read(e.lba, e.count))));
        const want = sparseAllocated(v.bs);
        expect(mapped.subarray(0, want.length).equals(want)).toBe(true);
        expect(mapped.length).toBeLessThan(want.length + 512);
        // Large directory (htree with dir_index): every entry found, lookups hit.
        const many = resolvePath(fsys, "/many")!;
        expect(fsys.readdir(many).length).toBe(2000);
        expect(fsys.read(fsys.lookup(many, "file-1999.conf")!, 0, 100).toString()).toBe("entry 1999\n");
        expect(fsys.lookup(many, "FILE-1999.conf")).toBeUndefined();
        expect(fsys.lookup(many, "nope")).toBeUndefined();
        // Reads at offsets and past the end.
        const k = resolvePath(fsys, "/boot/vmlinuz-6.1.0")!;
        expect(fsys.read(k, 3 * 1024 * 1024 + 1000, 1000).equals(prng(7, 3 * 1024 * 1024 + 1234).subarray(3 * 1024 * 1024 + 1000))).toBe(true);
        expect(fsys.read(k, 10 * 1024 * 1024, 10).length).toBe(0);
      } finally { dev.close(); }
    });
  }

  it("maps extents to whole-disk LBAs for ext4 inside a GPT partition", () => {
    const img = path.join(DIR, "part.img"), disk = path.join(DIR, "gpt-disk.img");
    sh("truncate", ["-s", "48M", disk]);
    sh("sfdisk", ["-q", disk], { input: "label: gpt\nstart=2048, size=81920, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n" });
    sh("dd", [`if=${img}`, `of=${disk}`, "bs=1M", "seek=1", "conv=notrunc", "status=none"]);
    const dev = rawDisk(disk);
    try {
      const layout = readLayout(dev);
      const p = layout.partitions[0];
      expect(p.content.kind).toBe("ext4");
      const fsys = openExt4(new PartitionView(dev, p.startLba, p.sectorCount));
      const h = resolvePath(fsys, "/boot/grub/grub.cfg")!;
      const ex = fsys.extents(h);
      expect(ex.length).toBe(1);
      expect(ex[0].lba).toBeGreaterThanOrEqual(2048);
      const want = fs.readFileSync(path.join(SRC, "boot/grub/grub.cfg"));
      expect(Buffer.from(dev.read(ex[0].lba, ex[0].count)).subarray(0, want.length).equals(want)).toBe(true);
    } finally { dev.close(); }
  });
});

// ---- hostile input -------------------------------------------------------------------------------

function codeOf(f: () => unknown): string {
  try { f(); } catch (e) { if (e instanceof ImageError) return e.code; throw e; }
  return "no error";
}

/** A fresh small ext4 image, then `edit` applied to its bytes. */
function damaged(name: string, edit: (b: Buffer, img: string) => void): string {
  const v = VARIANTS[0];
  const img = path.join(DIR, `bad-${name}.img`);
  const srcSmall = path.join(DIR, "small-src");
  if (!fs.existsSync(srcSmall)) {
    fs.mkdirSync(path.join(srcSmall, "sub"), { recursive: true });
    fs.writeFileSync(path.join(srcSmall, "big"), prng(3, 300 * 1024));
    fs.writeFileSync(path.join(srcSmall, "sub/f"), "x");
  }
  const base = path.join(DIR, "base-small.img");
  if (!fs.existsSync(base)) sh(v.cmd, ["-q", "-F", ...v.args, "-d", srcSmall, base, "4M"]);
  fs.copyFileSync(base, img);
  const b = fs.readFileSync(img);
  edit(b, img);
  fs.writeFileSync(img, b);
  return img;
}

function openCode(img: string, action: (f: FileSystem) => unknown = () => 0): string {
  const dev = rawDisk(img);
  try { return codeOf(() => action(openExt4(dev))); } finally { dev.close(); }
}

/** debugfs "imap": byte offset of an inode in the image. */
function inodeOffset(img: string, p: string): number {
  const out = sh("debugfs", ["-R", `imap ${p}`, img]);
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(out)!;
  const bs = /Block size:\s+(\d+)/.exec(sh("dumpe2fs", ["-h", img]))![1];
  return Number(m[1]) * Number(bs) + parseInt(m[2], 16);
}

const SB = 1024;

describe("ext hostile input", () => {
  it("refuses a zeroed superblock", () => {
    expect(openCode(damaged("zero", (b) => b.fill(0, SB, SB + 1024)))).toBe("E_EXT4_SUPERBLOCK");
  });
  it("refuses an unknown INCOMPAT bit 0x80000000 and names it", () => {
    const img = damaged("incompat", (b) => b.writeUInt32LE((b.readUInt32LE(SB + 0x60) | 0x80000000) >>> 0, SB + 0x60));
    const dev = rawDisk(img);
    try { openExt4(dev); expect.unreachable(); } catch (e) {
      expect((e as ImageError).code).toBe("E_EXT4_UNSUPPORTED_FEATURE");
      expect((e as ImageError).kind).toBe("unsupported");
      expect((e as Error).message).toContain("0x80000000");
    } finally { dev.close(); }
  });
  it("refuses the compression INCOMPAT feature by name", () => {
    const img = damaged("compression", (b) => b.writeUInt32LE(b.readUInt32LE(SB + 0x60) | 1, SB + 0x60));
    expect(openCode(img)).toBe("E_EXT4_UNSUPPORTED_FEATURE");
  });
  it("refuses s_log_block_size 20", () => {
    expect(openCode(damaged("logbs", (b) => b.writeUInt32LE(20, SB + 0x18)))).toBe("E_EXT4_SUPERBLOCK");
  });
  it("refuses s_inodes_per_group 2^32-1", () => {
    expect(openCode(damaged("ipg", (b) => b.writeUInt32LE(0xffffffff, SB + 0x28)))).toBe("E_EXT4_SUPERBLOCK");
  });
  it("refuses s_inode_size 100", () => {
    expect(openCode(damaged("isize", (b) => b.writeUInt16LE(100, SB + 0x58)))).toBe("E_EXT4_SUPERBLOCK");
  });
  it("refuses s_blocks_count 2^32-1 on a 4 MiB device", () => {
    expect(openCode(damaged("bcount", (b) => b.writeUInt32LE(0xffffffff, SB + 0x04)))).toMatch(/E_EXT4_(TRUNCATED|SUPERBLOCK)/);
  });
  it("refuses an image truncated to half its size", () => {
    const img = damaged("trunc", () => undefined);
    fs.truncateSync(img, 2 * 1024 * 1024);
    expect(openCode(img)).toBe("E_EXT4_TRUNCATED");
  });
  it("reports a bad superblock checksum as a finding and keeps reading", () => {
    const img = damaged("sbcsum", (b) => { b[SB + 0x3fc] ^= 0xff; });
    const dev = rawDisk(img);
    try {
      const f = openExt4(dev);
      expect(dev.info.findings.map((x) => x.code)).toEqual(["EXT4_SUPERBLOCK_CHECKSUM"]);
      expect(f.readdir(f.root())).toContain("big");
    } finally { dev.close(); }
  });
  it("reports needs_recovery as a finding", () => {
    const img = damaged("recover", (b) => b.writeUInt32LE(b.readUInt32LE(SB + 0x60) | 4, SB + 0x60));
    const dev = rawDisk(img);
    try { openExt4(dev); expect(dev.info.findings.map((x) => x.code)).toContain("EXT4_NEEDS_RECOVERY"); } finally { dev.close(); }
  });
  it("refuses a group descriptor whose inode table lies past the end", () => {
    // Group 0's descriptor is in the block after the superblock: bg_inode_table_lo at +8.
    expect(openCode(damaged("gdt", (b) => b.writeUInt32LE(0x7fffffff, 4096 + 8)))).toBe("E_EXT4_GROUP_DESC");
  });
  it("refuses an extent header with a bad magic", () => {
    let off = 0;
    const img = damaged("extmagic", (b, f) => { off = inodeOffset(f, "/big"); b.writeUInt16LE(0x1234, off + 0x28); });
    expect(openCode(img, (f) => f.read(f.lookup(f.root(), "big")!, 0, 10))).toBe("E_EXT4_EXTENT");
  });
  it("refuses an extent node claiming 65535 entries", () => {
    const img = damaged("extcount", (b, f) => { b.writeUInt16LE(65535, inodeOffset(f, "/big") + 0x28 + 2); });
    expect(openCode(img, (f) => f.extents(f.lookup(f.root(), "big")!))).toBe("E_EXT4_EXTENT");
  });
  it("ends an extent tree whose index block points at itself (a tree loop)", () => {
    const img = damaged("extloop", (b, f) => {
      const loopBlock = 900;                                   // a free block of the 4 MiB, 4 KiB-block image
      const node = Buffer.alloc(24);
      node.writeUInt16LE(0xf30a, 0); node.writeUInt16LE(1, 2); node.writeUInt16LE(340, 4); node.writeUInt16LE(1, 6);
      node.writeUInt32LE(0, 12); node.writeUInt32LE(loopBlock, 16);
      node.copy(b, loopBlock * 4096);
      const root = Buffer.from(node.subarray(0, 24)); root.writeUInt16LE(4, 4); root.writeUInt16LE(2, 6);
      root.copy(b, inodeOffset(f, "/big") + 0x28);
    });
    expect(openCode(img, (f) => f.read(f.lookup(f.root(), "big")!, 0, 10))).toBe("E_EXT4_EXTENT");
  });
  it("refuses an extent pointing past the last block", () => {
    const img = damaged("extrange", (b, f) => { b.writeUInt32LE(0x7ffffff0, inodeOffset(f, "/big") + 0x28 + 12 + 8); });
    expect(openCode(img, (f) => f.read(f.lookup(f.root(), "big")!, 0, 10))).toBe("E_EXT4_BLOCK_RANGE");
  });
  it("refuses a directory entry whose rec_len is 0", () => {
    const img = damaged("reclen", (b, f) => {
      const blk = Number(sh("debugfs", ["-R", "bmap /sub 0", f]).trim());
      b.writeUInt16LE(0, blk * 4096 + 4);
    });
    expect(openCode(img, (f) => f.readdir(f.lookup(f.root(), "sub")!))).toBe("E_EXT4_DIRENT");
  });
  it("refuses a directory entry naming inode 2^32-1", () => {
    const img = damaged("direntino", (b, f) => {
      const blk = Number(sh("debugfs", ["-R", "bmap /sub 0", f]).trim());
      b.writeUInt32LE(0xffffffff, blk * 4096 + 24);              // the entry after "." (12) and ".." (12)
    });
    expect(openCode(img, (f) => f.readdir(f.lookup(f.root(), "sub")!))).toBe("E_EXT4_DIRENT");
  });
  it("ends a directory loop (a subdirectory linked back to the root) in E_FS_PATH_DEPTH", () => {
    const img = damaged("dirloop", () => undefined);
    sh("debugfs", ["-w", "-R", "ln / /sub/loop", img]);
    expect(openCode(img, (f) => resolvePath(f, "/sub/loop/sub/loop/sub/big"))).toBe("no error");
    expect(openCode(img, (f) => resolvePath(f, "/" + "sub/loop/".repeat(200) + "big"))).toBe("E_FS_PATH_DEPTH");
  });
  it("refuses an inode whose size high word makes it larger than 2^53 bytes", () => {
    const img = damaged("isizehi", (b, f) => { b.writeUInt32LE(0xffffffff, inodeOffset(f, "/big") + 0x6c); });
    expect(openCode(img, (f) => f.stat(f.lookup(f.root(), "big")!))).toBe("E_EXT4_INODE");
  });
});
