// Kernel command lines (Documentation/admin-guide/kernel-parameters.rst; quoting of lib/cmdline.c
// next_arg) and device specs of root=, resume=, fstab and crypttab (util-linux libblkid tags,
// init/do_mounts.c name_to_dev_t incl. PARTUUID=SSSSSSSS-PP/PARTNROFF=, dracut.cmdline(7)), resolved
// against the volumes of a disk and the device names the Hyper-V/Azure target will give them.
import { overLimit } from "./errors.ts";
import { MAX_BOOT_TEXT_BYTES } from "./limits.ts";
import type { Layout } from "./layout.ts";

/** One filesystem-bearing thing on the disk (a partition, an LV, a LUKS container). */
export interface Volume {
  /** Linux partition number (1..), absent for LVs. */
  partitionIndex?: number;
  fsUuid?: string;
  fsLabel?: string;
  fsKind?: string;
  /** GPT partition GUID. */
  partUuid?: string;
  partLabel?: string;
  /** MBR disk signature (LBA 0 offset 0x1B8) of the disk holding the partition. */
  mbrSignature?: number;
  /** "VG/LV" for logical volumes. */
  lvName?: string;
  luksUuid?: string;
}

/** How the target presents the OS disk: Gen1 IDE (ata_piix or hv_storvsc) and Gen2 SCSI both give /dev/sda; Azure NVMe /dev/nvme0n1. */
export type TargetController = "gen1-ide" | "gen2-scsi" | "azure-nvme";

export type SpecKind = "uuid" | "partuuid" | "label" | "partlabel" | "dev-name" | "lvm" | "dm" | "md" | "by-path" | "by-id"
  | "majmin" | "zfs" | "network" | "virtual" | "unknown";

export interface SpecResult {
  kind: SpecKind;
  /** The spec as written. */
  value: string;
  resolvesTo?: Volume;
  /** True when the spec names the same thing whatever controller or hypervisor presents the disk. */
  stableAcrossControllers: boolean;
  /** For kernel names: what the same partition is called on the target. */
  targetName?: string;
  problem?: string;
  note?: string;
}

export interface KernelArg { key: string; value?: string }

/** lib/cmdline.c next_arg: blank-separated, double quotes group (and are removed), "--" ends the kernel's part. */
export function parseCmdline(s: string): { args: KernelArg[]; init: string[] } {
  if (s.length > MAX_BOOT_TEXT_BYTES) throw overLimit("E_CMDLINE_SIZE", `kernel command line of ${s.length} bytes`);
  const words: string[] = [];
  let cur = "", inQ = false, have = false;
  for (const ch of s) {
    if (ch === "\"") { inQ = !inQ; have = true; continue; }
    if (!inQ && /\s/.test(ch)) { if (have || cur) words.push(cur); cur = ""; have = false; continue; }
    cur += ch;
  }
  if (have || cur) words.push(cur);
  const dd = words.indexOf("--");
  const kernel = dd >= 0 ? words.slice(0, dd) : words;
  const args = kernel.map((w) => { const i = w.indexOf("="); return i < 0 ? { key: w } : { key: w.slice(0, i), value: w.slice(i + 1) }; });
  return { args, init: dd >= 0 ? words.slice(dd + 1) : [] };
}

/** The value the kernel/dracut uses: the last occurrence wins. */
export function cmdlineValue(args: KernelArg[], key: string): string | undefined {
  for (let i = args.length - 1; i >= 0; i--) if (args[i].key === key) return args[i].value ?? "";
  return undefined;
}
export const cmdlineValues = (args: KernelArg[], key: string): string[] =>
  args.filter((a) => a.key === key).map((a) => a.value ?? "");

const lc = (s?: string) => s?.toLowerCase();

