// GRUB 2 i386-pc's BIOS calls made on the host, without GRUB's protected -> real -> protected mode round trip
// (GRUB 2.06 grub-core/kern/i386/int.S grub_bios_interrupt, and prot_to_real/real_to_prot in
// grub-core/kern/i386/realmode.S). Each round trip costs Unicorn two CR0 writes with TLB flushes and a run of
// re-translated code, about 70 µs here; GRUB makes one per INT 13h read and three per character its text menu
// draws, so a boot with a 5 s menu spends half its time switching modes.
//
// The function's contract (regparm(3)): AL = the INT number, EDX = struct grub_bios_int_registers { u32 eax; u16 es;
// u16 ds; u16 flags; u16 dummy; u32 ebx; u32 ecx; u32 edi; u32 esi; u32 edx }. It pushes EBP ECX EAX EBX ESI EDI EDX,
// patches the INT number and the EAX/ES/DS/FLAGS immediates of its real-mode part, loads EBX ECX EDI ESI EDX from the
// struct and calls prot_to_real, which saves ESP in `protstack`, stores its return address at the real-mode stack
// top (REAL_STACK, 1FF0h) and sets ESP = EBP = REAL_STACK, segments 0. The real-mode part loads ES, DS, FLAGS and
// EAX, runs `int N` at CS = 0, stores EAX, DS, FLAGS and ES back into its immediates, calls real_to_prot; then the
// struct gets EAX ES DS FLAGS EBX ECX EDI ESI EDX after the INT, the pushed registers are popped and it returns:
// every general register as on entry, ESP + 4.
//
// Here: the INT's service runs with those registers (Gen1Bios.callWith, CS:IP where GRUB's INT would leave them),
// the struct, the patched immediates and the INT number byte get exactly the guest's values, the seven pushes and
// the call's return address are written below ESP as the guest writes them, and control returns to the caller.
// real_to_prot copies its return address through REAL_STACK onto the protected-mode stack slot of prot_to_real's and
// ends with `cli ; xor eax,eax`: those values are written too (protstack, REAL_STACK, the flags). Not reproduced:
// the real-mode part's own pushes below REAL_STACK (its FLAGS and DS copies), which GRUB rewrites before reading on
// its next BIOS call. Only services that answer at once are made this way (video, disk, memory map, ticks);
// keyboard input, waits, boot and unknown services take GRUB's own path.
import type { Cpu, X86Reg } from "./cpu.ts";
import { bytesMatch, type Machine } from "./machine.ts";
import type { Gen1Bios } from "../firmware-stubs/gen1-bios.ts";

/** grub_bios_interrupt from its first byte; -1 bytes are the absolute addresses build-specific (in `ADDR_AT`). */
const ENTRY = [0x9c, 0xfa, 0x9d, 0x55, 0x51, 0x50, 0x53, 0x56, 0x57, 0x52,
  0xa2, -1, -1, -1, -1,                                   // +0x0a mov [intno], al
  0x8b, 0x02, 0xa3, -1, -1, -1, -1,                       // +0x0f mov eax,[edx] ; mov [eax_imm], eax
  0x66, 0x8b, 0x42, 0x04, 0x66, 0xa3, -1, -1, -1, -1,     // +0x16 es
  0x66, 0x8b, 0x42, 0x06, 0x66, 0xa3, -1, -1, -1, -1,     // +0x20 ds
  0x66, 0x8b, 0x42, 0x08, 0x66, 0xa3, -1, -1, -1, -1,     // +0x2a flags
  0x8b, 0x5a, 0x0c, 0x8b, 0x4a, 0x10, 0x8b, 0x7a, 0x14, 0x8b, 0x72, 0x18, 0x8b, 0x52, 0x1c, 0x90, 0x90,
  0xa1, -1, -1, -1, -1, 0xff, 0xd0,                       // +0x45 mov eax,[prot_to_real ptr] ; call eax
  // +0x4c real mode
  0x9c, 0xfa, 0x8c, 0xd8, 0x50, 0xb8, -1, -1, 0x8e, 0xc0, 0xb8, -1, -1, 0x8e, 0xd8, 0xb8, -1, -1, 0x50, 0x9d,
  0x66, 0xb8, -1, -1, -1, -1, 0xcd, -1,                   // +0x60 mov eax, imm32 ; +0x66 int N
  0x2e, 0x66, 0xa3, -1, -1, 0x8c, 0xd8, 0x2e, 0xa3, -1, -1, 0x58, 0x8e, 0xd8, 0x9c, 0x58, 0xa3, -1, -1,
  0x8c, 0xc0, 0xa3, -1, -1, 0x9d, 0x90, 0x90, 0x66, 0xa1, -1, -1, 0x66, 0xff, 0xd0,
  // +0x8a protected mode again: the struct from the registers and immediates, pops, ret
  0x58, 0x89, 0x58, 0x0c, 0x89, 0x48, 0x10, 0x89, 0x78, 0x14, 0x89, 0x70, 0x18, 0x89, 0x50, 0x1c, 0x89, 0xc2,
  0xa1, -1, -1, -1, -1, 0x89, 0x02, 0x66, 0xa1, -1, -1, -1, -1, 0x66, 0x89, 0x42, 0x04,
  0x66, 0xa1, -1, -1, -1, -1, 0x66, 0x89, 0x42, 0x06, 0x66, 0xa1, -1, -1, -1, -1, 0x66, 0x89, 0x42, 0x08,
  0x5f, 0x5e, 0x5b, 0x58, 0x59, 0x5d, 0xc3];
