// Host decoding of GRUB 2 i386-pc core.img's LZMA payload (GRUB 2.06 grub-core/boot/i386/pc/startup_raw.S and
// lzma_decode.S, the code of lzma_decompress.img; stream written by util/mkimage.c compress_kernel_lzma: raw LZMA1,
// no header, no end marker, lc=3 lp=0 pb=2, dictionary 64 KiB). The guest's decoder keeps range/code/state and
// every probability in memory, so under Unicorn 2.0.1 (~70 ns a guest store, loop-accel.ts) unpacking the kernel
// and modules takes hundreds of ms. This finishes the decoder call on the host, exactly, and returns to the caller.
//
// The decoder's contract (lzma_decode.S, built with ASM_FILE and FIXED_PROPS), 32-bit flat protected mode, cdecl-ish:
//   _LzmaDecodeA: EBX = probability area (7990 dwords), ESI = compressed stream, EDI = output,
//   [ESP+4] = out_size (the caller's `push %ecx`). It fills the probabilities with 1024 (rep stosl), skips the
//   stream's first byte, decodes symbols until now_pos >= out_size (a match may run past it: no bound is checked,
//   nor distances against the data written), and returns with `mov %ebp,%esp; pop %ebp; ret`.
//   Leaves: EAX = now_pos, ESI past the last byte read, EDI = output end, EBX and EBP unchanged, DF = 0, the
//   arithmetic flags of `cmp out_size, now_pos` (equal: ZF PF set), ECX/EDX from the last symbol (a match:
//   ECX = 0, EDX = -(distance+1); a literal: EDX = 100h|byte, ECX = the literal's last probability address or, if
//   that bit was coded against the match byte, the match byte's bit 0).
//   Memory written: the output; the probabilities at EBX (IsMatch 0, IsRep 192, IsRepG0 204, IsRepG1 216,
//   IsRepG2 228, IsRep0Long 240, PosSlot 432, SpecPos 688, Align 802, LenCoder 818, RepLenCoder 1332, Literal 1846
//   (768 << lc), in dwords); its frame below the return address E: saved EBP at E-4 and nine dword locals at
//   E-40..E-8 (rep3 rep2 rep1 rep0 state code range prev_byte now_pos; reps are distance+1); and temporaries
//   (pushes, return addresses, PUSHF) at E-88..E-41.
//   The caller (post_reed_solomon) is `push %edi; mov uncompressed_size,%ecx; lea (%edi,%ecx),%ebx; push %ecx;
//   call _LzmaDecodeA; pop %ecx; pop %esi; mov boot_dev,%edx; mov $prot_to_real,%edi; mov $real_to_prot,%ecx;
//   mov $realidt,%eax; jmp *%esi` — into the decompressed kernel at 0x100000.
//
// Recognition: GRUB's boot.img/diskboot.img protocol enters core.img at 0000:8200 (diskboot.S `ljmp $0,
// $(GRUB_BOOT_MACHINE_KERNEL_ADDR + 0x200)`), with all of core.img read. A hook there scans the decompressor
// (below 0x9000: GRUB_DECOMPRESSOR_I386_PC_MAX_DECOMPRESSOR_SIZE) for the call site above, follows its CALL and checks
// the 809 position-independent bytes of the decoder (from RangeDecoderBitDecode to its end) by SHA-256; then a
// single-address hook at _LzmaDecodeA does the work. Everything is checked again when the decoder is reached (GRUB's
// Reed-Solomon recovery may rewrite these bytes in between), and anything unexpected declines: the guest then runs
// its own decoder. The host decoder (images/lzma.ts decodeLzmaRaw) throws where the guest's would read outside the
// data (a distance before the output, a match past out_size, an end marker, a first byte not 0): declined too.
//
// Difference from a real run: the decoder's temporaries below its locals (E-88..E-41: pushed loop values,
// return addresses, PUSHF images) are not written. They are dead: after the return ESP is E+4, the caller pops to
// E+12 and jumps into the kernel, and nothing reads stack memory below ESP before writing it. Output,
// probabilities, the saved EBP, the locals, every register and the flags are exactly the guest decoder's.
import { createHash } from "node:crypto";
import type { Cpu } from "./cpu.ts";
import { bytesMatch, type Machine } from "./machine.ts";
import { decodeLzmaRaw, type LzmaSnapshot } from "../images/lzma.ts";

