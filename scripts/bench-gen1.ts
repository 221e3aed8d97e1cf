// Generation 1 benchmark (issue 7): bootgate against a real QEMU/SeaBIOS boot of every Gen1 fixture
// (scripts/build-fixtures-gen1.sh), size scaling (128 MiB against 2000 GiB and 2.5 TiB sparse), batch throughput
// and peak RSS. Used by scripts/bench.ts; alone, `npx tsx scripts/bench-gen1.ts [image...]` prints the in-process
// runGen1 stats of the given images (default: the GRUB/MBR and SYSLINUX fixtures).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Disk } from "../images/block.ts";
import { rawDriver } from "../images/raw.ts";
import { FileSource } from "../images/source.ts";
import { runGen1 } from "../emu/gen1.ts";
import { bootQemu, type QemuRun, type QemuSignal } from "./bench-qemu.ts";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { FIXTURES, WORK, cliEntry, median, mib, pool, runBin, runCheck, sec, sh, table, type CliRun } from "./bench-lib.ts";

interface Manifest {
  kernelVersion: string;
  fixtures: Record<string, { expect: string; screen?: string; loader: string; table: string; timeout?: number }>;
}

export function readManifest(): Manifest {
  const f = path.join(FIXTURES, "manifest.json");
  if (!fs.existsSync(f)) throw new Error(`${f} is missing: build the fixtures first with \`npm run fixtures\``);
  return JSON.parse(fs.readFileSync(f, "utf8")) as Manifest;
}

/** The fixtures' bzImage (extracted by the fixture builder), to confirm QEMU's stop is the kernel's entry. */
function kernelImage(m: Manifest): Uint8Array | undefined {
  const x = path.join(path.dirname(FIXTURES), "..", "debs", "x");
  if (!fs.existsSync(x)) return undefined;
  for (const d of fs.readdirSync(x)) {
    const k = path.join(x, d, "boot", `vmlinuz-${m.kernelVersion}`);
    if (fs.existsSync(k)) return fs.readFileSync(k);
  }
  return undefined;
}

/**
 * What QEMU shows when each failing fixture reaches the point where bootgate decides (seen on the serial port through
 * SeaBIOS's sercon). zeroed-bootcode has none: SeaBIOS jumps into 440 zero bytes and nothing is ever printed, so
 * QEMU's time there is the time-out, a lower bound (a person would wait at least that long).
 */
const FAIL_TEXT: Record<string, RegExp | null> = {
  "no-55aa.img": /Boot failed: not a bootable disk/,
  "no-active.img": /Missing operating system/,
  "grub-wrong-prefix.img": /grub rescue>/,
  "gpt-no-biosboot.img": /GRUB GRUB /,
  "zeroed-bootcode.img": null,
};

export interface CompareRow {
  image: string; expect: string; verdict: string; stop: string; events: number; virtualMs: number;
  cli: number[]; gen1: number[]; rss: number[]; qemu: number[]; qemuReached: boolean; qemuWhat: string;
}

/**
 * Each fixture: alternating bootgate CLI / QEMU runs, `reps` times. QEMU runs end at the signal or after
 * `silentTimeoutMs` for a fixture that shows nothing (zeroed-bootcode), `capMs` for the others.
 */
