// A bounded GRUB 2 script reader for grub.cfg as grub-mkconfig writes it (GRUB manual §6 "Shell-like
// scripting", grub-core/script/yylex.l for quoting; grub-core/normal/menu.c for `default` paths),
// grubenv (grub-core/lib/envblk.c) and /etc/default/grub. Nothing is executed on the host.
import { overLimit } from "./errors.ts";
import { MAX_GRUB_CFG_BYTES, MAX_GRUB_ENTRIES, MAX_GRUB_NESTING, MAX_GRUB_STEPS, MAX_GRUB_VALUE_BYTES } from "./limits.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { sortBlsEntries, type BlsEntry } from "./bls.ts";
import { lex, parseScript, type Cmd, type Word } from "./grub-script.ts";

export { parseScript, type Cmd, type Word };

defineFindings([
  {
    code: "GRUB_CFG_SYNTAX", severity: "warning", stage: "bootloader",
    title: "grub.cfg has a syntax error",
    message: "{file}: {detail} at line {line}; GRUB stops reading the file there and keeps only the entries before it",
    remedy: "regenerate the file inside the guest: `grub-mkconfig -o /boot/grub/grub.cfg` (Debian/Ubuntu: `update-grub`; RHEL: `grub2-mkconfig -o /boot/grub2/grub.cfg`)",
    explain: "GRUB parses grub.cfg command by command. An unterminated quote or block makes the parser swallow the rest of the file, so later menu entries never exist.",
  },
  {
    code: "GRUB_CFG_LIMIT", severity: "warning", stage: "bootloader",
    title: "grub.cfg exceeds a reading bound",
    message: "{file}: {detail}; bootgate stopped evaluating there",
    remedy: "inspect the file by hand (`grub-script-check {file}`) and regenerate it with grub-mkconfig",
    explain: "bootgate evaluates grub.cfg with bounds on value length, command count and entry count, so a hostile or runaway script cannot hang it. Values beyond the bound are truncated.",
  },
  {
    code: "GRUB_DEFAULT_UNMATCHED", severity: "warning", stage: "bootloader",
    title: "GRUB default names no menu entry",
    message: "default={value} matches no menu entry; GRUB falls back to the first entry ({first})",
    remedy: "set GRUB_DEFAULT=0 (or an existing entry id) in /etc/default/grub and run `update-grub` / `grub2-mkconfig -o /boot/grub2/grub.cfg`; `grub-editenv /boot/grub/grubenv unset saved_entry` clears a stale saved entry",
    explain: "GRUB's default variable may be a number, a title, a menu entry id or a '>'-separated path into submenus. When it matches nothing, GRUB boots entry 0, which may not be the kernel the user expects.",
  },
]);

/** What `search` was asked to find (GRUB manual §16.3.68). */
export interface GrubSearch { by: "fs-uuid" | "label" | "file"; value: string; setVar: string; hints: string[] }

/** The device GRUB reads the kernel from: the root variable, and the search that set it, if any. */
export interface GrubRootExpr { root: string; search?: GrubSearch }

export interface GrubEntry {
  kind: "menuentry" | "submenu";
  title: string;
  id?: string;
  classes: string[];
  /** Menu path: "2" or "1>0" (submenu 1, its entry 0). */
  index: string;
  /** Defined inside an if-branch bootgate could not decide. */
  conditional: boolean;
  /** Came from a BLS snippet through `blscfg`. */
  bls?: string;
  loader?: "linux" | "linux16" | "linuxefi" | "chainloader" | "multiboot" | "multiboot2" | "other";
  /** Kernel path as written (without a "(dev)" prefix) and its explicit device, if given. */
  kernel?: string;
  kernelDevice?: string;
  initrds: string[];
  cmdline?: string;
  rootDevice?: GrubRootExpr;
  children?: GrubEntry[];
}

export interface GrubConfigOptions {
  file?: string;
  /** Variables from grubenv (load_env). */
  grubenv?: Record<string, string>;
  /** BLS snippets for `blscfg` (RHEL 8+/Fedora). */
  bls?: BlsEntry[];
  /** "pc" (Gen1 BIOS) or "efi" (Gen2); undefined leaves $grub_platform tests undecided. */
  platform?: "pc" | "efi";
  /** Root device GRUB starts with (from its prefix), e.g. "hd0,msdos1". */
  initialRoot?: string;
}

