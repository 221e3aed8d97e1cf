// `bootgate check`: open the image, apply the image-stage rules, then each generation's boot.
import * as fs from "node:fs";
import * as path from "node:path";
import { VariableStore } from "../firmware-stubs/uefi-nvram.ts";
import { openImage } from "../images/registry.ts";
import { ImageError } from "../images/errors.ts";
import { readLayout, type Layout } from "../images/layout.ts";
import { attachFindings, uploadRuleFindings, type Target } from "../images/upload-rules.ts";
import type { BlockDevice } from "../images/block.ts";
import { defineFindings, finding, type Finding } from "./findings.ts";
import "./findings-check.ts";
import { exitCodeFor, type GenerationResult, type ImageSummary, type VerdictDoc } from "./verdict.ts";
import { VERSION } from "./version.ts";
import { runGen1, type Gen1Options, type Gen1Result } from "./gen1.ts";
import { runGen2, type Gen2Options, type Gen2Result } from "./gen2.ts";
import type { Handoff } from "./linux-handoff.ts";
import type { SecureBootMode } from "../firmware-stubs/secureboot.ts";
import { evaluateWindows } from "./os-windows.ts";
import { evaluateLinux } from "./os-linux.ts";

defineFindings([
  {
    code: "GEN1_CONTROLLER_NOT_BOOTABLE", severity: "error", stage: "firmware",
    title: "Generation 1 boots only from a disk on an IDE controller",
    message: "the OS disk is attached to the {controller} controller; the Generation 1 BIOS boots only from IDE, so it finds no boot device ({why})",
    remedy: "attach the OS disk to IDE controller 0 (Hyper-V: `Remove-VMHardDiskDrive` it from the SCSI controller, then `Add-VMHardDiskDrive -VMName <vm> -ControllerType IDE -ControllerNumber 0 -ControllerLocation 0 -Path <disk.vhd>`; Azure does this itself for Generation 1, so choose a size that is not NVMe-only), or deploy the image as Generation 2",
    explain: "A Generation 1 VM's BIOS sees only the emulated IDE controllers (INT 13h over the PIIX4 IDE device). Its SCSI controllers are VMBus devices that need a driver inside the guest, and it has no NVMe: a disk there can be a data disk, never the boot disk. Azure's NVMe-only sizes (the v6 families) run Generation 2 VMs only.",
  },
]);

/** How the OS disk is attached: Gen1 boots only from IDE; Gen2 has SCSI (Hyper-V) and, on Azure v6 sizes, NVMe. */
export type Controller = "ide" | "scsi" | "nvme";
const DEFAULT_CONTROLLER: Record<1 | 2, Controller> = { 1: "ide", 2: "scsi" };

export interface CheckOptions {
  gens: (1 | 2)[];
  target: Target;
  format?: string;
  allowDirs?: string[];
  /** Gen1 emulation options (budgets, memory, scripted keys, IDE slot). */
  gen1?: Gen1Options;
  /** The OS disk's controller (see controllerFor); absent: Gen1 ide, Gen2 scsi. */
  controller?: Controller;
  /** Gen2 emulation options (budgets, memory, NVRAM, keys); Secure Boot comes from `secureBoot`. */
  gen2?: Omit<Gen2Options, "secureBoot" | "controller">;
  /** Gen2 Secure Boot setting; absent: the target's default (secureBootDefault). */
  secureBoot?: SecureBootMode;
  /** A JSON NVRAM file for Gen2 (batch workers load it themselves: a VariableStore does not cross threads). */
  nvramFile?: string;
}

/**
 * The Secure Boot setting a new Gen2 VM gets: Hyper-V's default template is MicrosoftWindows; Azure creates new
 * Gen2 VMs as Trusted Launch (db with both Microsoft CAs).
 */
export function secureBootDefault(target: Target): SecureBootMode {
  return target === "hyperv" ? "windows" : "trusted-launch";
}

/**
 * Why `controller` cannot be asked for with these generations, or undefined. Generation 2 has no IDE controller,
 * so `ide` with only Generation 2 checked is a usage error (with both, ide is Generation 1's).
 */
export function controllerUsageError(gens: (1 | 2)[], controller: Controller | undefined): string | undefined {
  if (controller === "ide" && !gens.includes(1)) {
    return "--controller ide: a Generation 2 VM has no IDE controller; use --controller scsi or nvme, or --gen 1";
  }
  return undefined;
}

/**
 * The controller one generation is checked on. With a single generation the option applies to it (Gen1 on scsi or
 * nvme then fails at the firmware stage). With both, it applies to the generation that can boot from it — ide to
 * Generation 1, scsi and nvme to Generation 2 — and the other keeps its default.
 */
export function controllerFor(gen: 1 | 2, opts: Pick<CheckOptions, "gens" | "controller">): Controller {
  const c = opts.controller;
  if (!c) return DEFAULT_CONTROLLER[gen];
  if (opts.gens.length === 1) return c;
  return (c === "ide") === (gen === 1) ? c : DEFAULT_CONTROLLER[gen];
}

