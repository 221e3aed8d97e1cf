// The synthetic Hyper-V Generation 1 BIOS (a virtual AMI BIOS, HYPERV.md): POST state (IVT, BDA, EBDA, ROM
// tables per the IBM PC/AT Technical Reference and BIOS Boot Specification 1.01) and INT dispatch through a service
// table keyed by (INT, AH[, AL]) like SeaBIOS's disk_13 -> disk_1342. Handlers live in bios-int10/13/15/misc.ts.
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { MEM, stubOffset, type Machine } from "../emu/machine.ts";
import type { Stop } from "../emu/stop.ts";
import type { Cpu } from "../emu/cpu.ts";
import { NS_PER_BIOS_CALL } from "../emu/clock.ts";
import type { BlockDevice, Geometry } from "../images/block.ts";
import { vhdGeometry } from "./hyperv.ts";
import { installSmbios } from "./smbios.ts";

defineFindings([
  {
    code: "BIOS_UNKNOWN_SERVICE", severity: "warning", stage: "firmware",
    title: "Boot code called a BIOS service the Gen1 model does not provide",
    message: "INT {int}h function {fn} is not provided by the Hyper-V Gen1 BIOS model; the call returned failure",
    remedy: "Check whether the boot code relies on a vendor-specific BIOS extension; reinstall a standard boot loader with 'grub-install /dev/sdX' if it does",
    explain: "bootgate answers every BIOS service a PC/AT BIOS and Hyper-V's virtual AMI BIOS provide. A call outside that set returns the service's failure code (CF=1) exactly as an unsupported function does on real firmware, and the call with its registers is recorded so the behaviour that follows can be judged.",
  },
  {
    code: "BIOS_PM_INTERRUPT", severity: "error", stage: "bootloader",
    title: "Software interrupt issued in protected mode",
    message: "INT {int}h was executed in protected mode at {where}; BIOS services exist only in real mode",
    remedy: "Reinstall the boot loader ('grub-install /dev/sdX' or 'syslinux --install'); the installed code is damaged or mismatched",
    explain: "A BIOS-era boot loader must return to real mode before calling BIOS services. An INT in protected mode vectors through the guest's IDT, which boot loaders do not set up, and resets a real machine.",
  },
]);

/** The Gen1 machine profile (HYPERV.md: only IDE disks boot; default boot order CD, IDE, legacy NIC, floppy). */
export interface Gen1Profile {
  memoryMiB: number;
  /** "ide0:0" (primary master, default) .. "ide1:1". */
  ideSlot: string;
  bootOrder: ("cd" | "ide" | "nic" | "floppy")[];
}

export interface BiosDisk {
  drive: number;
  dev: BlockDevice;
  geometry: Geometry;
  slot: string;
  /** Copy-on-write overlay: sectors the guest wrote (the image itself is never written). */
  overlay: Map<number, Uint8Array>;
  lastStatus: number;
}

/** Registers of the interrupted code, as findings and traces show them. */
export type RegDump = Record<string, string>;

export interface ServiceDef {
  int: number;
  ah?: number;
  al?: number;
  name: string;
  fn: (b: Gen1Bios) => void;
}

/** Flags a service may report; in a chained call (guest hook -> our stub) they go into the saved FLAGS. */
const CF = 0x0001, ZF = 0x0040, IF = 0x0200, TF = 0x0100;

/** The keys of the service table: vector, vector+AH, vector+AH+AL. */
const key = (i: number, ah?: number, al?: number): number =>
  i * 0x100000 + (ah === undefined ? 0 : 0x10000 + ah * 0x100) + (al === undefined ? 0 : 0x20000 + al);

export class Gen1Bios {
  readonly disks: BiosDisk[] = [];
  readonly findings: Finding[] = [];
  stop?: Stop;
  /** Scripted keystrokes (scan << 8 | ascii) for INT 16h. */
  keys: number[] = [];
  intCalls = 0;
  diskReads = 0;
  sectorsRead = 0;
  /** Virtual time (ns) of the last sign of progress (output, disk I/O) — for waiting-for-key detection. */
  lastProgressNs = 0;
  /** Teletype transcript (everything written through INT 10h), bounded. */
  tty = "";
  /** Called on every BIOS call, before the service (hand-off detection, stage tracking). */
  observers: ((intno: number) => void)[] = [];
  private table = new Map<number, ServiceDef>();
  private chained = false;
  private unknownSeen = new Set<string>();
  /** Registers a service sees instead of the CPU's (callWith). */
  private regView?: Cpu;

