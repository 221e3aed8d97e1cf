// XFS version 2 directories: short-form (in the inode) and data blocks of the block, leaf and node
// formats (XFS Algorithms & Data Structures, "Directories" 16.1-16.5: xfs_dir2_sf_hdr,
// xfs_dir2_data_hdr / xfs_dir3_data_hdr, xfs_dir2_data_entry, xfs_dir2_data_unused, xfs_dir2_block_tail).
import { corrupt, hex, overLimit } from "./errors.ts";

export interface DirEntry { name: string; ino: number }

/** Data block magics: single-block directories "XD2B"/"XDB3", multi-block data "XD2D"/"XDD3". */
export const XFS_DIR2_BLOCK_MAGIC = 0x58443242;
export const XFS_DIR3_BLOCK_MAGIC = 0x58444233;
export const XFS_DIR2_DATA_MAGIC = 0x58443244;
export const XFS_DIR3_DATA_MAGIC = 0x58444433;
/** Data block header sizes: magic + 3 bestfree (v4); v5 adds crc, blkno, lsn, uuid, owner and pad. */
const DATA_HDR_V4 = 16;
const DATA_HDR_V5 = 64;
/** Offset of the CRC and owner in a v5 data block header. */
export const DIR3_CRC_OFF = 4;
const DIR3_OWNER_OFF = 40;
/** A free region in a data block starts with this tag. */
const DIR2_DATA_FREE_TAG = 0xffff;
/** Directory data lives below this byte offset of the directory's address space (32 GiB). */
export const XFS_DIR2_LEAF_OFFSET = 32 * 2 ** 30;

const TWO32 = 2 ** 32;

export interface DirFormat {
  /** Entries carry a one-byte file type after the name (v5, or v4 with features2 FTYPE). */
  ftype: boolean;
  v5: boolean;
}

function readIno(b: Buffer, p: number, len: 4 | 8, what: string): number {
  if (len === 4) return b.readUInt32BE(p);
  const hi = b.readUInt32BE(p), lo = b.readUInt32BE(p + 4);
  const v = hi * TWO32 + lo;
  if (!Number.isSafeInteger(v)) throw corrupt("E_XFS_DIR", `${what}: inode number 0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")} is out of range`);
  return v;
}

const decodeName = (b: Buffer): string => b.toString("utf8");

/**
 * Short-form directory (16.2): header { count u8, i8count u8, parent 4|8 bytes }, then entries
 * { namelen u8, offset u16, name, [ftype u8], inumber 4|8 bytes }.
 */
export function parseShortform(d: Buffer, fmt: DirFormat, owner: number): { parent: number; entries: DirEntry[] } {
  if (d.length < 6) throw corrupt("E_XFS_DIR", `inode ${owner}: short-form directory of ${d.length} bytes`);
  const count = d[0], i8count = d[1];
  const inoLen: 4 | 8 = i8count ? 8 : 4;
  const what = `short-form directory inode ${owner}`;
  let p = 2;
  if (p + inoLen > d.length) throw corrupt("E_XFS_DIR", `${what}: header past the fork end`);
  const parent = readIno(d, p, inoLen, what);
  p += inoLen;
  const n = count; // every entry; i8count only says whether inode numbers take 8 bytes
  const entries: DirEntry[] = [];
  for (let i = 0; i < n; i++) {
    if (p + 3 > d.length) throw corrupt("E_XFS_DIR", `${what}: entry ${i} of ${n} starts past the ${d.length}-byte fork`);
    const namelen = d[p];
    if (namelen === 0) throw corrupt("E_XFS_DIR", `${what}: entry ${i} has an empty name`);
    const end = p + 3 + namelen + (fmt.ftype ? 1 : 0) + inoLen;
    if (end > d.length) throw corrupt("E_XFS_DIR", `${what}: entry ${i} (name length ${namelen}) runs past the ${d.length}-byte fork`);
    const name = decodeName(d.subarray(p + 3, p + 3 + namelen));
    const ino = readIno(d, end - inoLen, inoLen, what);
    entries.push({ name, ino });
    p = end;
  }
  return { parent, entries };
}

/**
 * Entries of one directory data block (16.3-16.5). `single` is true for a block-format directory,
 * whose leaf array and tail { count u32, stale u32 } end the block.
 */
export function parseDataBlock(b: Buffer, fmt: DirFormat, owner: number, dblock: number,
                               checkCrc: (what: string) => void, out: DirEntry[], maxEntries: number): void {
  const what = `directory inode ${owner} data block ${dblock}`;
  const magic = b.readUInt32BE(0);
  const single = fmt.v5 ? XFS_DIR3_BLOCK_MAGIC : XFS_DIR2_BLOCK_MAGIC;
  const multi = fmt.v5 ? XFS_DIR3_DATA_MAGIC : XFS_DIR2_DATA_MAGIC;
  if (magic !== single && magic !== multi) {
    throw corrupt("E_XFS_DIR", `${what}: magic ${hex(magic)}, expected ${hex(single)} or ${hex(multi)}`);
  }
  const hdr = fmt.v5 ? DATA_HDR_V5 : DATA_HDR_V4;
  if (fmt.v5) {
    checkCrc(what);
    const hi = b.readUInt32BE(DIR3_OWNER_OFF), lo = b.readUInt32BE(DIR3_OWNER_OFF + 4);
    if (hi * TWO32 + lo !== owner) throw corrupt("E_XFS_DIR", `${what}: owner inode ${hi * TWO32 + lo}, expected ${owner}`);
  }
  let end = b.length;
  if (magic === single) {
    const count = b.readUInt32BE(b.length - 8);
    if (count > (b.length - hdr - 8) / 8) throw corrupt("E_XFS_DIR", `${what}: block tail counts ${count} leaf entries`);
    end = b.length - 8 - count * 8;
  }
  let p = hdr;
  while (p < end) {
    if (p + 8 > end) throw corrupt("E_XFS_DIR", `${what}: record at byte ${p} crosses the data end ${end}`);
    if (b.readUInt16BE(p) === DIR2_DATA_FREE_TAG) {
      const len = b.readUInt16BE(p + 2);
      if (len < 8 || len % 8 !== 0 || p + len > end) throw corrupt("E_XFS_DIR", `${what}: free region at byte ${p} has length ${len}`);
      p += len;
      continue;
    }
    const namelen = b[p + 8];
    const size = Math.ceil((8 + 1 + namelen + (fmt.ftype ? 1 : 0) + 2) / 8) * 8;
    if (namelen === 0 || p + size > end) throw corrupt("E_XFS_DIR", `${what}: entry at byte ${p} (name length ${namelen}) runs past the data end ${end}`);
    const tag = b.readUInt16BE(p + size - 2);
    if (tag !== p) throw corrupt("E_XFS_DIR", `${what}: entry at byte ${p} carries tag ${tag}`);
    const name = decodeName(b.subarray(p + 9, p + 9 + namelen));
    if (name !== "." && name !== "..") {
      if (out.length >= maxEntries) throw overLimit("E_XFS_DIR_SIZE", `directory inode ${owner} has more than ${maxEntries} entries`);
      out.push({ name, ino: readIno(b, p, 8, what) });
    }
    p += size;
  }
}
