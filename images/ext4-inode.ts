// ext2/3/4 inodes and their block maps (kernel Documentation/filesystems/ext4, "Index Nodes",
// "The Contents of inode.i_block", "Extent Tree", "Inline Data"): direct/indirect/double/triple
// block pointers, extent trees with index nodes, and inline data in the system.data xattr.
import { corrupt, overLimit, hex } from "./errors.ts";
import { MAX_EXT4_EXTENT_DEPTH, MAX_EXT4_EXTENT_NODES, MAX_EXT4_FILE_RUNS } from "./limits.ts";

// i_mode file types (ext4 disk layout, "i_mode").
export const S_IFMT = 0xf000;
export const S_IFREG = 0x8000;
export const S_IFDIR = 0x4000;
export const S_IFLNK = 0xa000;

// i_flags (ext4 disk layout, "i_flags").
export const EXT4_ENCRYPT_FL = 0x800;
export const EXT4_INDEX_FL = 0x1000;
export const EXT4_HUGE_FILE_FL = 0x40000;
export const EXT4_EXTENTS_FL = 0x80000;
export const EXT4_INLINE_DATA_FL = 0x10000000;
export const EXT4_CASEFOLD_FL = 0x40000000;

/** ext4_extent_header.eh_magic ("Extent Tree"). */
const EXT4_EXT_MAGIC = 0xf30a;
/** ext4_extent.ee_len above this marks an uninitialized extent (reads as zeros). */
const EXT_INIT_MAX_LEN = 32768;
/** In-inode extended attribute area magic (ext4_xattr_ibody_header.h_magic). */
const EXT4_XATTR_MAGIC = 0xea020000;
/** xattr name index of the "system." namespace; inline data lives in "system.data". */
const EXT4_XATTR_INDEX_SYSTEM = 7;
/** i_block is 15 32-bit words: 12 direct, one indirect, one double, one triple indirect. */
export const I_BLOCK_BYTES = 60;

/** What an inode reader needs of the filesystem. */
export interface ExtGeometry {
  blockSize: number;
  blocksCount: number;
  inodeSize: number;
  /** A metadata block through the bounded cache. */
  readBlock(block: number): Buffer;
}

export interface Inode {
  ino: number;
  mode: number;
  size: number;
  links: number;
  flags: number;
  /** i_blocks in 512-byte units (filesystem blocks with HUGE_FILE_FL). */
  blocks: number;
  fileAcl: number;
  /** The 60 bytes of i_block. */
  iblock: Buffer;
  /** The whole on-disk inode (inode_size bytes). */
  raw: Buffer;
}

/** A run of file blocks: `count` blocks from logical block `logical` at physical block `physical`. */
export interface Run { logical: number; physical: number; count: number; uninit: boolean }

export function parseInode(ino: number, raw: Buffer): Inode {
  const sizeHi = raw.readUInt32LE(0x6c);
  if (sizeHi >= 2 ** 21) throw corrupt("E_EXT4_INODE", `inode ${ino} size high word ${hex(sizeHi)} makes the file larger than 2^53 bytes`);
  return {
    ino,
    mode: raw.readUInt16LE(0x00),
    size: raw.readUInt32LE(0x04) + sizeHi * 2 ** 32,
    links: raw.readUInt16LE(0x1a),
    blocks: raw.readUInt32LE(0x1c) + raw.readUInt16LE(0x74) * 2 ** 32,
    flags: raw.readUInt32LE(0x20),
    fileAcl: raw.readUInt32LE(0x68) + raw.readUInt16LE(0x76) * 2 ** 32,
    iblock: raw.subarray(0x28, 0x28 + I_BLOCK_BYTES),
    raw,
  };
}

function checkBlock(g: ExtGeometry, ino: number, block: number, count: number, what: string): void {
  if (block === 0 || block + count > g.blocksCount) {
    throw corrupt("E_EXT4_BLOCK_RANGE", `inode ${ino} ${what} names block ${block} (+${count}), outside the filesystem's ${g.blocksCount} blocks`);
  }
}

/** The inode's data blocks as sorted, non-overlapping runs (holes are absent). */
export function blockRuns(g: ExtGeometry, ind: Inode): Run[] {
  return ind.flags & EXT4_EXTENTS_FL ? extentRuns(g, ind) : indirectRuns(g, ind);
}

