// `npm run fuzz -- --cases N --seed S [--target name] [--jobs J]`: seeded, deterministic mutation
// fuzzing of every parser of untrusted image bytes and of the full `check` (issue 7). Cases run in a
// child process that is killed on a hang or an RSS blow-up; anything but a result or an ImageError is a
// crash, written to .cache/fuzz/crashes/<target>-<seed>-<n>.bin with its stack and mutation recipe.
import * as fs from "node:fs";
import * as path from "node:path";
import { fork, type ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";
import { ImageError } from "../images/errors.ts";
import { Rng, caseSeed, materialize, mutate, type Mutated, type Seed } from "./fuzz-mutate.ts";
import { TARGETS, prepareSeeds, targetByName, writeMutatedFile, type Target } from "./fuzz-targets.ts";
import { buildSeeds } from "./fuzz-seeds.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
export const CRASH_DIR = path.join(ROOT, ".cache/fuzz/crashes");
/** A case whose process RSS grows by more than this is a memory crash (measured before/after the case). */
export const CASE_RSS_DELTA_BYTES = 1024 * 1024 * 1024;
/** The worker is killed when its RSS passes this at any time (polled every 250 ms). */
export const WORKER_RSS_BYTES = 3 * 1024 * 1024 * 1024;
/** Time a worker may take to load and prepare a target's seeds (the clean `check` runs included). */
const PREPARE_MS = 180_000;

export type Outcome = "ok" | "error" | "crash";
export interface CaseResult { target: string; n: number; outcome: Outcome; ms: number; kind?: string; code?: string; message?: string; recipe?: string[] }
export interface Crash { target: string; seed: number; n: number; kind: "exception" | "hang" | "memory" | "exit"; message: string; file: string; recipe: string[] }
export interface TargetStats { target: string; cases: number; ok: number; errors: number; crashes: number; maxMs: number; maxCase?: number; p99Ms: number; errorCodes: Record<string, number> }
export interface FuzzOptions { cases: number; seed: number; targets?: string[]; jobs?: number; log?: (s: string) => void }
export interface FuzzReport { seed: number; cases: number; wallMs: number; stats: TargetStats[]; crashes: Crash[] }

/** The input of case `n` of `target` (the same bytes in the worker, in the parent and in a regression test). */
export function caseInput(t: Target, seeds: Seed[], seed: number, n: number): Mutated {
  const r = new Rng(caseSeed(seed, t.name, n));
  const s = r.pick(seeds);
  return mutate(r, s, seeds.filter((x) => x !== s));
}

function crashPath(target: string, seed: number, n: number): string {
  fs.mkdirSync(CRASH_DIR, { recursive: true });
  return path.join(CRASH_DIR, `${target}-${seed}-${n}.bin`);
}

/** Write a crashing input and a .txt beside it (stack, recipe). */
function saveCrash(t: Target, m: Mutated, seed: number, n: number, what: string): string {
  const file = crashPath(t.name, seed, n);
  if (t.name === "check") writeMutatedFile(m, file);
  else fs.writeFileSync(file, materialize(m));
  fs.writeFileSync(file.replace(/\.bin$/, ".txt"), `target ${t.name}, seed ${seed}, case ${n}, from ${m.seed.name}\nrecipe: ${m.recipe.join(" ")}\n\n${what}\n`);
  return file;
}

// ---------------- worker (child process) ----------------

async function workerMain(): Promise<void> {
  const prepared = new Map<string, Seed[]>();
  let disasm = false;
  process.on("message", async (msg: { target: string; seed: number; from: number; to: number }) => {
    if (!process.connected) return;
    const t = targetByName(msg.target)!;
    if (t.name === "check" && !disasm) { await (await import("../emu/disasm.ts")).loadDisassembler(); disasm = true; }
    let seeds = prepared.get(t.name);
    if (!seeds) { seeds = await prepareSeeds(t); prepared.set(t.name, seeds); }
    process.send!({ type: "ready" });
    for (let n = msg.from; n < msg.to; n++) {
      const m = caseInput(t, seeds, msg.seed, n);
      const rss0 = process.memoryUsage().rss;
      const t0 = performance.now();
      const res: CaseResult = { target: t.name, n, outcome: "ok", ms: 0 };
      try {
        await t.run(m);
      } catch (e) {
        if (e instanceof ImageError) { res.outcome = "error"; res.code = e.code; }
        else {
          res.outcome = "crash"; res.kind = "exception"; res.message = String((e as Error)?.message ?? e); res.recipe = m.recipe;
          saveCrash(t, m, msg.seed, n, String((e as Error)?.stack ?? e));
        }
      }
      res.ms = performance.now() - t0;
      const grew = process.memoryUsage().rss - rss0;
      if (grew > CASE_RSS_DELTA_BYTES && res.outcome !== "crash") {
        res.outcome = "crash"; res.kind = "memory"; res.message = `RSS grew by ${(grew / 2 ** 20).toFixed(0)} MiB in one case`; res.recipe = m.recipe;
        saveCrash(t, m, msg.seed, n, res.message);
      }
      if (n % 200 === 199) (globalThis as { gc?: () => void }).gc?.();
      process.send!({ type: "case", ...res });
    }
    process.send!({ type: "done" });
  });
  process.send!({ type: "hello" });
}

// ---------------- parent ----------------

interface Job { target: string; from: number; to: number }

function vmRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch { return 0; }
}

