// Host fast-forward of shim's SHA-256 and SHA-1 block functions (FIPS 180-4 sections 6.2.2 and 6.1.2; OpenSSL's C
// sha256_block_data_order / sha1_block_data_order in shim's Cryptlib). Shim hashes GRUB and, through GRUB's shim_lock
// verify, the kernel, with both digests for Authenticode: hundreds of millions of guest instructions with the message
// schedule W[] kept on the stack, and Unicorn 2.0.1 pays ~70 ns a guest store (loop-accel.ts). Like loop-accel64.ts,
// code regions are scanned once when their code first calls the firmware; each function's entry gets a single-address
// hook that compresses the blocks on the host, leaves exactly the registers, flags and memory (context, stack frame
// below RSP) the guest's code would, and returns to the caller.
import type { Cpu } from "./cpu.ts";

/**
 * sha256_block_data_order(SHA256_CTX *ctx = RDI, const void *in = RSI, size_t num = RDX), SysV ABI (shim's
 * internal functions; only EFIAPI calls use the MS ABI), returns void; ctx->h[8] are 32-bit words at offset 0.
 * Bytes of the whole function (662) as Debian's shim 16.1 (shim-signed 1.51~1+deb12u1) builds it; the disp32 of
 * `lea r14,[rip+K256]` at K_DISP is not compared (it depends on the layout) — the table it points at is instead.
 * SHA-384/512 (sha512_block_data_order) is a separate function left to the guest (shim does not call it here).
 */
const SHIM_SHA256_BLOCKS = Buffer.from(
  "41574889f941564155415455534883c4804889742430488954243848ff4c243848837c2438ff0f845b0200008b0131db894424088b41048b7c240889" +
  "44240c8b4108448b4c240c894424108b410c448b5c2410894424148b4110448b642414894424188b41148b7424188944241c8b4118448b54241c8944" +
  "24208b411c8b6c24208944242489c2488b4424304189f54c8d357ac6050041c1cd0b448b041889f0c1c8064131c589f0410fc84489441c40c1c00745" +
  "03041e4883c3044431e84189f54401c04189f04521d541f7d04121e84531e84589cd4401c04189f84521dd01d089fa41c1c80dc1ca024131d089fac1" +
  "c20a4131d04489ca4431da21fa4431ea4401c2468d04204589dc01d089ea4883fb4074164489d54589cb4189f24189f94489c689c7e95dffffff4883" +
  "442430404c89742428c7442404100000008b5c2404ff4424048b54240483e20f448b7494404489f24589f441c1ee0341c1c40ec1ca074431e2448d63" +
  "0e4183e40f4431f24c8b742428468b6ca4404589ec4589ef41c1ed0a41c1c70d41c1c40f4531fc448d7b0983e30f4183e70f4531ec4589c5420354bc" +
  "4003549c404121f54401e24589c489549c404489c341c1cc06c1cb0b4431e34589c441c1c4074431e34589c441f7d44521d44531ec4401e341035e40" +
  "4189fc01d389c201eb89c5c1ca02c1cd0d31d589c24521cc488344242804c1c20a31d589fa4431ca21c24431e2468d241b4589cb01ea4489d501da83" +
  "7c24044074154189f24189f94489c689c74589e089d0e906ffffff8b5c240801d389198b5c240c01c38b44241089590401f88941088b4424144401c8" +
  "89410c8b4424184401e08941108b44241c4401c08941148b44242001f08941188b4424244401d089411ce994fdffff4883ec805b5d415c415d415e41" +
  "5fc3", "hex");
/** Offset of the K256 disp32 in the function, and of the next instruction (the RIP it is relative to). */
const K_DISP = 0x92, K_RIP = 0x96;
/** sha256 frame: six pushes (R15, R14, R13, R12, RBP, RBX) then `add rsp,-0x80`; locals from RSP+0. */
const FRAME256 = 6 * 8 + 0x80;

/**
 * sha1_block_data_order(SHA_CTX *ctx = RDI, const void *in = RSI, size_t num = RDX), SysV ABI, returns void;
 * ctx->h0..h4 are 32-bit words at offset 0. The whole function (601 bytes, position independent) from the same shim.
 */
