// Linux initramfs reader: concatenated cpio "newc" archives, uncompressed or compressed, unpacked
// the way init/initramfs.c unpack_to_rootfs() walks them, plus what the OS stage needs from the
// result (kernel modules, modules.dep, modprobe.d, and which generator built it).
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { corrupt, overLimit } from "./errors.ts";
import { cpioMagic, normalizeCpioPath, parseCpio, type CpioEntry, type CpioFormat, type CpioType } from "./cpio.ts";
import { COMPRESSION_MAGIC, decompress, detectCompression, type Compression } from "./decompress.ts";
import { MAX_CPIO_ENTRIES, MAX_INITRAMFS_BYTES, MAX_INITRAMFS_SEGMENTS, MAX_SYMLINK_HOPS } from "./limits.ts";
export { MAX_SYMLINK_HOPS } from "./limits.ts";
import {
  emptyModprobeConfig, moduleFileCompression, moduleKernelVersion, normalizeModuleName, parseModprobeConf,
  parseModulesBuiltin, parseModulesDep, type ModprobeConfig, type ModuleDep,
} from "./linux-modules.ts";

defineFindings([
  {
    code: "INITRAMFS_COMPRESSION_NOT_IN_KERNEL", severity: "error", stage: "kernel",
    title: "initramfs compression the kernel cannot unpack",
    message: "initramfs segment {segment} at byte {offset} is {compression}, which the kernel's initramfs unpacker does not recognise",
    remedy: "rebuild the initramfs with a compressor the kernel reads: `update-initramfs -u -k all` with COMPRESS=zstd in /etc/initramfs-tools/initramfs.conf, or `dracut -f --zstd`",
    explain: "init/initramfs.c only knows the magics in lib/decompress.c (gzip, bzip2, lzma, xz, lzo, legacy lz4, zstd). The standard LZ4 frame (lz4 without -l) is not among them: unpacking stops with 'invalid magic at start of compressed archive' and the modules in that segment are never seen.",
  },
  {
    code: "INITRAMFS_TRAILING_JUNK", severity: "warning", stage: "kernel",
    title: "junk after the last initramfs archive",
    message: "{bytes} bytes at byte {offset} of the initramfs are neither zero padding nor a recognised archive (first bytes {head})",
    remedy: "regenerate the initramfs (`update-initramfs -u -k all` or `dracut -f --regenerate-all`)",
    explain: "The kernel reports 'invalid magic at start of compressed archive' or 'junk within compressed archive' and stops unpacking there; files after that point are missing from the early root.",
  },
  {
    code: "INITRAMFS_CPIO_ODC", severity: "error", stage: "kernel",
    title: "initramfs archive in the odc cpio format",
    message: "the cpio archive at byte {offset} uses the odc (070707) format; the kernel only reads newc (070701) and crc (070702)",
    remedy: "repack with `find . | cpio -o -H newc | gzip -9n > initrd.img` or regenerate with `update-initramfs -u`",
    explain: "init/initramfs.c rejects 070707 with 'incorrect cpio method used: use -H newc option'.",
  },
  {
    code: "INITRAMFS_CPIO_CHECKSUM", severity: "error", stage: "kernel",
    title: "crc-format cpio entry with a wrong checksum",
    message: "cpio entry {name} has a checksum that does not match its data",
    remedy: "regenerate the initramfs (`update-initramfs -u -k all` or `dracut -f --regenerate-all`)",
    explain: "For 070702 archives the kernel sums the file bytes and fails with 'broken checksum' on a mismatch.",
  },
  {
    code: "INITRAMFS_PATH_OUTSIDE_ROOT", severity: "warning", stage: "kernel",
    title: "initramfs entry name climbs above the root",
    message: "initramfs entry \"{name}\" uses '..' past the root; the kernel places it at /{path}",
    remedy: "repack the initramfs from its directory with relative names: `cd DIR && find . | cpio -o -H newc`",
    explain: "The kernel creates names relative to / of the early root, where '..' stays at /. bootgate keeps such names as data and never writes them on the host.",
  },
]);

/** Kconfig symbol that enables each compression for the initramfs (usr/Kconfig). */
export const KERNEL_CONFIG_FOR_COMPRESSION: Record<Compression, string | undefined> = {
  gzip: "RD_GZIP", bzip2: "RD_BZIP2", lzma: "RD_LZMA", xz: "RD_XZ", lzo: "RD_LZO", "lz4-legacy": "RD_LZ4", zstd: "RD_ZSTD", lz4: undefined,
};

