// The Linux OS stage (issue 4, shared/HYPERV.md failure table): from the kernel the boot loader handed off to (or the
// default boot entry read statically), decide whether the kernel finds its root disk on Hyper-V Gen1 (IDE: ata_piix or
// hv_storvsc, with ata_piix's Hyper-V quirk) or Gen2 (hv_vmbus + hv_storvsc): initramfs contents, root=, the root
// filesystem's driver, blacklists, module dependencies and /etc/fstab.
import type { BlockDevice } from "../images/block.ts";
import { ImageError } from "../images/errors.ts";
import { readFileAt, resolvePath, type FileSystem } from "../images/fs.ts";
import { openVolumes, type VolumeEntry, type Volumes } from "../images/fs-open.ts";
import type { Layout } from "../images/layout.ts";
import { KERNEL_CONFIG_FOR_COMPRESSION, readInitramfs, type Initramfs } from "../images/initramfs.ts";
import { configValue, parseKernelConfig, parseModulesBuiltin, parseModulesDep } from "../images/linux-modules.ts";
import { parseCmdline, resolveCmdlineRoot, type TargetController } from "../images/root-spec.ts";
import { MAX_INITRAMFS_BYTES, MAX_MODULES_TEXT_BYTES } from "../images/limits.ts";
import { finding, type Finding } from "./findings.ts";
import "./os-linux-findings.ts";
import { fileAtLba, findFile, staticDefaultEntry, versionFromBzImage, versionFromKernelName, volName, type BootEntry, type FileRef } from "./os-linux-boot.ts";
import { checkNvmeStorage, controllerTarget, DriverFacts, pathStatus, rebuildRemedy, type PathStatus } from "./os-linux-drivers.ts";
import { checkFstab } from "./os-linux-fstab.ts";

export interface OsStageInput {
  dev: BlockDevice; layout: Layout; generation: 1 | 2; target: "azure" | "hyperv";
  /** The OS disk's controller; absent: Gen1 ide, Gen2 scsi. nvme (Gen2): the nvme driver and /dev/nvme0n1 names. */
  controller?: "ide" | "scsi" | "nvme";
  handoff?: { cmdline?: string; kernelVersion?: string; initrd?: { size: number }; kernelLoadedFrom?: { lba: number };
    initrdLoadedFrom?: { lba: number } };
}

export interface OsStageResult {
  reached: "kernel" | "root";
  verdict: "boots" | "fails" | "inconclusive";
  findings: Finding[];
  chain: { stage: string; what: string; evidence: Record<string, unknown> }[];
  facts: Record<string, unknown>;
}

/** Filesystem kinds a Linux root can be, and the modules that mount them (any one suffices). */
const FS_DRIVERS: Record<string, string[]> = {
  ext4: ["ext4"], ext3: ["ext4", "ext3"], ext2: ["ext4", "ext2"], xfs: ["xfs"], btrfs: ["btrfs"],
  fat12: ["vfat"], fat16: ["vfat"], fat32: ["vfat"], vfat: ["vfat"],
};
const LINUX_FS = new Set(["ext2", "ext3", "ext4", "xfs", "btrfs"]);
/** Kernel names no Hyper-V/Azure guest has: virtio-blk, Xen blkfront, the pre-libata IDE driver. */
const FOREIGN_NAME = /^\/dev\/(x?vd[a-z]+|hd[a-z])[0-9]*$/;
const LVM_TOOLS = ["usr/sbin/lvm", "sbin/lvm", "usr/bin/lvm", "bin/lvm"];

/** One evaluation: findings, the chain, facts and the evidence still missing. */
class Run {
  findings: Finding[] = [];
  chain: OsStageResult["chain"] = [];
  facts: Record<string, unknown> = {};
  missing: string[] = [];
  constructor(readonly input: OsStageInput, readonly vols: Volumes) {}
  add(code: string, params: Record<string, unknown>, evidence: Record<string, unknown> = {}): Finding {
    const f = finding(code, params, evidence);
    this.findings.push(f);
    return f;
  }
  get failed(): boolean { return this.findings.some((f) => f.severity === "error"); }
}

const first = (s?: string) => s?.trim().split(/\s+/)[0] || undefined;

