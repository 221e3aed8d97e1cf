// Hyper-V Generation 1 boot run: power-on -> POST -> boot order (CD, IDE, legacy NIC, floppy; HYPERV.md) ->
// sector 0 at 0000:7C00 (BIOS Boot Specification 1.01, 6.5) -> the image's own boot code in Unicorn until a Linux
// hand-off or a recognised dead end. Public entry point: runGen1().
import { performance } from "node:perf_hooks";
import type { BlockDevice } from "../images/block.ts";
import { finding, type Finding } from "./findings.ts";
import "./gen1-findings.ts";
import { createCpu, type Cpu } from "./cpu.ts";
import { LoopAccelerator, type LoopAccelStats } from "./loop-accel.ts";
import { installGrubLzmaAccel, type GrubLzmaStats } from "./gen1-lzma.ts";
import { GrubBiosCalls, type GrubIntStats } from "./gen1-grub-int.ts";
import { Machine, MEM } from "./machine.ts";
import { NS_IDLE_SKIP } from "./clock.ts";
import type { Stop } from "./stop.ts";
import { identifyBootCode, type BootCodeId } from "./bootcode-id.ts";
import { LinuxHandoffDetector, type Handoff } from "./linux-handoff.ts";
import { disassemble, type DisasmLine } from "./disasm.ts";
import type { TraceEvent, TraceSink } from "./trace.ts";
import { Gen1Bios } from "../firmware-stubs/gen1-bios.ts";
import { int10Services, screenLines } from "../firmware-stubs/bios-int10.ts";
import { int13Services, readSectors } from "../firmware-stubs/bios-int13.ts";
import { int15Services } from "../firmware-stubs/bios-int15.ts";
import { miscServices, parseKeys, KEY_WAIT_GIVE_UP_NS } from "../firmware-stubs/bios-misc.ts";
import { HYPERV_IDE_MAX_BYTES } from "../firmware-stubs/hyperv.ts";
import { cpuidLeaf } from "./gen1-cpuid.ts";
import { partitionOf, failureMessages } from "./gen1-evidence.ts";
import { GEN1_DEFAULT_MAX_EVENTS, GEN1_DEFAULT_MAX_WALL_MS, GUEST_RAM_MIB_DEFAULT, GUEST_RAM_MIB_MAX, GUEST_RAM_MIB_MIN,
  INSTRUCTIONS_PER_EVENT } from "../images/limits.ts";

export interface Gen1Options {
  /**
   * Work budget: BIOS calls plus port accesses (default 5 000 000). Guest instructions are not budgeted: a loop
   * without any I/O ends at the wall-time budget (the CPU run's time-out).
   */
  maxEvents?: number;
  /** Accepted for compatibility; converted to an event budget of maxInstructions / 100. */
  maxInstructions?: number;
  /** Host wall-time budget in ms (default 60 000). */
  maxWallMs?: number;
  /** VM memory (default 1024 MiB, Hyper-V's default startup memory; 64..3584). */
  memoryMiB?: number;
  /** Scripted keystrokes for INT 16h (see bios-misc.ts parseKeys). */
  keys?: string;
  /** IDE attachment of the disk: ide0:0 (default) .. ide1:1. */
  ideSlot?: string;
  /** Trace ring size in events (default 256; debugging aid). */
  traceEvents?: number;
  /**
   * Record the last N basic blocks executed (0 = off, the default). A debugging aid: a block hook costs a JS call
   * per block, several times the run's time.
   */
  traceBlocks?: number;
  /** Receives every trace event as it happens (check --trace; emu/trace-ndjson.ts). */
  traceSink?: TraceSink;
  /**
   * Finish guest copy/fill loops on the host (default true; emu/loop-accel.ts). Off only to check the accelerators
   * against the guest's own code (differential tests) or to debug one: the run is then several times slower.
   */
  accelerate?: boolean;
  /**
   * Count the guest instructions executed (stats.instructions; otherwise -1). A measurement aid for benchmarks: it
   * costs a JS call per translated block executed, several times the run's time.
   */
  countInstructions?: boolean;
  /** Called with the CPU after the run, before it is closed (tests inspect the final guest state). */
  inspect?: (cpu: Cpu) => void;
}

