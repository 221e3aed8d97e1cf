// Compressed-stream detection and bounded decompression for initramfs segments: the methods of the
// kernel's lib/decompress.c magic table (gzip RFC 1952, bzip2, lzma, xz, lz4 legacy, zstd RFC 8878)
// plus the standard LZ4 frame (lz4_Frame_format.md 1.6.x), each bounded by an output limit.
import { createRequire } from "node:module";
import * as zlib from "node:zlib";
import { Decompress as ZstdDecompress } from "fzstd";
import { ImageError, corrupt, hex, overLimit, truncated, unsupported } from "./errors.ts";
import { MAX_INITRAMFS_BYTES, MAX_ZSTD_WINDOW } from "./limits.ts";
import { BoundedOutput, decodeLzmaAlone, decodeXz, type DecodeResult } from "./lzma.ts";

export type Compression = "gzip" | "bzip2" | "lzma" | "xz" | "lz4-legacy" | "lz4" | "zstd" | "lzo";

/**
 * Magic numbers (lib/decompress.c compressed_formats[] and each format's spec). `kernel` tells
 * whether the kernel's initramfs unpacker recognises it: it knows only the legacy LZ4 frame.
 */
export const COMPRESSION_MAGIC: { kind: Compression; magic: number[]; kernel: boolean }[] = [
  { kind: "gzip", magic: [0x1f, 0x8b], kernel: true },          // RFC 1952 2.3.1 ID1 ID2
  { kind: "bzip2", magic: [0x42, 0x5a, 0x68], kernel: true },   // "BZh"
  { kind: "lzma", magic: [0x5d, 0x00, 0x00], kernel: true },    // props 0x5d (lc=3 lp=0 pb=2), the kernel matches 5d 00
  { kind: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], kernel: true }, // xz 2.1.1.1
  { kind: "lzo", magic: [0x89, 0x4c, 0x5a, 0x4f], kernel: true }, // lzop "\x89LZO"
  { kind: "lz4-legacy", magic: [0x02, 0x21, 0x4c, 0x18], kernel: true }, // 0x184C2102 LE
  { kind: "lz4", magic: [0x04, 0x22, 0x4d, 0x18], kernel: false },       // 0x184D2204 LE
  { kind: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd], kernel: true },       // RFC 8878 3.1.1 0xFD2FB528 LE
];

/** The compression whose magic starts at `buf[off]`, if any. */
export function detectCompression(buf: Uint8Array, off = 0): Compression | undefined {
  for (const m of COMPRESSION_MAGIC) {
    if (off + m.magic.length > buf.length) continue;
    if (m.magic.every((b, i) => buf[off + i] === b)) return m.kind;
  }
  return undefined;
}

export interface Decompressed {
  kind: Compression;
  data: Buffer;
  /** Compressed bytes the stream occupied (what follows may be padding or another segment). */
  consumed: number;
}

/**
 * Decompress one stream of `kind` from the start of `buf`, never producing more than `limit` bytes
 * (ImageError kind "limit"). Corrupt data is kind "corrupt", data ending early kind "truncated".
 */
export function decompress(buf: Uint8Array, kind: Compression, limit = MAX_INITRAMFS_BYTES): Decompressed {
  let r: DecodeResult;
  try {
    switch (kind) {
      case "gzip": r = gunzip(buf, limit); break;
      case "xz": r = decodeXz(buf, limit); break;
      case "lzma": r = decodeLzmaAlone(buf, limit); break;
      case "zstd": r = unzstd(buf, limit); break;
      case "lz4-legacy": r = unlz4Legacy(buf, limit); break;
      case "lz4": r = unlz4Frame(buf, limit); break;
      case "bzip2": r = bunzip2(buf, limit); break;
      case "lzo": throw unsupported("E_DECOMPRESS_UNSUPPORTED", "lzo-compressed data is recognised but not decompressed");
    }
  } catch (e) {
    if (e instanceof ImageError) throw e;
    if (e instanceof RangeError) throw overLimit("E_DECOMPRESS_LIMIT", `${kind}: ${e.message}`);
    throw corrupt("E_DECOMPRESS_CORRUPT", `${kind}: ${(e as Error).message ?? String(e)}`);
  }
  return { kind, data: r.data, consumed: r.consumed };
}

/** Detect and decompress in one step; an unrecognised magic is ImageError "unsupported". */
export function decompressAuto(buf: Uint8Array, limit = MAX_INITRAMFS_BYTES): Decompressed {
  const kind = detectCompression(buf);
  if (!kind) throw unsupported("E_DECOMPRESS_MAGIC", `no known compression magic (first bytes ${Buffer.from(buf.subarray(0, 4)).toString("hex")})`);
  return decompress(buf, kind, limit);
}