/** Walk an extent tree ("Extent Tree": header, index nodes, leaves); depth strictly decreases. */
function extentRuns(g: ExtGeometry, ind: Inode): Run[] {
  const runs: Run[] = [];
  let nodes = 0;
  let nextLogical = 0;
  const walk = (node: Buffer, expectDepth: number | undefined, where: string): void => {
    if (++nodes > MAX_EXT4_EXTENT_NODES) {
      throw overLimit("E_EXT4_EXTENT_LIMIT", `inode ${ind.ino} extent tree has more than ${MAX_EXT4_EXTENT_NODES} nodes`);
    }
    const magic = node.readUInt16LE(0), entries = node.readUInt16LE(2), max = node.readUInt16LE(4), depth = node.readUInt16LE(6);
    if (magic !== EXT4_EXT_MAGIC) throw corrupt("E_EXT4_EXTENT", `inode ${ind.ino} extent header in ${where} has magic ${hex(magic, 4)}, expected 0xf30a`);
    const cap = Math.floor((node.length - 12) / 12);
    if (entries > max || max > cap) throw corrupt("E_EXT4_EXTENT", `inode ${ind.ino} extent node in ${where} claims ${entries} of ${max} entries; room for ${cap}`);
    if (depth > MAX_EXT4_EXTENT_DEPTH) throw corrupt("E_EXT4_EXTENT", `inode ${ind.ino} extent tree depth ${depth} exceeds ${MAX_EXT4_EXTENT_DEPTH}`);
    if (expectDepth !== undefined && depth !== expectDepth) {
      throw corrupt("E_EXT4_EXTENT", `inode ${ind.ino} extent node in ${where} has depth ${depth}, its parent expects ${expectDepth}`);
    }
    for (let i = 0; i < entries; i++) {
      const e = 12 + 12 * i;
      const lblk = node.readUInt32LE(e);
      if (depth === 0) {
        const len = node.readUInt16LE(e + 4);
        const phys = node.readUInt16LE(e + 6) * 2 ** 32 + node.readUInt32LE(e + 8);
        const uninit = len > EXT_INIT_MAX_LEN;
        const n = uninit ? len - EXT_INIT_MAX_LEN : len;
        if (n === 0) continue;
        if (lblk < nextLogical) {
          throw corrupt("E_EXT4_EXTENT", `inode ${ind.ino} extent for logical block ${lblk} overlaps or precedes the previous one (ends at ${nextLogical})`);
        }
        checkBlock(g, ind.ino, phys, n, "extent");
        if (runs.length >= MAX_EXT4_FILE_RUNS) throw overLimit("E_EXT4_EXTENT_LIMIT", `inode ${ind.ino} has more than ${MAX_EXT4_FILE_RUNS} extents`);
        runs.push({ logical: lblk, physical: phys, count: n, uninit });
        nextLogical = lblk + n;
      } else {
        const leaf = node.readUInt16LE(e + 8) * 2 ** 32 + node.readUInt32LE(e + 4);
        checkBlock(g, ind.ino, leaf, 1, "extent index");
        walk(g.readBlock(leaf), depth - 1, `block ${leaf}`);
      }
    }
  };
  walk(ind.iblock, undefined, "i_block");
  return runs;
}

/** Classic ext2/3 block map: 12 direct pointers, then single, double and triple indirect blocks. */
function indirectRuns(g: ExtGeometry, ind: Inode): Run[] {
  const per = g.blockSize / 4;
  const nblocks = Math.ceil(ind.size / g.blockSize);
  const runs: Run[] = [];
  const push = (logical: number, phys: number): void => {
    checkBlock(g, ind.ino, phys, 1, `block pointer for logical block ${logical}`);
    const last = runs[runs.length - 1];
    if (last && last.logical + last.count === logical && last.physical + last.count === phys) { last.count++; return; }
    if (runs.length >= MAX_EXT4_FILE_RUNS) throw overLimit("E_EXT4_EXTENT_LIMIT", `inode ${ind.ino} maps to more than ${MAX_EXT4_FILE_RUNS} block runs`);
    runs.push({ logical, physical: phys, count: 1, uninit: false });
  };
  const walk = (blk: number, level: number, base: number): void => {
    checkBlock(g, ind.ino, blk, 1, `level-${level} indirect block`);
    const b = g.readBlock(blk);
    const span = per ** (level - 1);
    for (let j = 0; j < per; j++) {
      const lb = base + j * span;
      if (lb >= nblocks) break;
      const p = b.readUInt32LE(4 * j);
      if (p === 0) continue;
      if (level === 1) push(lb, p); else walk(p, level - 1, lb);
    }
  };
  for (let i = 0; i < 12 && i < nblocks; i++) {
    const p = ind.iblock.readUInt32LE(4 * i);
    if (p) push(i, p);
  }
  let base = 12;
  for (let level = 1; level <= 3 && base < nblocks; level++) {
    const p = ind.iblock.readUInt32LE(44 + 4 * level);
    if (p) walk(p, level, base);
    base += per ** level;
  }
  if (base < nblocks) throw corrupt("E_EXT4_INODE", `inode ${ind.ino} size ${ind.size} needs ${nblocks} blocks, more than a triple-indirect map addresses`);
  return runs;
}

