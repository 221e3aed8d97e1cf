// Which kernel drivers a Linux boot can use before root is mounted: built in (modules.builtin, /boot/config-<ver>)
// or in the initramfs for that kernel version, not blacklisted (modprobe.d(5) in the initramfs, rd.driver.blacklist /
// modprobe.blacklist / module_blacklist on the command line), with their modules.dep closure (depmod(8)); and the
// NVMe path of Azure's NVMe-only sizes (shared/HYPERV.md: drivers/nvme/host, nvme + nvme_core).
import type { Initramfs } from "../images/initramfs.ts";
import { configValue, moduleClosure, normalizeModuleName, parseModprobeConf, emptyModprobeConfig,
  type ConfigValue, type ModprobeConfig, type ModuleDep } from "../images/linux-modules.ts";
import type { KernelArg, TargetController } from "../images/root-spec.ts";
import { defineFindings, type Finding } from "./findings.ts";

defineFindings([
  {
    code: "LINUX_NVME_DRIVER_MISSING", severity: "error", stage: "root",
    title: "The OS disk is on NVMe and the kernel has no NVMe driver before root is mounted",
    message: "on {target} the root disk is an NVMe namespace (/dev/nvme0n1); Linux {version} has {missing} neither built in nor in the initramfs",
    remedy: "{rebuild}",
    explain: "Azure's NVMe-only sizes (the v6 families, Generation 2) present the OS disk through an NVMe controller, not VMBus SCSI: hv_storvsc never sees it. The kernel needs the nvme driver (and nvme_core, which it depends on) built in or in the initramfs; an initramfs built host-only on a SCSI or IDE VM usually lacks it, and the boot ends in the initramfs emergency shell waiting for the root device.",
  },
]);

/** Kconfig symbol of each module that matters here (drivers/hv/Kconfig, drivers/scsi/Kconfig, fs/*\/Kconfig...). */
export const MODULE_CONFIG: Record<string, string> = {
  hv_vmbus: "HYPERV", hv_storvsc: "HYPERV_STORAGE", ata_piix: "ATA_PIIX", libata: "ATA", sd_mod: "BLK_DEV_SD",
  scsi_mod: "SCSI", scsi_common: "SCSI_COMMON", scsi_transport_fc: "SCSI_FC_ATTRS", ext4: "EXT4_FS", ext3: "EXT3_FS",
  ext2: "EXT2_FS", xfs: "XFS_FS", btrfs: "BTRFS_FS", vfat: "VFAT_FS", dm_mod: "BLK_DEV_DM", jbd2: "JBD2", nvme: "BLK_DEV_NVME",
  nvme_core: "NVME_CORE",
};

export type ModState = "initrd" | "builtin" | "missing" | "unknown";

/** What the kernel and its initramfs offer, and how to ask about one module. */
export class DriverFacts {
  /** Normalised module names in the initramfs for this kernel version. */
  readonly inInitrd: Set<string>;
  readonly modprobe: ModprobeConfig;
  constructor(
    readonly version: string | undefined,
    readonly initramfs: Initramfs | undefined,
    readonly builtin: Set<string> | undefined,
    readonly builtinFrom: string | undefined,
    readonly config: Map<string, ConfigValue> | undefined,
    readonly configFrom: string | undefined,
    readonly deps: Map<string, ModuleDep> | undefined,
    readonly depsFrom: string | undefined,
    readonly cmdArgs: KernelArg[],
  ) {
    this.inInitrd = new Set((initramfs?.modules ?? []).filter((m) => !version || m.kernelVersion === version).map((m) => m.name));
    this.modprobe = initramfs ? initramfs.modprobe : emptyModprobeConfig();
    // The kernel's own command line: rd.driver.blacklist (dracut), modprobe.blacklist (kmod), module_blacklist (kernel).
    const extra: string[] = [];
    for (const a of cmdArgs) {
      if (a.value && ["rd.driver.blacklist", "modprobe.blacklist", "module_blacklist"].includes(a.key)) {
        for (const m of a.value.split(",").filter(Boolean)) extra.push(`blacklist ${m}`);
      }
    }
    if (extra.length) parseModprobeConf(extra.join("\n"), "kernel command line", this.modprobe);
  }