/** Where the patched operands are, as offsets from the entry (they must equal what the entry's stores name). */
const INTNO_AT = 0x0b, EAX_STORE = 0x12, ES_STORE = 0x1c, DS_STORE = 0x26, FLAGS_STORE = 0x30, P2R_PTR = 0x46;
const PM_RET = 0x8a, ES_IMM = 0x52, DS_IMM = 0x57, FLAGS_IMM = 0x5c, EAX_IMM = 0x62, INT_AT = 0x66;
/** prot_to_real: ... mov eax,esp ; mov [protstack],eax ; mov eax,[esp] ; mov [REAL_STACK],eax ; mov eax,REAL_STACK ... */
const P2R = [0x89, 0xe0, 0xa3, -1, -1, -1, -1, 0x8b, 0x04, 0x24, 0xa3, -1, -1, -1, -1, 0xb8, -1, -1, -1, -1, 0x89, 0xc4, 0x89, 0xc5];
const P2R_SCAN = 32;
/** real_to_prot: ... ljmpl $code,$next ; mov eax,data ; mov ds,eax ... (16-bit operand prefixes: it starts in real mode). */
const R2P = [0x66, 0xea, -1, -1, -1, -1, -1, 0x00, 0x66, 0xb8, -1, 0x00, 0x8e, 0xd8];
const R2P_PTR = 0x85, R2P_SCAN = 32;

/** INT/AH pairs made on the host: services that answer at once and never wait or stop the machine. */
const DIRECT: Record<number, number[] | "all"> = {
  0x10: "all", 0x11: "all", 0x12: "all",
  0x13: [0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x0c, 0x0d, 0x15, 0x41, 0x42, 0x43, 0x44, 0x47, 0x48],
  0x15: [0xe8, 0x88, 0xc0, 0x24], 0x1a: [0x00, 0x02, 0x04],
};

export interface GrubIntStats {
  found: string[];
  calls: number;
  declined: number;
  /** Linear [first, last] byte ranges of mode-switch scratch the guest would have written and the host did not. */
  scratch: [number, number][];
}

interface Site {
  entry: number; intno: number; eaxStore: number; esStore: number; dsStore: number; flagsStore: number; realStack: number;
  protstack: number;
  /** The selectors real_to_prot loads (CS by its far jump; DS ES FS GS SS). */
  code: number; data: number;
}

export class GrubBiosCalls {
  readonly stats: GrubIntStats = { found: [], calls: 0, declined: 0, scratch: [] };
  private sites = new Map<number, Site>();
  private pending: number[] = [];

  constructor(readonly cpu: Cpu, readonly m: Machine, readonly bios: Gen1Bios) {}

  /** Cpu newBlock: a block at the start of grub_bios_interrupt gets a trap (an exact stop, see applyPending). */
  onBlock(pc: number): boolean {
    if (this.sites.has(pc) || this.sites.size >= 4 || this.m.u8(pc) !== 0x9c) return false;
    const site = this.recognise(pc);
    if (!site) return false;
    this.sites.set(pc, site);
    this.stats.found.push(`grub_bios_interrupt at ${pc.toString(16)}`);
    this.stats.scratch.push([site.realStack - 16, site.realStack - 1]);
    this.cpu.addCodeHook(pc, pc, (a) => this.atEntry(a));
    this.pending.push(pc);
    this.cpu.stop();
    return true;
  }

  applyPending(): boolean {
    if (!this.pending.length) return false;
    for (const pc of this.pending) this.cpu.invalidate(pc, pc + 1);
    this.pending = [];
    return true;
  }

