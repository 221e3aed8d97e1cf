// NTFS MFT records: update-sequence (fixup) arrays, attribute headers, runlists (mapping pairs).
// Facts from the Linux-NTFS project's "NTFS Documentation" (Richard Russon, Yuval Fledel): "FILE
// record", "Attribute header", "Data runs", "Fixup"; and [MS-FSCC] 2.4 (reparse) for constants.
import { corrupt, hex } from "./errors.ts";
import { MAX_NTFS_RUNS, MAX_VIRTUAL_SIZE } from "./limits.ts";

/** Attribute type codes ($AttrDef of every NTFS 3.x volume). */
export const AT_STANDARD_INFORMATION = 0x10, AT_ATTRIBUTE_LIST = 0x20, AT_FILE_NAME = 0x30,
  AT_VOLUME_NAME = 0x60, AT_VOLUME_INFORMATION = 0x70, AT_DATA = 0x80, AT_INDEX_ROOT = 0x90,
  AT_INDEX_ALLOCATION = 0xa0, AT_BITMAP = 0xb0, AT_REPARSE_POINT = 0xc0, AT_END = 0xffffffff;
/** Attribute header flags. */
export const ATTR_COMPRESSION_MASK = 0x00ff, ATTR_ENCRYPTED = 0x4000, ATTR_SPARSE = 0x8000;
/** FILE record header flags. */
export const MFT_IN_USE = 0x0001, MFT_DIRECTORY = 0x0002;
/** Fixups stride: every 512 bytes of a multi-sector record, whatever the sector size. */
export const FIXUP_STRIDE = 512;

export interface Run { vcn: number; lcn: number; len: number }   // lcn -1 = sparse (reads as zeros)

export interface Attr {
  type: number;
  name: string;
  flags: number;
  id: number;
  /** MFT record that holds this attribute (base or extension). */
  record: number;
  /** Byte offset of a resident value inside its record. */
  valueOffset?: number;
  value?: Buffer;
  nonResident: boolean;
  lowVcn: number;
  highVcn: number;
  runs: Run[];
  allocSize: number;
  dataSize: number;
  initSize: number;
  compressionUnit: number;
}

export interface RecordHeader {
  flags: number;
  sequence: number;
  linkCount: number;
  firstAttr: number;
  bytesInUse: number;
  baseRecord: number;
}

/** 48-bit MFT record number of a file reference (the high 16 bits are the sequence number). */
export const refRecord = (b: Buffer, off: number): number => b.readUInt32LE(off) + b.readUInt16LE(off + 4) * 2 ** 32;

/** An unsigned 64-bit size field, bounded so byte arithmetic stays exact. */
export function u64(b: Buffer, off: number, what: string): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(MAX_VIRTUAL_SIZE)) throw corrupt("E_NTFS_ATTR", `${what} is ${v}, beyond any disk`);
  return Number(v);
}

/**
 * Check and undo the update sequence array of a multi-sector record (FILE or INDX) in place: the
 * last two bytes of every 512-byte stride must equal the update sequence number, and are replaced
 * by the saved bytes. A mismatch is a torn write.
 */
export function applyFixups(buf: Buffer, magic: string, what: string): void {
  const sig = buf.toString("latin1", 0, 4);
  if (sig !== magic) throw corrupt("E_NTFS_RECORD", `${what} has signature ${JSON.stringify(sig)}, expected "${magic}"`);
  const usaOfs = buf.readUInt16LE(4), usaCount = buf.readUInt16LE(6);
  const strides = buf.length / FIXUP_STRIDE;
  if (usaCount !== strides + 1 || usaOfs < 8 || usaOfs % 2 !== 0 || usaOfs + usaCount * 2 > buf.length) {
    throw corrupt("E_NTFS_FIXUP", `${what}: update sequence array at ${usaOfs} with ${usaCount} entries does not fit a ${buf.length}-byte record`);
  }
  const usn = buf.readUInt16LE(usaOfs);
  for (let i = 1; i < usaCount; i++) {
    const pos = i * FIXUP_STRIDE - 2;
    const have = buf.readUInt16LE(pos);
    if (have !== usn) throw corrupt("E_NTFS_FIXUP", `${what}: sector ${i - 1} ends in ${hex(have, 4)}, update sequence number is ${hex(usn, 4)} (torn write)`);
    buf.writeUInt16LE(buf.readUInt16LE(usaOfs + i * 2), pos);
  }
}

