// The Windows OS stage (issue 4; shared/HYPERV.md rows "STOP 0x7B" and "winload 0xc000000e"): from a disk image,
// statically decide whether Windows would find its boot disk on the target Hyper-V generation — boot volume
// (BIOS active partition with \bootmgr + \Boot\BCD, or UEFI ESP), BCD device/osdevice vs the disk, the SYSTEM
// hive's boot-start storage drivers and their .sys files, MountedDevices, and the SOFTWARE hive's version.
//
// Verdict rule (decided here, documented in WIN_PREBOOT_NOT_VERIFIED): bootmgr, winload and the kernel are never
// executed, so `boots` needs, besides every static fact being good, evidence that the pre-OS path gets to bootmgr:
// on Generation 1 the emulated run (runGen1) must have executed the NTFS boot record of the boot volume and read
// every sector of \bootmgr, must not show a boot error on screen, and must have stopped only for a reason the
// emulator gives inside bootmgr's unmodelled environment (halted, budget, waiting for a key). On Generation 2 no
// UEFI emulation of bootmgfw.efi exists yet: a statically clean disk stays `inconclusive`.
import { ImageError } from "../images/errors.ts";
import { MAX_HIVE_BYTES, MAX_WINDOWS_VOLUMES as MAX_VOLUMES, MAX_DRIVER_FILES } from "../images/limits.ts";
import { readFileAt, resolvePath, type Extent, type FileSystem } from "../images/fs.ts";
import { openVolumes as openDiskVolumes } from "../images/fs-open.ts";
import { GPT_TYPE_ESP } from "../images/gpt.ts";
import { deviceText, matchBcdToDisk, readBcd, type BcdDevice, type BcdStore } from "../images/bcd.ts";
import { readWindowsSystem, readWindowsVersion, storageDriverReadiness, type DriverRequirement, type WindowsTarget } from "../images/windows-system.ts";
import type { Layout, Partition } from "../images/layout.ts";
import type { BlockDevice } from "../images/block.ts";
import { finding, type Finding } from "./findings.ts";
import { failureMessages } from "./gen1-evidence.ts";
import "./os-windows-findings.ts";

export type WindowsReached = "firmware" | "bootloader" | "kernel" | "root";
export interface ChainStep { stage: string; what: string; evidence: Record<string, unknown> }

/** What a Generation 1 emulation run (runGen1) showed of the pre-OS path. */
export interface PrebootEvidence {
  reached: string;
  stopReason: string;
  stopDetail?: string;
  chain: ChainStep[];
  readLog?: { lba: number; count: number }[];
  screen?: string[];
}

export interface WindowsInput {
  dev: BlockDevice;
  layout: Layout;
  generation: 1 | 2;
  target: "azure" | "hyperv";
  /** The OS disk's controller; absent: Gen1 ide, Gen2 scsi. nvme: stornvme must be boot-start (Azure NVMe sizes). */
  controller?: "ide" | "scsi" | "nvme";
  /** The Gen1 emulation of this disk, when one was run (ignored on Generation 2). */
  preboot?: PrebootEvidence;
}

export interface WindowsResult {
  reached: WindowsReached;
  verdict: "boots" | "fails" | "inconclusive";
  findings: Finding[];
  chain: ChainStep[];
  facts: Record<string, unknown>;
}

/** First Windows build that runs as a Generation 2 guest: Windows 8 / Server 2012 (6.2.9200). */
const GEN2_MIN_BUILD = 9200;
/** Emulation stops that, once \bootmgr is loaded, mean "the emulator cannot follow bootmgr further", not a failure. */
const STOPS_INSIDE_BOOTMGR_OK = new Set(["halted", "budget-instructions", "budget-time", "waiting-for-key"]);
/** Stops that are failures of the boot code itself. */
const STOPS_FAILED = new Set(["int18-return", "int19-return", "no-boot-device", "disk-not-attachable", "cpu-exception", "triple-fault", "halted", "waiting-for-key"]);
/** Boot errors bootmgr and the NT6 boot record print (besides gen1-evidence's list). */
const WINDOWS_SCREEN_ERRORS = ["Windows failed to start", "BOOTMGR is compressed", "BOOTMGR image is corrupt",
  "An operating system wasn't found", "Status: 0x", "Info: An error occurred"];

