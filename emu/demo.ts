// `bootgate demo`: check the built-in demo disks (built from Debian packages by
// scripts/build-fixtures-gen1.sh on first use) and show their verdicts side by side.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { checkImage } from "./check.ts";
import { formatCheck } from "./report-text.ts";
import { PROJECT_ROOT } from "./version.ts";

const ROOT = PROJECT_ROOT;
export const DEMO_DIR = path.join(ROOT, ".cache/fixtures/demo");
export const DEMO_IMAGES = [
  { file: "demo-good.vhd", what: "GRUB on MBR, fixed VHD, initramfs with the Hyper-V storage drivers" },
  { file: "demo-broken.vhd", what: "GRUB whose prefix names a partition that does not exist" },
  { file: "demo-dynamic.vhd", what: "the good disk as a dynamic VHD, which Azure refuses" },
];

export function runDemo(write: (s: string) => void): number {
  if (!DEMO_IMAGES.every((d) => fs.existsSync(path.join(DEMO_DIR, d.file)))) {
    write("building the demo disks from Debian packages (once)...\n");
    execFileSync("bash", [path.join(ROOT, "scripts/build-fixtures-gen1.sh")], { stdio: ["ignore", "ignore", "inherit"] });
  }
  for (const d of DEMO_IMAGES) {
    const file = path.join(DEMO_DIR, d.file);
    write(`\n== ${d.file}: ${d.what}\n`);
    const doc = checkImage(file, { gens: [1, 2], target: "azure" });
    write(formatCheck(doc));
    write(`   exit code of 'bootgate check ${path.relative(process.cwd(), file)}': ${doc.exitCode}\n`);
  }
  return 0;
}