export type Gen1Stage = "image" | "firmware" | "bootloader" | "kernel";

export interface Gen1ChainEntry { stage: string; what: string; evidence: Record<string, unknown> }

export interface Gen1Result {
  reached: Gen1Stage;
  verdict: "fails" | "inconclusive";
  stop: Stop;
  findings: Finding[];
  chain: Gen1ChainEntry[];
  handoff?: Handoff;
  screen: string[];
  serial: string;
  /** instructions: guest instructions with opts.countInstructions, else -1; events = BIOS calls + port accesses. */
  stats: { instructions: number; events: number; wallMs: number; diskReads: number; sectorsRead: number; intCalls: number;
    modeSwitches: number; virtualMs: number };
  readLog: { lba: number; count: number }[];
  /** What the host accelerators did (not part of the verdict document: it depends on nothing the user can act on). */
  accel?: { loops: LoopAccelStats; grubLzma?: GrubLzmaStats; grubInt?: GrubIntStats };
  trace: { events: TraceEvent[]; stages: TraceEvent[]; window?: { at: string; mode: string; lines: DisasmLine[]; registers?: Record<string, string> };
    unknownPorts: Record<string, number>;
    /** The last basic blocks executed (linear address in hex, size in bytes), with opts.traceBlocks only. */
    blocks?: { address: string; size: number }[] };
}

const MAX_READLOG = 4096;
/** Zero bytes at the start of a translation block that mean the CPU ran into empty memory (00 00 = add [bx+si],al). */
const ZERO_RUN = 16;
/** Consecutive returns from the CPU with no stop request, HLT or time-out before giving up (a Unicorn misbehaviour). */
const MAX_UNEXPLAINED_RETURNS = 8;
const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, "0");

