// LZMA decoding for initramfs segments: the legacy .lzma ("LZMA_Alone") file and the .xz container
// with LZMA2 (xz file format 1.1.0, sections 2-3 and 5.3.1; LZMA as in the LZMA SDK's LzmaSpec),
// synchronous and bounded by an output limit (no npm package offers a bounded synchronous decoder).
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import { corrupt, hex, overLimit, truncated, unsupported } from "./errors.ts";
import { MAX_LZMA_DICT } from "./limits.ts";

/** A growable output buffer that refuses to pass `limit` bytes (the zip-bomb guard). */
export class BoundedOutput {
  buf: Uint8Array;
  len = 0;
  constructor(readonly limit: number, readonly what: string, initial = 1 << 20) {
    this.buf = new Uint8Array(Math.min(initial, Math.max(limit, 1)));
  }
  /** Make room for `n` more bytes or throw ImageError kind "limit". */
  reserve(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    if (need > this.limit) {
      throw overLimit("E_DECOMPRESS_LIMIT", `${this.what}: decompressed data passes the ${this.limit}-byte limit`);
    }
    let cap = Math.max(this.buf.length * 2, 1 << 16);
    while (cap < need) cap *= 2;
    const next = new Uint8Array(Math.min(cap, this.limit));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  push(chunk: Uint8Array): void {
    this.reserve(chunk.length);
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
  }
  result(): Buffer {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset, this.len);
  }
}

// LzmaSpec constants: 12 states, 3 length coders' bit trees, 64 position slots, 4 align bits.
const NUM_STATES = 12;
const POS_STATES_MAX = 16;
const END_POS_MODEL_INDEX = 14;
const NUM_FULL_DISTANCES = 128;
const PROB_INIT = 1024;

class LenDecoder {
  choice = new Uint16Array(2);
  low = new Uint16Array(POS_STATES_MAX << 3);
  mid = new Uint16Array(POS_STATES_MAX << 3);
  high = new Uint16Array(256);
  reset(): void {
    this.choice.fill(PROB_INIT); this.low.fill(PROB_INIT); this.mid.fill(PROB_INIT); this.high.fill(PROB_INIT);
  }
}

/** The LZMA symbol decoder (range coder + models), writing into a BoundedOutput used as the dictionary. */
class LzmaDecoder {
  // range decoder
  private inp: Uint8Array = new Uint8Array(0);
  ip = 0;
  private inEnd = 0;
  private range = 0;
  private code = 0;
  // model
  lc = 0; lp = 0; pb = 0;
  dictSize = 0;
  /** Output position where the current dictionary starts (LZMA2 dictionary reset). */
  dictStart = 0;
  private state = 0;
  private rep0 = 0; private rep1 = 0; private rep2 = 0; private rep3 = 0;
  private literal = new Uint16Array(0x300);
  private isMatch = new Uint16Array(NUM_STATES << 4);
  private isRep = new Uint16Array(NUM_STATES);
  private isRepG0 = new Uint16Array(NUM_STATES);
  private isRepG1 = new Uint16Array(NUM_STATES);
  private isRepG2 = new Uint16Array(NUM_STATES);
  private isRep0Long = new Uint16Array(NUM_STATES << 4);
  private posSlot = new Uint16Array(4 << 6);
  private posSpecial = new Uint16Array(1 + NUM_FULL_DISTANCES - END_POS_MODEL_INDEX);
  private align = new Uint16Array(16);
  private lenDec = new LenDecoder();
  private repLenDec = new LenDecoder();

  constructor(readonly out: BoundedOutput, readonly what: string) {}

  setProps(props: number): void {
    if (props >= 9 * 5 * 5) throw corrupt("E_LZMA_PROPS", `${this.what}: LZMA properties byte ${hex(props, 2)} is not below 225`);
    this.lc = props % 9;
    this.lp = Math.floor(props / 9) % 5;
    this.pb = Math.floor(props / 45);
    if (this.literal.length !== 0x300 << (this.lc + this.lp)) this.literal = new Uint16Array(0x300 << (this.lc + this.lp));
  }

  resetState(): void {
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
    for (const p of [this.literal, this.isMatch, this.isRep, this.isRepG0, this.isRepG1, this.isRepG2,
      this.isRep0Long, this.posSlot, this.posSpecial, this.align]) p.fill(PROB_INIT);
    this.lenDec.reset();
    this.repLenDec.reset();
  }