export async function compare(reps: number, qemuOk: boolean, silentTimeoutMs: number, capMs: number, log: (s: string) => void): Promise<CompareRow[]> {
  const m = readManifest();
  const kernel = kernelImage(m);
  if (!kernel) log("  (no extracted bzImage found under .cache/debs/x: QEMU kernel stops are not confirmed against its bytes)");
  const names = Object.keys(m.fixtures).filter((n) => fs.existsSync(path.join(FIXTURES, n)));
  const rows = new Map<string, CompareRow>();
  await runCheck(path.join(FIXTURES, names[0]));            // warm-up: bin.mjs rebuilds its bundle when sources changed
  for (let rep = 0; rep < reps; rep++) {
    for (const name of names) {
      const img = path.join(FIXTURES, name);
      const b = await runCheck(img);
      const g = b.gen1;
      let row = rows.get(name);
      if (!row) {
        row = { image: name, expect: m.fixtures[name].expect, verdict: g ? `${g.verdict} (${g.reached})` : `no verdict: ${b.stderr.slice(0, 80)}`,
          stop: g?.stop?.reason ?? "?", events: g?.stats.events ?? NaN, virtualMs: g?.stats.virtualMs ?? NaN,
          cli: [], gen1: [], rss: [], qemu: [], qemuReached: true, qemuWhat: "" };
        rows.set(name, row);
      }
      row.cli.push(b.ms); row.rss.push(b.rssKiB);
      if (g?.stats.wallMs !== undefined) row.gen1.push(g.stats.wallMs);
      let q: QemuRun | undefined;
      if (qemuOk) {
        const entry = g?.handoff?.entry?.linear;
        const fail = FAIL_TEXT[name];
        const sig: QemuSignal = m.fixtures[name].expect === "kernel"
          ? { kind: "handoff", kernel, entries: entry !== undefined ? [entry] : undefined }
          : { kind: "text", pattern: fail === undefined && m.fixtures[name].screen ? new RegExp(escapeRe(m.fixtures[name].screen!.split("\n")[0])) : fail ?? /(?!)/ };
        q = await bootQemu(img, sig, fail === null ? silentTimeoutMs : capMs);
        row.qemu.push(q.ms);
        row.qemuReached &&= q.reached;
        row.qemuWhat = q.what;
      }
      log(`  [${rep + 1}/${reps}] ${name}: bootgate ${sec(b.ms)} (runGen1 ${sec(g?.stats.wallMs ?? NaN)}, ${mib(b.rssKiB)})` +
        (q ? `, QEMU ${sec(q.ms)}${q.reached ? "" : " (time-out)"}: ${q.what}` : ""));
    }
  }
  return [...rows.values()];
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function compareTable(rows: CompareRow[], qemuOk: boolean): string {
  return table(
    ["fixture", "bootgate verdict (stop)", "events", "virtual ms", "bootgate CLI", "runGen1 in the CLI", "peak RSS", "QEMU to the same point", "QEMU / bootgate CLI"],
    rows.map((r) => {
      const q = median(r.qemu), c = median(r.cli);
      const lb = r.qemuReached ? "" : ">= ";
      return [r.image, `${r.verdict} (${r.stop})`, r.events, r.virtualMs, sec(c), sec(median(r.gen1)), mib(Math.max(...r.rss)),
        qemuOk ? `${lb}${sec(q)}: ${r.qemuWhat}` : "skipped", qemuOk ? `${lb}${(q / c).toFixed(1)}x` : "-"];
    }));
}

/**
 * What "just trying it" costs: each kernel fixture booted once in QEMU until its root filesystem's /sbin/init prints
 * "bootgate-root: reached /sbin/init" (or the initramfs gives up). Under QEMU the disk is on ata_piix, so even
 * grub-no-hv-initrd reaches root there (it fails on Hyper-V, where the disk is behind hv_storvsc).
 */
export async function qemuToRoot(rows: CompareRow[], capMs: number, log: (s: string) => void): Promise<string> {
  const out: (string | number)[][] = [];
  for (const r of rows.filter((x) => x.expect === "kernel")) {
    const q = await bootQemu(path.join(FIXTURES, r.image), { kind: "text", pattern: /bootgate-root: reached \/sbin\/init|bootgate-initrd: Gave up[^\r\n]*/ }, capMs);
    log(`  ${r.image}: QEMU to root ${sec(q.ms)}${q.reached ? "" : " (time-out)"}: ${q.what}`);
    const lb = q.reached ? "" : ">= ";
    out.push([r.image, `${lb}${sec(q.ms)}`, q.reached ? q.what : "time-out", sec(median(r.cli)), `${lb}${(q.ms / median(r.cli)).toFixed(1)}x`]);
  }
  return table(["fixture", "QEMU to root (1 run)", "what QEMU showed", "bootgate CLI (median)", "QEMU to root / bootgate"], out);
}

// ---- size scaling ---------------------------------------------------------------------------------------------------

export interface SizeCase { label: string; file: string }

/** grub-mbr and grub-gpt-biosboot at 128 MiB, 2000 GiB (the largest disk Gen1 IDE attaches) and 2.5 TiB, sparse. */
export function sizeImages(): SizeCase[] {
  const dir = path.join(WORK, "gen1");
  fs.mkdirSync(dir, { recursive: true });
  const out: SizeCase[] = [];
  const make = (src: string, size: string, gpt: boolean, fmt: "raw" | "vhdx"): string => {
    const base = `${path.basename(src, ".img")}-${size}`;
    const raw = path.join(dir, `${base}.img`);
    if (!fs.existsSync(raw)) {
      sh("cp", ["--sparse=always", src, `${raw}.tmp`]);
      sh("truncate", ["-s", size, `${raw}.tmp`]);
      if (gpt) sh("sgdisk", ["-q", "-e", `${raw}.tmp`]);     // move the backup GPT to the new end of the disk
      fs.renameSync(`${raw}.tmp`, raw);
    }
    if (fmt === "raw") return raw;
    const vhdx = path.join(dir, `${base}.vhdx`);
    if (!fs.existsSync(vhdx)) {
      sh("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", raw, `${vhdx}.tmp`]);
      fs.renameSync(`${vhdx}.tmp`, vhdx);
    }
    return vhdx;
  };
  for (const [name, gpt] of [["grub-mbr.img", false], ["grub-gpt-biosboot.img", true]] as const) {
    const src = path.join(FIXTURES, name);
    for (const size of ["128M", "2000G", "2560G"]) {
      out.push({ label: `${name.replace(".img", "")}, raw ${size.replace("M", " MiB").replace("G", " GiB")}`, file: make(src, size, gpt, "raw") });
    }
    if (!gpt) for (const size of ["128M", "2000G"]) out.push({ label: `grub-mbr, VHDX dynamic ${size.replace("M", " MiB").replace("G", " GiB")}`, file: make(src, size, gpt, "vhdx") });
  }
  return out;
}

