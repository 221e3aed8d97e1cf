// NTFS directory indexes ($I30): $INDEX_ROOT, INDX blocks of $INDEX_ALLOCATION, index entries
// keyed by $FILE_NAME, and upcase-table name comparison. Facts from the Linux-NTFS "NTFS
// Documentation" ("Index root", "Index record", "Index entry", "$FILE_NAME", "$UpCase").
import { corrupt, hex } from "./errors.ts";
import { MAX_NTFS_DIR_ENTRIES } from "./limits.ts";
import { refRecord } from "./ntfs-record.ts";

/** $FILE_NAME namespaces. */
export const NS_POSIX = 0, NS_WIN32 = 1, NS_DOS = 2, NS_WIN32_DOS = 3;
/** Index entry flags. */
const INDEX_ENTRY_NODE = 0x01, INDEX_ENTRY_END = 0x02;

export interface FileName {
  parent: number;
  name: string;
  namespace: number;
  /** File attribute flags as duplicated into the $FILE_NAME (FILE_ATTRIBUTE_*). */
  fileAttributes: number;
  dataSize: number;
}

export interface IndexEntry extends FileName { record: number; sequence: number }

/** One slot of an index node: an entry (absent for the end marker) and the sub-node VCN before it. */
export interface IndexSlot { entry?: IndexEntry; child?: number }

/** A $FILE_NAME value (attribute 0x30 or an index key). */
export function parseFileName(b: Buffer, what: string): FileName {
  if (b.length < 66) throw corrupt("E_NTFS_FILE_NAME", `${what}: $FILE_NAME of ${b.length} bytes (at least 66)`);
  const n = b[64];
  if (66 + n * 2 > b.length) throw corrupt("E_NTFS_FILE_NAME", `${what}: $FILE_NAME name of ${n} characters runs past its ${b.length} bytes`);
  return {
    parent: refRecord(b, 0),
    dataSize: Number(b.readBigUInt64LE(48) & 0xffffffffffffn),
    fileAttributes: b.readUInt32LE(56),
    namespace: b[65],
    name: b.toString("utf16le", 66, 66 + n * 2),
  };
}

/**
 * The slots of one index node (root or INDX block): `buf` holds the node, `hdr` is the offset of
 * its index header (entries offset, total size, allocated size, flags). Each slot may name the
 * sub-node (VCN in $INDEX_ALLOCATION) holding the names that sort before it.
 */
export function indexNodeEntries(buf: Buffer, hdr: number, out: IndexSlot[], what: string): void {
  if (hdr + 16 > buf.length) throw corrupt("E_NTFS_INDEX", `${what}: index header past the end of the node`);
  const first = buf.readUInt32LE(hdr), total = buf.readUInt32LE(hdr + 4);
  const end = hdr + total;
  if (first < 16 || end > buf.length || hdr + first > end) {
    throw corrupt("E_NTFS_INDEX", `${what}: index entries from ${first} to ${total} do not fit a ${buf.length - hdr}-byte node`);
  }
  let p = hdr + first;
  while (p + 16 <= end) {
    const len = buf.readUInt16LE(p + 8), keyLen = buf.readUInt16LE(p + 10), flags = buf.readUInt16LE(p + 12);
    if (len < 16 || len % 8 !== 0 || p + len > end) throw corrupt("E_NTFS_INDEX", `${what}: index entry at ${p} has length ${len}`);
    const child = flags & INDEX_ENTRY_NODE ? (len >= 24 ? Number(buf.readBigUInt64LE(p + len - 8)) : -1) : undefined;
    if (child !== undefined && !(child >= 0 && child < 2 ** 40)) throw corrupt("E_NTFS_INDEX", `${what}: index entry at ${p} points at sub-node VCN ${child}`);
    if (flags & INDEX_ENTRY_END) { out.push({ child }); return; }
    const keyEnd = 16 + keyLen + (flags & INDEX_ENTRY_NODE ? 8 : 0);
    if (keyEnd > len) throw corrupt("E_NTFS_INDEX", `${what}: index entry at ${p} has a ${keyLen}-byte key in ${len} bytes`);
    const fn = parseFileName(buf.subarray(p + 16, p + 16 + keyLen), what);
    out.push({ entry: { ...fn, record: refRecord(buf, p), sequence: buf.readUInt16LE(p + 6) }, child });
    if (out.length > MAX_NTFS_DIR_ENTRIES) throw corrupt("E_NTFS_INDEX", `${what}: more than ${MAX_NTFS_DIR_ENTRIES} entries`);
    p += len;
  }
  throw corrupt("E_NTFS_INDEX", `${what}: index node has no end entry`);
}

/** $INDEX_ROOT value: indexed attribute type, collation, index block size, then the root node. */
export function parseIndexRoot(v: Buffer, out: IndexSlot[], what: string): { blockSize: number; large: boolean } {
  if (v.length < 32) throw corrupt("E_NTFS_INDEX", `${what}: $INDEX_ROOT of ${v.length} bytes`);
  const type = v.readUInt32LE(0);
  if (type !== 0x30) throw corrupt("E_NTFS_INDEX", `${what}: $I30 index of attribute type ${hex(type, 2)}, not $FILE_NAME`);
  const blockSize = v.readUInt32LE(8);
  indexNodeEntries(v, 16, out, what);
  return { blockSize, large: (v[16 + 12] & 1) !== 0 };
}

/** Upcase one name per UTF-16 code unit with the volume's $UpCase table (or a JS fallback). */
export function upcaseName(s: string, table: Uint16Array | undefined): string {
  let o = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (table) o += String.fromCharCode(table[c]);
    else {
      const u = s[i].toUpperCase();
      o += u.length === 1 ? u : s[i];
    }
  }
  return o;
}
