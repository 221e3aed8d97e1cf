// XFS data-fork block maps: packed extent records and the bmap B+tree (XFS Algorithms & Data
// Structures, "Data Extents" 15.1 xfs_bmbt_rec and "Extent B+tree" 15.3 xfs_bmdr_block / xfs_btree_lblock).
import { corrupt, hex, overLimit } from "./errors.ts";
import { XFS_MAX_BMBT_DEPTH, XFS_MAX_FILE_EXTENTS } from "./limits.ts";
export { XFS_MAX_BMBT_DEPTH, XFS_MAX_FILE_EXTENTS } from "./limits.ts";

/** One mapping of file blocks [off, off+count) to filesystem blocks (fsbno, AG-encoded). */
export interface XfsExtent { off: number; fsbno: number; count: number; unwritten: boolean }

/** Bmap B+tree block magics: v4 "BMAP", v5 (CRC) "BMA3". */
export const XFS_BMAP_MAGIC = 0x424d4150;
export const XFS_BMAP_CRC_MAGIC = 0x424d4133;
/** Long-format btree block header: 24 bytes (v4), 72 bytes with the v5 CRC fields. */
const LBLOCK_HDR_V4 = 24;
const LBLOCK_HDR_V5 = 72;
/** Offset of bb_crc inside a v5 long btree block. */
export const LBLOCK_CRC_OFF = 64;

/** What the walker needs from the filesystem. */
export interface BmapContext {
  blockSize: number;
  v5: boolean;
  /** Read one filesystem block by AG-encoded block number (validated by the caller's map). */
  readFsBlock(fsbno: number, what: string): Buffer;
  /** Check a v5 block CRC; report a mismatch as a finding. */
  checkCrc(buf: Buffer, crcOff: number, what: string): void;
  /** Check that [fsbno, fsbno+count) lies inside the filesystem; throws otherwise. */
  checkRange(fsbno: number, count: number, what: string): void;
}

const TWO32 = 2 ** 32;

/** Decode `n` 16-byte big-endian extent records at `pos` (bit 127 flag, 54-bit offset, 52-bit block, 21-bit count). */
export function decodeExtents(buf: Buffer, pos: number, n: number, out: XfsExtent[], ctx: BmapContext, owner: number): void {
  if (pos + n * 16 > buf.length) {
    throw corrupt("E_XFS_BMAP", `inode ${owner}: ${n} extent records do not fit in ${buf.length - pos} bytes`);
  }
  if (out.length + n > XFS_MAX_FILE_EXTENTS) {
    throw overLimit("E_XFS_EXTENTS", `inode ${owner} has more than ${XFS_MAX_FILE_EXTENTS} extents`);
  }
  for (let i = 0; i < n; i++) {
    const p = pos + i * 16;
    const h0 = buf.readUInt32BE(p), l0 = buf.readUInt32BE(p + 4);
    const h1 = buf.readUInt32BE(p + 8), l1 = buf.readUInt32BE(p + 12);
    const unwritten = (h0 >>> 31) === 1;
    // startoff = bits 126..73: (h0 & 0x7fffffff) << 23 | l0 >>> 9
    const off = (h0 & 0x7fffffff) * 2 ** 23 + Math.floor(l0 / 512);
    // startblock = bits 72..21: (l0 & 0x1ff) << 43 | h1 << 11 | l1 >>> 21
    const fsbno = (l0 & 0x1ff) * 2 ** 43 + h1 * 2 ** 11 + Math.floor(l1 / 2 ** 21);
    const count = l1 & 0x1fffff;
    if (count === 0) throw corrupt("E_XFS_BMAP", `inode ${owner}: extent ${out.length} has a zero block count`);
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(fsbno) || fsbno + count > 2 ** 52) {
      throw corrupt("E_XFS_BMAP", `inode ${owner}: extent ${out.length} out of range (offset ${off}, block ${fsbno})`);
    }
    const prev = out[out.length - 1];
    if (prev && off < prev.off + prev.count) {
      throw corrupt("E_XFS_BMAP", `inode ${owner}: extent at file block ${off} overlaps or precedes the previous one ending at ${prev.off + prev.count}`);
    }
    ctx.checkRange(fsbno, count, `inode ${owner} extent ${out.length}`);
    out.push({ off, fsbno, count, unwritten });
  }
}

const u64 = (b: Buffer, p: number, what: string): number => {
  const hi = b.readUInt32BE(p), lo = b.readUInt32BE(p + 4);
  const v = hi * TWO32 + lo;
  if (!Number.isSafeInteger(v)) throw corrupt("E_XFS_BMAP", `${what}: 64-bit value ${hex(hi)}${lo.toString(16).padStart(8, "0")} is out of range`);
  return v;
};