  /** Start the range decoder on inp[start, end). */
  initRange(inp: Uint8Array, start: number, end: number): void {
    this.inp = inp; this.ip = start; this.inEnd = end;
    if (this.next() !== 0) throw corrupt("E_LZMA_RANGE", `${this.what}: range coder does not start with a zero byte`);
    this.code = 0;
    for (let i = 0; i < 4; i++) this.code = ((this.code << 8) | this.next()) >>> 0;
    this.range = 0xffffffff;
    if (this.code === this.range) throw corrupt("E_LZMA_RANGE", `${this.what}: range coder starts in an impossible state`);
  }

  /** The coder's state and probability models as they stand (references to the live arrays; raw LZMA callers). */
  snapshot(): LzmaSnapshot {
    const len = (d: LenDecoder) => ({ choice: d.choice, low: d.low, mid: d.mid, high: d.high });
    return { range: this.range, code: this.code, state: this.state, reps: [this.rep0, this.rep1, this.rep2, this.rep3],
      probs: { literal: this.literal, isMatch: this.isMatch, isRep: this.isRep, isRepG0: this.isRepG0, isRepG1: this.isRepG1,
        isRepG2: this.isRepG2, isRep0Long: this.isRep0Long, posSlot: this.posSlot, posSpecial: this.posSpecial,
        align: this.align, len: len(this.lenDec), repLen: len(this.repLenDec) } };
  }

  /** True when the range coder ended cleanly (code 0, as every encoder flushes it). */
  rangeFinished(): boolean { return this.code === 0; }

  private next(): number {
    if (this.ip >= this.inEnd) throw truncated("E_LZMA_TRUNCATED", `${this.what}: compressed data ends inside the LZMA stream (byte ${this.ip})`);
    return this.inp[this.ip++];
  }

