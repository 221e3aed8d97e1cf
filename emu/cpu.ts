// The small CPU interface the machine models talk to, implemented on Unicorn 2 (x86). See ../shared/UNICORN.md.
// The engine is opened in UC_MODE_32 and dropped to real mode: it follows the guest's real <-> protected mode
// switches like a 16-bit engine, but uc_emu_start(begin) sets the full EIP — a UC_MODE_16 engine keeps only the
// low 16 bits of begin - CS*16, so it cannot resume protected-mode code above 64 KiB after a budget stop.
import {
  UC_ARCH_X86, UC_MODE_32, UC_MODE_64, UC_HOOK_INTR, UC_HOOK_INSN, UC_HOOK_CODE, UC_HOOK_BLOCK, UC_PROT_ALL,
  UC_X86_INS_IN, UC_X86_INS_OUT, UC_X86_INS_CPUID, UC_CTL_REMOVE_CACHE, UC_CTL_FLUSH_TLB, UC_HOOK_EDGE_GENERATED,
  UC_QUERY_TIMEOUT, X86_REG, type X86Reg,
} from "./uc-consts.ts";
import { unicorn, check, type UcApi } from "./unicorn.ts";

export type { X86Reg };

export interface CpuHooks {
  /** INT n, INT3, INTO and CPU exceptions (UC_HOOK_INTR). CS:IP is after an INT n instruction. */
  interrupt?(intno: number): void;
  /** IN from a port; return the value (size 1, 2 or 4 bytes). */
  portIn?(port: number, size: number): number;
  portOut?(port: number, size: number, value: number): void;
  /** CPUID: fill EAX..EDX from EAX/ECX and return true to replace the instruction. */
  cpuid?(): boolean;
  /**
   * A translation block was just generated and is about to run for the first time (UC_HOOK_EDGE_GENERATED: once
   * per block, not per execution). `pc` is linear. A stop() requested here ends the run before the block executes,
   * with EIP at its start: exact and resumable.
   */
  newBlock?(pc: number, size: number, instructions: number): void;
}

export interface RunOutcome {
  /** Unicorn's return code (0 = stopped normally: count reached, HLT, uc_emu_stop). */
  err: number;
  errText: string;
}

/** A segment descriptor register (GDTR/IDTR/LDTR/TR), uc_x86_mmr. */
export interface Mmr { selector: number; base: number; limit: number; flags: number }

export interface Cpu {
  /** Guest RAM from linear address 0, zero-copy (uc_mem_map_ptr). */
  readonly ram: Buffer;
  /** "real": a 32-bit engine dropped to real mode (Gen1); "long": a 64-bit engine, flat identity memory (Gen2 UEFI). */
  readonly mode: CpuMode;
  /** The low 32 bits of a register. */
  reg(r: X86Reg): number;
  setReg(r: X86Reg, v: number): void;
  /** All 64 bits (long mode). */
  reg64(r: X86Reg): bigint;
  setReg64(r: X86Reg, v: bigint): void;
  mmr(r: "GDTR" | "IDTR"): Mmr;
  /** Host write of guest memory; drops translated code of that range (UNICORN.md pitfall 1). */
  write(addr: number, data: Uint8Array): void;
  read(addr: number, len: number): Buffer;
  invalidate(begin: number, end: number): void;
  flushCode(): void;
  /** A UC_HOOK_CODE limited to [begin, end] (single-address traps). Returns a handle for removeHook. */
  addCodeHook(begin: number, end: number, fn: (address: number) => void): number;
  /** A UC_HOOK_BLOCK limited to [begin, end] (trace windows only: it costs a JS call per block). */
  addBlockHook(begin: number, end: number, fn: (address: number, size: number) => void): number;
  removeHook(h: number): void;
  /**
   * Run from the current CS:EIP for at most `count` instructions (0 = no limit). Unicorn 2.0.1 counts with a hook
   * on every instruction (about 16 ns each), added on the first counted run; a later uncounted run removes it and
   * flushes all translated code (about 3 s), so keep to one kind: the emulators run uncounted. A run ended by
   * `timeoutUs` may stop inside a translated block with EIP at the block start (some of its stores done): do not
   * resume after a time-out (timedOut()). Unicorn's time-out thread polls every 2 µs on another core while it runs
   * (80-90 ms of that core per Gen1 boot); batch workers use the main thread as their watchdog instead
   * (setRunWatchdog, emu/batch-watchdog.ts).
   */
  run(count: number, timeoutUs?: number): RunOutcome;
  /** Ask the running emulation to stop (from a hook). */
  stop(): void;
  /** Whether the last run ended because its `timeoutUs` ran out (uc_query UC_QUERY_TIMEOUT). */
  timedOut(): boolean;
  /** The first exception thrown by a hook, if any (hooks never throw into Unicorn: pitfall 3). */
  hookError?: Error;
  close(): void;
}

