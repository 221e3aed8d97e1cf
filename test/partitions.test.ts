// Partition tables made by the real tools (sfdisk, sgdisk, fdisk -b 4096, qemu-img resize), then
// damaged in named ways: EBR loops, absurd GPT sizes, bad CRCs, truncation, overlaps.
import { describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource } from "../images/source.ts";
import { readLayout, malformedLayout, type Layout } from "../images/layout.ts";
import { MAX_EBR_CHAIN } from "../images/limits.ts";
import { prng, sh, tmpdir, sha256, rawDisk } from "./helpers.ts";
import { ImageError } from "../images/errors.ts";

// A raw file as a BlockDevice with a chosen logical sector size. Built on block.ts directly (not
// registry.ts) because 4096-byte logical sectors need a device that says so.
function layoutOf(file: string, sectorSize = 512): Layout {
  const dev = rawDisk(file, sectorSize);
  try { return readLayout(dev); } finally { dev.close(); }
}

const codes = (l: Layout) => l.findings.map((f) => f.code);
const find = (l: Layout, code: string) => l.findings.find((f) => f.code === code);

function disk(dir: string, name: string, mib: number): string {
  const f = path.join(dir, name);
  sh("truncate", ["-s", `${mib}M`, f]);
  return f;
}

function patch(file: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(file, "r+");
  try { fs.writeSync(fd, bytes, 0, bytes.length, offset); } finally { fs.closeSync(fd); }
}

function readAt(file: string, offset: number, len: number): Buffer {
  const fd = fs.openSync(file, "r");
  try { const b = Buffer.alloc(len); fs.readSync(fd, b, 0, len, offset); return b; } finally { fs.closeSync(fd); }
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };

/** Rewrite one GPT header's fields, then fix its entry-array and header CRC32s, as a hostile tool would. */
function editGptHeader(file: string, lba: number, edit: (h: Buffer) => void, ss = 512): void {
  const h = readAt(file, lba * ss, ss);
  edit(h);
  const count = h.readUInt32LE(80), size = h.readUInt32LE(84);
  const entriesLba = Number(h.readBigUInt64LE(72));
  const bytes = count * size;
  if (bytes > 0 && bytes < 64 * 1024 * 1024) h.writeUInt32LE(zlib.crc32(readAt(file, entriesLba * ss, bytes)) >>> 0, 88);
  h.writeUInt32LE(0, 16);
  h.writeUInt32LE(zlib.crc32(h.subarray(0, h.readUInt32LE(12))) >>> 0, 16);
  patch(file, lba * ss, h);
}

const DOS_SCRIPT = [
  "label: dos", "label-id: 0x12345678",
  "start=2048, size=4096, type=83, bootable",
  "start=6144, size=2048, type=82",
  "start=8192, size=4096, type=7",
  "start=12288, type=5",
  "size=4096, type=83",
  "size=4096, type=8e",
].join("\n") + "\n";

const GPT_DISK_GUID = "11111111-2222-3333-4444-555555555555";
const P1_GUID = "AAAAAAAA-BBBB-CCCC-DDDD-000000000001";
const P2_GUID = "AAAAAAAA-BBBB-CCCC-DDDD-000000000002";
const P3_GUID = "AAAAAAAA-BBBB-CCCC-DDDD-000000000003";

// sgdisk and sfdisk sync the whole host on every write (about 1 s and 0.4 s here): each table is
// built once and copied per test.
const templates = new Map<string, string>();
function fromTemplate(dir: string, key: string, build: (file: string) => void): string {
  let t = templates.get(key);
  if (!t) {
    t = path.join(tmpdir(), key);
    build(t);
    templates.set(key, t);
  }
  const f = path.join(dir, key);
  fs.copyFileSync(t, f);
  return f;
}

function dosDisk(dir: string): string {
  return fromTemplate(dir, "dos.img", (f) => {
    sh("truncate", ["-s", "16M", f]);
    sh("sfdisk", ["-q", f], { input: DOS_SCRIPT });
  });
}

function sgdiskDisk(dir: string): string {
  return fromTemplate(dir, "gpt.img", buildGpt);
}

