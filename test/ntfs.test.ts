// NTFS volumes made by the real mkntfs and populated through the real libntfs-3g (the library behind
// ntfs-3g and ntfscp, called via koffi because ntfsprogs has no mkdir/ln and FUSE mounts are not
// allowed), inside a GPT disk; read back and compared with the source bytes; then damaged.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { prng, sh, tmpdir } from "./helpers.ts";
import { ImageError } from "../images/errors.ts";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import { PartitionView, resolvePath, readFileAt, type FileSystem } from "../images/fs.ts";
import { openNtfs, probe, type NtfsFileSystem } from "../images/ntfs.ts";
import type { BlockDevice } from "../images/block.ts";
import { NtfsWriter } from "./ntfs-writer.ts";

// ---- the fixture ----
const LONG_DIR = "Program Files (x86) with a rather long directory name that goes on";
const LONG_FILE = "A file name of quite some length – ünïcödé 日本語 – to test UTF-16 names.txt";
const tree = new Map<string, Buffer>();
const SPARSE_AT = 3 * 1024 * 1024;
const LINK_NAMES = Array.from({ length: 12 }, (_, i) => `hard link number ${i} ${"x".repeat(180)}`);

function populate(w: NtfsWriter): void {
  const put = (p: string, b: Buffer) => { w.write(p, [[0, b]]); tree.set(p, b); };
  for (const d of ["/Windows", "/Windows/System32", "/Windows/System32/config", "/Windows/System32/drivers", "/Windows/System32/drivers/etc",
    `/${LONG_DIR}`, "/many", "/links", "/comp"]) w.mkdir(d);
  put("/Windows/System32/config/SYSTEM", prng(1, 300 * 1024));
  put("/Windows/System32/drivers/storvsc.sys", prng(2, 50 * 1024));
  put("/Windows/System32/drivers/etc/hosts", Buffer.from("127.0.0.1 localhost\r\n"));
  put(`/${LONG_DIR}/${LONG_FILE}`, prng(3, 3000));
  put("/empty.txt", Buffer.alloc(0));
  put("/Windows/LongFileName.txt", Buffer.from("has a DOS name"));
  w.dosName("/Windows/LongFileName.txt", "LONGFI~1.TXT");
  // sparse: 4 KiB of data at 3 MiB, a hole before it
  const tail = prng(4, 4096);
  w.write("/sparse.bin", [[SPARSE_AT, tail]]);
  tree.set("/sparse.bin", Buffer.concat([Buffer.alloc(SPARSE_AT), tail]));
  for (let i = 0; i < 2000; i++) put(`/many/file-${String(i).padStart(4, "0")}.txt`, Buffer.from(`file ${i}\n`));
  // hard links: one in another directory, and 12 long names that overflow the record ($ATTRIBUTE_LIST)
  put("/hard.txt", Buffer.from("linked twice"));
  w.link("/hard.txt", "/Windows/hard-link.txt");
  tree.set("/Windows/hard-link.txt", tree.get("/hard.txt")!);
  put("/links/target.bin", prng(7, 20000));
  for (const n of LINK_NAMES) { w.link("/links/target.bin", `/links/${n}`); tree.set(`/links/${n}`, tree.get("/links/target.bin")!); }
  // symbolic links of every flavour
  w.interix("/Windows/System32/lnk-interix", "config/SYSTEM");
  w.reparse("/abs-link", "symlink", "\\??\\C:\\Windows\\System32\\drivers\\storvsc.sys", "C:\\Windows\\System32\\drivers\\storvsc.sys");
  w.reparse("/rel-link", "symlink", "Windows\\System32\\drivers\\etc\\hosts", "Windows\\System32\\drivers\\etc\\hosts", true);
  w.reparse("/junction", "junction", "\\??\\C:\\Windows\\System32", "C:\\Windows\\System32", false, true);
  // compressed: a file created in a directory flagged compressed
  w.compressDir("/comp");
  w.write("/comp/c.txt", [[0, Buffer.alloc(65536, 0x41)]]);
  // fragmented: fill the volume, free every other 256 KiB, then write 5 MiB
  w.mkdir("/pad");
  const pads = w.fragmentFreeSpace("/pad", 256 * 1024);
  const big = prng(5, 5 * 1024 * 1024);
  w.write("/big.bin", [[0, big]]);
  tree.set("/big.bin", big);
  padNames = Array.from({ length: pads }, (_, i) => `pad-${i}`).filter((_, i) => i % 2 === 1);
}
let padNames: string[] = [];

