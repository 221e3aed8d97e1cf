// `bootgate check A B ...`: several images checked in parallel worker threads (node:worker_threads, one per core
// or --jobs N), results in the order given, and one combined exit code (see combinedExitCode).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import type { CheckOptions } from "./check.ts";
import type { Finding } from "./findings.ts";
import type { VerdictDoc } from "./verdict.ts";
import { VERSION } from "./version.ts";
import { formatCheck } from "./report-text.ts";
import { toJunit } from "./junit.ts";
import { emitAnnotations } from "./annotations.ts";
import { newWatchdogBlock, watchdogHost, type WatchdogBlock } from "./batch-watchdog.ts";

/** An image that could not be checked at all: what `check` alone reports as a one-line error and exit code 2. */
export interface BatchErrorEntry {
  path: string;
  error: { code: string; kind: string; message: string };
  exitCode: 2;
}

export type ImageResult = VerdictDoc | BatchErrorEntry;

/** `check A B ... --json FILE` (schema emu/batch.schema.json). */
export interface BatchDoc {
  schema: "bootgate.batch/1";
  tool: { name: "bootgate"; version: string };
  results: ImageResult[];
  exitCode: number;
}

/** Main thread -> worker: check this image. */
export interface ToWorker { index: number; file: string }
/** Worker -> main thread: ready for work, or one image's result. */
export type FromWorker = { ready: true } | { index: number; json: string } | { index: number; error: BatchErrorEntry };

/**
 * The batch's exit code, the worst of its images: 2 if any image could not be read, else 1 if any fails (a
 * generation fails or an image rule is broken), else 3 if any is inconclusive, else 0.
 */
export function combinedExitCode(results: ImageResult[]): number {
  const codes = new Set(results.map((r) => r.exitCode));
  for (const c of [2, 1, 3]) if (codes.has(c)) return c;
  return 0;
}

export function batchDoc(results: ImageResult[]): BatchDoc {
  return { schema: "bootgate.batch/1", tool: { name: "bootgate", version: VERSION }, results, exitCode: combinedExitCode(results) };
}

/**
 * A document parsed from a worker's JSON, with a generation's findings that repeat an image finding made the same
 * object again (as checkImage built them), so report-text shows each only once, as for a single image.
 */
function relink(doc: VerdictDoc): VerdictDoc {
  const byText = new Map<string, Finding>();
  for (const f of doc.imageFindings) byText.set(JSON.stringify(f), f);
  for (const g of doc.generations) g.findings = g.findings.map((f) => byText.get(JSON.stringify(f)) ?? f);
  return doc;
}

/**
 * Where the worker entry is: beside this module in the esbuild bundle (.mjs), or the TypeScript source under tsx.
 * `watchdog`: the block through which this thread keeps the worker's CPU time-outs (emu/batch-watchdog.ts).
 */