const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

// ---- gzip (RFC 1952): header parsed here, the deflate body by Node's zlib, bounded by maxOutputLength.
const FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16;

function gunzip(b: Uint8Array, limit: number): DecodeResult {
  if (b.length < 18) throw truncated("E_GZIP_TRUNCATED", `gzip: ${b.length} bytes, shorter than a gzip member`);
  if (b[2] !== 8) throw unsupported("E_GZIP_METHOD", `gzip: compression method ${b[2]} is not deflate (8)`);
  const flg = b[3];
  if (flg & 0xe0) throw corrupt("E_GZIP_FLAGS", `gzip: reserved flag bits set (${hex(flg, 2)})`);
  let p = 10;
  const need = (n: number) => { if (p + n > b.length) throw truncated("E_GZIP_TRUNCATED", "gzip: data ends inside the member header"); };
  if (flg & FEXTRA) { need(2); const xlen = b[p] | (b[p + 1] << 8); p += 2; need(xlen); p += xlen; }
  for (const f of [FNAME, FCOMMENT]) {
    if (!(flg & f)) continue;
    while (true) { need(1); if (b[p++] === 0) break; }
  }
  if (flg & FHCRC) { need(2); p += 2; }
  let res: { buffer: Buffer; engine: zlib.InflateRaw };
  try {
    res = zlib.inflateRawSync(b.subarray(p), { info: true, maxOutputLength: limit }) as unknown as { buffer: Buffer; engine: zlib.InflateRaw };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ERR_BUFFER_TOO_LARGE") throw overLimit("E_DECOMPRESS_LIMIT", `gzip: decompressed data passes the ${limit}-byte limit`);
    if (err.code === "Z_BUF_ERROR") throw truncated("E_GZIP_TRUNCATED", `gzip: deflate data ends early (${err.message})`);
    throw corrupt("E_GZIP_DATA", `gzip: ${err.message}`);
  }
  const used = p + res.engine.bytesWritten;
  if (used + 8 > b.length) throw truncated("E_GZIP_TRUNCATED", "gzip: member ends before its CRC32 and ISIZE trailer");
  const crc = u32(b, used), isize = u32(b, used + 4);
  const got = zlib.crc32(res.buffer) >>> 0;
  if (crc !== got) throw corrupt("E_GZIP_CRC", `gzip: CRC32 ${hex(crc)} in the trailer, computed ${hex(got)}`);
  if (isize !== (res.buffer.length % 2 ** 32)) throw corrupt("E_GZIP_SIZE", `gzip: ISIZE ${isize}, decompressed ${res.buffer.length}`);
  return { data: res.buffer, consumed: used + 8 };
}

// ---- zstd (RFC 8878): frames walked here (window bounded before fzstd allocates it), blocks decoded by fzstd.
const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_BLOCK_MAX = 128 * 1024; // RFC 8878 3.1.1.2.3 Block_Maximum_Size

function unzstd(b: Uint8Array, limit: number): DecodeResult {
  const out = new BoundedOutput(limit, "zstd");
  let p = 0, frames = 0;
  while (p + 4 <= b.length) {
    const magic = u32(b, p);
    if ((magic & 0xfffffff0) === 0x184d2a50) { // RFC 8878 3.1.2 skippable frame
      if (p + 8 > b.length) throw truncated("E_ZSTD_TRUNCATED", `zstd: skippable frame header at byte ${p} is cut short`);
      const size = u32(b, p + 4);
      if (p + 8 + size > b.length) throw truncated("E_ZSTD_TRUNCATED", `zstd: skippable frame of ${size} bytes at byte ${p} runs past the end`);
      p += 8 + size;
      continue;
    }
    if (magic !== ZSTD_MAGIC) {
      if (frames === 0) throw corrupt("E_ZSTD_MAGIC", `zstd: no frame magic at byte ${p}`);
      break; // what follows is not zstd: padding or the next segment
    }
    const end = zstdFrameEnd(b, p, out.len, limit);
    const before = out.len;
    const d = new ZstdDecompress((chunk: Uint8Array) => out.push(chunk));
    d.push(b.subarray(p, end), true);
    if (out.len === before && end - p > 64) throw corrupt("E_ZSTD_DATA", `zstd: frame at byte ${p} decoded to nothing`);
    p = end;
    frames++;
  }
  return { data: out.result(), consumed: p };
}