const WIN_SYSTEM = "/Windows/System32";
const SYSTEM_HIVE = "/Windows/System32/config/SYSTEM";
const SOFTWARE_HIVE = "/Windows/System32/config/SOFTWARE";
const DRIVERS_DIR = "/Windows/System32/drivers";
const BIOS_BCD = "/Boot/BCD", BOOTMGR = "/bootmgr";
const UEFI_BCD = "/EFI/Microsoft/Boot/BCD", BOOTMGFW = "/EFI/Microsoft/Boot/bootmgfw.efi", REMOVABLE = "/EFI/BOOT/BOOTX64.EFI";

interface Volume { index: number; startLba: number; part?: Partition; fs: FileSystem; kind: string; findings: Finding[] }

const winPath = (p: string) => p.replace(/\//g, "\\");
const errText = (e: unknown) => (e instanceof ImageError ? e.message : String(e));

/** Run `f`; an ImageError from bad bytes becomes `undefined` and a reason in `bad`. */
function guard<T>(bad: string[], what: string, f: () => T): T | undefined {
  try { return f(); } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    bad.push(`${what}: ${e.message}`);
    return undefined;
  }
}

/** The NTFS and FAT volumes of the disk, opened through the per-disk cache the Linux stage shares (fs-open.ts). */
function openVolumes(dev: BlockDevice, layout: Layout, unreadable: Map<number, string>): Volume[] {
  const out: Volume[] = [];
  const entries = openDiskVolumes(dev, layout).list.filter((v) => v.id === "disk" || v.partitionIndex !== undefined);
  for (const v of entries.slice(0, MAX_VOLUMES)) {
    const isFat = v.kind === "fat12" || v.kind === "fat16" || v.kind === "fat32";
    if (v.kind !== "ntfs" && !isFat) continue;
    const index = v.partitionIndex ?? 0;
    try {
      const fs = v.open();
      if (!fs) continue;
      const findings = "findings" in fs && Array.isArray(fs.findings) ? (fs.findings as Finding[]) : [];
      const part = layout.partitions.find((p) => p.index === v.partitionIndex);
      out.push({ index, startLba: v.startLba ?? 0, ...(part ? { part } : {}), fs, kind: v.kind, findings });
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      unreadable.set(index, v.openError ?? e.message);
    }
  }
  return out;
}

function fileType(v: Volume, p: string): "file" | "dir" | "symlink" | "other" | undefined {
  const h = resolvePath(v.fs, p);
  return h ? v.fs.stat(h).type : undefined;
}

/** The whole-disk LBA ranges of a file (for matching against the emulation's read log). */
function fileExtents(v: Volume, p: string): Extent[] {
  const h = resolvePath(v.fs, p);
  return h ? v.fs.extents(h) : [];
}

/** True when every sector of `ext` was read by the emulated boot. */
function covered(ext: Extent[], log: { lba: number; count: number }[]): boolean {
  return ext.length > 0 && ext.every((e) => {
    for (let s = e.lba; s < e.lba + e.count;) {
      const r = log.find((x) => x.lba <= s && s < x.lba + x.count);
      if (!r) return false;
      s = r.lba + r.count;
    }
    return true;
  });
}

