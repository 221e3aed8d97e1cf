// Boot Loader Specification type #1 entries (/boot/loader/entries/*.conf; uapi-group.org
// "Boot Loader Specification", "Type #1 Boot Loader Entry Keys"), as RHEL 8+/Fedora's grub2
// `blscfg` command reads them, and their ordering (Fedora's blscfg.c: newest version first).
import { overLimit } from "./errors.ts";
import { MAX_BLS_ENTRIES, MAX_BOOT_TEXT_BYTES } from "./limits.ts";

export interface BlsEntry {
  /** File name ("<machine-id>-<version>.conf"). */
  file: string;
  /** The file name without ".conf": what grubenv's saved_entry names. */
  id: string;
  title?: string;
  version?: string;
  machineId?: string;
  sortKey?: string;
  linux?: string;
  /** Every `initrd` line and every path on it, in order (may hold $tuned_initrd). */
  initrd: string[];
  /** All `options` lines joined by a space (may hold $kernelopts, $tuned_params). */
  options: string;
  efi?: string;
  devicetree?: string;
  architecture?: string;
  grubUsers?: string;
  grubArg?: string;
  grubClass: string[];
  /** Keys the specification does not define (RHEL's "id"...). */
  other: Record<string, string>;
}

/** Parse one snippet: "key value" lines, '#' comments, keys may repeat (initrd, options). */
export function parseBlsEntry(file: string, text: string | Buffer): BlsEntry {
  if (text.length > MAX_BOOT_TEXT_BYTES) throw overLimit("E_BLS_SIZE", `BLS entry ${file} is ${text.length} bytes, more than ${MAX_BOOT_TEXT_BYTES}`);
  const s = typeof text === "string" ? text : text.toString("utf8");
  const base = file.replace(/^.*\//, "");
  const e: BlsEntry = { file: base, id: base.replace(/\.conf$/, ""), initrd: [], options: "", grubClass: [], other: {} };
  const options: string[] = [];
  for (const raw of s.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m;
    switch (key) {
      case "title": e.title = value; break;
      case "version": e.version = value; break;
      case "machine-id": e.machineId = value; break;
      case "sort-key": e.sortKey = value; break;
      case "linux": e.linux = value; break;
      case "initrd": if (e.initrd.length < 64) e.initrd.push(...value.split(/\s+/).filter(Boolean).slice(0, 64)); break;
      case "options": options.push(value); break;
      case "efi": e.efi = value; break;
      case "devicetree": e.devicetree = value; break;
      case "architecture": e.architecture = value; break;
      case "grub_users": e.grubUsers = value; break;
      case "grub_arg": e.grubArg = value; break;
      case "grub_class": e.grubClass.push(value); break;
      default: if (Object.keys(e.other).length < 64) e.other[key] = value;
    }
  }
  e.options = options.join(" ");
  return e;
}

/** Parse every *.conf of a directory listing; files beyond MAX_BLS_ENTRIES are refused. */
export function parseBlsEntries(files: { name: string; text: string | Buffer }[]): BlsEntry[] {
  const confs = files.filter((f) => f.name.endsWith(".conf"));
  if (confs.length > MAX_BLS_ENTRIES) throw overLimit("E_BLS_COUNT", `${confs.length} BLS entries (limit ${MAX_BLS_ENTRIES})`);
  return confs.map((f) => parseBlsEntry(f.name, f.text));
}

/** rpm's version comparison (rpmvercmp): alternating digit / letter segments, '~' sorts first. */
export function vercmp(a: string, b: string): number {
  if (a === b) return 0;
  const seg = /~|[0-9]+|[A-Za-z]+/g;
  const sa = a.match(seg) ?? [], sb = b.match(seg) ?? [];
  for (let i = 0; i < Math.max(sa.length, sb.length); i++) {
    const x = sa[i], y = sb[i];
    if (x === "~" || y === "~") { if (x !== y) return x === "~" ? -1 : 1; continue; }
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const dx = /^[0-9]/.test(x), dy = /^[0-9]/.test(y);
    if (dx !== dy) return dx ? 1 : -1;
    if (dx) {
      const nx = x.replace(/^0+/, ""), ny = y.replace(/^0+/, "");
      if (nx.length !== ny.length) return nx.length < ny.length ? -1 : 1;
      if (nx !== ny) return nx < ny ? -1 : 1;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** The order blscfg lists entries in: by sort-key, then version newest first, then id (newest first). */
export function sortBlsEntries(list: BlsEntry[]): BlsEntry[] {
  return [...list].sort((a, b) => {
    if ((a.sortKey ?? "") !== (b.sortKey ?? "")) return (a.sortKey ?? "") < (b.sortKey ?? "") ? -1 : 1;
    const v = vercmp(b.version ?? "", a.version ?? "");
    return v !== 0 ? v : vercmp(b.id, a.id);
  });
}