/** Validate a zstd frame header and walk its block headers; returns the frame's end offset. */
function zstdFrameEnd(b: Uint8Array, start: number, produced: number, limit: number): number {
  let p = start + 4;
  const need = (n: number, what: string) => {
    if (p + n > b.length) throw truncated("E_ZSTD_TRUNCATED", `zstd: data ends inside the ${what} of the frame at byte ${start}`);
  };
  need(1, "frame header");
  const fhd = b[p++];
  const fcsFlag = fhd >> 6, single = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1, dictFlag = fhd & 3;
  if (fhd & 8) throw corrupt("E_ZSTD_HEADER", `zstd: reserved frame header bit set (${hex(fhd, 2)}) at byte ${start}`);
  let window = 0;
  if (!single) {
    need(1, "window descriptor");
    const wd = b[p++];
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  const dictBytes = [0, 1, 2, 4][dictFlag];
  need(dictBytes, "dictionary ID");
  let dictId = 0;
  for (let i = 0; i < dictBytes; i++) dictId += b[p + i] * 2 ** (8 * i);
  p += dictBytes;
  if (dictId !== 0) throw unsupported("E_ZSTD_DICT", `zstd: frame at byte ${start} needs dictionary ${dictId}`);
  const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
  need(fcsBytes, "content size");
  let fcs = -1;
  if (fcsBytes) {
    fcs = 0;
    for (let i = 0; i < fcsBytes; i++) fcs += b[p + i] * 2 ** (8 * i);
    if (fcsBytes === 2) fcs += 256;
  }
  p += fcsBytes;
  if (fcs >= 0 && produced + fcs > limit) throw overLimit("E_DECOMPRESS_LIMIT", `zstd: frame at byte ${start} declares ${fcs} bytes, past the ${limit}-byte limit`);
  if (single) window = fcs;
  if (window > MAX_ZSTD_WINDOW) throw overLimit("E_ZSTD_WINDOW", `zstd: window of ${window} bytes is over the ${MAX_ZSTD_WINDOW}-byte limit`);
  const blockMax = Math.min(window || ZSTD_BLOCK_MAX, ZSTD_BLOCK_MAX);
  for (;;) {
    need(3, "block header");
    const bh = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16);
    p += 3;
    const last = bh & 1, type = (bh >> 1) & 3, size = bh >>> 3;
    if (type === 3) throw corrupt("E_ZSTD_BLOCK", `zstd: reserved block type at byte ${p - 3}`);
    if (size > blockMax) throw corrupt("E_ZSTD_BLOCK", `zstd: block of ${size} bytes at byte ${p - 3} is over the ${blockMax}-byte maximum`);
    const csize = type === 1 ? 1 : size;
    need(csize, "block");
    p += csize;
    if (last) break;
  }
  if (checksum) { need(4, "content checksum"); p += 4; }
  return p;
}

