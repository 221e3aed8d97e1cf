// What a partition holds, by on-disk signature (the facts blkid probes for): FAT12/16/32 (Microsoft
// FAT spec, BPB), exFAT, NTFS (boot sector + $Volume), ReFS, BitLocker, ext2/3/4 (ext4 disk layout),
// XFS (xfs_sb), btrfs (btrfs_super_block), LVM2 PV label, Linux swap v1, LUKS1/2, ISO 9660, nested MBR.
import type { BlockDevice } from "./block.ts";
import * as zlib from "node:zlib";

export type ContentKind =
  | "fat12" | "fat16" | "fat32" | "exfat" | "ntfs" | "refs" | "bitlocker"
  | "ext2" | "ext3" | "ext4" | "ext-journal" | "xfs" | "btrfs" | "lvm2" | "swap" | "luks"
  | "iso9660" | "mbr" | "extended" | "empty" | "unknown" | "beyond-disk";

export interface Content {
  kind: ContentKind;
  label?: string;
  /** Filesystem UUIDs in blkid's spelling: 8-4-4-4-12 lowercase; FAT "XXXX-XXXX"; NTFS 16 hex digits. */
  uuid?: string;
  version?: string;
  details?: Record<string, unknown>;
}

/** Bytes read from the start of a partition for signature probing: btrfs's superblock ends at 68 KiB. */
export const PROBE_BYTES = 68 * 1024;
/** Largest FAT root directory / first FAT32 root cluster we scan for a volume-label entry. */
const MAX_FAT_ROOT_SCAN = 64 * 1024;

/** Reads bytes inside one partition; undefined when the range leaves the partition or the disk. */
export interface PartReader {
  size: number;
  read(offset: number, length: number): Buffer | undefined;
}

export function partReader(dev: BlockDevice, startLba: number, sectorCount: number): PartReader {
  const ss = dev.sectorSize;
  const usable = Math.max(0, Math.min(startLba + sectorCount, dev.sectorCount) - startLba);
  const size = usable * ss;
  return {
    size,
    read(offset, length) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) return undefined;
      if (offset + length > size) return undefined;
      return dev.readBytes(startLba * ss + offset, length);
    },
  };
}

/** Identify the content of `sectorCount` sectors from `startLba`. Never throws for bad bytes. */
export function identifyContent(dev: BlockDevice, startLba: number, sectorCount: number): Content {
  if (startLba >= dev.sectorCount || sectorCount <= 0) return { kind: "beyond-disk" };
  const r = partReader(dev, startLba, sectorCount);
  const head = r.read(0, Math.min(PROBE_BYTES, r.size)) ?? Buffer.alloc(0);
  return identifyHead(head, r);
}

/** Probe order: signatures that cannot be confused first, FAT's heuristic BPB checks late. */
export function identifyHead(head: Buffer, r: PartReader): Content {
  const probes: ((h: Buffer, r: PartReader) => Content | undefined)[] = [
    probeLuks, probeLvm2, probeXfs, probeBtrfs, probeExt, probeSwap, probeIso9660,
    probeNtfs, probeOemOnly, probeFat, probeNestedMbr,
  ];
  for (const p of probes) {
    const c = p(head, r);
    if (c) return c;
  }
  if (head.length > 0 && isZero(head)) return { kind: "empty", details: { probedBytes: head.length } };
  return { kind: "unknown" };
}

// ---- small helpers -------------------------------------------------------------------------

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function has(h: Buffer, off: number, sig: string | Buffer): boolean {
  const s = typeof sig === "string" ? Buffer.from(sig, "latin1") : sig;
  return h.length >= off + s.length && h.subarray(off, off + s.length).equals(s);
}

/** NUL-terminated / space-padded byte string. */
function cstr(b: Buffer, enc: BufferEncoding = "utf8"): string {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString(enc).replace(/[\s]+$/, "");
}

/** RFC 4122 text of 16 bytes in on-disk (big-endian) order, as blkid prints Linux filesystem UUIDs. */
export function uuidText(b: Buffer): string {
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
const u64 = (b: Buffer, off: number) => Number(b.readBigUInt64LE(off));
const volId = (n: number) => {
  const h = (n >>> 0).toString(16).toUpperCase().padStart(8, "0");
  return `${h.slice(0, 4)}-${h.slice(4)}`;
};

// ---- LUKS (LUKS1 on-disk format spec 1.2.3 §2.4; LUKS2 on-disk format §2) -------------------

const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]); // "LUKS\xba\xbe"

