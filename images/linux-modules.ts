// Kernel module metadata: modules.dep / modules.builtin / modules.builtin.modinfo / modules.alias as
// depmod(8) and kbuild write them, /boot/config-<ver> (Kconfig .config), and modprobe.d(5) files.
import { overLimit } from "./errors.ts";
import { MAX_MODULES_TEXT_BYTES, MAX_MODULE_CHAIN } from "./limits.ts";

/** Module name as the kernel and modprobe compare it: basename, no .ko[.xz|.zst|.gz], "-" as "_". */
export function normalizeModuleName(nameOrPath: string): string {
  const base = nameOrPath.slice(nameOrPath.lastIndexOf("/") + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

/** Compression suffix of a module file, or undefined when it is not a module file. */
export function moduleFileCompression(path: string): "none" | "xz" | "zst" | "gz" | undefined {
  const m = /\.ko(?:\.(xz|zst|gz))?$/.exec(path);
  if (!m) return undefined;
  return (m[1] as "xz" | "zst" | "gz" | undefined) ?? "none";
}

function text(input: string | Uint8Array, what: string): string {
  const len = typeof input === "string" ? input.length : input.byteLength;
  if (len > MAX_MODULES_TEXT_BYTES) throw overLimit("E_MODULES_TEXT", `${what} is ${len} bytes, over the ${MAX_MODULES_TEXT_BYTES}-byte limit`);
  return typeof input === "string" ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("utf8");
}

function* lines(s: string): Generator<string> {
  let start = 0;
  while (start <= s.length) {
    let end = s.indexOf("\n", start);
    if (end < 0) end = s.length;
    yield s.slice(start, end).replace(/\r$/, "");
    start = end + 1;
  }
}

export interface ModuleDep {
  /** Path relative to lib/modules/<ver>/ as depmod wrote it. */
  path: string;
  /** Normalised names of the modules it needs (depmod lists the full closure, in load order reversed). */
  deps: string[];
}

/** modules.dep: "kernel/drivers/scsi/hv_storvsc.ko: kernel/drivers/scsi/scsi_transport_fc.ko ...". */
export function parseModulesDep(input: string | Uint8Array): Map<string, ModuleDep> {
  const map = new Map<string, ModuleDep>();
  for (const line of lines(text(input, "modules.dep"))) {
    const colon = line.indexOf(":");
    if (colon <= 0 || line.startsWith("#")) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(normalizeModuleName);
    map.set(normalizeModuleName(path), { path, deps });
  }
  return map;
}

/** modules.builtin: one path per line ("kernel/drivers/ata/libata.ko") of modules linked into the kernel. */
export function parseModulesBuiltin(input: string | Uint8Array): Set<string> {
  const set = new Set<string>();
  for (const line of lines(text(input, "modules.builtin"))) {
    const t = line.trim();
    if (t && !t.startsWith("#")) set.add(normalizeModuleName(t));
  }
  return set;
}

/** modules.builtin.modinfo: NUL-separated "module.key=value" strings (kbuild's .modinfo of built-ins). */
export function parseModulesBuiltinModinfo(input: Uint8Array): Map<string, Map<string, string[]>> {
  const s = text(input, "modules.builtin.modinfo");
  const out = new Map<string, Map<string, string[]>>();
  for (const item of s.split("\0")) {
    const dot = item.indexOf("."), eq = item.indexOf("=");
    if (dot <= 0 || eq < dot) continue;
    const mod = normalizeModuleName(item.slice(0, dot));
    const key = item.slice(dot + 1, eq);
    let m = out.get(mod);
    if (!m) out.set(mod, (m = new Map()));
    const vals = m.get(key);
    if (vals) vals.push(item.slice(eq + 1)); else m.set(key, [item.slice(eq + 1)]);
  }
  return out;
}

export interface ModuleAlias { pattern: string; module: string }

/** modules.alias: "alias pci:v00001414d00005353sv*sd*bc*sc*i* hv_vmbus" (modprobe.d syntax, fnmatch patterns). */
export function parseModulesAlias(input: string | Uint8Array): ModuleAlias[] {
  const out: ModuleAlias[] = [];
  for (const line of lines(text(input, "modules.alias"))) {
    const w = line.trim().split(/\s+/);
    if (w[0] === "alias" && w.length >= 3) out.push({ pattern: w[1], module: normalizeModuleName(w[2]) });
  }
  return out;
}

/** fnmatch(3)-style match of `*`, `?` and `[...]` as modprobe uses for aliases. */
const aliasRegexCache = new Map<string, RegExp>();
export function aliasMatches(pattern: string, value: string): boolean {
  let rx = aliasRegexCache.get(pattern);
  if (!rx) {
    rx = aliasRegex(pattern);
    if (aliasRegexCache.size > 200_000) aliasRegexCache.clear();
    aliasRegexCache.set(pattern, rx);
  }
  return rx.test(value);
}

function aliasRegex(pattern: string): RegExp {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = pattern.indexOf("]", i + 2);
      if (close < 0) { re += "\\["; continue; }
      let cls = pattern.slice(i + 1, close).replace(/\\/g, "\\\\");
      if (cls.startsWith("!")) cls = "^" + cls.slice(1);
      re += `[${cls}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(re + "$");
}

/** Modules whose alias patterns match a device's modalias string. */
export function modulesForAlias(aliases: ModuleAlias[], modalias: string): string[] {
  return [...new Set(aliases.filter((a) => aliasMatches(a.pattern, modalias)).map((a) => a.module))];
}

/** Kconfig value: "y", "m", "n" (from "# CONFIG_X is not set"), or the literal (numbers, strings). */
export type ConfigValue = "y" | "m" | "n" | string;

/** /boot/config-<ver>: "CONFIG_HYPERV_STORAGE=m", "# CONFIG_FOO is not set". Keys are kept without CONFIG_. */
export function parseKernelConfig(input: string | Uint8Array): Map<string, ConfigValue> {
  const map = new Map<string, ConfigValue>();
  for (const line of lines(text(input, "kernel config"))) {
    let m = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) { map.set(m[1], m[2].replace(/^"(.*)"$/, "$1")); continue; }
    m = /^# CONFIG_([A-Za-z0-9_]+) is not set/.exec(line);
    if (m) map.set(m[1], "n");
  }
  return map;
}

/** A config symbol's value with or without the CONFIG_ prefix; absent symbols read as "n". */
export function configValue(cfg: Map<string, ConfigValue>, sym: string): ConfigValue {
  return cfg.get(sym.replace(/^CONFIG_/, "")) ?? "n";
}

export interface ModprobeConfig {
  /** "blacklist X": X is not loaded by alias (it can still be loaded by name or as a dependency). */
  blacklist: Set<string>;
  /** "install X cmd": modprobe X runs cmd instead of loading X. */
  install: Map<string, string>;
  /** Modules whose install command is /bin/false, /bin/true, `false`, `true` or `:` — never loaded. */
  disabled: Set<string>;
  options: Map<string, string[]>;
  aliases: ModuleAlias[];
  softdeps: Map<string, string>;
  /** Where each directive came from: "file:line directive". */
  sources: string[];
}

export function emptyModprobeConfig(): ModprobeConfig {
  return { blacklist: new Set(), install: new Map(), disabled: new Set(), options: new Map(), aliases: [], softdeps: new Map(), sources: [] };
}

const DISABLING_COMMAND = /^(?:\/(?:usr\/)?bin\/)?(?:false|true)\b|^:\s*$|^\/bin\/sh\s+-c\s+["']?(?:exit\s+1|false|true)/;

/**
 * Parse one modprobe.d file into `into` (later files override earlier ones, as modprobe reads them in
 * order). Lines may be continued with a trailing backslash; "#" starts a comment line.
 */
export function parseModprobeConf(input: string | Uint8Array, file: string, into: ModprobeConfig = emptyModprobeConfig()): ModprobeConfig {
  const raw = text(input, file).split("\n");
  for (let i = 0; i < raw.length; i++) {
    const lineNo = i + 1;
    let line = raw[i].replace(/\r$/, "");
    while (line.endsWith("\\") && i + 1 < raw.length) line = line.slice(0, -1) + " " + raw[++i].replace(/\r$/, "");
    const t = line.trim();
    if (!t || t.startsWith("#")) continue;
    const [cmd, modRaw, ...rest] = t.split(/\s+/);
    if (!modRaw) continue;
    const mod = normalizeModuleName(modRaw);
    const restText = t.slice(t.indexOf(modRaw) + modRaw.length).trim();
    switch (cmd) {
      case "blacklist": into.blacklist.add(mod); break;
      case "install":
        into.install.set(mod, restText);
        if (DISABLING_COMMAND.test(restText)) into.disabled.add(mod); else into.disabled.delete(mod);
        break;
      case "options": into.options.set(mod, [...(into.options.get(mod) ?? []), ...rest]); break;
      case "alias": if (rest[0]) into.aliases.push({ pattern: modRaw, module: normalizeModuleName(rest[0]) }); break;
      case "softdep": into.softdeps.set(mod, restText); break;
      default: continue;
    }
    into.sources.push(`${file}:${lineNo} ${t}`);
  }
  return into;
}

/** "pre: a b post: c" (a softdep line's text after the module name) as load-before and load-after names (module names or aliases). */
export function parseSoftdep(spec: string | undefined): { pre: string[]; post: string[] } {
  const out = { pre: [] as string[], post: [] as string[] };
  let into: string[] | undefined;
  for (const w of (spec ?? "").split(/\s+/).filter(Boolean)) {
    if (w === "pre:") into = out.pre;
    else if (w === "post:") into = out.post;
    else into?.push(w);
  }
  return out;
}

/**
 * A module and everything modprobe would load with it, dependencies first (a valid load order):
 * modules.dep's dependencies, and with `softdeps` (modules.softdep / modprobe.d "softdep" lines)
 * the "pre:" modules before and the "post:" modules after; softdep names that are aliases
 * ("crct10dif") resolve through `aliases` (modules.alias). Unknown names are kept (they may be
 * built in); cycles end at the visited set.
 */
export function moduleClosure(name: string, deps: Map<string, ModuleDep>,
                              opts: { softdeps?: Map<string, string>; aliases?: ModuleAlias[] } = {}): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const resolve = (word: string): string[] => {
    const n = normalizeModuleName(word);
    if (deps.has(n) || !opts.aliases) return [n];
    const viaAlias = modulesForAlias(opts.aliases, word);
    return viaAlias.length ? viaAlias : [n];
  };
  const visit = (n: string, depth: number): void => {
    if (seen.has(n)) return;
    if (depth > MAX_MODULE_CHAIN) throw overLimit("E_MODULES_CHAIN", `module dependency chain deeper than ${MAX_MODULE_CHAIN} at ${n}`);
    seen.add(n);
    const sd = parseSoftdep(opts.softdeps?.get(n));
    for (const p of sd.pre) for (const m of resolve(p)) visit(m, depth + 1);
    for (const d of deps.get(n)?.deps ?? []) visit(d, depth + 1);
    order.push(n);
    for (const p of sd.post) for (const m of resolve(p)) visit(m, depth + 1);
  };
  visit(normalizeModuleName(name), 0);
  return order;
}

/** Kernel version from a module path "lib/modules/<ver>/..." or "usr/lib/modules/<ver>/...". */
export function moduleKernelVersion(path: string): string | undefined {
  return /^(?:\/)?(?:usr\/)?lib\/modules\/([^/]+)\//.exec(path)?.[1];
}