export interface GrubConfig {
  entries: GrubEntry[];
  /** Flat list of boot entries (submenus expanded). */
  all: GrubEntry[];
  defaultValue: string;
  defaultEntry?: GrubEntry;
  defaultHow: "empty" | "number" | "id" | "title" | "path" | "fallback-first" | "none";
  timeout?: string;
  fallback?: string;
  env: Record<string, string>;
  insmods: string[];
  sources: { command: "source" | "configfile"; path: string }[];
  searches: GrubSearch[];
  blscfg: boolean;
  /** Conditions bootgate could not decide: every branch was taken, in order. */
  ambiguities: string[];
  findings: Finding[];
}

/** Variables GRUB ≥ 2.02 sets itself (grub-core/normal/main.c `features`). */
const GRUB_FEATURES = ["feature_chainloader_bpb", "feature_ntldr", "feature_platform_search_hint", "feature_default_font_path",
  "feature_all_video_module", "feature_menuentry_id", "feature_menuentry_options", "feature_200_final",
  "feature_nativedisk_cmd", "feature_timeout_style"];

interface Func { name: string; body: Cmd[] }
interface Ctx {
  env: Map<string, string>;
  searchOf: Map<string, GrubSearch>;
  funcs: Map<string, Func>;
  unknownVars: Set<string>;
  conditional: number;
  entries: GrubEntry[];
  bodies: Map<GrubEntry, Cmd[]>;
  cur?: GrubEntry;      // the entry whose body is being evaluated
  depth: number;
}

class Stop extends Error {}

