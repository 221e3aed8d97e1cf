// `bootgate demo`: check the built-in demo disks (built from Debian packages by scripts/build-fixtures-gen1.sh and
// build-fixtures-gen2.sh on first use) and show their verdicts side by side: BIOS disks on Generation 1, UEFI disks
// on Generation 2 under the Hyper-V Secure Boot templates.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { checkImage, type CheckOptions } from "./check.ts";
import { formatCheck } from "./report-text.ts";
import { PROJECT_ROOT } from "./version.ts";

const ROOT = PROJECT_ROOT;
export const DEMO_DIR = path.join(ROOT, ".cache/fixtures/demo");
export const GEN2_DEMO_DIR = path.join(ROOT, ".cache/fixtures/gen2");

interface DemoImage { dir: string; file: string; what: string; opts: Pick<CheckOptions, "gens" | "target" | "secureBoot">; flags: string }
const GEN1 = { gens: [1] as (1 | 2)[], target: "azure" as const };
export const DEMO_IMAGES: DemoImage[] = [
  { dir: DEMO_DIR, file: "demo-good.vhd", what: "GRUB on MBR, fixed VHD, initramfs with the Hyper-V storage drivers", opts: GEN1, flags: "--gen 1" },
  { dir: DEMO_DIR, file: "demo-broken.vhd", what: "GRUB whose prefix names a partition that does not exist", opts: GEN1, flags: "--gen 1" },
  { dir: DEMO_DIR, file: "demo-dynamic.vhd", what: "the good disk as a dynamic VHD, which Azure refuses", opts: GEN1, flags: "--gen 1" },
  { dir: GEN2_DEMO_DIR, file: "gen2-shim-removable.vhdx", what: "shim + GRUB + Linux on an ESP, under Hyper-V's Microsoft UEFI CA template",
    opts: { gens: [2], target: "hyperv", secureBoot: "uefi-ca" }, flags: "--gen 2 --target hyperv --secure-boot uefi-ca" },
  { dir: GEN2_DEMO_DIR, file: "gen2-shim-removable.vhdx", what: "the same disk under Hyper-V's default (Microsoft Windows) template",
    opts: { gens: [2], target: "hyperv" }, flags: "--gen 2 --target hyperv" },
  { dir: GEN2_DEMO_DIR, file: "gen2-debian-only.img", what: "the loader only under \\EFI\\debian: only the old VM's NVRAM knew it",
    opts: { gens: [2], target: "azure", secureBoot: "off" }, flags: "--gen 2 --secure-boot off" },
];

export function runDemo(write: (s: string) => void): number {
  const missing = (dir: string) => DEMO_IMAGES.some((d) => d.dir === dir && !fs.existsSync(path.join(d.dir, d.file)));
  if (missing(DEMO_DIR) || missing(GEN2_DEMO_DIR)) {
    write("building the demo disks from Debian packages (once)...\n");
    for (const script of ["build-fixtures-gen1.sh", "build-fixtures-gen2.sh"]) {
      execFileSync("bash", [path.join(ROOT, "scripts", script)], { stdio: ["ignore", "ignore", "inherit"] });
    }
  }
  for (const d of DEMO_IMAGES) {
    const file = path.join(d.dir, d.file);
    write(`\n== ${d.file}: ${d.what}\n`);
    const doc = checkImage(file, d.opts);
    write(formatCheck(doc));
    write(`   exit code of 'bootgate check ${path.relative(process.cwd(), file)} ${d.flags}': ${doc.exitCode}\n`);
  }
  return 0;
}