/** Split `cases` over the targets by weight (every target at least one case). */
export function plan(cases: number, targets: Target[]): Map<string, number> {
  const sum = targets.reduce((a, t) => a + t.weight, 0);
  return new Map(targets.map((t) => [t.name, Math.max(1, Math.round((cases * t.weight) / sum))]));
}

/** A worker process reused across jobs until a hang or a death replaces it. */
interface WorkerSlot { child?: ChildProcess; ready?: Promise<void> }

function spawnWorker(slot: WorkerSlot): void {
  const child = fork(path.join(ROOT, "scripts/fuzz.ts"), ["--worker"], {
    execArgv: ["--import", "tsx", "--expose-gc"], stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced",
  });
  slot.child = child;
  slot.ready = new Promise((resolve) => {
    const onHello = (msg: { type: string }) => { if (msg.type === "hello") { child.off("message", onHello); resolve(); } };
    child.on("message", onHello);
    child.once("exit", () => resolve());
  });
}

export function stopWorker(slot: WorkerSlot): void {
  slot.child?.kill("SIGKILL");
  slot.child = undefined;
}

/** Run one job in a worker; on a hang / death, record the crash and continue after it in a fresh worker. */
async function runJob(slot: WorkerSlot, job: Job, seed: number, onCase: (r: CaseResult) => void, onCrash: (c: Crash) => void, log: (s: string) => void): Promise<void> {
  let from = job.from;
  const t = targetByName(job.target)!;
  while (from < job.to) {
    if (!slot.child || slot.child.exitCode !== null || slot.child.signalCode !== null) spawnWorker(slot);
    await slot.ready;
    const child = slot.child!;
    let next = from;
    const stopped = await new Promise<{ kind: "done" } | { kind: "hang" | "memory" | "exit"; why: string }>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const arm = (ms: number) => { clearTimeout(timer); timer = setTimeout(() => finish({ kind: "hang", why: `no result within ${ms} ms` }), ms); };
      const poll = setInterval(() => {
        const rss = vmRss(child.pid!);
        if (rss > WORKER_RSS_BYTES) finish({ kind: "memory", why: `worker RSS ${(rss / 2 ** 20).toFixed(0)} MiB passed ${(WORKER_RSS_BYTES / 2 ** 20).toFixed(0)} MiB` });
      }, 250);
      let ended = false;
      const onMessage = (msg: { type: string } & CaseResult) => {
        if (msg.type === "ready") arm(t.hangMs);
        else if (msg.type === "case") { next = msg.n + 1; onCase(msg); arm(t.hangMs); }
        else if (msg.type === "done") finish({ kind: "done" });
      };
      const onExit = (code: number | null, sig: string | null) => finish({ kind: "exit", why: `worker exited (code ${code}, signal ${sig})` });
      const finish = (r: { kind: "done" } | { kind: "hang" | "memory" | "exit"; why: string }) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer); clearInterval(poll);
        child.off("message", onMessage); child.off("exit", onExit);
        if (r.kind !== "done") stopWorker(slot);
        resolve(r);
      };
      child.on("message", onMessage);
      child.on("exit", onExit);
      arm(PREPARE_MS);
      child.send({ target: job.target, seed, from, to: job.to });
    });
    if (stopped.kind === "done" || next >= job.to) return;
    // Case `next` never reported: regenerate its input here and keep it.
    const seeds = await prepareSeeds(t);
    const m = caseInput(t, seeds, seed, next);
    const file = saveCrash(t, m, seed, next, stopped.why);
    log(`  CRASH ${t.name} case ${next}: ${stopped.kind}: ${stopped.why} -> ${path.relative(ROOT, file)}`);
    onCase({ target: t.name, n: next, outcome: "crash", ms: stopped.kind === "hang" ? t.hangMs : 0, kind: stopped.kind, message: stopped.why, recipe: m.recipe });
    onCrash({ target: t.name, seed, n: next, kind: stopped.kind, message: stopped.why, file, recipe: m.recipe });
    from = next + 1;
  }
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  buildSeeds(log);
  const targets = opts.targets?.length ? opts.targets.map((n) => {
    const t = targetByName(n);
    if (!t) throw new Error(`unknown target '${n}' (known: ${TARGETS.map((x) => x.name).join(", ")})`);
    return t;
  }) : TARGETS;
  const counts = plan(opts.cases, targets);
  const jobs: Job[] = [];
  const jobsPer = Math.max(1, opts.jobs ?? 1);
  for (const t of targets) {
    const c = counts.get(t.name)!;
    const step = Math.ceil(c / jobsPer);
    for (let f = 0; f < c; f += step) jobs.push({ target: t.name, from: f, to: Math.min(c, f + step) });
  }
  const times = new Map<string, number[]>();
  const stats = new Map<string, TargetStats>(targets.map((t) => [t.name, { target: t.name, cases: 0, ok: 0, errors: 0, crashes: 0, maxMs: 0, p99Ms: 0, errorCodes: {} }]));
  const crashes: Crash[] = [];
  const onCase = (r: CaseResult) => {
    const s = stats.get(r.target)!;
    s.cases++;
    if (r.outcome === "ok") s.ok++;
    else if (r.outcome === "error") { s.errors++; s.errorCodes[r.code!] = (s.errorCodes[r.code!] ?? 0) + 1; }
    else {
      s.crashes++;
      if (r.kind === "exception" || r.kind === "memory") {
        const file = crashPath(r.target, opts.seed, r.n);
        crashes.push({ target: r.target, seed: opts.seed, n: r.n, kind: r.kind, message: r.message ?? "", file, recipe: r.recipe ?? [] });
        log(`  CRASH ${r.target} case ${r.n}: ${r.message} -> ${path.relative(ROOT, file)}`);
      }
    }
    let a = times.get(r.target);
    if (!a) times.set(r.target, (a = []));
    a.push(r.ms);
    if (r.ms > s.maxMs) { s.maxMs = r.ms; s.maxCase = r.n; }
  };
  const queue = [...jobs];
  const runners = Array.from({ length: Math.min(jobsPer, jobs.length) }, async () => {
    const slot: WorkerSlot = {};
    try {
      for (let j = queue.shift(); j; j = queue.shift()) {
        log(`fuzz: ${j.target} cases ${j.from}..${j.to - 1}`);
        await runJob(slot, j, opts.seed, onCase, (c) => crashes.push(c), log);
      }
    } finally { stopWorker(slot); }
  });
  await Promise.all(runners);
  for (const s of stats.values()) {
    const a = (times.get(s.target) ?? []).sort((x, y) => x - y);
    s.p99Ms = a.length ? a[Math.min(a.length - 1, Math.floor(a.length * 0.99))] : 0;
  }
  return { seed: opts.seed, cases: [...stats.values()].reduce((a, s) => a + s.cases, 0), wallMs: performance.now() - t0, stats: [...stats.values()], crashes };
}