  /** Whether modules.builtin or the kernel config is known (so a module missing from the initramfs can be judged). */
  get builtinKnown(): boolean { return this.builtin !== undefined || this.config !== undefined; }

  isBuiltin(mod: string): boolean {
    const n = normalizeModuleName(mod);
    if (this.builtin?.has(n)) return true;
    const sym = MODULE_CONFIG[n];
    return !!(sym && this.config && configValue(this.config, sym) === "y");
  }

  state(mod: string): ModState {
    const n = normalizeModuleName(mod);
    if (this.isBuiltin(n)) return "builtin";
    if (this.inInitrd.has(n)) return "initrd";
    return this.builtinKnown ? "missing" : "unknown";
  }

  /** Why a loadable module would not be loaded: the directive and where it came from (builtin code cannot be blacklisted). */
  blocked(mod: string): { how: string; source: string } | undefined {
    const n = normalizeModuleName(mod);
    if (this.isBuiltin(n)) return undefined;
    const src = this.modprobe.sources.filter((s) => new RegExp(`\\s${n.replace(/_/g, "[-_]")}(\\s|$)`).test(s + " "));
    if (this.modprobe.disabled.has(n)) return { how: `disabled by "install ${n} ${this.modprobe.install.get(n) ?? ""}"`.trim(), source: src.join("; ") };
    if (this.modprobe.blacklist.has(n)) return { how: "blacklisted", source: src.join("; ") || "modprobe.d" };
    return undefined;
  }

  /** modules.dep closure members (the module itself excluded) that are neither built in nor in the initramfs; undefined without modules.dep. */
  missingDeps(mod: string): string[] | undefined {
    if (!this.deps) return undefined;
    const n = normalizeModuleName(mod);
    return moduleClosure(n, this.deps).filter((d) => d !== n && this.state(d) !== "builtin" && this.state(d) !== "initrd");
  }

  /** CONFIG_HYPERV_STORAGE of this kernel: from the config, else inferred from hv_storvsc's presence in the module lists. */
  hypervStorage(): { value: string; from: string } | undefined {
    if (this.config) return { value: configValue(this.config, "HYPERV_STORAGE"), from: this.configFrom ?? "kernel config" };
    if (this.builtin?.has("hv_storvsc")) return { value: "y", from: `${this.builtinFrom} lists hv_storvsc` };
    if (this.deps?.has("hv_storvsc")) return { value: "m", from: `${this.depsFrom} lists hv_storvsc` };
    if (this.inInitrd.has("hv_storvsc")) return { value: "m", from: "hv_storvsc.ko is in the initramfs" };
    return undefined;
  }

  /** Module names (for the report) of the initramfs for this kernel. */
  get initrdModules(): string[] { return [...this.inInitrd].sort(); }
}

/** A set of modules the boot needs together; its status over DriverFacts. */
export interface PathStatus {
  modules: string[];
  ok: boolean;
  missing: string[];
  unknown: string[];
  blocked: { module: string; how: string; source: string }[];
  /** Per module: "initrd" / "builtin" / "missing" / "unknown". */
  states: Record<string, ModState>;
}

export function pathStatus(f: DriverFacts, modules: string[]): PathStatus {
  const st: PathStatus = { modules, ok: false, missing: [], unknown: [], blocked: [], states: {} };
  for (const m of modules) {
    const s = f.state(m);
    st.states[m] = s;
    if (s === "missing") st.missing.push(m);
    else if (s === "unknown") st.unknown.push(m);
    else if (s === "initrd") {
      const b = f.blocked(m);
      if (b) st.blocked.push({ module: m, ...b });
    }
  }
  st.ok = !st.missing.length && !st.unknown.length && !st.blocked.length;
  return st;
}

