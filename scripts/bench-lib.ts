// Shared helpers of `npm run bench` (scripts/bench*.ts): timed `bootgate check` child runs with peak RSS
// (GNU time's %M), medians, machine facts and Markdown tables for bench/RESULTS.md.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

export const ROOT = path.resolve(import.meta.dirname, "..");
export const BIN = path.join(ROOT, "emu/bin.mjs");
export const FIXTURES = path.join(ROOT, ".cache/fixtures/gen1");
export const WORK = path.join(ROOT, ".cache/bench");
export const GNU_TIME = "/usr/bin/time";

export const median = (xs: number[]): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};
export const sec = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "n/a");
export const mib = (kib: number): string => (Number.isFinite(kib) ? `${Math.round(kib / 1024)} MiB` : "n/a");

/** The parts of a bootgate.verdict/1 document the bench reads. */
export interface GenDoc {
  verdict: string; reached: string; stop?: { reason: string };
  stats: { events?: number; wallMs?: number; virtualMs?: number; diskReads?: number; sectorsRead?: number };
  handoff?: { entry?: { linear: number } } | null;
}
export interface CliRun {
  /** Wall time of the whole child process (start-up, open, emulation, OS stage, JSON), ms. */
  ms: number;
  /** Peak resident set of the child, KiB (GNU time %M); NaN without /usr/bin/time. */
  rssKiB: number;
  exit: number | null;
  gen1?: GenDoc;
  stderr: string;
}

/**
 * The CLI the bench runs: a frozen copy of the bundle emu/bin.mjs runs (.cache/bundle), so that other people's source
 * edits during a bench cannot make bin.mjs rebuild it (esbuild, seconds) in the middle of a timed run. What this
 * leaves out of the CLI time is bin.mjs's own freshness check (a stat of every source file, a few ms).
 */
let launcher: string | undefined;

export function freezeBundle(): string {
  const r = spawnSync(process.execPath, [BIN, "--version"], { encoding: "utf8" });   // rebuilds the bundle if stale
  const src = path.join(ROOT, ".cache/bundle");
  if (r.status !== 0 || !fs.existsSync(path.join(src, "bootgate.mjs"))) {
    launcher = undefined;
    return `emu/bin.mjs as is (no bundle: ${r.stderr?.trim().slice(0, 120) || "esbuild unavailable"})`;
  }
  const dst = path.join(WORK, "bundle");
  fs.rmSync(dst, { recursive: true, force: true });
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src).filter((x) => /\.mjs$/.test(x) && !x.includes(".tmp"))) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  launcher = path.join(dst, "bench-launch.mjs");
  fs.writeFileSync(launcher, `process.env.BOOTGATE_ROOT = ${JSON.stringify(ROOT)};\n` +
    `const { main } = await import("./bootgate.mjs");\nprocess.exitCode = await main(process.argv.slice(2));\n`);
  return `frozen copy of .cache/bundle (bootgate ${r.stdout.trim()}) run by a 3-line launcher`;
}

/** The script the bench runs as `bootgate`: the frozen launcher after freezeBundle(), else emu/bin.mjs. */
export const cliEntry = (): string => launcher ?? BIN;

/** Run `node emu/bin.mjs ARGS...` (or the frozen bundle, see freezeBundle) in a child process: wall time, peak RSS (GNU time %M), exit code, stderr. */
export async function runBin(args: string[]): Promise<{ ms: number; rssKiB: number; exit: number | null; stderr: string }> {
  fs.mkdirSync(WORK, { recursive: true });
  const timeOut = path.join(WORK, `time-${process.pid}-${Math.random().toString(36).slice(2)}.txt`);
  const useTime = fs.existsSync(GNU_TIME);
  const entry = cliEntry();
  const [cmd, argv] = useTime ? [GNU_TIME, ["-f", "%M", "-o", timeOut, process.execPath, entry, ...args]] : [process.execPath, [entry, ...args]];
  const t0 = performance.now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((res) => {
    const c = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    c.stderr.on("data", (d) => { err += d; });
    c.on("close", (code) => res({ code, stderr: err }));
  });
  const ms = performance.now() - t0;
  let rssKiB = NaN;
  try { rssKiB = Number(fs.readFileSync(timeOut, "utf8").trim().split("\n").pop()); } catch { /* no GNU time */ }
  fs.rmSync(timeOut, { force: true });
  return { ms, rssKiB, exit: code, stderr: stderr.trim() };
}

/** Run `bootgate check --gen 1 --json FILE --quiet IMAGE` in a child process, timed, with its peak RSS. */
export async function runCheck(image: string, extra: string[] = []): Promise<CliRun> {
  fs.mkdirSync(WORK, { recursive: true });
  const json = path.join(WORK, `verdict-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  const r = await runBin(["check", "--gen", "1", "--json", json, "--quiet", ...extra, image]);
  let gen1: GenDoc | undefined;
  try { gen1 = (JSON.parse(fs.readFileSync(json, "utf8")) as { generations: (GenDoc & { generation: number })[] }).generations.find((g) => g.generation === 1); } catch { /* no verdict */ }
  fs.rmSync(json, { force: true });
  return { ...r, gen1 };
}

/** Run `count` jobs with at most `workers` in flight; returns the wall time of the whole batch, ms. */
export async function pool<T>(items: T[], workers: number, job: (x: T) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(workers, items.length) }, async () => {
    while (next < items.length) await job(items[next++]);
  }));
  return performance.now() - t0;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.status === 0 ? r.stdout.split("\n")[0].trim() : "not found";
}

/** Facts that make the numbers comparable: CPU, cores, load, versions. */
export function machineFacts(qemu: string | undefined, cli: string): [string, string][] {
  const cpus = os.cpus();
  return [
    ["date", new Date().toISOString().replace(/\.\d+Z$/, "Z")],
    ["CPU", `${cpus[0]?.model ?? "unknown"} (${cpus.length} logical cores visible to Node)`],
    ["load average at start (1/5/15 min)", os.loadavg().map((x) => x.toFixed(2)).join(" / ")],
    ["memory", `${Math.round(os.totalmem() / 2 ** 30)} GiB`],
    ["kernel", `${os.type()} ${os.release()}`],
    ["node", process.version],
    ["unicorn", firstLine("dpkg-query", ["-W", "-f", "${Package} ${Version}", "libunicorn2"])],
    ["qemu", qemu ?? "not installed"],
    ["bootgate CLI as run", cli],
    ["seabios", firstLine("dpkg-query", ["-W", "-f", "${Package} ${Version}", "seabios"])],
  ];
}

export function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** Replace the generated part of `file` (between the bench markers), keeping hand-written text around it. */
export function writeGenerated(file: string, body: string): void {
  const BEGIN = "<!-- bench:begin (generated by npm run bench; edit outside these markers) -->";
  const END = "<!-- bench:end -->";
  let text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : `# bootgate benchmark results\n\n${BEGIN}\n${END}\n`;
  const a = text.indexOf(BEGIN), b = text.indexOf(END);
  text = a >= 0 && b > a ? text.slice(0, a + BEGIN.length) + "\n" + body + "\n" + text.slice(b) : `${text}\n${BEGIN}\n${body}\n${END}\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

export function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr || r.error?.message}`);
}