  constructor(readonly m: Machine, readonly profile: Gen1Profile) {}

  get cpu(): Cpu { return this.regView ?? this.m.cpu; }

  register(defs: ServiceDef[]): void {
    for (const d of defs) this.table.set(key(d.int, d.ah, d.al), d);
  }

  attachDisk(dev: BlockDevice, slot: string): BiosDisk {
    const d: BiosDisk = { drive: 0x80 + this.disks.length, dev, geometry: vhdGeometry(dev.sectorCount), slot, overlay: new Map(), lastStatus: 0 };
    this.disks.push(d);
    this.m.w8(MEM.BDA + 0x75, this.disks.length);
    return d;
  }

  disk(drive: number): BiosDisk | undefined {
    return this.disks.find((d) => d.drive === drive);
  }

  requestStop(s: Stop): void {
    if (!this.stop) this.stop = s;
    this.cpu.stop();
  }

  /** POST: IVT, BDA, EBDA, ROM stubs and tables, SMBIOS/RSDP, VGA text mode 3 with a cleared screen. */
  post(): void {
    const m = this.m;
    // One 4-byte stub per vector in segment F000: INT n ; IRET.
    for (let n = 0; n < 256; n++) {
      const at = MEM.BIOS + stubOffset(n);
      m.ram.set([0xcd, n, 0xcf, 0x90], at);
      m.w16(n * 4, stubOffset(n));
      m.w16(n * 4 + 2, MEM.BIOS_SEG);
    }
    // Data vectors (IBM PC/AT TRM): 1Eh diskette parameters, 41h/46h fixed disk parameters, 1Fh/43h fonts.
    const table = (n: number, off: number) => { m.w16(n * 4, off); m.w16(n * 4 + 2, MEM.BIOS_SEG); };
    table(0x1e, 0xefc7);
    m.ram.set([0xaf, 0x02, 0x25, 0x02, 0x12, 0x1b, 0xff, 0x6c, 0xf6, 0x0f, 0x08], MEM.BIOS + 0xefc7);
    table(0x41, 0xe401); table(0x46, 0xe401);
    m.w16(0x1f * 4, 0); m.w16(0x1f * 4 + 2, 0);
    table(0x43, 0xfa6e);
    // Reset vector FFFF:0000 -> F000:E05B, which asks for a reboot (INT 19h); ROM date and model byte.
    m.ram.set([0xea, 0x5b, 0xe0, 0x00, 0xf0], 0xffff0);
    m.ram.set(Buffer.from("01/01/24", "latin1"), 0xffff5);
    m.w8(0xffffe, 0xfc);
    m.ram.set([0xcd, 0x19, 0xeb, 0xfe], MEM.BIOS + 0xe05b);
    // System configuration table for INT 15h C0h at F000:E6F5.
    m.ram.set([0x08, 0x00, 0xfc, 0x01, 0x00, 0x74, 0x40, 0x00, 0x00, 0x00], MEM.BIOS + 0xe6f5);
    // BDA (0040:xxxx): COM1/COM2, equipment, memory, EBDA, video state.
    const bda = MEM.BDA;
    m.w16(bda + 0x00, 0x3f8); m.w16(bda + 0x02, 0x2f8);
    m.w16(bda + 0x0e, MEM.EBDA >> 4);
    m.w16(bda + 0x10, 0x0026 | (2 << 9));          // VGA 80x25 colour, math coprocessor, PS/2 mouse, 2 serial ports
    m.w16(bda + 0x13, MEM.EBDA >> 10);              // 639 KiB conventional memory
    m.w16(bda + 0x1a, 0x1e); m.w16(bda + 0x1c, 0x1e); // keyboard buffer head/tail (empty)
    m.w16(bda + 0x80, 0x1e); m.w16(bda + 0x82, 0x3e);
    m.w8(bda + 0x49, 3); m.w16(bda + 0x4a, 80); m.w16(bda + 0x4c, 0x1000); m.w16(bda + 0x63, 0x3d4);
    m.w8(bda + 0x84, 24); m.w16(bda + 0x85, 16);
    m.w8(bda + 0x96, 0x10);                          // 101/102-key keyboard present
    m.w8(MEM.EBDA, 1);                               // EBDA size in KiB
    for (let i = 0; i < 80 * 25; i++) m.w16(MEM.VGA_TEXT + i * 2, 0x0720);
    installSmbios(m, this.profile.memoryMiB);
    this.syncTicks();
  }

