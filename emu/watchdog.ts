// A sleeping watchdog for Unicorn runs: a worker thread that calls uc_emu_stop when a run outlives its deadline.
// uc_emu_start's own time-out starts a thread that wakes every 2 µs (Unicorn 2.0.1 uc.c TIMEOUT_STEP) for the whole
// run: measured here, 80-90 ms of a second core per 0.3-0.6 s Gen1 boot, which a batch on two cores pays in
// throughput. This one sleeps in Atomics.wait until the deadline or the next arm. A stop from it is what a time-out
// is: it may land inside a translated block, so the run must not be resumed (Cpu.timedOut()).
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** State word: (generation << 2) | phase. */
const IDLE = 0, ARMED = 1, FIRING = 2, FIRED = 3;
const QUIT = -1;

/**
 * The worker, as CommonJS source (the CLI runs from one bundle: no module file to point a worker at). It waits for an
 * armed generation, sleeps until its deadline, then claims it (compare-and-swap on the whole word, so a run that
 * ended and a new one armed meanwhile is never stopped) and stops the engine named in the shared slot.
 */
const SOURCE = `
const { workerData } = require("node:worker_threads");
const koffi = require(workerData.koffi);
const stop = koffi.load(workerData.lib).func("int uc_emu_stop(uintptr_t uc)");
const st = new Int32Array(workerData.state), slots = new BigInt64Array(workerData.slots);
for (;;) {
  const s = Atomics.load(st, 0);
  if (s === ${QUIT}) break;
  if ((s & 3) !== ${ARMED}) { Atomics.wait(st, 0, s); continue; }
  const left = Number(slots[0] - process.hrtime.bigint()) / 1e6;
  if (left > 0) { Atomics.wait(st, 0, s, left); continue; }
  if (Atomics.compareExchange(st, 0, s, (s & ~3) | ${FIRING}) !== s) continue;
  stop(slots[1]);
  Atomics.store(st, 0, (s & ~3) | ${FIRED});
  Atomics.notify(st, 0);
}
`;

export class Watchdog {
  private state = new Int32Array(new SharedArrayBuffer(4));
  /** [0] deadline (process.hrtime ns), [1] the engine (uc_engine address). */
  private slots = new BigInt64Array(new SharedArrayBuffer(16));
  private generation = 0;
  private worker: Worker;

  constructor(lib: string) {
    const koffi = createRequire(import.meta.url).resolve("koffi");
    this.worker = new Worker(SOURCE, { eval: true, workerData: { koffi, lib, state: this.state.buffer, slots: this.slots.buffer } });
    this.worker.unref();
    this.worker.on("error", () => { /* a dead watchdog never fires: runs then end only by their own stops */ });
  }

  /** Arm for the engine at `uc` (its address) with `ms` from now. */
  arm(uc: bigint, ms: number): void {
    this.generation = (this.generation + 1) & 0x1fffffff;
    this.slots[0] = process.hrtime.bigint() + BigInt(Math.max(0, Math.round(ms * 1e6)));
    this.slots[1] = uc;
    Atomics.store(this.state, 0, (this.generation << 2) | ARMED);
    Atomics.notify(this.state, 0);
  }

  /** Disarm after the run returned; true when the watchdog stopped it (or was stopping it as it returned). */
  disarm(): boolean {
    const armed = (this.generation << 2) | ARMED;
    if (Atomics.compareExchange(this.state, 0, armed, IDLE) === armed) return false;
    for (let s = Atomics.load(this.state, 0); (s & 3) === FIRING; s = Atomics.load(this.state, 0)) Atomics.wait(this.state, 0, s, 100);
    Atomics.store(this.state, 0, IDLE);
    return true;
  }

  close(): void {
    Atomics.store(this.state, 0, QUIT);
    Atomics.notify(this.state, 0);
    void this.worker.terminate();
  }
}

let shared: Watchdog | null | undefined;

/** The process's watchdog, started on first use; null where worker threads cannot start (then Unicorn's time-out). */
export function watchdog(lib: string): Watchdog | null {
  if (shared === undefined) {
    try { shared = new Watchdog(lib); } catch { shared = null; }
  }
  return shared;
}