  private matches(at: number, pat: number[]): boolean {
    return bytesMatch(this.m.ram, at, pat);
  }

  /** The function at `pc` with its operands consistent (the real-mode part patches the addresses the entry names). */
  private recognise(pc: number): Site | undefined {
    if (!this.matches(pc, ENTRY)) return undefined;
    const m = this.m, u32 = (o: number) => m.u32(pc + o), u16 = (o: number) => m.u16(pc + o);
    const intno = u32(INTNO_AT), eaxStore = u32(EAX_STORE), esStore = u32(ES_STORE), dsStore = u32(DS_STORE), flagsStore = u32(FLAGS_STORE);
    const low16 = pc < 0x10000;
    if (!low16 || intno !== pc + INT_AT + 1 || eaxStore !== pc + EAX_IMM || esStore !== pc + ES_IMM || dsStore !== pc + DS_IMM ||
      flagsStore !== pc + FLAGS_IMM) return undefined;
    // The real-mode stores (CS = 0) and the final struct loads name the same immediates.
    if (u16(0x6b) !== eaxStore || u16(0x71) !== dsStore || u16(0x79) !== flagsStore || u16(0x7e) !== esStore ||
      u32(0x9d) !== eaxStore || u32(0xa5) !== esStore || u32(0xaf) !== dsStore || u32(0xb9) !== flagsStore) return undefined;
    // real_to_prot (its pointer is the real-mode part's `mov eax,[r2p]`) reloads the selectors the caller must have.
    const r2p = m.u32(m.u16(pc + R2P_PTR));
    let sels: { code: number; data: number } | undefined;
    for (let at = r2p; at < r2p + R2P_SCAN && !sels; at++) {
      if (this.matches(at, R2P)) sels = { code: m.u16(at + 6), data: m.u16(at + 10) };
    }
    if (!sels) return undefined;
    const p2r = m.u32(u32(P2R_PTR));
    for (let at = p2r; at < p2r + P2R_SCAN; at++) {
      if (!this.matches(at, P2R)) continue;
      const protstack = m.u32(at + 3), realStack = m.u32(at + 16);
      if (m.u32(at + 11) !== realStack || realStack >= 0x10000) return undefined;
      return { entry: pc, intno, eaxStore, esStore, dsStore, flagsStore, realStack, protstack, ...sels };
    }
    return undefined;
  }

  private atEntry(pc: number): void {
    const site = this.sites.get(pc);
    const c = this.cpu, m = this.m;
    if (!site || !this.matches(pc, ENTRY) || !this.flatProtected() || c.reg("CS") !== site.code ||
      (["DS", "ES", "FS", "GS", "SS"] as const).some((r) => c.reg(r) !== site.data)) { this.stats.declined++; return; }
    const eax = c.reg("EAX"), p = c.reg("EDX"), esp = c.reg("ESP");
    const intno = eax & 0xff;
    if (p + 32 > m.ram.length || esp < 64 || esp + 4 > m.ram.length) { this.stats.declined++; return; }
    const inEax = m.u32(p), ah = (inEax >>> 8) & 0xff, al = inEax & 0xff;
    const direct = DIRECT[intno];
    if (!direct || (direct !== "all" && !direct.includes(ah)) || !this.bios.serves(intno) || !this.bios.knows(intno, ah, al)) {
      this.stats.declined++;
      return;
    }
    const r = new Regs(c, { EAX: inEax, ES: m.u16(p + 4), DS: m.u16(p + 6), EFLAGS: m.u16(p + 8) | 0x2, EBX: m.u32(p + 12),
      ECX: m.u32(p + 16), EDI: m.u32(p + 20), ESI: m.u32(p + 24), EDX: m.u32(p + 28), EBP: site.realStack, CS: 0, EIP: pc + INT_AT + 2 });
    this.bios.callWith(intno, r.view(), 0, pc + INT_AT + 2);
    const o = r.v;
    // What the guest leaves: the INT number and the real-mode immediates patched, the struct, the stack below ESP.
    const w = (at: number, bytes: Buffer) => c.write(at, bytes);
    const le = (n: number, v: number) => { const b = Buffer.alloc(n); if (n === 4) b.writeUInt32LE(v >>> 0); else b.writeUInt16LE(v & 0xffff); return b; };
    w(site.intno, Buffer.from([intno]));
    w(site.eaxStore, le(4, o.EAX)); w(site.esStore, le(2, o.ES)); w(site.dsStore, le(2, o.DS)); w(site.flagsStore, le(2, o.EFLAGS));
    const s = Buffer.alloc(32);
    [o.EAX, o.ES | (o.DS << 16), (o.EFLAGS & 0xffff) | (m.u16(p + 10) << 16), o.EBX, o.ECX, o.EDI, o.ESI, o.EDX]
      .forEach((v, i) => s.writeUInt32LE(v >>> 0, 4 * i));
    w(p, s);
    const pushes = Buffer.alloc(32);
    // Below the return address: EBP ECX EAX EBX ESI EDI EDX (pushed in that order), then the slot of prot_to_real's
    // return address, where real_to_prot leaves its own (the code after the real-mode part).
    [c.reg("EBP"), c.reg("ECX"), eax, c.reg("EBX"), c.reg("ESI"), c.reg("EDI"), p, pc + PM_RET].reverse()
      .forEach((v, i) => pushes.writeUInt32LE(v >>> 0, 4 * i));
    w(esp - 32, pushes);
    w(site.realStack, le(4, pc + PM_RET));            // real_to_prot: its return address copied via REAL_STACK
    w(site.protstack, le(4, esp - 32));               // prot_to_real: the saved protected-mode ESP
    // real_to_prot ends with cli and xor eax,eax: IF clear, ZF and PF set, CF AF SF OF clear; DF as it was.
    c.setReg("EFLAGS", (c.reg("EFLAGS") & ~(0x8d5 | 0x200)) | 0x44);
    c.setReg("ESP", esp + 4);
    c.setReg("EIP", m.u32(esp));
    this.stats.calls++;
  }

