// Shared test helpers: temp folders, running real tools, deterministic random disks, the CLI.
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";

export const ROOT = path.resolve(import.meta.dirname, "..");

export function tmpdir(prefix = "bootgate-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
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