/** Where diskboot.img enters core.img's decompressor (GRUB_BOOT_MACHINE_KERNEL_ADDR + 0x200). */
const CORE_ENTRY = 0x8200;
/** The decompressor ends below GRUB_KERNEL_I386_PC_LINK_ADDR (offsets.h GRUB_DECOMPRESSOR_I386_PC_MAX_DECOMPRESSOR_SIZE). */
const CORE_SCAN_END = 0x9000;
/** Arrivals at CORE_ENTRY inspected before the scan hook retires (other loaders may run code there). */
const MAX_SCANS = 8;
/** lzma_decode.S FIXED_PROPS and util/mkimage.c compress_kernel_lzma. */
const LC = 3, LP = 0, PB = 2;
/** Dwords of probabilities: Literal (LZMA_BASE_SIZE 1846) + (LZMA_LIT_SIZE 768 << (lc + lp)). */
const LITERAL = 1846;
const PROBS = LITERAL + (0x300 << (LC + LP));
/** Dword offsets of the models in the probability area (lzma_decode.S #defines). */
const IS_MATCH = 0, IS_REP = 192, IS_REP_G0 = 204, IS_REP_G1 = 216, IS_REP_G2 = 228, IS_REP0_LONG = 240, POS_SLOT = 432,
  SPEC_POS = 688, ALIGN = 802, LEN_CODER = 818, REP_LEN_CODER = 1332;
/** Largest output decoded on the host (core.img must fit below 0x78000 uncompressed; mkimage.c). */
const MAX_OUT = 16 * 2 ** 20;
/** The decoder's frame below the return address (its temporaries reach E-88), with a margin. */
const FRAME = 96;

/** From RangeDecoderBitDecode to the end of _LzmaDecodeA (lzma_decompress.img of Debian grub-pc-bin 2.06-13). */
const DECODER_LEN = 809;
const DECODER_SHA256 = "33edbdbd5e37d9252366740f9e57e89091a6e0d0d99380578593d22965eda01a";
/** _LzmaDecodeA's offset in those bytes (`push %ebp; mov %esp,%ebp; sub $0x24,%esp; push %edi; cld`). */
const ENTRY_OFFSET = 0xc6;

/**
 * The call site in post_reed_solomon, -1 = any byte (absolute addresses of one build):
 * mov $0x100000,%edi ; mov $decompressor_end,%esi ; push %edi ; mov uncompressed_size,%ecx ; lea (%edi,%ecx),%ebx ;
 * push %ecx ; call _LzmaDecodeA (rel32 at CALL_REL) ; then RETURN_TAIL.
 */
const CALL_SITE = [0xbf, -1, -1, -1, -1, 0xbe, -1, -1, -1, -1, 0x57, 0x8b, 0x0d, -1, -1, -1, -1, 0x8d, 0x1c, 0x0f, 0x51, 0xe8];
/** After the call: pop %ecx ; pop %esi ; mov boot_dev,%edx ; mov $..,%edi ; mov $..,%ecx ; mov $..,%eax ; jmp *%esi. */
const RETURN_TAIL = [0x59, 0x5e, 0x8b, 0x15, -1, -1, -1, -1, 0xbf, -1, -1, -1, -1, 0xb9, -1, -1, -1, -1, 0xb8, -1, -1, -1, -1, 0xff, 0xe6];

/** EFLAGS bits (Intel SDM vol. 1, 3.4.3). */
const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, DF = 0x400, OF = 0x800;

/** scans: arrivals at 0000:8200 inspected; armed: decoder entries hooked; calls/bytes: decodes done on the host; declined: why not. */
export interface GrubLzmaStats {
  scans: number; armed: string[]; calls: number; bytes: number; hostMs: number; declined: string[];
  /** Linear [first, last] byte ranges the guest's decoder would have written and the host did not (dead temporaries). */
  unwritten: [number, number][];
}

/**
 * Arm the host decoder for GRUB i386-pc core.img. `m` is accepted for symmetry with the other accelerators; guest RAM
 * is reached through the Cpu.
 */
export function installGrubLzmaAccel(cpu: Cpu, _m?: Machine): { stats: GrubLzmaStats } {
  const stats: GrubLzmaStats = { scans: 0, armed: [], calls: 0, bytes: 0, hostMs: 0, declined: [], unwritten: [] };
  const ram = cpu.ram;
  const armed = new Map<number, number>();          // decoder entry -> expected return address
  let scanHook = 0;
  scanHook = cpu.addCodeHook(CORE_ENTRY, CORE_ENTRY, () => {
    if (++stats.scans >= MAX_SCANS && scanHook) { cpu.removeHook(scanHook); scanHook = 0; }
    const site = findGrubLzmaCall(ram);
    if (!site || armed.has(site.entry)) return;
    armed.set(site.entry, site.ret);
    stats.armed.push(`_LzmaDecodeA at ${site.entry.toString(16)}, called from ${(site.ret - 5).toString(16)}`);
    cpu.addCodeHook(site.entry, site.entry, (a) => {
      const why = atEntry(cpu, a, armed.get(a) ?? -1, stats);
      if (why) stats.declined.push(why);
    });
    cpu.invalidate(site.entry, site.entry + 1);     // a block translated there before would not see the new hook
  });
  return { stats };
}