let dir: string;
let diskFile: string;
let fsFile: string;
let startLba: number;

beforeAll(() => {
  dir = tmpdir("bootgate-ntfs-");
  fsFile = path.join(dir, "vol.ntfs");
  diskFile = path.join(dir, "disk.img");
  sh("truncate", ["-s", "96M", fsFile]);
  sh("mkntfs", ["-F", "-f", "-Q", "-L", "Windows", "-p", "2048", "-H", "255", "-S", "63", fsFile]);
  const w = new NtfsWriter(fsFile);
  try { populate(w); } finally { w.close(); }
  sh("truncate", ["-s", "100M", diskFile]);
  sh("sfdisk", ["-q", diskFile], { input: "label: gpt\nstart=2048, size=196608, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n" });
  sh("dd", [`if=${fsFile}`, `of=${diskFile}`, "bs=1M", "seek=1", "conv=notrunc", "status=none"]);
  startLba = 2048;
}, 60_000);

/** A bare NTFS volume file as a BlockDevice, patched by `edit` first (a private copy). */
function volume(edit?: (b: Buffer) => void): BlockDevice {
  if (!edit) return openImage(fsFile, { format: "raw" });
  const b = fs.readFileSync(fsFile);
  edit(b);
  const f = path.join(dir, `bad-${Math.random().toString(36).slice(2)}.ntfs`);
  fs.writeFileSync(f, b);
  return openImage(f, { format: "raw" });
}
const codeOf = (f: () => unknown): string => {
  try { f(); } catch (e) { if (e instanceof ImageError) return e.code; throw e; }
  return "no error";
};
const readAll = (v: FileSystem, p: string) => readFileAt(v, p, 64 * 1024 * 1024);