  /** Mirror the virtual clock into the BDA tick count 0040:006C (what INT 08h would maintain). */
  syncTicks(): void {
    this.m.w32(MEM.BDA + 0x6c, this.m.clock.biosTicks());
  }

  regs(): RegDump {
    const c = this.cpu;
    const h = (v: number, w = 4) => v.toString(16).padStart(w, "0");
    return {
      eax: h(c.reg("EAX"), 8), ebx: h(c.reg("EBX"), 8), ecx: h(c.reg("ECX"), 8), edx: h(c.reg("EDX"), 8),
      esi: h(c.reg("ESI"), 8), edi: h(c.reg("EDI"), 8), ebp: h(c.reg("EBP"), 8), esp: h(c.reg("ESP"), 8),
      cs: h(c.reg("CS")), ds: h(c.reg("DS")), es: h(c.reg("ES")), ss: h(c.reg("SS")), eip: h(c.reg("EIP"), 8),
      eflags: h(c.reg("EFLAGS"), 8),
    };
  }

  // ---- flag results: live EFLAGS for direct calls, the saved FLAGS word for chained calls ----
  private setFlag(mask: number, on: boolean): void {
    if (this.chained) {
      const a = this.m.segBase(this.cpu.reg("SS")) + ((this.cpu.reg("SP") + 4) & 0xffff);
      const f = this.m.u16(a);
      this.m.w16(a, on ? f | mask : f & ~mask);
    } else {
      const f = this.cpu.reg("EFLAGS");
      this.cpu.setReg("EFLAGS", on ? f | mask : f & ~mask);
    }
  }
  setCF(on: boolean): void { this.setFlag(CF, on); }
  setZF(on: boolean): void { this.setFlag(ZF, on); }

  /** Service failure per the BIOS convention: CF=1 and a status in AH. */
  fail(ah: number): void {
    this.cpu.setReg("AH", ah);
    this.setCF(true);
  }
  ok(ah = 0): void {
    this.cpu.setReg("AH", ah);
    this.setCF(false);
  }

  /** Record an unknown service (once per INT/AH/AL) and return the interrupt's failure convention. */
  unknown(intno: number, failAh = 0x01): void {
    const ah = this.cpu.reg("AH"), al = this.cpu.reg("AL");
    const fn = `AH=${ah.toString(16).padStart(2, "0")}h AL=${al.toString(16).padStart(2, "0")}h`;
    const id = `${intno}:${ah}:${al}`;
    const intHex = intno.toString(16).padStart(2, "0").toUpperCase();
    this.m.trace.add("note", `unknown BIOS service INT ${intHex}h ${fn}`);
    if (!this.unknownSeen.has(id) && this.unknownSeen.size < 64) {
      this.unknownSeen.add(id);
      this.findings.push(finding("BIOS_UNKNOWN_SERVICE", { int: intHex, fn }, { registers: this.regs() }));
    }
    this.fail(failAh);
  }

  /** UC_HOOK_INTR: INT n from guest code, INT n inside our stub (a chained call), or a CPU exception. */
  onInterrupt(intno: number): void {
    const cpu = this.cpu, m = this.m;
    const cs = cpu.reg("CS"), eip = cpu.reg("EIP");
    const pm = m.protectedMode();
    const lin = (m.segBase(cs) + eip) >>> 0;
    const isInt = (m.u8(lin - 2) === 0xcd && m.u8(lin - 1) === intno) || (intno === 3 && m.u8(lin - 1) === 0xcc);
    if (!isInt) { this.onException(intno, cs, eip, pm); return; }
    if (pm) {
      const where = `${cs.toString(16)}:${eip.toString(16)}`;
      this.findings.push(finding("BIOS_PM_INTERRUPT", { int: intno.toString(16).toUpperCase(), where }, { registers: this.regs() }));
      this.requestStop({ reason: "cpu-exception", detail: `INT ${intno.toString(16)}h in protected mode at ${where}`, cs, ip: eip });
      return;
    }
    const ip = eip & 0xffff;
    const inStub = cs === MEM.BIOS_SEG && ((ip - 2) & 0xffff) === stubOffset(intno);
    if (!inStub && !this.serves(intno)) {
      // The guest installed its own handler: deliver like the CPU does (push FLAGS, CS, IP; clear IF/TF).
      this.deliver(intno, cs, ip);
      return;
    }
    this.chained = inStub;
    this.service(intno, cs, ip);
    this.chained = false;
  }