export type CpuMode = "real" | "long";

/** Keeps run time-outs instead of uc_emu_start's polling thread (emu/batch-watchdog.ts). */
export interface RunWatchdog {
  /** Arm for the engine at address `uc`, `ms` from now. */
  arm(uc: bigint, ms: number): void;
  /** After the run returned: true when the watchdog stopped it. */
  disarm(): boolean;
}
let runWatchdog: RunWatchdog | undefined;
/** Use `w` for the time-outs of this thread's CPU runs (a batch worker; the main thread keeps Unicorn's). */
export function setRunWatchdog(w: RunWatchdog | undefined): void { runWatchdog = w; }

export function createCpu(ramBytes: number, hooks: CpuHooks, mode: CpuMode = "real"): Cpu {
  return new UnicornCpu(ramBytes, hooks, mode);
}

/** CR0.MP | CR0.NE with CR0.EM clear, and CR4.OSFXSR | CR4.OSXMMEXCPT: SSE usable, as UEFI 2.3.4 (x64) requires. */
const CR0_MP_NE = 0x22;
const CR4_OSFXSR_OSXMMEXCPT = 0x600;

const PAGE = 4096;
const HUGE = 2 * 1024 * 1024;
/** madvise(2) MADV_HUGEPAGE (asm-generic/mman-common.h). */
const MADV_HUGEPAGE = 14;
let madvise: ((addr: bigint, len: number, advice: number) => number) | null | undefined;

/**
 * Ask Linux for transparent huge pages on guest RAM. The first touch of every 4 KiB page of a fresh mapping costs
 * tens of µs on the VMs this runs on (boot loaders touch tens of MiB: GRUB's heap, the kernel and initrd); with
 * 2 MiB pages touching 64 MiB went from 343 ms to 24 ms here. Best effort: no libc or THP "never" changes nothing.
 */
function adviseHugePages(buf: Buffer): void {
  if (madvise === undefined) {
    try {
      const k = unicorn().koffi;
      const libc = k.load("libc.so.6");
      const fn = libc.func("int madvise(void *addr, size_t len, int advice)") as (a: bigint, l: number, adv: number) => number;
      madvise = fn;
    } catch { madvise = null; }
  }
  adviseAligned(buf, HUGE, MADV_HUGEPAGE);        // best effort: 4 KiB pages otherwise
}

/** madvise(2) `advice` over the part of guest RAM `buf` aligned to `align` bytes; best effort (no libc: nothing). */
function adviseAligned(buf: Buffer, align: number, advice: number): void {
  if (!madvise || buf.length < 2 * HUGE) return;
  try {
    const p = BigInt(unicorn().koffi.address(buf) as bigint);
    const start = (p + BigInt(align - 1)) & ~BigInt(align - 1);
    const len = Math.floor((buf.length - Number(start - p)) / align) * align;
    if (len > 0) madvise(start, len, advice);
  } catch { /* the kernel keeps its defaults */ }
}

class UnicornCpu implements Cpu {
  readonly ram: Buffer;
  hookError?: Error;
  private a: UcApi;
  private uc: unknown;
  private regBuf = Buffer.alloc(8);
  private mmrBuf = Buffer.alloc(24);
  /** Registered callbacks, kept referenced for the engine's life (pitfall 4). */
  private callbacks: unknown[] = [];
  private hooksById = new Map<number, { hh: unknown; cb: unknown }>();
  private rangeCb: unknown;
  private rangeFns = new Map<number, (address: number, size: number) => void>();
  private nextId = 1;
  private closed = false;
  /** The last run's time-out: kept by a RunWatchdog (and whether it fired), or by Unicorn (uc_query). */
  private watchdogRun?: { fired: boolean };

