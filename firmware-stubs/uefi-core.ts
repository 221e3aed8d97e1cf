// The Gen2 firmware's machinery (see ../shared/UNICORN.md, "UEFI service stubs"): guest memory access, one trapped
// stub per firmware function (a RET the hook runs before), calls from the firmware into guest code (StartImage,
// event notifications) on the guest's own stack, a handle/protocol database (UEFI 2.10 7.3) and a bump arena for
// the firmware's own structures. Services themselves live in uefi-boot-services.ts, uefi-image.ts and friends.
import type { Cpu } from "../emu/cpu.ts";
import type { Trace } from "../emu/trace.ts";
import type { VirtualClock } from "../emu/clock.ts";
import { EFI, MemType, PAGE_SIZE, statusName } from "./uefi-layout.ts";
import type { MemoryMap } from "./uefi-memory.ts";
import { guidFromBytes } from "./uefi-guid.ts";

/** A bad guest pointer or buffer: the run stops as a CPU exception would (the firmware's page fault). */
export class GuestFault extends Error {
  constructor(message: string) { super(message); this.name = "GuestFault"; }
}

/** One firmware function call as the trap sees it: Microsoft x64 calling convention (UEFI 2.10 2.3.4.2). */
export class Call {
  private cache: (bigint | undefined)[] = [];
  constructor(private fw: FirmwareCore, readonly name: string, readonly rsp: bigint) {}
  /** Argument i (0-based): RCX, RDX, R8, R9, then the stack above the 32-byte shadow space. */
  arg(i: number): bigint {
    const hit = this.cache[i];
    if (hit !== undefined) return hit;
    const regs = ["RCX", "RDX", "R8", "R9"] as const;
    const v = i < 4 ? this.fw.cpu.reg64(regs[i]) : this.fw.u64(Number(this.rsp) + 8 * (i + 1));
    this.cache[i] = v;
    return v;
  }
  /** Argument i as a guest address: 0 or inside guest RAM (else a GuestFault). */
  ptr(i: number): number {
    const v = this.arg(i);
    if (v === 0n) return 0;
    if (v >= BigInt(this.fw.ram.length)) throw new GuestFault(`${this.name}: argument ${i + 1} (0x${v.toString(16)}) points outside guest RAM`);
    return Number(v);
  }
  /** Argument i as a count or size that must fit guest RAM (larger values come back as Infinity). */
  num(i: number): number {
    const v = this.arg(i);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
  }
  u32(i: number): number { return Number(this.arg(i) & 0xffffffffn); }
  /** The caller's return address (the stub was reached by CALL). */
  get returnAddress(): number { return Number(this.fw.u64(Number(this.rsp))); }
}

/** A handler returns an EFI_STATUS, or undefined when it redirected the CPU itself (a guest call, an image start). */
export type Handler = (c: Call) => bigint | undefined;

interface GuestFrame {
  /** RSP at the trap that made the call (pointing at its caller's return address). */
  rsp: bigint;
  kind: "image" | "notify" | "bootmgr";
  image?: number;
  resume(rax: bigint): void;
}

/** Bytes per stub slot: slot+0 is the trapped RET, slot+1 a plain RET used to return after a guest call. */
const SLOT = 16;
const ARENA_ALIGN = 16;

export interface FirmwareRegions {
  /** Stub slots (BootServicesCode; runtime stubs are marked RuntimeServicesCode by the builder). */
  stubBase: number; stubBytes: number;
  /** Firmware data arena. */
  arenaBase: number; arenaBytes: number;
}

export class FirmwareCore {
  readonly ram: Buffer;
  private handlers: Handler[] = [];
  private names: string[] = [];
  private arenaNext: number;
  private frames: GuestFrame[] = [];
  /** Firmware function calls made by the guest (the run's work budget counts them). */
  calls = 0;
  /** Calls per service name (reports, profiling). */
  callCounts = new Map<string, number>();
  /** Set by a handler to end the run (hand-off, reset, budget, a dead end). */
  stopRequest?: { reason: string; detail: string };
  /** The slot a stopped run resumes at (its call is complete: RAX holds the status). */
  private resumeAt?: number;
  /** Called on every firmware call before the handler (budgets). */
  onCall: (name: string) => void = () => {};

