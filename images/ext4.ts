// Read-only ext2/3/4 (kernel Documentation/filesystems/ext4, "The Super Block", "Block Group
// Descriptors", "Meta Block Groups", "Flexible Block Groups") on a BlockDevice: the FileSystem of images/fs.ts.
import { corrupt, hex, ImageError, overLimit, truncated, unsupported } from "./errors.ts";
import type { BlockDevice } from "./block.ts";
import { deviceToDisk, pushDiskRuns, type Extent, type FileHandle, type FileStat, type FileSystem } from "./fs.ts";
import { LruCache } from "./grain-cache.ts";
import { crc32c } from "./crc.ts";
import { uuidText } from "./fs-identify.ts";
import { FS_METADATA_CACHE_BYTES, MAX_EXT4_DIR_BYTES, MAX_EXT4_GROUPS } from "./limits.ts";
import { defineFindings, finding } from "../emu/findings.ts";
import {
  blockRuns, findRun, inlineFileData, inlineParts, isFastSymlink, parseInode,
  EXT4_CASEFOLD_FL, EXT4_ENCRYPT_FL, EXT4_INLINE_DATA_FL, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
  type ExtGeometry, type Inode, type Run,
} from "./ext4-inode.ts";
import { parseDirEntries, type DirEntry } from "./ext4-dir.ts";

const SUPERBLOCK_OFFSET = 1024;
const EXT4_SUPER_MAGIC = 0xef53;
const EXT4_ROOT_INO = 2;
/** s_state bit: errors detected ("The Super Block", s_state). */
const EXT4_ERROR_FS = 0x2;
/** s_checksum_type 1 = crc32c; s_checksum at 0x3FC covers the bytes before it. */
const EXT4_CRC32C_CHKSUM = 1;
const SB_CHECKSUM_OFFSET = 0x3fc;
/** Longest symlink target (PATH_MAX). */
const MAX_SYMLINK_BYTES = 4096;
/** Largest data read from the device at once (half of the 16 MiB per-read limit). */
const READ_CHUNK = 8 * 1024 * 1024;

// Feature bits ("The Super Block", s_feature_compat / incompat / ro_compat).
const COMPAT_HAS_JOURNAL = 0x4;
const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_METADATA_CSUM = 0x400;
/** Incompatible features this reader handles (read-only: MMP, EA_INODE, CSUM_SEED, LARGEDIR, ENCRYPT, CASEFOLD need nothing more). */
const INCOMPAT_KNOWN: [number, string][] = [
  [0x2, "filetype"], [0x4, "needs_recovery"], [0x10, "meta_bg"], [0x40, "extent"], [0x80, "64bit"],
  [0x100, "mmp"], [0x200, "flex_bg"], [0x400, "ea_inode"], [0x2000, "metadata_csum_seed"],
  [0x4000, "large_dir"], [0x8000, "inline_data"], [0x10000, "encrypt"], [0x20000, "casefold"],
];
const INCOMPAT_UNSUPPORTED: Record<number, string> = { 0x1: "compression", 0x8: "journal_dev", 0x1000: "dirdata" };
/** ext3 knows only these; anything more makes blkid call the filesystem ext4. */
const EXT3_INCOMPAT = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
const EXT3_RO_COMPAT = 0x1 | 0x2 | 0x4;

