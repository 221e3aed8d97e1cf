// Worker thread of `check A B ...` (emu/batch.ts): checks the images the main thread sends, one at a time, and
// posts each verdict document (as its JSON text, so batch JSON equals single-image JSON) or an error entry back.
import { parentPort, workerData } from "node:worker_threads";
import { ImageError } from "../images/errors.ts";
import { checkImage, type CheckOptions } from "./check.ts";
import { loadDisassembler } from "./disasm.ts";
import { setRunWatchdog } from "./cpu.ts";
import { watchdogClient, type WatchdogBlock } from "./batch-watchdog.ts";
import type { BatchErrorEntry, ToWorker, FromWorker } from "./batch.ts";

const port = parentPort;
if (!port) throw new Error("emu/batch-worker.ts runs only as a worker thread of emu/batch.ts");
const { opts, watchdog } = workerData as { opts: CheckOptions; watchdog?: WatchdogBlock };
// CPU time-outs kept by the main thread (emu/batch-watchdog.ts) rather than by a polling thread per run.
if (watchdog) setRunWatchdog(watchdogClient(watchdog));
await loadDisassembler();                            // both generations disassemble their stop windows

function errorEntry(file: string, e: unknown): BatchErrorEntry {
  if (e instanceof ImageError) return { path: file, error: { code: e.code, kind: e.kind, message: e.message }, exitCode: 2 };
  const msg = `internal error: ${(e as Error)?.message ?? String(e)}`;
  return { path: file, error: { code: "INTERNAL_ERROR", kind: "internal", message: msg }, exitCode: 2 };
}

port.on("message", (m: ToWorker) => {
  let reply: FromWorker;
  try {
    reply = { index: m.index, json: JSON.stringify(checkImage(m.file, opts)) };
  } catch (e) {
    reply = { index: m.index, error: errorEntry(m.file, e) };
  }
  port.postMessage(reply);
});
port.postMessage({ ready: true } satisfies FromWorker);