function regFix(controlSet: string, items: DriverRequirement[], target: "azure" | "hyperv"): string {
  const cmds: string[] = [];
  for (const i of items) {
    if (i.present && i.start !== 0) cmds.push(`reg add HKLM\\OFFLINE\\${controlSet}\\Services\\${i.service} /v Start /t REG_DWORD /d 0 /f`);
    else if (i.present && i.problem?.includes("StartOverride")) cmds.push(`reg delete HKLM\\OFFLINE\\${controlSet}\\Services\\${i.service}\\StartOverride /f`);
  }
  const parts: string[] = [];
  if (cmds.length) {
    parts.push(`with the disk's Windows volume as C: (WinRE command prompt or a helper VM): \`reg load HKLM\\OFFLINE C:\\Windows\\System32\\config\\SYSTEM\`, ${cmds.map((c) => `\`${c}\``).join(", ")}, \`reg unload HKLM\\OFFLINE\``);
  }
  const missingFile = items.filter((i) => i.fileFound === false || !i.present);
  if (missingFile.length) {
    parts.push(`install the driver${missingFile.length > 1 ? "s" : ""} ${missingFile.map((i) => i.service).join(", ")} offline: \`dism /image:C:\\ /add-driver /driver:<folder with the .inf> /recurse\` (or copy ${missingFile.map((i) => i.sysPath.replace(/^.*\\/, "")).join(", ")} from C:\\Windows\\System32\\DriverStore\\FileRepository into C:\\Windows\\System32\\drivers)`);
  }
  if (target === "azure") {
    parts.push("on Azure: attach the OS disk to a repair VM (`az vm repair create -g RG -n VM --verbose`), apply the change there and `az vm repair restore -g RG -n VM`, as Microsoft's \"Troubleshoot 0x0000007B INACCESSIBLE_BOOT_DEVICE\" guide for Azure VMs describes");
  } else {
    parts.push("before converting, in the source VM: `sc config storvsc start= boot` and `sc config vmbus start= boot` (Hyper-V drivers), `sc config intelide start= boot` / `sc config atapi start= boot` (Generation 1 IDE)"
      + (items.some((i) => i.service === "stornvme") ? ", `sc config stornvme start= boot` (NVMe)" : ""));
  }
  return parts.join("; ");
}

/** Screen lines that say the boot failed. */
function screenErrors(screen: string[]): string[] {
  const text = screen.join("\n");
  const out = failureMessages(text);
  for (const line of screen) if (WINDOWS_SCREEN_ERRORS.some((m) => line.includes(m)) && !out.includes(line.trim()) && out.length < 6) out.push(line.trim());
  return out;
}

/** Judge the Gen1 emulation's evidence that the NTFS boot record ran and \bootmgr was read without an error. */
function judgePreboot(pre: PrebootEvidence, boot: Volume | undefined, findings: Finding[], chain: ChainStep[], unknown: string[]): { ok: boolean; bootmgrRead: boolean } {
  const stop = `${pre.stopReason}${pre.stopDetail ? ": " + pre.stopDetail : ""}`;
  const vbr = pre.chain.find((c) => c.evidence.kind === "ntfs-vbr" && (c.evidence.lba === undefined || boot === undefined || c.evidence.lba === boot.startLba));
  const bmExt = boot ? fileExtents(boot, BOOTMGR) : [];
  const bootmgrRead = !!vbr && covered(bmExt, pre.readLog ?? []);
  const errors = screenErrors(pre.screen ?? []);
  const evidence = { stopReason: pre.stopReason, stopDetail: pre.stopDetail, emulationReached: pre.reached, ntfsBootRecordRan: !!vbr,
    bootmgrExtents: bmExt, bootmgrRead, screenErrors: errors };
  if (errors.length) {
    findings.push(finding("WIN_PREBOOT_FAILED", { what: `the screen shows a boot error: ${JSON.stringify(errors[0])}`, stop, detail: "" }, evidence));
    return { ok: false, bootmgrRead };
  }
  if (!bootmgrRead) {
    const what = !vbr ? "the NTFS boot record of the boot volume never ran" : "\\bootmgr's sectors were never read";
    if (STOPS_FAILED.has(pre.stopReason)) {
      findings.push(finding("WIN_PREBOOT_FAILED", { what, stop, detail: "" }, evidence));
    } else {
      unknown.push(`the Gen1 emulation stopped (${stop}) before bootmgr ran`);
      findings.push(finding("WIN_PREBOOT_NOT_VERIFIED", { reason: `the Generation 1 emulation stopped (${stop}) before ${!vbr ? "the NTFS boot record ran" : "\\bootmgr was read"}` }, evidence));
    }
    return { ok: false, bootmgrRead };
  }
  if (STOPS_INSIDE_BOOTMGR_OK.has(pre.stopReason)) {
    chain.push({ stage: "bootloader", what: `Gen1 emulation ran the NTFS boot record, read \\bootmgr (${bmExt.reduce((n, e) => n + e.count, 0)} sectors) and stopped inside bootmgr (${pre.stopReason}): bootmgr itself is not emulated further`, evidence });
    return { ok: true, bootmgrRead };
  }
  if (pre.stopReason === "int18-return" || pre.stopReason === "int19-return") {
    findings.push(finding("WIN_PREBOOT_FAILED", { what: "bootmgr was loaded and then gave up", stop, detail: "" }, evidence));
    return { ok: false, bootmgrRead };
  }
  unknown.push(`the Gen1 emulation stopped with ${pre.stopReason} after loading bootmgr`);
  findings.push(finding("WIN_PREBOOT_NOT_VERIFIED", { reason: `the Generation 1 emulation loaded \\bootmgr but stopped with ${stop}, which says nothing either way` }, evidence));
  return { ok: false, bootmgrRead };
}