export async function sizeScaling(reps: number, log: (s: string) => void): Promise<string> {
  const cases = sizeImages();
  const res = new Map<string, CliRun[]>();
  for (let rep = 0; rep < reps; rep++) {
    for (const c of cases) {
      const r = await runCheck(c.file);
      res.set(c.label, [...(res.get(c.label) ?? []), r]);
      log(`  [${rep + 1}/${reps}] ${c.label}: ${sec(r.ms)} ${r.gen1 ? `${r.gen1.verdict} (${r.gen1.reached}, ${r.gen1.stop?.reason ?? "no boot"})` : r.stderr.slice(0, 100)}`);
    }
  }
  return table(["image", "file on disk", "verdict (stop)", "events", "bootgate CLI", "runGen1", "peak RSS"], cases.map((c) => {
    const rs = res.get(c.label)!;
    const g = rs[0].gen1;
    return [c.label, mib(fs.statSync(c.file).blocks * 512 / 1024), g ? `${g.verdict} (${g.reached}, ${g.stop?.reason ?? "no boot"})` : "no verdict",
      g?.stats.events ?? "-", sec(median(rs.map((r) => r.ms))), sec(median(rs.flatMap((r) => (r.gen1?.stats.wallMs !== undefined ? [r.gen1.stats.wallMs] : []))) ),
      mib(Math.max(...rs.map((r) => r.rssKiB)))];
  }));
}

// ---- batch throughput -----------------------------------------------------------------------------------------------

/** Does the CLI take several images and --jobs (emu/batch.ts, issue 7's batch mode)? */
export function cliHasJobs(): boolean {
  const r = spawnSync(process.execPath, [cliEntry(), "check", "--help"], { encoding: "utf8" });
  return /--jobs/.test(r.stdout ?? "");
}

