// Shared test helpers: temp folders, running real tools, deterministic random disks, the CLI.
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource } from "../images/source.ts";

export const ROOT = path.resolve(import.meta.dirname, "..");

/** Temp folders made by this test file, removed after it (test/cleanup-setup.ts; BOOTGATE_KEEP_TMP=1 keeps them). */
const tmpdirs: string[] = [];
export function removeTmpdirs(): void {
  if (process.env.BOOTGATE_KEEP_TMP) return;
  for (const d of tmpdirs.splice(0)) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

export function tmpdir(prefix = "bootgate-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpdirs.push(d);
  return d;
}

/** Run a real tool; throws with its stderr on failure. */
export function sh(cmd: string, args: string[], opts: { input?: string | Buffer; cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: "utf8", input: opts.input, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
}

/** Deterministic pseudo-random bytes (xorshift32), so fixtures are byte-stable. */
export function prng(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, Math.min(i, n - 4));
  }
  return b;
}

export function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

export interface CliResult { status: number; stdout: Buffer; stderr: string }

const execFileP = promisify(execFile);

/** Run a real tool without blocking the test worker's event loop (long conversions). */
export async function shAsync(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const r = await execFileP(cmd, args, { encoding: "utf8", cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 });
  return r.stdout;
}

/** Run the bootgate CLI as a user would (node emu/bin.mjs ...), asynchronously. */
export function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "emu/bin.mjs"), ...args], {
      cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [], err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

// ---- registry hives for the Windows OS-stage tests (issue 4) ----
import { baseBlockChecksum } from "../images/regf.ts";

/**
 * An empty regf hive (base block + one hbin with a root nk and the sk hivex needs), the same bytes
 * test/regf.test.ts builds: hivex can edit hives but not create them. Keys and values are then added
 * by the real `hivexregedit --merge` (see `hiveFromReg`).
 */
export function emptyHive(): Buffer {
  const b = Buffer.alloc(8192), NONE = 0xffffffff, h = 4096;
  b.write("regf", 0, "latin1");
  b.writeUInt32LE(1, 4); b.writeUInt32LE(1, 8); b.writeBigUInt64LE(0x01d9000000000000n, 12);
  b.writeUInt32LE(1, 20); b.writeUInt32LE(5, 24); b.writeUInt32LE(0, 28); b.writeUInt32LE(1, 32);
  b.writeUInt32LE(0x20, 36); b.writeUInt32LE(4096, 40); b.writeUInt32LE(1, 44);
  b.write("hbin", h, "latin1"); b.writeUInt32LE(0, h + 4); b.writeUInt32LE(4096, h + 8);
  const nkSize = (4 + 76 + 4 + 7) & ~7, nk = h + 0x20 + 4;
  b.writeInt32LE(-nkSize, nk - 4);
  b.write("nk", nk, "latin1"); b.writeUInt16LE(0x2c, nk + 2);
  for (const o of [16, 28, 32, 40, 48]) b.writeUInt32LE(NONE, nk + o);
  const skOff = 0x20 + nkSize;
  b.writeUInt32LE(skOff, nk + 44); b.writeUInt16LE(4, nk + 72); b.write("ROOT", nk + 76, "latin1");
  const sd = Buffer.from([1, 0, 0x04, 0x80, ...Buffer.alloc(16)]);
  const skSize = (4 + 20 + sd.length + 7) & ~7, sk = h + skOff;
  b.writeInt32LE(-skSize, sk); b.write("sk", sk + 4, "latin1");
  b.writeUInt32LE(skOff, sk + 8); b.writeUInt32LE(skOff, sk + 12); b.writeUInt32LE(1, sk + 16); b.writeUInt32LE(sd.length, sk + 20);
  sd.copy(b, sk + 24);
  b.writeInt32LE(4096 - (skOff + skSize), h + skOff + skSize);
  b.writeUInt32LE(baseBlockChecksum(b), 508);
  return b;
}

/** Bytes as a .reg hex list ("de,ad,be,ef"). */
export const regHex = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, "0")).join(",");

/**
 * A hive at `file` made by `hivexregedit --merge` from .reg lines (paths relative to the hive root,
 * "[\\Key]"); hivexregedit needs every parent key listed first, so missing ones are inserted.
 */
export function hiveFromReg(file: string, lines: string[]): Buffer {
  const seen = new Set<string>(), out: string[] = [];
  for (const l of lines) {
    const m = /^\[(\\.*)\]$/.exec(l);
    if (m) {
      const parts = m[1].split("\\").filter(Boolean);
      for (let i = 1; i < parts.length; i++) {
        const k = "\\" + parts.slice(0, i).join("\\");
        if (!seen.has(k.toLowerCase())) { seen.add(k.toLowerCase()); out.push(`[${k}]`, ""); }
      }
      seen.add(m[1].toLowerCase());
    }
    out.push(l);
  }
  fs.writeFileSync(file, emptyHive());
  fs.writeFileSync(file + ".reg", ["Windows Registry Editor Version 5.00", "", ...out, ""].join("\r\n"));
  execFileSync("hivexregedit", ["--merge", file, file + ".reg"], { stdio: ["ignore", "pipe", "pipe"] });
  return fs.readFileSync(file);
}

/** A raw image file as a BlockDevice with a chosen logical sector size (the raw driver assumes 512). */
export function rawDisk(file: string, sectorSize = 512): BlockDevice {
  const src = new FileSource(file);
  return new Disk({
    info: { format: "raw", path: file, fileSize: src.size, virtualSize: src.size, sectorSize, findings: [] },
    readInto(dst, offset) { const b = src.readUpTo(offset, dst.length); b.copy(dst, 0); dst.fill(0, b.length); },
    close: () => src.close(),
  });
}