const SHIM_SHA1_BLOCKS = Buffer.from(
  "41564889f8415541544989f4554889d5534883ec408b0f8b5704448b4f08448b470c4989e58b7f1031f64589ca458b1c344883c6044531c24121d2c1" +
  "ca02410fcb46895c2efc4189d689ca4531c2c1c205458d9c139979825a89ca4501d34101fb4489c74883fe40740b4589c84489d94589f1ebb54983c4" +
  "4031f68d7e0d418b54b500413354b50889cb83e70f413354b520c1cb023314bc4489f74431cfd1c221cf4489d9418954b50048ffc6c1c1054431cf44" +
  "8d940f9979825a4489d94101d24501c24589c84883fe04740b4589f14589d34189deeba3b9040000008d51028d71084589d083e60f83e20f8d790d41" +
  "c1c0058b14943314b489ce83e70f83e60fffc13314b43314bc4489dfd1c2c1cf028914b44489de4589d331de4431f6428db406a1ebd96e01d64401ce" +
  "4589f183f918740a4189de4189f289fbeb9f4531c9418d5108418d490a4589c883e20f4183e00f83e10f8b0c8c330c9442330c84458d410541ffc141" +
  "83e00f42330c844589d0d1c14121f8890c944489d209fa21da4409c24589d04189f241c1c20541c1c802428d9412dcbc1b8f4189f201ca4401f24189" +
  "de4183f914740989fb89d64489c7eb8d41bb04000000458d4b0a418d4b084183e10f83e10f468b148c4589d94433148c4183e10f4633148c458d4b05" +
  "41ffc34183e10f4633148c4189f14431c641d1c231fe41c1c9024489148c89d1c1c1058d8c0ed6c162ca89d64401d101d989fb4183fb18740a4489c7" +
  "89ca4589c8eb970308035004440348084403400c8908037810895004448948084489400c89781048ffcd0f85dcfdffff4883c4405b5d415c415d415e" +
  "c3", "hex");
/** sha1 frame: five pushes (R14, R13, R12, RBP, RBX) then `sub rsp,0x40`: W[16] from RSP+0. */
const FRAME1 = 5 * 8 + 0x40;

/** SHA-256 round constants (FIPS 180-4 section 4.2.2). */
const K = Uint32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const K_BYTES = Buffer.from(K.buffer, K.byteOffset, K.byteLength);
const K32 = new Int32Array(K.buffer, K.byteOffset, K.length);   // little-endian host: the table as it sits in .data
/** Most blocks one call may hash (1 GiB), and most regions scanned / functions hooked. */
const MAX_BLOCKS = 2 ** 24;
const MAX_SCAN_BYTES = 32 * 2 ** 20;
const MAX_REGIONS = 64;
const MAX_HOOKS = 8;

/** What the guest's code leaves behind after its last block, beyond ctx->h. */
export interface LastBlock {
  /** h before the last block. */
  start: Uint32Array;
  /** The working variables (a..h or a..e) after the last round. */
  vars: Uint32Array;
  /** The message schedule W[0..63] or W[0..79] of the last block. */
  w: Uint32Array;
}

/**
 * FIPS 180-4 6.2.2 steps 1-4 over `blocks` 64-byte blocks of `data` from `off`, updating `h` (8 words) in place.
 * Returns the last block's schedule and working variables (reused buffers: copy them to keep them).
 */
export function sha256Blocks(h: Uint32Array, data: Uint8Array, off: number, blocks: number): LastBlock {
  const w = W32, v = LAST256.vars, k = K32;
  for (let n = 0; n < blocks; n++, off += 64) {
    LAST256.start.set(h);
    loadBlock(w, data, off);
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15], y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (s1 + w[t - 7] + s0 + w[t - 16]) | 0;
    }
    let a = h[0] | 0, b = h[1] | 0, c = h[2] | 0, d = h[3] | 0, e = h[4] | 0, f = h[5] | 0, g = h[6] | 0, hh = h[7] | 0;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + k[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    v[0] = a; v[1] = b; v[2] = c; v[3] = d; v[4] = e; v[5] = f; v[6] = g; v[7] = hh;
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  LAST256.w.set(w.subarray(0, 64));
  return LAST256;
}
const LAST256: LastBlock = { start: new Uint32Array(8), vars: new Uint32Array(8), w: new Uint32Array(64) };