function probeLuks(h: Buffer): Content | undefined {
  if (!has(h, 0, LUKS_MAGIC) || h.length < 208) return undefined;
  const version = h.readUInt16BE(6);
  const c: Content = { kind: "luks", version: String(version), uuid: cstr(h.subarray(168, 208), "latin1") || undefined };
  if (version === 2) c.label = cstr(h.subarray(24, 72)) || undefined;
  else c.details = { cipher: cstr(h.subarray(8, 40), "latin1"), mode: cstr(h.subarray(40, 72), "latin1") };
  return c;
}

// ---- LVM2 physical volume label (lib/format_text/layout.h: label_header, pv_header) ---------

const LVM_SECTOR = 512;  // LVM labels live in 512-byte units whatever the device's sector size

function probeLvm2(h: Buffer): Content | undefined {
  for (let s = 0; s < 4; s++) {
    const o = s * LVM_SECTOR;
    if (h.length < o + LVM_SECTOR || !has(h, o, "LABELONE")) continue;
    if (Number(h.readBigUInt64LE(o + 8)) !== s || !has(h, o + 24, "LVM2 001")) continue;
    const pvOff = h.readUInt32LE(o + 20);
    if (pvOff < 32 || pvOff + 40 > LVM_SECTOR) continue;
    const stored = h.readUInt32LE(o + 16);
    // LVM's crc32 starts from 0xf597a6cf with no final inversion: zlib's form with both inverted.
    const computed = (zlib.crc32(h.subarray(o + 20, o + LVM_SECTOR), (0xf597a6cf ^ 0xffffffff) >>> 0) ^ 0xffffffff) >>> 0;
    const raw = h.subarray(o + pvOff, o + pvOff + 32).toString("latin1");
    const parts = [6, 4, 4, 4, 4, 4, 6];
    let pos = 0;
    const uuid = parts.map((n) => { const p = raw.slice(pos, pos + n); pos += n; return p; }).join("-");
    return {
      kind: "lvm2", uuid, version: "2",
      details: { labelSector: s, labelCrcOk: stored === computed, deviceSize: u64(h, o + pvOff + 32) },
    };
  }
  return undefined;
}

// ---- XFS superblock (xfs_format.h struct xfs_sb; big-endian) ---------------------------------

function probeXfs(h: Buffer): Content | undefined {
  if (!has(h, 0, "XFSB") || h.length < 120) return undefined;
  const blockSize = h.readUInt32BE(4);
  const version = h.readUInt16BE(100) & 0x000f;
  if (!isPow2(blockSize) || blockSize < 512 || blockSize > 65536 || version < 1 || version > 5) return undefined;
  return {
    kind: "xfs", version: String(version), uuid: uuidText(h.subarray(32, 48)),
    label: cstr(h.subarray(108, 120)) || undefined,
    details: { blockSize, dataBlocks: Number(h.readBigUInt64BE(8)), sectorSize: h.readUInt16BE(102), inodeSize: h.readUInt16BE(104) },
  };
}

// ---- btrfs superblock at 64 KiB (btrfs_super_block) ------------------------------------------

const BTRFS_SB = 0x10000;

function probeBtrfs(h: Buffer): Content | undefined {
  const s = BTRFS_SB;
  if (!has(h, s + 64, "_BHRfS_M") || h.length < s + 299 + 256) return undefined;
  return {
    kind: "btrfs", uuid: uuidText(h.subarray(s + 32, s + 48)),
    label: cstr(h.subarray(s + 299, s + 299 + 256)) || undefined,
    details: {
      generation: u64(h, s + 72), totalBytes: u64(h, s + 112), bytesUsed: u64(h, s + 120),
      numDevices: u64(h, s + 136), sectorSize: h.readUInt32LE(s + 144), nodeSize: h.readUInt32LE(s + 148),
      deviceUuid: uuidText(h.subarray(s + 201 + 66, s + 201 + 82)),
    },
  };
}

// ---- ext2/3/4 superblock at 1024 (ext4 disk layout, "The Super Block") -----------------------