export async function batch(count: number, log: (s: string) => void): Promise<{ text: string; native: boolean }> {
  const names = Object.keys(readManifest().fixtures).filter((n) => fs.existsSync(path.join(FIXTURES, n)));
  const images = Array.from({ length: count }, (_, i) => path.join(FIXTURES, names[i % names.length]));
  const native = cliHasJobs();
  const rows: (string | number)[][] = [];
  for (const workers of [1, 2]) {
    let ms: number, rss = NaN, note = "";
    if (native) {
      const json = path.join(WORK, `batch-${process.pid}.json`);
      const r = await runBin(["check", "--gen", "1", "--quiet", "--jobs", String(workers), "--json", json, ...images]);
      ms = r.ms; rss = r.rssKiB;
      try {
        const doc = JSON.parse(fs.readFileSync(json, "utf8")) as { results: unknown[] };
        note = `${doc.results.length} results, exit ${r.exit}`;
      } catch { note = `no batch JSON (exit ${r.exit}: ${r.stderr.slice(0, 120)})`; }
      fs.rmSync(json, { force: true });
    } else {
      const runs: CliRun[] = [];
      ms = await pool(images, workers, async (img) => { runs.push(await runCheck(img)); });
      rss = Math.max(...runs.map((r) => r.rssKiB));
      note = `${runs.filter((r) => r.gen1).length} verdicts`;
    }
    log(`  ${count} images, ${workers} worker(s): ${sec(ms)} (${note})`);
    rows.push([native ? `\`bootgate check --jobs ${workers} <${count} images>\` (one process, worker threads)` : `${workers} parallel \`bootgate check\` process${workers > 1 ? "es" : ""}`,
      count, sec(ms), sec(ms / count), `${(count / (ms / 60_000)).toFixed(0)} images/min`, native ? mib(rss) : `${mib(rss)} per process`, note]);
  }
  return { native, text: table(["mode", "images", "wall time", "per image", "throughput", "peak RSS", "check"], rows) };
}

// ---- profile --------------------------------------------------------------------------------------------------------

interface ProfNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }

/** Bundle line -> the source file esbuild marks above it (`// emu/cpu.ts`), for readable profiles. */
function bundleSources(bundle: string): (line: number) => string {
  const marks: [number, string][] = [];
  try {
    fs.readFileSync(bundle, "utf8").split("\n").forEach((l, i) => {
      const m = /^\/\/ ((?:emu|images|firmware-stubs)\/[\w./-]+\.ts)$/.exec(l);
      if (m) marks.push([i + 1, m[1]]);
    });
  } catch { /* not the bundle */ }
  return (line) => {
    let best = "bootgate.mjs";
    for (const [l, f] of marks) { if (l > line) break; best = `${f} (bundle)`; }
    return best;
  };
}

/** `node --cpu-prof` of one CLI check; the top functions by self time. */
export function profile(image: string, top = 15): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-prof-"));
  const t0 = performance.now();
  spawnSync(process.execPath, ["--cpu-prof", "--cpu-prof-dir", dir, cliEntry(), "check", "--gen", "1", "--quiet", image], { stdio: "ignore" });
  const wall = performance.now() - t0;
  const f = fs.readdirSync(dir).find((x) => x.endsWith(".cpuprofile"));
  if (!f) return "(no profile written)";
  const p = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { nodes: ProfNode[]; startTime: number; endTime: number; samples: number[] };
  fs.rmSync(dir, { recursive: true, force: true });
  const usPerSample = (p.endTime - p.startTime) / Math.max(1, p.samples.length);
  const self = new Map<string, number>();
  const sourceOf = bundleSources(path.join(path.dirname(cliEntry()), "bootgate.mjs"));
  for (const n of p.nodes) {
    const line = n.callFrame.lineNumber + 1;
    const where = n.callFrame.url.endsWith("/bootgate.mjs") ? sourceOf(line) : path.basename(n.callFrame.url || "");
    const key = `${n.callFrame.functionName || "(anonymous)"} ${where}${n.callFrame.url ? `:${line}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + (n.hitCount ?? 0) * usPerSample);
  }
  const total = (p.endTime - p.startTime) / 1000;
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, us]) => [`\`${k.trim()}\``, `${(us / 1000).toFixed(0)} ms`, `${((us / 1000 / total) * 100).toFixed(1)} %`]);
  return `Profile of \`bootgate check --gen 1 ${path.basename(image)}\` (node --cpu-prof, ${sec(wall)} wall, ${total.toFixed(0)} ms profiled; ` +
    `"(program)" is native code outside JavaScript: Unicorn's TCG, koffi calls, start-up):\n\n` +
    table(["function (self time)", "self", "share"], rows);
}