  private bit(p: Uint16Array, i: number): number {
    const prob = p[i];
    const bound = (this.range >>> 11) * prob;
    let b: number;
    if (this.code < bound) {
      this.range = bound;
      p[i] = prob + ((2048 - prob) >>> 5);
      b = 0;
    } else {
      this.range = (this.range - bound) >>> 0;
      this.code = (this.code - bound) >>> 0;
      p[i] = prob - (prob >>> 5);
      b = 1;
    }
    if (this.range < 0x1000000) {
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) + this.next()) >>> 0;
    }
    return b;
  }

  private direct(n: number): number {
    let r = 0;
    for (let i = 0; i < n; i++) {
      this.range >>>= 1;
      let b = 0;
      if (this.code >= this.range) { this.code = (this.code - this.range) >>> 0; b = 1; }
      r = ((r << 1) | b) >>> 0;
      if (this.range < 0x1000000) {
        this.range = (this.range * 256) >>> 0;
        this.code = ((this.code * 256) + this.next()) >>> 0;
      }
    }
    return r;
  }

  private tree(p: Uint16Array, base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(p, base + m);
    return m - (1 << bits);
  }

  private reverse(p: Uint16Array, base: number, bits: number): number {
    let m = 1, sym = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(p, base + m);
      m = (m << 1) | b;
      sym |= b << i;
    }
    return sym;
  }

  private length(d: LenDecoder, posState: number): number {
    if (this.bit(d.choice, 0) === 0) return this.tree(d.low, posState << 3, 3);
    if (this.bit(d.choice, 1) === 0) return 8 + this.tree(d.mid, posState << 3, 3);
    return 16 + this.tree(d.high, 0, 8);
  }

  private distance(len: number): number {
    const lenState = len < 3 ? len : 3;
    const slot = this.tree(this.posSlot, lenState << 6, 6);
    if (slot < 4) return slot;
    const nbits = (slot >>> 1) - 1;
    let dist = ((2 | (slot & 1)) << nbits) >>> 0;
    if (slot < END_POS_MODEL_INDEX) return (dist + this.reverse(this.posSpecial, dist - slot, nbits)) >>> 0;
    dist = (dist + (this.direct(nbits - 4) << 4 >>> 0)) >>> 0;
    return (dist + this.reverse(this.align, 0, 4)) >>> 0;
  }

  /**
   * Decode symbols until the output reaches `stopAt` bytes or the end marker. Returns true on the end
   * marker. A match running past `stopAt` is corrupt (LZMA2 chunks end on symbol boundaries).
   */
  run(stopAt: number, allowEndMarker: boolean): boolean {
    const out = this.out;
    const pbMask = (1 << this.pb) - 1, lpMask = (1 << this.lp) - 1, lc = this.lc;
    while (out.len < stopAt) {
      const pos = out.len - this.dictStart;
      const posState = pos & pbMask;
      const st = this.state;
      if (this.bit(this.isMatch, (st << 4) | posState) === 0) {
        const prev = pos > 0 ? out.buf[out.len - 1] : 0;
        const base = 0x300 * (((pos & lpMask) << lc) + (prev >>> (8 - lc)));
        let sym = 1;
        if (st >= 7) {
          let matchByte = out.buf[out.len - this.rep0 - 1];
          do {
            const mb = (matchByte >>> 7) & 1;
            matchByte <<= 1;
            const b = this.bit(this.literal, base + ((1 + mb) << 8) + sym);
            sym = (sym << 1) | b;
            if (mb !== b) break;
          } while (sym < 0x100);
        }
        while (sym < 0x100) sym = (sym << 1) | this.bit(this.literal, base + sym);
        out.reserve(1);
        out.buf[out.len++] = sym & 0xff;
        this.state = st < 4 ? 0 : st < 10 ? st - 3 : st - 6;
        continue;
      }
      let len: number;
      if (this.bit(this.isRep, st) === 1) {
        if (pos === 0) throw corrupt("E_LZMA_DATA", `${this.what}: repeated match before any data (output byte ${out.len})`);
        if (this.bit(this.isRepG0, st) === 0) {
          if (this.bit(this.isRep0Long, (st << 4) | posState) === 0) {
            this.state = st < 7 ? 9 : 11;
            out.reserve(1);
            out.buf[out.len] = out.buf[out.len - this.rep0 - 1];
            out.len++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(this.isRepG1, st) === 0) dist = this.rep1;
          else {
            if (this.bit(this.isRepG2, st) === 0) dist = this.rep2;
            else { dist = this.rep3; this.rep3 = this.rep2; }
            this.rep2 = this.rep1;
          }
          this.rep1 = this.rep0;
          this.rep0 = dist;
        }
        len = this.length(this.repLenDec, posState);
        this.state = st < 7 ? 8 : 11;
      } else {
        this.rep3 = this.rep2; this.rep2 = this.rep1; this.rep1 = this.rep0;
        len = this.length(this.lenDec, posState);
        this.state = st < 7 ? 7 : 10;
        this.rep0 = this.distance(len);
        if (this.rep0 === 0xffffffff) {
          if (!allowEndMarker) throw corrupt("E_LZMA_DATA", `${this.what}: end marker inside an LZMA2 chunk`);
          return true;
        }
      }
      len += 2;
      const dist = this.rep0;
      if (dist >= pos || dist >= this.dictSize) {
        throw corrupt("E_LZMA_DATA", `${this.what}: match distance ${dist + 1} reaches before the dictionary (${Math.min(pos, this.dictSize)} bytes) at output byte ${out.len}`);
      }
      if (out.len + len > stopAt) throw corrupt("E_LZMA_DATA", `${this.what}: match of ${len} bytes runs past the end of the data (${stopAt} bytes)`);
      out.reserve(len);
      const b = out.buf;
      const src = out.len - dist - 1;
      if (dist + 1 >= len) b.copyWithin(out.len, src, src + len);
      else for (let i = 0, dst = out.len; i < len; i++) b[dst + i] = b[src + i];
      out.len += len;
    }
    return false;
  }
}

export interface DecodeResult { data: Buffer; consumed: number }

/**
 * The decoder's state after a raw decode. Distances are 0-based (LzmaSpec); posSpecial[i] is LzmaSpec's
 * PosDecoders[i - 1] (index 0 unused); a length coder's low/mid are 16 position states of 8 probabilities each.
 */
