// Host fast-forward of guest copy/fill loops (REP MOVS/STOS per Intel SDM vol. 2B "MOVS", "STOS", "REP"; GRUB 2's
// byte-wise grub_memmove loops). Unicorn 2.0.1 sends every guest store through its notdirty slow path (dirty tracking
// is stubbed out: cpu_physical_memory_is_clean() is always true), about 70 ns a store against 1.5 ns a load, so a
// boot loader moving tens of MiB byte by byte spends seconds there. A loop's head gets a single-address code hook
// that finishes the loop on the host with the exact architectural result (memory, registers), leaving the guest
// only the loop's exit test. Loops are found as their code is translated (Cpu newBlock: a loop head starts a
// translation block), at no cost per execution.
import type { Cpu } from "./cpu.ts";
import { bytesMatch, type Machine } from "./machine.ts";

/** EFLAGS.DF (Intel SDM vol. 1, 3.4.3.2). */
const DF = 0x400;
/** Largest element loop done byte by byte in JS when the overlap makes it differ from memmove. */
const MAX_SEQUENTIAL = 256 * 2 ** 20;
/** Most loop heads trapped: every code hook adds a list walk to each hooked instruction's helper call. */
const MAX_HEADS = 64;
/**
 * Shorter REP loops are left to the guest: the trap's JS call and register reads (a few µs) cost more than the
 * guest's own stores (about 70 ns each) below this many elements.
 */
const MIN_ELEMENTS = 32;

interface Idiom {
  name: string;
  /** Instruction bytes from the loop head (the hooked address); -1 matches any byte (a branch displacement). */
  bytes: number[];
  /** Finish the loop from the head; returns the bytes written, or -1 if this instance cannot be done on the host. */
  finish(x: LoopAccelerator, s: Seg): number;
  /** A REP string instruction: ECX counts the elements. */
  rep?: boolean;
}

/** DS, ES and SS segment bases of the flat 32-bit code a loop runs in. */
interface Seg { ds: number; es: number; ss: number }

/** loops: heads trapped; calls/bytes: loops finished on the host; declined: instances left to the guest; blocks: translation blocks inspected. */
export interface LoopAccelStats { loops: string[]; calls: number; bytes: number; declined: number; blocks: number }

export class LoopAccelerator {
  readonly stats: LoopAccelStats = { loops: [], calls: 0, bytes: 0, declined: 0, blocks: 0 };
  private heads = new Map<number, Idiom>();
  /** Heads trapped since the last applyPending(): their translated blocks still lack the trap. */
  private pending: { head: number; len: number }[] = [];

  constructor(readonly cpu: Cpu, readonly m: Machine) {}

  /**
   * A translation block was generated at linear `pc` (Cpu newBlock): if it starts inside a known loop, trap the
   * loop's head and stop the run (exact: the new block has not executed yet). The run loop then calls
   * applyPending(), which drops the translated code there so the trap applies, and resumes.
   */
  onBlock(pc: number): boolean {
    this.stats.blocks++;
    if (this.heads.size >= MAX_HEADS) return false;
    let seg: Seg | undefined;
    for (const idiom of IDIOMS) {
      for (let back = 0; back < idiom.bytes.length; back++) {
        const head = pc - back;
        if (head < 0 || this.heads.has(head) || !this.matches(head, idiom)) continue;
        seg ??= this.flat32();
        if (!seg) return false;
        this.heads.set(head, idiom);
        this.stats.loops.push(`${idiom.name} at ${head.toString(16)}`);
        this.cpu.addCodeHook(head, head, (a) => this.atHead(a));
        this.pending.push({ head, len: idiom.bytes.length });
        this.cpu.stop();
        return true;
      }
    }
    return false;
  }

  /** After a stop requested by onBlock: drop the translated blocks covering new heads. True if there were any. */
  applyPending(): boolean {
    if (!this.pending.length) return false;
    for (const p of this.pending) this.cpu.invalidate(p.head, p.head + p.len);
    this.pending = [];
    return true;
  }

  private matches(at: number, idiom: Idiom): boolean {
    return bytesMatch(this.m.ram, at, idiom.bytes);
  }