defineFindings([
  {
    code: "EXT4_NEEDS_RECOVERY", severity: "warning", stage: "image",
    title: "ext journal needs recovery",
    message: "ext filesystem {uuid} has an unreplayed journal (needs_recovery); files read without replaying it may be stale",
    remedy: "shut the source VM down cleanly before converting, or run `e2fsck -fy /dev/sdXN` on the partition",
    explain: "The kernel replays the journal at mount; bootgate reads the filesystem as it lies on disk. Boot files changed shortly before the image was taken may differ from what the guest will see.",
  },
  {
    code: "EXT4_ERRORS_RECORDED", severity: "warning", stage: "image",
    title: "ext filesystem has recorded errors",
    message: "ext filesystem {uuid} records detected errors (s_state {state}); the guest may run fsck or mount it read-only at boot",
    remedy: "run `e2fsck -fy /dev/sdXN` on the partition before converting",
    explain: "s_state's error bit is set when the kernel found an inconsistency. Distributions run fsck at boot, and errors=remount-ro may make the root filesystem read-only.",
  },
  {
    code: "EXT4_SUPERBLOCK_CHECKSUM", severity: "error", stage: "image",
    title: "ext superblock checksum mismatch",
    message: "ext filesystem {uuid} superblock checksum is {stored}, computed {computed}; the kernel refuses to mount it",
    remedy: "repair it with `e2fsck -fy /dev/sdXN` (it can rebuild the superblock from a backup: `e2fsck -b 32768`)",
    explain: "With metadata_csum the kernel verifies the superblock's crc32c at mount and fails the mount when it does not match.",
  },
]);

interface Superblock {
  blockSize: number; blocksCount: number; firstDataBlock: number; blocksPerGroup: number;
  inodesCount: number; inodesPerGroup: number; inodeSize: number; groups: number; descSize: number;
  compat: number; incompat: number; roCompat: number; firstMetaBg: number; state: number;
  uuid: string; label: string;
}

function bad(msg: string): ImageError { return corrupt("E_EXT4_SUPERBLOCK", msg); }

function parseSuperblock(sb: Buffer, devBytes: number): Superblock {
  const magic = sb.readUInt16LE(0x38);
  if (magic !== EXT4_SUPER_MAGIC) throw bad(`superblock magic ${hex(magic, 4)}, expected 0xef53`);
  const logBs = sb.readUInt32LE(0x18);
  if (logBs > 6) throw bad(`s_log_block_size ${logBs} (block size 1 KiB..64 KiB allowed)`);
  const blockSize = 1024 << logBs;
  const incompat = sb.readUInt32LE(0x60), compat = sb.readUInt32LE(0x5c), roCompat = sb.readUInt32LE(0x64);
  let unknown = incompat;
  for (const [bit] of INCOMPAT_KNOWN) unknown &= ~bit;
  for (let bit = 1; unknown; bit = (bit << 1) >>> 0) {
    if (!(unknown & bit)) continue;
    const name = INCOMPAT_UNSUPPORTED[bit];
    throw unsupported("E_EXT4_UNSUPPORTED_FEATURE", `ext incompatible feature ${hex(bit)}${name ? ` (${name})` : ""} is not supported`);
  }
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const blocksCount = sb.readUInt32LE(0x04) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
  const firstDataBlock = sb.readUInt32LE(0x14);
  const blocksPerGroup = sb.readUInt32LE(0x20), inodesPerGroup = sb.readUInt32LE(0x28);
  const inodesCount = sb.readUInt32LE(0x00);
  const revLevel = sb.readUInt32LE(0x4c);
  const inodeSize = revLevel === 0 ? 128 : sb.readUInt16LE(0x58);
  const descSize = is64 ? sb.readUInt16LE(0xfe) : 32;
  if (firstDataBlock !== (blockSize === 1024 ? 1 : 0) && firstDataBlock !== 0) throw bad(`s_first_data_block ${firstDataBlock} with ${blockSize}-byte blocks`);
  if (blocksPerGroup < 8 || blocksPerGroup > 8 * blockSize || blocksPerGroup % 8) throw bad(`s_blocks_per_group ${blocksPerGroup} (8..${8 * blockSize})`);
  if (inodesPerGroup < 1 || inodesPerGroup > 8 * blockSize) throw bad(`s_inodes_per_group ${inodesPerGroup} (1..${8 * blockSize})`);
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1))) throw bad(`s_inode_size ${inodeSize} (a power of two, 128..${blockSize})`);
  if (descSize < 32 || descSize > 1024 || (descSize & (descSize - 1)) || (is64 && descSize < 64)) throw bad(`s_desc_size ${descSize} (32 or 64..1024, a power of two)`);
  if (blocksCount <= firstDataBlock) throw bad(`s_blocks_count ${blocksCount} leaves no blocks after s_first_data_block ${firstDataBlock}`);
  const groups = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  if (groups > MAX_EXT4_GROUPS) throw overLimit("E_EXT4_SUPERBLOCK", `${groups} block groups, more than the ${MAX_EXT4_GROUPS} limit`);
  if (inodesCount < EXT4_ROOT_INO || inodesCount > groups * inodesPerGroup) {
    throw bad(`s_inodes_count ${inodesCount} does not fit ${groups} groups of ${inodesPerGroup} inodes`);
  }
  if (blocksCount * blockSize > devBytes) {
    throw truncated("E_EXT4_TRUNCATED", `filesystem is ${blocksCount} blocks of ${blockSize} bytes (${blocksCount * blockSize} bytes) but the device holds ${devBytes} bytes`);
  }
  const label = sb.subarray(0x78, 0x88);
  const z = label.indexOf(0);
  return {
    blockSize, blocksCount, firstDataBlock, blocksPerGroup, inodesCount, inodesPerGroup, inodeSize, groups, descSize,
    compat, incompat, roCompat, firstMetaBg: sb.readUInt32LE(0x104), state: sb.readUInt16LE(0x3a),
    uuid: uuidText(sb.subarray(0x68, 0x78)), label: (z < 0 ? label : label.subarray(0, z)).toString("utf8"),
  };
}