describe("NTFS reader on a libntfs-3g-made volume inside a GPT disk", () => {
  let disk: BlockDevice;
  let v: NtfsFileSystem;
  beforeAll(() => {
    disk = openImage(diskFile);
    const layout = readLayout(disk);
    const p = layout.partitions.find((x) => x.startLba === startLba)!;
    const view = new PartitionView(disk, p.startLba, p.sectorCount);
    expect(probe(view)).toBe(true);
    v = openNtfs(view);
  });

  it("reads the boot sector and $Volume", () => {
    expect(v.kind).toBe("ntfs");
    expect(v.label).toBe("Windows");
    expect(v.uuid).toMatch(/^[0-9A-F]{16}$/);
    expect(v.bpb.hiddenSectors).toBe(2048);
    expect(v.bpb.heads).toBe(255);
    expect(v.bpb.sectorsPerTrack).toBe(63);
    expect(v.version).toBe("3.1");
    expect(v.findings).toEqual([]);
    expect(v.mftRunCount).toBeGreaterThan(1);         // libntfs-3g grew the $MFT in pieces: records come from several runs
  });

  it("reads every file back byte for byte", () => {
    for (const [p, data] of tree) {
      const got = readAll(v, p);
      expect(got, p).toBeDefined();
      expect(got!.equals(data), p).toBe(true);
    }
    expect(v.read(resolvePath(v, "/big.bin")!, 5 * 1024 * 1024 - 10, 100).length).toBe(10);
  });

  it("lists directories as the source tree has them, 2000-entry index included", () => {
    expect(new Set(v.readdir(v.root()))).toEqual(new Set(["Windows", LONG_DIR, "many", "links", "comp", "empty.txt", "sparse.bin",
      "big.bin", "pad", "hard.txt", "abs-link", "rel-link", "junction"]));
    const many = v.readdir(resolvePath(v, "/many")!);
    expect(many.length).toBe(2000);
    expect(many).toEqual(Array.from({ length: 2000 }, (_, i) => `file-${String(i).padStart(4, "0")}.txt`).sort());
    expect(v.readdir(resolvePath(v, `/${LONG_DIR}`)!)).toEqual([LONG_FILE]);
    expect(new Set(v.readdir(resolvePath(v, "/links")!))).toEqual(new Set(["target.bin", ...LINK_NAMES]));
    expect(v.stat(resolvePath(v, "/Windows")!).type).toBe("dir");
  });

  it("looks names up case-insensitively, by DOS name too, and lists only the long name", () => {
    expect(readAll(v, "/WINDOWS/system32/CONFIG/system")!.equals(tree.get("/Windows/System32/config/SYSTEM")!)).toBe(true);
    expect(readAll(v, "/Windows/LONGFI~1.TXT")!.toString()).toBe("has a DOS name");
    const names = v.readdir(resolvePath(v, "/Windows")!);
    expect(names).toContain("LongFileName.txt");
    expect(names).not.toContain("LONGFI~1.TXT");
    const info = v.info(resolvePath(v, "/Windows/LongFileName.txt")!);
    expect(info.names.map((n) => [n.name, n.namespace]).sort()).toEqual([["LONGFI~1.TXT", 2], ["LongFileName.txt", 1]]);
    expect(resolvePath(v, "/windows/nonesuch")).toBeUndefined();
  });

  it("gives hard links one identity, even with names spread over extension records", () => {
    const a = v.stat(resolvePath(v, "/hard.txt")!), b = v.stat(resolvePath(v, "/Windows/hard-link.txt")!);
    expect(a.id).toBe(b.id);
    const t = resolvePath(v, "/links/target.bin")!;
    expect(v.info(t).names.length).toBe(13);           // 13 $FILE_NAME attributes cannot fit one 1 KiB record
    for (const n of LINK_NAMES) expect(v.stat(resolvePath(v, `/links/${n}`)!).id).toBe(v.stat(t).id);
  });

  it("reads Interix and reparse-point symlinks and junctions, and follows them inside the volume", () => {
    expect(v.readlink(resolvePath(v, "/Windows/System32/lnk-interix", false)!)).toBe("config/SYSTEM");
    expect(v.stat(resolvePath(v, "/Windows/System32/lnk-interix", false)!).type).toBe("symlink");
    expect(readAll(v, "/Windows/System32/lnk-interix")!.equals(tree.get("/Windows/System32/config/SYSTEM")!)).toBe(true);
    expect(v.readlink(resolvePath(v, "/abs-link", false)!)).toBe("/Windows/System32/drivers/storvsc.sys");
    expect(readAll(v, "/abs-link")!.equals(tree.get("/Windows/System32/drivers/storvsc.sys")!)).toBe(true);
    expect(v.readlink(resolvePath(v, "/rel-link", false)!)).toBe("Windows/System32/drivers/etc/hosts");
    expect(readAll(v, "/rel-link")!.toString()).toBe("127.0.0.1 localhost\r\n");
    const j = resolvePath(v, "/junction", false)!;
    expect(v.stat(j).type).toBe("symlink");
    expect(v.info(j).reparseTag).toBe(0xa0000003);
    expect(v.readlink(j)).toBe("/Windows/System32");
    expect(readAll(v, "/junction/drivers/etc/hosts")!.toString()).toBe("127.0.0.1 localhost\r\n");
  });

  it("marks sparse and compressed files; refuses to read compressed data", () => {
    const s = resolvePath(v, "/sparse.bin")!;
    expect(v.info(s).sparse).toBe(true);
    const ext = v.extents(s);
    expect(ext.reduce((n, e) => n + e.count, 0)).toBe(8);  // only the 4 KiB written
    const c = resolvePath(v, "/comp/c.txt")!;
    expect(v.info(c).compressed).toBe(true);
    expect(v.stat(c).size).toBe(65536);
    expect(codeOf(() => v.read(c, 0, 10))).toBe("E_NTFS_COMPRESSED");
  });

  it("maps file data to whole-disk LBAs (fragmented file included)", () => {
    for (const p of ["/big.bin", "/Windows/System32/config/SYSTEM", "/sparse.bin"]) {
      const h = resolvePath(v, p)!;
      const ext = v.extents(h);
      if (p === "/big.bin") expect(ext.length).toBeGreaterThan(1);
      const data = Buffer.concat(ext.map((e) => Buffer.from(disk.read(e.lba, e.count))));
      const src = tree.get(p)!;
      const nonZero = p === "/sparse.bin" ? src.subarray(SPARSE_AT) : src;
      expect(data.subarray(0, nonZero.length).equals(nonZero), p).toBe(true);
      for (const e of ext) expect(e.lba).toBeGreaterThanOrEqual(startLba);
    }
    const res = v.extents(resolvePath(v, "/Windows/System32/drivers/etc/hosts")!);
    expect(res.length).toBe(1);
    expect(Buffer.from(disk.read(res[0].lba, res[0].count)).includes(Buffer.from("127.0.0.1 localhost\r\n"))).toBe(true);
  });
});