  /** Flat 32-bit protected mode (GRUB's): CS a 32-bit segment, DS and SS based at 0. */
  private flatProtected(): boolean {
    const m = this.m, c = this.cpu;
    const gdt = c.mmr("GDTR");
    return m.code32(gdt) && m.gdtBase(c.reg("DS"), gdt) === 0 && m.gdtBase(c.reg("SS"), gdt) === 0;
  }
}

type Full = "EAX" | "EBX" | "ECX" | "EDX" | "ESI" | "EDI" | "EBP" | "ES" | "DS" | "EFLAGS" | "CS" | "EIP";
/** Names a BIOS service may use, as [full register, shift, width]. */
const PART: Record<string, [Full, number, number]> = {
  EAX: ["EAX", 0, 32], AX: ["EAX", 0, 16], AH: ["EAX", 8, 8], AL: ["EAX", 0, 8],
  EBX: ["EBX", 0, 32], BX: ["EBX", 0, 16], BH: ["EBX", 8, 8], BL: ["EBX", 0, 8],
  ECX: ["ECX", 0, 32], CX: ["ECX", 0, 16], CH: ["ECX", 8, 8], CL: ["ECX", 0, 8],
  EDX: ["EDX", 0, 32], DX: ["EDX", 0, 16], DH: ["EDX", 8, 8], DL: ["EDX", 0, 8],
  ESI: ["ESI", 0, 32], SI: ["ESI", 0, 16], EDI: ["EDI", 0, 32], DI: ["EDI", 0, 16],
  EBP: ["EBP", 0, 32], BP: ["EBP", 0, 16], ES: ["ES", 0, 16], DS: ["DS", 0, 16],
  EFLAGS: ["EFLAGS", 0, 32], FLAGS: ["EFLAGS", 0, 16], CS: ["CS", 0, 16], EIP: ["EIP", 0, 32], IP: ["EIP", 0, 16],
};

/** The real-mode register file of GRUB's INT, standing in for the CPU's registers while the service runs. */
class Regs {
  constructor(private cpu: Cpu, readonly v: Record<Full, number>) {}

  view(): Cpu {
    const self = this;
    const view = Object.create(this.cpu) as Cpu;
    view.reg = (r: X86Reg): number => {
      const p = PART[r];
      if (!p) return self.cpu.reg(r);                 // SS, SP, FS, GS, CR0: not part of GRUB's struct
      const [f, sh, wd] = p;
      return wd === 32 ? self.v[f] >>> 0 : (self.v[f] >>> sh) & (2 ** wd - 1);
    };
    view.setReg = (r: X86Reg, value: number): void => {
      const p = PART[r];
      if (!p) return;                                 // discarded, as GRUB's real-mode code discards them
      const [f, sh, wd] = p;
      const mask = wd === 32 ? 0xffffffff : ((2 ** wd - 1) << sh) >>> 0;
      self.v[f] = ((self.v[f] & ~mask) | ((value << sh) & mask)) >>> 0;
    };
    return view;
  }
}
