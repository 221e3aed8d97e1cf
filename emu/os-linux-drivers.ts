// Which kernel drivers a Linux boot can use before root is mounted: built in (modules.builtin, /boot/config-<ver>)
// or in the initramfs for that kernel version, not blacklisted (modprobe.d(5) in the initramfs, rd.driver.blacklist /
// modprobe.blacklist / module_blacklist on the command line), with their modules.dep closure (depmod(8)).
import type { Initramfs } from "../images/initramfs.ts";
import { configValue, moduleClosure, normalizeModuleName, parseModprobeConf, emptyModprobeConfig,
  type ConfigValue, type ModprobeConfig, type ModuleDep } from "../images/linux-modules.ts";
import type { KernelArg } from "../images/root-spec.ts";

/** Kconfig symbol of each module that matters here (drivers/hv/Kconfig, drivers/scsi/Kconfig, fs/*\/Kconfig...). */
export const MODULE_CONFIG: Record<string, string> = {
  hv_vmbus: "HYPERV", hv_storvsc: "HYPERV_STORAGE", ata_piix: "ATA_PIIX", libata: "ATA", sd_mod: "BLK_DEV_SD",
  scsi_mod: "SCSI", scsi_common: "SCSI_COMMON", scsi_transport_fc: "SCSI_FC_ATTRS", ext4: "EXT4_FS", ext3: "EXT3_FS",
  ext2: "EXT2_FS", xfs: "XFS_FS", btrfs: "BTRFS_FS", vfat: "VFAT_FS", dm_mod: "BLK_DEV_DM", jbd2: "JBD2", nvme: "BLK_DEV_NVME",
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