/** True when some volume looks like an installed Linux (a kernel in /boot, or /etc/fstab next to /lib/modules). */
function looksLinux(vols: Volumes): boolean {
  for (const v of vols.list) {
    if (!LINUX_FS.has(v.kind)) continue;
    const fs = vols.tryOpen(v);
    if (!fs) continue;
    try {
      const boot = resolvePath(fs, "/boot");
      if (boot && fs.readdir(boot).some((n) => /^vmlinu[xz]-/.test(n))) return true;
      if (resolvePath(fs, "/etc/fstab") && (resolvePath(fs, "/lib/modules") || resolvePath(fs, "/usr/lib/modules"))) return true;
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
    }
  }
  return false;
}

function readSmall(fs: FileSystem, path: string): Buffer | undefined {
  try {
    return readFileAt(fs, path, MAX_MODULES_TEXT_BYTES);
  } catch (e) {
    if (e instanceof ImageError) return undefined;
    throw e;
  }
}

/**
 * Decide the Linux OS stage. Returns undefined when the disk holds no Linux boot (no hand-off given, no grub.cfg /
 * syslinux.cfg default entry, no Linux root filesystem).
 */
export function evaluateLinux(input: OsStageInput): OsStageResult | undefined {
  const vols = openVolumes(input.dev, input.layout);
  const h = input.handoff;
  const entry = staticDefaultEntry(vols, input.generation === 1 ? "pc" : "efi");
  if (!h && !entry?.kernelPath && !looksLinux(vols)) return undefined;
  const run = new Run(input, vols);
  run.facts.basis = h ? "handoff" : "static";
  if (entry) run.facts.bootEntry = { source: entry.source, config: entry.config, title: entry.title, kernel: entry.kernelPath,
    initrds: entry.initrdPaths, cmdline: entry.cmdline, notes: entry.notes };

  // ---- kernel ----
  let kernel: FileRef | undefined;
  if (h?.kernelLoadedFrom) {
    kernel = fileAtLba(vols, h.kernelLoadedFrom.lba);
    if (!kernel) run.add("LINUX_KERNEL_NOT_LOCATED", { lba: h.kernelLoadedFrom.lba, detail: "" });
  }
  if (!kernel && entry?.kernelPath) {
    kernel = findFile(vols, entry.kernelPath, entry.vol);
    if (!kernel && !h) run.add("LINUX_KERNEL_FILE_MISSING", { config: entry.config, entry: entry.title, path: entry.kernelPath });
  }
  if (!h && !entry?.kernelPath) {
    run.add("LINUX_NO_BOOT_ENTRY", { reason: entry ? `${entry.config} has no default Linux entry${entry.notes.length ? ` (${entry.notes[0]})` : ""}`
      : "no grub.cfg, BLS entry or syslinux.cfg on a readable filesystem" });
    return finish(run, false);
  }
  const version = first(h?.kernelVersion) ?? (kernel ? versionFromKernelName(kernel.path) ?? versionFromBzImage(kernel) : undefined)
    ?? entry?.version ?? (entry?.kernelPath ? versionFromKernelName(entry.kernelPath) : undefined);
  const cmdline = h ? (h.cmdline ?? "") : (entry?.cmdline ?? "");
  run.facts.kernelVersion = version;
  run.facts.cmdline = cmdline;
  run.chain.push({ stage: "kernel", what: `Linux ${version ?? "(version unknown)"}${kernel ? ` from ${kernel.path} on ${volName(kernel.vol)}` : ""}`
    + (h ? " (handed off by the boot loader)" : ` (default entry "${entry?.title}" of ${entry?.config})`),
  evidence: { kernelFile: kernel?.path, volume: kernel?.vol.id, extents: kernel?.extents.slice(0, 8), loadedFromLba: h?.kernelLoadedFrom?.lba,
    cmdline, version } });
  if (!version) run.missing.push("the kernel version (needed to match modules.builtin, the kernel config and the initramfs modules)");
  if (run.failed) return finish(run, false);

  // ---- initramfs ----
  const ird = loadInitrd(run, entry, version ?? "<version>");
  if (run.failed) return finish(run, false);

  // ---- kernel facts (modules.builtin, config, modules.dep), root= ----
  const { targetCtl, targetText }: { targetCtl: TargetController; targetText: string } = controllerTarget(input.generation, input.controller);
  const specVols = vols.specVolumes();
  let cmdForRoot = cmdline;
  if (!parseCmdline(cmdline).args.some((a) => a.key === "root") && ird?.initramfs?.cmdline.some((a) => a.startsWith("root="))) {
    cmdForRoot = `${cmdline} ${ird.initramfs.cmdline.join(" ")}`;
  }
  const rootInfo = resolveCmdlineRoot(cmdForRoot, specVols, targetCtl);
  const rootRes = rootInfo.root;
  const rootVol = vols.entryFor(rootRes?.resolvesTo);
  const facts = kernelFacts(run, version, ird?.initramfs, kernel, rootVol, rootInfo.args);
  if (ird?.initramfs && version) checkInitrdAgainstKernel(run, ird.initramfs, ird.path, version, facts);
  const generator = ird?.initramfs?.generator.name;
  const ver = version ?? "$(uname -r)";

  // root device
  let rootOk = false;
  const uuidHint = rootVol?.uuid ?? vols.list.find((v) => LINUX_FS.has(v.kind) && v.uuid)?.uuid ?? "<uuid from blkid>";
  if (!rootRes) {
    run.add("LINUX_ROOT_UNSPECIFIED", { cmdline });
    run.missing.push("the root device (no root= on the command line)");
  } else {
    const spec = rootRes.value;
    const ev = { cmdline, kind: rootRes.kind };
    if (rootRes.problem && (rootRes.kind === "dev-name" || rootRes.kind === "by-path" || rootRes.kind === "by-id")
        && (!rootRes.problem.includes("probe order") || FOREIGN_NAME.test(spec))) {
      run.add("LINUX_ROOT_DEVICE_NAME", { spec, problem: rootRes.problem, uuid: uuidHint }, { ...ev, targetName: rootRes.targetName });
    } else if (rootRes.problem && ["uuid", "partuuid", "label", "partlabel", "lvm"].includes(rootRes.kind) && !rootRes.resolvesTo) {
      run.add("LINUX_ROOT_NOT_ON_DISK", { spec, problem: rootRes.problem, uuid: uuidHint },
        { ...ev, volumes: specVols.map((v) => ({ partition: v.partitionIndex, lv: v.lvName, kind: v.fsKind, uuid: v.fsUuid, label: v.fsLabel, partuuid: v.partUuid })) });
    } else if (rootRes.resolvesTo && rootRes.problem && rootRes.kind !== "dev-name") {
      run.add("LINUX_ROOT_AMBIGUOUS", { spec, problem: rootRes.problem }, ev);
      rootOk = true;
    } else if (rootRes.resolvesTo && !rootRes.problem) {
      rootOk = true;
      if (rootRes.kind === "dev-name") run.add("LINUX_ROOT_KERNEL_NAME", { spec, note: rootRes.note ?? "kernel name", uuid: uuidHint }, ev);
    } else {
      const why = rootRes.problem ?? rootRes.note ?? "not resolvable to a volume of this disk";
      run.add("LINUX_ROOT_UNRESOLVED", { spec, kind: rootRes.kind, why }, ev);
      run.missing.push(`the root device ${spec} (${rootRes.kind})`);
    }
  }
  if (rootVol?.kind === "luks") {
    run.add("LINUX_ROOT_UNRESOLVED", { spec: rootRes?.value, kind: "luks", why: "the root filesystem is inside a LUKS container; unlocking it needs the passphrase" });
    run.missing.push("the root filesystem inside LUKS");
    rootOk = false;
  }
  run.facts.root = { spec: rootRes?.value, kind: rootRes?.kind, volume: rootVol?.id, fstype: rootVol?.kind, uuid: rootVol?.uuid };
  if (rootVol) run.chain.push({ stage: "root", what: `root=${rootRes?.value} is ${volName(rootVol)} (${rootVol.kind})`,
    evidence: { volume: rootVol.id, uuid: rootVol.uuid, label: rootVol.label, startLba: rootVol.startLba, cmdline } });

  // Drivers are judged only when the initramfs was read (or the kernel verifiably runs without one).
  const driversKnown = !!ird;
  // root filesystem driver
  let fsOk = false;
  const fstype = rootInfo.rootfstype || rootVol?.kind;
  if (rootOk && fstype && driversKnown) {
    const cands = FS_DRIVERS[fstype];
    if (!cands) {
      run.missing.push(`a driver check for root filesystem type ${fstype}`);
    } else {
      const states = cands.map((m) => ({ m, st: pathStatus(facts, [m]) }));
      const good = states.find((s) => s.st.ok);
      if (good) {
        fsOk = depsOk(run, facts, [good.m], generator, ver);
        run.facts.rootFsDriver = { module: good.m, state: good.st.states[good.m] };
      } else if (states.some((s) => s.st.unknown.length)) {
        missingFacts(run, facts, ver, cands);
      } else {
        run.add("LINUX_ROOT_FS_DRIVER_MISSING", { fstype, version: ver, module: cands.join(" or "), rebuild: rebuildRemedy(generator, ver, [cands[0]]) },
          { initrdModules: facts.initrdModules, states: Object.fromEntries(states.map((s) => [s.m, s.st.states[s.m]])) });
      }
    }
  }

  // storage drivers for the target
  const storageOk = driversKnown && (targetCtl === "azure-nvme" ? checkNvmeStorage(run, facts, targetText, generator, ver)
    : checkStorage(run, facts, input.generation, targetText, generator, ver));

  // LVM activation
  let lvmOk = true;
  if (rootVol?.lvName && driversKnown) {
    const miss: string[] = [];
    if (!ird?.initramfs || !LVM_TOOLS.some((p) => ird.initramfs!.exists(p))) miss.push("the lvm tool (/sbin/lvm)");
    const dm = pathStatus(facts, ["dm_mod"]);
    if (dm.missing.length || dm.blocked.length) miss.push("dm_mod");
    if (miss.length) {
      lvmOk = false;
      run.add("LINUX_LVM_TOOLS_MISSING", { lv: rootVol.lvName, missing: miss.join(" and "), rebuild: rebuildRemedy(generator, ver, ["dm_mod"]) });
    } else if (dm.unknown.length) {
      lvmOk = false;
      missingFacts(run, facts, ver, ["dm_mod"]);
    }
  }

  const reachedRoot = !run.failed && rootOk && fsOk && storageOk && lvmOk && !!version && !!ird && ird.ok;

  // fstab of the root filesystem
  if (rootVol) {
    const rootFs = vols.tryOpen(rootVol);
    if (!rootFs) {
      run.add("LINUX_ROOT_FS_UNREADABLE", { volume: volName(rootVol), kind: rootVol.kind, error: rootVol.openError ?? "no reader for this filesystem" });
      run.missing.push("/etc/fstab of the root filesystem (unreadable)");
    } else {
      checkFstab(run, rootFs, specVols, vols, targetCtl);
    }
  } else {
    run.missing.push("/etc/fstab of the root filesystem (root not resolved)");
  }

  if (reachedRoot && !run.failed && !run.missing.length) {
    run.add("LINUX_ROOT_FOUND", { version: ver, spec: rootRes?.value, volume: volName(rootVol!), fstype, target: targetText,
      drivers: (run.facts.storageDrivers as string[] | undefined)?.join(" + ") ?? "the storage drivers" });
  }
  return finish(run, reachedRoot);
}

