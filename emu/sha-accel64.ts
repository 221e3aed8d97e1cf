// Host fast-forward of shim's SHA-256 block function (FIPS 180-4 section 6.2.2; OpenSSL's C sha256_block_data_order
// in shim's Cryptlib). Shim hashes GRUB and, through GRUB's shim_lock verify, the kernel: ~400 M guest instructions
// with the message schedule W[] kept on the stack, and Unicorn 2.0.1 pays ~70 ns a guest store (loop-accel.ts).
// Like loop-accel64.ts, code regions are scanned once when their code first calls the firmware; the function's entry
// gets a single-address hook that compresses the blocks on the host, leaves exactly the registers, flags and memory
// (context, stack frame below RSP) the guest's code would, and returns to the caller.
import type { Cpu } from "./cpu.ts";

/**
 * sha256_block_data_order(SHA256_CTX *ctx = RDI, const void *in = RSI, size_t num = RDX), SysV ABI (shim's
 * internal functions; only EFIAPI calls use the MS ABI), returns void; ctx->h[8] are 32-bit words at offset 0.
 * Bytes of the whole function (662) as Debian's shim 16.1 (shim-signed 1.51~1+deb12u1) builds it; the disp32 of
 * `lea r14,[rip+K256]` at K_DISP is not compared (it depends on the layout) — the table it points at is instead.
 * SHA-1 (sha1_block_data_order) and SHA-384/512 (sha512_block_data_order) are separate functions left to the guest.
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
/** The function's frame: six pushes (R15, R14, R13, R12, RBP, RBX) then `add rsp,-0x80`; locals from RSP+0. */
const FRAME = 6 * 8 + 0x80;

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
const K_BYTES = Buffer.from(K.buffer, K.byteOffset, K.byteLength);   // little-endian host: the table as it sits in .data
/** Most blocks one call may hash (1 GiB), and most regions scanned / functions hooked. */
const MAX_BLOCKS = 2 ** 24;
const MAX_SCAN_BYTES = 32 * 2 ** 20;
const MAX_REGIONS = 64;
const MAX_HOOKS = 8;

/** What the guest's code leaves behind after its last block, beyond ctx->h. */
export interface Sha256LastBlock {
  /** h[0..7] before the last block (the function's copy at RSP+8 of its frame). */
  start: Uint32Array;
  /** The working variables a..h after round 63. */
  vars: Uint32Array;
  /** The message schedule W[0..63] of the last block. */
  w: Uint32Array;
}

/**
 * FIPS 180-4 6.2.2 steps 1-4 over `blocks` 64-byte blocks of `data` from `off`, updating `h` (8 words) in place.
 * Returns the last block's schedule and working variables (reused buffers: copy them to keep them).
 */
export function sha256Blocks(h: Uint32Array, data: Uint8Array, off: number, blocks: number): Sha256LastBlock {
  const w = LAST.w, v = LAST.vars;
  for (let n = 0; n < blocks; n++, off += 64) {
    LAST.start.set(h);
    for (let t = 0; t < 16; t++) {
      const p = off + 4 * t;
      w[t] = (data[p] << 24) | (data[p + 1] << 16) | (data[p + 2] << 8) | data[p + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15], y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (s1 + w[t - 7] + s0 + w[t - 16]) | 0;
    }
    let a = h[0] | 0, b = h[1] | 0, c = h[2] | 0, d = h[3] | 0, e = h[4] | 0, f = h[5] | 0, g = h[6] | 0, hh = h[7] | 0;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    v[0] = a; v[1] = b; v[2] = c; v[3] = d; v[4] = e; v[5] = f; v[6] = g; v[7] = hh;
    for (let i = 0; i < 8; i++) h[i] = h[i] + v[i];
  }
  return LAST;
}
const LAST: Sha256LastBlock = { start: new Uint32Array(8), vars: new Uint32Array(8), w: new Uint32Array(64) };

