// Hyper-V Generation 2 boot run: power-on of the synthetic UEFI (firmware-stubs/gen2-firmware.ts) in a 64-bit
// Unicorn engine, the boot manager's choice of loader, the image's own UEFI applications (shim, GRUB, the kernel's
// EFI stub) running to ExitBootServices or a dead end, resets with the NVRAM kept. Public entry point: runGen2().
import { performance } from "node:perf_hooks";
import type { BlockDevice } from "../images/block.ts";
import type { Layout } from "../images/layout.ts";
import { finding, type Finding } from "./findings.ts";
import "./gen2-findings.ts";
import { createCpu, type Cpu } from "./cpu.ts";
import { VirtualClock } from "./clock.ts";
import { Trace, type TraceEvent, type TraceSink } from "./trace.ts";
import type { Stop, StopReason } from "./stop.ts";
import type { Handoff } from "./linux-handoff.ts";
import { disassemble, type DisasmLine } from "./disasm.ts";
import { KernelTracker, linuxHandoff, ENTRY64_TRAPS, bootParamsAt } from "./gen2-handoff.ts";
import { Gen2Firmware } from "../firmware-stubs/gen2-firmware.ts";
import type { LoadedImageInfo } from "../firmware-stubs/uefi-image.ts";
import { parseEfiKeys } from "../firmware-stubs/uefi-console.ts";
import type { Measurement } from "../firmware-stubs/uefi-tpm.ts";
import { VariableStore } from "../firmware-stubs/uefi-nvram.ts";
import { secureBootTemplate, verifyImage, secureBootFinding, type SecureBootMode, type SbVerdict } from "../firmware-stubs/secureboot.ts";
import { prepareNvram } from "./gen2-nvram.ts";
import { classifyGen2 } from "./gen2-classify.ts";
import { cpuidLeaf } from "./gen1-cpuid.ts";
import { Machine } from "./machine.ts";
import { GEN2_DEFAULT_MAX_EVENTS, GEN2_DEFAULT_MAX_WALL_MS, GEN2_MAX_RESETS, GEN2_RAM_MIB_MAX, GEN2_RAM_MIB_MIN, GUEST_RAM_MIB_DEFAULT } from "../images/limits.ts";
import { MemmoveAccelerator } from "./loop-accel64.ts";
import { ShaAccelerator } from "./sha-accel64.ts";

export interface Gen2Options {
  /** Firmware calls budget (default 5 000 000). */
  maxEvents?: number;
  /** Host wall-time budget in ms (default 60 000). */
  maxWallMs?: number;
  /** VM memory (default 1024 MiB; 256..16384). */
  memoryMiB?: number;
  secureBoot?: SecureBootMode;
  /** A virtual TPM (default: on with Trusted Launch, off otherwise, as Hyper-V creates VMs). */
  vtpm?: boolean;
  controller?: "scsi" | "nvme";
  keys?: string;
  /** NVRAM contents to start from (default: empty, like a new VM). */
  nvram?: VariableStore;
  traceEvents?: number;
  /** Receives every trace event as it happens (check --trace). */
  traceSink?: TraceSink;
  /** Power-ons allowed after ResetSystem (default 3). */
  maxResets?: number;
}

export type Gen2Stage = "image" | "firmware" | "bootloader" | "kernel";

export interface Gen2ChainEntry { stage: string; what: string; evidence: Record<string, unknown> }

export interface Gen2Image { file: string; source: string; sha256: string; size: number; linux: boolean; started: boolean; secureBoot?: Pick<SbVerdict, "allowed" | "reason" | "signers" | "trustedBy" | "acceptedBy"> }

export interface Gen2Result {
  reached: Gen2Stage;
  verdict: "fails" | "inconclusive";
  stop: Stop;
  findings: Finding[];
  chain: Gen2ChainEntry[];
  handoff?: Handoff;
  screen: string[];
  /** Everything the firmware and loaders printed, in order (form feeds mark cleared screens). */
  transcript: string;
  stats: { instructions: number; events: number; wallMs: number; diskReads: number; sectorsRead: number; efiCalls: number;
    resets: number; virtualMs: number };
  readLog: { lba: number; count: number }[];
  images: Gen2Image[];
  filesRead: { volume: number; path: string; bytes: number }[];
  nvramWrites: { name: string; guid: string; attributes: number; bytes: number; status: string }[];
  secureBoot: { mode: SecureBootMode; template: string };
  /** The virtual TPM's SHA-256 PCRs and measurements of the last power-on (with a vTPM). */
  tpm?: { pcrs: Record<string, string>; measurements: number; log: Measurement[] };
  trace: { events: TraceEvent[]; stages: TraceEvent[]; window?: { at: string; mode: string; lines: DisasmLine[] }; unsupported: Record<string, number> };
}