/** Cheap signature check: the ext superblock magic at 1080. */
export function probeExt4(dev: BlockDevice): boolean {
  if (dev.sectorCount * dev.sectorSize < SUPERBLOCK_OFFSET + 1024) return false;
  return dev.readBytes(SUPERBLOCK_OFFSET + 0x38, 2).readUInt16LE(0) === EXT4_SUPER_MAGIC;
}

interface ExtHandle { readonly __fileHandle: true; readonly ino: number }

/** Bounded caches: at most this many parsed inodes / directories / block maps. */
const INODE_CACHE = 4096;
const DIR_CACHE_BYTES = 16 * 1024 * 1024;
const RUNS_CACHE_ENTRIES = 256 * 1024;

class ExtFs implements FileSystem, ExtGeometry {
  readonly kind: string;
  readonly label?: string;
  readonly uuid: string;
  readonly blockSize: number;
  readonly blocksCount: number;
  readonly inodeSize: number;
  readonly details: Record<string, unknown>;
  private blocks = new LruCache<number, Buffer>(FS_METADATA_CACHE_BYTES);
  private inodes = new LruCache<number, Inode>(INODE_CACHE);
  private dirs = new LruCache<number, Map<string, DirEntry>>(DIR_CACHE_BYTES);
  private runsCache = new LruCache<number, Run[]>(RUNS_CACHE_ENTRIES);
  private readonly diskSector: number;

  constructor(private dev: BlockDevice, private sb: Superblock) {
    this.blockSize = sb.blockSize;
    this.blocksCount = sb.blocksCount;
    this.inodeSize = sb.inodeSize;
    this.uuid = sb.uuid;
    this.label = sb.label || undefined;
    this.kind = sb.incompat & ~EXT3_INCOMPAT || sb.roCompat & ~EXT3_RO_COMPAT ? "ext4" : sb.compat & COMPAT_HAS_JOURNAL ? "ext3" : "ext2";
    this.diskSector = dev.sectorSize;
    const features: string[] = [];
    for (const [bit, name] of INCOMPAT_KNOWN) if (sb.incompat & bit) features.push(name);
    if (sb.roCompat & RO_COMPAT_METADATA_CSUM) features.push("metadata_csum");
    if (sb.compat & COMPAT_HAS_JOURNAL) features.push("has_journal");
    this.details = {
      blockSize: sb.blockSize, blocksCount: sb.blocksCount, groups: sb.groups, inodeSize: sb.inodeSize,
      descSize: sb.descSize, features, incompat: hex(sb.incompat), roCompat: hex(sb.roCompat), compat: hex(sb.compat),
    };
  }

