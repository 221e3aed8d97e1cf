// XFS v5 and v4 filesystems made by mkfs.xfs from a prototype file (and edited with xfs_db -x for
// holes and damage), read back through the XFS reader, on a GPT partition and as a whole device.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import { PartitionView, resolvePath, type FileHandle, type FileSystem } from "../images/fs.ts";
import { openXfs, probe } from "../images/xfs.ts";
import { ImageError } from "../images/errors.ts";
import type { BlockDevice } from "../images/block.ts";
import { prng, sh, tmpdir } from "./helpers.ts";
import { mkfsXfs, protoFor } from "./linux-disk.ts";

const MANY = 2000;
const LONG_NAME = "L".repeat(200) + "-long-name-" + "z".repeat(44); // 255 bytes, XFS's maximum
const LONG_TARGET = "/" + Array.from({ length: 70 }, (_, i) => `dir${i}`).join("/") + "/end"; // > inline room

interface Want { type: "file" | "dir" | "symlink"; data?: Buffer; target?: string }

/** Build the source tree on the host; returns what each guest path must hold. */
function buildTree(root: string): Map<string, Want> {
  const want = new Map<string, Want>();
  const file = (p: string, data: Buffer) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), data);
    want.set("/" + p, { type: "file", data });
  };
  const link = (p: string, target: string) => {
    fs.symlinkSync(target, path.join(root, p));
    want.set("/" + p, { type: "symlink", target });
  };
  file("etc/hostname", Buffer.from("rocky9\n"));
  file("etc/fstab", Buffer.from("/dev/mapper/rootvg-root / xfs defaults 0 0\n"));
  file("boot/grub2/grub.cfg", prng(7, 5000));
  file("boot/vmlinuz-5.14.0", prng(11, 3 * 1024 * 1024 + 123));
  file("a/b/c/d/e/deep.txt", Buffer.from("deep\n"));
  file(`long/${LONG_NAME}`, Buffer.from("long name\n"));
  file("empty", Buffer.alloc(0));
  file("sparse", prng(13, 8192));
  for (let i = 0; i < MANY; i++) file(`many/entry-${String(i).padStart(5, "0")}-with-a-rather-long-name`, Buffer.from(`n${i}\n`));
  for (let i = 0; i < 150; i++) file(`leafdir/leaf-${String(i).padStart(4, "0")}-name`, Buffer.from(`l${i}`));
  for (let i = 0; i < 20; i++) file(`blockdir/block-entry-number-${i}-${"q".repeat(i * 5)}`, Buffer.from(`b${i}`));
  link("etc/localtime", "/etc/hostname");
  link("boot/host", "../etc/hostname");
  link("longlink", LONG_TARGET);
  for (const d of ["etc", "boot", "boot/grub2", "a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "long", "many", "leafdir", "blockdir"]) {
    want.set("/" + d, { type: "dir" });
  }
  return want;
}

const xfsDb = (img: string, cmds: string[], expert = false): string =>
  sh("xfs_db", [...(expert ? ["-x"] : ["-r"]), ...cmds.flatMap((c) => ["-c", c]), img]);

function expectCode(fn: () => unknown, code: string): void {
  try { fn(); } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    expect((e as ImageError).code).toBe(code);
    return;
  }
  throw new Error(`expected ImageError ${code}`);
}

/** Every path below `dir`, bounded. */
function walkFs(xfs: FileSystem, dir: FileHandle, prefix: string, out: Map<string, FileHandle>): void {
  for (const name of xfs.readdir(dir)) {
    const h = xfs.lookup(dir, name)!;
    const p = `${prefix}/${name}`;
    out.set(p, h);
    if (out.size > 10_000) throw new Error("walk too large");
    if (xfs.stat(h).type === "dir") walkFs(xfs, h, p, out);
  }
}

function compareTree(xfs: FileSystem, want: Map<string, Want>, skip: string[] = []): void {
  const got = new Map<string, FileHandle>();
  walkFs(xfs, xfs.root(), "", got);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [p, w] of want) {
    if (skip.includes(p)) continue;
    const h = got.get(p)!;
    const st = xfs.stat(h);
    expect(st.type, p).toBe(w.type);
    if (w.type === "file" && p !== "/sparse") {
      expect(st.size, p).toBe(w.data!.length);
      expect(xfs.read(h, 0, st.size).equals(w.data!), p).toBe(true);
    }
    if (w.type === "symlink") expect(xfs.readlink(h), p).toBe(w.target);
  }
}