  /** The code hook: the head runs next; finish the loop if the code there is still the idiom in flat 32-bit code. */
  private atHead(at: number): void {
    const idiom = this.heads.get(at);
    if (!idiom || (idiom.rep && this.cpu.reg("ECX") < MIN_ELEMENTS) || !this.matches(at, idiom)) return;
    const seg = this.flat32();
    if (!seg) return;
    const n = idiom.finish(this, seg);
    if (n < 0) { this.stats.declined++; return; }
    this.stats.calls++;
    this.stats.bytes += n;
  }

  /** DS and ES bases when the guest runs 32-bit protected-mode code (CS descriptor D bit), else undefined. */
  private flat32(): Seg | undefined {
    const c = this.cpu, m = this.m;
    const gdt = c.mmr("GDTR");
    if (!m.code32(gdt)) return undefined;
    return { ds: m.gdtBase(c.reg("DS"), gdt), es: m.gdtBase(c.reg("ES"), gdt), ss: m.gdtBase(c.reg("SS"), gdt) };
  }

  /**
   * Move `n` elements of `size` bytes from linear `src` to `dst`, element i at src + i*step -> dst + i*step
   * (step = ±size), with the sequential semantics of the CPU loop. Returns false when a range leaves guest RAM.
   */
  move(dst: number, src: number, n: number, size: number, down: boolean): boolean {
    const len = n * size;
    const srcLo = down ? src - (n - 1) * size : src, dstLo = down ? dst - (n - 1) * size : dst;
    if (!this.inRam(srcLo, len) || !this.inRam(dstLo, len)) return false;
    const ram = this.m.ram;
    const disjoint = dstLo + len <= srcLo || srcLo + len <= dstLo;
    if (disjoint || (!down && dstLo <= srcLo) || (down && dstLo >= srcLo)) {
      ram.copyWithin(dstLo, srcLo, srcLo + len);          // memmove gives the same bytes as the CPU's order here
    } else {
      if (len > MAX_SEQUENTIAL) return false;
      const el = new Uint8Array(size);
      for (let i = 0; i < n; i++) {
        const k = down ? n - 1 - i : i;
        for (let j = 0; j < size; j++) el[j] = ram[srcLo + k * size + j];
        for (let j = 0; j < size; j++) ram[dstLo + k * size + j] = el[j];
      }
    }
    this.cpu.invalidate(dstLo, dstLo + len);
    return true;
  }

  /** Store `n` elements of the low `size` bytes of `value` from linear `dst` (STOS). */
  fill(dst: number, n: number, size: number, value: number, down: boolean): boolean {
    const len = n * size;
    const lo = down ? dst - (n - 1) * size : dst;
    if (!this.inRam(lo, len)) return false;
    const pat = Buffer.alloc(4);
    pat.writeUInt32LE(value >>> 0, 0);
    this.m.ram.fill(pat.subarray(0, size), lo, lo + len);
    this.cpu.invalidate(lo, lo + len);
    return true;
  }

  private inRam(lo: number, len: number): boolean {
    return lo >= 0 && lo + len <= this.m.ram.length && lo + len <= 2 ** 32;
  }
}

/** REP MOVS with 32-bit addressing: ECX elements DS:ESI -> ES:EDI, direction by DF; flags are not changed. */
function repMovs(size: number): Idiom["finish"] {
  return (x, s) => {
    const c = x.cpu;
    const n = c.reg("ECX");
    if (n === 0) return 0;
    const down = (c.reg("EFLAGS") & DF) !== 0;
    const esi = c.reg("ESI"), edi = c.reg("EDI");
    if (!x.move(s.es + edi, s.ds + esi, n, size, down)) return -1;
    const d = down ? -n * size : n * size;
    c.setReg("ESI", (esi + d) >>> 0);
    c.setReg("EDI", (edi + d) >>> 0);
    c.setReg("ECX", 0);
    return n * size;
  };
}

/** REP STOS with 32-bit addressing: ECX copies of AL/AX/EAX to ES:EDI. */
function repStos(size: number): Idiom["finish"] {
  return (x, s) => {
    const c = x.cpu;
    const n = c.reg("ECX");
    if (n === 0) return 0;
    const down = (c.reg("EFLAGS") & DF) !== 0;
    const edi = c.reg("EDI");
    if (!x.fill(s.es + edi, n, size, c.reg("EAX"), down)) return -1;
    c.setReg("EDI", (edi + (down ? -n * size : n * size)) >>> 0);
    c.setReg("ECX", 0);
    return n * size;
  };
}