/**
 * The Windows OS stage for one generation. undefined when no NTFS volume holds \Windows\System32 (not a Windows disk).
 * Never throws for bad image bytes: unreadable pieces make the verdict inconclusive with the reason.
 */
export function evaluateWindows(input: WindowsInput): WindowsResult | undefined {
  const { dev, layout, generation: gen, target } = input;
  if (!layout.partitions.some((p) => p.content.kind === "ntfs") && layout.wholeDisk?.kind !== "ntfs") return undefined;
  const unreadableVols = new Map<number, string>();
  const vols = openVolumes(dev, layout, unreadableVols);
  const probeBad: string[] = [];
  const winVols = vols.filter((v) => v.kind === "ntfs" && guard(probeBad, `partition ${v.index}`, () => fileType(v, WIN_SYSTEM)) === "dir");
  if (!winVols.length) return undefined;

  const findings: Finding[] = [], chain: ChainStep[] = [], unknown: string[] = [];
  const facts: Record<string, unknown> = { generation: gen, target };
  const unreadable = (what: string, reason: string) => { unknown.push(`${what}: ${reason}`); findings.push(finding("WIN_UNREADABLE", { what, reason })); };
  for (const r of probeBad) unreadable("volume", r);
  // Stage status: undefined = on track, "fail" or "unknown".
  const status: Record<"boot" | "bcd" | "kernel", "ok" | "fail" | "unknown"> = { boot: "ok", bcd: "ok", kernel: "ok" };
  const fail = (s: keyof typeof status) => { status[s] = "fail"; };
  const unsure = (s: keyof typeof status) => { if (status[s] === "ok") status[s] = "unknown"; };
  const ctl = input.controller ?? (gen === 1 ? "ide" : "scsi");
  const controller: WindowsTarget = ctl === "nvme" ? "azure-nvme" : ctl === "ide" ? "gen1-ide" : "gen2-scsi";

  // ---- 1. the boot volume the firmware starts ----
  let boot: Volume | undefined, bcdPath = BIOS_BCD;
  const noBoot = (reason: string, fix: string, ev: Record<string, unknown> = {}) => {
    findings.push(finding("WIN_NO_BOOT_VOLUME", { generation: gen, reason, fix }, ev)); fail("boot");
  };
  const volOf = (p: Partition) => vols.find((v) => v.index === p.index);
  if (gen === 1) {
    const active = layout.partitions.filter((p) => p.scheme === "mbr" && !p.logical && p.bootable);
    if (layout.partitioning === "gpt" || !layout.mbr) {
      noBoot(`the disk is ${layout.partitioning === "gpt" ? "GPT-partitioned" : "not MBR-partitioned"}; Windows boots from a BIOS only off an MBR disk's active partition`,
        "deploy the disk as a Generation 2 VM (GPT + UEFI), or rebuild it as MBR in the source VM");
    } else if (!active.length) {
      noBoot("no MBR partition is marked active: the Windows MBR code has nothing to start", "mark the system partition active (`diskpart`: `select disk 0`, `select partition 1`, `active`) and run `bcdboot C:\\Windows /s C: /f BIOS`");
    } else {
      const p = active[0];
      boot = volOf(p);
      if (!boot) {
        if (unreadableVols.has(p.index)) { unreadable(`active partition ${p.index}`, unreadableVols.get(p.index)!); unsure("boot"); }
        else noBoot(`the active partition ${p.index} holds ${p.content.kind}, not an NTFS or FAT volume with bootmgr`, "run `bcdboot C:\\Windows /s C: /f BIOS` from Windows installation media and mark that partition active");
      } else {
        const bad: string[] = [];
        const hasBm = guard(bad, "\\bootmgr", () => fileType(boot!, BOOTMGR)) === "file";
        const hasBcd = guard(bad, "\\Boot\\BCD", () => fileType(boot!, BIOS_BCD)) === "file";
        for (const b of bad) unreadable(`active partition ${p.index}`, b);
        if (bad.length) unsure("boot");
        else if (!hasBm || !hasBcd) {
          noBoot(`the active partition ${p.index} lacks ${[!hasBm ? "\\bootmgr (\"BOOTMGR is missing\")" : "", !hasBcd ? "\\Boot\\BCD (bootmgr stops with 0xc000000f)" : ""].filter(Boolean).join(" and ")}`,
            "from Windows installation media: `bcdboot C:\\Windows /s C: /f BIOS` (C: being the active partition)", { partition: p.index });
        }
      }
    }
  } else {
    bcdPath = UEFI_BCD;
    const esps = layout.partitions.filter((p) => p.scheme === "gpt" && p.type.toUpperCase() === GPT_TYPE_ESP);
    if (!layout.gpt) {
      noBoot(`the disk is ${layout.partitioning === "mbr" ? "MBR-partitioned" : "not GPT-partitioned"}; Generation 2 boots Windows only from a GPT disk`,
        "convert the system disk in the source VM before exporting: `mbr2gpt /validate /disk:0 /allowFullOS` then `mbr2gpt /convert /disk:0 /allowFullOS`");
    } else if (!esps.length) {
      noBoot("the GPT has no EFI System Partition: \"No UEFI-compatible file system was found.\"", "create an ESP (`diskpart`: `create partition efi size=100`, `format fs=fat32`, `assign letter=S`) and run `bcdboot C:\\Windows /s S: /f UEFI`");
    } else {
      boot = esps.map(volOf).find(Boolean);
      if (!boot) {
        const why = esps.map((p) => unreadableVols.get(p.index) ?? `partition ${p.index} holds ${p.content.kind}`).join("; ");
        if (esps.some((p) => unreadableVols.has(p.index))) { unreadable("EFI System Partition", why); unsure("boot"); }
        else noBoot(`the EFI System Partition is not a FAT volume (${why})`, "reformat it (`format S: /fs:fat32`) and run `bcdboot C:\\Windows /s S: /f UEFI`");
      } else {
        const bad: string[] = [];
        const has = (p: string) => guard(bad, winPath(p), () => fileType(boot!, p)) === "file";
        const missing = [UEFI_BCD, BOOTMGFW, REMOVABLE].filter((p) => !has(p));
        for (const b of bad) unreadable(`EFI System Partition ${boot.index}`, b);
        if (bad.length) unsure("boot");
        else if (missing.length) {
          const screen = missing.includes(REMOVABLE) ? " (\"No x64-based UEFI boot loader was found.\" on a VM without the old NVRAM boot entries)" : "";
          noBoot(`the EFI System Partition ${boot.index} lacks ${missing.map(winPath).join(", ")}${screen}`,
            "from Windows installation media or a helper VM: `bcdboot C:\\Windows /s S: /f UEFI` (writes \\EFI\\Microsoft\\Boot and \\EFI\\BOOT\\BOOTX64.EFI)", { partition: boot.index, missing: missing.map(winPath) });
        }
      }
    }
  }
  if (boot) {
    findings.push(...boot.findings);
    chain.push({ stage: "bootloader", what: `static analysis: bootmgr not emulated; boot volume: partition ${boot.index} (${boot.kind}) with ${winPath(gen === 1 ? BOOTMGR : BOOTMGFW)} and ${winPath(bcdPath)}`,
      evidence: { partition: boot.index, startLba: boot.startLba, kind: boot.kind } });
    facts.bootVolume = { partition: boot.index, startLba: boot.startLba, kind: boot.kind, bcd: winPath(bcdPath) };
  }

  // ---- 2. the BCD store's default entry against this disk ----
  let store: BcdStore | undefined;
  let osPartition: number | undefined;
  if (boot && status.boot !== "fail") {
    const bad: string[] = [];
    const bytes = guard(bad, winPath(bcdPath), () => readFileAt(boot!.fs, bcdPath, MAX_HIVE_BYTES));
    store = bytes ? guard(bad, winPath(bcdPath), () => readBcd(bytes)) : undefined;
    if (!store) { for (const b of bad) unreadable("BCD store", b); if (!bad.length) unreadable("BCD store", `${winPath(bcdPath)} is not a file`); unsure("bcd"); }
    else {
      const matches = matchBcdToDisk(store, layout);
      for (const f of store.findings) {
        if (f.code === "BCD_DEVICE_MISMATCH") Object.assign(f.evidence, { bootError: "winload 0xc000000e (STATUS_NO_SUCH_DEVICE)", file: winPath(bcdPath), bcdPartition: boot.index });
        findings.push(f);
        if (f.severity === "error") fail("bcd");
        else if (f.code === "BCD_ELEMENT_BAD") { unknown.push(f.message); unsure("bcd"); }
      }
      const dl = store.defaultLoader;
      const os = matches.find((m) => m.element === "osdevice" && m.object === dl?.guid);
      osPartition = os?.matches ? os.partitionIndex : os?.device.type === "boot" ? boot.index : undefined;
      facts.bcd = {
        defaultGuid: dl?.guid, description: dl?.description, path: dl?.path, systemRoot: dl?.systemRoot,
        device: dl?.device ? deviceText(dl.device) : undefined, osDevice: dl?.osDevice ? deviceText(dl.osDevice) : undefined,
        matches: matches.map((m) => ({ object: m.object, element: m.element, matches: m.matches, partition: m.partitionIndex, reason: m.reason })),
      };
      if (dl) {
        chain.push({ stage: "bootloader", what: `BCD default entry ${dl.guid} "${dl.description ?? ""}": ${dl.path ?? "(no path)"} on ${dl.device ? deviceText(dl.device) : "(no device)"}`,
          evidence: facts.bcd as Record<string, unknown> });
        // The OS loader must be on its device, and the system root on the osdevice.
        const volFor = (d: BcdDevice | undefined, el: "device" | "osdevice") => {
          if (d?.type === "boot") return boot;
          const m = matches.find((x) => x.element === el && x.object === dl.guid);
          return m?.matches ? vols.find((v) => v.index === m.partitionIndex) : undefined;
        };
        const checkFile = (v: Volume | undefined, p: string | undefined, d: BcdDevice | undefined, want: "file" | "dir") => {
          if (!v || !p || !d) return;
          const why: string[] = [];
          const t = guard(why, p, () => fileType(v, p.replace(/\\/g, "/")));
          if (why.length) { unreadable(`partition ${v.index}`, why[0]); unsure("bcd"); return; }
          if (t === want) return;
          findings.push(finding("WIN_LOADER_MISSING", { guid: dl.guid, path: p, device: `partition ${v.index} (${deviceText(d)})` }));
          fail("bcd");
        };
        checkFile(volFor(dl.device, "device"), dl.path, dl.device, "file");
        checkFile(volFor(dl.osDevice, "osdevice"), dl.systemRoot ? `${dl.systemRoot}\\System32` : undefined, dl.osDevice, "dir");
      }
    }
  }

  // ---- 3. the system volume: SYSTEM hive, drivers, MountedDevices, SOFTWARE ----
  const sys = winVols.find((v) => v.index === osPartition) ?? winVols[0];
  if (sys !== boot) findings.push(...sys.findings);
  facts.systemVolume = { partition: sys.index, startLba: sys.startLba, label: sys.fs.label };
  const bad: string[] = [];
  const sysBytes = guard(bad, winPath(SYSTEM_HIVE), () => readFileAt(sys.fs, SYSTEM_HIVE, MAX_HIVE_BYTES));
  let driverFiles: string[] | undefined;
  const dh = guard(bad, winPath(DRIVERS_DIR), () => resolvePath(sys.fs, DRIVERS_DIR));
  if (dh && sys.fs.stat(dh).type === "dir") {
    driverFiles = guard(bad, winPath(DRIVERS_DIR), () => sys.fs.readdir(dh).slice(0, MAX_DRIVER_FILES).map((n) => n.toLowerCase()).filter((n) => n.endsWith(".sys")));
  } else if (!bad.length) unreadable("drivers directory", `${winPath(DRIVERS_DIR)} is missing on partition ${sys.index}`);
  for (const b of bad) unreadable("system volume", b);
  if (!sysBytes) {
    if (!bad.some((b) => b.startsWith(winPath(SYSTEM_HIVE)))) unreadable("SYSTEM hive", `${winPath(SYSTEM_HIVE)} is missing on partition ${sys.index}`);
    unsure("kernel");
  }
  const sysFacts = sysBytes ? guard(bad, "SYSTEM hive", () => readWindowsSystem(sysBytes, driverFiles ? { driverFiles } : {})) : undefined;
  if (sysBytes && !sysFacts) { unreadable("SYSTEM hive", bad[bad.length - 1]); unsure("kernel"); }
  if (!driverFiles) unsure("kernel");
  if (sysFacts) {
    for (const f of sysFacts.findings) {
      findings.push(f);
      if (f.severity === "error") fail("kernel");
      if (f.code === "REGF_TRUNCATED") { unknown.push(`SYSTEM hive: ${f.message}`); unsure("kernel"); }
    }
    const cs = sysFacts.controlSet ?? "ControlSet001";
    if (sysFacts.controlSet) {
      const rd = storageDriverReadiness(sysFacts, controller);
      const bad7b: { problem: string; items: DriverRequirement[] }[] = [];
      for (const i of rd.items) if (i.role === "required" && !i.ok) bad7b.push({ problem: i.problem!, items: [i] });
      const groups = new Map<string, DriverRequirement[]>();
      for (const i of rd.items) if (i.role === "oneOf") groups.set(i.group!, [...(groups.get(i.group!) ?? []), i]);
      for (const [g, items] of groups) {
        if (!items.some((i) => i.ok)) bad7b.push({ problem: `no ${g} driver is ready (${items.map((i) => i.problem).join("; ")})`, items });
      }
      for (const b of bad7b) {
        findings.push(finding("WIN_STOP_7B", { controller, problem: b.problem, controlSet: cs, hive: winPath(SYSTEM_HIVE), fix: regFix(cs, b.items, target) },
          { services: b.items.map((i) => ({ service: i.service, start: i.start, sysPath: i.sysPath, fileFound: i.fileFound, startOverride: sysFacts.services[i.service.toLowerCase()]?.startOverride })), partition: sys.index }));
        fail("kernel");
      }
      if (!bad7b.length && rd.items.some((i) => (i.role === "required" || i.role === "oneOf") && i.ok && i.fileFound === undefined)) unsure("kernel");
      facts.drivers = rd.items;
      chain.push({ stage: "kernel", what: `static analysis: winload/kernel not run; ${cs} boot-start storage drivers for ${controller}: ${rd.ready ? "ready" : "NOT ready"}`,
        evidence: { controlSet: cs, drivers: rd.items.map((i) => `${i.service}: ${i.ok ? "ok" : i.problem}`), driverFiles: driverFiles?.length } });
    }
    facts.controlSet = sysFacts.controlSet;
    // MountedDevices: informational (Windows re-assigns the boot volume's letter).
    const c = sysFacts.systemDrive;
    if (c && (c.kind === "mbr" || c.kind === "gpt")) {
      const actual = layout.mbr && layout.partitioning === "mbr" ? `MBR disk 0x${layout.mbr.signature.toString(16).padStart(8, "0")} at byte offset ${sys.startLba * layout.sectorSize}` : `GPT partition ${sys.part?.guid ?? "(none)"}`;
      const same = c.kind === "mbr" ? layout.partitioning === "mbr" && layout.mbr?.signature === c.mbrSignature && c.partitionOffset === sys.startLba * layout.sectorSize
        : sys.part?.guid?.toUpperCase() === c.partitionGuid?.toUpperCase();
      const recorded = c.kind === "mbr" ? `MBR disk 0x${c.mbrSignature!.toString(16).padStart(8, "0")} at byte offset ${c.partitionOffset}` : `GPT partition ${c.partitionGuid}`;
      facts.mountedDevicesC = { recorded, actual, matches: same };
      if (!same) findings.push(finding("WIN_MOUNTED_DEVICES_STALE", { recorded, actual }));
    }
  }
  const swBad: string[] = [];
  const swBytes = guard(swBad, winPath(SOFTWARE_HIVE), () => readFileAt(sys.fs, SOFTWARE_HIVE, MAX_HIVE_BYTES));
  const ver = swBytes ? guard(swBad, "SOFTWARE hive", () => readWindowsVersion(swBytes)) : undefined;
  if (!swBytes && !swBad.length) swBad.push(`${winPath(SOFTWARE_HIVE)} is missing on partition ${sys.index}`);
  const build = ver ? Number.parseInt(ver.currentBuildNumber ?? ver.currentBuild ?? "", 10) : NaN;
  const product = ver?.productName ?? "Windows (product name unknown)";
  if (ver) facts.windows = { ...ver, ...(Number.isFinite(build) ? { build } : {}) };
  if (swBad.length) { for (const b of swBad) unreadable("SOFTWARE hive", b); if (gen === 2) unsure("bcd"); }
  else if (!Number.isFinite(build)) { unreadable("SOFTWARE hive", "no CurrentBuildNumber in Microsoft\\Windows NT\\CurrentVersion"); if (gen === 2) unsure("bcd"); }
  else if (gen === 2 && build < GEN2_MIN_BUILD) {
    findings.push(finding("WIN_GEN2_UNSUPPORTED", { product, build }));
    fail("bcd");
  }
  if (ver || sysFacts) {
    findings.push(finding("WIN_OS_FOUND", { product, build: Number.isFinite(build) ? build : "unknown", partition: sys.index, controlSet: sysFacts?.controlSet ?? "unknown" }));
    chain.push({ stage: "root", what: `${product}${Number.isFinite(build) ? ` build ${build}` : ""} on partition ${sys.index}`, evidence: { partition: sys.index, ...(ver ?? {}) } });
  }

  // ---- 4. the pre-OS path: has anything run bootmgr? ----
  if (gen === 1 && status.boot === "ok") {
    if (input.preboot) {
      const r = judgePreboot(input.preboot, boot, findings, chain, unknown);
      if (!r.ok) status.boot = findings.some((f) => f.code === "WIN_PREBOOT_FAILED") ? "fail" : "unknown";
      facts.preboot = { stopReason: input.preboot.stopReason, bootmgrRead: r.bootmgrRead, accepted: r.ok };
    } else if (!Object.values(status).includes("fail")) {
      unknown.push("no Generation 1 emulation result");
      findings.push(finding("WIN_PREBOOT_NOT_VERIFIED", { reason: "no Generation 1 emulation result shows the MBR code, the NTFS boot record and \\bootmgr running" }));
    }
  } else if (gen === 2 && Object.values(status).every((s) => s === "ok")) {
    unknown.push("Generation 2 UEFI boot of bootmgfw.efi is not emulated");
    findings.push(finding("WIN_PREBOOT_NOT_VERIFIED", { reason: "the Generation 2 firmware's start of \\EFI\\BOOT\\BOOTX64.EFI (Secure Boot signature and dbx included) is not emulated; the ESP files, BCD and registry were checked statically" }));
  }

  // ---- verdict ----
  const order = ["boot", "bcd", "kernel"] as const;
  const firstBad = order.findIndex((s) => status[s] !== "ok");
  let reached: WindowsReached = (["firmware", "bootloader", "kernel", "root"] as const)[firstBad < 0 ? 3 : firstBad];
  // The emulated boot code ran but did not get through bootmgr: the boot stopped at the bootloader stage.
  if (gen === 1 && input.preboot && status.boot !== "ok" && facts.preboot) reached = input.preboot.reached === "firmware" ? "firmware" : "bootloader";
  const failed = findings.some((f) => f.severity === "error") || Object.values(status).includes("fail");
  const verdict = failed ? "fails" : unknown.length || Object.values(status).includes("unknown") ? "inconclusive" : "boots";
  facts.status = { ...status };
  if (unknown.length) facts.inconclusiveBecause = unknown;
  return { reached, verdict, findings, chain, facts };
}
