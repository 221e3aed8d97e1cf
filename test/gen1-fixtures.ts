// Shared by the gen1-*.test.ts files: the Debian-built Gen1 fixtures (scripts/build-fixtures-gen1.sh) opened as raw disks.
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { Disk, type BlockDevice } from "../images/block.ts";
import { rawDriver } from "../images/raw.ts";
import { FileSource } from "../images/source.ts";
import { ROOT } from "./helpers.ts";

export const GEN1_DIR = path.join(ROOT, ".cache/fixtures/gen1");

/** Build the fixtures if needed (the script is a no-op when up to date, and serialises concurrent builds). */
export function ensureGen1Fixtures(): { kernelVersion: string; rootUuid: string; fixtures: Record<string, Record<string, unknown>> } {
  execFileSync("bash", [path.join(ROOT, "scripts/build-fixtures-gen1.sh")], { stdio: ["ignore", "ignore", "pipe"], timeout: 900_000 });
  return JSON.parse(fs.readFileSync(path.join(GEN1_DIR, "manifest.json"), "utf8"));
}

export function openRaw(file: string): BlockDevice {
  return new Disk(rawDriver.open(new FileSource(file), {} as never));
}

export function fixture(name: string): BlockDevice {
  return openRaw(path.join(GEN1_DIR, name));
}