export interface LzmaSnapshot {
  range: number; code: number; state: number; reps: [number, number, number, number];
  probs: { literal: Uint16Array; isMatch: Uint16Array; isRep: Uint16Array; isRepG0: Uint16Array; isRepG1: Uint16Array;
    isRepG2: Uint16Array; isRep0Long: Uint16Array; posSlot: Uint16Array; posSpecial: Uint16Array; align: Uint16Array;
    len: { choice: Uint16Array; low: Uint16Array; mid: Uint16Array; high: Uint16Array };
    repLen: { choice: Uint16Array; low: Uint16Array; mid: Uint16Array; high: Uint16Array } };
}

/**
 * Raw LZMA1 (no header): `size` bytes exactly from inp[start, end) with properties lc/lp/pb and a dictionary of
 * `dictSize` bytes, no end marker (an end marker, a match past `size` or before the data throws ImageError).
 * For boot loaders that store headerless streams (GRUB's i386-pc core.img). Returns the coder's final state too.
 */
export function decodeLzmaRaw(inp: Uint8Array, start: number, end: number,
  o: { lc: number; lp: number; pb: number; dictSize: number; size: number; what?: string }): DecodeResult & { end: LzmaSnapshot } {
  const what = o.what ?? "lzma";
  if (!(o.lc >= 0 && o.lc <= 8 && o.lp >= 0 && o.lp <= 4 && o.pb >= 0 && o.pb <= 4)) {
    throw corrupt("E_LZMA_PROPS", `${what}: LZMA properties lc=${o.lc} lp=${o.lp} pb=${o.pb} out of range`);
  }
  if (o.dictSize > MAX_LZMA_DICT) throw overLimit("E_LZMA_DICT", `${what}: dictionary of ${o.dictSize} bytes is over the ${MAX_LZMA_DICT}-byte limit`);
  if (!(start >= 0 && start <= end && end <= inp.length)) throw truncated("E_LZMA_TRUNCATED", `${what}: input range ${start}..${end} outside ${inp.length} bytes`);
  const out = new BoundedOutput(o.size, what, Math.max(o.size, 1));
  const d = new LzmaDecoder(out, what);
  d.setProps((o.pb * 5 + o.lp) * 9 + o.lc);
  d.dictSize = Math.max(o.dictSize, 1);
  d.resetState();
  d.initRange(inp, start, end);
  d.run(o.size, false);
  return { data: out.result(), consumed: d.ip - start, end: d.snapshot() };
}

/** Legacy .lzma: props(1) dictSize(4 LE) uncompressedSize(8 LE, all-ones = unknown), then the range-coded data. */
export function decodeLzmaAlone(inp: Uint8Array, limit: number, what = "lzma"): DecodeResult {
  if (inp.length < 13) throw truncated("E_LZMA_TRUNCATED", `${what}: ${inp.length} bytes, shorter than the 13-byte .lzma header`);
  const dv = new DataView(inp.buffer, inp.byteOffset, inp.byteLength);
  const dictSize = dv.getUint32(1, true);
  const lo = dv.getUint32(5, true), hi = dv.getUint32(9, true);
  const unknown = lo === 0xffffffff && hi === 0xffffffff;
  const size = hi * 2 ** 32 + lo;
  if (!unknown && size > limit) throw overLimit("E_DECOMPRESS_LIMIT", `${what}: header declares ${size} bytes, more than the ${limit}-byte limit`);
  if (dictSize > MAX_LZMA_DICT) throw overLimit("E_LZMA_DICT", `${what}: dictionary of ${dictSize} bytes is over the ${MAX_LZMA_DICT}-byte limit`);
  const out = new BoundedOutput(limit, what, unknown ? 1 << 20 : Math.max(size, 1));
  const d = new LzmaDecoder(out, what);
  d.setProps(inp[0]);
  d.dictSize = Math.max(dictSize, 4096);
  d.resetState();
  d.initRange(inp, 13, inp.length);
  const ended = d.run(unknown ? Number.MAX_SAFE_INTEGER : size, true);
  if (unknown && !ended) throw corrupt("E_LZMA_DATA", `${what}: stream of unknown size has no end marker`);
  return { data: out.result(), consumed: d.ip };
}

const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
/** xz 2.1.1.2: size of the integrity check for each check type 0..15. */
const CHECK_SIZE = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
const FILTER_LZMA2 = 0x21n;
const FILTER_NAMES: Record<string, string> = { "4": "BCJ x86", "5": "BCJ PowerPC", "6": "BCJ IA-64", "7": "BCJ ARM", "8": "BCJ ARM-Thumb", "9": "BCJ SPARC", "3": "Delta" };