export interface ShaAccelStats { functions: string[]; calls: number; blocks: number; declined: number }

/** Every accelerator's work in this process (what tests and the debug line read; runGen2 keeps its own per run). */
export const shaAccelTotals: ShaAccelStats = { functions: [], calls: 0, blocks: 0, declined: 0 };

export class Sha256Accelerator {
  readonly stats: ShaAccelStats = { functions: [], calls: 0, blocks: 0, declined: 0 };
  private scanned: { start: number; end: number }[] = [];
  /** Hooked entry -> address of its K256 table. */
  private hooked = new Map<number, number>();
  private h = new Uint32Array(8);

  constructor(private cpu: Cpu) {}

  /** A firmware call returning to `addr`: scan the region [start, end) holding that code once. */
  noteCaller(addr: number, region: () => { start: number; end: number } | undefined): void {
    if (this.scanned.some((r) => addr >= r.start && addr < r.end) || this.scanned.length >= MAX_REGIONS) return;
    const r = region();
    if (!r) return;
    this.scanned.push({ start: r.start, end: r.end });
    for (const at of findSha256Blocks(this.cpu.ram, r.start, r.end)) {
      if (this.hooked.size >= MAX_HOOKS) break;
      if (this.hooked.has(at)) continue;
      this.hooked.set(at, kTableOf(this.cpu.ram, at));
      const name = `sha256_block_data_order at ${at.toString(16)}`;
      this.stats.functions.push(name);
      if (shaAccelTotals.functions.length < 64) shaAccelTotals.functions.push(name);
      this.cpu.addCodeHook(at, at, (a) => this.blocks(a));
      this.cpu.invalidate(at, at + SHIM_SHA256_BLOCKS.length);
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
    const kAt = this.hooked.get(at);
    if (kAt === undefined || !isSha256Blocks(ram, at) || kTableOf(ram, at) !== kAt) return false;
    const ctx = cpu.reg64("RDI"), src = cpu.reg64("RSI"), num = cpu.reg64("RDX"), rsp = cpu.reg64("RSP");
    const size = BigInt(ram.length);
    // num = 0 is a dozen guest instructions; pointers outside RAM fault in the guest, as they should.
    if (num === 0n || num > BigInt(MAX_BLOCKS) || ctx + 32n > size || src + num * 64n > size || rsp < BigInt(FRAME) || rsp + 8n > size) return false;
    const c = Number(ctx), s = Number(src), n = Number(num), f = Number(rsp) - FRAME;
    // The guest reads each block after writing h of the previous one, and its frame is live memory: an input that
    // overlaps either would make the two differ.
    if (overlaps(s, s + n * 64, c, c + 32) || overlaps(s, s + n * 64, f, f + FRAME) || overlaps(c, c + 32, f, f + FRAME + 8)) return false;
    const h = this.h;
    for (let i = 0; i < 8; i++) h[i] = ram.readUInt32LE(c + 4 * i);
    const last = sha256Blocks(h, ram, s, n);
    for (let i = 0; i < 8; i++) ram.writeUInt32LE(h[i], c + 4 * i);
    // The frame as the epilogue leaves it (dead memory below RSP, written so runs stay identical with the guest's).
    const saved = (["RBX", "RBP", "R12", "R13", "R14", "R15"] as const).map((r) => cpu.reg64(r));
    saved.forEach((v, i) => ram.writeBigUInt64LE(v, f + 0x80 + 8 * i));
    ram.writeUInt32LE(0x40, f + 4);                                   // round counter
    for (let i = 0; i < 8; i++) ram.writeUInt32LE(last.start[i], f + 8 + 4 * i);
    ram.writeBigUInt64LE(BigInt(kAt + 48 * 4), f + 0x28);             // K256 pointer after rounds 16..63
    ram.writeBigUInt64LE(src + num * 64n, f + 0x30);                  // input pointer
    ram.writeBigUInt64LE(2n ** 64n - 1n, f + 0x38);                   // num - 1 after the final decrement
    for (let j = 0; j < 16; j++) ram.writeUInt32LE(last.w[48 + j], f + 0x40 + 4 * j);
    cpu.invalidate(c, c + 32);
    cpu.invalidate(f, f + FRAME);
    // Registers at the RET: the last block's a..h where gcc's allocation left them (RDX=a, RDI=c, R9=R11=d,
    // R8=f, RSI=g, R10=h; e and b were in R12 and EAX: R12 is popped, EAX holds the new h[7]), RCX = ctx.
    const v = last.vars;
    cpu.setReg64("RAX", BigInt(h[7]));
    cpu.setReg64("RCX", ctx);
    cpu.setReg64("RDX", BigInt(v[0]));
    cpu.setReg64("RDI", BigInt(v[2]));
    cpu.setReg64("R9", BigInt(v[3]));
    cpu.setReg64("R11", BigInt(v[3]));
    cpu.setReg64("R8", BigInt(v[5]));
    cpu.setReg64("RSI", BigInt(v[6]));
    cpu.setReg64("R10", BigInt(v[7]));
    // Flags from the epilogue's `sub rsp,-0x80` (RSP - 48 before the pops): CF (borrow), PF of the low byte; AF, ZF,
    // SF, OF clear.
    const low = Number((rsp - 48n) & 0xffn);
    const pf = parityEven(low) ? 0x4n : 0n;
    cpu.setReg64("EFLAGS", (cpu.reg64("EFLAGS") & ~0x8d5n) | 0x1n | pf);
    cpu.setReg64("RIP", ram.readBigUInt64LE(Number(rsp)));
    cpu.setReg64("RSP", rsp + 8n);
    this.stats.calls++;
    this.stats.blocks += n;
    shaAccelTotals.calls++;
    shaAccelTotals.blocks += n;
    return true;
  }
}

/** Entries of shim's sha256_block_data_order in ram[start, end) whose K256 table is intact. */
export function findSha256Blocks(ram: Buffer, start: number, end: number): number[] {
  const lo = Math.max(0, start), hi = Math.min(ram.length, end, start + MAX_SCAN_BYTES);
  if (hi <= lo) return [];
  // Search only the region (Buffer.indexOf on all of RAM would touch every page: tens of µs each, first time).
  const code = ram.subarray(lo, hi), head = SHIM_SHA256_BLOCKS.subarray(0, K_DISP);
  const found: number[] = [];
  for (let off = code.indexOf(head); off >= 0 && found.length < MAX_HOOKS; off = code.indexOf(head, off + 1)) {
    const at = lo + off;
    if (isSha256Blocks(ram, at) && kTableOf(ram, at) >= 0) found.push(at);
  }
  return found;
}

function isSha256Blocks(ram: Buffer, at: number): boolean {
  const len = SHIM_SHA256_BLOCKS.length;
  if (at < 0 || at + len > ram.length) return false;
  return ram.compare(SHIM_SHA256_BLOCKS, 0, K_DISP, at, at + K_DISP) === 0 &&
    ram.compare(SHIM_SHA256_BLOCKS, K_RIP, len, at + K_RIP, at + len) === 0;
}

/** Address of the table the function's `lea r14,[rip+disp32]` loads, or -1 if it is not the FIPS 180-4 K. */
function kTableOf(ram: Buffer, at: number): number {
  const k = at + K_RIP + ram.readInt32LE(at + K_DISP);
  return k >= 0 && k + K_BYTES.length <= ram.length && ram.compare(K_BYTES, 0, K_BYTES.length, k, k + K_BYTES.length) === 0 ? k : -1;
}

function overlaps(a0: number, a1: number, b0: number, b1: number): boolean {
  return a0 < b1 && b0 < a1;
}

function parityEven(x: number): boolean {
  x ^= x >> 4; x ^= x >> 2; x ^= x >> 1;
  return (x & 1) === 0;
}
