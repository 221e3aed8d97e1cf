// Which kernel, initramfs and command line a Linux boot uses: disk sectors the boot loader read mapped back to files
// through filesystem extents, or the default entry of grub.cfg (+ grubenv, BLS snippets) or syslinux.cfg/extlinux.conf
// (SYSLINUX wiki "Config": DEFAULT/LABEL/KERNEL/LINUX/APPEND/INITRD) read statically.
import { ImageError } from "../images/errors.ts";
import { readFileAt, resolvePath, type Extent, type FileSystem } from "../images/fs.ts";
import type { VolumeEntry, Volumes } from "../images/fs-open.ts";
import { parseGrubenv, readGrubConfig } from "../images/grub-cfg.ts";
import { parseBlsEntries, type BlsEntry } from "../images/bls.ts";
import { MAX_BLS_ENTRIES, MAX_BOOT_TEXT_BYTES, MAX_GRUB_CFG_BYTES, MAX_SCAN_NAMES } from "../images/limits.ts";
import type { Finding } from "./findings.ts";

/** A file on one of the disk's volumes. */
export interface FileRef { vol: VolumeEntry; fs: FileSystem; path: string; size: number; extents: Extent[] }

/** The boot entry the OS stage evaluates. */
export interface BootEntry {
  source: "grub" | "bls" | "syslinux";
  /** Where the configuration was read ("p1:/boot/grub/grub.cfg"). */
  config: string;
  title: string;
  kernelPath?: string;
  initrdPaths: string[];
  cmdline?: string;
  version?: string;
  /** The volume the configuration says the kernel is on (search --fs-uuid), or the configuration's own. */
  vol?: VolumeEntry;
  /** Variables bootgate could not expand, conditions it could not decide. */
  notes: string[];
  findings: Finding[];
}

const GRUB_CFGS = ["/boot/grub/grub.cfg", "/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub2/grub.cfg"];
const SYSLINUX_CFGS = ["/syslinux.cfg", "/syslinux/syslinux.cfg", "/boot/syslinux/syslinux.cfg", "/extlinux.conf",
  "/extlinux/extlinux.conf", "/boot/extlinux/extlinux.conf", "/boot/syslinux.cfg"];
const BLS_DIRS = ["/boot/loader/entries", "/loader/entries"];

export const volName = (v: VolumeEntry): string =>
  v.lvName ? `LV ${v.lvName}` : v.partitionIndex !== undefined ? `partition ${v.partitionIndex}` : "the whole disk";

/** Every volume whose filesystem opens, the preferred one first. */
function openable(vols: Volumes, prefer?: VolumeEntry): { vol: VolumeEntry; fs: FileSystem }[] {
  const order = prefer ? [prefer, ...vols.list.filter((v) => v !== prefer)] : vols.list;
  const out: { vol: VolumeEntry; fs: FileSystem }[] = [];
  for (const vol of order) {
    const fs = vols.tryOpen(vol);
    if (fs) out.push({ vol, fs });
  }
  return out;
}

function fileRef(vol: VolumeEntry, fs: FileSystem, path: string): FileRef | undefined {
  try {
    const h = resolvePath(fs, path);
    if (!h) return undefined;
    const st = fs.stat(h);
    if (st.type !== "file") return undefined;
    return { vol, fs, path, size: st.size, extents: fs.extents(h) };
  } catch (e) {
    if (e instanceof ImageError) return undefined;
    throw e;
  }
}

/** A path as a boot loader names it, looked up on the preferred volume first, then on every readable one. */
export function findFile(vols: Volumes, path: string, prefer?: VolumeEntry): FileRef | undefined {
  for (const { vol, fs } of openable(vols, prefer)) {
    const r = fileRef(vol, fs, path);
    if (r) return r;
  }
  return undefined;
}