/** FIPS 180-4 6.1.2 over `blocks` 64-byte blocks, updating `h` (5 words) in place; as sha256Blocks. */
export function sha1Blocks(h: Uint32Array, data: Uint8Array, off: number, blocks: number): LastBlock {
  const w = W32, v = LAST1.vars;
  for (let n = 0; n < blocks; n++, off += 64) {
    LAST1.start.set(h);
    loadBlock(w, data, off);
    for (let t = 16; t < 80; t++) {
      const x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
      w[t] = (x << 1) | (x >>> 31);
    }
    let a = h[0] | 0, b = h[1] | 0, c = h[2] | 0, d = h[3] | 0, e = h[4] | 0;
    // The four 20-round stages, each with its own function and constant (FIPS 180-4 4.1.1, 4.2.1).
    for (let t = 0; t < 20; t++) {
      const T = (((a << 5) | (a >>> 27)) + ((b & c) ^ (~b & d)) + e + 0x5a827999 + w[t]) | 0;
      e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = T;
    }
    for (let t = 20; t < 40; t++) {
      const T = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + 0x6ed9eba1 + w[t]) | 0;
      e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = T;
    }
    for (let t = 40; t < 60; t++) {
      const T = (((a << 5) | (a >>> 27)) + ((b & c) ^ (b & d) ^ (c & d)) + e + (0x8f1bbcdc | 0) + w[t]) | 0;
      e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = T;
    }
    for (let t = 60; t < 80; t++) {
      const T = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + (0xca62c1d6 | 0) + w[t]) | 0;
      e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = T;
    }
    v[0] = a; v[1] = b; v[2] = c; v[3] = d; v[4] = e;
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  LAST1.w.set(w.subarray(0, 80));
  return LAST1;
}
const LAST1: LastBlock = { start: new Uint32Array(5), vars: new Uint32Array(5), w: new Uint32Array(80) };

/** W[0..15]: the block's big-endian words (FIPS 180-4 5.2.1). */
/** Message schedule scratch as int32 (V8 keeps int32 arithmetic unboxed; uint32 reads above 2^31 become doubles). */
const W32 = new Int32Array(80);

function loadBlock(w: Int32Array, data: Uint8Array, off: number): void {
  for (let t = 0; t < 16; t++) {
    const p = off + 4 * t;
    w[t] = (data[p] << 24) | (data[p + 1] << 16) | (data[p + 2] << 8) | data[p + 3];
  }
}

/** One hashed block function: how to recognise it and what its code leaves behind. */
interface BlockFn {
  name: string;
  sig: Buffer;
  /** Signature bytes not compared (a RIP-relative displacement), [from, to). */
  skip?: [number, number];
  /** Bytes below the return address the function's frame uses. */
  frame: number;
  /** State words at ctx+0. */
  words: number;
  /** Extra check at scan and call time (the K256 table); returns a value handed to finish, or -1. */
  data(ram: Buffer, at: number): number;
  compress(h: Uint32Array, data: Uint8Array, off: number, blocks: number): LastBlock;
  /** Write the frame and set the registers and flags the function's epilogue leaves (RIP/RSP are done by the caller). */
  finish(cpu: Cpu, x: { h: Uint32Array; last: LastBlock; ctx: bigint; src: bigint; num: bigint; rsp: bigint; f: number; data: number }): void;
}

const BLOCK_FNS: BlockFn[] = [
  {
    name: "sha256_block_data_order", sig: SHIM_SHA256_BLOCKS, skip: [K_DISP, K_RIP], frame: FRAME256, words: 8,
    data: kTableOf, compress: sha256Blocks,
    finish(cpu, { h, last, ctx, src, num, rsp, f, data: kAt }) {
      const ram = cpu.ram;
      saveRegs(cpu, f + 0x80, ["RBX", "RBP", "R12", "R13", "R14", "R15"]);
      ram.writeUInt32LE(0x40, f + 4);                                   // round counter
      for (let i = 0; i < 8; i++) ram.writeUInt32LE(last.start[i], f + 8 + 4 * i);
      ram.writeBigUInt64LE(BigInt(kAt + 48 * 4), f + 0x28);             // K256 pointer after rounds 16..63
      ram.writeBigUInt64LE(src + num * 64n, f + 0x30);                  // input pointer
      ram.writeBigUInt64LE(2n ** 64n - 1n, f + 0x38);                   // num - 1 after the final decrement
      for (let j = 0; j < 16; j++) ram.writeUInt32LE(last.w[48 + j], f + 0x40 + 4 * j);
      // The last block's a..h where gcc's allocation left them (RDX=a, RDI=c, R9=R11=d, R8=f, RSI=g, R10=h; b and
      // e were in EAX and R12: R12 is popped, EAX holds the new h[7]), RCX = ctx.
      const v = last.vars;
      setRegs(cpu, { RAX: h[7], RCX: ctx, RDX: v[0], RDI: v[2], R9: v[3], R11: v[3], R8: v[5], RSI: v[6], R10: v[7] });
      // Flags of the epilogue's `sub rsp,-0x80` (result RSP - 48): CF (borrow) and PF; AF, ZF, SF, OF clear.
      setStatusFlags(cpu, 0x1n, rsp - 48n);
    },
  },
  {
    name: "sha1_block_data_order", sig: SHIM_SHA1_BLOCKS, frame: FRAME1, words: 5,
    data: () => 0, compress: sha1Blocks,
    finish(cpu, { h, last, ctx, rsp, f }) {
      const ram = cpu.ram;
      saveRegs(cpu, f + 0x40, ["RBX", "RBP", "R12", "R13", "R14"]);
      for (let j = 0; j < 16; j++) ram.writeUInt32LE(last.w[64 + j], f + 4 * j);
      // New h0..h4 in ECX, EDX, R9D, R8D, EDI; ESI = the last round's b; R10D = W[79]; R11D = the last loop's
      // counter (4 -> 24); RAX = ctx.
      setRegs(cpu, { RAX: ctx, RCX: h[0], RDX: h[1], R9: h[2], R8: h[3], RDI: h[4], RSI: last.vars[1], R10: last.w[79], R11: 24 });
      // Flags of the epilogue's `add rsp,0x40` (result RSP - 40): PF only.
      setStatusFlags(cpu, 0n, rsp - 40n);
    },
  },
];