const CONTROLLER_NAME: Record<Controller, string> = { ide: "IDE", scsi: "SCSI", nvme: "NVMe" };

function emptyGen(generation: 1 | 2): GenerationResult {
  return { generation, verdict: "inconclusive", reached: "image", findings: [], chain: [], handoff: null, screen: [], stats: {} };
}

/** What both generations' runs report, as the verdict document carries it. */
function fromRun(r: GenerationResult, g: Gen1Result | Gen2Result): GenerationResult {
  r.verdict = g.verdict;
  r.reached = g.reached;
  r.findings.push(...g.findings);
  r.chain.push(...g.chain);
  r.handoff = g.handoff ? { ...g.handoff } : null;
  r.screen = g.screen;
  r.stop = g.stop;
  r.stats = { ...g.stats };
  if (g.trace.window) r.traceWindow = g.trace.window;
  if ("blocks" in g.trace && g.trace.blocks) r.traceBlocks = g.trace.blocks;
  r.readLog = g.readLog;
  return r;
}

/** Gen2's run adds the UEFI details: images and their Secure Boot verdicts, ESP files, NVRAM writes, vTPM. */
function fromGen2(r: GenerationResult, g: Gen2Result): GenerationResult {
  fromRun(r, g);
  r.uefi = { images: g.images, filesRead: g.filesRead, nvramWrites: g.nvramWrites, transcript: g.transcript, secureBoot: g.secureBoot,
    ...(g.tpm ? { tpm: { pcrs: g.tpm.pcrs, measurements: g.tpm.measurements } } : {}) };
  return r;
}

/** One generation, once the disk is known to open. */
function checkGeneration(dev: BlockDevice, layout: Layout, gen: 1 | 2, opts: CheckOptions): GenerationResult {
  const target = opts.target;
  const controller = controllerFor(gen, opts);
  const r = emptyGen(gen);
  const blocked = attachFindings(dev.info, gen, target);
  r.chain.push({ stage: "image", what: `${dev.info.format}${dev.info.subformat ? " " + dev.info.subformat : ""} disk, ${layout.partitioning} partitioning`,
    evidence: { virtualSize: dev.info.virtualSize, sectorSize: dev.sectorSize, controller } });
  if (blocked.length) {
    r.verdict = "fails";
    r.findings.push(...blocked);
    return r;
  }
  if (gen === 1 && controller !== "ide") {
    // Nothing to emulate: the BIOS never sees the disk.
    r.verdict = "fails";
    r.reached = "firmware";
    r.findings.push(finding("GEN1_CONTROLLER_NOT_BOOTABLE", { controller: CONTROLLER_NAME[controller],
      why: controller === "nvme" ? "a Generation 1 VM has no NVMe controller; Azure's NVMe sizes run Generation 2 only" : "SCSI is a VMBus device the BIOS cannot use" },
    { controller }));
    return r;
  }
  if (gen === 1) {
    const g = runGen1(dev, opts.gen1);
    fromRun(r, g);
    if (g.reached === "kernel" && g.stop.reason === "handoff" && !(g.handoff && applyLinuxStage(r, dev, layout, target, g.handoff, 1, controller))) {
      r.findings.push(finding("ROOT_NOT_EVALUATED", { what: g.handoff ? `Linux ${g.handoff.protocol}` : "kernel" }));
    }
    applyWindowsStage(r, dev, layout, gen, target, controller, g);
    return r;
  }
  const nvram = opts.gen2?.nvram ?? (opts.nvramFile ? VariableStore.fromJSON(JSON.parse(fs.readFileSync(opts.nvramFile, "utf8"))) : undefined);
  const g2 = runGen2(dev, layout, { ...opts.gen2, nvram, controller: controller === "nvme" ? "nvme" : "scsi", secureBoot: opts.secureBoot ?? secureBootDefault(target) });
  fromGen2(r, g2);
  if (g2.reached === "kernel" && g2.stop.reason === "handoff" && g2.handoff && !applyLinuxStage(r, dev, layout, target, g2.handoff, 2, controller)) {
    r.findings.push(finding("ROOT_NOT_EVALUATED", { what: `Linux ${g2.handoff.protocol}` }));
  }
  // Windows: the static OS stage decides once an OS loader took over; a firmware-stage failure stands either way.
  // A loader that ran and stopped short of ExitBootServices may be bootgate's limit with Windows' boot manager: then
  // the static stage cannot make it better than inconclusive.
  applyWindowsStage(r, dev, layout, gen, target, controller, undefined, g2.reached === "kernel" ? undefined
    : g2.reached === "bootloader" ? { verdict: "inconclusive", reached: "bootloader" } : { verdict: g2.verdict, reached: g2.reached });
  return r;
}

/**
 * The Linux OS stage (emu/os-linux.ts) after a clean Gen1 or Gen2 hand-off to a Linux kernel: its verdict replaces the
 * hand-off's "inconclusive". False when the stage cannot evaluate the disk (the caller then says so).
 */
