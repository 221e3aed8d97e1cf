// `check --trace FILE`: every boot event as NDJSON (https://github.com/ndjson/ndjson-spec), streamed to the file
// while the emulation runs, with disk reads attributed to partitions and files (emu/disk-attribution.ts).
//
// Format bootgate.trace/1 — one JSON object per line, UTF-8, "\n" separated, in the order events happened:
//
//   { "t": 1234, "gen": 1, "kind": "disk", "what": "read drive 80h LBA 2048 +64", "data": { ... } }
//
//   t     virtual time in microseconds since the generation's power-on (integer; the emulated clock, not host
//         time, so traces of the same image are identical from run to run)
//   gen   the Hyper-V generation the event belongs to (1 or 2); absent on the header line
//   kind  one of
//         stage  boot-chain progress: jump to the boot sector, chainloaded boot records, kernel recognised,
//                hand-off; and a last "stopped: <reason>" line per generation (data: verdict, reached, detail)
//         int    a BIOS service call (data: at = CS:IP of the INT, ax bx cx dx es ds si di as 4 hex digits),
//                or an interrupt delivered to a guest handler. INT 10h calls after the 64th BIOS call are not
//                recorded (teletype output floods the trace; the screen shows the text)
//         efi    a UEFI boot or runtime service call with its arguments (Generation 2)
//         disk   a disk transfer: data.lba, data.count (512-byte sectors), data.write (true for writes, which
//                stay in a copy-on-write overlay), data.partition ("p1".. or null), data.region (outside any
//                partition: "MBR ...", "GPT header", "gap before the first partition ..."), data.files (up to 8
//                of { file: "p1:/boot/grub/grub.cfg", lba, count }; "moreFiles" counts the rest). Files come from
//                a bounded walk of the readable filesystems done before the run (data of the header line says
//                how many files were indexed and whether the walk was complete); sectors not in any indexed
//                file are filesystem metadata, free space or files beyond the walk
//         mode   CPU mode switches (real <-> protected; the first 4 of a run)
//         port   the first access to each I/O port the machine does not model (data.port, data.value)
//         note   everything else (A20 changes, unknown BIOS services, read-log truncation); the first line is a
//                note "bootgate trace" whose data holds schema, tool version, image, the size cap and fileIndex
//                ({ filesIndexed, runs, complete, notes } or { error } when the disk could not be indexed)
//   what  a human-readable one-line description
//   data  kind-specific fields as above (optional)
//
// The file is capped (default TRACE_MAX_BYTES). Events past the cap are counted, not written, and the last line
// is then { "kind": "note", "what": "truncated", "data": { "maxBytes", "droppedEvents" } }. The sum of data.count
// over disk lines without data.write equals the run's stats.sectorsRead (and its readLog total) when the trace is
// not truncated.
import * as fs from "node:fs";
import type { TraceEvent, TraceSink } from "./trace.ts";
import type { GenerationResult } from "./verdict.ts";
import { VERSION } from "./version.ts";
import { attribute, indexImage, type DiskIndex } from "./disk-attribution.ts";
import { ImageError } from "../images/errors.ts";

/** The kinds a trace line can have. */
export const TRACE_LINE_KINDS = ["stage", "int", "efi", "disk", "mode", "port", "note"] as const;
export type TraceLineKind = (typeof TRACE_LINE_KINDS)[number];

export interface TraceLine { t: number; gen?: 1 | 2; kind: TraceLineKind; what: string; data?: Record<string, unknown> }

/** Default size cap of a trace file. */
export const TRACE_MAX_BYTES = 256 * 2 ** 20;
/** Bytes kept free under the cap for the final "truncated" line. */
const RESERVE = 512;
/** Buffered output is written when it reaches this size or is this old. */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 250;
/** Files named per disk line. */
const MAX_FILES_PER_LINE = 8;

export interface NdjsonTraceOptions {
  maxBytes?: number;
  /** Partitions and file runs of the disk (disk-attribution.ts indexDisk), for data.partition/region/files. */
  index?: DiskIndex;
  /** The image path, for the header line. */
  image?: string;
  /** Why there is no index (the header line says so). */
  indexError?: string;
}

export class NdjsonTrace {
  readonly maxBytes: number;
  private fd: number;
  private buf: string[] = [];
  private bufBytes = 0;
  private lastFlush = Date.now();
  private written = 0;
  private lastT = 0;
  lines = 0;
  dropped = 0;
  /** The first write error; later events are dropped. */
  error?: Error;

  /** The disk index the disk lines are attributed with (reused by the HTML report). */
  get index(): DiskIndex | undefined { return this.opts.index; }