  readBlock(block: number): Buffer {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.blocksCount) {
      throw corrupt("E_EXT4_BLOCK_RANGE", `block ${block} lies outside the filesystem's ${this.blocksCount} blocks`);
    }
    let b = this.blocks.get(block);
    if (!b) {
      b = this.dev.readBytes(block * this.blockSize, this.blockSize);
      this.blocks.set(block, b, this.blockSize);
    }
    return b;
  }

  private groupHasSuper(g: number): boolean {
    if (g <= 1 || !(this.sb.roCompat & RO_COMPAT_SPARSE_SUPER)) return true;
    for (const p of [3, 5, 7]) { let x = p; while (x < g) x *= p; if (x === g) return true; }
    return false;
  }

  /** The block holding group `g`'s descriptor, and the descriptor's offset in it ("Meta Block Groups"). */
  private descriptor(g: number): Buffer {
    const perBlock = this.blockSize / this.sb.descSize;
    const d = Math.floor(g / perBlock);
    let block: number;
    if (!(this.sb.incompat & INCOMPAT_META_BG) || d < this.sb.firstMetaBg) {
      block = this.sb.firstDataBlock + 1 + d;
    } else {
      const g0 = d * perBlock;
      block = this.sb.firstDataBlock + g0 * this.sb.blocksPerGroup + (this.groupHasSuper(g0) ? 1 : 0);
    }
    const off = (g % perBlock) * this.sb.descSize;
    return this.readBlock(block).subarray(off, off + this.sb.descSize);
  }

  private inode(ino: number): Inode {
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > this.sb.inodesCount) {
      throw corrupt("E_EXT4_INODE", `inode number ${ino} outside 1..${this.sb.inodesCount}`);
    }
    const hit = this.inodes.get(ino);
    if (hit) return hit;
    const g = Math.floor((ino - 1) / this.sb.inodesPerGroup), idx = (ino - 1) % this.sb.inodesPerGroup;
    const gd = this.descriptor(g);
    const table = gd.readUInt32LE(0x08) + (this.sb.descSize >= 64 ? gd.readUInt32LE(0x28) * 2 ** 32 : 0);
    const tableBlocks = Math.ceil(this.sb.inodesPerGroup * this.inodeSize / this.blockSize);
    if (table === 0 || table + tableBlocks > this.blocksCount) {
      throw corrupt("E_EXT4_GROUP_DESC", `group ${g} inode table at block ${table} (+${tableBlocks}) lies outside the filesystem's ${this.blocksCount} blocks`);
    }
    const byte = idx * this.inodeSize;
    const blk = table + Math.floor(byte / this.blockSize);
    const off = byte % this.blockSize;
    const raw = Buffer.from(this.readBlock(blk).subarray(off, off + this.inodeSize));
    const ind = parseInode(ino, raw);
    this.inodes.set(ino, ind, 1);
    return ind;
  }

  private handle(ino: number): FileHandle { return { __fileHandle: true, ino } as ExtHandle as FileHandle; }
  private ino(h: FileHandle): number { return (h as unknown as ExtHandle).ino; }

  root(): FileHandle { return this.handle(EXT4_ROOT_INO); }

  stat(h: FileHandle): FileStat {
    const ind = this.inode(this.ino(h));
    const t = ind.mode & S_IFMT;
    const type = t === S_IFREG ? "file" : t === S_IFDIR ? "dir" : t === S_IFLNK ? "symlink" : "other";
    return { type, size: ind.size, mode: ind.mode, id: ind.ino };
  }

  private runs(ind: Inode): Run[] {
    let r = this.runsCache.get(ind.ino);
    if (!r) {
      r = blockRuns(this, ind);
      this.runsCache.set(ind.ino, r, Math.max(1, r.length));
    }
    return r;
  }

  private guardReadable(ind: Inode): void {
    if (ind.flags & EXT4_ENCRYPT_FL) throw unsupported("E_EXT4_ENCRYPTED", `inode ${ind.ino} is encrypted (fscrypt); its contents cannot be read`);
  }

  /** Bytes [offset, offset+length) of an inode's data, holes and uninitialized extents as zeros. */
  private readData(ind: Inode, offset: number, length: number): Buffer {
    this.guardReadable(ind);
    const end = Math.min(ind.size, offset + Math.max(0, length));
    if (offset >= end) return Buffer.alloc(0);
    if (ind.flags & EXT4_INLINE_DATA_FL) return Buffer.from(inlineFileData(this, ind).subarray(offset, end));
    const out = Buffer.alloc(end - offset);
    const bs = this.blockSize;
    const runs = this.runs(ind);
    let i = Math.max(0, findRun(runs, Math.floor(offset / bs)));
    for (; i < runs.length; i++) {
      const r = runs[i];
      const rs = r.logical * bs, re = rs + r.count * bs;
      if (rs >= end) break;
      if (re <= offset || r.uninit) continue;
      const s = Math.max(rs, offset), e = Math.min(re, end);
      for (let p = s; p < e; p += READ_CHUNK) {
        const n = Math.min(READ_CHUNK, e - p);
        this.dev.readBytes(r.physical * bs + (p - rs), n).copy(out, p - offset);
      }
    }
    return out;
  }

  read(h: FileHandle, offset: number, length: number): Buffer {
    const ind = this.inode(this.ino(h));
    if ((ind.mode & S_IFMT) === S_IFDIR) throw new ImageError("E_FS_IS_DIRECTORY", "usage", `inode ${ind.ino} is a directory`);
    return this.readData(ind, offset, length);
  }

  readlink(h: FileHandle): string {
    const ind = this.inode(this.ino(h));
    if ((ind.mode & S_IFMT) !== S_IFLNK) throw new ImageError("E_FS_NOT_SYMLINK", "usage", `inode ${ind.ino} is not a symbolic link`);
    if (ind.size > MAX_SYMLINK_BYTES) throw corrupt("E_EXT4_SYMLINK", `symlink inode ${ind.ino} has a ${ind.size}-byte target (limit ${MAX_SYMLINK_BYTES})`);
    const data = isFastSymlink(this, ind) ? ind.iblock.subarray(0, ind.size) : this.readData(ind, 0, ind.size);
    return data.toString("utf8");
  }

  private directory(ind: Inode): Map<string, DirEntry> {
    const hit = this.dirs.get(ind.ino);
    if (hit) return hit;
    if ((ind.mode & S_IFMT) !== S_IFDIR) throw new ImageError("E_FS_NOT_DIRECTORY", "usage", `inode ${ind.ino} is not a directory`);
    this.guardReadable(ind);
    const hasFt = (this.sb.incompat & INCOMPAT_FILETYPE) !== 0;
    const list: DirEntry[] = [];
    const where = `directory inode ${ind.ino}`;
    if (ind.flags & EXT4_INLINE_DATA_FL) {
      // Inline directory: 4-byte parent inode, entries in the rest of i_block, more in system.data.
      const { head, tail } = inlineParts(this, ind);
      parseDirEntries(head.subarray(4), this.blockSize, hasFt, this.sb.inodesCount, where, list);
      if (tail.length) parseDirEntries(tail, this.blockSize, hasFt, this.sb.inodesCount, where, list);
    } else {
      if (ind.size > MAX_EXT4_DIR_BYTES) throw overLimit("E_EXT4_DIR_TOO_LARGE", `${where} is ${ind.size} bytes, more than the ${MAX_EXT4_DIR_BYTES}-byte limit`);
      if (ind.size % this.blockSize) throw corrupt("E_EXT4_DIRENT", `${where} size ${ind.size} is not a multiple of the ${this.blockSize}-byte block`);
      const bs = this.blockSize;
      for (const r of this.runs(ind)) {
        for (let k = 0; k < r.count && (r.logical + k) * bs < ind.size; k++) {
          if (r.uninit) continue;
          parseDirEntries(this.readBlock(r.physical + k), bs, hasFt, this.sb.inodesCount, `${where} block ${r.logical + k}`, list);
        }
      }
    }
    const map = new Map<string, DirEntry>();
    for (const e of list) if (!map.has(e.name)) map.set(e.name, e);
    this.dirs.set(ind.ino, map, 64 + list.reduce((a, e) => a + e.name.length + 32, 0));
    return map;
  }

  readdir(h: FileHandle): string[] {
    return [...this.directory(this.inode(this.ino(h))).keys()];
  }

  lookup(dir: FileHandle, name: string): FileHandle | undefined {
    const ind = this.inode(this.ino(dir));
    const map = this.directory(ind);
    let e = map.get(name);
    if (!e && ind.flags & EXT4_CASEFOLD_FL) {
      // Casefolded directory (INCOMPAT_CASEFOLD): an approximation of utf8 casefolding.
      const want = name.normalize("NFKD").toLowerCase();
      for (const [k, v] of map) if (k.normalize("NFKD").toLowerCase() === want) { e = v; break; }
    }
    return e ? this.handle(e.ino) : undefined;
  }

  /** The inode's data on the disk (whole-disk LBAs); inline data and fast symlinks map to the inode's own sector. */
  extents(h: FileHandle): Extent[] {
    const ind = this.inode(this.ino(h));
    const ss = this.diskSector, bs = this.blockSize;
    if (ind.flags & EXT4_INLINE_DATA_FL || isFastSymlink(this, ind)) return ind.size ? this.inodeExtent(ind.ino) : [];
    const out: Extent[] = [];
    for (const r of this.runs(ind)) {
      if (r.uninit) continue;
      const fileEnd = Math.min(ind.size, (r.logical + r.count) * bs);
      const len = fileEnd - r.logical * bs;
      if (len <= 0) continue;
      const start = r.physical * bs;
      const lba = Math.floor(start / ss);
      pushDiskRuns(out, this.dev, lba, Math.ceil((start + len) / ss) - lba);
    }
    return out;
  }

  private inodeExtent(ino: number): Extent[] {
    const g = Math.floor((ino - 1) / this.sb.inodesPerGroup), idx = (ino - 1) % this.sb.inodesPerGroup;
    const gd = this.descriptor(g);
    const table = gd.readUInt32LE(0x08) + (this.sb.descSize >= 64 ? gd.readUInt32LE(0x28) * 2 ** 32 : 0);
    const byte = table * this.blockSize + idx * this.inodeSize;
    return deviceToDisk(this.dev, Math.floor(byte / this.diskSector), 1);
  }
}