/** The decoder's bytes around `entry` are GRUB 2.06's. */
function isDecoder(ram: Buffer, entry: number): boolean {
  const lo = entry - ENTRY_OFFSET;
  if (lo < 0 || lo + DECODER_LEN > ram.length) return false;
  return createHash("sha256").update(ram.subarray(lo, lo + DECODER_LEN)).digest("hex") === DECODER_SHA256;
}

/** Find post_reed_solomon's call of the decoder in the decompressor: its entry and the call's return address. */
export function findGrubLzmaCall(ram: Buffer): { entry: number; ret: number } | undefined {
  for (let at = CORE_ENTRY; at + CALL_SITE.length + 4 + RETURN_TAIL.length <= CORE_SCAN_END; at++) {
    if (ram[at] !== 0xbf || !bytesMatch(ram, at, CALL_SITE)) continue;
    const ret = at + CALL_SITE.length + 4;
    const entry = (ret + ram.readInt32LE(ret - 4)) >>> 0;
    if (bytesMatch(ram, ret, RETURN_TAIL) && isDecoder(ram, entry)) return { entry, ret };
  }
  return undefined;
}

/** Whether a GDT selector's segment is flat: base 0, limit FFFFFh page granular (4 GiB); a code segment also 32-bit (D). */
function flatSegment(cpu: Cpu, sel: number, code: boolean): boolean {
  const gdt = cpu.mmr("GDTR");
  const off = sel & 0xfff8;
  if ((sel & 4) !== 0 || off === 0 || off + 8 > gdt.limit + 1) return false;
  const d = gdt.base + off;
  if (d + 8 > cpu.ram.length) return false;
  const r = cpu.ram;
  const base = (r.readUInt16LE(d + 2) | (r[d + 4] << 16) | (r[d + 7] << 24)) >>> 0;
  const limit = r.readUInt16LE(d) | ((r[d + 6] & 0x0f) << 16);
  const gran = (r[d + 6] & 0x80) !== 0, big = (r[d + 6] & 0x40) !== 0;
  return base === 0 && limit === 0xfffff && gran && (!code || big);
}

function overlaps(a: number, aEnd: number, b: number, bEnd: number): boolean {
  return a < bEnd && b < aEnd;
}