  /** Opens (truncates) `file`; throws the fs error when it cannot be created. */
  constructor(file: string, private opts: NdjsonTraceOptions = {}) {
    this.maxBytes = Math.max(4096, Math.floor(opts.maxBytes ?? TRACE_MAX_BYTES));
    this.fd = fs.openSync(file, "w");
    const idx = opts.index;
    this.line({ t: 0, kind: "note", what: "bootgate trace", data: { schema: "bootgate.trace/1", tool: `bootgate ${VERSION}`,
      ...(opts.image !== undefined ? { image: opts.image } : {}), maxBytes: this.maxBytes,
      fileIndex: idx ? { filesIndexed: idx.filesIndexed, runs: idx.files.length, complete: idx.complete, notes: idx.notes.slice(0, 8) }
        : { error: opts.indexError ?? "not indexed" } } });
  }

  /** The sink a generation's run records into (Gen1Options.traceSink). */
  sink(gen: 1 | 2): TraceSink {
    return (ev: TraceEvent) => this.event(gen, ev);
  }

  event(gen: 1 | 2, ev: TraceEvent): void {
    const kind: TraceLineKind = ev.kind === "block" ? "note" : ev.kind;
    let data = ev.data;
    if (ev.kind === "disk" && this.opts.index && typeof data?.lba === "number" && typeof data.count === "number") {
      data = { ...data, ...this.attribution(data.lba, data.count) };
    }
    this.line({ t: ev.us, gen, kind, what: ev.what, ...(data ? { data } : {}) });
  }

  /** The last line of a generation: why it stopped and its verdict. */
  endGeneration(g: GenerationResult): void {
    const t = typeof g.stats.virtualMs === "number" ? Math.max(this.lastT, g.stats.virtualMs * 1000) : this.lastT;
    this.line({ t, gen: g.generation, kind: "stage", what: `stopped: ${g.stop?.reason ?? "not emulated"}`,
      data: { verdict: g.verdict, reached: g.reached, ...(g.stop ? { detail: g.stop.detail } : {}),
        sectorsRead: g.stats.sectorsRead ?? 0, diskReads: g.stats.diskReads ?? 0 } });
  }

  /** Flush, add the "truncated" line if events were dropped, close the file. Returns the first write error. */
  close(): Error | undefined {
    if (this.dropped) {
      this.write(JSON.stringify({ t: this.lastT, kind: "note", what: "truncated", data: { maxBytes: this.maxBytes, droppedEvents: this.dropped } }) + "\n", true);
    }
    this.flush();
    try { fs.closeSync(this.fd); } catch (e) { this.error ??= e as Error; }
    return this.error;
  }

  private attribution(lba: number, count: number): Record<string, unknown> {
    const idx = this.opts.index!;
    const pieces = attribute(idx, lba, count);
    const first = pieces[0];
    const files = pieces.filter((p) => p.file);
    const inOne = pieces.every((p) => p.partition === first?.partition && p.region === first?.region);
    return {
      partition: first?.partition ?? null,
      ...(first?.region ? { region: first.region } : {}),
      ...(!inOne ? { spans: [...new Set(pieces.map((p) => p.partition ?? p.region))].slice(0, 8) } : {}),
      ...(files.length ? { files: files.slice(0, MAX_FILES_PER_LINE).map((p) => ({ file: p.file, lba: p.lba, count: p.count })) } : {}),
      ...(files.length > MAX_FILES_PER_LINE ? { moreFiles: files.length - MAX_FILES_PER_LINE } : {}),
    };
  }

  private line(l: TraceLine): void {
    if (this.error) { this.dropped++; return; }
    this.lastT = Math.max(this.lastT, l.t);
    let text: string;
    try {
      text = JSON.stringify(l) + "\n";
    } catch {
      text = JSON.stringify({ t: l.t, gen: l.gen, kind: l.kind, what: l.what, data: { unserialisable: true } }) + "\n";
    }
    this.write(text, false);
  }

  private write(text: string, final: boolean): void {
    const n = Buffer.byteLength(text);
    if (!final && this.written + this.bufBytes + n > this.maxBytes - RESERVE) { this.dropped++; return; }
    this.buf.push(text);
    this.bufBytes += n;
    if (!final) this.lines++;
    if (this.bufBytes >= FLUSH_BYTES || Date.now() - this.lastFlush >= FLUSH_MS) this.flush();
  }

  private flush(): void {
    this.lastFlush = Date.now();
    if (!this.buf.length || this.error) return;
    const data = Buffer.from(this.buf.join(""), "utf8");
    this.buf = [];
    this.bufBytes = 0;
    try {
      let off = 0;
      while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off);
      this.written += data.length;
    } catch (e) {
      this.error = e as Error;
    }
  }
}

/** Create the trace file for `check --trace FILE` of `image`, with the image's partitions and files indexed first. */
export function openTrace(file: string, image: string, open: { format?: string; allowDirs?: string[] }, maxBytes?: number): NdjsonTrace {
  const index = indexImage(image, open);
  try {
    return new NdjsonTrace(file, { image, maxBytes, ...("error" in index ? { indexError: index.error } : { index }) });
  } catch (e) {
    throw new ImageError("OUTPUT_WRITE", "io", `cannot write the trace ${file}: ${(e as Error).message}`);
  }
}