const EXT_SB = 1024;
const EXT_MAGIC = 0xef53;
const EXT_COMPAT: [number, string][] = [[0x4, "has_journal"], [0x8, "ext_attr"], [0x10, "resize_inode"], [0x20, "dir_index"], [0x200, "sparse_super2"]];
const EXT_INCOMPAT: [number, string][] = [
  [0x2, "filetype"], [0x4, "needs_recovery"], [0x8, "journal_dev"], [0x10, "meta_bg"], [0x40, "extent"],
  [0x80, "64bit"], [0x100, "mmp"], [0x200, "flex_bg"], [0x400, "ea_inode"], [0x1000, "dirdata"],
  [0x2000, "metadata_csum_seed"], [0x4000, "large_dir"], [0x8000, "inline_data"], [0x10000, "encrypt"], [0x20000, "casefold"],
];
const EXT_RO_COMPAT: [number, string][] = [
  [0x1, "sparse_super"], [0x2, "large_file"], [0x4, "btree_dir"], [0x8, "huge_file"], [0x10, "uninit_bg"],
  [0x20, "dir_nlink"], [0x40, "extra_isize"], [0x100, "quota"], [0x200, "bigalloc"], [0x400, "metadata_csum"],
  [0x1000, "read-only"], [0x2000, "project"], [0x8000, "verity"], [0x10000, "orphan_present"],
];
/** What ext3 understands; anything beyond makes the filesystem ext4 (blkid's rule). */
const EXT3_INCOMPAT_OK = 0x2 | 0x4 | 0x10;
const EXT3_RO_COMPAT_OK = 0x1 | 0x2 | 0x4;
const EXT_INCOMPAT_JOURNAL_DEV = 0x8;
const EXT_COMPAT_HAS_JOURNAL = 0x4;

function probeExt(h: Buffer): Content | undefined {
  const s = EXT_SB;
  if (h.length < s + 0x160 || h.readUInt16LE(s + 0x38) !== EXT_MAGIC) return undefined;
  const logBlock = h.readUInt32LE(s + 0x18);
  if (logBlock > 6) return undefined;                     // block size 1 KiB .. 64 KiB
  const compat = h.readUInt32LE(s + 0x5c), incompat = h.readUInt32LE(s + 0x60), roCompat = h.readUInt32LE(s + 0x64);
  let kind: ContentKind;
  if (incompat & EXT_INCOMPAT_JOURNAL_DEV) kind = "ext-journal";
  else if ((incompat & ~EXT3_INCOMPAT_OK) || (roCompat & ~EXT3_RO_COMPAT_OK)) kind = "ext4";
  else if (compat & EXT_COMPAT_HAS_JOURNAL) kind = "ext3";
  else kind = "ext2";
  const names = (v: number, t: [number, string][]) => t.filter(([bit]) => v & bit).map(([, n]) => n);
  const is64 = (incompat & 0x80) !== 0;
  const blocks = h.readUInt32LE(s + 0x4) + (is64 ? h.readUInt32LE(s + 0x150) * 2 ** 32 : 0);
  return {
    kind, uuid: uuidText(h.subarray(s + 0x68, s + 0x78)), label: cstr(h.subarray(s + 0x78, s + 0x88)) || undefined,
    details: {
      blockSize: 1024 << logBlock, blocks, inodeSize: h.readUInt16LE(s + 0x58), revision: h.readUInt32LE(s + 0x4c),
      features: [...names(compat, EXT_COMPAT), ...names(incompat, EXT_INCOMPAT), ...names(roCompat, EXT_RO_COMPAT)],
      lastMounted: cstr(h.subarray(s + 0x88, s + 0xc8)) || undefined,
    },
  };
}

// ---- Linux swap (include/linux/swap.h union swap_header) -------------------------------------

const SWAP_PAGE_SIZES = [4096, 8192, 16384, 65536];

function probeSwap(h: Buffer): Content | undefined {
  for (const ps of SWAP_PAGE_SIZES) {
    if (h.length < ps) break;
    const v2 = has(h, ps - 10, "SWAPSPACE2");
    if (!v2 && !has(h, ps - 10, "SWAP-SPACE")) continue;
    if (!v2) return { kind: "swap", version: "0", details: { pageSize: ps } };
    return {
      kind: "swap", version: String(h.readUInt32LE(1024)),
      uuid: uuidText(h.subarray(1036, 1052)), label: cstr(h.subarray(1052, 1068)) || undefined,
      details: { pageSize: ps, lastPage: h.readUInt32LE(1028), badPages: h.readUInt32LE(1032) },
    };
  }
  return undefined;
}