describe("NTFS reader on hostile volumes", () => {
  const mftOffset = () => {
    const b = fs.readFileSync(fsFile).subarray(0, 512);
    return Number(b.readBigUInt64LE(0x30)) * b.readUInt16LE(0x0b) * b[0x0d];
  };
  it("refuses a zeroed boot sector", () => {
    expect(codeOf(() => openNtfs(volume((b) => b.fill(0, 0, 512))))).toBe("E_NTFS_BOOT");
  });
  it("refuses sectors per cluster 0 and an MFT record size of 2^31 bytes", () => {
    expect(codeOf(() => openNtfs(volume((b) => { b[0x0d] = 0; })))).toBe("E_NTFS_BOOT");
    expect(codeOf(() => openNtfs(volume((b) => { b[0x40] = 0xe1; })))).toBe("E_NTFS_BOOT");
  });
  it("refuses an $MFT LCN past the end of the volume", () => {
    expect(codeOf(() => openNtfs(volume((b) => b.writeBigUInt64LE(2n ** 40n, 0x30))))).toBe("E_NTFS_BOOT");
  });
  it("refuses MFT record 0 with a torn update sequence (fixup mismatch)", () => {
    expect(codeOf(() => openNtfs(volume((b) => { b[mftOffset() + 510] ^= 0xff; })))).toBe("E_NTFS_FIXUP");
  });
  it("refuses an $MFT runlist with a run header of 0xff", () => {
    const code = codeOf(() => openNtfs(volume((b) => {
      const r = mftOffset();
      let p = r + b.readUInt16LE(r + 20);
      while (b.readUInt32LE(p) !== 0x80) p += b.readUInt32LE(p + 4);
      b[p + b.readUInt16LE(p + 32)] = 0xff;
    })));
    expect(code).toBe("E_NTFS_RUNLIST");
  });
  it("refuses an attribute whose length runs past its record", () => {
    const code = codeOf(() => openNtfs(volume((b) => {
      const r = mftOffset();
      b.writeUInt32LE(0x7ffffff8, r + b.readUInt16LE(r + 20) + 4);
    })));
    expect(code).toBe("E_NTFS_ATTR");
  });
  it("ends a directory that contains itself (a loop) with a path-depth error, not a hang", () => {
    // point the /many index's first entry at the root directory's own record (5)
    const orig = new NtfsFileSystemProbe(volume());
    const manyRec = orig.record("/many"), fileRec = orig.record("/many/file-0000.txt");
    let patched = 0;
    const dev = volume((b) => {
      const needle = Buffer.from("file-0000.txt", "utf16le");
      for (let at = b.indexOf(needle); at >= 0; at = b.indexOf(needle, at + 1)) {
        const entry = at - 66 - 16;
        if (b.readUInt32LE(entry) === fileRec && b.readUInt32LE(at - 66) === manyRec && b.readUInt16LE(entry + 8) >= 82) {
          b.writeUInt32LE(5, entry); b.writeUInt16LE(0, entry + 4); patched++;
        }
      }
    });
    expect(patched).toBe(1);
    const v = openNtfs(dev);
    expect(v.stat(resolvePath(v, "/many/file-0000.txt")!).type).toBe("dir");
    const deep = "/many" + "/file-0000.txt/many".repeat(200);
    expect(codeOf(() => resolvePath(v, deep))).toBe("E_FS_PATH_DEPTH");
  });
  it("refuses a truncated volume image", () => {
    const f = path.join(dir, "trunc.ntfs");
    fs.writeFileSync(f, fs.readFileSync(fsFile).subarray(0, 1024 * 1024));
    let v: NtfsFileSystem | undefined;
    const code = codeOf(() => { v = openNtfs(openImage(f, { format: "raw" })); });
    if (v) {
      expect(v.findings.map((x) => x.code)).toContain("NTFS_TRUNCATED");
      expect(codeOf(() => readAll(v!, "/big.bin"))).toMatch(/^E_(NTFS_RANGE|READ_RANGE)$/);
    } else expect(code).toMatch(/^E_(NTFS_RANGE|READ_RANGE)$/);
  });
});

/** Helper: the MFT record number behind a path. */
class NtfsFileSystemProbe {
  private readonly v: NtfsFileSystem;
  constructor(dev: BlockDevice) { this.v = openNtfs(dev); }
  record(p: string): number { return this.v.stat(resolvePath(this.v, p)!).id as number; }
}