/** Remedy text: rebuild the initramfs with `mods`, in the generator's own way. */
export function rebuildRemedy(generator: string | undefined, version: string, mods: string[]): string {
  const list = mods.join(" ");
  const dracut = `\`dracut -f --add-drivers "${list}" --kver ${version}\` (to keep it: \`echo 'add_drivers+=" ${list} "' > /etc/dracut.conf.d/hyperv.conf\`)`;
  const it = `\`printf '%s\\n' ${list} >> /etc/initramfs-tools/modules && update-initramfs -u -k ${version}\``;
  if (generator === "dracut") return `inside the guest (before converting, or from a rescue shell): ${dracut}`;
  if (generator === "initramfs-tools") return `inside the guest (before converting, or from a rescue shell): ${it}`;
  return `inside the guest: ${it} (Debian/Ubuntu) or ${dracut} (RHEL/SUSE/Fedora)`;
}

/** root-spec's device naming and the report's wording for a generation and controller (absent: Gen1 ide, Gen2 scsi). */
export function controllerTarget(gen: 1 | 2, controller?: "ide" | "scsi" | "nvme"): { targetCtl: TargetController; targetText: string } {
  const c = controller ?? (gen === 1 ? "ide" : "scsi");
  if (c === "nvme") return { targetCtl: "azure-nvme", targetText: `Generation ${gen} with the OS disk on NVMe (Azure NVMe sizes)` };
  if (c === "ide") return { targetCtl: "gen1-ide", targetText: `Hyper-V Generation ${gen} (IDE)` };
  return { targetCtl: "gen2-scsi", targetText: `Hyper-V Generation ${gen} (SCSI)` };
}

/** Where the storage check reports (emu/os-linux.ts's Run). */
export interface StorageSink {
  add(code: string, params: Record<string, unknown>, evidence?: Record<string, unknown>): Finding;
  missing: string[];
  facts: Record<string, unknown>;
  chain: { stage: string; what: string; evidence: Record<string, unknown> }[];
}

/**
 * The OS disk on NVMe: nvme built in, or in the initramfs, not blacklisted, with its modules.dep closure (nvme_core)
 * there too. hv_storvsc plays no part (the NVMe controller is a PCI device, not a VMBus one).
 */
export function checkNvmeStorage(run: StorageSink, f: DriverFacts, targetText: string, generator: string | undefined, ver: string): boolean {
  const st = pathStatus(f, ["nvme"]);
  const needed = ["nvme", "nvme_core"];
  const ev = { initrdModules: f.initrdModules, states: { ...st.states, nvme_core: f.state("nvme_core") }, builtinFrom: f.builtinFrom, configFrom: f.configFrom };
  const rebuild = rebuildRemedy(generator, ver, needed);
  for (const b of st.blocked) {
    run.add("LINUX_STORAGE_DRIVER_BLACKLISTED", { module: b.module, how: b.how, source: b.source, target: targetText, rebuild });
  }
  if (st.blocked.length) return false;
  if (st.unknown.length) {
    run.add("LINUX_KERNEL_FACTS_MISSING", { what: "modules.builtin and the kernel config", version: ver, modules: "nvme",
      looked: `/lib/modules/${ver}/modules.builtin, /boot/config-${ver}, the initramfs` });
    run.missing.push(`whether nvme is built into Linux ${ver}`);
    return false;
  }
  if (st.missing.length) {
    run.add("LINUX_NVME_DRIVER_MISSING", { target: targetText, version: ver, missing: "nvme (and nvme_core)", rebuild }, ev);
    return false;
  }
  if (f.state("nvme") === "initrd") {
    const miss = f.missingDeps("nvme");
    if (miss === undefined) {
      run.missing.push(`modules.dep of Linux ${ver} (to check nvme's dependencies)`);
      return false;
    }
    if (miss.length) {
      run.add("LINUX_MODULE_DEPS_MISSING", { module: "nvme", missing: miss.join(", "), version: ver, rebuild: rebuildRemedy(generator, ver, ["nvme", ...miss]) },
        { depsFrom: f.depsFrom });
      return false;
    }
  }
  const mods = f.state("nvme_core") === "missing" ? ["nvme"] : needed;
  run.facts.storageDrivers = mods;
  run.chain.push({ stage: "root", what: `storage: ${mods.join(" + ")} available for ${targetText}`, evidence: { states: ev.states } });
  return true;
}