// ---- ISO 9660 primary volume descriptor at 32 KiB (ECMA-119 §8.4) ----------------------------

function probeIso9660(h: Buffer): Content | undefined {
  const o = 16 * 2048;
  if (!has(h, o + 1, "CD001") || h.length < o + 72) return undefined;
  return { kind: "iso9660", label: cstr(h.subarray(o + 40, o + 72), "latin1") || undefined };
}

// ---- NTFS boot sector and $Volume ($VOLUME_NAME, $VOLUME_INFORMATION) ------------------------

const NTFS_MFT_VOLUME = 3;          // MFT record number of $Volume
const ATTR_VOLUME_NAME = 0x60;
const ATTR_VOLUME_INFORMATION = 0x70;
const ATTR_END = 0xffffffff;

function bpbGeometry(h: Buffer): Record<string, number> {
  return { sectorsPerTrack: h.readUInt16LE(0x18), heads: h.readUInt16LE(0x1a), hiddenSectors: h.readUInt32LE(0x1c) };
}

function probeNtfs(h: Buffer, r: PartReader): Content | undefined {
  if (!has(h, 3, "NTFS    ") || h.length < 512) return undefined;
  const bps = h.readUInt16LE(0x0b);
  const spcRaw = h[0x0d];
  const spc = spcRaw > 0x80 ? 2 ** (256 - spcRaw) : spcRaw;
  if (![512, 1024, 2048, 4096].includes(bps) || !isPow2(spc) || spc > 4096) return undefined;
  const clusterSize = bps * spc;
  const cpr = h.readInt8(0x40);
  const recordSize = cpr < 0 ? 2 ** -cpr : cpr * clusterSize;
  const serial = h.readBigUInt64LE(0x48);
  const c: Content = {
    kind: "ntfs", uuid: serial.toString(16).toUpperCase().padStart(16, "0"),
    details: {
      ...bpbGeometry(h), bytesPerSector: bps, sectorsPerCluster: spc, totalSectors: u64(h, 0x28),
      mftCluster: u64(h, 0x30), mftRecordSize: recordSize, volumeSerial: volId(Number(serial & 0xffffffffn)),
      bootSignature: h.readUInt16LE(510) === 0xaa55,
    },
  };
  if (isPow2(recordSize) && recordSize >= 512 && recordSize <= 65536) {
    const off = u64(h, 0x30) * clusterSize + NTFS_MFT_VOLUME * recordSize;
    const rec = r.read(off, recordSize);
    if (rec) readVolumeRecord(rec, bps, c);
  }
  return c;
}

/** Apply the update-sequence fixups, then walk resident attributes for the name and version. */
function readVolumeRecord(rec: Buffer, bps: number, c: Content): void {
  if (!has(rec, 0, "FILE")) return;
  const usaOff = rec.readUInt16LE(4), usaCount = rec.readUInt16LE(6);
  const stride = Math.min(bps, 512);
  if (usaCount < 1 || usaOff + usaCount * 2 > rec.length || (usaCount - 1) * stride > rec.length) return;
  for (let i = 1; i < usaCount; i++) rec.writeUInt16LE(rec.readUInt16LE(usaOff + i * 2), i * stride - 2);
  let a = rec.readUInt16LE(0x14);
  for (let n = 0; n < 64 && a + 24 <= rec.length; n++) {
    const type = rec.readUInt32LE(a), len = rec.readUInt32LE(a + 4);
    if (type === ATTR_END || len < 24 || a + len > rec.length) break;
    if (rec[a + 8] === 0) {                                    // resident
      const vlen = rec.readUInt32LE(a + 0x10), voff = rec.readUInt16LE(a + 0x14);
      if (voff + vlen <= len) {
        const v = rec.subarray(a + voff, a + voff + vlen);
        if (type === ATTR_VOLUME_NAME) c.label = v.toString("utf16le") || undefined;
        if (type === ATTR_VOLUME_INFORMATION && v.length >= 10) c.version = `${v[8]}.${v[9]}`;
      }
    }
    a += len;
  }
}

// ---- boot sectors named only by their OEM id: exFAT, ReFS, BitLocker --------------------------

function probeOemOnly(h: Buffer): Content | undefined {
  if (has(h, 3, "EXFAT   ") && h.length >= 512) {
    return { kind: "exfat", uuid: volId(h.readUInt32LE(100)), details: { partitionOffset: u64(h, 64), volumeLength: u64(h, 72) } };
  }
  if (has(h, 3, "ReFS")) return { kind: "refs" };
  if (has(h, 3, "-FVE-FS-")) return { kind: "bitlocker" };
  return undefined;
}