let crc64Table: [Uint32Array, Uint32Array] | undefined;
/** CRC-64/XZ (ECMA-182 polynomial, reflected), computed on two 32-bit halves. */
function crc64(data: Uint8Array): [number, number] {
  if (!crc64Table) {
    const tl = new Uint32Array(256), th = new Uint32Array(256);
    const pl = 0xd7870f42, ph = 0xc96c5795;
    for (let i = 0; i < 256; i++) {
      let l = i, h = 0;
      for (let k = 0; k < 8; k++) {
        const lsb = l & 1;
        l = ((l >>> 1) | ((h & 1) << 31)) >>> 0; h >>>= 1;
        if (lsb) { l = (l ^ pl) >>> 0; h = (h ^ ph) >>> 0; }
      }
      tl[i] = l; th[i] = h;
    }
    crc64Table = [tl, th];
  }
  const [tl, th] = crc64Table;
  let l = 0xffffffff, h = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const idx = (l ^ data[i]) & 0xff;
    l = (((l >>> 8) | ((h & 0xff) << 24)) ^ tl[idx]) >>> 0;
    h = ((h >>> 8) ^ th[idx]) >>> 0;
  }
  return [(l ^ 0xffffffff) >>> 0, (h ^ 0xffffffff) >>> 0];
}

class Reader {
  constructor(readonly b: Uint8Array, public p: number, readonly what: string) {}
  need(n: number, where: string): void {
    if (this.p + n > this.b.length) throw truncated("E_XZ_TRUNCATED", `${this.what}: data ends inside the ${where} at byte ${this.p}`);
  }
  u8(where: string): number { this.need(1, where); return this.b[this.p++]; }
  /** xz 1.2: variable-length integer, at most 9 bytes; kept below 2^53. */
  vli(where: string): number {
    let v = 0, mul = 1;
    for (let i = 0; i < 9; i++) {
      const c = this.u8(where);
      if (i > 0 && c === 0) throw corrupt("E_XZ_VLI", `${this.what}: non-minimal integer encoding in the ${where}`);
      v += (c & 0x7f) * mul;
      if (!(c & 0x80)) {
        if (v > Number.MAX_SAFE_INTEGER) throw overLimit("E_XZ_VLI", `${this.what}: integer in the ${where} is beyond 2^53`);
        return v;
      }
      mul *= 128;
    }
    throw corrupt("E_XZ_VLI", `${this.what}: integer in the ${where} is longer than 9 bytes`);
  }
}

function crc32(b: Uint8Array): number { return zlib.crc32(b) >>> 0; }