/** XXH32 (xxHash spec, as LZ4 frames use for header, block and content checksums). */
const P1 = 2654435761, P2 = 2246822519, P3 = 3266489917, P4 = 668265263, P5 = 374761393;
const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;
const xround = (acc: number, lane: number) => Math.imul(rotl((acc + Math.imul(lane, P2)) >>> 0, 13), P1) >>> 0;
export function xxh32(b: Uint8Array, seed = 0): number {
  let p = 0, h: number;
  const n = b.length;
  if (n >= 16) {
    let v1 = (seed + P1 + P2) >>> 0, v2 = (seed + P2) >>> 0, v3 = seed >>> 0, v4 = (seed - P1) >>> 0;
    for (; p + 16 <= n; p += 16) {
      v1 = xround(v1, u32(b, p)); v2 = xround(v2, u32(b, p + 4));
      v3 = xround(v3, u32(b, p + 8)); v4 = xround(v4, u32(b, p + 12));
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) >>> 0;
  } else h = (seed + P5) >>> 0;
  h = (h + n) >>> 0;
  for (; p + 4 <= n; p += 4) h = Math.imul(rotl((h + Math.imul(u32(b, p), P3)) >>> 0, 17), P4) >>> 0;
  for (; p < n; p++) h = Math.imul(rotl((h + Math.imul(b[p], P5)) >>> 0, 11), P1) >>> 0;
  h ^= h >>> 15; h = Math.imul(h, P2) >>> 0;
  h ^= h >>> 13; h = Math.imul(h, P3) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

// ---- LZ4: the block format (lz4_Block_format.md) decoded here with strict bounds; legacy and standard frames.
const LZ4_LEGACY_MAGIC = 0x184c2102;
const LZ4_FRAME_MAGIC = 0x184d2204;
/** Legacy frame: every block holds 8 MiB of data (lz4cli LEGACY_BLOCKSIZE); compressed at most LZ4_compressBound. */
const LZ4_LEGACY_BLOCK = 8 * 1024 * 1024;
const LZ4_LEGACY_MAX_COMPRESSED = LZ4_LEGACY_BLOCK + Math.floor(LZ4_LEGACY_BLOCK / 255) + 16;

/** Decode one LZ4 block src[s, e) onto `out`; matches may reach back to `floor`; at most `max` bytes. */
function lz4Block(src: Uint8Array, s: number, e: number, out: BoundedOutput, floor: number, max: number): void {
  const start = out.len;
  const bad = (why: string) => corrupt("E_LZ4_DATA", `lz4: ${why} (compressed byte ${s})`);
  while (s < e) {
    const token = src[s++];
    let lit = token >>> 4;
    if (lit === 15) {
      let c: number;
      do { if (s >= e) throw bad("literal length runs past the block"); c = src[s++]; lit += c; } while (c === 255);
    }
    if (s + lit > e) throw bad(`${lit} literals run past the block`);
    if (out.len - start + lit > max) throw bad(`block decodes to more than ${max} bytes`);
    out.push(src.subarray(s, s + lit));
    s += lit;
    if (s === e) return; // the last sequence has literals only
    if (s + 2 > e) throw bad("match offset cut short");
    const off = src[s] | (src[s + 1] << 8);
    s += 2;
    let len = token & 15;
    if (len === 15) {
      let c: number;
      do { if (s >= e) throw bad("match length runs past the block"); c = src[s++]; len += c; } while (c === 255);
    }
    len += 4;
    if (off === 0 || out.len - off < floor) throw bad(`match offset ${off} reaches before the data`);
    if (out.len - start + len > max) throw bad(`block decodes to more than ${max} bytes`);
    out.reserve(len);
    const b = out.buf;
    const from = out.len - off;
    if (off >= len) b.copyWithin(out.len, from, from + len);
    else for (let i = 0, to = out.len; i < len; i++) b[to + i] = b[from + i];
    out.len += len;
  }
  throw bad("block ends without a final literal run");
}

function unlz4Legacy(b: Uint8Array, limit: number): DecodeResult {
  const out = new BoundedOutput(limit, "lz4");
  let p = 4;
  // No end mark: the stream ends at the end of input, at a zero size (padding), or at something that
  // cannot be a block size (the next segment's magic) — lib/decompress_unlz4.c stops the same way.
  while (p + 4 <= b.length) {
    const size = u32(b, p);
    if (size === LZ4_LEGACY_MAGIC) { p += 4; continue; } // concatenated legacy streams
    if (size === 0 || size > LZ4_LEGACY_MAX_COMPRESSED) break;
    if (p + 4 + size > b.length) throw truncated("E_LZ4_TRUNCATED", `lz4: block of ${size} bytes at byte ${p} runs past the end (${b.length})`);
    const blockStart = out.len;
    lz4Block(b, p + 4, p + 4 + size, out, blockStart, LZ4_LEGACY_BLOCK);
    p += 4 + size;
  }
  return { data: out.result(), consumed: p };
}

/** Standard LZ4 frames (lz4_Frame_format.md 3-5), skippable frames included, until a non-LZ4 magic. */
function unlz4Frame(b: Uint8Array, limit: number): DecodeResult {
  const out = new BoundedOutput(limit, "lz4");
  let p = 0, frames = 0;
  while (p + 4 <= b.length) {
    const magic = u32(b, p);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      if (p + 8 > b.length) throw truncated("E_LZ4_TRUNCATED", `lz4: skippable frame header at byte ${p} is cut short`);
      const sz = u32(b, p + 4);
      if (p + 8 + sz > b.length) throw truncated("E_LZ4_TRUNCATED", `lz4: skippable frame at byte ${p} runs past the end`);
      p += 8 + sz;
      continue;
    }
    if (magic !== LZ4_FRAME_MAGIC) {
      if (frames === 0) throw corrupt("E_LZ4_MAGIC", `lz4: no frame magic at byte ${p}`);
      break;
    }
    if (p + 7 > b.length) throw truncated("E_LZ4_TRUNCATED", `lz4: frame descriptor at byte ${p} is cut short`);
    const flg = b[p + 4], bd = b[p + 5];
    if (flg >> 6 !== 1) throw unsupported("E_LZ4_VERSION", `lz4: frame version ${flg >> 6} (FLG ${hex(flg, 2)})`);
    if (flg & 2 || bd & 0x8f) throw corrupt("E_LZ4_HEADER", `lz4: reserved bits set in FLG ${hex(flg, 2)} / BD ${hex(bd, 2)}`);
    const indep = (flg >> 5) & 1, blockSum = (flg >> 4) & 1, hasSize = (flg >> 3) & 1, contentSum = (flg >> 2) & 1, dict = flg & 1;
    const bsid = (bd >> 4) & 7;
    if (bsid < 4) throw corrupt("E_LZ4_HEADER", `lz4: block maximum size id ${bsid} is reserved`);
    const blockMax = 1 << (8 + 2 * bsid);
    let q = p + 6;
    if (hasSize) {
      if (q + 8 > b.length) throw truncated("E_LZ4_TRUNCATED", "lz4: content size cut short");
      const size = u32(b, q) + u32(b, q + 4) * 2 ** 32;
      if (out.len + size > limit) throw overLimit("E_DECOMPRESS_LIMIT", `lz4: frame declares ${size} bytes, past the ${limit}-byte limit`);
      q += 8;
    }
    if (dict) throw unsupported("E_LZ4_DICT", `lz4: frame at byte ${p} needs dictionary ${u32(b, q)}`);
    const hc = (xxh32(b.subarray(p + 4, q)) >>> 8) & 0xff;
    if (q >= b.length) throw truncated("E_LZ4_TRUNCATED", "lz4: frame header checksum cut short");
    if (b[q] !== hc) throw corrupt("E_LZ4_CHECKSUM", `lz4: frame header checksum ${hex(b[q], 2)}, computed ${hex(hc, 2)}`);
    q += 1;
    const frameStart = out.len;
    for (;;) {
      if (q + 4 > b.length) throw truncated("E_LZ4_TRUNCATED", `lz4: data ends before the end mark of the frame at byte ${p}`);
      const word = u32(b, q);
      q += 4;
      if (word === 0) break; // EndMark
      const raw = word >>> 31, size = word & 0x7fffffff;
      if (size > blockMax) throw corrupt("E_LZ4_DATA", `lz4: block of ${size} bytes over the frame's ${blockMax}-byte maximum`);
      if (q + size + 4 * blockSum > b.length) throw truncated("E_LZ4_TRUNCATED", `lz4: block of ${size} bytes at byte ${q - 4} runs past the end`);
      if (blockSum && xxh32(b.subarray(q, q + size)) !== u32(b, q + size)) {
        throw corrupt("E_LZ4_CHECKSUM", `lz4: block checksum mismatch for the block at byte ${q - 4}`);
      }
      if (raw) out.push(b.subarray(q, q + size));
      else lz4Block(b, q, q + size, out, indep ? out.len : frameStart, blockMax);
      q += size + 4 * blockSum;
    }
    if (contentSum) {
      if (q + 4 > b.length) throw truncated("E_LZ4_TRUNCATED", "lz4: content checksum cut short");
      const got = xxh32(out.buf.subarray(frameStart, out.len));
      if (got !== u32(b, q)) throw corrupt("E_LZ4_CHECKSUM", `lz4: content checksum ${hex(u32(b, q))}, computed ${hex(got)}`);
      q += 4;
    }
    p = q;
    frames++;
  }
  return { data: out.result(), consumed: p };
}