// ---- FAT12/16/32 (Microsoft "FAT: General Overview of On-Disk Format" 1.03, §3 BPB, §3.5) -----

const FAT12_MAX_CLUSTERS = 4084;
const FAT16_MAX_CLUSTERS = 65524;

function probeFat(h: Buffer, r: PartReader): Content | undefined {
  if (h.length < 512 || !(h[0] === 0xeb || h[0] === 0xe9)) return undefined;
  const bps = h.readUInt16LE(0x0b), spc = h[0x0d], reserved = h.readUInt16LE(0x0e), fats = h[0x10];
  const rootEntries = h.readUInt16LE(0x11), media = h[0x15], fatSz16 = h.readUInt16LE(0x16);
  if (![512, 1024, 2048, 4096].includes(bps) || !isPow2(spc) || reserved < 1 || fats < 1 || fats > 4) return undefined;
  if (media !== 0xf0 && media < 0xf8) return undefined;
  const total = h.readUInt16LE(0x13) || h.readUInt32LE(0x20);
  const fatSize = fatSz16 || h.readUInt32LE(0x24);
  const rootDirSectors = Math.ceil((rootEntries * 32) / bps);
  const firstData = reserved + fats * fatSize + rootDirSectors;
  if (total === 0 || fatSize === 0 || firstData >= total) return undefined;
  const clusters = Math.floor((total - firstData) / spc);
  const kind: ContentKind = clusters <= FAT12_MAX_CLUSTERS ? "fat12" : clusters <= FAT16_MAX_CLUSTERS ? "fat16" : "fat32";
  if (kind === "fat32" && (rootEntries !== 0 || fatSz16 !== 0)) return undefined;
  const ext = kind === "fat32" ? 0x40 : 0x24;               // extended BPB: drive, reserved, sig, id, label, type
  const hasExt = h[ext + 2] === 0x29 || h[ext + 2] === 0x28;
  const c: Content = {
    kind,
    details: {
      ...bpbGeometry(h), oemId: h.subarray(3, 11).toString("latin1").trimEnd(), bytesPerSector: bps,
      sectorsPerCluster: spc, reservedSectors: reserved, fats, fatSectors: fatSize, rootEntries, totalSectors: total,
      clusters, media, driveNumber: h[ext], bootSignature: h.readUInt16LE(510) === 0xaa55,
    },
  };
  if (hasExt) {
    c.uuid = volId(h.readUInt32LE(ext + 3));
    const bpbLabel = cstr(h.subarray(ext + 7, ext + 18), "latin1");
    if (bpbLabel && bpbLabel !== "NO NAME") c.label = bpbLabel;
  }
  // The root directory's volume-label entry is what Windows and blkid show; it wins over the BPB copy.
  const rootOff = kind === "fat32"
    ? (reserved + fats * fatSize + (h.readUInt32LE(0x2c) - 2) * spc) * bps
    : (reserved + fats * fatSize) * bps;
  const rootLen = Math.min(kind === "fat32" ? spc * bps : rootDirSectors * bps, MAX_FAT_ROOT_SCAN);
  const root = rootOff > 0 ? r.read(rootOff, rootLen) : undefined;
  if (root) {
    for (let e = 0; e + 32 <= root.length; e += 32) {
      if (root[e] === 0) break;
      if (root[e] === 0xe5 || (root[e + 11] & 0x0f) === 0x0f || (root[e + 11] & 0x08) === 0) continue;
      c.label = cstr(root.subarray(e, e + 11), "latin1") || c.label;
      break;
    }
  }
  return c;
}

// ---- a partition table inside a partition (a whole disk copied into a partition) --------------

function probeNestedMbr(h: Buffer): Content | undefined {
  if (h.length < 512 || h.readUInt16LE(510) !== 0xaa55) return undefined;
  let used = 0;
  for (let i = 0; i < 4; i++) {
    const o = 0x1be + i * 16;
    if (h[o] !== 0 && h[o] !== 0x80) return undefined;
    if (h[o + 4] !== 0 && h.readUInt32LE(o + 12) !== 0) used++;
  }
  return used > 0 ? { kind: "mbr", details: { entries: used } } : undefined;
}