export function recordHeader(buf: Buffer, what: string): RecordHeader {
  const h: RecordHeader = {
    sequence: buf.readUInt16LE(16),
    linkCount: buf.readUInt16LE(18),
    firstAttr: buf.readUInt16LE(20),
    flags: buf.readUInt16LE(22),
    bytesInUse: buf.readUInt32LE(24),
    baseRecord: refRecord(buf, 32),
  };
  if (h.bytesInUse > buf.length || h.firstAttr < 24 || h.firstAttr + 4 > h.bytesInUse) {
    throw corrupt("E_NTFS_RECORD", `${what}: first attribute at ${h.firstAttr}, ${h.bytesInUse} bytes in use of ${buf.length}`);
  }
  return h;
}

/** All attribute headers of one fixed-up record, resident values copied out. */
export function parseAttributes(buf: Buffer, recNo: number, what: string): Attr[] {
  const h = recordHeader(buf, what);
  const out: Attr[] = [];
  let p = h.firstAttr;
  const end = h.bytesInUse;
  while (p + 4 <= end) {
    const type = buf.readUInt32LE(p);
    if (type === AT_END) return out;
    if (p + 16 > end) break;
    const len = buf.readUInt32LE(p + 4);
    if (len < 24 || len % 8 !== 0 || p + len > end) throw corrupt("E_NTFS_ATTR", `${what}: attribute ${hex(type, 2)} at ${p} has length ${len} (record uses ${end} bytes)`);
    const a = buf.subarray(p, p + len);
    const nonResident = a[8] !== 0;
    const nameLen = a[9], nameOff = a.readUInt16LE(10);
    if (nameLen && nameOff + nameLen * 2 > len) throw corrupt("E_NTFS_ATTR", `${what}: attribute ${hex(type, 2)} name runs past the attribute`);
    const attr: Attr = {
      type, name: nameLen ? a.toString("utf16le", nameOff, nameOff + nameLen * 2) : "",
      flags: a.readUInt16LE(12), id: a.readUInt16LE(14), record: recNo, nonResident,
      lowVcn: 0, highVcn: -1, runs: [], allocSize: 0, dataSize: 0, initSize: 0, compressionUnit: 0,
    };
    if (!nonResident) {
      const vlen = a.readUInt32LE(16), voff = a.readUInt16LE(20);
      if (voff + vlen > len) throw corrupt("E_NTFS_ATTR", `${what}: resident attribute ${hex(type, 2)} value (${vlen} bytes at ${voff}) runs past its ${len}-byte attribute`);
      attr.value = Buffer.from(a.subarray(voff, voff + vlen));
      attr.valueOffset = p + voff;
      attr.dataSize = attr.initSize = attr.allocSize = vlen;
    } else {
      if (len < 64) throw corrupt("E_NTFS_ATTR", `${what}: non-resident attribute ${hex(type, 2)} is only ${len} bytes`);
      attr.lowVcn = u64(a, 16, `${what} lowest VCN`);
      attr.highVcn = Number(a.readBigInt64LE(24));
      attr.compressionUnit = a.readUInt16LE(34);
      attr.allocSize = u64(a, 40, `${what} allocated size`);
      attr.dataSize = u64(a, 48, `${what} data size`);
      attr.initSize = u64(a, 56, `${what} initialized size`);
      const mp = a.readUInt16LE(32);
      if (mp < 64 || mp > len) throw corrupt("E_NTFS_ATTR", `${what}: mapping pairs offset ${mp} outside the ${len}-byte attribute`);
      attr.runs = decodeRunlist(a, mp, len, attr.lowVcn, `${what} attribute ${hex(type, 2)}`);
      const next = attr.runs.length ? attr.runs[attr.runs.length - 1].vcn + attr.runs[attr.runs.length - 1].len : attr.lowVcn;
      if (attr.highVcn >= attr.lowVcn && next !== attr.highVcn + 1) {
        throw corrupt("E_NTFS_RUNLIST", `${what}: runlist of attribute ${hex(type, 2)} ends at VCN ${next - 1}, header says ${attr.highVcn}`);
      }
    }
    out.push(attr);
    p += len;
  }
  throw corrupt("E_NTFS_ATTR", `${what}: attribute list has no end marker within ${end} bytes`);
}