function finish(run: Run, reachedRoot: boolean): OsStageResult {
  const verdict = run.failed ? "fails" : run.missing.length ? "inconclusive" : reachedRoot ? "boots" : "inconclusive";
  if (run.missing.length) run.facts.missingEvidence = run.missing;
  if (verdict === "inconclusive" && run.missing.length) run.add("LINUX_EVIDENCE_MISSING", { missing: run.missing.join("; ") });
  return { reached: reachedRoot ? "root" : "kernel", verdict, findings: run.findings, chain: run.chain, facts: run.facts };
}

/** The initramfs the boot uses: mapped from the hand-off's LBA, else the entry's initrd lines; unpacked (bounded). */
function loadInitrd(run: Run, entry: BootEntry | undefined, version: string):
  { ok: boolean; initramfs?: Initramfs; path: string } | undefined {
  const h = run.input.handoff, vols = run.vols;
  let files: FileRef[] = [];
  if (h) {
    if (!h.initrd || h.initrd.size === 0) {
      run.add("LINUX_NO_INITRD", { version });
      return { ok: true, path: "(none)" };
    }
    const mapped = h.initrdLoadedFrom ? fileAtLba(vols, h.initrdLoadedFrom.lba) : undefined;
    const fromEntry = (entry?.initrdPaths ?? []).map((p) => findFile(vols, p, mapped?.vol ?? entry?.vol));
    const entryAll = fromEntry.length > 0 && fromEntry.every(Boolean) ? (fromEntry as FileRef[]) : undefined;
    if (mapped && entryAll?.some((f) => f.vol === mapped.vol && f.path === mapped.path)) files = entryAll;
    else if (mapped) files = [mapped];
    else if (entryAll && sizeMatches(entryAll, h.initrd.size)) files = entryAll;
    if (!files.length) {
      run.add("LINUX_INITRD_NOT_LOCATED", { size: h.initrd.size, version,
        where: h.initrdLoadedFrom ? ` (first sector from LBA ${h.initrdLoadedFrom.lba})` : "" }, { entryInitrds: entry?.initrdPaths });
      run.missing.push("the initramfs file the boot loader loaded");
      return undefined;
    }
  } else {
    if (!entry?.initrdPaths.length) {
      run.add("LINUX_NO_INITRD", { version });
      return { ok: true, path: "(none)" };
    }
    for (const p of entry.initrdPaths) {
      const f = findFile(vols, p, entry.vol);
      if (!f) {
        run.add("LINUX_INITRD_MISSING", { config: entry.config, entry: entry.title, path: p, version });
        return undefined;
      }
      files.push(f);
    }
  }
  const path = files.map((f) => `${f.vol.id}:${f.path}`).join(" + ");
  const total = files.reduce((s, f) => s + f.size, 0);
  if (total > MAX_INITRAMFS_BYTES) {
    run.add("LINUX_INITRD_UNREADABLE", { path, error: `${total} bytes, over the ${MAX_INITRAMFS_BYTES}-byte limit`, version });
    run.missing.push("the initramfs contents");
    return undefined;
  }
  try {
    // GRUB loads several initrds back to back, each padded to 4 bytes (grub-core/loader/linux.c ALIGN_UP(size, 4)).
    const parts = files.map((f) => {
      const b = readFileAt(f.fs, f.path, MAX_INITRAMFS_BYTES) ?? Buffer.alloc(0);
      return files.length > 1 && b.length % 4 ? Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]) : b;
    });
    const initramfs = readInitramfs(parts.length === 1 ? parts[0] : Buffer.concat(parts));
    run.findings.push(...initramfs.findings);
    const gen = initramfs.generator;
    run.facts.initramfs = { files: files.map((f) => ({ volume: f.vol.id, path: f.path, size: f.size, extents: f.extents.slice(0, 8) })),
      generator: gen.name, segments: initramfs.segments.map((s) => ({ compression: s.compression, entries: s.entries })),
      kernelVersions: initramfs.kernelVersions, modules: initramfs.modules.length };
    run.chain.push({ stage: "kernel", what: `initramfs ${path} (${gen.name}, ${initramfs.modules.length} modules) unpacked`,
      evidence: { files: files.map((f) => f.path), segments: initramfs.segments.length, generator: gen.name,
        hostonly: initramfs.dracut?.hostonly, modulesPolicy: initramfs.initramfsTools?.modulesPolicy } });
    return { ok: true, initramfs, path };
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    run.add("LINUX_INITRD_UNREADABLE", { path, error: `${e.code}: ${e.message}`, version });
    run.missing.push("the initramfs contents (unpacking failed)");
    return undefined;
  }
}