export function readGrubConfig(text: string | Buffer, opts: GrubConfigOptions = {}): GrubConfig {
  const file = opts.file ?? "grub.cfg";
  if (text.length > MAX_GRUB_CFG_BYTES) throw overLimit("E_GRUB_CFG_SIZE", `${file} is ${text.length} bytes, more than the ${MAX_GRUB_CFG_BYTES}-byte limit`);
  const src = typeof text === "string" ? text : text.toString("utf8");
  const out: GrubConfig = {
    entries: [], all: [], defaultValue: "", defaultHow: "none", env: {}, insmods: [], sources: [], searches: [],
    blscfg: false, ambiguities: [], findings: [],
  };
  const parsed = parseScript(src);
  if (parsed.error) out.findings.push(finding("GRUB_CFG_SYNTAX", { file, detail: parsed.error.message, line: parsed.error.line }));
  const env = new Map<string, string>();
  for (const f of GRUB_FEATURES) env.set(f, "y");
  env.set("root", opts.initialRoot ?? "");
  env.set("prefix", `(${opts.initialRoot ?? ""})/boot/grub`);
  env.set("config_directory", env.get("prefix")!);
  const unknownVars = new Set<string>();
  if (opts.platform) env.set("grub_platform", opts.platform); else unknownVars.add("grub_platform");
  env.set("grub_cpu", opts.platform === "efi" ? "x86_64" : "i386");
  const ctx: Ctx = { env, searchOf: new Map(), funcs: new Map(), unknownVars, conditional: 0, entries: out.entries, bodies: new Map(), depth: 0 };
  const st = { steps: 0, limitHit: false };
  const I = new Interp(ctx, opts, out, file, st);
  try {
    I.run(parsed.commands);
    // The menu appears after the whole script ran: bodies see the final environment (GRUB runs them at boot).
    I.evalBodies(out.entries, "", ctx.env);
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
  for (const [k, v] of ctx.env) out.env[k] = v;
  out.all = flatten(out.entries);
  out.timeout = ctx.env.get("timeout");
  out.fallback = ctx.env.get("fallback");
  resolveDefault(out, ctx.env.get("default") ?? "");
  return out;
}

function flatten(es: GrubEntry[]): GrubEntry[] {
  const r: GrubEntry[] = [];
  for (const e of es) e.kind === "submenu" ? r.push(...flatten(e.children ?? [])) : r.push(e);
  return r;
}

class Interp {
  constructor(private ctx: Ctx, private opts: GrubConfigOptions, private out: GrubConfig, private file: string,
              private st: { steps: number; limitHit: boolean }) {}

  private limit(detail: string): never {
    if (!this.st.limitHit) this.out.findings.push(finding("GRUB_CFG_LIMIT", { file: this.file, detail }));
    this.st.limitHit = true;
    throw new Stop();
  }

  run(cmds: Cmd[]): void {
    for (const c of cmds) this.exec(c);
  }

  private exec(c: Cmd): void {
    if (++this.st.steps > MAX_GRUB_STEPS) this.limit(`more than ${MAX_GRUB_STEPS} commands evaluated`);
    switch (c.t) {
      case "if": return this.execIf(c);
      case "loop": this.out.ambiguities.push(`${c.keyword} loop at line ${c.line} not evaluated`); return;
      case "function": this.ctx.funcs.set(c.name, { name: c.name, body: c.body }); return;
      case "block": return this.defineEntry(c);
      case "simple": this.execSimple(c.words, c.line); return;
    }
  }

  private execIf(c: Extract<Cmd, { t: "if" }>): void {
    let undecided = false;
    for (const br of c.branches) {
      const v = br.cond ? this.cond(br.cond) : true;
      if (v === true && !undecided) { this.run(br.body); return; }
      if (v === undefined || undecided) {
        if (!undecided) this.out.ambiguities.push(`line ${c.line}: ${br.cond ? br.cond.map((s) => this.text(s)).join("; ") : "else"}`);
        undecided = true;
        this.ctx.conditional++;
        try { this.run(br.body); } finally { this.ctx.conditional--; }
      }
    }
  }

  /** Value of a condition list (the last command's status): true, false, or undefined when undecidable. */
  private cond(cmds: Cmd[]): boolean | undefined {
    let r: boolean | undefined = true;
    for (const c of cmds) {
      if (c.t !== "simple") { this.exec(c); r = undefined; continue; }
      const { fields, unknown } = this.expandAll(c.words);
      if (unknown) { r = undefined; continue; }
      const [name, ...args] = fields;
      if (name === "[" ) r = args[args.length - 1] === "]" ? this.test(args.slice(0, -1)) : undefined;
      else if (name === "test") r = this.test(args);
      else if (name === "true") r = true;
      else if (name === "false") r = false;
      else { this.execSimple(c.words, c.line); r = undefined; }
    }
    return r;
  }

  /** GRUB's `test` (grub-core/commands/test.c), file tests answered only for grubenv. */
  private test(a: string[]): boolean | undefined {
    if (a.length === 0) return false;
    if (a[0] === "!") { const v = this.test(a.slice(1)); return v === undefined ? undefined : !v; }
    const ia = a.indexOf("-a"), io = a.indexOf("-o");
    if (io > 0) { const l = this.test(a.slice(0, io)), r = this.test(a.slice(io + 1)); return l === true || r === true ? true : l === false && r === false ? false : undefined; }
    if (ia > 0) { const l = this.test(a.slice(0, ia)), r = this.test(a.slice(ia + 1)); return l === false || r === false ? false : l && r ? true : undefined; }
    if (a.length === 1) return a[0] !== "";
    if (a.length === 2) {
      const [op, v] = a;
      if (op === "-z") return v === "";
      if (op === "-n") return v !== "";
      if (["-f", "-s", "-e"].includes(op)) return /\/grubenv$/.test(v) ? this.opts.grubenv !== undefined : undefined;
      return undefined;
    }
    if (a.length === 3) {
      const [l, op, r] = a;
      if (op === "=" || op === "==") return l === r;
      if (op === "!=") return l !== r;
      const x = Number.parseInt(l, 10), y = Number.parseInt(r, 10);
      if (Number.isNaN(x) || Number.isNaN(y)) return undefined;
      switch (op) {
        case "-eq": return x === y; case "-ne": return x !== y; case "-lt": return x < y;
        case "-le": return x <= y; case "-gt": return x > y; case "-ge": return x >= y;
      }
    }
    return undefined;
  }

  private text(c: Cmd): string {
    return c.t === "simple" ? c.words.map((w) => w.raw).join(" ") : c.t;
  }

  private execSimple(words: Word[], line: number): void {
    if (words.length === 0) return;
    const first = words[0].raw;
    const asg = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(first);
    if (asg && words.length === 1) {
      this.setVar(asg[1], this.expandJoined(first.slice(asg[0].length)));
      return;
    }
    const { fields } = this.expandAll(words);
    if (fields.length === 0) return;
    const [name, ...args] = fields;
    const fn = this.ctx.funcs.get(name);
    if (fn) {
      if (this.ctx.depth >= MAX_GRUB_NESTING) this.limit(`function calls nested deeper than ${MAX_GRUB_NESTING} (${name})`);
      this.ctx.depth++;
      const saved = args.map((_, i) => [String(i + 1), this.ctx.env.get(String(i + 1))] as const);
      args.forEach((v, i) => this.ctx.env.set(String(i + 1), v));
      try { this.run(fn.body); } finally {
        this.ctx.depth--;
        for (const [k, v] of saved) v === undefined ? this.ctx.env.delete(k) : this.ctx.env.set(k, v);
      }
      return;
    }
    this.builtin(name, args, line);
  }

  private setVar(k: string, v: string): void {
    this.ctx.env.set(k, v);
    this.ctx.searchOf.delete(k);
  }

  private builtin(name: string, args: string[], line: number): void {
    const e = this.ctx.cur;
    switch (name) {
      case "set":
        for (const a of args) { const i = a.indexOf("="); if (i > 0) this.setVar(a.slice(0, i), a.slice(i + 1)); }
        return;
      case "unset": for (const a of args) { this.ctx.env.delete(a); this.ctx.searchOf.delete(a); } return;
      case "load_env": return this.loadEnv(args);
      case "insmod": if (args[0] && !this.out.insmods.includes(args[0]) && this.out.insmods.length < 1024) this.out.insmods.push(args[0]); return;
      case "search": case "search.fs_uuid": case "search.fs_label": case "search.file": return this.search(name, args);
      case "source": case "configfile":
        if (args[0] && this.out.sources.length < 256 && !this.out.sources.some((x) => x.command === name && x.path === args[0])) this.out.sources.push({ command: name, path: args[0] });
        return;
      case "blscfg": this.out.blscfg = true; this.blscfg(); return;
      case "linux": case "linux16": case "linuxefi": case "linux32": case "chainloader": case "multiboot": case "multiboot2": {
        if (!e || !args.length) return;
        e.loader = name === "linuxefi" || name === "linux16" || name === "linux" || name === "chainloader" || name === "multiboot" || name === "multiboot2" ? name : "linux";
        const skip = name === "chainloader" ? args.findIndex((x) => !x.startsWith("--")) : 0;
        const { dev, path } = splitDevice(args[Math.max(0, skip)]);
        e.kernel = path; e.kernelDevice = dev;
        e.cmdline = args.slice(Math.max(0, skip) + 1).join(" ");
        e.rootDevice = this.rootExpr();
        return;
      }
      case "initrd": case "initrd16": case "initrdefi": case "module": case "module2":
        if (!e) return;
        for (const a of args) if (!a.startsWith("--") && e.initrds.length < 64) e.initrds.push(a);
        return;
      default:
        void line;
    }
  }

  private rootExpr(): GrubRootExpr {
    const s = this.ctx.searchOf.get("root");
    return { root: this.ctx.env.get("root") ?? "", ...(s ? { search: s } : {}) };
  }

  /** `load_env [-f file] [--skip-sig] [vars...]`: grubenv variables, all or the whitelisted ones. */
  private loadEnv(args: string[]): void {
    const env = this.opts.grubenv;
    if (!env) return;
    const names: string[] = [];
    for (let i = 0; i < args.length; i++) {
      if (args[i] === "-f" || args[i] === "--file") { i++; continue; }
      if (args[i].startsWith("-")) continue;
      names.push(args[i]);
    }
    for (const [k, v] of Object.entries(env)) if (!names.length || names.includes(k)) this.setVar(k, v);
  }

  private search(name: string, args: string[]): void {
    let by: GrubSearch["by"] = name === "search.fs_label" ? "label" : name === "search.file" ? "file" : "fs-uuid";
    let setVar = "", value = "";
    const hints: string[] = [], rest: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a === "--fs-uuid" || a === "-u") by = "fs-uuid";
      else if (a === "--label" || a === "-l") by = "label";
      else if (a === "--file" || a === "-f") by = "file";
      else if (a.startsWith("--set=")) setVar = a.slice(6);
      else if (a === "--set" || a === "-s") setVar = args[i + 1] && !args[i + 1].startsWith("-") && name === "search" && i + 2 < args.length ? args[++i] : "root";
      else if (a.startsWith("--hint")) hints.push(a.includes("=") ? a.slice(a.indexOf("=") + 1) : args[++i] ?? "");
      else if (a.startsWith("-")) continue;
      else rest.push(a);
    }
    value = rest[0] ?? "";
    if (name !== "search") setVar = rest[1] ?? "root";   // search.fs_uuid UUID [VAR]
    if (!setVar) return;                                  // search without --set only prints
    const s: GrubSearch = { by, value, setVar, hints };
    if (this.out.searches.length < 1024) this.out.searches.push(s);
    this.ctx.searchOf.set(setVar, s);
    if (name !== "search" && rest[2]) this.ctx.env.set(setVar, rest[2]);
  }

  /** `blscfg`: one menu entry per BLS snippet, newest first (Fedora's blscfg module). */
  private blscfg(): void {
    for (const b of sortBlsEntries(this.opts.bls ?? [])) {
      const e = this.newEntry("menuentry", b.title ?? b.id, b.id, b.grubClass);
      e.bls = b.file;
      this.ctx.bodies.set(e, []);
      e.loader = "linux";
      const k = splitDevice(b.linux ?? "");
      e.kernel = k.path || undefined; e.kernelDevice = k.dev;
      // Options and initrd keep their $variables until the entry boots.
      (e as GrubEntry & { blsRaw?: BlsEntry }).blsRaw = b;
      this.addEntry(e);
    }
  }

  private newEntry(kind: GrubEntry["kind"], title: string, id: string | undefined, classes: string[]): GrubEntry {
    return { kind, title, ...(id ? { id } : {}), classes, index: "", conditional: this.ctx.conditional > 0, initrds: [] };
  }

  private addEntry(e: GrubEntry): void {
    if (this.ctx.entries.length >= MAX_GRUB_ENTRIES) this.limit(`more than ${MAX_GRUB_ENTRIES} menu entries in one menu`);
    e.index = String(this.ctx.entries.length);
    this.ctx.entries.push(e);
  }

  private defineEntry(c: Extract<Cmd, { t: "block" }>): void {
    const { fields } = this.expandAll(c.words.slice(1));
    let title = "", id: string | undefined;
    const classes: string[] = [];
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (f === "--class") { if (fields[i + 1] !== undefined) classes.push(fields[++i]); }
      else if (f === "--id") id = fields[++i];
      else if (f.startsWith("--id=")) id = f.slice(5);
      else if (f === "--users" || f === "--hotkey") i++;
      else if (f.startsWith("--")) continue;
      else if (!title) title = f;
    }
    const e = this.newEntry(c.keyword, title, id, classes);
    this.ctx.bodies.set(e, c.body);
    this.addEntry(e);
  }

  /** Evaluate menu entry bodies (and submenus' scripts) in copies of `env`. */
  evalBodies(entries: GrubEntry[], prefix: string, env: Map<string, string>): void {
    if (prefix.split(">").length > MAX_GRUB_NESTING) this.limit(`submenus nested deeper than ${MAX_GRUB_NESTING}`);
    for (const e of entries) {
      e.index = prefix + e.index;
      const body = this.ctx.bodies.get(e) ?? [];
      const saved = { env: this.ctx.env, searchOf: this.ctx.searchOf, entries: this.ctx.entries, cur: this.ctx.cur, cond: this.ctx.conditional };
      this.ctx.env = new Map(env);
      this.ctx.env.set("chosen", e.title);
      this.ctx.searchOf = new Map(saved.searchOf);
      this.ctx.conditional = e.conditional ? 1 : 0;
      try {
        if (e.kind === "submenu") {
          e.children = [];
          this.ctx.entries = e.children;
          this.ctx.cur = undefined;
          this.run(body);
          this.evalBodies(e.children, e.index + ">", this.ctx.env);
        } else {
          this.ctx.cur = e;
          const raw = (e as GrubEntry & { blsRaw?: BlsEntry }).blsRaw;
          if (raw) {
            delete (e as GrubEntry & { blsRaw?: BlsEntry }).blsRaw;
            e.cmdline = this.expandJoined(raw.options);
            for (const f of this.expandJoined(raw.initrd.join(" ")).split(" ")) if (f && e.initrds.length < 64) e.initrds.push(f);
            e.rootDevice = this.rootExpr();
          } else this.run(body);
        }
      } finally {
        this.ctx.env = saved.env; this.ctx.searchOf = saved.searchOf; this.ctx.entries = saved.entries;
        this.ctx.cur = saved.cur; this.ctx.conditional = saved.cond;
      }
    }
  }

  // ---- expansion (GRUB manual §6.2 "Quoting", §6.3 "Variable expansion") ----

  /** Expand a text holding several words (a BLS options line, an assignment's value). */
  private expandJoined(raw: string): string {
    const words = lex(raw.slice(0, MAX_GRUB_VALUE_BYTES)).toks.flatMap((t) => (t.k === "word" ? [{ raw: t.raw, line: 0 }] : []));
    return this.expandAll(words).fields.join(" ");
  }

  expandAll(words: Word[]): { fields: string[]; unknown: boolean } {
    const fields: string[] = [];
    let unknown = false;
    for (const w of words) {
      const r = expandWord(w.raw, this.ctx.env, this.ctx.unknownVars);
      if (r.truncated) {
        this.out.findings.push(finding("GRUB_CFG_LIMIT", { file: this.file, detail: `a value longer than ${MAX_GRUB_VALUE_BYTES} bytes at line ${w.line} was truncated` }));
      }
      if (r.unknown) unknown = true;
      fields.push(...r.fields);
    }
    return { fields, unknown };
  }
}

