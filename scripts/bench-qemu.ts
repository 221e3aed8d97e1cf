// Reference boot for `npm run bench`: the same disk booted for real in qemu-system-x86_64 (TCG, SeaBIOS, disk on IDE,
// snapshot=on so the input is never written), timed from process start to the decision point bootgate stops at.
// Kernel hand-off: a GDB remote-protocol breakpoint (GDB manual, "Remote Protocol", packets ?, Z0, c, p, m) at the
// kernel's entry points, confirmed by comparing guest memory there with the bzImage's own bytes (Linux boot protocol,
// Documentation/arch/x86/boot.rst: setup at seg:0200h, 32-bit entry at code32_start). Failures: the firmware/boot
// loader text, which SeaBIOS copies to the serial port (its "sercon" console, active with -vga none) together with
// every INT 10h write, so GRUB's "grub rescue>" and mbr.bin's "Missing operating system." show up there.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

export const QEMU = "qemu-system-x86_64";
export const QEMU_INSTALL_HINT = "apt-get install -y --no-install-recommends qemu-system-x86 seabios";

/** The QEMU version line, or undefined when qemu-system-x86_64 is not installed. */
export function qemuVersion(): string | undefined {
  const r = spawnSync(QEMU, ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.split("\n")[0].trim();
}

/** What ends a QEMU run: the kernel entered (with its bzImage for confirmation), or a text on the serial console. */
export type QemuSignal =
  | { kind: "handoff"; kernel?: Uint8Array; entries?: number[] }
  | { kind: "text"; pattern: RegExp };

export interface QemuRun {
  /** Wall time from spawn to the signal (or to the time-out), ms. */
  ms: number;
  /** True when the signal was seen; false: the run hit the time-out (ms is then a lower bound). */
  reached: boolean;
  /** What was seen: "kernel entry at 1000000h (linux32)", or the matching serial text. */
  what: string;
  serial: string;
}

/** Fixed machine: Hyper-V Gen1's closest QEMU relative, no NIC (its option ROM adds a boot prompt), no VGA (sercon). */
export function qemuArgs(image: string): string[] {
  return ["-machine", "pc", "-m", "1024", "-nographic", "-vga", "none", "-nic", "none", "-no-reboot", "-accel", "tcg",
    "-drive", `file=${image},format=raw,if=ide,snapshot=on`];
}

/** QEMU processes still running: killed if the bench itself is interrupted. */
const live = new Set<ReturnType<typeof spawn>>();
let cleanupArmed = false;
function armCleanup(): void {
  if (cleanupArmed) return;
  cleanupArmed = true;
  process.on("exit", () => { for (const c of live) c.kill("SIGKILL"); });
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => { for (const c of live) c.kill("SIGKILL"); process.exit(130); });
}

/** Without bootgate's own entry address (QemuSignal.entries): the usual 32-bit entry points: code32_start 100000h and the pref_address 1000000h of relocatable kernels. */
const ENTRY_POINTS = [0x100000, 0x1000000];
/** Debug stops (boot-loader hits, watchpoint hits) before giving up. */
const MAX_STOPS = 10_000;

// ---- a minimal GDB remote-protocol client (no-ack mode is not needed: QEMU acks each packet with '+') ----------------