/** Decode one .xz stream (header, blocks, index, footer); stream padding after it is left to the caller. */
export function decodeXz(inp: Uint8Array, limit: number, what = "xz"): DecodeResult {
  const r = new Reader(inp, 0, what);
  r.need(12, "stream header");
  for (let i = 0; i < 6; i++) if (inp[i] !== XZ_MAGIC[i]) throw corrupt("E_XZ_MAGIC", `${what}: no xz stream header magic`);
  const flags = inp.subarray(6, 8);
  const hcrc = new DataView(inp.buffer, inp.byteOffset + 8, 4).getUint32(0, true);
  if (crc32(flags) !== hcrc) throw corrupt("E_XZ_CRC", `${what}: stream header CRC32 ${hex(hcrc)}, computed ${hex(crc32(flags))}`);
  if (flags[0] !== 0 || flags[1] > 0x0f) throw unsupported("E_XZ_FLAGS", `${what}: stream flags ${hex(flags[0], 2)} ${hex(flags[1], 2)} use reserved bits`);
  const checkType = flags[1];
  r.p = 12;
  const out = new BoundedOutput(limit, what);
  const records: { unpadded: number; uncompressed: number }[] = [];
  for (;;) {
    const blockStart = r.p;
    const hsize = r.u8("block header");
    if (hsize === 0) break; // index indicator
    const hlen = (hsize + 1) * 4;
    r.need(hlen - 1, "block header");
    const hdr = inp.subarray(blockStart, blockStart + hlen);
    const want = new DataView(hdr.buffer, hdr.byteOffset + hlen - 4, 4).getUint32(0, true);
    if (crc32(hdr.subarray(0, hlen - 4)) !== want) throw corrupt("E_XZ_CRC", `${what}: block header CRC32 ${hex(want)} at byte ${blockStart}, computed ${hex(crc32(hdr.subarray(0, hlen - 4)))}`);
    const bflags = r.u8("block header");
    if (bflags & 0x3c) throw unsupported("E_XZ_FLAGS", `${what}: block flags ${hex(bflags, 2)} use reserved bits`);
    const declaredPacked = bflags & 0x40 ? r.vli("block header") : -1;
    const declaredUnpacked = bflags & 0x80 ? r.vli("block header") : -1;
    const nfilters = (bflags & 3) + 1;
    let dictProp = -1;
    for (let f = 0; f < nfilters; f++) {
      const id = BigInt(r.vli("filter flags"));
      const psize = r.vli("filter flags");
      r.need(psize, "filter properties");
      if (id !== FILTER_LZMA2 || f !== nfilters - 1) {
        throw unsupported("E_XZ_FILTER", `${what}: filter ${FILTER_NAMES[String(id)] ?? hex(Number(id), 2)} is not read (only a lone LZMA2 filter, as initramfs tools write)`);
      }
      if (psize !== 1) throw corrupt("E_XZ_FILTER", `${what}: LZMA2 filter properties are ${psize} bytes, not 1`);
      dictProp = inp[r.p];
      r.p += psize;
    }
    if (r.p > blockStart + hlen - 4) throw corrupt("E_XZ_HEADER", `${what}: block header fields run past its ${hlen}-byte size`);
    if (dictProp > 40) throw corrupt("E_XZ_FILTER", `${what}: LZMA2 dictionary property ${dictProp} is over 40`);
    const dictSize = dictProp === 40 ? 0xffffffff : (2 | (dictProp & 1)) * 2 ** (Math.floor(dictProp / 2) + 11);
    if (dictSize > MAX_LZMA_DICT) throw overLimit("E_LZMA_DICT", `${what}: dictionary of ${dictSize} bytes is over the ${MAX_LZMA_DICT}-byte limit`);
    r.p = blockStart + hlen;
    const dataStart = r.p, outStart = out.len;
    decodeLzma2(r, out, dictSize, what);
    const packed = r.p - dataStart, unpacked = out.len - outStart;
    if (declaredPacked >= 0 && declaredPacked !== packed) throw corrupt("E_XZ_SIZE", `${what}: block declares ${declaredPacked} compressed bytes, has ${packed}`);
    if (declaredUnpacked >= 0 && declaredUnpacked !== unpacked) throw corrupt("E_XZ_SIZE", `${what}: block declares ${declaredUnpacked} bytes, decoded ${unpacked}`);
    while ((r.p - blockStart) % 4) if (r.u8("block padding") !== 0) throw corrupt("E_XZ_PADDING", `${what}: non-zero block padding at byte ${r.p - 1}`);
    const csize = CHECK_SIZE[checkType];
    r.need(csize, "block check");
    verifyCheck(checkType, out.buf.subarray(outStart, out.len), inp.subarray(r.p, r.p + csize), what);
    r.p += csize;
    records.push({ unpadded: hlen + packed + csize, uncompressed: unpacked });
  }
  // Index (xz 4): records must agree with the blocks just decoded.
  const indexStart = r.p - 1;
  const n = r.vli("index");
  if (n !== records.length) throw corrupt("E_XZ_INDEX", `${what}: index lists ${n} blocks, the stream has ${records.length}`);
  for (const rec of records) {
    const u = r.vli("index"), c = r.vli("index");
    if (u !== rec.unpadded || c !== rec.uncompressed) throw corrupt("E_XZ_INDEX", `${what}: index record (${u}, ${c}) does not match the block (${rec.unpadded}, ${rec.uncompressed})`);
  }
  while ((r.p - indexStart) % 4) if (r.u8("index padding") !== 0) throw corrupt("E_XZ_PADDING", `${what}: non-zero index padding`);
  r.need(4, "index CRC32");
  const icrc = new DataView(inp.buffer, inp.byteOffset + r.p, 4).getUint32(0, true);
  if (crc32(inp.subarray(indexStart, r.p)) !== icrc) throw corrupt("E_XZ_CRC", `${what}: index CRC32 ${hex(icrc)} does not match`);
  r.p += 4;
  r.need(12, "stream footer");
  const f = inp.subarray(r.p, r.p + 12);
  if (f[10] !== 0x59 || f[11] !== 0x5a) throw corrupt("E_XZ_MAGIC", `${what}: no stream footer magic at byte ${r.p}`);
  if (f[8] !== flags[0] || f[9] !== flags[1]) throw corrupt("E_XZ_FLAGS", `${what}: stream footer flags differ from the header's`);
  const backward = (new DataView(f.buffer, f.byteOffset + 4, 4).getUint32(0, true) + 1) * 4;
  if (backward !== r.p - indexStart) throw corrupt("E_XZ_INDEX", `${what}: footer backward size ${backward} does not match the index size ${r.p - indexStart}`);
  r.p += 12;
  return { data: out.result(), consumed: r.p };
}