/** Split "(hd0,gpt2)/vmlinuz" into device and path. */
export function splitDevice(p: string): { dev?: string; path: string } {
  const m = /^\(([^)]*)\)(.*)$/.exec(p);
  return m ? { dev: m[1], path: m[2] } : { path: p };
}

/** One word -> fields: quotes removed, $var/${var} expanded, unquoted expansions split on blanks. */
export function expandWord(raw: string, env: Map<string, string>, unknownVars: Set<string> = new Set()):
    { fields: string[]; unknown: boolean; truncated: boolean } {
  const fields: string[] = [];
  let cur = "", have = false, unknown = false, truncated = false;
  const push = (s: string) => {
    if (cur.length + s.length > MAX_GRUB_VALUE_BYTES) { s = s.slice(0, Math.max(0, MAX_GRUB_VALUE_BYTES - cur.length)); truncated = true; }
    cur += s;
  };
  const varAt = (i: number): { name: string; end: number } | undefined => {
    if (raw[i + 1] === "{") {
      const e = raw.indexOf("}", i + 2);
      return e < 0 ? undefined : { name: raw.slice(i + 2, e), end: e + 1 };
    }
    const m = /^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?#*@])/.exec(raw.slice(i + 1, i + 1 + 256));
    return m ? { name: m[0], end: i + 1 + m[0].length } : undefined;
  };
  const lookup = (n: string) => { if (unknownVars.has(n)) unknown = true; return env.get(n) ?? ""; };
  let i = 0, q: "" | "'" | "\"" = "";
  while (i < raw.length) {
    const ch = raw[i];
    if (q === "'") { if (ch === "'") { q = ""; i++; continue; } push(ch); i++; continue; }
    if (ch === "\\") {
      const n = raw[i + 1];
      if (n === undefined) { i++; continue; }
      if (n === "\n") { i += 2; continue; }
      if (q === "\"" && !"$\"\\".includes(n)) push("\\");
      push(n); have = true; i += 2; continue;
    }
    if (q === "\"") {
      if (ch === "\"") { q = ""; i++; continue; }
      if (ch === "$") { const v = varAt(i); if (v) { push(lookup(v.name)); i = v.end; continue; } }
      push(ch); i++; continue;
    }
    if (ch === "'" || ch === "\"") { q = ch; have = true; i++; continue; }
    if (ch === "$") {
      const v = varAt(i);
      if (v) {
        const parts = lookup(v.name).split(/[ \t\n]+/);
        for (let k = 0; k < parts.length; k++) {
          if (k > 0) { if (cur !== "" || have) fields.push(cur); cur = ""; have = false; }
          push(parts[k]);
        }
        i = v.end; continue;
      }
    }
    push(ch); i++;
  }
  if (cur !== "" || have) fields.push(cur);
  return { fields, unknown, truncated };
}