/** The file whose data holds whole-disk `lba` (the first sector the boot loader read of a kernel or initrd), searched in / and /boot. */
export function fileAtLba(vols: Volumes, lba: number): FileRef | undefined {
  const prefer = vols.partitionAt(lba);
  for (const { vol, fs } of openable(vols, prefer)) {
    if (vol.startLba !== undefined && vol.id !== "disk" && vol !== prefer) continue;     // a partition not holding lba
    for (const dir of ["/boot", "/"]) {
      let names: string[];
      try {
        const h = resolvePath(fs, dir);
        if (!h || fs.stat(h).type !== "dir") continue;
        names = fs.readdir(h).slice(0, MAX_SCAN_NAMES);
      } catch (e) {
        if (e instanceof ImageError) continue;
        throw e;
      }
      for (const n of names) {
        if (n === "." || n === "..") continue;
        const r = fileRef(vol, fs, `${dir === "/" ? "" : dir}/${n}`);
        if (r && r.extents.some((x) => lba >= x.lba && lba < x.lba + x.count)) return r;
      }
    }
  }
  return undefined;
}

function readText(fs: FileSystem, path: string, max: number): string | undefined {
  try {
    return readFileAt(fs, path, max)?.toString("utf8");
  } catch (e) {
    if (e instanceof ImageError) return undefined;
    throw e;
  }
}

function blsEntries(vols: Volumes, prefer: VolumeEntry): BlsEntry[] {
  for (const { fs } of openable(vols, prefer)) {
    for (const dir of BLS_DIRS) {
      try {
        const h = resolvePath(fs, dir);
        if (!h || fs.stat(h).type !== "dir") continue;
        const names = fs.readdir(h).filter((n) => n.endsWith(".conf")).slice(0, MAX_BLS_ENTRIES);
        const files = names.map((name) => ({ name, text: readText(fs, `${dir}/${name}`, MAX_BOOT_TEXT_BYTES) ?? "" }));
        if (files.length) return parseBlsEntries(files);
      } catch (e) {
        if (e instanceof ImageError) continue;
        throw e;
      }
    }
  }
  return [];
}

/** The default entry of the first grub.cfg found (GRUB_CFGS order), with grubenv and BLS snippets. */
function grubDefault(vols: Volumes, platform: "pc" | "efi"): BootEntry | undefined {
  for (const { vol, fs } of openable(vols)) {
    for (const p of GRUB_CFGS) {
      const text = readText(fs, p, MAX_GRUB_CFG_BYTES);
      if (text === undefined) continue;
      const dir = p.slice(0, p.lastIndexOf("/"));
      const envText = readText(fs, `${dir}/grubenv`, MAX_BOOT_TEXT_BYTES);
      const grubenv = envText ? parseGrubenv(envText).vars : undefined;
      const bls = /\bblscfg\b/.test(text) ? blsEntries(vols, vol) : [];
      const config = `${vol.id}:${p}`;
      const opts = { file: config, platform, ...(grubenv ? { grubenv } : {}), ...(bls.length ? { bls } : {}) };
      let cfg = readGrubConfig(text, opts);
      const notes: string[] = [];
      if (!cfg.all.length && /^\s*linux(16|efi)?\s/m.test(text)) {
        // `linux`/`initrd`/`boot` at the top level (no menu): GRUB runs them as the script goes; evaluate them as one entry.
        const top = readGrubConfig(`menuentry 'grub.cfg (top-level commands)' {\n${text}\n}\n`, opts);
        if (top.defaultEntry?.kernel) { cfg = top; notes.push("kernel loaded by top-level commands, no menu"); }
      }
      const e = cfg.defaultEntry;
      if (!e) return { source: "grub", config, title: "(none)", initrdPaths: [], notes: ["grub.cfg has no boot entry"], findings: cfg.findings };
      const search = e.rootDevice?.search;
      const target = search?.by === "fs-uuid" ? vols.list.find((v) => v.uuid?.toLowerCase() === search.value.toLowerCase())
        : search?.by === "label" ? vols.list.find((v) => v.label === search.value) : vol;
      const blsEntry = e.bls ? bls.find((b) => b.id === e.bls || b.file === e.bls) : undefined;
      return {
        source: e.bls ? "bls" : "grub", config, title: e.title, ...(e.kernel ? { kernelPath: e.kernel } : {}),
        initrdPaths: e.initrds, ...(e.cmdline !== undefined ? { cmdline: e.cmdline } : {}),
        ...(blsEntry?.version ? { version: blsEntry.version } : {}), vol: target ?? vol,
        notes: [...notes, ...cfg.ambiguities.slice(0, 8), ...(e.conditional ? ["the default entry is defined inside a condition bootgate could not decide"] : [])],
        findings: cfg.findings,
      };
    }
  }
  return undefined;
}