function sizeMatches(files: FileRef[], size: number): boolean {
  const aligned = files.reduce((s, f, i) => s + (i < files.length - 1 ? Math.ceil(f.size / 4) * 4 : f.size), 0);
  return aligned === size || files.reduce((s, f) => s + f.size, 0) === size;
}

/** modules.builtin, /boot/config-<ver> and modules.dep of the kernel, from the root filesystem, /boot or the initramfs. */
function kernelFacts(run: Run, version: string | undefined, ird: Initramfs | undefined, kernel: FileRef | undefined,
                     rootVol: VolumeEntry | undefined, args: ReturnType<typeof parseCmdline>["args"]): DriverFacts {
  let builtin: Set<string> | undefined, builtinFrom: string | undefined;
  let deps: ReturnType<typeof parseModulesDep> | undefined, depsFrom: string | undefined;
  let config: ReturnType<typeof parseKernelConfig> | undefined, configFrom: string | undefined;
  if (version) {
    if (ird?.kernelVersions.includes(version)) {
      builtin = ird.modulesBuiltin(version); if (builtin) builtinFrom = "the initramfs's modules.builtin";
      deps = ird.modulesDep(version); if (deps) depsFrom = "the initramfs's modules.dep";
    }
    // Root filesystem first, then every Linux volume (a separate /boot, or root not resolved).
    const order = [...(rootVol ? [rootVol] : []), ...(kernel ? [kernel.vol] : []), ...run.vols.list.filter((v) => LINUX_FS.has(v.kind) || v.kind.startsWith("fat"))];
    for (const v of [...new Set(order)]) {
      const fs = run.vols.tryOpen(v);
      if (!fs) continue;
      for (const base of [`/lib/modules/${version}`, `/usr/lib/modules/${version}`]) {
        if (!builtin) { const b = readSmall(fs, `${base}/modules.builtin`); if (b) { builtin = parseModulesBuiltin(b); builtinFrom = `${v.id}:${base}/modules.builtin`; } }
        if (!deps) { const b = readSmall(fs, `${base}/modules.dep`); if (b) { deps = parseModulesDep(b); depsFrom = `${v.id}:${base}/modules.dep`; } }
        if (!config) { const b = readSmall(fs, `${base}/config`); if (b) { config = parseKernelConfig(b); configFrom = `${v.id}:${base}/config`; } }
      }
      const kdir = kernel && kernel.vol === v ? kernel.path.slice(0, kernel.path.lastIndexOf("/")) : undefined;
      for (const p of [...(kdir !== undefined ? [`${kdir}/config-${version}`] : []), `/boot/config-${version}`, `/config-${version}`]) {
        if (config) break;
        const b = readSmall(fs, p);
        if (b) { config = parseKernelConfig(b); configFrom = `${v.id}:${p}`; }
      }
    }
  }
  const f = new DriverFacts(version, ird, builtin, builtinFrom, config, configFrom, deps, depsFrom, args);
  run.facts.kernelFacts = { builtinFrom, configFrom, depsFrom, initrdModules: f.initrdModules };
  return f;
}

