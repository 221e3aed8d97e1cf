// `npm run bench` (second part): Generation 2, power-on to the hand-off (or the failure) on the Debian-built UEFI
// fixtures, in-process (runGen2) and through the CLI; medians of --reps N runs (default 3). Writes its table into
// bench/RESULTS.md between the gen2 markers and prints it.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import { runGen2 } from "../emu/gen2.ts";
import type { SecureBootMode } from "../firmware-stubs/secureboot.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const DIR = path.join(ROOT, ".cache/fixtures/gen2");
const CASES: { file: string; sb: SecureBootMode; what: string }[] = [
  { file: "gen2-shim-removable.img", sb: "off", what: "shim 16.1 -> GRUB 2.06 -> Linux 6.1, Secure Boot off" },
  { file: "gen2-shim-removable.img", sb: "uefi-ca", what: "same, UEFI CA template (shim verifies GRUB and the kernel)" },
  { file: "gen2-unsigned-grub.img", sb: "off", what: "grub-mkimage BOOTX64.EFI -> Linux" },
  { file: "gen2-fallback.img", sb: "trusted-launch", what: "fallback: BOOTX64.CSV, boot entry, reset, boot (vTPM)" },
  { file: "gen2-missing-uuid.img", sb: "off", what: "GRUB stops at grub> (missing UUID)" },
  { file: "gen2-debian-only.img", sb: "off", what: "no removable-path loader" },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const arg = (n: string) => { const i = process.argv.indexOf(n); return i >= 0 ? process.argv[i + 1] : undefined; };

function main(): void {
  const reps = Math.max(1, Number(arg("--reps") ?? (process.argv.includes("--quick") ? 1 : 3)));
  if (!fs.existsSync(path.join(DIR, CASES[0].file))) execFileSync("bash", [path.join(ROOT, "scripts/build-fixtures-gen2.sh")], { stdio: "inherit" });
  const rows: string[] = [];
  for (const c of CASES) {
    const file = path.join(DIR, c.file);
    const times: number[] = [], cli: number[] = [];
    let last: ReturnType<typeof runGen2> | undefined;
    for (let i = 0; i < reps; i++) {
      const dev = openImage(file);
      const t = performance.now();
      last = runGen2(dev, readLayout(dev), { secureBoot: c.sb });
      times.push(performance.now() - t);
      dev.close();
      const t2 = performance.now();
      try {
        execFileSync(process.execPath, [path.join(ROOT, "emu/bin.mjs"), "check", file, "--gen", "2", "--secure-boot", c.sb, "--quiet"], { stdio: "ignore" });
      } catch { /* exit 1/3 are verdicts */ }
      cli.push(performance.now() - t2);
    }
    const r = last!;
    rows.push(`| ${c.file} | ${c.sb} | ${c.what} | ${r.reached} / ${r.stop.reason} | ${(median(times) / 1000).toFixed(2)} s | ${(median(cli) / 1000).toFixed(2)} s | ${r.stats.efiCalls} | ${r.stats.sectorsRead} |`);
    process.stderr.write(`${c.file} ${c.sb}: ${(median(times) / 1000).toFixed(2)} s\n`);
  }
  const table = [
    `Generation 2 (${new Date().toISOString().slice(0, 10)}, ${reps} repetition(s), medians; load average at start ${fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]}):`,
    "",
    "| fixture | Secure Boot | what | reached / stop | runGen2 | CLI `check --gen 2` | firmware calls | sectors read |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
  process.stdout.write(table + "\n");
  const out = path.join(ROOT, "bench/RESULTS.md");
  const begin = "<!-- gen2:begin -->", end = "<!-- gen2:end -->";
  let text = fs.existsSync(out) ? fs.readFileSync(out, "utf8") : "";
  const block = `${begin}\n${table}\n${end}`;
  text = text.includes(begin) ? text.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), block) : `${text.trimEnd()}\n\n## Generation 2\n\n${block}\n`;
  fs.writeFileSync(out, text);
}

main();