function buildGpt(f: string): void {
  sh("truncate", ["-s", "16M", f]);
  sh("sgdisk", [
    "-U", GPT_DISK_GUID,
    "-n", "1:2048:+1M", "-t", "1:EF02", "-c", "1:bios", "-u", `1:${P1_GUID}`, "-A", "1:set:2",
    "-n", "2:0:+4M", "-t", "2:EF00", "-c", "2:EFI System Partition", "-u", `2:${P2_GUID}`,
    "-n", "3:0:0", "-t", "3:8300", "-c", "3:root", "-u", `3:${P3_GUID}`,
    f,
  ]);
}

describe("MBR", () => {
  it("reads an sfdisk dos label: 3 primaries, an extended partition and 2 logicals through the EBR chain", () => {
    const dir = tmpdir();
    const f = dosDisk(dir);
    const oracle = JSON.parse(sh("sfdisk", ["-J", f])).partitiontable;
    const l = layoutOf(f);
    expect(l.partitioning).toBe("mbr");
    expect(l.mbr!.signature).toBe(0x12345678);
    expect(l.mbr!.hasBootSignature).toBe(true);
    expect(l.mbr!.bootCodeEmpty).toBe(true);
    expect(l.partitions.map((p) => [p.index, p.startLba, p.sectorCount, p.type])).toEqual(
      oracle.partitions.map((p: { node: string; start: number; size: number; type: string }) =>
        [Number(p.node.slice(f.length)), p.start, p.size, "0x" + p.type.padStart(2, "0")]));
    expect(l.partitions.map((p) => p.typeName)).toEqual(["Linux", "Linux swap / Solaris", "HPFS/NTFS/exFAT", "Extended", "Linux", "Linux LVM"]);
    expect(l.partitions[0].bootable).toBe(true);
    expect(l.partitions[3].extended).toBe(true);
    expect(l.partitions[4].logical).toBe(true);
    expect(l.mbr!.ebrChain).toEqual([12288, 18432]);
    expect(l.partitions[3].content.kind).toBe("extended");
    expect(l.findings).toEqual([]);                          // one active partition, no overlaps
  });

  it("reports a disk without an active partition and one with two (Gen1 MBR code)", () => {
    const dir = tmpdir();
    const none = disk(dir, "none.img", 4);
    sh("sfdisk", ["-q", none], { input: "label: dos\nstart=2048, size=2048, type=83\nstart=4096, size=2048, type=83\n" });
    expect(codes(layoutOf(none))).toEqual(["MBR_NO_ACTIVE_PARTITION"]);
    const two = disk(dir, "two.img", 4);
    sh("sfdisk", ["-q", two], { input: "label: dos\nstart=2048, size=2048, type=83, bootable\nstart=4096, size=2048, type=83, bootable\n" });
    const f = find(layoutOf(two), "MBR_MULTIPLE_ACTIVE")!;
    expect(f.message).toContain("partitions 1, 2");
  });

  it("stops at an EBR chain that loops back to the first EBR", () => {
    const dir = tmpdir();
    const f = dosDisk(dir);
    // Second EBR (LBA 18432): its link entry (slot 2) points to offset 0 of the extended partition = EBR 1.
    patch(f, 18432 * 512 + 0x1ce, Buffer.from([0, 0, 0, 0, 0x05, 0, 0, 0, ...u32(0), ...u32(2048)]));
    const before = sha256(f);
    const t0 = Date.now();
    const l = layoutOf(f);
    expect(Date.now() - t0).toBeLessThan(2000);
    const loop = find(l, "MBR_EBR_LOOP")!;
    expect(loop.severity).toBe("error");
    expect(loop.message).toContain("LBA 12288 after 2 records");
    expect(l.partitions.filter((p) => p.logical).map((p) => p.index)).toEqual([5, 6]);
    expect(malformedLayout(l)?.code).toBe("MBR_EBR_LOOP");
    expect(sha256(f)).toBe(before);                           // the input is never written
  });

  it("stops at an EBR that links to itself", () => {
    const dir = tmpdir();
    const f = dosDisk(dir);
    patch(f, 12288 * 512 + 0x1ce, Buffer.from([0, 0, 0, 0, 0x05, 0, 0, 0, ...u32(0), ...u32(2048)]));
    const l = layoutOf(f);
    expect(find(l, "MBR_EBR_LOOP")!.evidence.lba).toBe(12288);
    expect(l.partitions.filter((p) => p.logical)).toHaveLength(1);
  });

  it(`stops an EBR chain of 300 records at MAX_EBR_CHAIN (${MAX_EBR_CHAIN})`, () => {
    const dir = tmpdir();
    const f = disk(dir, "long.img", 4);
    sh("sfdisk", ["-q", f], { input: "label: dos\nstart=2048, size=4096, type=f\n" });
    for (let i = 0; i < 300; i++) {           // EBR i at 2048 + 2i: a 1-sector logical, a link to EBR i+1
      const s = Buffer.alloc(512);
      s.set([0, 0, 0, 0, 0x83, 0, 0, 0, ...u32(1), ...u32(1)], 0x1be);
      s.set([0, 0, 0, 0, 0x05, 0, 0, 0, ...u32(2 * (i + 1)), ...u32(2)], 0x1ce);
      s[510] = 0x55; s[511] = 0xaa;
      patch(f, (2048 + 2 * i) * 512, s);
    }
    const l = layoutOf(f);
    expect(codes(l)).toContain("MBR_EBR_CHAIN_TOO_LONG");
    expect(l.mbr!.ebrChain).toHaveLength(MAX_EBR_CHAIN);
    expect(l.partitions.filter((p) => p.logical)).toHaveLength(MAX_EBR_CHAIN);
  });

  it("reports an MBR partition past the end of a truncated disk, with the numbers", () => {
    const dir = tmpdir();
    const f = disk(dir, "trunc.img", 16);
    sh("sfdisk", ["-q", f], { input: "label: dos\nstart=2048, size=30720, type=83, bootable\n" });
    sh("truncate", ["-s", "8M", f]);
    const l = layoutOf(f);
    const p = find(l, "PART_PAST_END")!;
    expect(p.severity).toBe("error");
    expect(p.evidence).toMatchObject({ index: 1, start: 2048, sectors: 30720, end: 32767, last: 16383 });
    expect(p.remedy).toContain("qemu-img resize IMAGE 16777216");
    expect(l.partitions[0].content.kind).toBe("empty");      // probing stays inside the disk
  });

  it("reports overlapping MBR partitions with the overlap size", () => {
    const dir = tmpdir();
    const f = dosDisk(dir);
    patch(f, 0x1ce + 8, u32(5120));                             // partition 2 now starts inside partition 1
    const o = find(layoutOf(f), "PART_OVERLAP")!;
    expect(o.evidence).toMatchObject({ a: 1, aStart: 2048, aEnd: 6143, b: 2, bStart: 5120, sectors: 1024 });
    expect(find(layoutOf(f), "PART_OVERLAP")!.message).toContain("overlap by 1024 sectors");
  });

  it("reports a disk with no partition table and identifies what the whole disk holds", () => {
    const dir = tmpdir();
    const f = disk(dir, "whole.img", 8);
    sh("mkfs.ext4", ["-q", "-F", "-L", "whole", "-U", "0a0b0c0d-0000-4000-8000-000000000001", f]);
    const l = layoutOf(f);
    expect(l.partitioning).toBe("none");
    expect(l.wholeDisk).toMatchObject({ kind: "ext4", label: "whole", uuid: "0a0b0c0d-0000-4000-8000-000000000001" });
    expect(find(l, "PART_NONE")!.message).toContain("no 0x55AA signature");
  });
  it("reports a whole-disk FAT (a superfloppy) as a boot sector, not an MBR", () => {
    const dir = tmpdir();
    const f = path.join(dir, "floppy.img");
    sh("mkfs.fat", ["-C", "-F", "12", "-n", "FLOPPY", "-i", "0BADF00D", f, "1440"]);
    const l = layoutOf(f);
    expect(l.partitioning).toBe("none");
    expect(l.wholeDisk).toMatchObject({ kind: "fat12", label: "FLOPPY", uuid: "0BAD-F00D" });
    expect(find(l, "PART_NONE")!.message).toContain("LBA 0 is a fat12 boot sector");
  });

  it("reports an MBR on a 3 TiB (sparse) disk: the space past 2 TiB is unusable", () => {
    const dir = tmpdir();
    const f = disk(dir, "big.img", 3 * 1024 * 1024);
    sh("sfdisk", ["-q", f], { input: "label: dos\nstart=2048, size=4294965248, type=83, bootable\n" });
    const l = layoutOf(f);
    expect(find(l, "MBR_DISK_OVER_2TIB")!.evidence).toMatchObject({ sectors: 3 * 2 ** 31, limit: 2 ** 32 });
    expect(l.partitions[0].sectorCount).toBe(4294965248);
  });
});