/** One fixture's power-on to hand-off numbers, measured in a fresh process (see handoffTable). */
interface HandoffRun { image: string; stop: string; first: number; warm: number[]; instructions: number; reads: number; sectors: number }

/**
 * Power-on to the Linux hand-off, the emulation alone (issue 3): in a fresh Node process per fixture, the first
 * runGen1 (cold: V8 has not optimised the hooks yet), then `warm` more runs, then one counted run for the number of
 * guest instructions (countInstructions: slower, so it is not timed).
 */
export function handoffTable(warm: number, log: (s: string) => void): string {
  const runs: HandoffRun[] = [];
  for (const name of ["grub-mbr.img", "grub-gpt-biosboot.img", "grub-menu-timeout.img", "syslinux-fat.img"]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--handoff", String(warm), path.join(FIXTURES, name)],
      { encoding: "utf8", maxBuffer: 1 << 24 });
    const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
    if (r.status !== 0 || !line) throw new Error(`handoff run of ${name} failed: ${r.stderr}`);
    const h = JSON.parse(line) as HandoffRun;
    log(`  ${name}: first ${sec(h.first)}, warm median ${sec(median(h.warm))}, ${(h.instructions / 1e6).toFixed(1)} M instructions`);
    runs.push(h);
  }
  return table(["fixture", "stop", "guest instructions", "INT 13h reads (sectors)", "first run in a process", `median of ${warm} more`],
    runs.map((h) => [h.image, h.stop, `${(h.instructions / 1e6).toFixed(1)} M`, `${h.reads} (${h.sectors})`, sec(h.first), sec(median(h.warm))]));
}

/** The child side of handoffTable: prints one HandoffRun as JSON. */
function handoffChild(warm: number, img: string): void {
  const open = () => new Disk(rawDriver.open(new FileSource(img), {} as never));
  const timed = () => { const dev = open(); try { return runGen1(dev, { maxWallMs: 180_000 }); } finally { dev.close(); } };
  const first = timed();
  const warmMs: number[] = [];
  for (let i = 0; i < warm; i++) warmMs.push(timed().stats.wallMs);
  const dev = open();
  const counted = runGen1(dev, { maxWallMs: 600_000, countInstructions: true });
  dev.close();
  const out: HandoffRun = { image: path.basename(img), stop: first.stop.reason, first: first.stats.wallMs, warm: warmMs,
    instructions: counted.stats.instructions, reads: first.stats.diskReads, sectors: first.stats.sectorsRead };
  console.log(JSON.stringify(out));
}

// Stand-alone: the in-process runGen1 numbers, as before; --handoff N IMAGE is handoffTable's child.
if (import.meta.url === `file://${process.argv[1]}` && process.argv[2] === "--handoff") {
  handoffChild(Number(process.argv[3]), process.argv[4]);
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const images = process.argv.slice(2).length ? process.argv.slice(2) : [path.join(FIXTURES, "grub-mbr.img"), path.join(FIXTURES, "syslinux-fat.img")];
  const { loadDisassembler } = await import("../emu/disasm.ts");
  await loadDisassembler();
  for (const img of images) {
    const dev = new Disk(rawDriver.open(new FileSource(img), {} as never));
    const r = runGen1(dev, { maxWallMs: 180_000 });
    console.log(`${path.basename(img)}: ${r.stop.reason} (${r.reached}) in ${r.stats.wallMs} ms wall; ` +
      `${r.stats.events} events, ${r.stats.virtualMs} virtual ms, ` +
      `${r.stats.diskReads} INT 13h reads (${r.stats.sectorsRead} sectors), ${r.stats.modeSwitches} mode switches` +
      (r.handoff ? `; Linux ${r.handoff.kernelVersion?.split(" ")[0]} cmdline "${r.handoff.cmdline}"` : ""));
    dev.close();
  }
}