export interface ShaAccelStats { functions: string[]; calls: number; blocks: number; declined: number }

/** Every accelerator's work in this process (what tests and the debug line read; runGen2 keeps its own per run). */
export const shaAccelTotals: ShaAccelStats = { functions: [], calls: 0, blocks: 0, declined: 0 };

export class ShaAccelerator {
  readonly stats: ShaAccelStats = { functions: [], calls: 0, blocks: 0, declined: 0 };
  private scanned: { start: number; end: number }[] = [];
  /** Hooked entry -> its function and the value its `data` check gave at scan time. */
  private hooked = new Map<number, { fn: BlockFn; data: number }>();
  private h = new Uint32Array(8);

  constructor(private cpu: Cpu) {}

  /** A firmware call returning to `addr`: scan the region [start, end) holding that code once. */
  noteCaller(addr: number, region: () => { start: number; end: number } | undefined): void {
    if (this.scanned.some((r) => addr >= r.start && addr < r.end) || this.scanned.length >= MAX_REGIONS) return;
    const r = region();
    if (!r) return;
    this.scanned.push({ start: r.start, end: r.end });
    for (const { at, fn } of findBlockFunctions(this.cpu.ram, r.start, r.end)) {
      if (this.hooked.size >= MAX_HOOKS) break;
      if (this.hooked.has(at)) continue;
      this.hooked.set(at, { fn, data: fn.data(this.cpu.ram, at) });
      const name = `${fn.name} at ${at.toString(16)}`;
      this.stats.functions.push(name);
      if (shaAccelTotals.functions.length < 64) shaAccelTotals.functions.push(name);
      this.cpu.addCodeHook(at, at, (a) => this.blocks(a));
      this.cpu.invalidate(at, at + fn.sig.length);
    }
  }

  /** The entry hook: do the whole call on the host, or return and let the guest run it. */
  private blocks(at: number): void {
    if (this.run(at)) return;
    this.stats.declined++;
    shaAccelTotals.declined++;
  }