/** syslinux.cfg / extlinux.conf: DEFAULT names a LABEL (or is itself a kernel command); keywords are case-insensitive. */
export function parseSyslinuxDefault(text: string): { label: string; kernel?: string; append?: string; initrd?: string } | undefined {
  const labels: { label: string; kernel?: string; append?: string; initrd?: string }[] = [];
  let def: string | undefined, cur: (typeof labels)[number] | undefined;
  for (const raw of text.split("\n").slice(0, 100_000)) {
    const m = /^\s*([A-Za-z_]+)\s*(.*?)\s*$/.exec(raw.replace(/\r$/, ""));
    if (!m || raw.trim().startsWith("#")) continue;
    const key = m[1].toUpperCase(), val = m[2];
    if (key === "DEFAULT") def = val;
    else if (key === "LABEL") { cur = { label: val }; if (labels.length < 4096) labels.push(cur); }
    else if (cur && (key === "KERNEL" || key === "LINUX")) cur.kernel = val;
    else if (cur && key === "APPEND") cur.append = val;
    else if (cur && key === "INITRD") cur.initrd = val;
  }
  if (def !== undefined) {
    const hit = labels.find((l) => l.label === def);
    if (hit) return hit;
    const [k, ...rest] = def.split(/\s+/);
    return { label: def, kernel: k, append: rest.join(" ") };
  }
  return labels[0];
}

function syslinuxDefault(vols: Volumes): BootEntry | undefined {
  for (const { vol, fs } of openable(vols)) {
    for (const p of SYSLINUX_CFGS) {
      const text = readText(fs, p, MAX_BOOT_TEXT_BYTES);
      if (text === undefined) continue;
      const d = parseSyslinuxDefault(text);
      const config = `${vol.id}:${p}`;
      if (!d) return { source: "syslinux", config, title: "(none)", initrdPaths: [], notes: ["no LABEL in the configuration"], findings: [] };
      const dir = p.slice(0, p.lastIndexOf("/")) || "";
      const abs = (f: string) => (f.startsWith("/") ? f : `${dir}/${f}`);
      const initrdArg = /(?:^|\s)initrd=(\S+)/.exec(d.append ?? "")?.[1];
      const initrds = (d.initrd ?? initrdArg)?.split(",").filter(Boolean).map(abs) ?? [];
      return {
        source: "syslinux", config, title: d.label, ...(d.kernel ? { kernelPath: abs(d.kernel) } : {}), initrdPaths: initrds,
        cmdline: `BOOT_IMAGE=${d.kernel ?? ""} ${d.append ?? ""}`.trim(), vol, notes: [], findings: [],
      };
    }
  }
  return undefined;
}

/** The default boot entry read statically: grub.cfg (with BLS) first, then SYSLINUX/EXTLINUX. */
export function staticDefaultEntry(vols: Volumes, platform: "pc" | "efi"): BootEntry | undefined {
  return grubDefault(vols, platform) ?? syslinuxDefault(vols);
}

/** Kernel version from a kernel file name: vmlinuz-6.1.0-56-amd64, vmlinuz-5.14.0-362.el9.x86_64, vmlinux-... */
export function versionFromKernelName(path: string): string | undefined {
  const m = /(?:^|\/)(?:vmlinuz|vmlinux|bzImage|kernel)-([^/]+)$/.exec(path);
  return m?.[1];
}

/** "HdrS" at 0x202 of a bzImage; kernel_version (0x20E) points at a NUL-terminated string 0x200 past it (x86 boot.rst). */
export function versionFromBzImage(k: FileRef): string | undefined {
  try {
    const h = resolvePath(k.fs, k.path);
    if (!h) return undefined;
    const head = k.fs.read(h, 0, 0x400);
    if (head.length < 0x210 || head.readUInt32LE(0x202) !== 0x53726448) return undefined;
    const off = 0x200 + head.readUInt16LE(0x20e);
    const s = k.fs.read(h, off, 256).toString("latin1").split("\0")[0];
    return /^\d[\x21-\x7e]*/.exec(s)?.[0];
  } catch (e) {
    if (e instanceof ImageError) return undefined;
    throw e;
  }
}