/**
 * Walk a bmap B+tree from its in-inode root (xfs_bmdr_block: level, numrecs, keys, then pointers
 * at 4 + maxrecs*8 where maxrecs = (forkSize - 4) / 16) and append every leaf record to `out`.
 */
export function walkBmbtRoot(fork: Buffer, ctx: BmapContext, owner: number, out: XfsExtent[]): void {
  if (fork.length < 4) throw corrupt("E_XFS_BMAP", `inode ${owner}: B+tree root in a ${fork.length}-byte fork`);
  const level = fork.readUInt16BE(0), numrecs = fork.readUInt16BE(2);
  const maxrecs = Math.floor((fork.length - 4) / 16);
  if (level < 1 || level > XFS_MAX_BMBT_DEPTH) {
    throw corrupt("E_XFS_BMAP", `inode ${owner}: bmap B+tree root level ${level} (allowed 1..${XFS_MAX_BMBT_DEPTH})`);
  }
  if (numrecs < 1 || numrecs > maxrecs) {
    throw corrupt("E_XFS_BMAP", `inode ${owner}: bmap B+tree root holds ${numrecs} pointers, room for ${maxrecs}`);
  }
  const budget = { blocks: 0 };
  for (let i = 0; i < numrecs; i++) {
    const ptr = u64(fork, 4 + maxrecs * 8 + i * 8, `inode ${owner} B+tree root`);
    walkNode(ptr, level - 1, ctx, owner, out, budget);
  }
}

function walkNode(fsbno: number, level: number, ctx: BmapContext, owner: number, out: XfsExtent[], budget: { blocks: number }): void {
  // Every block holds at least one record, so more blocks than the extent cap is a cycle or garbage.
  if (++budget.blocks > XFS_MAX_FILE_EXTENTS) {
    throw overLimit("E_XFS_EXTENTS", `inode ${owner}: bmap B+tree has more than ${XFS_MAX_FILE_EXTENTS} blocks`);
  }
  ctx.checkRange(fsbno, 1, `inode ${owner} B+tree block`);
  const b = ctx.readFsBlock(fsbno, `bmap B+tree block of inode ${owner}`);
  const magic = b.readUInt32BE(0);
  const want = ctx.v5 ? XFS_BMAP_CRC_MAGIC : XFS_BMAP_MAGIC;
  if (magic !== want) {
    throw corrupt("E_XFS_BMAP", `inode ${owner}: bmap B+tree block ${fsbno} has magic ${hex(magic)}, expected ${hex(want)}`);
  }
  const lvl = b.readUInt16BE(4), numrecs = b.readUInt16BE(6);
  if (lvl !== level) {
    throw corrupt("E_XFS_BMAP", `inode ${owner}: bmap B+tree block ${fsbno} is at level ${lvl}, expected ${level}`);
  }
  const hdr = ctx.v5 ? LBLOCK_HDR_V5 : LBLOCK_HDR_V4;
  if (ctx.v5) {
    ctx.checkCrc(b, LBLOCK_CRC_OFF, `bmap B+tree block ${fsbno} of inode ${owner}`);
    const o = u64(b, 56, `bmap block ${fsbno}`);
    if (o !== owner) throw corrupt("E_XFS_BMAP", `bmap B+tree block ${fsbno} belongs to inode ${o}, reached from inode ${owner}`);
  }
  if (level === 0) {
    const maxrecs = Math.floor((ctx.blockSize - hdr) / 16);
    if (numrecs < 1 || numrecs > maxrecs) throw corrupt("E_XFS_BMAP", `inode ${owner}: bmap leaf ${fsbno} holds ${numrecs} records, room for ${maxrecs}`);
    decodeExtents(b, hdr, numrecs, out, ctx, owner);
    return;
  }
  const maxrecs = Math.floor((ctx.blockSize - hdr) / 16);
  if (numrecs < 1 || numrecs > maxrecs) throw corrupt("E_XFS_BMAP", `inode ${owner}: bmap node ${fsbno} holds ${numrecs} pointers, room for ${maxrecs}`);
  const ptrs: number[] = [];
  for (let i = 0; i < numrecs; i++) ptrs.push(u64(b, hdr + maxrecs * 8 + i * 8, `bmap node ${fsbno}`));
  for (const p of ptrs) walkNode(p, level - 1, ctx, owner, out, budget);
}