  /** The service INT `intno` asks for (registers through this.cpu); `cs:ip` is after the INT instruction. */
  private service(intno: number, cs: number, ip: number): void {
    const cpu = this.cpu, m = this.m;
    this.intCalls++;
    m.clock.advance(NS_PER_BIOS_CALL);
    for (const o of this.observers) o(intno);
    if (this.stop) return;
    const ax = cpu.reg("AX"), ah = ax >> 8, al = ax & 0xff;
    const def = this.table.get(key(intno, ah, al)) ?? this.table.get(key(intno, ah)) ?? this.table.get(key(intno));
    if (intno !== 0x10 || this.intCalls < 64) {
      const h = (v: number) => v.toString(16).padStart(4, "0");
      m.trace.add("int", `INT ${intno.toString(16).padStart(2, "0")}h ${def?.name ?? "unknown"}`, {
        at: `${h(cs)}:${h(ip - 2)}`, ax: h(ax), bx: h(cpu.reg("BX")), cx: h(cpu.reg("CX")), dx: h(cpu.reg("DX")),
        es: h(cpu.reg("ES")), ds: h(cpu.reg("DS")), si: h(cpu.reg("SI")), di: h(cpu.reg("DI")) });
    }
    if (def) def.fn(this);
    else this.unknown(intno, intno === 0x15 ? 0x86 : 0x01);
  }

  /** Whether INT `intno` would reach this BIOS (its vector is ours, not a handler the guest installed). */
  serves(intno: number): boolean {
    return this.m.u32(intno * 4) === ((MEM.BIOS_SEG << 16) | stubOffset(intno)) >>> 0;
  }

  /** The service table has an entry for INT `intno` with these AH/AL (a known service). */
  knows(intno: number, ah: number, al: number): boolean {
    return this.table.has(key(intno, ah, al)) || this.table.has(key(intno, ah)) || this.table.has(key(intno));
  }

  /**
   * A real-mode INT made on the guest's behalf by the host (a boot loader's BIOS-call trampoline finished on the
   * host: emu/gen1-grub-int.ts): the service runs with `regs` standing in for the CPU's registers, as the guest's
   * real-mode code would have loaded them; `cs:ip` is where that code's INT would have left them.
   */
  callWith(intno: number, regs: Cpu, cs: number, ip: number): void {
    this.regView = regs;
    try { this.service(intno, cs, ip); } finally { this.regView = undefined; }
  }

  /** Push FLAGS, CS, IP on the real-mode stack and continue at the IVT vector. */
  deliver(intno: number, cs: number, ip: number): void {
    const cpu = this.cpu, m = this.m;
    const ss = cpu.reg("SS");
    let sp = cpu.reg("SP");
    const flags = cpu.reg("EFLAGS");
    const push = (v: number) => { sp = (sp - 2) & 0xffff; m.w16(ss * 16 + sp, v); };
    push(flags & 0xffff); push(cs); push(ip);
    cpu.setReg("SP", sp);
    cpu.setReg("EFLAGS", flags & ~(IF | TF));
    cpu.setReg("CS", m.u16(intno * 4 + 2));
    cpu.setReg("EIP", m.u16(intno * 4));
    m.trace.add("int", `INT ${intno.toString(16)}h delivered to the guest's handler ${m.u16(intno * 4 + 2).toString(16)}:${m.u16(intno * 4).toString(16)}`);
  }

  private onException(intno: number, cs: number, eip: number, pm: boolean): void {
    const names: Record<number, string> = { 0: "#DE divide error", 1: "#DB debug", 3: "#BP breakpoint", 4: "#OF overflow",
      5: "#BR bound range", 6: "#UD invalid opcode", 7: "#NM no math coprocessor", 8: "#DF double fault",
      10: "#TS invalid TSS", 11: "#NP segment not present", 12: "#SS stack fault", 13: "#GP general protection",
      14: "#PF page fault", 16: "#MF x87 error", 17: "#AC alignment check", 18: "#MC machine check", 19: "#XM SIMD" };
    const name = names[intno] ?? `vector ${intno}`;
    const where = `${cs.toString(16).padStart(4, "0")}:${eip.toString(16).padStart(pm ? 8 : 4, "0")}`;
    this.requestStop({
      reason: intno === 8 ? "triple-fault" : "cpu-exception",
      detail: `${name} at ${where} in ${pm ? "protected" : "real"} mode${intno === 8 ? " (a real CPU would shut down and reset)" : ""}`,
      cs, ip: eip,
    });
  }
}