class Gdb {
  private buf = "";
  private waiters: ((p: string) => void)[] = [];
  private packets: string[] = [];
  constructor(private sock: net.Socket) {
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => { this.buf += d; this.drain(); });
  }
  private drain(): void {
    for (;;) {
      this.buf = this.buf.replace(/^[+-]+/, "");
      const m = /^\$([^#]*)#([0-9a-fA-F]{2})/.exec(this.buf);
      if (!m) { if (this.buf && this.buf[0] !== "$") this.buf = this.buf.slice(1); else return; continue; }
      this.buf = this.buf.slice(m[0].length);
      this.sock.write("+");
      const w = this.waiters.shift();
      if (w) w(m[1]); else this.packets.push(m[1]);
    }
  }
  private next(): Promise<string> {
    const p = this.packets.shift();
    return p !== undefined ? Promise.resolve(p) : new Promise((res) => this.waiters.push(res));
  }
  async cmd(body: string): Promise<string> {
    let sum = 0;
    for (const c of body) sum = (sum + c.charCodeAt(0)) & 0xff;
    this.sock.write(`$${body}#${sum.toString(16).padStart(2, "0")}`);
    return this.next();
  }
  /**
   * `g`: EIP and CS. QEMU's x86-64 layout (gdb-xml/i386-64bit.xml): 16 general registers of 8 bytes, rip (8 bytes at
   * byte 128), eflags (4 bytes at 136), cs (4 bytes at 140). QEMU answers `p n` with an empty (unsupported) reply.
   */
  async eipCs(): Promise<{ eip: number; cs: number }> {
    const g = Buffer.from(await this.cmd("g"), "hex");
    if (g.length < 144) throw new Error(`short 'g' reply (${g.length} bytes)`);
    return { eip: g.readUInt32LE(128), cs: g.readUInt32LE(140) & 0xffff };
  }
  async mem(addr: number, len: number): Promise<Buffer> {
    return Buffer.from(await this.cmd(`m${addr.toString(16)},${len.toString(16)}`), "hex");
  }
}

/** Kernel entry bytes: the setup code's entry at 0200h, and the protected-mode part's first 16 bytes (code32_start). */
function kernelHeads(kernel: Uint8Array | undefined): { setup?: Buffer; pm?: Buffer } {
  if (!kernel || kernel.length < 0x400) return {};
  const k = Buffer.from(kernel);
  if (k.readUInt32LE(0x202) !== 0x53726448) return {};              // "HdrS" (boot protocol header signature)
  const setupSects = k[0x1f1] || 4;
  const pmOff = (setupSects + 1) * 512;
  return { setup: k.subarray(0x200, 0x210), pm: pmOff + 16 <= k.length ? k.subarray(pmOff, pmOff + 16) : undefined };
}

function waitForFile(p: string, ms: number): Promise<void> {
  const t0 = performance.now();
  return new Promise((res, rej) => {
    const tick = () => {
      if (fs.existsSync(p)) res();
      else if (performance.now() - t0 > ms) rej(new Error(`QEMU did not create its GDB socket ${p} within ${ms} ms`));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

/**
 * Boot `image` in QEMU until `signal` or `timeoutMs`. The image is opened with snapshot=on (writes go to a temporary
 * overlay). Rejects when QEMU cannot start.
 */
export async function bootQemu(image: string, signal: QemuSignal, timeoutMs: number): Promise<QemuRun> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-qemu-"));
  const sockPath = path.join(tmp, "gdb.sock");
  const args = qemuArgs(image);
  if (signal.kind === "handoff") args.push("-S", "-chardev", `socket,id=gdb0,path=${sockPath},server=on,wait=off`, "-gdb", "chardev:gdb0");
  const t0 = performance.now();
  armCleanup();
  const child = spawn(QEMU, args, { stdio: ["pipe", "pipe", "pipe"] });
  live.add(child);
  let serial = "";
  let stderr = "";
  let done = false;
  let finish!: (r: QemuRun) => void;
  const result = new Promise<QemuRun>((res) => { finish = (r) => { if (!done) { done = true; res(r); } }; });
  const timer = setTimeout(() => finish({ ms: performance.now() - t0, reached: false, what: `no signal within ${timeoutMs} ms`, serial }), timeoutMs);
  child.stdout.setEncoding("latin1");
  child.stdout.on("data", (d: string) => {
    serial += d;
    if (serial.length > 1 << 20) serial = serial.slice(-(1 << 19));
    if (signal.kind === "text") {
      const m = signal.pattern.exec(serial);
      if (m) finish({ ms: performance.now() - t0, reached: true, what: JSON.stringify(m[0]), serial });
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => { stderr += d; });
  const exited = new Promise<void>((res) => child.on("close", () => { live.delete(child); res(); }));
  child.on("close", (code) => finish({ ms: performance.now() - t0, reached: false, what: `QEMU exited (${code}) before the signal: ${stderr.trim().slice(0, 300)}`, serial }));
  child.on("error", (e) => finish({ ms: 0, reached: false, what: `cannot start ${QEMU}: ${e.message}`, serial }));

  let sock: net.Socket | undefined;
  if (signal.kind === "handoff") {
    const heads = kernelHeads(signal.kernel);
    const watch = async () => {
      await waitForFile(sockPath, 10_000);
      // The socket file appears just before QEMU listens on it: retry a refused connect briefly.
      for (let attempt = 0; ; attempt++) {
        const s = net.connect(sockPath);
        const ok = await new Promise<boolean>((res, rej) => {
          s.once("connect", () => res(true));
          s.once("error", (e) => (attempt < 200 ? res(false) : rej(e)));
        });
        if (ok) { sock = s; break; }
        s.destroy();
        await new Promise((r) => setTimeout(r, 5));
      }
      const gdb = new Gdb(sock!);
      await gdb.cmd("?");
      const points = signal.entries?.length ? [...new Set(signal.entries)] : ENTRY_POINTS;
      for (const a of points) {
        const r = await gdb.cmd(`Z0,${a.toString(16)},1`);
        if (r !== "OK") throw new Error(`QEMU refused a breakpoint at ${a.toString(16)}h: ${r}`);
      }
      // Boot loaders run their own code at these addresses before the kernel arrives (SYSLINUX's core and GRUB's heap
      // sit at 100000h). A hit whose bytes are not the kernel's swaps that breakpoint for a write watchpoint (Z2) and the
      // breakpoint comes back once the kernel's first bytes have been written there.
      const pmHead4 = heads.pm?.subarray(0, 4);
      for (let stops = 0; stops < MAX_STOPS && !done; stops++) {
        const stopReply = await gdb.cmd("c");
        if (done) return;
        if (process.env.BENCH_DEBUG && stops % 100 === 0) console.error(`debug stop ${stops}: ${stopReply}`);
        if (!/^[ST]05/.test(stopReply)) continue;
        const ms = performance.now() - t0;
        const watch = /watch:([0-9a-f]+)/i.exec(stopReply);
        if (watch) {
          const a = parseInt(watch[1], 16);
          const now = await gdb.mem(a, 4);
          if (pmHead4 && now.equals(pmHead4)) { await gdb.cmd(`z2,${a.toString(16)},4`); await gdb.cmd(`Z0,${a.toString(16)},1`); }
          continue;
        }
        const { eip, cs } = await gdb.eipCs();
        const linear = eip > 0xffff ? eip : cs * 16 + eip;   // flat protected mode, or real-mode seg:off
        const bytes = await gdb.mem(linear, 16);
        const isPm = heads.pm && bytes.equals(heads.pm);
        const isSetup = heads.setup && bytes.equals(heads.setup);
        if (process.env.BENCH_DEBUG) console.error(`stop ${cs.toString(16)}:${eip.toString(16)} = ${linear.toString(16)}h after ${ms.toFixed(0)} ms: ${bytes.toString("hex")}`);
        if (isPm || isSetup || (!heads.pm && !heads.setup)) {
          finish({ ms, reached: true, serial,
            what: `kernel entry at ${linear.toString(16)}h (${isPm ? "32-bit entry" : isSetup ? "real-mode setup" : "not confirmed: no bzImage given"})` });
          return;
        }
        if (points.includes(linear)) {
          await gdb.cmd(`z0,${linear.toString(16)},1`);
          const r = await gdb.cmd(`Z2,${linear.toString(16)},4`);
          if (r !== "OK") throw new Error(`QEMU refused a write watchpoint at ${linear.toString(16)}h: ${r}`);
        }
      }
      if (!done) throw new Error(`no confirmed kernel entry after ${MAX_STOPS} debug stops`);
    };
    watch().catch((e: Error) => finish({ ms: performance.now() - t0, reached: false, what: `GDB client: ${e.message}`, serial }));
  }
  const r = await result;
  clearTimeout(timer);
  sock?.destroy();
  child.kill("SIGKILL");
  await exited;
  fs.rmSync(tmp, { recursive: true, force: true });
  return r;
}

// Stand-alone: npx tsx scripts/bench-qemu.ts IMAGE [kernel|REGEX] — one timed boot.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [image, what = "kernel"] = process.argv.slice(2);
  if (!image) { console.error("usage: bench-qemu.ts IMAGE [kernel|REGEX]"); process.exit(2); }
  if (!qemuVersion()) { console.error(`${QEMU} is missing: ${QEMU_INSTALL_HINT}`); process.exit(2); }
  const kernel = process.env.BENCH_KERNEL ? fs.readFileSync(process.env.BENCH_KERNEL) : undefined;
  const entries = process.env.BENCH_ENTRY ? [parseInt(process.env.BENCH_ENTRY, 16)] : undefined;
  const sig: QemuSignal = what === "kernel" ? { kind: "handoff", kernel, entries } : { kind: "text", pattern: new RegExp(what) };
  const r = await bootQemu(path.resolve(image), sig, 30_000);
  console.log(`${path.basename(image)}: ${r.reached ? "" : "NOT reached: "}${r.what} after ${(r.ms / 1000).toFixed(2)} s`);
}