/** Concatenate the whole-disk sectors `extents` names. */
function readDiskRuns(disk: BlockDevice, runs: { lba: number; count: number }[]): Buffer {
  return Buffer.concat(runs.map((r) => Buffer.from(disk.read(r.lba, r.count))));
}

describe("XFS reader", () => {
  const dir = tmpdir("bootgate-xfs-");
  let want: Map<string, Want>;
  let v5img: string, v4img: string, gptImg: string, proto: string;
  const ino = (img: string, p: string): number => Number(/inode (\d+)/.exec(xfsDb(img, [`path ${p}`, "stack"]))?.[1] ?? NaN);

  beforeAll(() => {
    const src = path.join(dir, "src");
    want = buildTree(src);
    proto = path.join(dir, "proto");
    fs.writeFileSync(proto, protoFor(src));
    v5img = path.join(dir, "v5.img");
    mkfsXfs(v5img, 96, proto, ["-L", "rootfs"]);
    // Punch a hole before and after /sparse's data (mkfs.xfs 6.1 writes files densely).
    xfsDb(v5img, ["path /sparse", "write u3.bmx[0].startoff 256", `write core.size ${256 * 4096 + 8192 + 100}`], true);
    v4img = path.join(dir, "v4.img");
    mkfsXfs(v4img, 96, proto, ["-m", "crc=0", "-i", "size=256", "-n", "ftype=0"]);
    gptImg = path.join(dir, "gpt.img");
    sh("truncate", ["-s", "100M", gptImg]);
    sh("sgdisk", ["-n", "1:2048:+97M", "-t", "1:8300", gptImg]);
    sh("dd", [`if=${v5img}`, `of=${gptImg}`, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("uses every directory format and a B+tree data fork (per xfs_db)", () => {
    const fmt = (p: string) => xfsDb(v5img, [`path ${p}`, "print core.format"]).trim();
    expect(fmt("/many")).toMatch(/btree/);
    expect(fmt("/leafdir")).toMatch(/extents/);
    expect(fmt("/blockdir")).toMatch(/extents/);
    expect(fmt("/etc")).toMatch(/local/);
    expect(fmt("/longlink")).toMatch(/extents/);
    expect(fmt("/etc/localtime")).toMatch(/local/);
  });

  it("reads a v5 filesystem on a GPT partition: tree, contents, symlinks, extents", () => {
    const disk = openImage(gptImg);
    try {
      const part = readLayout(disk).partitions[0];
      expect(part.content.kind).toBe("xfs");
      const view = new PartitionView(disk, part.startLba, part.sectorCount);
      expect(probe(view)).toBe(true);
      const xfs = openXfs(view);
      expect(xfs.label).toBe("rootfs");
      expect(xfs.uuid).toBe(part.content.uuid);
      expect(xfs.sb.version).toBe(5);
      expect(xfs.findings.filter((f) => f.code === "XFS_CRC_MISMATCH")).toEqual([]);
      // mkfs.xfs 6.1 writes v5 remote symlink blocks without their XSLM header (xfs_repair -n
      // reports "Metadata CRC error ... xfs_symlink block"); the kernel refuses them, and so do we.
      compareTree(xfs, want, ["/longlink"]);
      expectCode(() => xfs.readlink(resolvePath(xfs, "/longlink", false)!), "E_XFS_SYMLINK");
      expect(xfs.readdir(resolvePath(xfs, "/many")!)).toHaveLength(MANY);
      // Symlinks resolve inside the filesystem, absolute and relative.
      const host = resolvePath(xfs, "/etc/hostname")!;
      expect(xfs.stat(resolvePath(xfs, "/etc/localtime")!).id).toBe(xfs.stat(host).id);
      expect(xfs.stat(resolvePath(xfs, "/boot/host")!).id).toBe(xfs.stat(host).id);
      expect(xfs.stat(resolvePath(xfs, "/boot/host", false)!).type).toBe("symlink");
      // Inode numbers agree with xfs_db.
      expect(xfs.stat(resolvePath(xfs, "/boot/vmlinuz-5.14.0")!).id).toBe(ino(v5img, "/boot/vmlinuz-5.14.0"));
      // extents() names whole-disk sectors that hold the file's bytes.
      const k = resolvePath(xfs, "/boot/vmlinuz-5.14.0")!;
      const size = xfs.stat(k).size;
      const runs = xfs.extents(k);
      expect(runs[0].lba).toBeGreaterThanOrEqual(part.startLba);
      expect(readDiskRuns(disk, runs).subarray(0, size).equals(want.get("/boot/vmlinuz-5.14.0")!.data!)).toBe(true);
      // A partial read in the middle.
      expect(xfs.read(k, 1_000_000, 10).equals(want.get("/boot/vmlinuz-5.14.0")!.data!.subarray(1_000_000, 1_000_010))).toBe(true);
      // The B+tree directory's blocks are mapped too.
      expect(xfs.extents(resolvePath(xfs, "/many")!).length).toBeGreaterThan(1);
    } finally { disk.close(); }
  });

  it("reads holes as zeros and leaves them out of extents()", () => {
    const disk = openImage(v5img);
    try {
      const xfs = openXfs(disk);
      const h = resolvePath(xfs, "/sparse")!;
      const st = xfs.stat(h);
      expect(st.size).toBe(256 * 4096 + 8192 + 100);
      const all = xfs.read(h, 0, st.size);
      expect(all.subarray(0, 256 * 4096).every((b) => b === 0)).toBe(true);
      expect(all.subarray(256 * 4096, 256 * 4096 + 8192).equals(want.get("/sparse")!.data!)).toBe(true);
      expect(all.subarray(256 * 4096 + 8192).every((b) => b === 0)).toBe(true);
      const runs = xfs.extents(h);
      expect(runs.reduce((t, r) => t + r.count, 0)).toBe(8192 / 512); // the tail past the data is a hole
      expect(readDiskRuns(disk, runs).subarray(0, 8192).equals(want.get("/sparse")!.data!)).toBe(true);
    } finally { disk.close(); }
  });

  it("reads a v4 filesystem with 256-byte inodes and no ftype", () => {
    const disk = openImage(v4img);
    try {
      const xfs = openXfs(disk);
      expect(xfs.sb.version).toBe(4);
      expect(xfs.sb.inodeSize).toBe(256);
      expect(xfs.sb.ftype).toBe(false);
      expect(xfs.findings.map((f) => f.code)).toContain("XFS_V4_FORMAT");
      const v4want = new Map(want);
      v4want.delete("/sparse");
      v4want.set("/sparse", { type: "file" });
      compareTree(xfs, v4want);
      expect(xfsDb(v4img, ["path /many", "print core.format"])).toMatch(/btree/);
    } finally { disk.close(); }
  });

  describe("hostile images", () => {
    let small: string;
    const variant = (name: string, patch: (b: Buffer) => void): string => {
      const f = path.join(dir, name);
      const b = fs.readFileSync(small);
      patch(b);
      fs.writeFileSync(f, b);
      return f;
    };
    const open = (f: string) => {
      const d = openImage(f);
      try { const x = openXfs(d); x.readdir(x.root()); return x; } finally { d.close(); }
    };
    beforeAll(() => {
      const src = path.join(dir, "small-src");
      fs.mkdirSync(path.join(src, "d1/d2"), { recursive: true });
      for (let i = 0; i < 1200; i++) fs.writeFileSync(path.join(src, "d1", `file-${i}-${"n".repeat(60)}`), `x${i}`);
      fs.writeFileSync(path.join(src, "d1/d2/f"), "f");
      const p = path.join(dir, "small.proto");
      fs.writeFileSync(p, protoFor(src));
      small = path.join(dir, "small.img");
      mkfsXfs(small, 32, p);
    });

    it("refuses a zeroed superblock", () => {
      expectCode(() => open(variant("zero.img", (b) => b.fill(0, 0, 512))), "E_XFS_SUPERBLOCK");
    });
    it("refuses a superblock whose block size has a flipped bit (4097)", () => {
      expectCode(() => open(variant("bs.img", (b) => b.writeUInt32BE(4097, 4))), "E_XFS_SUPERBLOCK");
    });
    it("refuses a superblock whose AG count is 2^32-1", () => {
      expectCode(() => open(variant("agc.img", (b) => b.writeUInt32BE(0xffffffff, 88))), "E_XFS_SUPERBLOCK");
    });
    it("refuses a superblock whose inode size disagrees with inodes per block", () => {
      expectCode(() => open(variant("isz.img", (b) => b.writeUInt16BE(1024, 104))), "E_XFS_SUPERBLOCK");
    });
    it("refuses an image truncated to 1 MiB", () => {
      const f = path.join(dir, "trunc.img");
      fs.copyFileSync(small, f);
      fs.truncateSync(f, 1024 * 1024);
      expectCode(() => open(f), "E_XFS_TRUNCATED");
    });
    it("refuses a root inode whose magic has a flipped bit", () => {
      // Root inode 128 = AG 0, block 16, slot 0 with 512-byte inodes in 4 KiB blocks.
      expectCode(() => open(variant("rootmagic.img", (b) => { b[16 * 4096] ^= 0x01; })), "E_XFS_INODE");
    });
    it("refuses a file whose extent count is 4,000,000 (larger than its fork)", () => {
      const f = path.join(dir, "nextents.img");
      fs.copyFileSync(small, f);
      xfsDb(f, ["path /d1/d2/f", "write core.nextents 4000000"], true);
      const d = openImage(f);
      try {
        const x = openXfs(d);
        expectCode(() => x.read(resolvePath(x, "/d1/d2/f")!, 0, 1), "E_XFS_BMAP");
      } finally { d.close(); }
    });
    it("refuses a directory entry pointing at an inode outside the filesystem", () => {
      const f = path.join(dir, "badino.img");
      fs.copyFileSync(small, f);
      xfsDb(f, ["path /d1/d2", "write u3.sfdir3.list[0].inumber.i4 4000000000"], true);
      const d = openImage(f);
      try {
        const x = openXfs(d);
        const h = resolvePath(x, "/d1/d2")!;
        expectCode(() => x.stat(x.lookup(h, "f")!), "E_XFS_INODE");
      } finally { d.close(); }
    });
    it("does not loop on a directory whose entry points back at its parent", () => {
      const f = path.join(dir, "dirloop.img");
      fs.copyFileSync(small, f);
      const d1 = ino(small, "/d1");
      xfsDb(f, ["path /d1/d2", `write u3.sfdir3.list[0].inumber.i4 ${d1}`], true);
      const d = openImage(f);
      try {
        const x = openXfs(d);
        const h = resolvePath(x, "/d1/d2/f/d2/f/d2/f")!;
        expect(x.stat(h).id).toBe(d1);
        expect(x.stat(h).type).toBe("dir");
      } finally { d.close(); }
    });
    it("refuses a bmap B+tree block that points at itself", () => {
      const x0 = ino(small, "/d1");
      expect(xfsDb(small, ["path /d1", "print core.format"])).toMatch(/btree/);
      const leaf = Number(/ptrs\[1\] = (\d+)/.exec(xfsDb(small, ["path /d1", "print u3.bmbt.ptrs"]))?.[1]);
      expect(leaf).toBeGreaterThan(0);
      const f = variant("bmbtloop.img", (b) => {
        const inoPos = Math.floor(x0 / 8) * 4096 + (x0 % 8) * 512; // AG 0
        b.writeUInt16BE(2, inoPos + 176);                             // root level 2
        const blk = leaf * 4096;                                      // leaf block in AG 0
        b.writeUInt16BE(1, blk + 4);                                  // now claims level 1
        const maxrecs = (4096 - 72) / 16;
        b.writeUInt32BE(0, blk + 72 + maxrecs * 8);                   // ptr[1] = itself
        b.writeUInt32BE(leaf, blk + 72 + maxrecs * 8 + 4);
      });
      const d = openImage(f);
      try {
        const x = openXfs(d);
        expectCode(() => x.readdir(resolvePath(x, "/d1")!), "E_XFS_BMAP");
      } finally { d.close(); }
    });
  });
});
