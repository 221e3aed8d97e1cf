// Time-outs of the batch workers' CPU runs, kept by the main thread (idle during a batch) instead of by Unicorn:
// uc_emu_start's own time-out starts a thread that wakes every 2 µs while the run lasts (Unicorn 2.0.1 uc.c
// TIMEOUT_STEP), which on two cores with two workers costs each worker much of its core. Each worker shares one small
// state block with the main thread; a timer there stops a run that outlived its deadline with uc_emu_stop (as
// Unicorn's thread does). A stop from here is a time-out: it may land inside a translated block (Cpu.timedOut()).
// No new thread loads the FFI library: koffi aborts the process when a thread that is loading it is torn down.
import { unicorn } from "./unicorn.ts";
import type { RunWatchdog } from "./cpu.ts";

/** State word: (generation << 2) | phase. */
const IDLE = 0, ARMED = 1, FIRING = 2, FIRED = 3;
/** How often the main thread looks: deadlines are seconds, a late stop by this much is no matter. */
const SCAN_MS = 50;

/** One worker's block: Int32 [state], BigInt64 [deadline (process.hrtime ns), engine address]. */
export interface WatchdogBlock { state: SharedArrayBuffer; slots: SharedArrayBuffer }

export function newWatchdogBlock(): WatchdogBlock {
  return { state: new SharedArrayBuffer(4), slots: new SharedArrayBuffer(16) };
}

/** The worker side: arm before uc_emu_start, disarm after (Cpu.run with setRunWatchdog). */
export function watchdogClient(b: WatchdogBlock): RunWatchdog {
  const st = new Int32Array(b.state), slots = new BigInt64Array(b.slots);
  let generation = 0;
  return {
    arm(uc: bigint, ms: number): void {
      generation = (generation + 1) & 0x1fffffff;
      slots[0] = process.hrtime.bigint() + BigInt(Math.max(0, Math.round(ms * 1e6)));
      slots[1] = uc;
      Atomics.store(st, 0, (generation << 2) | ARMED);
    },
    disarm(): boolean {
      const armed = (generation << 2) | ARMED;
      if (Atomics.compareExchange(st, 0, armed, IDLE) === armed) return false;
      // Being stopped: wait until the main thread's uc_emu_stop returned, so it never outlives this run.
      for (let s = Atomics.load(st, 0); (s & 3) === FIRING; s = Atomics.load(st, 0)) Atomics.wait(st, 0, s, 100);
      Atomics.store(st, 0, IDLE);
      return true;
    },
  };
}

/** The main thread's side: a timer over every worker's block (`blocks` may grow as workers start); stop() ends it. */
export function watchdogHost(blocks: readonly WatchdogBlock[]): { stop(): void } {
  const views = new Map<WatchdogBlock, { st: Int32Array; slots: BigInt64Array }>();
  const a = unicorn();
  const timer = setInterval(() => {
    const now = process.hrtime.bigint();
    for (const b of blocks) {
      let v = views.get(b);
      if (!v) views.set(b, v = { st: new Int32Array(b.state), slots: new BigInt64Array(b.slots) });
      const { st, slots } = v;
      const s = Atomics.load(st, 0);
      if ((s & 3) !== ARMED || now < slots[0]) continue;
      // Claim this generation only: a run that ended and a new one armed meanwhile changes the word.
      if (Atomics.compareExchange(st, 0, s, (s & ~3) | FIRING) !== s) continue;
      a.uc_emu_stop_at(slots[1]);
      Atomics.store(st, 0, (s & ~3) | FIRED);
      Atomics.notify(st, 0);
    }
  }, SCAN_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