export interface InitramfsSegment {
  index: number;
  /** Byte offset in the initramfs file. */
  offset: number;
  /** Bytes of the file this segment occupies (compressed size for compressed ones). */
  length: number;
  compression: Compression | "none";
  /** Whether the kernel's unpacker recognises this segment's compression. */
  kernelCanUnpack: boolean;
  decompressedBytes: number;
  cpioFormats: CpioFormat[];
  entries: number;
}

export interface InitramfsEntry {
  /** Path relative to the initramfs root ("usr/lib/modules/6.1.0/modules.dep"). */
  path: string;
  /** Name exactly as stored in the archive. */
  name: string;
  type: CpioType;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtime: number;
  nlink: number;
  ino: number;
  segment: number;
  linkTarget?: string;
}

export interface KernelModuleFile {
  /** Normalised module name (hv_storvsc). */
  name: string;
  path: string;
  kernelVersion?: string;
  compression: "none" | "xz" | "zst" | "gz";
}

export type InitramfsGenerator = "dracut" | "initramfs-tools" | "mkinitcpio" | "booster" | "unknown";

/** True when a name's ".." components climb above the directory it starts in. */
function climbsAboveRoot(name: string): boolean {
  let depth = 0;
  for (const part of name.split("/")) {
    if (part === "..") { if (--depth < 0) return true; } else if (part && part !== ".") depth++;
  }
  return false;
}

export class Initramfs {
  readonly segments: InitramfsSegment[] = [];
  readonly findings: Finding[] = [];
  private readonly byPath = new Map<string, { entry: InitramfsEntry; data: Buffer }>();
  /** Hard-link groups (dev:ino of regular files with nlink > 1) to the body written into them. */
  private readonly linkData = new Map<string, Buffer>();

  /** @internal used by readInitramfs */
  add(e: CpioEntry, segment: number): void {
    const path = normalizeCpioPath(e.name);
    if (path === "") return; // "." — the root itself
    if (climbsAboveRoot(e.name)) this.findings.push(finding("INITRAMFS_PATH_OUTSIDE_ROOT", { name: e.name, path }, { segment }));
    if (e.checksumOk === false) this.findings.push(finding("INITRAMFS_CPIO_CHECKSUM", { name: e.name }, { segment }));
    const entry: InitramfsEntry = {
      path, name: e.name, type: e.type, mode: e.mode, size: e.size, uid: e.uid, gid: e.gid, mtime: e.mtime,
      nlink: e.nlink, ino: e.ino, segment,
    };
    if (e.type === "symlink") entry.linkTarget = e.data.toString("utf8");
    if (e.type === "file" && e.nlink > 1) {
      const key = `${e.devMajor}:${e.devMinor}:${e.ino}`;
      if (e.size > 0 || !this.linkData.has(key)) this.linkData.set(key, e.data);
      (entry as InitramfsEntry & { linkKey?: string }).linkKey = key;
    }
    // A later entry replaces an earlier one of the same path, as the kernel's unpacker overwrites.
    this.byPath.set(path, { entry, data: e.data });
  }

