// Trace recorder: bounded ring buffers of boot events (stage changes, BIOS calls with registers, disk reads, mode
// switches, port notes, basic blocks) so a result can show what happened just before it stopped.

export type TraceKind = "stage" | "int" | "efi" | "disk" | "mode" | "port" | "note" | "block";

/** Receives every event as it is recorded (check --trace streams them as NDJSON; see trace-ndjson.ts). */
export type TraceSink = (ev: TraceEvent) => void;

export interface TraceEvent {
  kind: TraceKind;
  /** Virtual time in microseconds at the event. */
  us: number;
  what: string;
  data?: Record<string, unknown>;
}

class Ring<T> {
  private buf: T[] = [];
  private start = 0;
  constructor(private cap: number) {}
  push(x: T): void {
    if (this.buf.length < this.cap) { this.buf.push(x); return; }
    this.buf[this.start] = x;
    this.start = (this.start + 1) % this.cap;
  }
  toArray(): T[] {
    return [...this.buf.slice(this.start), ...this.buf.slice(0, this.start)];
  }
}

export class Trace {
  private events: Ring<TraceEvent>;
  private blocks: Ring<{ address: number; size: number }>;  // filled only when a block hook is installed
  /** Stage events are few and all kept (bounded anyway). */
  private stages: TraceEvent[] = [];
  /** Optional: every event, not only the ring's last ones. */
  sink?: TraceSink;
  constructor(private clockUs: () => number, eventCap = 256, blockCap = 64) {
    this.events = new Ring(eventCap);
    this.blocks = new Ring(blockCap);
  }

  add(kind: TraceKind, what: string, data?: Record<string, unknown>): void {
    const ev: TraceEvent = { kind, us: Math.floor(this.clockUs()), what, ...(data ? { data } : {}) };
    if (kind === "stage" && this.stages.length < 64) this.stages.push(ev);
    this.events.push(ev);
    this.sink?.(ev);
  }

  /** Keep the last `n` basic blocks instead of the default ring size. */
  keepBlocks(n: number): void { this.blocks = new Ring(n); }

  block(address: number, size: number): void {
    this.blocks.push({ address, size });
  }

  lastEvents(): TraceEvent[] { return this.events.toArray(); }
  lastBlocks(): { address: number; size: number }[] { return this.blocks.toArray(); }
  stageEvents(): TraceEvent[] { return [...this.stages]; }
}