/** Kernel name families: which driver creates them, and whether Hyper-V/Azure guests have them. */
const NAME_FAMILIES: { re: RegExp; family: "sd" | "hd" | "vd" | "xvd" | "nvme"; origin: string }[] = [
  { re: /^\/dev\/(sd)([a-z]+)([0-9]*)$/, family: "sd", origin: "SCSI/SATA disk (sd)" },
  { re: /^\/dev\/(hd)([a-z])([0-9]*)$/, family: "hd", origin: "legacy IDE driver (pre-libata)" },
  { re: /^\/dev\/(vd)([a-z]+)([0-9]*)$/, family: "vd", origin: "virtio-blk (KVM/QEMU)" },
  { re: /^\/dev\/(xvd)([a-z]+)([0-9]*)$/, family: "xvd", origin: "Xen blkfront (Xen / old AWS)" },
];

function letters(s: string): number {
  let n = 0;
  for (const c of s) n = n * 26 + (c.charCodeAt(0) - 96);
  return n - 1;
}
function letterName(i: number): string {
  let s = "";
  for (i += 1; i > 0; i = Math.floor((i - 1) / 26)) s = String.fromCharCode(97 + ((i - 1) % 26)) + s;
  return s;
}

function targetDevName(target: TargetController, disk: number, part: number | undefined): string {
  if (target === "azure-nvme") return `/dev/nvme0n${disk + 1}${part ? `p${part}` : ""}`;
  return `/dev/sd${letterName(disk)}${part ?? ""}`;
}

const TARGET_TEXT: Record<TargetController, string> = {
  "gen1-ide": "Hyper-V Generation 1 (IDE, hv_storvsc/ata_piix)", "gen2-scsi": "Hyper-V Generation 2 (SCSI, hv_storvsc)",
  "azure-nvme": "Azure NVMe",
};