/** Initramfs built for another kernel, or compressed with a method the kernel was built without. */
function checkInitrdAgainstKernel(run: Run, ird: Initramfs, path: string, version: string, f: DriverFacts): void {
  const vers = ird.kernelVersions;
  if (vers.length && !vers.includes(version)) {
    run.add("LINUX_INITRD_KERNEL_MISMATCH", { path, have: vers.join(", "), version });
  }
  if (!f.config) return;
  for (const s of ird.segments) {
    if (s.compression === "none") continue;
    const sym = KERNEL_CONFIG_FOR_COMPRESSION[s.compression];
    if (sym && configValue(f.config, sym) !== "y") {
      run.add("LINUX_INITRD_COMPRESSION", { path, segment: s.index, compression: s.compression, version, symbol: sym }, { configFrom: f.configFrom });
    }
  }
}

function missingFacts(run: Run, f: DriverFacts, ver: string, modules: string[]): void {
  run.add("LINUX_KERNEL_FACTS_MISSING", { what: "modules.builtin and the kernel config", version: ver, modules: modules.join(", "),
    looked: `/lib/modules/${ver}/modules.builtin, /boot/config-${ver}, the initramfs` });
  run.missing.push(`whether ${modules.join(", ")} are built into Linux ${ver}`);
}

