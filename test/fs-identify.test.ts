// Filesystems made by the real mkfs tools, written into partitions of one sparse GPT disk (FIXTURES.md:
// dd conv=notrunc), identified by signature and cross-checked against what the tools were told and blkid.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { spawnSync } from "node:child_process";
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource } from "../images/source.ts";
import { readLayout, type Layout, type Partition } from "../images/layout.ts";
import { identifyContent } from "../images/fs-identify.ts";
import { sh, tmpdir, rawDisk } from "./helpers.ts";

/** blkid's low-level probe of a file, as key=value pairs (the oracle). */
function blkid(file: string): Record<string, string> {
  const r = spawnSync("blkid", ["-p", "-o", "export", file], { encoding: "utf8" });
  const out: Record<string, string> = {};
  for (const line of r.stdout.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].replace(/\\(.)/g, "$1");
  }
  return out;
}

const UUID = {
  ext2: "e2e2e2e2-0000-4000-8000-000000000002",
  ext3: "e3e3e3e3-0000-4000-8000-000000000003",
  ext4: "e4e4e4e4-0000-4000-8000-000000000004",
  xfs: "f5f5f5f5-0000-4000-8000-000000000005",
  btrfs: "b7b7b7b7-0000-4000-8000-000000000007",
  swap: "5a5a5a5a-0000-4000-8000-00000000000a",
};
const PV_UUID = "Lv2PvU-uidA-bcde-FGHI-jklm-NOPQ-rstuvw";

const BASIC = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4", ROOT_X64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928";
const MSR = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE";

/** One partition per filesystem: [name, MiB, GPT type GUID, mkfs command writing `file` of that size]. */
type Spec = [string, number, string, (file: string, mib: number) => void];
const SPECS: Spec[] = [
  ["fat12", 4, BASIC, (f, m) => sh("mkfs.fat", ["-C", "-F", "12", "-n", "SMALLFAT", "-i", "1234ABCD", "-g", "255/63", "-h", "2048", f, String(m * 1024)])],
  ["fat16", 20, BASIC, (f, m) => sh("mkfs.fat", ["-C", "-F", "16", "-n", "MIDFAT", "-i", "0000BEEF", f, String(m * 1024)])],
  ["fat32", 40, ESP, (f, m) => sh("mkfs.fat", ["-C", "-F", "32", "-s", "1", "-n", "ESP", "-i", "C0FFEE01", "-g", "64/32", "-h", "51200", f, String(m * 1024)])],
  ["ntfs", 8, BASIC, (f, m) => { mk(f, m); sh("mkntfs", ["-F", "-Q", "-q", "-L", "WinData", "-H", "255", "-S", "63", "-p", "133120", f]); }],
  ["ext2", 4, LINUX, (f, m) => sh("mkfs.ext2", ["-q", "-F", "-L", "e2label", "-U", UUID.ext2, f, `${m}M`])],
  ["ext3", 8, LINUX, (f, m) => sh("mkfs.ext3", ["-q", "-F", "-L", "e3label", "-U", UUID.ext3, f, `${m}M`])],
  ["ext4", 8, ROOT_X64, (f, m) => sh("mkfs.ext4", ["-q", "-F", "-L", "rootfs", "-U", UUID.ext4, f, `${m}M`])],
  ["xfs", 300, LINUX, (f, m) => { mk(f, m); sh("mkfs.xfs", ["-q", "-f", "-L", "xfsdata", "-m", `uuid=${UUID.xfs}`, f]); }],
  ["btrfs", 128, LINUX, (f, m) => { mk(f, m); sh("mkfs.btrfs", ["-q", "-f", "-L", "bfs", "-U", UUID.btrfs, f]); }],
  ["swap", 2, SWAP, (f, m) => { mk(f, m); sh("mkswap", ["-L", "swap0", "-U", UUID.swap, f]); }],
  ["lvm2", 2, LVM, (f, m) => { mk(f, m); writePvLabel(f, m); }],
  ["mbr", 2, LINUX, (f, m) => { mk(f, m); sh("sfdisk", ["-q", f], { input: "label: dos\nstart=64, size=1000, type=83\n" }); }],
  ["empty", 1, MSR, (f, m) => mk(f, m)],
];

function mk(f: string, mib: number): void {
  sh("truncate", ["-s", `${mib}M`, f]);
}