/** Signed or unsigned little-endian integer of 1..8 bytes (data run fields). */
function leInt(b: Buffer, off: number, n: number, signed: boolean): number {
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[off + i]);
  if (signed && n > 0 && b[off + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
  return Number(v);
}

/**
 * Mapping pairs: a header byte (low nibble = length-field size, high nibble = offset-field size),
 * the run length, and the LCN as a signed delta from the previous run; no offset = sparse run.
 */
export function decodeRunlist(b: Buffer, start: number, end: number, lowVcn: number, what: string): Run[] {
  const runs: Run[] = [];
  let p = start, vcn = lowVcn, lcn = 0;
  while (p < end) {
    const head = b[p];
    if (head === 0) return runs;
    const ls = head & 0x0f, os = head >> 4;
    if (ls === 0 || ls > 8 || os > 8 || p + 1 + ls + os > end) {
      throw corrupt("E_NTFS_RUNLIST", `${what}: bad data run header ${hex(head, 2)} at offset ${p}`);
    }
    const len = leInt(b, p + 1, ls, true);
    if (!(len > 0) || len > MAX_VIRTUAL_SIZE) throw corrupt("E_NTFS_RUNLIST", `${what}: data run of ${len} clusters at VCN ${vcn}`);
    if (os === 0) runs.push({ vcn, lcn: -1, len });
    else {
      lcn += leInt(b, p + 1 + ls, os, true);
      if (lcn < 0 || lcn > MAX_VIRTUAL_SIZE) throw corrupt("E_NTFS_RUNLIST", `${what}: data run at VCN ${vcn} starts at LCN ${lcn}`);
      runs.push({ vcn, lcn, len });
    }
    vcn += len;
    if (runs.length > MAX_NTFS_RUNS) throw corrupt("E_NTFS_RUNLIST", `${what}: more than ${MAX_NTFS_RUNS} data runs`);
    p += 1 + ls + os;
  }
  throw corrupt("E_NTFS_RUNLIST", `${what}: runlist has no terminator`);
}

/** Merge the segments of one non-resident attribute (spread over extension records) by VCN. */
export function mergeSegments(segs: Attr[], what: string): Attr {
  if (segs.length === 1) return segs[0];
  const sorted = [...segs].sort((a, b) => a.lowVcn - b.lowVcn);
  const first = sorted[0];
  if (!first.nonResident || first.lowVcn !== 0) throw corrupt("E_NTFS_ATTR", `${what}: attribute ${hex(first.type, 2)} has ${segs.length} pieces and none starts at VCN 0`);
  const runs: Run[] = [];
  let next = 0;
  for (const s of sorted) {
    if (!s.nonResident || s.lowVcn !== next) throw corrupt("E_NTFS_ATTR", `${what}: attribute ${hex(first.type, 2)} piece starts at VCN ${s.lowVcn}, expected ${next}`);
    runs.push(...s.runs);
    if (runs.length > MAX_NTFS_RUNS) throw corrupt("E_NTFS_RUNLIST", `${what}: more than ${MAX_NTFS_RUNS} data runs`);
    next = s.highVcn + 1;
  }
  return { ...first, runs, highVcn: next - 1 };
}
