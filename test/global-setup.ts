// Builds the real-tool fixtures once per test run (cached across runs by the build scripts).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

export default function setup(): void {
  for (const script of ["scripts/build-fixtures-gen1.sh", "scripts/build-fixtures-gen2.sh"]) {
    const p = path.join(ROOT, script);
    if (!fs.existsSync(p)) continue;
    execFileSync("bash", [p], { stdio: ["ignore", "inherit", "inherit"], cwd: ROOT });
  }
}