/** The value of the in-inode "system.data" xattr (the part of inline data beyond i_block), or empty. */
function inlineXattr(g: ExtGeometry, ind: Inode): Buffer {
  const raw = ind.raw;
  if (g.inodeSize <= 128) return Buffer.alloc(0);
  const extra = raw.readUInt16LE(0x80);
  const start = 128 + extra;
  if (extra % 4 || start + 4 > raw.length) throw corrupt("E_EXT4_INLINE", `inode ${ind.ino} i_extra_isize ${extra} does not fit its ${raw.length}-byte inode`);
  if (raw.readUInt32LE(start) !== EXT4_XATTR_MAGIC) return Buffer.alloc(0);
  const base = start + 4;
  let p = base;
  while (p + 16 <= raw.length && raw.readUInt32LE(p) !== 0) {
    const nameLen = raw[p], index = raw[p + 1];
    const valueOffs = raw.readUInt16LE(p + 2), valueInum = raw.readUInt32LE(p + 4), valueSize = raw.readUInt32LE(p + 8);
    if (p + 16 + nameLen > raw.length) break;
    const name = raw.subarray(p + 16, p + 16 + nameLen).toString("latin1");
    if (index === EXT4_XATTR_INDEX_SYSTEM && name === "data") {
      if (valueInum !== 0 || base + valueOffs + valueSize > raw.length) {
        throw corrupt("E_EXT4_INLINE", `inode ${ind.ino} system.data value (offset ${valueOffs}, ${valueSize} bytes, inode ${valueInum}) lies outside the inode`);
      }
      return raw.subarray(base + valueOffs, base + valueOffs + valueSize);
    }
    p += (16 + nameLen + 3) & ~3;
  }
  return Buffer.alloc(0);
}

/** Inline data ("Inline Data"): the 60 bytes of i_block followed by the system.data xattr value. */
export function inlineParts(g: ExtGeometry, ind: Inode): { head: Buffer; tail: Buffer } {
  return { head: ind.iblock, tail: inlineXattr(g, ind) };
}

export function inlineFileData(g: ExtGeometry, ind: Inode): Buffer {
  const { head, tail } = inlineParts(g, ind);
  if (ind.size > head.length + tail.length) {
    throw corrupt("E_EXT4_INLINE", `inode ${ind.ino} has ${ind.size} bytes of inline data but room for ${head.length + tail.length}`);
  }
  return Buffer.concat([head, tail]).subarray(0, ind.size);
}

/** Fast symlinks keep the target in i_block (the kernel's ext4_inode_is_fast_symlink rule). */
export function isFastSymlink(g: ExtGeometry, ind: Inode): boolean {
  if ((ind.mode & S_IFMT) !== S_IFLNK || ind.flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL)) return false;
  const unit = ind.flags & EXT4_HUGE_FILE_FL ? g.blockSize / 512 : 1;
  const eaBlocks = ind.fileAcl ? g.blockSize / 512 : 0;
  return ind.blocks * unit - eaBlocks <= 0 && ind.size < I_BLOCK_BYTES;
}

/** Index of the run holding logical block `lb`, or of the last run before it (-1 if none). */
export function findRun(runs: Run[], lb: number): number {
  let lo = 0, hi = runs.length - 1, ans = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (runs[mid].logical <= lb) { ans = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return ans;
}
