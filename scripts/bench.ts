// npm run bench: open+inspect time for small and huge sparse images (size must not change the
// time), and the CLI's wall time including start-up. Prints a Markdown table.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const DIR = path.join(ROOT, ".cache/bench");
fs.mkdirSync(DIR, { recursive: true });
const REPS = Number(process.env.BENCH_REPS ?? 20);

function qemu(args: string[]): void { execFileSync("qemu-img", args, { stdio: "ignore" }); }

function make(name: string, size: string, fmt: string, opts: string[] = []): string {
  const out = path.join(DIR, name);
  if (fs.existsSync(out)) return out;
  const raw = path.join(DIR, `${name}.raw`);
  qemu(["create", "-q", "-f", "raw", raw, size]);
  execFileSync("sfdisk", ["-q", raw], { input: "label: gpt\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n" });
  if (fmt === "raw") fs.renameSync(raw, out);
  else { qemu(["convert", "-q", "-f", "raw", "-O", fmt, ...opts, raw, out]); fs.rmSync(raw); }
  return out;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

function timeOpen(file: string): number {
  const ts: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    const dev = openImage(file);
    readLayout(dev);
    dev.close();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function timeCli(file: string): number {
  const ts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [path.join(ROOT, "emu/bin.mjs"), "inspect", file, "--json"], { stdio: "ignore" });
    if (r.status !== 0) throw new Error(`inspect ${file} exited ${r.status}`);
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

const cases: [string, string][] = [
  ["VHDX dynamic", "vhdx"], ["qcow2", "qcow2"], ["VHD dynamic", "vpc"], ["VMDK monolithicSparse", "vmdk"],
];
console.log(`bootgate bench: open + partition/filesystem scan (median of ${REPS}), CLI inspect (median of 5, incl. start-up)\n`);
console.log("| image | 128 MiB: open+inspect | 2.5 TiB sparse: open+inspect | 128 MiB: CLI | 2.5 TiB: CLI |");
console.log("|---|---|---|---|---|");
for (const [label, fmt] of cases) {
  const opts = fmt === "vpc" ? ["-o", "subformat=dynamic,force_size=on"] : [];
  const small = make(`small.${fmt}`, "128M", fmt, opts);
  const big = fmt === "vpc" ? make(`big.${fmt}`, "2000G", fmt, opts) : make(`big.${fmt}`, "2560G", fmt, opts);
  const row = [timeOpen(small), timeOpen(big), timeCli(small), timeCli(big)].map((t) => `${t.toFixed(2)} ms`);
  console.log(`| ${label}${fmt === "vpc" ? " (2000 GiB: the VHD maximum)" : ""} | ${row.join(" | ")} |`);
}