export function runGen2(dev: BlockDevice, layout: Layout, opts: Gen2Options = {}): Gen2Result {
  const t0 = performance.now();
  const memoryMiB = Math.min(GEN2_RAM_MIB_MAX, Math.max(GEN2_RAM_MIB_MIN, Math.floor(opts.memoryMiB ?? GUEST_RAM_MIB_DEFAULT)));
  const maxEvents = opts.maxEvents ?? GEN2_DEFAULT_MAX_EVENTS;
  const maxWallMs = opts.maxWallMs ?? GEN2_DEFAULT_MAX_WALL_MS;
  const maxResets = opts.maxResets ?? GEN2_MAX_RESETS;
  const mode: SecureBootMode = opts.secureBoot ?? "off";
  const vtpm = opts.vtpm ?? mode === "trusted-launch";
  const template = secureBootTemplate(mode);
  const clock = new VirtualClock();
  const trace = new Trace(() => clock.now / 1000, Math.min(1_000_000, Math.max(16, opts.traceEvents ?? 256)));
  if (opts.traceSink) trace.sink = opts.traceSink;
  const nvram = opts.nvram ?? new VariableStore();
  prepareNvram(nvram, template);
  const keys = parseEfiKeys(opts.keys ?? "");
  const findings: Finding[] = [];
  const chain: Gen2ChainEntry[] = [{ stage: "firmware", what: "Hyper-V Gen2 UEFI power-on (mu_msvm model)",
    evidence: { memoryMiB, controller: opts.controller ?? "scsi", secureBoot: template.name, keySource: template.source, vtpm } }];
  const tracker = new KernelTracker(dev);
  const images: Gen2Image[] = [];
  const verdicts = new Map<string, SbVerdict>();
  let resets = 0;
  let efiCalls = 0, diskReads = 0, sectorsRead = 0;
  const readLog: { lba: number; count: number }[] = [];
  const filesRead: Gen2Result["filesRead"] = [];
  let lastDenial: { dbx: boolean } | undefined;

  for (;;) {
    let fw!: Gen2Firmware;
    let handoff: Handoff | undefined;
    let ebsCaller: LoadedImageInfo | undefined;
    let ebsReturn = 0;
    let ebsDone = false;
    let entry64: { address: number; bootParams: number } | undefined;
    let kernelCpuid = 0;
    let pollRun = 0;
    /** The kernel's EFI stub took control: started as an image, or entered by the EFI handover protocol. */
    let linuxImage: LoadedImageInfo | undefined;
    let stubCaller = 0;
    const cpu: Cpu = createCpu(memoryMiB * 2 ** 20, {
      interrupt: (n) => fw.core.requestStop("cpu-exception", `CPU exception ${n} (${EXC[n] ?? "interrupt"}) at ${cpu.reg64("RIP").toString(16)}`),
      cpuid: () => {
        cpuidLeaf(cpu, { tsc: true });
        // After ExitBootServices the first CPUID is the kernel's own (startup_64 checks SEV and 5-level paging
        // within its first instructions): the loader has jumped to the kernel, boot_params are in place.
        if (ebsDone && !kernelCpuid) { kernelCpuid = Number(cpu.reg64("RIP")); cpu.stop(); }
        return true;
      },
      // The legacy PIT and port 61h (GRUB calibrates its TSC with them), CMOS, serial: Gen1's port models.
      portIn: (p, s) => {
        // A loader spinning on port 61h waits for the PIT (GRUB calibrates its TSC against a 55 ms PIT count): after a
        // few polls in a row let each one stand for 50 us of virtual time. Deterministic; the wait ends sooner.
        if (p === 0x61 && ++pollRun > 16) clock.advance(50_000);
        return ports.portIn(p, s);
      },
      portOut: (p, s, v) => { pollRun = 0; ports.portOut(p, s, v); },
    }, "long");
    const ports = new Machine(cpu, memoryMiB * 2 ** 20, 16, { clock, trace });
    const accel = new MemmoveAccelerator(cpu);
    const sha = process.env.BOOTGATE_NO_SHA_ACCEL === "1" ? undefined : new ShaAccelerator(cpu);   // shim's SHA-256 / SHA-1
    for (const a of ENTRY64_TRAPS) {
      cpu.addCodeHook(a, a, (addr) => {
        const rsi = Number(cpu.reg64("RSI") & 0xffffffffn);
        if (!ebsDone || entry64 || !bootParamsAt(cpu.ram, rsi)) return;
        entry64 = { address: addr, bootParams: rsi };
        trace.add("stage", `Linux 64-bit entry at ${addr.toString(16)} with boot_params at ${rsi.toString(16)}`);
        cpu.stop();
      });
    }
    try {
      fw = new Gen2Firmware(cpu, {
        dev, layout, controller: opts.controller ?? "scsi", memoryBytes: memoryMiB * 2 ** 20, nvram, keys, clock, trace, vtpm,
        policy: {
          verify: ({ bytes, filePath, source }) => {
            const v = verifyImage(bytes, template);
            const file = filePath ?? source;
            verdicts.set(file, v);
            lastDenial = v.allowed ? undefined : { dbx: v.reason === "hash-in-dbx" || v.reason === "cert-in-dbx" };
            if (!v.allowed) {
              const f = secureBootFinding(v, template, file);
              if (f && !findings.some((x) => x.code === f.code && x.evidence.file === file)) findings.push(f);
            }
            return { allowed: v.allowed, status: v.allowed ? "SUCCESS" : v.reason === "hash-in-dbx" || v.reason === "cert-in-dbx" ? "ACCESS_DENIED" : "SECURITY_VIOLATION" };
          },
          lastDenial: () => lastDenial,
        },
        onExitBootServices: (c) => {
          ebsDone = true;
          ebsReturn = c.returnAddress;
          ebsCaller = fw.images.imageAt(ebsReturn);
          fw.core.requestStop("handoff", `ExitBootServices called from ${ebsCaller?.filePath ?? `code at ${ebsReturn.toString(16)}`}`);
        },
        onImageStart: (img) => {
          chain.push({ stage: "bootloader", what: `started ${img.filePath ?? img.source}${img.linux ? " (Linux kernel, EFI stub)" : ""}`,
            evidence: { sha256: img.sha256, source: img.source, base: img.base.toString(16), size: img.size, loadOptions: img.loadOptions } });
          if (img.linux) {
            linuxImage = img;
            fw.core.requestStop("handoff", `StartImage of the Linux kernel ${img.filePath ?? img.source}: its EFI stub takes over`);
          }
        },
      });
      fw.storage.onRead.push((lba, data) => tracker.onRead(lba, data));
      fw.core.onCall = ((prev) => (name: string) => {
        prev(name);
        const rsp = Number(cpu.reg64("RSP"));
        if (rsp + 8 <= cpu.ram.length) {
          const caller = Number(cpu.ram.readBigUInt64LE(rsp));
          const region = () => {
            const img = fw.images.imageAt(caller);
            if (img) return { start: img.base, end: img.base + img.size };
            // Code a loader placed itself (shim loads GRUB with its own PE loader): the allocation holding it.
            const e = caller > 0 && !fw.core.isFirmware(caller) ? fw.mem.rangeOf(caller) : undefined;
            return e && e.type !== 7 ? { start: e.start, end: e.start + e.pages * 4096 } : undefined;
          };
          accel.noteCaller(caller, region);
          // The kernel's EFI stub calling the firmware from where a loader put the kernel (GRUB's linuxefi jumps to
          // the handover entry): the allocation starts with the protected-mode code of a kernel read from disk.
          if (!stubCaller && tracker.kernels.length && caller > 0 && !fw.core.isFirmware(caller) && !fw.images.imageAt(caller)) {
            const e = fw.mem.rangeOf(caller);
            if (e && e.type !== 7 && tracker.kernels.some((k) => k.pmHead?.length === 16 && cpu.ram.subarray(e.start, e.start + 16).equals(k.pmHead))) {
              stubCaller = caller;
              fw.core.requestStop("handoff", `the Linux kernel's EFI stub (loaded at ${e.start.toString(16)}) took control through the EFI handover protocol`);
            }
          }
          sha?.noteCaller(caller, region);
        }
        if (fw.core.calls > maxEvents) fw.core.requestStop("budget-instructions", `${maxEvents} firmware calls without a hand-off`);
        else if ((fw.core.calls & 255) === 0 && performance.now() - t0 > maxWallMs) fw.core.requestStop("budget-time", `wall-time budget of ${maxWallMs} ms used up`);
      })(fw.core.onCall);
      cpu.setReg64("RSP", BigInt(fw.stackTop - 8));
      cpu.setReg64("RIP", BigInt(fw.entry));
      const remainingUs = Math.max(1000, Math.round((maxWallMs - (performance.now() - t0)) * 1000));
      const r = cpu.run(0, remainingUs);
      if (process.env.BOOTGATE_DEBUG_GEN2) console.error(`gen2: run ended after ${Math.round(performance.now() - t0)} ms, ${fw.core.calls} calls, ${ports.portAccesses} port accesses, accel ${JSON.stringify(accel.stats)}, sha ${JSON.stringify(sha?.stats)}`);
      const core = fw.core;
      efiCalls += core.calls;
      diskReads += fw.storage.reads;
      sectorsRead += fw.storage.sectorsRead;
      for (const x of fw.storage.readLog) if (readLog.length < 4096) readLog.push(x);
      filesRead.push(...fw.sfs.readLog.slice(0, 1024 - filesRead.length));
      for (const img of fw.images.loadOrder) {
        const file = img.filePath ?? img.source;
        const v = verdicts.get(file);
        images.push({ file, source: img.source, sha256: img.sha256, size: img.bytes.length, linux: img.linux, started: img.started,
          ...(v ? { secureBoot: { allowed: v.allowed, reason: v.reason, signers: v.signers, trustedBy: v.trustedBy, acceptedBy: v.acceptedBy } } : {}) });
      }
      let stop: Stop;
      const rip = Number(cpu.reg64("RIP"));
      if (cpu.hookError) stop = { reason: "internal-error", detail: `a firmware service failed: ${cpu.hookError.message}`, ip: rip };
      else if (core.stopRequest) stop = { reason: core.stopRequest.reason as StopReason, detail: core.stopRequest.detail, ip: rip };
      else if (r.err !== 0) stop = { reason: "cpu-exception", detail: `emulation error: ${r.errText} at ${rip.toString(16)}`, ip: rip };
      else if (cpu.ram[rip - 1] === 0xf4) stop = { reason: "halted", detail: "HLT (no interrupt source is modelled in the UEFI environment)", ip: rip };
      else stop = { reason: "budget-time", detail: `wall-time budget of ${maxWallMs} ms used up`, ip: rip };

      if (stop.reason === ("reset" as StopReason)) {
        const who = fw.images.imageAt(Number(cpu.reg64("RIP"))) ?? [...fw.images.loadOrder].reverse().find((i) => i.started);
        const changed = nvram.writes.filter((w) => w.status === "SUCCESS").map((w) => w.name);
        findings.push(finding("GEN2_RESET", { image: who?.filePath ?? "the loader", type: fw.rt.reset?.type ?? "reset",
          vars: changed.length ? [...new Set(changed)].slice(0, 8).join(", ") : "no variables" }, { nvramWrites: nvram.writes.slice(-16) }));
        chain.push({ stage: "firmware", what: `reset by ${who?.filePath ?? "the loader"}; power-on again with the NVRAM it wrote`, evidence: { resets: resets + 1 } });
        if (++resets > maxResets) {
          findings.push(finding("GEN2_TOO_MANY_RESETS", { count: resets }));
          return finish(fw, cpu, { reason: "halted", detail: `${resets} resets without reaching an OS` }, undefined);
        }
        nvram.reset();
        prepareNvram(nvram, template);   // volatile platform variables (SecureBoot, SetupMode...) come back at power-on
        continue;
      }
      if (stop.reason === "handoff" && ebsDone && !ebsCaller?.linux) {
        // A loader that exited boot services itself jumps to the kernel next: follow it to the 64-bit entry trap
        // (resuming after a stop requested from a hook is exact), for at most a second.
        core.stopRequest = undefined;
        const r2 = cpu.run(0, 1_000_000);
        if (!entry64 && kernelCpuid) {
          // boot_params: the kernel keeps the pointer (RSI at entry) in a register or on its stack.
          const regs = (["RSI", "RDI", "RBX", "RBP", "R12", "R13", "R14", "R15"] as const).map((r) => Number(cpu.reg64(r) & 0xffffffffn));
          const rsp = Number(cpu.reg64("RSP") & 0xffffffffn);
          const stack = rsp > 0 && rsp + 512 <= cpu.ram.length ? Array.from({ length: 64 }, (_, i) => Number(cpu.ram.readBigUInt64LE(rsp + 8 * i) & 0xffffffffn)) : [];
          const bp = [...regs, ...stack].find((v) => bootParamsAt(cpu.ram, v));
          if (bp !== undefined) entry64 = { address: kernelCpuid, bootParams: bp };
        }
        if (!entry64) trace.add("note", `no kernel entry within a second after ExitBootServices (${r2.errText || "stopped"} at ${cpu.reg64("RIP").toString(16)})`);
        core.stopRequest = { reason: "handoff", detail: entry64 ? `ExitBootServices by ${ebsCaller?.filePath ?? "the loader"}, then the Linux kernel running at ${entry64.address.toString(16)}`
          : stop.detail };
        stop = { ...stop, detail: core.stopRequest.detail };
      }
      if (stop.reason === "handoff") {
        // Where a loader may have put boot_params: memory allocated by the guest (not free, not the firmware's own).
        const ranges = fw.mem.entries().filter((e) => e.type !== 7 && !fw.core.isFirmware(e.start) && e.start >= 0x100000);
        handoff = linuxImage ? linuxHandoff(cpu.ram, ranges, tracker, linuxImage, linuxImage.entry)
          : stubCaller ? linuxHandoff(cpu.ram, ranges, tracker, undefined, stubCaller)
            : linuxHandoff(cpu.ram, ranges, tracker, ebsCaller, ebsReturn, entry64);
        if (!handoff) trace.add("note", `ExitBootServices by ${ebsCaller?.filePath ?? "unknown code"}: no Linux boot_params in ${ranges.length} allocated ranges`);
      }
      return finish(fw, cpu, stop, handoff);
    } catch (e) {
      if (!fw) throw e;
      const err = e as Error;
      return finish(fw, cpu, { reason: "internal-error", detail: `${err.name}: ${err.message}` }, undefined);
    } finally {
      cpu.close();
    }
  }

  function finish(fw: Gen2Firmware, cpu: Cpu, stop: Stop, handoff: Handoff | undefined): Gen2Result {
    const screen = fw.console.lines();
    const { reached, verdict } = classifyGen2({ fw, stop, handoff, findings, chain, screen, layout, verdicts, mode, template, images });
    const unsupported = Object.fromEntries(fw.core.unsupportedCalls);
    return {
      reached, verdict, stop, findings, chain, ...(handoff ? { handoff } : {}), screen, transcript: fw.console.transcript,
      stats: { instructions: -1, events: efiCalls, wallMs: Math.round(performance.now() - t0), diskReads, sectorsRead, efiCalls, resets, virtualMs: Math.round(clock.now / 1e6) },
      readLog, images, filesRead, nvramWrites: nvram.writes.slice(0, 256).map((w) => ({ name: w.name, guid: w.guid, attributes: w.attributes, bytes: w.bytes, status: w.status })),
      secureBoot: { mode, template: template.name },
      ...(fw.tpm ? { tpm: { pcrs: Object.fromEntries([...fw.tpm.pcrs].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v.toString("hex")])),
        measurements: fw.tpm.log.length, log: fw.tpm.log.slice(0, 64) } } : {}),
      trace: { events: trace.lastEvents(), stages: trace.stageEvents(), window: stopWindow(cpu, stop), unsupported },
    };
  }
}

const EXC: Record<number, string> = { 0: "#DE divide error", 1: "#DB", 3: "#BP breakpoint", 6: "#UD invalid opcode", 8: "#DF double fault",
  13: "#GP general protection", 14: "#PF page fault", 17: "#AC", 18: "#MC", 19: "#XM SIMD exception" };

function stopWindow(cpu: Cpu, s: Stop): Gen2Result["trace"]["window"] {
  const at = s.ip;
  if (at === undefined || at < 16 || at + 48 > cpu.ram.length) return undefined;
  const from = s.reason === "halted" ? at - 1 : at;
  return { at: from.toString(16), mode: "long", lines: disassemble(cpu.ram.subarray(from, from + 48), from, 64, 12) };
}
