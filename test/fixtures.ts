// Real boot fixtures for tests: builds them once with scripts/build-fixtures-gen1.sh (see shared/FIXTURES.md) and returns paths.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROOT } from "./helpers.ts";

export const GEN1_DIR = path.join(ROOT, ".cache/fixtures/gen1");
export const DEMO_DIR = path.join(ROOT, ".cache/fixtures/demo");
const GEN1_SCRIPTS = ["scripts/build-fixtures-gen1.sh", "scripts/fixture-lib.sh"].map((p) => path.join(ROOT, p));

/** The raw Gen1 fixtures the script builds (64 MiB sparse disks). */
export const GEN1_FIXTURES = [
  "grub-mbr.img",
  "grub-gpt-biosboot.img",
  "gpt-no-biosboot.img",
  "syslinux-fat.img",
  "no-active.img",
  "zeroed-bootcode.img",
  "no-55aa.img",
  "grub-wrong-prefix.img",
  "grub-menu-timeout.img",
  "grub-no-hv-initrd.img",
] as const;
/** grub-mbr.img in other containers, and the two initramfs archives. */
export const GEN1_EXTRAS = [
  "grub-mbr.vhd", "grub-mbr.vhdx", "grub-mbr.vmdk", "grub-mbr.qcow2", "initrd-hv.cpio.gz", "initrd-nohv.cpio.gz",
] as const;
/** README quick-start images (in .cache/fixtures/demo/). */
export const DEMO_FIXTURES = ["demo-good.vhd", "demo-broken.vhd", "demo-dynamic.vhd"] as const;

export type Gen1Fixture = (typeof GEN1_FIXTURES)[number];
export type FixtureName = Gen1Fixture | (typeof GEN1_EXTRAS)[number] | (typeof DEMO_FIXTURES)[number];

/** What manifest.json (written by the script) says about each fixture; tests assert against these values. */
export interface FixtureFacts {
  loader: "grub" | "syslinux" | "none";
  table: "mbr" | "gpt";
  expect: "kernel" | "bootloader" | "firmware";
  coreLba?: number;
  prefix?: string;
  kernel?: string;
  append?: string;
  /** The kernel command line the loader built, as observed under QEMU/SeaBIOS (GRUB and SYSLINUX add BOOT_IMAGE=). */
  cmdline?: string;
  timeout?: number;
  screen?: string;
  note?: string;
}
export interface Gen1Manifest {
  kernelPackage: string;
  busyboxPackage: string;
  kernelVersion: string;
  rootUuid: string;
  mbrDiskId: string;
  gptDiskGuid: string;
  fatVolumeId: string;
  diskBytes: number;
  initrdModules: string[];
  initrdModulesNoHv: string[];
  fixtures: Record<Gen1Fixture, FixtureFacts>;
  notBuilt: Record<string, string>;
}

/** Hash of the builder scripts, the first line of .cache/fixtures/gen1/.stamp when the set is current. */
function scriptsHash(): string {
  const h = createHash("sha256");
  for (const f of GEN1_SCRIPTS) h.update(fs.readFileSync(f));
  return h.digest("hex");
}

function stampIsCurrent(): boolean {
  try {
    return fs.readFileSync(path.join(GEN1_DIR, ".stamp"), "utf8").split("\n")[0] === scriptsHash();
  } catch {
    return false;
  }
}

let ready = false;

/**
 * Build the Gen1 fixture set if it is missing or older than the scripts (about 20-40 s, plus a ~70 MB kernel
 * download on first use); afterwards free. Safe from parallel test workers: the script serialises builds with flock.
 * Call it from a `beforeAll` with a long timeout, e.g. `beforeAll(() => ensureGen1Fixtures(), 300_000)`.
 */
export function ensureGen1Fixtures(): void {
  if (ready) return;
  if (!stampIsCurrent()) {
    try {
      execFileSync("bash", [GEN1_SCRIPTS[0]!], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], timeout: 900_000 });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      const tail = err.stderr?.toString("utf8").trim().split("\n").slice(-15).join("\n") ?? "";
      throw new Error(`building Gen1 fixtures failed (bash scripts/build-fixtures-gen1.sh):\n${tail || err.message}`);
    }
    if (!stampIsCurrent()) throw new Error("scripts/build-fixtures-gen1.sh finished but left no current .stamp");
  }
  ready = true;
}

/** Path of a built fixture, building the whole set on first use. */
export function fixture(name: FixtureName | string): string {
  const known: readonly string[] = [...GEN1_FIXTURES, ...GEN1_EXTRAS, ...DEMO_FIXTURES];
  if (!known.includes(name)) throw new Error(`unknown fixture ${JSON.stringify(name)}; known: ${known.join(", ")}`);
  ensureGen1Fixtures();
  const p = path.join((DEMO_FIXTURES as readonly string[]).includes(name) ? DEMO_DIR : GEN1_DIR, name);
  if (!fs.existsSync(p)) throw new Error(`fixture ${name} missing at ${p} although the stamp is current; rerun with --force`);
  return p;
}

let manifest: Gen1Manifest | undefined;

/** The facts the builder recorded: kernel version, root UUID, configured command lines, initramfs contents. */
export function fixtureManifest(): Gen1Manifest {
  ensureGen1Fixtures();
  manifest ??= JSON.parse(fs.readFileSync(path.join(GEN1_DIR, "manifest.json"), "utf8")) as Gen1Manifest;
  return manifest;
}