function verifyCheck(type: number, data: Uint8Array, stored: Uint8Array, what: string): void {
  const dv = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  if (type === 0) return;
  if (type === 1) {
    const c = crc32(data);
    if (c !== dv.getUint32(0, true)) throw corrupt("E_XZ_CHECK", `${what}: block CRC32 ${hex(dv.getUint32(0, true))}, computed ${hex(c)}`);
  } else if (type === 4) {
    const [l, h] = crc64(data);
    if (l !== dv.getUint32(0, true) || h !== dv.getUint32(4, true)) throw corrupt("E_XZ_CHECK", `${what}: block CRC64 does not match the data`);
  } else if (type === 10) {
    const s = createHash("sha256").update(data).digest();
    if (!s.equals(Buffer.from(stored))) throw corrupt("E_XZ_CHECK", `${what}: block SHA-256 does not match the data`);
  }
  // Other check types are reserved by the spec; their size is known, so they are skipped unverified.
}

/** LZMA2 (xz 5.3.1): a chain of chunks, each uncompressed or LZMA with its own range coder. */
function decodeLzma2(r: Reader, out: BoundedOutput, dictSize: number, what: string): void {
  const d = new LzmaDecoder(out, what);
  d.dictSize = dictSize;
  let first = true, haveProps = false;
  for (;;) {
    const ctl = r.u8("LZMA2 chunk");
    if (ctl === 0x00) return;
    if (first && ctl !== 0x01 && ctl < 0xe0) throw corrupt("E_LZMA2_CHUNK", `${what}: first LZMA2 chunk (control ${hex(ctl, 2)}) does not reset the dictionary`);
    first = false;
    if (ctl === 0x01 || ctl === 0x02) {
      r.need(2, "LZMA2 chunk header");
      const size = ((r.b[r.p] << 8) | r.b[r.p + 1]) + 1;
      r.p += 2;
      r.need(size, "LZMA2 uncompressed chunk");
      if (ctl === 0x01) d.dictStart = out.len;
      out.push(r.b.subarray(r.p, r.p + size));
      r.p += size;
      continue;
    }
    if (ctl < 0x80) throw corrupt("E_LZMA2_CHUNK", `${what}: invalid LZMA2 control byte ${hex(ctl, 2)} at byte ${r.p - 1}`);
    r.need(4, "LZMA2 chunk header");
    const unpacked = ((ctl & 0x1f) * 65536) + ((r.b[r.p] << 8) | r.b[r.p + 1]) + 1;
    const packed = ((r.b[r.p + 2] << 8) | r.b[r.p + 3]) + 1;
    r.p += 4;
    const reset = (ctl >>> 5) & 3;
    if (reset === 3) d.dictStart = out.len;
    if (reset >= 2) { d.setProps(r.u8("LZMA2 properties")); haveProps = true; }
    if (!haveProps) throw corrupt("E_LZMA2_CHUNK", `${what}: LZMA2 chunk without properties`);
    if (reset >= 1) d.resetState();
    r.need(packed, "LZMA2 compressed chunk");
    d.initRange(r.b, r.p, r.p + packed);
    d.run(out.len + unpacked, false);
    if (d.ip !== r.p + packed || !d.rangeFinished()) {
      throw corrupt("E_LZMA2_CHUNK", `${what}: LZMA2 chunk of ${packed} compressed bytes ended after ${d.ip - r.p}`);
    }
    r.p += packed;
  }
}