/** GRUB's default entry selection (normal/menu.c): number, id, title, or a '>' path; ">>" is a literal '>'. */
function resolveDefault(out: GrubConfig, value: string): void {
  out.defaultValue = value;
  if (out.entries.length === 0) { out.defaultHow = "none"; return; }
  const first = () => firstBootable(out.entries);
  if (value === "") { out.defaultHow = "empty"; out.defaultEntry = first(); return; }
  const parts = value.split(/(?<!>)>(?!>)/).map((p) => p.replace(/>>/g, ">"));
  let level = out.entries, hit: GrubEntry | undefined, how: GrubConfig["defaultHow"] = "number";
  for (const p of parts) {
    hit = undefined;
    if (/^[0-9]+$/.test(p)) hit = level[Number(p)];
    else {
      hit = level.find((e) => e.id === p) ?? level.find((e) => e.title === p);
      how = hit && hit.id === p ? "id" : "title";
    }
    if (!hit) break;
    level = hit.children ?? [];
  }
  if (hit && parts.length > 1) how = "path";
  if (hit && hit.kind === "submenu") hit = firstBootable(hit.children ?? []);
  if (hit) { out.defaultHow = how; out.defaultEntry = hit; return; }
  out.defaultHow = "fallback-first";
  out.defaultEntry = first();
  out.findings.push(finding("GRUB_DEFAULT_UNMATCHED", { value, first: out.defaultEntry?.title ?? "none" }));
}