  constructor(ramBytes: number, private hooks: CpuHooks, readonly mode: CpuMode) {
    this.a = unicorn();
    const out: unknown[] = [null];
    check(this.a, "uc_open", this.a.uc_open(UC_ARCH_X86, mode === "long" ? UC_MODE_64 : UC_MODE_32, out));
    this.uc = out[0];
    const size = Math.ceil(ramBytes / PAGE) * PAGE;
    this.ram = Buffer.alloc(size);
    adviseHugePages(this.ram);
    check(this.a, "uc_mem_map_ptr", this.a.uc_mem_map_ptr(this.uc, 0, size, UC_PROT_ALL, this.ram));
    if (mode === "long") {
      // Unicorn's 64-bit engine starts in long mode without paging: memory is flat and identity mapped.
      this.setReg64("CR0", (this.reg64("CR0") & ~4n) | BigInt(CR0_MP_NE));
      this.setReg64("CR4", this.reg64("CR4") | BigInt(CR4_OSFXSR_OSXMMEXCPT));
    } else {
      this.enterRealMode();
    }
    this.installHooks();
  }

  /**
   * A UC_MODE_32 engine starts in flat 32-bit protected mode, and register writes of CR0 do not update the
   * translator's mode flags. So leave protected mode the way real code does, by executing it: load 16-bit code
   * and data descriptors, clear CR0.PE, far-jump to a real-mode CS. Runs once, in scratch memory it then clears.
   */
  private enterRealMode(): void {
    const code = Buffer.from([
      0x0f, 0x01, 0x15, 0x20, 0x06, 0x00, 0x00,      // 0500: lgdt [0x620]
      0xea, 0x10, 0x05, 0x00, 0x00, 0x08, 0x00,      // 0507: jmp far 08h:00000510h (16-bit code segment)
      0x90, 0x90,
      0xb8, 0x10, 0x00,                              // 0510: mov ax, 10h (16-bit data segment, limit FFFFh)
      0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x8e, 0xe0, 0x8e, 0xe8, // mov ds/es/ss/fs/gs, ax
      0x0f, 0x20, 0xc0, 0x24, 0xfe, 0x0f, 0x22, 0xc0, // mov eax, cr0 ; and al, FEh ; mov cr0, eax
      0xea, 0x30, 0x05, 0x00, 0x00,                  // jmp far 0000h:0530h (real mode)
    ]);
    const gdt = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0, 0, 0xff, 0xff, 0, 0, 0, 0x92, 0, 0,
      0x17, 0x00, 0x00, 0x06, 0x00, 0x00]);
    this.ram.set(code, 0x500);
    this.ram.set(gdt.subarray(0, 24), 0x600);
    this.ram.set(gdt.subarray(24), 0x620);
    this.ram[0x530] = 0xf4;                          // 0530: hlt
    // count 0: switching between counted and uncounted runs makes Unicorn flush its translation cache (seconds).
    const err = this.a.uc_emu_start(this.uc, 0x500, 0xffffffffffffffffn, 1_000_000, 0);
    const ok = err === 0 && this.reg("EIP") === 0x531 && (this.reg("CR0") & 1) === 0;
    this.ram.fill(0, 0x500, 0x700);
    this.invalidate(0x500, 0x700);
    if (!ok) throw new Error(`could not put the Unicorn CPU into real mode (uc_err ${err}, EIP ${this.reg("EIP").toString(16)})`);
    for (const r of ["DS", "ES", "FS", "GS", "SS"] as const) this.setReg(r, 0);
  }

  private guard<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (e) {
      if (!this.hookError) this.hookError = e instanceof Error ? e : new Error(String(e));
      this.a.uc_emu_stop(this.uc);
      return fallback;
    }
  }

  private installHooks(): void {
    const k = this.a.koffi;
    const h = this.hooks;
    this.rangeCb = k.register((_uc: unknown, address: number | bigint, size: number, user: unknown) =>
      this.guard(() => {
        const f = this.rangeFns.get(Number(k.address(user)));
        if (f) f(Number(address), size);
      }, undefined), k.pointer(this.a.protos.code));
    this.callbacks.push(this.rangeCb);
    if (h.interrupt) {
      const fn = h.interrupt;
      const cb = k.register((_uc: unknown, intno: number) => this.guard(() => fn(intno), undefined),
        k.pointer(this.a.protos.intr));
      this.callbacks.push(cb);
      check(this.a, "uc_hook_add(INTR)", this.a.uc_hook_add_intr(this.uc, [0], UC_HOOK_INTR, cb, null, 1, 0));
    }
    if (h.portIn) {
      const fn = h.portIn;
      const cb = k.register((_uc: unknown, port: number, size: number) => this.guard(() => fn(port, size) >>> 0, 0xffffffff),
        k.pointer(this.a.protos.insnIn));
      this.callbacks.push(cb);
      check(this.a, "uc_hook_add(IN)", this.a.uc_hook_add_insn(this.uc, [0], UC_HOOK_INSN, cb, null, 1, 0, "int", UC_X86_INS_IN));
    }
    if (h.portOut) {
      const fn = h.portOut;
      const cb = k.register((_uc: unknown, port: number, size: number, value: number) => this.guard(() => fn(port, size, value), undefined),
        k.pointer(this.a.protos.insnOut));
      this.callbacks.push(cb);
      check(this.a, "uc_hook_add(OUT)", this.a.uc_hook_add_insn(this.uc, [0], UC_HOOK_INSN, cb, null, 1, 0, "int", UC_X86_INS_OUT));
    }
    if (h.newBlock) {
      const fn = h.newBlock;
      const tb = this.a.ucTb;
      const cb = k.register((_uc: unknown, cur: unknown) => this.guard(() => {
        const t = k.decode(cur, tb) as { pc: number | bigint; size: number; icount: number };
        fn(Number(t.pc), t.size, t.icount);
      }, undefined), k.pointer(this.a.protos.edge));
      this.callbacks.push(cb);
      check(this.a, "uc_hook_add(EDGE_GENERATED)", this.a.uc_hook_add_edge(this.uc, [0], UC_HOOK_EDGE_GENERATED, cb, null, 1n, 0n));
    }
    if (h.cpuid) {
      const fn = h.cpuid;
      const cb = k.register((_uc: unknown) => (this.guard(() => fn(), false) ? 1 : 0), k.pointer(this.a.protos.cpuid));
      this.callbacks.push(cb);
      check(this.a, "uc_hook_add(CPUID)", this.a.uc_hook_add_insn(this.uc, [0], UC_HOOK_INSN, cb, null, 1, 0, "int", UC_X86_INS_CPUID));
    }
  }

  reg(r: X86Reg): number {
    const b = this.regBuf;
    b.writeUInt32LE(0, 0); // 8/16-bit reads write only 1-2 bytes (pitfall 2)
    check(this.a, "uc_reg_read", this.a.uc_reg_read(this.uc, X86_REG[r], b));
    return b.readUInt32LE(0);
  }

  setReg(r: X86Reg, v: number): void {
    const b = this.regBuf;
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(Math.trunc(v))), 0);
    check(this.a, "uc_reg_write", this.a.uc_reg_write(this.uc, X86_REG[r], b));
  }

  reg64(r: X86Reg): bigint {
    const b = this.regBuf;
    b.writeBigUInt64LE(0n, 0);
    check(this.a, "uc_reg_read", this.a.uc_reg_read(this.uc, X86_REG[r], b));
    return b.readBigUInt64LE(0);
  }

  setReg64(r: X86Reg, v: bigint): void {
    const b = this.regBuf;
    b.writeBigUInt64LE(BigInt.asUintN(64, v), 0);
    check(this.a, "uc_reg_write", this.a.uc_reg_write(this.uc, X86_REG[r], b));
  }

  mmr(r: "GDTR" | "IDTR"): Mmr {
    const b = this.mmrBuf;
    b.fill(0);
    check(this.a, "uc_reg_read", this.a.uc_reg_read(this.uc, X86_REG[r], b));
    return { selector: b.readUInt16LE(0), base: Number(b.readBigUInt64LE(8)), limit: b.readUInt32LE(16), flags: b.readUInt32LE(20) };
  }

  write(addr: number, data: Uint8Array): void {
    if (addr < 0 || addr + data.length > this.ram.length) {
      throw new RangeError(`host write of ${data.length} bytes at 0x${addr.toString(16)} is outside guest RAM`);
    }
    this.ram.set(data, addr);
    this.invalidate(addr, addr + data.length);
  }

  read(addr: number, len: number): Buffer {
    const start = Math.max(0, Math.min(addr, this.ram.length));
    const end = Math.max(start, Math.min(addr + len, this.ram.length));
    const out = Buffer.alloc(len, 0xff);             // unmapped bytes read as FFh like an open bus
    this.ram.copy(out, start - addr, start, end);
    return out;
  }

  invalidate(begin: number, end: number): void {
    if (end <= begin) return;
    check(this.a, "uc_ctl(REMOVE_CACHE)", this.a.uc_ctl_2u64(this.uc, UC_CTL_REMOVE_CACHE, BigInt(begin), BigInt(end)));
  }

  /** Drop every translated block. Slow in Unicorn 2.0.1 (about 3 s): for tests and emergencies only. */
  flushCode(): void {
    check(this.a, "uc_ctl(TB_FLUSH)", this.a.uc_ctl(this.uc, UC_CTL_FLUSH_TLB));
  }

  addCodeHook(begin: number, end: number, fn: (address: number) => void): number {
    return this.addRangeHook(UC_HOOK_CODE, begin, end, (addr) => fn(addr));
  }

  addBlockHook(begin: number, end: number, fn: (address: number, size: number) => void): number {
    return this.addRangeHook(UC_HOOK_BLOCK, begin, end, fn);
  }

  private addRangeHook(type: number, begin: number, end: number, fn: (address: number, size: number) => void): number {
    // One koffi callback serves every range hook: registering a callback while a hook runs (inside uc_emu_start)
    // makes koffi throw "Maximum call stack size exceeded"; adding a Unicorn hook there is fine.
    const id = this.nextId++;
    const hh: unknown[] = [0];
    this.rangeFns.set(id, fn);
    check(this.a, "uc_hook_add(CODE/BLOCK)", this.a.uc_hook_add_code(this.uc, hh, type, this.rangeCb, id, BigInt(begin), BigInt(end)));
    this.hooksById.set(id, { hh: hh[0], cb: this.rangeCb });
    return id;
  }

  removeHook(id: number): void {
    const h = this.hooksById.get(id);
    if (!h) return;
    this.hooksById.delete(id);
    this.rangeFns.delete(id);
    check(this.a, "uc_hook_del", this.a.uc_hook_del(this.uc, h.hh));
  }

  run(count: number, timeoutUs = 0): RunOutcome {
    // A 32-bit engine sets EIP = begin (a 16-bit one would keep only the low 16 bits of begin - CS*16).
    const begin = this.mode === "long" ? this.reg64("RIP") : BigInt(this.reg("EIP"));
    const wd = timeoutUs > 0 ? runWatchdog : undefined;
    if (wd) wd.arm(BigInt(this.a.koffi.address(this.uc) as bigint), timeoutUs / 1000);
    const err = this.a.uc_emu_start(this.uc, begin, 0xffffffffffffffffn, wd ? 0 : timeoutUs, count);
    this.watchdogRun = wd ? { fired: wd.disarm() } : undefined;
    return { err, errText: err === 0 ? "" : this.a.uc_strerror(err) };
  }

  stop(): void {
    this.a.uc_emu_stop(this.uc);
  }

  timedOut(): boolean {
    if (this.watchdogRun) return this.watchdogRun.fired;
    const b = Buffer.alloc(8);
    check(this.a, "uc_query(TIMEOUT)", this.a.uc_query(this.uc, UC_QUERY_TIMEOUT, b));
    return b.readBigUInt64LE(0) !== 0n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.a.uc_close(this.uc);
    for (const cb of this.callbacks) {
      try { this.a.koffi.unregister(cb as never); } catch { /* already gone */ }
    }
    releasePages(this.ram);
  }
}

/** madvise(2) MADV_DONTNEED (asm-generic/mman-common.h). */
const MADV_DONTNEED = 4;

/**
 * Give a closed engine's guest RAM back to the system now rather than when V8 collects the Buffer: a batch worker
 * checking image after image otherwise holds several guests' touched pages at once. The Buffer reads as zeros after.
 */
function releasePages(buf: Buffer): void {
  adviseAligned(buf, PAGE, MADV_DONTNEED);        // best effort: otherwise the pages go when the Buffer is collected
}