// ---- bzip2: seek-bzip decodes one stream; input and output adapters bound it and count what it read.
interface SeekBzip { decode(input: unknown, output: unknown, multistream: boolean): unknown }
let bunzip: SeekBzip | undefined;

function bunzip2(b: Uint8Array, limit: number): DecodeResult {
  bunzip ??= createRequire(import.meta.url)("seek-bzip") as SeekBzip;
  if (b.length < 4 || b[3] < 0x31 || b[3] > 0x39) throw corrupt("E_BZIP2_HEADER", `bzip2: block size digit ${hex(b[3] ?? 0, 2)} is not '1'..'9'`);
  const out = new BoundedOutput(limit, "bzip2");
  const input = {
    pos: 0,
    readByte(): number {
      if (this.pos >= b.length) throw truncated("E_BZIP2_TRUNCATED", `bzip2: data ends inside the stream (${b.length} bytes)`);
      return b[this.pos++];
    },
    read(dst: Uint8Array, off: number, len: number): number {
      const n = Math.min(len, b.length - this.pos);
      dst.set(b.subarray(this.pos, this.pos + n), off);
      this.pos += n;
      return n;
    },
    seek(pos: number): void { this.pos = pos; },
  };
  const output = {
    writeByte(x: number): void {
      if (out.len >= out.buf.length) out.reserve(1);
      out.buf[out.len++] = x;
    },
  };
  bunzip.decode(input, output, false);
  return { data: out.result(), consumed: input.pos };
}