export function runGen1(dev: BlockDevice, opts: Gen1Options = {}): Gen1Result {
  const t0 = performance.now();
  const memoryMiB = Math.min(GUEST_RAM_MIB_MAX, Math.max(GUEST_RAM_MIB_MIN, Math.floor(opts.memoryMiB ?? GUEST_RAM_MIB_DEFAULT)));
  const ideSlot = opts.ideSlot ?? "ide0:0";
  if (!/^ide[01]:[01]$/.test(ideSlot)) throw new RangeError(`ideSlot must be ide0:0, ide0:1, ide1:0 or ide1:1, not '${ideSlot}'`);
  const maxEvents = opts.maxEvents ?? (opts.maxInstructions !== undefined ? Math.ceil(opts.maxInstructions / INSTRUCTIONS_PER_EVENT) : GEN1_DEFAULT_MAX_EVENTS);
  const maxWallMs = opts.maxWallMs ?? GEN1_DEFAULT_MAX_WALL_MS;
  const chain: Gen1ChainEntry[] = [];
  const findings: Finding[] = [];
  const bytes = dev.sectorCount * dev.sectorSize;
  const sizeText = `${(bytes / 2 ** 30).toFixed(2)} GiB`;

  const bare = (reached: Gen1Stage, stop: Stop): Gen1Result => ({
    reached, verdict: "fails", stop, findings, chain, screen: Array(25).fill(""), serial: "",
    stats: { instructions: -1, events: 0, wallMs: Math.round(performance.now() - t0), diskReads: 0, sectorsRead: 0, intCalls: 0, modeSwitches: 0, virtualMs: 0 },
    readLog: [], trace: { events: [], stages: [], unknownPorts: {} },
  });
  if (bytes > HYPERV_IDE_MAX_BYTES || dev.sectorSize !== 512) {
    const why = dev.sectorSize !== 512 ? `its logical sector size is ${dev.sectorSize} bytes (IDE needs 512)`
      : `it is larger than the IDE limit of 2040 GiB`;
    findings.push(finding("GEN1_DISK_NOT_ATTACHABLE", { size: sizeText, why }, { bytes, sectorSize: dev.sectorSize }));
    return bare("image", { reason: "disk-not-attachable", detail: why });
  }

  // Hooks reach the machine through these late-bound references (the CPU is created first).
  let bios!: Gen1Bios;
  let m!: Machine;
  let detector!: LinuxHandoffDetector;
  let modeSwitches = 0;
  let budgetHook = () => {};
  let lastPm = false;
  const noteMode = () => {
    const pm = m.protectedMode();
    if (pm !== lastPm) {
      lastPm = pm; modeSwitches++;
      if (modeSwitches <= 4) m.trace.add("mode", pm ? "entered protected mode" : "back in real mode");
    }
  };
  const cpu: Cpu = createCpu(memoryMiB * 2 ** 20, {
    interrupt: (n) => { noteMode(); bios.onInterrupt(n); },
    portIn: (p, s) => { if (detector.kernels.length) detector.checkRealMode(); budgetHook(); return m.portIn(p, s); },
    portOut: (p, s, v) => { if (detector.kernels.length) detector.checkRealMode(); budgetHook(); m.portOut(p, s, v); },
    cpuid: () => {
      if (detector.kernels.length) { detector.checkRealMode(); detector.checkProtectedCpuid(); }
      cpuidLeaf(cpu);
      return true;
    },
    newBlock: (pc, _size, n) => { if (blockInstructions) blockInstructions.set(pc, n); onNewBlock(pc); },
  });
  let onNewBlock = (_pc: number): void => {};
  // opts.countInstructions: instructions per translated block (by start address), summed at each block executed.
  const blockInstructions = opts.countInstructions ? new Map<number, number>() : undefined;
  let instructions = 0;
  try {
    m = new Machine(cpu, memoryMiB * 2 ** 20, Math.min(1_000_000, Math.max(16, opts.traceEvents ?? 256)));
    if (opts.traceSink) m.trace.sink = opts.traceSink;
    const accel = new LoopAccelerator(cpu, m);
    // GRUB i386-pc's core.img decompressor finished on the host (its own LZMA decoder is store-bound: ~0.3 s).
    const grubLzma = opts.accelerate !== false ? installGrubLzmaAccel(cpu, m) : undefined;
    if (blockInstructions) cpu.addBlockHook(0, 0xffffffff, (address) => { instructions += blockInstructions.get(address) ?? 0; });
    const traceBlocks = Math.min(100_000, Math.max(0, Math.floor(opts.traceBlocks ?? 0)));
    if (traceBlocks > 0) {
      m.trace.keepBlocks(traceBlocks);
      cpu.addBlockHook(0, 0xffffffff, (address, size) => m.trace.block(address, size));
    }
    bios = new Gen1Bios(m, { memoryMiB, ideSlot, bootOrder: ["cd", "ide", "nic", "floppy"] });
    for (const s of [int10Services, int13Services, int15Services, miscServices]) bios.register(s);
    bios.keys = parseKeys(opts.keys ?? "");
    // GRUB's BIOS calls made without its real-mode round trip (emu/gen1-grub-int.ts).
    const grubInt = opts.accelerate !== false ? new GrubBiosCalls(cpu, m, bios) : undefined;
    bios.post();
    const disk = bios.attachDisk(dev, ideSlot);
    const readLog: { lba: number; count: number }[] = [];
    let readLogTruncated = false;
    detector = new LinuxHandoffDetector(m, dev, (h) => bios.requestStop({ reason: "handoff",
      detail: `Linux kernel entered via the ${h.protocol === "linux32" ? "32-bit" : "real-mode"} boot protocol`,
      cs: h.entry.cs, ip: h.entry.ip }));
    const budget = () => {
      if (bios.intCalls + m.portAccesses > maxEvents) {
        bios.requestStop({ reason: "budget-instructions", detail: `${maxEvents} BIOS calls and port accesses without a hand-off`,
          cs: cpu.reg("CS"), ip: cpu.reg("EIP") });
      } else if (((bios.intCalls + m.portAccesses) & 63) === 0 && performance.now() - t0 > maxWallMs) {
        bios.requestStop({ reason: "budget-time", detail: `wall-time budget of ${maxWallMs} ms used up`, cs: cpu.reg("CS"), ip: cpu.reg("EIP") });
      }
    };
    budgetHook = budget;
    bios.observers.push(() => { budget(); if (detector.kernels.length) detector.checkRealMode(); });
    detector.armEntryTraps();

    // Every BIOS read: the read log (contiguous runs merged), kernel recognition, stage evidence.
    let grubCoreLba: number | undefined;
    const origRead = dev.read.bind(dev);
    const biosRead = (lba: number, count: number): Uint8Array => {
      const data = origRead(lba, count);
      const last = readLog[readLog.length - 1];
      if (last && last.lba + last.count === lba) last.count += count;
      else if (readLog.length < MAX_READLOG) readLog.push({ lba, count });
      else readLogTruncated = true;
      detector.onDiskRead(lba, data);
      if (grubCoreLba !== undefined && lba <= grubCoreLba && grubCoreLba < lba + count) {
        chain.push({ stage: "bootloader", what: `GRUB core.img (diskboot.img) read from LBA ${grubCoreLba}`,
          evidence: { lba: grubCoreLba, partition: partitionOf(dev, grubCoreLba) ?? "outside any partition (MBR gap or BIOS boot partition)" } });
        grubCoreLba = undefined;
      }
      return data;
    };
    disk.dev = { ...dev, read: biosRead, readBytes: dev.readBytes.bind(dev), close: () => {}, onRead: dev.onRead } as BlockDevice;

    // Boot order: CD (none attached), IDE disk at ideSlot, legacy network adapter (none), floppy (none).
    chain.push({ stage: "firmware", what: "Hyper-V Gen1 BIOS POST (virtual AMI BIOS model)",
      evidence: { memoryMiB, ideSlot, drive: "80h", geometry: disk.geometry, bootOrder: "CD, IDE, legacy network adapter, floppy" } });
    const mbr = readSectors(bios, disk, 0, 1);
    const sig = Buffer.from(mbr).readUInt16LE(510);
    if (sig !== 0xaa55) {
      const signature = Buffer.from(mbr.subarray(510, 512)).toString("hex").replace(/(..)(..)/, "$1 $2").toUpperCase();
      findings.push(finding("GEN1_NO_BOOT_DEVICE", { signature }, { lba: 0 }));
      const text = ["Reboot and Select proper Boot device", "or Insert Boot Media in selected Boot device and press a key"];
      text.forEach((t, i) => m.ram.write(t.split("").map((c) => c + "\x07").join(""), MEM.VGA_TEXT + i * 160, "latin1"));
      chain.push({ stage: "firmware", what: "no bootable device (CD: none, IDE: no 55AA, network: no PXE ROM, floppy: none)", evidence: { signature } });
      return finish("firmware", { reason: "no-boot-device", detail: `sector 0 ends with ${signature}, not 55 AA; no other boot device` });
    }
    cpu.write(MEM.BOOT, mbr);
    const id: BootCodeId = identifyBootCode(mbr, "mbr");
    chain.push({ stage: "bootloader", what: `MBR boot code: ${id.name}`, evidence: { kind: id.kind, sha256: id.sha256, ...id.details } });
    if (id.kind === "grub-boot.img" && typeof id.details?.coreLba === "number") grubCoreLba = id.details.coreLba as number;
    if (id.kind === "empty") {
      const gpt = id.details?.protectiveGpt ? " (a GPT protective MBR: the disk is partitioned for UEFI)" : "";
      findings.push(finding("GEN1_EMPTY_BOOT_CODE", { what: id.name, gpt }, { sha256: id.sha256 }));
      return finish("bootloader", { reason: "halted", detail: `the MBR code area is empty (${id.name}): nothing to run`, cs: 0, ip: MEM.BOOT });
    }
    // Later arrivals at 0000:7C00 are chainloaded boot records (VBR, SYSLINUX, NTLDR...): identify each.
    let bootHits = 0;
    cpu.addCodeHook(MEM.BOOT, MEM.BOOT, () => {
      if (++bootHits === 1 || bootHits > 8) return;
      const sec = m.ram.subarray(MEM.BOOT, MEM.BOOT + 512);
      const vid = identifyBootCode(sec, "vbr");
      const from = readLog.length ? lbaOfSector(sec) : undefined;
      chain.push({ stage: "bootloader", what: `boot record at 0000:7C00: ${vid.name}`,
        evidence: { kind: vid.kind, sha256: vid.sha256, ...(from !== undefined ? { lba: from, partition: partitionOf(dev, from) } : {}) } });
      m.trace.add("stage", `chainloaded boot record: ${vid.name}`);
    });
    const lbaOfSector = (sec: Uint8Array): number | undefined => {
      for (const r of readLog) {
        if (r.count > 64) continue;
        for (let i = 0; i < r.count; i++) {
          if (Buffer.from(origRead(r.lba + i, 1)).equals(Buffer.from(sec))) return r.lba + i;
        }
      }
      return undefined;
    };

    // Register state at the jump to the boot sector (as SeaBIOS/AMI leave it).
    for (const r of ["EAX", "EBX", "ECX", "ESI", "EDI", "EBP"] as const) cpu.setReg(r, 0);
    cpu.setReg("EDX", disk.drive);
    for (const r of ["DS", "ES", "FS", "GS", "SS"] as const) cpu.setReg(r, 0);
    cpu.setReg("ESP", MEM.BOOT);
    cpu.setReg("EFLAGS", 0x202);
    cpu.setReg("CS", 0);
    cpu.setReg("EIP", MEM.BOOT);
    m.trace.add("stage", "jump to the boot sector at 0000:7C00", { drive: "80h" });

    // ---- run loop ----
    // The guest runs without an instruction count (a counted run costs Unicorn a hook call on every instruction).
    // A run ends on a hook's stop request (every BIOS call and port access checks the budgets), a HLT, an emulation
    // error, or the wall-time budget (uc_emu_start's timeout). Stops requested from hooks leave an exact state; a
    // time-out does not (Unicorn leaves a translated block half done), so it always ends the emulation. Each newly
    // translated block is inspected before it first runs (Cpu newBlock): a jump to itself is an idle loop nothing
    // can end, a block of zero bytes means the boot code jumped into empty memory, and copy loops (loop-accel.ts) and
    // GRUB's BIOS-call function (gen1-grub-int.ts) found there get a host trap after an exact stop. The virtual clock advances only with guest events (BIOS calls,
    // port accesses, waits, idle polls, halts) and host-finished loops leave exactly the state the guest's loop
    // would, so runs are deterministic.
    let stop: Stop | undefined;
    const here = (): { cs: number; ip: number } => ({ cs: cpu.reg("CS"), ip: cpu.reg("EIP") });
    const at = (pc: number): { cs: number; ip: number } => {
      const cs = cpu.reg("CS");
      return { cs, ip: (pc - m.segBase(cs)) >>> 0 };
    };
    onNewBlock = (pc) => {
      const b0 = m.u8(pc), b1 = m.u8(pc + 1);
      // jmp rel8 -2, or jmp rel16/rel32 to itself (the operand size of the code segment; read only for an E9).
      const selfJump = (b0 === 0xeb && b1 === 0xfe) || (b0 === 0xe9 && (m.code32() ? m.u32(pc + 1) === 0xfffffffb : m.u16(pc + 1) === 0xfffd));
      if (selfJump) {
        // No interrupt is delivered while the guest runs (only at HLT): a jump to itself never ends.
        bios.requestStop({ reason: "halted", detail: `idle loop: a jump to itself with interrupts ${cpu.reg("EFLAGS") & 0x200 ? "on" : "off"}`, ...at(pc) });
        return;
      }
      if (b0 === 0 && pc + ZERO_RUN <= m.ram.length && m.ram.subarray(pc, pc + ZERO_RUN).every((x) => x === 0)) {
        const where = at(pc);
        bios.requestStop({ reason: "cpu-exception", ...where,
          detail: `the boot code jumped into empty memory at ${hex4(where.cs)}:${hex4(where.ip)} (zero bytes: nothing was loaded there)` });
        return;
      }
      if (opts.accelerate !== false && !grubInt?.onBlock(pc)) accel.onBlock(pc);
    };
    let unexplained = 0;
    while (!stop) {
      const leftMs = maxWallMs - (performance.now() - t0);
      if (leftMs <= 0) {
        stop = { reason: "budget-time", detail: `wall-time budget of ${maxWallMs} ms used up`, ...here() };
        break;
      }
      const r = cpu.run(0, Math.max(1000, Math.round(leftMs * 1000)));
      if (cpu.hookError) { stop = { reason: "internal-error", detail: `a BIOS hook failed: ${cpu.hookError.message}`, ...here() }; break; }
      if (bios.stop) { stop = bios.stop; break; }
      if (r.err !== 0) { stop = { reason: "cpu-exception", detail: `emulation error: ${r.errText}`, ...here() }; break; }
      if (cpu.timedOut()) {
        stop = { reason: "budget-time", detail: `wall-time budget of ${maxWallMs} ms used up in code making no BIOS calls`, ...here() };
        break;
      }
      noteMode();
      if (m.resetRequested) { stop = { reason: "int19-return", detail: `the guest reset the machine: ${m.resetRequested}`, ...here() }; break; }
      const trapped = accel.applyPending(), grubTrapped = grubInt?.applyPending() ?? false;
      if (trapped || grubTrapped) { unexplained = 0; continue; }
      if (m.u8(m.pcLinear() - 1) !== 0xf4) {
        if (++unexplained > MAX_UNEXPLAINED_RETURNS) {
          stop = { reason: "internal-error", detail: "the CPU emulator kept returning without a stop request, HLT or time-out", ...here() };
        }
        continue;
      }
      unexplained = 0;
      // HLT. With interrupts off nothing wakes the CPU; with them on (real mode), let one timer tick pass and run
      // the guest's timer hook if it installed one.
      if (!(cpu.reg("EFLAGS") & 0x200) || m.protectedMode()) {
        stop = { reason: "halted", detail: `HLT with interrupts ${cpu.reg("EFLAGS") & 0x200 ? "on in protected mode (no interrupt source is modelled)" : "disabled"}`, ...here() };
        break;
      }
      m.clock.advance(NS_IDLE_SKIP);
      bios.syncTicks();
      for (const v of [0x08, 0x1c]) {
        if (m.u32(v * 4) >>> 16 !== MEM.BIOS_SEG) { bios.deliver(v, cpu.reg("CS"), cpu.reg("IP")); break; }
      }
      if (m.clock.now - bios.lastProgressNs > KEY_WAIT_GIVE_UP_NS) {
        stop = { reason: "halted", detail: `idle: HLT with interrupts on and no activity for ${KEY_WAIT_GIVE_UP_NS / 1e9} virtual seconds`, ...here() };
      }
    }
    return finish(detector.handoff ? "kernel" : "bootloader", stop);

    function finish(reached: Gen1Stage, s: Stop): Gen1Result {
      const screen = screenLines(bios);
      const h = detector?.handoff;
      const inconclusive = s.reason === "handoff" || s.reason.startsWith("budget") || s.reason === "internal-error";
      if (reached === "bootloader" || reached === "kernel") classify(s, screen, h);
      for (const f of bios.findings) findings.push(f);
      if (h) chain.push({ stage: "kernel", what: `Linux ${h.kernelVersion ?? "(version unknown)"} entered (${h.protocol})`,
        evidence: { cmdline: h.cmdline, initrd: h.initrd, loader: h.loaderType, kernelLoadedFrom: h.kernelLoadedFrom,
          kernelPartition: h.kernelLoadedFrom ? partitionOf(dev, h.kernelLoadedFrom.lba) : undefined, initrdLoadedFrom: h.initrdLoadedFrom } });
      if (readLogTruncated) m.trace.add("note", `read log truncated at ${MAX_READLOG} extents`);
      return {
        reached, verdict: inconclusive ? "inconclusive" : "fails", stop: s, findings, chain,
        ...(h ? { handoff: h } : {}),
        screen, serial: Buffer.from(m.serial).toString("latin1"),
        stats: { instructions: blockInstructions ? instructions : -1, events: bios.intCalls + m.portAccesses, wallMs: Math.round(performance.now() - t0), diskReads: bios.diskReads, sectorsRead: bios.sectorsRead,
          intCalls: bios.intCalls, modeSwitches, virtualMs: Math.round(m.clock.now / 1e6) },
        readLog,
        accel: { loops: accel.stats, ...(grubLzma ? { grubLzma: grubLzma.stats } : {}), ...(grubInt ? { grubInt: grubInt.stats } : {}) },
        trace: { events: m.trace.lastEvents(), stages: m.trace.stageEvents(), window: stopWindow(s), unknownPorts: m.unknownPortCounts(),
          ...(traceBlocks > 0 ? { blocks: m.trace.lastBlocks().map((b) => ({ address: b.address.toString(16).padStart(5, "0"), size: b.size })) } : {}) },
      };
    }

    function stopWindow(s: Stop): Gen1Result["trace"]["window"] {
      if (s.cs === undefined || s.ip === undefined) return undefined;
      const pm = m.protectedMode();
      let at = (m.segBase(s.cs) + s.ip) >>> 0;
      if (s.reason.startsWith("int1") || s.reason === "waiting-for-key") at -= 2;          // show the INT itself
      if (s.reason === "halted" && m.u8(at - 1) === 0xf4) at -= 1;
      if (at < 0 || at + 48 > m.ram.length) return undefined;
      const registers: Record<string, string> = {};
      for (const r of ["EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP", "EIP", "EFLAGS", "CS", "DS", "ES", "SS", "FS", "GS", "CR0"] as const) {
        registers[r] = (cpu.reg(r) >>> 0).toString(16).padStart(r.length === 2 ? 4 : 8, "0");
      }
      return { at: at.toString(16), mode: pm ? "protected" : "real", lines: disassemble(m.ram.subarray(at, at + 48), at, pm ? 32 : 16, 12), registers };
    }

    function classify(s: Stop, screen: string[], h: Handoff | undefined): void {
      const text = screen.filter((l) => l.trim()).join("\n");
      const tail = text ? `; screen: ${JSON.stringify(text.slice(-400))}` : "";
      const ev = { screen: screen.filter((l) => l.trim()), stop: s };
      const grubErrors = [...new Set(screen.map((l) => l.trim()).filter((l) => l.startsWith("error: ")))];
      for (const e of grubErrors.slice(0, 4)) findings.push(finding("GEN1_GRUB_ERROR", { error: e.slice(7) }, { line: e }));
      if (screen.some((l) => l.includes("grub rescue>"))) findings.push(finding("GEN1_GRUB_RESCUE", {}, ev));
      for (const msg of failureMessages(text)) findings.push(finding("GEN1_BOOT_MESSAGE", { message: msg }, { line: msg }));
      switch (s.reason) {
        case "handoff":
          if (h) findings.push(finding("GEN1_LINUX_HANDOFF", { loader: h.loaderType?.split(" ")[0] ?? "boot loader",
            version: h.kernelVersion?.split(" ")[0] ?? "(unknown version)", protocol: h.protocol, cmdline: h.cmdline ?? "(none)" }, { handoff: h }));
          break;
        case "int18-return": case "int19-return":
          findings.push(finding("GEN1_BOOT_CODE_GAVE_UP", { how: s.reason === "int18-return" ? "called INT 18h (boot failure)" : s.detail, text: tail }, ev));
          break;
        case "halted":
          if (!findings.some((f) => f.code === "GEN1_EMPTY_BOOT_CODE")) findings.push(finding("GEN1_HALTED", { detail: s.detail, text: tail }, ev));
          break;
        case "waiting-for-key": {
          const prompt = screen.map((l) => l.trim()).filter(Boolean).pop() ?? "(blank screen)";
          findings.push(finding("GEN1_WAITING_FOR_KEY", { prompt }, ev));
          break;
        }
        case "cpu-exception": case "triple-fault":
          findings.push(finding("GEN1_CPU_EXCEPTION", { detail: s.detail }, ev));
          break;
        case "budget-instructions": case "budget-time":
          findings.push(finding("GEN1_BUDGET_EXHAUSTED", { detail: s.detail }, ev));
          break;
        default: break;
      }
    }
  } catch (e) {
    if (!m || !bios) throw e;
    const err = e as Error;
    return {
      ...bare("bootloader", { reason: "internal-error", detail: `${err.name}: ${err.message}` }),
      verdict: "inconclusive", screen: screenLines(bios),
    };
  } finally {
    opts.inspect?.(cpu);
    cpu.close();
  }
}