export function formatReport(r: FuzzReport): string {
  const head = ["target", "cases", "ok", "clean errors", "crashes", "max ms", "p99 ms"];
  const rows = r.stats.map((s) => [s.target, s.cases, s.ok, s.errors, s.crashes, s.maxMs.toFixed(1), s.p99Ms.toFixed(1)].map(String));
  const tot = r.stats.reduce((a, s) => [a[0] + s.cases, a[1] + s.ok, a[2] + s.errors, a[3] + s.crashes], [0, 0, 0, 0]);
  rows.push(["total", ...tot.map(String), "", ""]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join("  ");
  return [`seed ${r.seed}, ${r.cases} cases in ${(r.wallMs / 1000).toFixed(1)} s`, line(head), ...rows.map(line)].join("\n") + "\n";
}

async function cliMain(argv: string[]): Promise<number> {
  const opt = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const targets = argv.flatMap((a, i) => (a === "--target" ? argv[i + 1].split(",") : []));
  const cases = Number(opt("--cases") ?? 1000), seed = Number(opt("--seed") ?? 1), jobs = Number(opt("--jobs") ?? 1);
  if (!Number.isSafeInteger(cases) || cases < 1 || !Number.isSafeInteger(seed) || seed < 0 || !Number.isSafeInteger(jobs) || jobs < 1) {
    process.stderr.write("usage: npm run fuzz -- [--cases N] [--seed S] [--target NAME[,NAME]] [--jobs J] [--json FILE]\n");
    return 2;
  }
  const r = await runFuzz({ cases, seed, targets, jobs, log: (s) => process.stderr.write(s + "\n") });
  process.stdout.write(formatReport(r));
  const json = opt("--json");
  if (json) fs.writeFileSync(json, JSON.stringify(r, null, 2) + "\n");
  for (const c of r.crashes) process.stdout.write(`crash: ${c.target} case ${c.n} (${c.kind}): ${c.message}\n  ${path.relative(ROOT, c.file)}\n`);
  return r.crashes.length ? 1 : 0;
}

if (process.argv.includes("--worker")) void workerMain();
else if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  cliMain(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { process.stderr.write(String(e?.stack ?? e) + "\n"); process.exitCode = 2; });
}