  /** Every path in the unpacked initramfs, sorted. */
  get entries(): InitramfsEntry[] {
    return [...this.byPath.values()].map((v) => v.entry).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The entry at `path`, following symlinks in every component (the last one too when `follow`). */
  lookup(path: string, follow = true): InitramfsEntry | undefined {
    const resolved = this.resolve(path, follow);
    return resolved === undefined ? undefined : this.byPath.get(resolved)?.entry;
  }

  /** Entry at `path` without following a final symlink. */
  stat(path: string): InitramfsEntry | undefined { return this.lookup(path, false); }

  exists(path: string): boolean { return this.lookup(path, false) !== undefined; }

  /** Contents of the regular file at `path` (symlinks followed inside the initramfs), or undefined. */
  file(path: string): Buffer | undefined {
    const resolved = this.resolve(path, true);
    if (resolved === undefined) return undefined;
    const v = this.byPath.get(resolved);
    if (!v || v.entry.type !== "file") return undefined;
    const key = (v.entry as InitramfsEntry & { linkKey?: string }).linkKey;
    return key ? this.linkData.get(key) ?? v.data : v.data;
  }

  /** Text of a file (UTF-8), or undefined. */
  text(path: string): string | undefined { return this.file(path)?.toString("utf8"); }

  readlink(path: string): string | undefined { return this.stat(path)?.linkTarget; }

  /** Names directly inside directory `dir` (symlinks in `dir` followed). */
  list(dir: string): string[] {
    const base = dir === "" || dir === "/" ? "" : this.resolve(dir, true);
    if (base === undefined) return [];
    const prefix = base === "" ? "" : base + "/";
    const out = new Set<string>();
    for (const p of this.byPath.keys()) {
      if (!p.startsWith(prefix) || p === base) continue;
      out.add(p.slice(prefix.length).split("/")[0]);
    }
    return [...out].sort();
  }

  /**
   * Resolve `path` to a stored path, following symlinks inside the initramfs (never the host):
   * absolute targets start at the initramfs root, relative ones at the link's directory.
   */
  resolve(path: string, followLast = true): string | undefined {
    let hops = 0;
    let todo = normalizeCpioPath(path).split("/").filter(Boolean);
    const done: string[] = [];
    while (todo.length) {
      const part = todo.shift()!;
      if (part === "..") { done.pop(); continue; }
      const candidate = [...done, part].join("/");
      const v = this.byPath.get(candidate);
      if (v && v.entry.type === "symlink" && (todo.length > 0 || followLast)) {
        if (++hops > MAX_SYMLINK_HOPS) throw corrupt("E_INITRAMFS_SYMLINK_LOOP", `initramfs: more than ${MAX_SYMLINK_HOPS} symbolic links resolving ${path}`);
        const target = v.entry.linkTarget ?? "";
        if (target.startsWith("/")) done.length = 0;
        todo = [...target.split("/").filter((s) => s && s !== "."), ...todo];
        continue;
      }
      done.push(part);
    }
    const out = done.join("/");
    return out === "" || this.byPath.has(out) ? out : undefined;
  }

  // ---- derived facts for the OS stage ----

  /** Kernel module files (*.ko, *.ko.xz, *.ko.zst, *.ko.gz under [usr/]lib/modules/<ver>/). */
  get modules(): KernelModuleFile[] {
    const out: KernelModuleFile[] = [];
    for (const { entry } of this.byPath.values()) {
      if (entry.type !== "file") continue;
      const compression = moduleFileCompression(entry.path);
      const kernelVersion = moduleKernelVersion(entry.path);
      if (!compression || !kernelVersion) continue;
      out.push({ name: normalizeModuleName(entry.path), path: entry.path, kernelVersion, compression });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Normalised names of the module files present. */
  get moduleNames(): Set<string> { return new Set(this.modules.map((m) => m.name)); }

  hasModule(name: string): boolean { return this.moduleNames.has(normalizeModuleName(name)); }

  /** Kernel versions with a lib/modules/<ver> directory (or module files) in the initramfs. */
  get kernelVersions(): string[] {
    const vers = new Set<string>();
    for (const base of ["lib/modules", "usr/lib/modules"]) for (const v of this.list(base)) vers.add(v);
    for (const m of this.modules) if (m.kernelVersion) vers.add(m.kernelVersion);
    return [...vers].sort();
  }

  private moduleFile(ver: string | undefined, name: string): Buffer | undefined {
    for (const v of ver ? [ver] : this.kernelVersions) {
      const f = this.file(`lib/modules/${v}/${name}`) ?? this.file(`usr/lib/modules/${v}/${name}`);
      if (f) return f;
    }
    return undefined;
  }

  /** modules.dep of kernel `ver` (or of the first version found), if the initramfs carries it. */
  modulesDep(ver?: string): Map<string, ModuleDep> | undefined {
    const f = this.moduleFile(ver, "modules.dep");
    return f ? parseModulesDep(f) : undefined;
  }

  /** modules.builtin of kernel `ver`, if present. */
  modulesBuiltin(ver?: string): Set<string> | undefined {
    const f = this.moduleFile(ver, "modules.builtin");
    return f ? parseModulesBuiltin(f) : undefined;
  }

  /** modprobe.d configuration in the initramfs, read in modprobe's order (etc/ overrides lib/ by file name). */
  get modprobe(): ModprobeConfig {
    const byName = new Map<string, string>();
    for (const dir of ["lib/modprobe.d", "usr/lib/modprobe.d", "run/modprobe.d", "etc/modprobe.d"]) {
      for (const n of this.list(dir)) if (n.endsWith(".conf")) byName.set(n, `${dir}/${n}`);
    }
    const cfg = emptyModprobeConfig();
    for (const n of [...byName.keys()].sort()) {
      const p = byName.get(n)!;
      const f = this.file(p);
      if (f) parseModprobeConf(f, p, cfg);
    }
    for (const arg of this.cmdline) {
      const m = /^(?:rd\.driver\.blacklist|modprobe\.blacklist|module_blacklist)=(.*)$/.exec(arg);
      if (m) for (const mod of m[1].split(",")) if (mod) cfg.blacklist.add(normalizeModuleName(mod));
    }
    return cfg;
  }

  /** Which tool built the image, with the paths that tell. */
  get generator(): { name: InitramfsGenerator; evidence: string[]; version?: string } {
    const has = (paths: string[]) => paths.filter((p) => this.exists(p));
    const dracut = has(["usr/lib/dracut", "lib/dracut", "usr/lib/dracut-lib.sh", "lib/dracut-lib.sh", "usr/lib/dracut/build-parameter.txt"]);
    if (dracut.length) {
      const dir = this.list("usr/lib/dracut").length ? "usr/lib/dracut" : "lib/dracut";
      const version = this.list(dir).find((n) => /^dracut-\d/.test(n))?.slice("dracut-".length);
      return { name: "dracut", evidence: [...dracut, ...has(["etc/initrd-release"])], version };
    }
    const it = has(["conf/initramfs.conf", "scripts/init-top", "scripts/local", "scripts/functions"]);
    if (it.length) return { name: "initramfs-tools", evidence: it };
    const mk = has(["init_functions", "buildconfig", "hooks"]);
    if (mk.includes("init_functions")) return { name: "mkinitcpio", evidence: mk };
    const booster = has(["etc/booster.init.yaml"]);
    if (booster.length) return { name: "booster", evidence: booster };
    return { name: "unknown", evidence: [] };
  }

  /** Kernel command-line arguments baked in by dracut (etc/cmdline.d/*.conf, etc/cmdline). */
  get cmdline(): string[] {
    const out: string[] = [];
    const files = [...this.list("etc/cmdline.d").filter((n) => n.endsWith(".conf")).map((n) => `etc/cmdline.d/${n}`), "etc/cmdline"];
    for (const p of files) {
      const t = this.text(p);
      if (!t) continue;
      for (const line of t.split("\n")) {
        if (line.trim().startsWith("#")) continue;
        out.push(...line.trim().split(/\s+/).filter(Boolean));
      }
    }
    return out;
  }

  /** dracut facts: host-only build (lib/dracut/hostonly-files present), build arguments, dracut modules. */
  get dracut(): { hostonly: boolean; buildParameters?: string; dracutModules: string[]; cmdline: string[] } | undefined {
    if (this.generator.name !== "dracut") return undefined;
    const t = (n: string) => this.text(`usr/lib/dracut/${n}`) ?? this.text(`lib/dracut/${n}`);
    const params = t("build-parameter.txt")?.trim();
    const hostonly = this.exists("usr/lib/dracut/hostonly-files") || this.exists("lib/dracut/hostonly-files")
      || /(^|\s)(-H|--hostonly)(\s|$)/.test(params ?? "");
    return { hostonly, buildParameters: params, dracutModules: (t("modules.txt") ?? "").split(/\s+/).filter(Boolean), cmdline: this.cmdline };
  }

  /**
   * initramfs-tools facts: conf/initramfs.conf and conf/conf.d/* as KEY=VALUE, and the MODULES policy
   * (most: all storage drivers; dep: only what the build host used — the "host-only" case; list/netboot).
   */
  get initramfsTools(): { modulesPolicy?: string; conf: Record<string, string>; extraModules: string[] } | undefined {
    if (this.generator.name !== "initramfs-tools") return undefined;
    const conf: Record<string, string> = {};
    const files = ["conf/initramfs.conf", ...this.list("conf/conf.d").map((n) => `conf/conf.d/${n}`)];
    for (const p of files) {
      for (const line of (this.text(p) ?? "").split("\n")) {
        const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
        if (m) conf[m[1]] = m[2].trim().replace(/^(["'])(.*)\1$/, "$2");
      }
    }
    const extraModules = (this.text("conf/modules") ?? "").split("\n").map((l) => l.trim().split(/\s+/)[0])
      .filter((l) => l && !l.startsWith("#")).map(normalizeModuleName);
    return { modulesPolicy: conf.MODULES, conf, extraModules };
  }
}

/**
 * Unpack an initramfs image: optional uncompressed archives (early microcode) and compressed
 * segments, with zero padding between, in the order and by the rules of unpack_to_rootfs().
 */
export function readInitramfs(buf: Uint8Array, limit = MAX_INITRAMFS_BYTES): Initramfs {
  const ird = new Initramfs();
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0, budget = limit, entryBudget = MAX_CPIO_ENTRIES;
  const take = (entries: CpioEntry[], seg: number) => {
    entryBudget -= entries.length;
    for (const e of entries) ird.add(e, seg);
  };
  while (p < b.length) {
    if (b[p] === 0) { p++; continue; } // zero padding between segments
    if (ird.segments.length >= MAX_INITRAMFS_SEGMENTS) {
      throw overLimit("E_INITRAMFS_SEGMENTS", `initramfs: more than ${MAX_INITRAMFS_SEGMENTS} segments`);
    }
    const index = ird.segments.length;
    const fmt = cpioMagic(b, p);
    if (fmt && p % 4 === 0) {
      const a = parseCpio(b, p, entryBudget);
      if (a.format === "odc") ird.findings.push(finding("INITRAMFS_CPIO_ODC", { offset: p }, { segment: index }));
      take(a.entries, index);
      ird.segments.push({ index, offset: p, length: a.end - p, compression: "none", kernelCanUnpack: a.format !== "odc",
        decompressedBytes: a.end - p, cpioFormats: [a.format], entries: a.entries.length });
      p = a.end;
      continue;
    }
    const kind = detectCompression(b, p);
    if (!kind) {
      if (ird.segments.length === 0) {
        throw corrupt("E_INITRAMFS_MAGIC", `initramfs: byte ${p} starts neither a cpio archive nor a known compressed stream (${b.subarray(p, p + 8).toString("hex")})`);
      }
      ird.findings.push(finding("INITRAMFS_TRAILING_JUNK", { offset: p, bytes: b.length - p, head: b.subarray(p, p + 8).toString("hex") }));
      break;
    }
    const kernelCanUnpack = COMPRESSION_MAGIC.find((m) => m.kind === kind)!.kernel;
    if (!kernelCanUnpack) ird.findings.push(finding("INITRAMFS_COMPRESSION_NOT_IN_KERNEL", { segment: index, offset: p, compression: kind }));
    const d = decompress(b.subarray(p), kind, budget);
    budget -= d.data.length;
    const seg: InitramfsSegment = { index, offset: p, length: d.consumed, compression: kind, kernelCanUnpack,
      decompressedBytes: d.data.length, cpioFormats: [], entries: 0 };
    // Inside a compressed segment: archives back to back, zero padding allowed between them.
    let q = 0;
    while (q < d.data.length) {
      if (d.data[q] === 0) { q++; continue; }
      const f = cpioMagic(d.data, q);
      if (!f) {
        ird.findings.push(finding("INITRAMFS_TRAILING_JUNK", { offset: p, bytes: d.data.length - q, head: d.data.subarray(q, q + 8).toString("hex") },
          { segment: index, decompressedOffset: q }));
        break;
      }
      const a = parseCpio(d.data, q, entryBudget);
      if (a.format === "odc") ird.findings.push(finding("INITRAMFS_CPIO_ODC", { offset: p }, { segment: index, decompressedOffset: q }));
      take(a.entries, index);
      seg.cpioFormats.push(a.format);
      seg.entries += a.entries.length;
      q = a.end;
    }
    ird.segments.push(seg);
    if (d.consumed <= 0) throw corrupt("E_INITRAMFS_SEGMENT", `initramfs: ${kind} segment at byte ${p} consumed no input`);
    p += d.consumed;
  }
  if (ird.segments.length === 0) throw corrupt("E_INITRAMFS_EMPTY", `initramfs: ${b.length} bytes hold no archive`);
  return ird;
}