  // ---- protocol database (7.3) ----
  private handleList: number[] = [];
  private protocols = new Map<number, Map<string, number>>();
  private handleMagic = 0x48444e4c; // "LNDH"

  constructor(readonly cpu: Cpu, readonly mem: MemoryMap, readonly clock: VirtualClock, readonly trace: Trace, readonly regions: FirmwareRegions) {
    this.ram = cpu.ram;
    this.arenaNext = regions.arenaBase;
    this.ram.fill(0xc3, regions.stubBase, regions.stubBase + regions.stubBytes);
    cpu.invalidate(regions.stubBase, regions.stubBase + regions.stubBytes);
    cpu.addCodeHook(regions.stubBase, regions.stubBase + regions.stubBytes - 1, (addr) => this.trap(addr));
  }

  // ---- guest memory ----
  check(addr: number, len: number, what = "buffer"): void {
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || addr < 0 || len < 0 || addr + len > this.ram.length) {
      throw new GuestFault(`${what} at 0x${addr.toString(16)} (+${len}) lies outside guest RAM`);
    }
  }
  u8(a: number): number { this.check(a, 1); return this.ram[a]; }
  u16(a: number): number { this.check(a, 2); return this.ram.readUInt16LE(a); }
  u32(a: number): number { this.check(a, 4); return this.ram.readUInt32LE(a); }
  u64(a: number): bigint { this.check(a, 8); return this.ram.readBigUInt64LE(a); }
  w8(a: number, v: number): void { this.check(a, 1); this.ram[a] = v & 0xff; }
  w16(a: number, v: number): void { this.check(a, 2); this.ram.writeUInt16LE(v & 0xffff, a); }
  w32(a: number, v: number): void { this.check(a, 4); this.ram.writeUInt32LE(v >>> 0, a); }
  w64(a: number, v: bigint | number): void { this.check(a, 8); this.ram.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), a); }
  bytes(a: number, len: number): Buffer { this.check(a, len); return this.ram.subarray(a, a + len); }
  /** Host write of guest memory that may later run as code: drops translated code there (UNICORN.md pitfall 1). */
  put(a: number, data: Uint8Array): void {
    this.check(a, data.length);
    this.ram.set(data, a);
    if (data.length) this.cpu.invalidate(a, a + data.length);
  }
  /** A NUL-terminated UCS-2 string (at most maxChars characters). */
  utf16(a: number, maxChars = 4096): string {
    if (a === 0) return "";
    let s = "";
    for (let i = 0; i < maxChars; i++) {
      const c = this.u16(a + 2 * i);
      if (c === 0) return s;
      s += String.fromCharCode(c);
    }
    return s;
  }
  writeUtf16(a: number, s: string): number {
    const b = Buffer.from(s + "\0", "utf16le");
    this.put(a, b);
    return b.length;
  }
  guid(a: number): string { return guidFromBytes(this.bytes(a, 16)); }

  /** Firmware-owned memory from the arena (zeroed, 16-byte aligned). */
  alloc(size: number): number {
    const a = Math.ceil(this.arenaNext / ARENA_ALIGN) * ARENA_ALIGN;
    if (a + size > this.regions.arenaBase + this.regions.arenaBytes) throw new Error(`firmware arena exhausted (${size} bytes wanted)`);
    this.arenaNext = a + size;
    this.ram.fill(0, a, a + size);
    return a;
  }
  allocUtf16(s: string): number {
    const a = this.alloc(2 * s.length + 2);
    this.writeUtf16(a, s);
    return a;
  }
  isFirmware(addr: number): boolean {
    const r = this.regions;
    return (addr >= r.stubBase && addr < r.stubBase + r.stubBytes) || (addr >= r.arenaBase && addr < r.arenaBase + r.arenaBytes);
  }

  // ---- stubs ----
  /** A trapped firmware function; returns its address (what goes into a table or protocol member). */
  stub(name: string, fn: Handler): number {
    const i = this.handlers.length;
    if ((i + 1) * SLOT > this.regions.stubBytes) throw new Error("firmware stub area exhausted");
    this.handlers.push(fn);
    this.names.push(name);
    return this.regions.stubBase + i * SLOT;
  }

  nameAt(addr: number): string | undefined {
    const off = addr - this.regions.stubBase;
    return off >= 0 && off % SLOT === 0 ? this.names[off / SLOT] : undefined;
  }

  private trap(addr: number): void {
    const off = addr - this.regions.stubBase;
    if (off % SLOT !== 0) return;                   // slot+1: the plain RET after a guest call
    if (this.resumeAt === addr) { this.resumeAt = undefined; return; }
    const fn = this.handlers[off / SLOT];
    const name = this.names[off / SLOT];
    if (!fn) return;
    this.calls++;
    this.callCounts.set(name, (this.callCounts.get(name) ?? 0) + 1);
    this.onCall(name);
    if (this.stopRequest) { this.cpu.stop(); return; }
    const c = new Call(this, name, this.cpu.reg64("RSP"));
    let status: bigint | undefined;
    try {
      status = fn(c);
    } catch (e) {
      if (!(e instanceof GuestFault)) throw e;
      this.requestStop("cpu-exception", `${name}: ${e.message}`);
      return;
    }
    if (status !== undefined) {
      this.cpu.setReg64("RAX", status);
      // A run stopped here resumes at this slot and the hook fires again: that visit only lets the RET run. (Moving
      // RIP to slot+1 instead would cancel the stop: Unicorn restarts translation after a PC write in a hook.)
      if (this.stopRequest) this.resumeAt = addr;
    }
    if (this.stopRequest) this.cpu.stop();
  }

  requestStop(reason: string, detail: string): void {
    if (!this.stopRequest) this.stopRequest = { reason, detail };
    this.cpu.stop();
  }

  /** Trace an EFI call with its status (compact; the ring keeps the last ones). */
  note(what: string, status: bigint, data?: Record<string, unknown>): bigint {
    this.trace.add("efi", `${what} -> ${statusName(status)}`, data);
    return status;
  }

  // ---- calls into guest code ----
  private returnStub = 0;
  /** Install the stub guest calls return to (once, after construction). */
  initGuestCalls(): void {
    this.returnStub = this.stub("(return from guest call)", () => {
      const f = this.frames.pop();
      if (!f) { this.requestStop("cpu-exception", "returned into the firmware with no pending call"); return undefined; }
      const rax = this.cpu.reg64("RAX");
      this.finishFrame(f, rax);
      return undefined;
    });
  }

  private finishFrame(f: GuestFrame, rax: bigint): void {
    // Back on the stack of the trap that made the call; resume() sets RAX and where to continue.
    this.cpu.setReg64("RSP", f.rsp);
    f.resume(rax);
  }

  /**
   * Call guest function `fn(args...)` from inside a trap. The guest runs on its own stack below the trap's frame
   * and returns to a firmware stub; then `resume(rax)` decides what happens next (usually `returnFromTrap(status)`).
   */
  callGuest(fn: number, args: bigint[], kind: GuestFrame["kind"], resume: (rax: bigint) => void, image?: number): void {
    if (this.frames.length >= 64) throw new GuestFault("guest calls nested more than 64 deep");
    const rsp = this.cpu.reg64("RSP");
    const stackArgs = Math.max(0, args.length - 4);
    // New frame: return address, 32-byte shadow space, stack arguments; RSP = 8 (mod 16) at the callee's entry.
    let sp = (rsp - 0x100n - BigInt(8 * stackArgs)) & ~0xfn;
    sp -= 8n;
    this.w64(Number(sp), this.returnStub);
    for (let i = 4; i < args.length; i++) this.w64(Number(sp) + 8 * (i + 1), args[i]);
    const regs = ["RCX", "RDX", "R8", "R9"] as const;
    for (let i = 0; i < Math.min(4, args.length); i++) this.cpu.setReg64(regs[i], args[i]);
    this.frames.push({ rsp, kind, image, resume });
    this.cpu.setReg64("RSP", sp);
    this.cpu.setReg64("RIP", BigInt(fn));
  }

  /** From a resume(): return `status` to whoever called the trapped stub (RSP is the trap's again). */
  returnFromTrap(stubAddr: number, status: bigint): void {
    this.cpu.setReg64("RAX", status);
    this.cpu.setReg64("RIP", BigInt(stubAddr + 1));
  }

  /** Unwind to the frame that started `image` (Exit): later frames are dropped. False when there is none. */
  unwindImage(image: number, status: bigint): boolean {
    const i = this.frames.map((f) => f.kind === "image" && f.image === image).lastIndexOf(true);
    if (i < 0) return false;
    const f = this.frames[i];
    this.frames.length = i;
    this.finishFrame(f, status);
    return true;
  }

  /** Images currently started and not yet returned, innermost last. */
  runningImages(): number[] {
    return this.frames.filter((f) => f.kind === "image" && f.image !== undefined).map((f) => f.image!);
  }

  // ---- handles and protocols ----
  newHandle(): number {
    const h = this.alloc(16);
    this.w32(h, this.handleMagic);
    this.handleList.push(h);
    this.protocols.set(h, new Map());
    return h;
  }
  isHandle(h: number): boolean { return this.protocols.has(h); }
  /** Install; false when the handle already has that protocol. */
  install(handle: number, guid: string, iface: number): boolean {
    const m = this.protocols.get(handle);
    if (!m || m.has(guid)) return false;
    m.set(guid, iface);
    this.protocolsChanged++;
    return true;
  }
  uninstall(handle: number, guid: string): boolean {
    const m = this.protocols.get(handle);
    if (!m || !m.delete(guid)) return false;
    this.protocolsChanged++;
    if (m.size === 0) {
      this.protocols.delete(handle);
      this.handleList = this.handleList.filter((h) => h !== handle);
    }
    return true;
  }
  protocolsChanged = 0;
  iface(handle: number, guid: string): number | undefined { return this.protocols.get(handle)?.get(guid); }
  protocolsOf(handle: number): string[] { return [...(this.protocols.get(handle)?.keys() ?? [])]; }
  handles(guid?: string): number[] {
    return guid === undefined ? [...this.handleList] : this.handleList.filter((h) => this.protocols.get(h)!.has(guid));
  }

  /** A protocol interface of function stubs and data fields; `handlers` maps member name -> handler. */
  buildInterface(members: readonly string[], prefix: string, handlers: Record<string, Handler>, data: Record<string, bigint | number> = {}): number {
    const base = this.alloc(members.length * 8);
    members.forEach((m, i) => {
      if (m.startsWith("@")) {
        const v = data[m.slice(1)];
        if (v !== undefined) this.w64(base + 8 * i, v);
        return;
      }
      const h = handlers[m] ?? ((c: Call) => this.unsupported(`${prefix}.${m}`, c));
      this.w64(base + 8 * i, this.stub(`${prefix}.${m}`, h));
    });
    return base;
  }

  /**
   * One set of stubs shared by every instance of a protocol (files, block devices): handlers find their instance
   * from `This` (argument 0). Returns the member values to copy into each instance with `instantiate`.
   */
  vtable(members: readonly string[], prefix: string, handlers: Record<string, Handler>): (number | undefined)[] {
    return members.map((m) => m.startsWith("@") ? undefined
      : this.stub(`${prefix}.${m}`, handlers[m] ?? ((c: Call) => this.unsupported(`${prefix}.${m}`, c))));
  }

  /** A protocol instance: the vtable's function pointers plus the `@field` data. */
  instantiate(members: readonly string[], vt: (number | undefined)[], data: Record<string, bigint | number> = {}, extra = 0): number {
    const base = this.alloc(members.length * 8 + extra);
    members.forEach((m, i) => {
      const v = m.startsWith("@") ? data[m.slice(1)] : vt[i];
      if (v !== undefined) this.w64(base + 8 * i, v);
    });
    return base;
  }

  /** Services nobody implemented: EFI_UNSUPPORTED, and a record of what was asked. */
  unsupportedCalls = new Map<string, number>();
  unsupported(name: string, _c?: Call): bigint {
    this.unsupportedCalls.set(name, (this.unsupportedCalls.get(name) ?? 0) + 1);
    return this.note(name, EFI.UNSUPPORTED);
  }

  /** Memory a guest buffer may be written to: RAM that is not the firmware's own code/data. */
  writableGuest(addr: number, len: number): boolean {
    if (addr === 0 || addr + len > this.ram.length) return false;
    return !this.isFirmware(addr) && !this.isFirmware(addr + Math.max(0, len - 1));
  }
}

export { EFI, MemType, PAGE_SIZE };