/** Every module's modules.dep closure is built in or in the initramfs. */
function depsOk(run: Run, f: DriverFacts, mods: string[], generator: string | undefined, ver: string): boolean {
  let ok = true;
  for (const m of mods) {
    if (f.state(m) !== "initrd") continue;
    const miss = f.missingDeps(m);
    if (miss === undefined) {
      run.missing.push(`modules.dep of Linux ${ver} (to check ${m}'s dependencies)`);
      return false;
    }
    if (miss.length) {
      ok = false;
      run.add("LINUX_MODULE_DEPS_MISSING", { module: m, missing: miss.join(", "), version: ver, rebuild: rebuildRemedy(generator, ver, [m, ...miss]) },
        { depsFrom: f.depsFrom });
    }
  }
  return ok;
}

function reportBlocked(run: Run, st: PathStatus, targetText: string, generator: string | undefined, ver: string): void {
  for (const b of st.blocked) {
    run.add("LINUX_STORAGE_DRIVER_BLACKLISTED", { module: b.module, how: b.how, source: b.source, target: targetText,
      rebuild: rebuildRemedy(generator, ver, st.modules) });
  }
}

/** Gen2: hv_vmbus + hv_storvsc + sd_mod. Gen1: the same, or ata_piix + sd_mod when ata_piix does not defer to hv_storvsc. */
function checkStorage(run: Run, f: DriverFacts, gen: 1 | 2, targetText: string, generator: string | undefined, ver: string): boolean {
  const hv = pathStatus(f, ["hv_vmbus", "hv_storvsc", "sd_mod"]);
  const ev = { initrdModules: f.initrdModules, states: hv.states, builtinFrom: f.builtinFrom, configFrom: f.configFrom };
  const ok = (st: PathStatus, what: string): boolean => {
    run.facts.storageDrivers = st.modules;
    run.chain.push({ stage: "root", what: `storage: ${what}`, evidence: { states: st.states } });
    return depsOk(run, f, st.modules, generator, ver);
  };
  if (hv.ok) return ok(hv, `${hv.modules.join(" + ")} available for ${targetText}`);
  if (gen === 1) {
    const ide = pathStatus(f, ["ata_piix", "sd_mod"]);
    const cfg = f.hypervStorage();
    const preferOff = f.cmdArgs.some((a) => a.key === "ata_piix.prefer_ms_hyperv" && a.value === "0");
    run.facts.hypervStorage = cfg ?? "unknown";
    if (ide.ok) {
      if (preferOff || cfg?.value === "n") return ok(ide, `ata_piix + sd_mod (${preferOff ? "ata_piix.prefer_ms_hyperv=0" : "kernel without CONFIG_HYPERV_STORAGE"})`);
      if (!cfg) { missingFacts(run, f, ver, ["CONFIG_HYPERV_STORAGE (ata_piix's Hyper-V quirk)"]); return false; }
      if (hv.blocked.length) { reportBlocked(run, hv, targetText, generator, ver); return false; }
      if (hv.unknown.length && !hv.missing.length) { missingFacts(run, f, ver, hv.unknown); return false; }
      run.add("LINUX_ATA_PIIX_DEFERS_TO_STORVSC", { missing: [...hv.missing, ...hv.unknown].join(" + "), version: ver, config: cfg.value,
        configFrom: cfg.from, rebuild: rebuildRemedy(generator, ver, ["hv_vmbus", "hv_storvsc"]) }, { ...ev, idePath: ide.states });
      return false;
    }
  }
  if (hv.blocked.length) { reportBlocked(run, hv, targetText, generator, ver); return false; }
  if (hv.unknown.length && !hv.missing.length) { missingFacts(run, f, ver, hv.unknown); return false; }
  run.add("LINUX_STORAGE_DRIVER_MISSING", { target: targetText, needed: gen === 1 ? "hv_vmbus + hv_storvsc (or ata_piix)" : "hv_vmbus + hv_storvsc",
    version: ver, missing: [...hv.missing, ...hv.unknown].join(", "), rebuild: rebuildRemedy(generator, ver, ["hv_vmbus", "hv_storvsc"]) }, ev);
  return false;
}