/** Open an ext2/3/4 filesystem read-only. Throws ImageError (E_EXT4_*) for corrupt or unsupported input. */
export function openExt4(dev: BlockDevice): FileSystem & { details: Record<string, unknown> } {
  const devBytes = dev.sectorCount * dev.sectorSize;
  if (devBytes < SUPERBLOCK_OFFSET + 1024) throw truncated("E_EXT4_TRUNCATED", `device of ${devBytes} bytes ends before the ext superblock (1024..2048)`);
  const raw = dev.readBytes(SUPERBLOCK_OFFSET, 1024);
  const sb = parseSuperblock(raw, devBytes);
  const findings = dev.info.findings;
  if (sb.roCompat & RO_COMPAT_METADATA_CSUM && raw[0x175] === EXT4_CRC32C_CHKSUM) {
    const stored = raw.readUInt32LE(SB_CHECKSUM_OFFSET);
    const computed = (~crc32c(raw.subarray(0, SB_CHECKSUM_OFFSET))) >>> 0;
    if (stored !== computed) findings.push(finding("EXT4_SUPERBLOCK_CHECKSUM", { uuid: sb.uuid, stored: hex(stored), computed: hex(computed) }));
  }
  if (sb.incompat & INCOMPAT_RECOVER) findings.push(finding("EXT4_NEEDS_RECOVERY", { uuid: sb.uuid }));
  if (sb.state & EXT4_ERROR_FS) findings.push(finding("EXT4_ERRORS_RECORDED", { uuid: sb.uuid, state: hex(sb.state, 4) }));
  const fs = new ExtFs(dev, sb);
  if (fs.stat(fs.root()).type !== "dir") throw corrupt("E_EXT4_INODE", `root inode ${EXT4_ROOT_INO} is not a directory`);
  return fs;
}