/** Resolve one device spec (root=, fstab fs_spec, crypttab device, resume=) against the disk's volumes. */
export function resolveDeviceSpec(spec: string, volumes: Volume[], target: TargetController): SpecResult {
  const r = (x: Omit<SpecResult, "value">): SpecResult => ({ value: spec, ...x });
  const tag = /^(UUID|PARTUUID|LABEL|PARTLABEL)=(.*)$/.exec(spec);
  if (tag) return resolveTag(tag[1], tag[2], spec, volumes);
  if (spec.startsWith("/dev/disk/by-")) {
    const m = /^\/dev\/disk\/by-([a-z]+)\/(.+)$/.exec(spec);
    const kind = m?.[1], v = m ? udevUnescape(m[2]) : "";
    if (kind === "uuid") return { ...resolveTag("UUID", v, spec, volumes) };
    if (kind === "label") return resolveTag("LABEL", v, spec, volumes);
    if (kind === "partuuid") return resolveTag("PARTUUID", v, spec, volumes);
    if (kind === "partlabel") return resolveTag("PARTLABEL", v, spec, volumes);
    if (kind === "path") return r({ kind: "by-path", stableAcrossControllers: false, problem: `${spec} encodes the PCI/SCSI address of the source VM's controller; on ${TARGET_TEXT[target]} the path differs and the link does not exist` });
    if (kind === "id") {
      if (v.startsWith("dm-name-")) return resolveLvm(v.slice(8), spec, volumes, true);
      if (/^(dm-uuid-|lvm-pv-uuid-|md-uuid-|md-name-)/.test(v)) return r({ kind: v.startsWith("md") ? "md" : "dm", stableAcrossControllers: true, note: "names a device-mapper/MD/LVM object by its own UUID" });
      return r({ kind: "by-id", stableAcrossControllers: false, problem: `${spec} embeds the disk's model/serial as the source controller reported it (${v.split("-")[0]}); Hyper-V and Azure disks report other IDs` });
    }
    return r({ kind: "unknown", stableAcrossControllers: false, problem: `unknown udev link directory in ${spec}` });
  }
  if (spec.startsWith("/dev/mapper/")) return resolveLvm(spec.slice(12), spec, volumes, true);
  if (/^\/dev\/md(\/|[0-9])/.test(spec)) return r({ kind: "md", stableAcrossControllers: true, note: "software RAID; assembled by mdadm from member superblocks" });
  for (const f of NAME_FAMILIES) {
    const m = f.re.exec(spec);
    if (m) return resolveDevName(spec, f.family, letters(m[2]), m[3] ? Number(m[3]) : undefined, f.origin, volumes, target);
  }
  const nv = /^\/dev\/nvme([0-9]+)n([0-9]+)(?:p([0-9]+))?$/.exec(spec);
  if (nv) return resolveDevName(spec, "nvme", Number(nv[1]) + Number(nv[2]) - 1, nv[3] ? Number(nv[3]) : undefined, "NVMe", volumes, target);
  const vgLv = /^\/dev\/([^/]+)\/([^/]+)$/.exec(spec);
  if (vgLv && !["disk", "mapper", "block", "char"].includes(vgLv[1])) return resolveLvm(`${vgLv[1]}/${vgLv[2]}`, spec, volumes, false);
  if (/^[0-9a-fA-F]{3,4}$/.test(spec) || /^[0-9]+:[0-9]+$/.test(spec) || /^\/dev\/block\/[0-9]+:[0-9]+$/.test(spec)) {
    const mm = spec.includes(":") ? spec.replace(/^.*\//, "").split(":").map(Number) : [Number.parseInt(spec, 16) >> 8, Number.parseInt(spec, 16) & 0xff];
    const guess = mm[0] === 8 ? ` (major 8 = sd: /dev/sd${letterName(mm[1] >> 4)}${mm[1] & 15 || ""})` : mm[0] === 259 ? " (major 259: NVMe/extended minors, order-dependent)" : "";
    return r({ kind: "majmin", stableAcrossControllers: false, problem: `root given as device number ${mm[0]}:${mm[1]}${guess}; numbers depend on driver and probe order and cannot be resolved statically` });
  }
  if (spec.startsWith("ZFS=")) return r({ kind: "zfs", stableAcrossControllers: true, note: `ZFS dataset ${spec.slice(4)}; the pool is found by its member labels (not resolved here)` });
  if (spec === "/dev/nfs" || /^[^/]+:\//.test(spec) || /^(nfs|iscsi|nbd|cifs):/.test(spec)) return r({ kind: "network", stableAcrossControllers: true, note: "network root/mount: not on this disk" });
  if (/^(none|tmpfs|proc|sysfs|devpts|devtmpfs|cgroup2?|securityfs|debugfs|efivarfs|overlay|shm)$/.test(spec)) return r({ kind: "virtual", stableAcrossControllers: true });
  return r({ kind: "unknown", stableAcrossControllers: false, problem: `unrecognised device spec ${JSON.stringify(spec)}` });
}

/** udev escapes in link names: \x2f for '/', \x20 for ' '. */
function udevUnescape(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

function resolveTag(tag: string, v: string, spec: string, volumes: Volume[]): SpecResult {
  const base = { value: spec, stableAcrossControllers: true };
  const one = (kind: SpecKind, hits: Volume[], what: string): SpecResult => {
    if (hits.length === 1) return { kind, ...base, resolvesTo: hits[0] };
    if (hits.length > 1) return { kind, ...base, resolvesTo: hits[0], problem: `${hits.length} volumes carry ${what}; which one is used depends on probe order` };
    return { kind, ...base, problem: `no volume on the disk has ${what}` };
  };
  switch (tag) {
    case "UUID": {
      const hits = volumes.filter((x) => lc(x.fsUuid) === lc(v) || lc(x.luksUuid) === lc(v));
      return one("uuid", hits, `filesystem UUID ${v}`);
    }
    case "LABEL": return one("label", volumes.filter((x) => x.fsLabel === v), `label ${JSON.stringify(v)}`);
    case "PARTLABEL": return one("partlabel", volumes.filter((x) => x.partLabel === v), `GPT partition name ${JSON.stringify(v)}`);
    default: return resolvePartuuid(v, spec, volumes);
  }
}

/** PARTUUID: a GPT partition GUID, or the MBR form "SSSSSSSS-PP" (disk signature, hex partition number), optional /PARTNROFF=n. */
function resolvePartuuid(v: string, spec: string, volumes: Volume[]): SpecResult {
  const base = { kind: "partuuid" as const, value: spec, stableAcrossControllers: true };
  const m = /^([^/]+)(?:\/PARTNROFF=(-?[0-9]+))?$/i.exec(v);
  if (!m) return { ...base, problem: `malformed PARTUUID ${JSON.stringify(v)}` };
  const off = m[2] ? Number(m[2]) : 0;
  const mbr = /^([0-9a-fA-F]{8})-([0-9a-fA-F]{2})$/.exec(m[1]);
  let hit: Volume | undefined;
  if (mbr) {
    const sig = Number.parseInt(mbr[1], 16), part = Number.parseInt(mbr[2], 16) + off;
    const onDisk = volumes.find((x) => x.mbrSignature !== undefined)?.mbrSignature;
    hit = volumes.find((x) => x.mbrSignature === sig && x.partitionIndex === part);
    if (!hit) {
      const why = onDisk === undefined ? "the disk has no MBR signature (GPT or unpartitioned)"
        : onDisk !== sig ? `the disk's MBR signature is ${onDisk.toString(16).padStart(8, "0")}, not ${mbr[1].toLowerCase()} (stale after conversion or re-partitioning)`
        : `the disk has no partition ${part}`;
      return { ...base, problem: `PARTUUID ${v} names MBR disk ${mbr[1].toLowerCase()} partition ${part}, but ${why}` };
    }
    return { ...base, resolvesTo: hit };
  }
  hit = volumes.find((x) => lc(x.partUuid) === lc(m[1]));
  if (hit && off) hit = volumes.find((x) => x.partitionIndex === (hit!.partitionIndex ?? 0) + off);
  return hit ? { ...base, resolvesTo: hit } : { ...base, problem: `no GPT partition has GUID ${m[1]}${off ? ` (+${off})` : ""}` };
}

/** LVM names: /dev/mapper/VG-LV (a '-' inside a name is doubled), /dev/VG/LV, dm-name-VG-LV. */
function resolveLvm(name: string, spec: string, volumes: Volume[], mapperForm: boolean): SpecResult {
  let vgLv = name;
  if (mapperForm) {
    const m = /^((?:[^-]|--)+)-((?:[^-]|--)+)$/.exec(name);
    if (!m) {
      const lk = volumes.find((x) => x.luksUuid && name.includes(x.luksUuid));
      return { kind: "dm", value: spec, stableAcrossControllers: true, ...(lk ? { resolvesTo: lk } : {}), note: "device-mapper name (LUKS/multipath), opened by name in the initramfs" };
    }
    vgLv = `${m[1].replace(/--/g, "-")}/${m[2].replace(/--/g, "-")}`;
  }
  const hit = volumes.find((x) => x.lvName === vgLv);
  return hit ? { kind: "lvm", value: spec, stableAcrossControllers: true, resolvesTo: hit }
    : { kind: "lvm", value: spec, stableAcrossControllers: true, problem: `no logical volume ${vgLv} on the disk` };
}

function resolveDevName(spec: string, family: "sd" | "hd" | "vd" | "xvd" | "nvme", disk: number, part: number | undefined,
                        origin: string, volumes: Volume[], target: TargetController): SpecResult {
  const targetName = targetDevName(target, disk, part);
  const hit = part !== undefined ? volumes.find((x) => x.partitionIndex === part) : undefined;
  const base: SpecResult = { kind: "dev-name", value: spec, stableAcrossControllers: false, targetName, ...(disk === 0 && hit ? { resolvesTo: hit } : {}) };
  const targetFamily = target === "azure-nvme" ? "nvme" : "sd";
  if (disk !== 0) return { ...base, problem: `${spec} is not the first disk; which disk gets which name on the target depends on probe order` };
  if (part !== undefined && !hit) return { ...base, problem: `the disk has no partition ${part}` };
  if (family === targetFamily) {
    return { ...base, note: target === "azure-nvme" ? "kernel names follow probe order; use UUID= instead"
      : "exists on the target, but kernel names follow probe order (an Azure resource disk or a second data disk can take /dev/sda); use UUID= instead" };
  }
  return { ...base, problem: `${spec} is a ${origin} name; on ${TARGET_TEXT[target]} the same partition is ${targetName}, so ${spec} does not exist` };
}

export interface CmdlineRoot {
  args: KernelArg[];
  root?: SpecResult;
  rootfstype?: string;
  rootflags?: string;
  resume?: SpecResult;
  /** rd.lvm.lv= (VG/LV), rd.lvm.vg=, rd.luks.uuid=, rd.md.uuid= as written. */
  lvmLvs: string[];
  lvmVgs: string[];
  luksUuids: string[];
  mdUuids: string[];
  /** rd.lvm.lv / rd.luks.uuid naming nothing on the disk, missing root=... */
  problems: string[];
}

/** The kernel command line's root (and what dracut activates before it). */
export function resolveCmdlineRoot(cmdline: string, volumes: Volume[], target: TargetController): CmdlineRoot {
  const { args } = parseCmdline(cmdline);
  const root = cmdlineValue(args, "root"), resume = cmdlineValue(args, "resume");
  const out: CmdlineRoot = {
    args, lvmLvs: cmdlineValues(args, "rd.lvm.lv"), lvmVgs: cmdlineValues(args, "rd.lvm.vg"),
    luksUuids: [...cmdlineValues(args, "rd.luks.uuid"), ...cmdlineValues(args, "rd.luks.name").map((x) => x.split("=")[0])],
    mdUuids: cmdlineValues(args, "rd.md.uuid"), problems: [],
    ...(cmdlineValue(args, "rootfstype") !== undefined ? { rootfstype: cmdlineValue(args, "rootfstype") } : {}),
    ...(cmdlineValue(args, "rootflags") !== undefined ? { rootflags: cmdlineValue(args, "rootflags") } : {}),
  };
  if (root === undefined || root === "") out.problems.push("no root= on the kernel command line (the initramfs must find root by other means)");
  else out.root = resolveDeviceSpec(root, volumes, target);
  if (resume) out.resume = resolveDeviceSpec(resume, volumes, target);
  for (const lv of out.lvmLvs) if (!volumes.some((x) => x.lvName === lv)) out.problems.push(`rd.lvm.lv=${lv} names no logical volume on the disk`);
  for (const u of out.luksUuids) {
    const id = u.replace(/^luks-/, "").toLowerCase();
    if (!volumes.some((x) => lc(x.luksUuid) === id)) out.problems.push(`rd.luks.uuid=${u} names no LUKS container on the disk`);
  }
  return out;
}

/** Volumes of a partitioned disk as readLayout sees them (LVs and LUKS contents are added by their readers). */
export function volumesFromLayout(layout: Layout): Volume[] {
  const sig = layout.partitioning === "mbr" ? layout.mbr?.signature : undefined;
  return layout.partitions.filter((p) => !p.extended).map((p) => {
    const c = p.content, luks = c.kind === "luks";
    return {
      partitionIndex: p.index, fsKind: c.kind,
      ...(c.uuid && !luks ? { fsUuid: c.uuid } : {}), ...(c.uuid && luks ? { luksUuid: c.uuid } : {}),
      ...(c.label !== undefined ? { fsLabel: c.label } : {}), ...(p.guid ? { partUuid: p.guid } : {}),
      ...(p.name ? { partLabel: p.name } : {}), ...(sig !== undefined ? { mbrSignature: sig } : {}),
    };
  });
}