  private run(at: number): boolean {
    const cpu = this.cpu, ram = cpu.ram;
    const hook = this.hooked.get(at);
    if (!hook || !matches(ram, at, hook.fn) || hook.fn.data(ram, at) !== hook.data) return false;
    const { fn } = hook;
    const ctx = cpu.reg64("RDI"), src = cpu.reg64("RSI"), num = cpu.reg64("RDX"), rsp = cpu.reg64("RSP");
    const size = BigInt(ram.length), bytes = 4 * fn.words;
    // num = 0 is OpenSSL's callers' business (sha1's loop would wrap); pointers outside RAM fault in the guest.
    if (num === 0n || num > BigInt(MAX_BLOCKS) || ctx + BigInt(bytes) > size || src + num * 64n > size ||
      rsp < BigInt(fn.frame) || rsp + 8n > size) return false;
    const c = Number(ctx), s = Number(src), n = Number(num), f = Number(rsp) - fn.frame;
    // The guest reads each block after writing h of the previous one, and its frame is live memory: an input that
    // overlaps either would make the two differ.
    if (overlaps(s, s + n * 64, c, c + bytes) || overlaps(s, s + n * 64, f, f + fn.frame) ||
      overlaps(c, c + bytes, f, f + fn.frame + 8)) return false;
    const h = this.h.subarray(0, fn.words);
    for (let i = 0; i < fn.words; i++) h[i] = ram.readUInt32LE(c + 4 * i);
    const last = fn.compress(h, ram, s, n);
    for (let i = 0; i < fn.words; i++) ram.writeUInt32LE(h[i], c + 4 * i);
    // The frame is dead memory below RSP after the return, written so that runs stay identical with the guest's.
    fn.finish(cpu, { h, last, ctx, src, num, rsp, f, data: hook.data });
    cpu.invalidate(c, c + bytes);
    cpu.invalidate(f, f + fn.frame);
    cpu.setReg64("RIP", ram.readBigUInt64LE(Number(rsp)));
    cpu.setReg64("RSP", rsp + 8n);
    this.stats.calls++;
    this.stats.blocks += n;
    shaAccelTotals.calls++;
    shaAccelTotals.blocks += n;
    return true;
  }
}

/** Entries of shim's hash block functions in ram[start, end) (with an intact K256 table for SHA-256). */
export function findBlockFunctions(ram: Buffer, start: number, end: number): { at: number; fn: BlockFn }[] {
  const lo = Math.max(0, start), hi = Math.min(ram.length, end, start + MAX_SCAN_BYTES);
  const found: { at: number; fn: BlockFn }[] = [];
  if (hi <= lo) return found;
  // Search only the region (Buffer.indexOf on all of RAM would touch every page: tens of µs each, first time).
  const code = ram.subarray(lo, hi);
  for (const fn of BLOCK_FNS) {
    const head = fn.sig.subarray(0, fn.skip?.[0] ?? fn.sig.length);
    for (let off = code.indexOf(head); off >= 0 && found.length < MAX_HOOKS; off = code.indexOf(head, off + 1)) {
      const at = lo + off;
      if (matches(ram, at, fn) && fn.data(ram, at) >= 0) found.push({ at, fn });
    }
  }
  return found;
}

function matches(ram: Buffer, at: number, fn: BlockFn): boolean {
  const len = fn.sig.length, [a, b] = fn.skip ?? [len, len];
  if (at < 0 || at + len > ram.length) return false;
  return ram.compare(fn.sig, 0, a, at, at + a) === 0 && ram.compare(fn.sig, b, len, at + b, at + len) === 0;
}

/** Address of the table sha256's `lea r14,[rip+disp32]` loads, or -1 if it is not the FIPS 180-4 K. */
function kTableOf(ram: Buffer, at: number): number {
  const k = at + K_RIP + ram.readInt32LE(at + K_DISP);
  return k >= 0 && k + K_BYTES.length <= ram.length && ram.compare(K_BYTES, 0, K_BYTES.length, k, k + K_BYTES.length) === 0 ? k : -1;
}

/** The pushed callee-saved registers (lowest address first), still holding the caller's values. */
function saveRegs(cpu: Cpu, at: number, regs: ("RBX" | "RBP" | "R12" | "R13" | "R14" | "R15")[]): void {
  regs.forEach((r, i) => cpu.ram.writeBigUInt64LE(cpu.reg64(r), at + 8 * i));
}

function setRegs(cpu: Cpu, regs: Partial<Record<"RAX" | "RCX" | "RDX" | "RSI" | "RDI" | "R8" | "R9" | "R10" | "R11", number | bigint>>): void {
  for (const [r, v] of Object.entries(regs)) cpu.setReg64(r as "RAX", BigInt(v));
}

/** CF as given, PF from the low byte of `result`, AF/ZF/SF/OF clear (Intel SDM vol. 1, 3.4.3.1). */
function setStatusFlags(cpu: Cpu, cf: bigint, result: bigint): void {
  let x = Number(result & 0xffn);
  x ^= x >> 4; x ^= x >> 2; x ^= x >> 1;
  const pf = (x & 1) === 0 ? 0x4n : 0n;
  cpu.setReg64("EFLAGS", (cpu.reg64("EFLAGS") & ~0x8d5n) | cf | pf);
}

function overlaps(a0: number, a1: number, b0: number, b1: number): boolean {
  return a0 < b1 && b0 < a1;
}