describe("GPT", () => {
  it("reads an sgdisk GPT: disk GUID, entry GUIDs, types, names, attributes and both headers", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    const oracle = JSON.parse(sh("sfdisk", ["-J", f])).partitiontable;
    const l = layoutOf(f);
    expect(l.partitioning).toBe("gpt");
    expect(l.findings).toEqual([]);
    const g = l.gpt!;
    expect(g.diskGuid).toBe(GPT_DISK_GUID);
    expect(g.diskGuid).toBe(oracle.id);
    expect([g.primaryOk, g.backupOk, g.used]).toEqual([true, true, "primary"]);
    expect([g.firstUsable, g.lastUsable, g.entryCount, g.entrySize, g.backupLba]).toEqual([oracle.firstlba, oracle.lastlba, 128, 128, 32767]);
    expect(l.partitions.map((p) => [p.index, p.startLba, p.sectorCount, p.type, p.guid])).toEqual(
      oracle.partitions.map((p: { node: string; start: number; size: number; type: string; uuid: string }, i: number) =>
        [i + 1, p.start, p.size, p.type, p.uuid]));
    expect(l.partitions.map((p) => p.typeName)).toEqual(["BIOS boot", "EFI System", "Linux filesystem"]);
    expect(l.partitions.map((p) => p.name)).toEqual(["bios", "EFI System Partition", "root"]);
    expect(l.partitions[0].attributes).toBe("0x0000000000000004");
    expect(l.partitions[0].bootable).toBe(true);
    expect(l.partitions[1].bootable).toBe(false);
    expect(l.partitions.map((p) => p.content.kind)).toEqual(["empty", "empty", "empty"]);
  });

  it("reads a GPT on a 4096-byte-sector disk made by fdisk -b 4096", () => {
    const dir = tmpdir();
    const f = disk(dir, "g4k.img", 16);
    sh("fdisk", ["-b", "4096", f], { input: "g\nn\n1\n\n+4M\nt\n1\nn\n2\n\n\nw\n" });
    const l = layoutOf(f, 4096);
    expect(l.partitioning).toBe("gpt");
    expect(l.findings).toEqual([]);
    expect(l.gpt!.backupLba).toBe(4095);
    expect(l.partitions.map((p) => [p.startLba, p.sectorCount, p.typeName])).toEqual([[256, 1024, "EFI System"], [1280, 2560, "Linux filesystem"]]);
    // The same bytes seen with 512-byte sectors: the GPT is at the wrong place for that disk.
    const wrong = layoutOf(f, 512);
    expect(find(wrong, "GPT_SECTOR_SIZE_MISMATCH")!.message).toContain("byte 4096");
    expect(wrong.partitions).toEqual([]);
  });

  it("reports a 512-byte-sector GPT presented with 4096-byte logical sectors", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    const l = layoutOf(f, 4096);
    expect(codes(l)).toContain("GPT_SECTOR_SIZE_MISMATCH");
    expect(find(l, "GPT_SECTOR_SIZE_MISMATCH")!.evidence).toMatchObject({ offset: 512, sectorSize: 4096 });
  });

  it("reports a disk grown by qemu-img resize (backup GPT not at the end), and sgdisk -e fixes it", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    sh("qemu-img", ["resize", "-q", "-f", "raw", f, "24M"]);
    const l = layoutOf(f);
    const b = find(l, "GPT_BACKUP_NOT_AT_END")!;
    expect(b.severity).toBe("warning");
    expect(b.evidence).toMatchObject({ alternate: 32767, last: 49151, lastUsable: 32734 });
    expect(b.remedy).toContain("sgdisk -e");
    expect(codes(l)).toContain("GPT_PMBR_SIZE");
    expect(l.gpt!.backupOk).toBe(true);                        // the old backup is still valid where the primary says
    expect(l.partitions).toHaveLength(3);
    sh("sgdisk", ["-e", f]);
    expect(layoutOf(f).findings).toEqual([]);
  });

  it("uses the backup GPT when the primary header CRC is wrong", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    const b = readAt(f, 512 + 56, 1);
    patch(f, 512 + 56, Buffer.from([b[0] ^ 0xff]));            // flip a disk GUID byte, CRC left stale
    const l = layoutOf(f);
    const p = find(l, "GPT_PRIMARY_INVALID")!;
    expect(p.message).toMatch(/header CRC32 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}/);
    expect([l.gpt!.primaryOk, l.gpt!.backupOk, l.gpt!.used]).toEqual([false, true, "backup"]);
    expect(l.gpt!.diskGuid).toBe(GPT_DISK_GUID);
    expect(l.partitions.map((p) => p.guid)).toEqual([P1_GUID, P2_GUID, P3_GUID]);
  });

  it("uses the backup GPT when the primary entry array CRC is wrong", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    patch(f, 2 * 512 + 56, Buffer.from("X", "utf16le"));       // rename entry 1 behind the CRC's back
    const l = layoutOf(f);
    expect(find(l, "GPT_PRIMARY_INVALID")!.message).toContain("partition entry array CRC32");
    expect(l.partitions[0].name).toBe("bios");
  });

  it("refuses a GPT whose entry count is 2^32-1 (both headers), quickly and without allocating", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    for (const lba of [1, 32767]) editGptHeader(f, lba, (h) => h.writeUInt32LE(0xffffffff, 80));
    const t0 = Date.now();
    const l = layoutOf(f);
    expect(Date.now() - t0).toBeLessThan(1000);
    const g = find(l, "GPT_INVALID")!;
    expect(g.severity).toBe("error");
    expect(g.message).toContain("partition entry count 4294967295 exceeds the 1024-entry limit");
    expect(l.partitioning).toBe("gpt");
    expect(l.partitions).toEqual([]);
    expect(malformedLayout(l)?.code).toBe("GPT_INVALID");
  });

  it("falls back to the backup when only the primary's entry count is 2^32-1", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    editGptHeader(f, 1, (h) => h.writeUInt32LE(0xffffffff, 80));
    const l = layoutOf(f);
    expect(find(l, "GPT_PRIMARY_INVALID")!.message).toContain("4294967295");
    expect(l.partitions).toHaveLength(3);
  });

  for (const size of [0, 7]) {
    it(`refuses a GPT whose entry size is ${size}`, () => {
      const dir = tmpdir();
      const f = sgdiskDisk(dir);
      for (const lba of [1, 32767]) editGptHeader(f, lba, (h) => h.writeUInt32LE(size, 84));
      const l = layoutOf(f);
      expect(find(l, "GPT_INVALID")!.message).toContain(`partition entry size ${size} is not 128 * 2^n`);
      expect(l.partitions).toEqual([]);
    });
  }

  it("reports a GPT partition past the last usable LBA and past the end of the disk", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    for (const [lba, arr] of [[1, 2], [32767, 32735]]) {
      patch(f, arr * 512 + 2 * 128 + 40, Buffer.from(new BigUint64Array([40000n]).buffer)); // entry 3 EndingLBA
      editGptHeader(f, lba, () => {});
    }
    const l = layoutOf(f);
    expect(find(l, "GPT_PART_OUTSIDE_USABLE")!.evidence).toMatchObject({ index: 3, end: 40000, lastUsable: 32734 });
    expect(find(l, "PART_PAST_END")!.evidence).toMatchObject({ index: 3, end: 40000, last: 32767 });
    expect(l.findings.every((x) => x.stage === "image")).toBe(true);
  });

  it("reports overlapping GPT partitions", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    for (const [lba, arr] of [[1, 2], [32767, 32735]]) {
      patch(f, arr * 512 + 1 * 128 + 32, Buffer.from(new BigUint64Array([3000n]).buffer)); // entry 2 StartingLBA
      editGptHeader(f, lba, () => {});
    }
    const o = find(layoutOf(f), "PART_OVERLAP")!;
    expect(o.evidence).toMatchObject({ a: 1, aStart: 2048, aEnd: 4095, b: 2, bStart: 3000, sectors: 1096 });
  });

  it("reports a GPT truncated to half its size: backup gone, last usable LBA past the end", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    sh("truncate", ["-s", "8M", f]);
    const l = layoutOf(f);
    expect(codes(l)).toEqual(expect.arrayContaining(["GPT_BACKUP_NOT_AT_END", "GPT_LAST_USABLE_PAST_END", "PART_PAST_END"]));
    expect(find(l, "GPT_LAST_USABLE_PAST_END")!.remedy).toContain("qemu-img resize IMAGE 16777216");
    expect(l.partitions).toHaveLength(3);
  });

  it("reports a GPT disk whose protective MBR was zeroed", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    patch(f, 0, Buffer.alloc(512));
    const l = layoutOf(f);
    expect(l.partitioning).toBe("gpt");
    expect(find(l, "GPT_PROTECTIVE_MBR_MISSING")!.message).toContain("no 0x55AA signature");
    expect(l.partitions).toHaveLength(3);
  });

  it("detects a hybrid MBR made by sgdisk -h, and a hybrid entry that disagrees with the GPT", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    sh("sgdisk", ["-h", "2", f]);
    const l = layoutOf(f);
    expect(l.partitioning).toBe("hybrid");
    expect(find(l, "GPT_HYBRID_MBR")!.message).toContain("1 ordinary partitions (0xef)");
    expect(codes(l)).toEqual(["GPT_HYBRID_MBR"]);
    expect(l.partitions).toHaveLength(3);
    const slot = l.mbr!.entries.find((e) => e.type === 0xef)!.slot;
    patch(f, 0x1be + slot * 16 + 8, u32(4000));
    expect(find(layoutOf(f), "GPT_HYBRID_MISMATCH")!.evidence).toMatchObject({ start: 4000 });
  });

  it("reports a protective MBR whose 0xEE entry does not start at LBA 1", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    patch(f, 0x1be + 8, u32(2));
    expect(find(layoutOf(f), "GPT_PMBR_BAD_START")!.evidence).toMatchObject({ start: 2 });
  });

  it("reports a stale GPT left behind an MBR written by sfdisk --wipe never", () => {
    const dir = tmpdir();
    const f = sgdiskDisk(dir);
    sh("sfdisk", ["-q", "--wipe", "never", f], { input: "label: dos\nstart=2048, size=8192, type=83, bootable\n" });
    const l = layoutOf(f);
    expect(l.partitioning).toBe("mbr");
    expect(l.partitions).toHaveLength(1);
    expect(find(l, "GPT_LEFTOVER_WITH_MBR")!.message).toContain(GPT_DISK_GUID);
  });
});