/**
 * pvcreate needs a block device (it answers "No device found" for a plain file, and `pvck --repair`
 * refuses files too), and tests must not need loop devices: so this writes an LVM2 PV label per its
 * on-disk format (lib/format_text/layout.h): label_header in sector 1 with LVM's CRC32 variant, then
 * pv_header (32-character id, device size, empty data/metadata area lists). blkid recognising it
 * below checks that the bytes are right.
 */
function writePvLabel(f: string, mib: number): void {
  const s = Buffer.alloc(512);
  s.write("LABELONE", 0, "latin1");
  s.writeBigUInt64LE(1n, 8);                     // sector_xl: this label's sector
  s.writeUInt32LE(32, 20);                       // offset_xl: pv_header right after the label header
  s.write("LVM2 001", 24, "latin1");
  s.write(PV_UUID.replace(/-/g, ""), 32, "latin1");
  s.writeBigUInt64LE(BigInt(mib * 2 ** 20), 64);  // device_size_xl
  s.writeBigUInt64LE(BigInt(2 ** 20), 72);        // data area 0: offset 1 MiB, size 0 = to the end; then a 0,0 terminator
  s.writeUInt32LE((zlib.crc32(s.subarray(20), (0xf597a6cf ^ 0xffffffff) >>> 0) ^ 0xffffffff) >>> 0, 16);
  const fd = fs.openSync(f, "r+");
  try { fs.writeSync(fd, s, 0, 512, 512); } finally { fs.closeSync(fd); }
}

let layout: Layout;
let oracle: Record<string, Record<string, string>>;
const part = (name: string): Partition => layout.partitions[SPECS.findIndex((s) => s[0] === name)];

beforeAll(() => {
  const dir = tmpdir();
  const img = path.join(dir, "disk.img");
  const total = 1 + SPECS.reduce((a, s) => a + s[1], 0) + 1;
  mk(img, total);
  const script = ["label: gpt"];
  let start = 1;
  oracle = {};
  SPECS.forEach(([name, mib, type, make]) => {
    const f = path.join(dir, `${name}.fs`);
    make(f, mib);
    oracle[name] = blkid(f);
    sh("dd", [`if=${f}`, `of=${img}`, "bs=1M", `seek=${start}`, "conv=notrunc,sparse", "status=none"]);
    script.push(`start=${start * 2048}, size=${mib * 2048}, type=${type}`);
    start += mib;
  });
  sh("sfdisk", ["-q", img], { input: script.join("\n") + "\n" });      // sgdisk sleeps 1 s after writing
  const dev = rawDisk(img);
  try { layout = readLayout(dev); } finally { dev.close(); }
});