function spawnWorker(opts: CheckOptions, watchdog: WatchdogBlock): Worker {
  const here = import.meta.url;
  const workerData = { opts, watchdog };
  if (!here.endsWith(".ts")) return new Worker(new URL("./batch-worker.mjs", here), { workerData });
  // Running from the sources: the worker needs tsx's loader too (module hooks are per thread).
  const entry = new URL("./batch-worker.ts", here).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

export interface BatchRunOptions {
  /** Worker threads (default: one per core, never more than images). */
  jobs?: number;
  /** Called as each image finishes (in completion order). */
  onResult?: (index: number, result: ImageResult) => void;
}

export function defaultJobs(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

/** Check `files` in parallel; results in the order of `files`. */
export function checkBatch(files: string[], opts: CheckOptions, run: BatchRunOptions = {}): Promise<ImageResult[]> {
  const results: ImageResult[] = new Array(files.length);
  const jobs = Math.max(1, Math.min(run.jobs ?? defaultJobs(), files.length));
  let next = 0, done = 0;
  const workers = new Set<Worker>();
  // One watchdog block per worker (a restarted worker takes a fresh one), all watched by this thread.
  const blocks: WatchdogBlock[] = [];
  const host = watchdogHost(blocks);
  return new Promise<ImageResult[]>((resolve, reject) => {
    let failed = false;
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      for (const w of workers) void w.terminate();
      reject(e);
    };
    const finish = (i: number, r: ImageResult) => {
      results[i] = r;
      done++;
      run.onResult?.(i, r);
      if (done === files.length) resolve(results);
    };
    const start = (): void => {
      const block = newWatchdogBlock();
      blocks.push(block);
      const w = spawnWorker(opts, block);
      workers.add(w);
      let current = -1, started = false;
      const feed = () => {
        if (next < files.length) { current = next++; w.postMessage({ index: current, file: files[current] } satisfies ToWorker); }
        else { current = -1; void w.terminate(); }
      };
      /** The worker died (a bootgate bug or out of memory): its image gets an error entry, a new worker goes on. */
      const died = (why: string) => {
        workers.delete(w);
        if (!started) { fail(new Error(`a batch worker thread could not start: ${why}`)); return; }
        if (current < 0 || failed) return;
        const i = current;
        current = -1;
        finish(i, { path: files[i], error: { code: "INTERNAL_ERROR", kind: "internal", message: `internal error: worker thread ${why}` }, exitCode: 2 });
        if (next < files.length) start();
      };
      w.on("message", (m: FromWorker) => {
        if ("ready" in m) { started = true; feed(); return; }
        const i = m.index;
        current = -1;
        feed();
        try {
          finish(i, "json" in m ? relink(JSON.parse(m.json) as VerdictDoc) : m.error);
        } catch (e) { fail(e); }
      });
      w.on("error", (e) => died(`failed: ${e.message}`));
      w.on("exit", (code) => died(`exited with code ${code}`));
    };
    for (let k = 0; k < jobs; k++) start();
  }).finally(() => host.stop());
}

export interface BatchCliOptions {
  json?: string;
  junit?: string;
  quiet?: boolean;
  jobs?: number;
}

/** Write all of `data` (the CLI's synchronous stdout writer). */
type Out = (s: string) => void;

const oneLine = (r: BatchErrorEntry) => `${r.error.message} [${r.error.code}]`;

function verdictWord(r: ImageResult): string {
  if ("error" in r) return "unreadable";
  return ({ 0: "boots", 1: "fails", 3: "inconclusive" } as Record<number, string>)[r.exitCode] ?? `exit ${r.exitCode}`;
}

/**
 * `check A B ...` as the CLI runs it: text summaries in the order given (streamed as they are ready) unless
 * --quiet or --json -, progress lines on stderr when it is a terminal, --json as bootgate.batch/1, --junit with a
 * test suite per image, GitHub annotations under GitHub Actions. Returns the combined exit code.
 */
export async function runBatchCli(files: string[], opts: CheckOptions, o: BatchCliOptions, writeOut: Out,
  writeJson: (dest: string, doc: unknown) => void): Promise<number> {
  const text = !o.quiet && o.json !== "-";
  const progress = process.stderr.isTTY === true;
  const ready: (ImageResult | undefined)[] = new Array(files.length);
  let printed = 0, finished = 0;
  const onResult = (i: number, r: ImageResult) => {
    ready[i] = r;
    finished++;
    if ("error" in r) process.stderr.write(`bootgate: ${r.path}: ${oneLine(r)}\n`);
    if (progress) process.stderr.write(`[${finished}/${files.length}] ${path.basename(files[i])}: ${verdictWord(r)}\n`);
    for (; text && printed < files.length && ready[printed]; printed++) {
      const x = ready[printed]!;
      writeOut("error" in x ? `${path.basename(x.path)}: cannot be checked: ${oneLine(x)}\n` : formatCheck(x));
    }
  };
  const results = await checkBatch(files, opts, { jobs: o.jobs, onResult });
  const doc = batchDoc(results);
  if (o.json) writeJson(o.json, doc);
  if (o.junit) fs.writeFileSync(o.junit, toJunit(results));
  emitAnnotations(results, o.json === "-", writeOut);
  if (text) {
    const count = (w: string) => results.filter((r) => verdictWord(r) === w).length;
    writeOut(`${files.length} images: ${count("boots")} boot, ${count("fails")} fail, ${count("inconclusive")} inconclusive, `
      + `${count("unreadable")} unreadable; exit code ${doc.exitCode}\n`);
  }
  return doc.exitCode;
}