/** At _LzmaDecodeA's first instruction: decode on the host and return to the caller, or say why not. */
function atEntry(cpu: Cpu, entry: number, expectRet: number, stats: GrubLzmaStats): string | undefined {
  const ram = cpu.ram;
  if ((cpu.reg("CR0") & 1) === 0) return "decoder entry reached in real mode";
  if (!isDecoder(ram, entry)) return `decoder bytes at ${entry.toString(16)} changed`;
  if (!flatSegment(cpu, cpu.reg("CS"), true) || !flatSegment(cpu, cpu.reg("DS"), false) ||
    !flatSegment(cpu, cpu.reg("ES"), false) || !flatSegment(cpu, cpu.reg("SS"), false)) return "segments are not flat 32-bit";
  const esp = cpu.reg("ESP");
  if (esp < FRAME || esp + 8 > ram.length) return `stack pointer ${esp.toString(16)} outside RAM`;
  const ret = ram.readUInt32LE(esp), outSize = ram.readUInt32LE(esp + 4);
  if (ret !== expectRet || !bytesMatch(ram, ret, RETURN_TAIL)) return `called from ${ret.toString(16)}, not post_reed_solomon`;
  if (cpu.reg("EFLAGS") & DF) return "direction flag set";
  const ebx = cpu.reg("EBX"), esi = cpu.reg("ESI"), edi = cpu.reg("EDI");
  if (outSize === 0 || outSize > MAX_OUT) return `output size ${outSize}`;
  const probsEnd = ebx + 4 * PROBS, outEnd = edi + outSize, frameLo = esp - FRAME, frameEnd = esp + 8;
  if (probsEnd > ram.length || outEnd > ram.length || esi >= ram.length) return "buffers outside RAM";
  // The guest writes the output, the probabilities and its frame; it reads the stream while writing them, and
  // reads back its own output: any overlap would make the two runs differ.
  const written: [number, number][] = [[edi, outEnd], [ebx, probsEnd], [frameLo, frameEnd]];
  for (let i = 0; i < written.length; i++) {
    for (let j = i + 1; j < written.length; j++) {
      if (overlaps(written[i][0], written[i][1], written[j][0], written[j][1])) return "output, probabilities and stack overlap";
    }
    if (written[i][0] <= esi && esi < written[i][1]) return "stream starts inside a written buffer";
  }
  const inEnd = Math.min(ram.length, ...written.map((w) => w[0]).filter((s) => s > esi));
  const t0 = performance.now();
  let dec: ReturnType<typeof decodeLzmaRaw>;
  try {
    dec = decodeLzmaRaw(ram, esi, inEnd, { lc: LC, lp: LP, pb: PB, dictSize: outSize, size: outSize, what: "GRUB core.img" });
  } catch (e) {
    return `host decode failed: ${(e as Error).message}`;
  }
  if (dec.data.length !== outSize) return `host decode gave ${dec.data.length} of ${outSize} bytes`;
  const out = dec.data, end = dec.end;

  cpu.write(edi, out);
  cpu.write(ebx, probabilities(end));
  const frame = Buffer.alloc(40);
  const locals = [end.reps[3] + 1, end.reps[2] + 1, end.reps[1] + 1, end.reps[0] + 1, end.state, end.code, end.range,
    out[outSize - 1], outSize];                    // E-40 .. E-8: rep3 rep2 rep1 rep0 state code range prev_byte now_pos
  locals.forEach((v, i) => frame.writeUInt32LE(v >>> 0, 4 * i));
  frame.writeUInt32LE(cpu.reg("EBP"), 36);         // E-4: saved EBP
  cpu.write(esp - 40, frame);

  // ECX/EDX as the last symbol leaves them (see the header).
  let ecx: number, edx: number;
  if (end.state >= 7) {
    ecx = 0;
    edx = -(end.reps[0] + 1) >>> 0;
  } else {
    const byte = out[outSize - 1], prev = outSize > 1 ? out[outSize - 2] : 0;
    edx = 0x100 | byte;
    const matchByte = end.state >= 4 ? out[outSize - 1 - end.reps[0] - 1] : -1;
    if (matchByte >= 0 && (byte >>> 1) === (matchByte >>> 1)) ecx = matchByte & 1;
    else ecx = (ebx + 4 * (LITERAL + 0x300 * (prev >>> (8 - LC)) + ((0x100 | byte) >>> 1))) >>> 0;
  }
  cpu.setReg("EAX", outSize);
  cpu.setReg("ECX", ecx);
  cpu.setReg("EDX", edx);
  cpu.setReg("ESI", (esi + dec.consumed) >>> 0);
  cpu.setReg("EDI", outEnd >>> 0);
  cpu.setReg("EFLAGS", (cpu.reg("EFLAGS") & ~(CF | PF | AF | ZF | SF | OF | DF)) | ZF | PF);
  cpu.setReg("ESP", esp + 4);
  cpu.setReg("EIP", ret);
  stats.calls++;
  if (stats.unwritten.length < 8) stats.unwritten.push([esp - 88, esp - 41]);
  stats.bytes += outSize;
  stats.hostMs += performance.now() - t0;
  return undefined;
}

/** The probability area as the guest's decoder leaves it: the host's models in lzma_decode.S's dword layout. */
function probabilities(s: LzmaSnapshot): Buffer {
  const b = Buffer.alloc(4 * PROBS);
  const put = (at: number, a: Uint16Array, from = 0, n = a.length - from) => {
    for (let i = 0; i < n; i++) b.writeUInt32LE(a[from + i], 4 * (at + i));
  };
  const p = s.probs;
  put(IS_MATCH, p.isMatch); put(IS_REP, p.isRep); put(IS_REP_G0, p.isRepG0); put(IS_REP_G1, p.isRepG1);
  put(IS_REP_G2, p.isRepG2); put(IS_REP0_LONG, p.isRep0Long); put(POS_SLOT, p.posSlot);
  put(SPEC_POS, p.posSpecial, 1);                  // host index i is SpecPos + i - 1 (its index 0 is unused)
  put(ALIGN, p.align);
  for (const [at, l] of [[LEN_CODER, p.len], [REP_LEN_CODER, p.repLen]] as const) {
    put(at, l.choice); put(at + 2, l.low); put(at + 2 + 128, l.mid); put(at + 2 + 256, l.high);
  }
  put(LITERAL, p.literal);
  return b;
}