describe("content identification on a GPT disk built with real mkfs tools", () => {
  it("lays the partitions out where sfdisk was told, with no findings", () => {
    expect(layout.partitioning).toBe("gpt");
    expect(layout.findings).toEqual([]);
    let start = 2048;
    for (const [i, [, mib]] of SPECS.entries()) {
      expect([layout.partitions[i].startLba, layout.partitions[i].sectorCount]).toEqual([start, mib * 2048]);
      start += mib * 2048;
    }
    expect(part("fat32").typeName).toBe("EFI System");
    expect(part("lvm2").typeName).toBe("Linux LVM");
    expect(part("swap").typeName).toBe("Linux swap");
    expect(part("ext4").typeName).toBe("Linux root (x86-64)");
    expect(part("empty").typeName).toBe("Microsoft reserved");
  });

  it("identifies every partition's kind as blkid does", () => {
    expect(SPECS.map(([n]) => part(n).content.kind)).toEqual(SPECS.map(([n]) => n));
    const blkidKind = (o: Record<string, string>) =>
      o.TYPE === "vfat" ? o.VERSION.toLowerCase() : o.TYPE === "LVM2_member" ? "lvm2" : o.TYPE;
    for (const n of ["fat12", "fat16", "fat32", "ntfs", "ext2", "ext3", "ext4", "xfs", "btrfs", "swap", "lvm2"]) {
      expect(part(n).content.kind, n).toBe(blkidKind(oracle[n]));
      expect(part(n).content.uuid, n).toBe(oracle[n].UUID);
      expect(part(n).content.label, n).toBe(oracle[n].LABEL);
    }
  });

  it("reads FAT volume ids, labels and the BPB geometry used by CHS boot code", () => {
    expect(part("fat12").content).toMatchObject({ uuid: "1234-ABCD", label: "SMALLFAT" });
    expect(part("fat12").content.details).toMatchObject({ heads: 255, sectorsPerTrack: 63, hiddenSectors: 2048, bytesPerSector: 512 });
    expect(part("fat16").content).toMatchObject({ uuid: "0000-BEEF", label: "MIDFAT" });
    expect(part("fat32").content).toMatchObject({ uuid: "C0FF-EE01", label: "ESP" });
    expect(part("fat32").content.details).toMatchObject({ heads: 64, sectorsPerTrack: 32, hiddenSectors: 51200, sectorsPerCluster: 1 });
    expect(part("fat32").content.details!.clusters as number).toBeGreaterThan(65524);
  });

  it("reads the NTFS label from $Volume, the serial and the BPB geometry", () => {
    const c = part("ntfs").content;
    expect(c.label).toBe("WinData");
    expect(c.uuid).toMatch(/^[0-9A-F]{16}$/);
    expect(c.version).toBe("3.1");
    expect(c.details).toMatchObject({ heads: 255, sectorsPerTrack: 63, hiddenSectors: 133120, bytesPerSector: 512 });
  });

  it("tells ext2, ext3 and ext4 apart by their feature flags and reads UUID and label", () => {
    expect(part("ext2").content).toMatchObject({ kind: "ext2", uuid: UUID.ext2, label: "e2label" });
    expect(part("ext3").content).toMatchObject({ kind: "ext3", uuid: UUID.ext3, label: "e3label" });
    expect(part("ext4").content).toMatchObject({ kind: "ext4", uuid: UUID.ext4, label: "rootfs" });
    expect(part("ext3").content.details!.features).toContain("has_journal");
    expect(part("ext2").content.details!.features).not.toContain("has_journal");
    expect(part("ext4").content.details!.features).toEqual(expect.arrayContaining(["extent", "64bit", "metadata_csum"]));
  });

  it("reads XFS v5, btrfs, swap and LVM2 PV identities", () => {
    expect(part("xfs").content).toMatchObject({ kind: "xfs", version: "5", uuid: UUID.xfs, label: "xfsdata" });
    expect(part("btrfs").content).toMatchObject({ kind: "btrfs", uuid: UUID.btrfs, label: "bfs" });
    expect(part("swap").content).toMatchObject({ kind: "swap", version: "1", uuid: UUID.swap, label: "swap0" });
    expect(part("lvm2").content).toMatchObject({ kind: "lvm2", uuid: PV_UUID });
    expect(part("lvm2").content.details).toMatchObject({ labelSector: 1, labelCrcOk: true, deviceSize: 2 * 2 ** 20 });
  });

  it("recognises a partition table inside a partition and an all-zero partition", () => {
    expect(part("mbr").content).toMatchObject({ kind: "mbr", details: { entries: 1 } });
    expect(part("empty").content.kind).toBe("empty");
  });
});

describe("content identification edge cases", () => {
  it("reads an XFS v4 superblock (mkfs.xfs -m crc=0) on a whole disk", () => {
    const dir = tmpdir();
    const f = path.join(dir, "xfs4.img");
    mk(f, 300);
    sh("mkfs.xfs", ["-q", "-f", "-m", "crc=0", "-L", "old", f]);
    const dev = rawDisk(f);
    try {
      const l = readLayout(dev);
      expect(l.partitioning).toBe("none");
      expect(l.wholeDisk).toMatchObject({ kind: "xfs", version: "4", label: "old", uuid: blkid(f).UUID });
    } finally { dev.close(); }
  });

  it("probes only inside the partition: a partition shorter than the btrfs superblock offset", () => {
    const dir = tmpdir();
    const f = path.join(dir, "tiny.img");
    mk(f, 1);
    const dev = rawDisk(f);
    try {
      expect(identifyContent(dev, 2040, 8)).toMatchObject({ kind: "empty", details: { probedBytes: 4096 } });
      expect(identifyContent(dev, 2040, 100).kind).toBe("empty");            // clipped at the disk's end
      expect(identifyContent(dev, 5000, 8).kind).toBe("beyond-disk");
    } finally { dev.close(); }
  });

  it("does not mistake random bytes for a filesystem", () => {
    const dir = tmpdir();
    const f = path.join(dir, "rnd.img");
    sh("dd", ["if=/dev/urandom", `of=${f}`, "bs=64K", "count=2", "status=none"]);
    const dev = rawDisk(f);
    try { expect(identifyContent(dev, 0, 256).kind).toBe("unknown"); } finally { dev.close(); }
  });
});