const IDIOMS: Idiom[] = [
  { name: "rep movsb", rep: true, bytes: [0xf3, 0xa4], finish: repMovs(1) },
  { name: "rep movsd", rep: true, bytes: [0xf3, 0xa5], finish: repMovs(4) },
  { name: "rep movsw", rep: true, bytes: [0x66, 0xf3, 0xa5], finish: repMovs(2) },
  { name: "rep stosb", rep: true, bytes: [0xf3, 0xaa], finish: repStos(1) },
  { name: "rep stosd", rep: true, bytes: [0xf3, 0xab], finish: repStos(4) },
  {
    // GRUB 2 grub_memmove, forward (dest < src), gcc -Os:  H: cmp ecx,edi ; je out ; movsb ; jmp H
    // (ECX holds the end of dest). Finish: copy up to EDI = ECX; the guest's cmp/je then leaves the loop.
    name: "grub_memmove forward loop", bytes: [0x39, 0xf9, 0x74, -1, 0xa4, 0xeb, 0xf9],
    finish: (x, s) => {
      const c = x.cpu;
      const edi = c.reg("EDI"), n = (c.reg("ECX") - edi) >>> 0;
      if (n === 0) return 0;
      if (c.reg("EFLAGS") & DF) return -1;
        const esi = c.reg("ESI");
      if (!x.move(s.es + edi, s.ds + esi, n, 1, false)) return -1;
      c.setReg("ESI", (esi + n) >>> 0);
      c.setReg("EDI", (edi + n) >>> 0);
      return n;
    },
  },
  {
    // GRUB 2 grub_memmove, backward (dest >= src):  H: sub ecx,1 ; jb out ; mov dl,[esi+ecx] ; mov [eax+ecx],dl ;
    // jmp H. Finish: bytes ECX-1..0 copied high to low, ECX = 0 and DL = the last byte moved; the guest's
    // sub/jb then leaves the loop.
    name: "grub_memmove backward loop", bytes: [0x83, 0xe9, 0x01, 0x72, 0x08, 0x8a, 0x14, 0x0e, 0x88, 0x14, 0x08, 0xeb, 0xf3],
    finish: (x, s) => {
      const c = x.cpu;
      const n = c.reg("ECX");
      if (n === 0) return 0;
        const src = s.ds + c.reg("ESI"), dst = s.ds + c.reg("EAX");
      if (!x.move(dst + n - 1, src + n - 1, n, 1, true)) return -1;
      c.setReg("ECX", 0);
      c.setReg("DL", x.m.ram[dst]);
      return n;
    },
  },
  {
    // GRUB 2 grub_memset, the aligned dword part (gcc -Os):  H: mov edi,esi ; sub edi,edx ; cmp edi,3 ; jbe out ;
    // mov edi,[ebp-14h] ; mov [edx],edi ; add edx,4 ; jmp H  (ESI = end, EDX = p, [ebp-14h] = the byte pattern x4).
    // Finish: store the pattern while end - p > 3 (unsigned), EDX past the last store; the guest's head then leaves.
    name: "grub_memset dword loop", bytes: [0x89, 0xf7, 0x29, 0xd7, 0x83, 0xff, 0x03, 0x76, -1, 0x8b, 0x7d, 0xec, 0x89, 0x3a,
      0x83, 0xc2, 0x04, 0xeb, 0xed],
    finish: (x, s) => {
      const c = x.cpu;
      const edx = c.reg("EDX"), left = (c.reg("ESI") - edx) >>> 0;
      if (left <= 3) return 0;
      const n = Math.floor(left / 4);
      const at = (s.ss + c.reg("EBP") - 0x14) >>> 0;
      if (at + 4 > x.m.ram.length) return -1;
      const value = x.m.ram.readUInt32LE(at);
      if (!x.fill(s.ds + edx, n, 4, value, false)) return -1;
      c.setReg("EDX", (edx + 4 * n) >>> 0);
      c.setReg("EDI", value);
      return 4 * n;
    },
  },
];