/** A disk in memory: `base` with some sectors replaced, so that hundreds of damaged variants cost nothing. */
function overlayDisk(base: Buffer, overlay: Map<number, Buffer>): BlockDevice {
  return new Disk({
    info: { format: "raw", path: "mem", fileSize: base.length, virtualSize: base.length, sectorSize: 512, findings: [] },
    readInto(dst, offset) {
      base.copy(dst, 0, offset, offset + dst.length);
      for (const [lba, sec] of overlay) {
        const at = lba * 512 - offset;
        if (at > -512 && at < dst.length) sec.copy(dst, Math.max(0, at), Math.max(0, -at), Math.min(512, dst.length - at));
      }
    },
    close: () => {},
  });
}

describe("bit-flipped tables", () => {
  it("survives 400 randomly corrupted copies of an MBR/EBR chain and of a GPT without throwing or hanging", () => {
    const dir = tmpdir();
    const bases = [
      { buf: fs.readFileSync(dosDisk(dir)), lbas: [0, 12288, 18432] },
      { buf: fs.readFileSync(sgdiskDisk(dir)), lbas: [0, 1, 2, 32766, 32767] },
    ];
    const noise = prng(0x5eed, 400 * 16 * 4);
    let n = 0, findingsSeen = 0;
    const t0 = Date.now();
    for (let i = 0; i < 400; i++) {
      const { buf, lbas } = bases[i % 2];
      const overlay = new Map<number, Buffer>();
      for (let k = 0; k < 16; k++) {
        const r = noise.readUInt32LE((i * 16 + k) * 4);
        const lba = lbas[r % lbas.length];
        const sec = overlay.get(lba) ?? Buffer.from(buf.subarray(lba * 512, lba * 512 + 512));
        // Hit the interesting bytes (MBR/EBR tables, GPT header fields), and every fourth flip anywhere.
        const field = lba === 1 || lba === 32767 ? (r >>> 8) % 92 : lba === 2 || lba === 32766 ? (r >>> 8) % 512 : 0x1be + ((r >>> 8) % 66);
        const off = k % 4 === 0 ? (r >>> 8) % 512 : field;
        sec[off] ^= 1 << ((r >>> 20) % 8);
        overlay.set(lba, sec);
      }
      try {
        const l = readLayout(overlayDisk(buf, overlay));
        findingsSeen += l.findings.length;
        n++;
      } catch (e) {
        expect(e).toBeInstanceOf(ImageError);
      }
    }
    expect(n).toBe(400);                                       // bad tables are findings, not exceptions
    expect(findingsSeen).toBeGreaterThan(100);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