function applyLinuxStage(r: GenerationResult, dev: BlockDevice, layout: Layout, target: Target, handoff: Handoff, generation: 1 | 2, controller: Controller): boolean {
  const os = evaluateLinux({ dev, layout, generation, target, controller, handoff });
  if (!os) return false;
  r.verdict = os.verdict;
  r.reached = os.reached;
  r.findings.push(...os.findings);
  r.chain.push(...os.chain, { stage: os.reached, what: `Linux OS stage: ${os.verdict}`, evidence: os.facts });
  return true;
}

const STAGE_ORDER = ["image", "firmware", "bootloader", "kernel", "root"] as const;
const VERDICT_ORDER = ["boots", "inconclusive", "fails"] as const;
/** Gen1 stop findings that only say the emulator could not follow bootmgr (once the Windows stage accepted the run). */
const EMULATOR_LIMIT_CODES = new Set(["GEN1_HALTED", "GEN1_BUDGET_EXHAUSTED", "GEN1_WAITING_FOR_KEY"]);

/**
 * The Windows OS stage (emu/os-windows.ts) merged into a generation's result; nothing happens on a disk
 * without \Windows\System32. On Gen1 the emulation run is its pre-boot evidence: when the run loaded \bootmgr
 * cleanly, the static verdict decides; otherwise the worse of the two verdicts and the lesser stage stand.
 */
function applyWindowsStage(r: GenerationResult, dev: BlockDevice, layout: Layout, gen: 1 | 2, target: Target, controller: Controller, g?: Gen1Result,
  gen2Failed?: { verdict: GenerationResult["verdict"]; reached: GenerationResult["reached"] }): void {
  const w = evaluateWindows({ dev, layout, generation: gen, target, controller,
    ...(g ? { preboot: { reached: g.reached, stopReason: g.stop.reason, stopDetail: g.stop.detail, chain: g.chain, readLog: g.readLog, screen: g.screen } } : {}) });
  if (!w) return;
  const accepted = (w.facts.preboot as { accepted?: boolean } | undefined)?.accepted === true;
  if ((!g && !gen2Failed) || accepted) {
    if (accepted) r.findings = r.findings.filter((f) => !EMULATOR_LIMIT_CODES.has(f.code));
    r.verdict = w.verdict;
    r.reached = w.reached;
  } else {
    if (gen2Failed && r.reached === "bootloader") { r.verdict = gen2Failed.verdict; r.reached = w.reached; }
    r.verdict = VERDICT_ORDER[Math.max(VERDICT_ORDER.indexOf(r.verdict), VERDICT_ORDER.indexOf(w.verdict))];
    r.reached = STAGE_ORDER[Math.min(STAGE_ORDER.indexOf(r.reached), STAGE_ORDER.indexOf(w.reached))];
  }
  r.findings.push(...w.findings);
  r.chain.push(...w.chain, { stage: "root", what: `Windows OS stage: ${w.verdict}`, evidence: w.facts });
}

/**
 * Check one image file. Throws ImageError only for files that cannot be read at all (kind "io"
 * or "usage"); a container that is corrupt yields a document whose generations fail at "image".
 */
export function checkImage(file: string, opts: CheckOptions): VerdictDoc {
  const misuse = controllerUsageError(opts.gens, opts.controller);
  if (misuse) throw new ImageError("CHECK_CONTROLLER", "usage", misuse);
  const image: ImageSummary = { path: file, format: "unknown", subformat: null, fileSize: 0, virtualSize: 0, sectorSize: 512, partitioning: "unknown" };
  const imageFindings: Finding[] = [];
  let gens: GenerationResult[];
  let dev: BlockDevice | undefined;
  try {
    dev = openImage(file, { format: opts.format, allowDirs: opts.allowDirs });
  } catch (e) {
    if (!(e instanceof ImageError) || e.kind === "io" || e.kind === "usage") throw e;
    const f = finding("CONTAINER_UNREADABLE", { message: e.message, path: path.basename(file) }, { errorCode: e.code, kind: e.kind });
    gens = opts.gens.map((g) => ({ ...emptyGen(g), verdict: "fails" as const, findings: [f] }));
    imageFindings.push(f);
    return { schema: "bootgate.verdict/1", tool: { name: "bootgate", version: VERSION }, target: opts.target, image, imageFindings, generations: gens, exitCode: exitCodeFor(imageFindings, gens) };
  }
  try {
    const info = dev.info;
    const layout = readLayout(dev);
    Object.assign(image, { format: info.format, subformat: info.subformat ?? null, fileSize: info.fileSize,
      virtualSize: info.virtualSize, sectorSize: info.sectorSize, partitioning: layout.partitioning });
    imageFindings.push(...info.findings, ...layout.findings, ...uploadRuleFindings(info, opts.target));
    gens = opts.gens.map((g) => checkGeneration(dev!, layout, g, opts));
  } finally {
    dev.close();
  }
  return { schema: "bootgate.verdict/1", tool: { name: "bootgate", version: VERSION }, target: opts.target, image, imageFindings, generations: gens, exitCode: exitCodeFor(imageFindings, gens) };
}