function firstBootable(es: GrubEntry[]): GrubEntry | undefined {
  const e = es[0];
  if (!e) return undefined;
  return e.kind === "submenu" ? firstBootable(e.children ?? []) : e;
}

// ---- grubenv and /etc/default/grub ----

export const GRUBENV_HEADER = "# GRUB Environment Block\n";

/** Parse a grubenv block (grub-core/lib/envblk.c): header line, name=value lines with '\' escapes, '#' padding. */
export function parseGrubenv(b: Buffer | string): { vars: Record<string, string>; valid: boolean; size: number } {
  const s = typeof b === "string" ? b : b.toString("utf8", 0, Math.min(b.length, 64 * 1024));
  const vars: Record<string, string> = {};
  if (!s.startsWith(GRUBENV_HEADER)) return { vars, valid: false, size: s.length };
  let i = GRUBENV_HEADER.length;
  while (i < s.length) {
    if (s[i] === "#") { const n = s.indexOf("\n", i); if (n < 0) break; i = n + 1; continue; }
    let line = "", j = i;
    for (; j < s.length && s[j] !== "\n"; j++) {
      if (s[j] === "\\" && j + 1 < s.length) { line += s[++j]; continue; }
      line += s[j];
    }
    const eq = line.indexOf("=");
    if (eq > 0 && Object.keys(vars).length < 1024) vars[line.slice(0, eq)] = line.slice(eq + 1);
    i = j + 1;
  }
  return { vars, valid: true, size: s.length };
}

/** /etc/default/grub: shell assignments (quotes, $VAR of earlier keys), comments ignored. */
export function parseDefaultGrub(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  const env = new Map<string, string>();
  let n = 0;
  for (const line of text.slice(0, MAX_GRUB_VALUE_BYTES * 4).split("\n")) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m || ++n > 4096) continue;
    let v = m[2].trim();
    if (!v.startsWith("'") && !v.startsWith("\"")) v = v.replace(/\s+#.*$/, "");
    const f = expandWord(v, env).fields.join(" ");
    env.set(m[1], f);
    vars[m[1]] = f;
  }
  return vars;
}
