// Shared by the Gen2 tests: the Debian-built UEFI fixtures (scripts/build-fixtures-gen2.sh, shared/FIXTURES.md) and their manifest.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { BlockDevice } from "../images/block.ts";
import { openImage } from "../images/registry.ts";
import { ROOT } from "./helpers.ts";

export const GEN2_DIR = path.join(ROOT, ".cache/fixtures/gen2");
const GEN2_SCRIPT = path.join(ROOT, "scripts/build-fixtures-gen2.sh");

/** The raw Gen2 fixtures (80 MiB sparse GPT disks, except gen2-mbr-bios.img: Gen1's 64 MiB grub-mbr.img). */
export const GEN2_FIXTURES = [
  "gen2-shim-removable.img",
  "gen2-debian-only.img",
  "gen2-fallback.img",
  "gen2-blank-esp.img",
  "gen2-unsigned-grub.img",
  "gen2-missing-uuid.img",
  "gen2-mbr-bios.img",
] as const;
/** gen2-shim-removable.img converted to VHDX (what Hyper-V Gen2 takes). */
export const GEN2_EXTRAS = ["gen2-shim-removable.vhdx"] as const;
export type Gen2Fixture = (typeof GEN2_FIXTURES)[number] | (typeof GEN2_EXTRAS)[number];

/** `bootgate --secure-boot` settings the manifest gives an expected outcome for. */
export type SecureBootMode = "off" | "windows" | "uefi-ca" | "trusted-launch";
export interface Gen2Outcome {
  /** Where a real Hyper-V Gen2 VM stops: "kernel" means the Linux hand-off happened. */
  stage: "firmware" | "bootloader" | "kernel";
  /** The first line the firmware or loader shows about the failure. */
  screen?: string;
  /** The prompt the loader is left at (GRUB's "grub> "). */
  prompt?: string;
  /** Resets before the kernel (shim's fallback resets only when a TPM protocol exists). */
  resets?: number;
}
/** One file the builder put on an ESP: its Debian source (or "(generated) NAME") and digest. */
export interface EspFile { source: string; sha256: string; bytes: number }
export interface Gen2Facts {
  what: string;
  table: "gpt" | "mbr";
  espPartition?: number;
  rootPartition?: number;
  /** The firmware's removable-media path the chain starts from. */
  loader?: string;
  chain?: string[];
  kernel?: string;
  initrd?: string;
  /** The arguments on grub.cfg's `linux` line. */
  append?: string;
  /** The command line the kernel receives (GRUB prepends BOOT_IMAGE=), as observed under QEMU + OVMF. */
  cmdline?: string;
  /** ESP path (backslashes, as UEFI spells it) -> file. */
  esp?: Record<string, EspFile>;
  bootEntry?: { description: string; device: string; path: string; comment: string };
  searchedUuid?: string;
  sameAs?: string;
  expect: Record<SecureBootMode, Gen2Outcome>;
}
export interface Gen2Manifest {
  kernelPackage: string;
  busyboxPackage: string;
  kernelVersion: string;
  vmlinuzSha256: string;
  initrd: string;
  initrdSha256: string;
  initrdModules: string[];
  packages: Record<string, string>;
  rootUuid: string;
  missingUuid: string;
  gptDiskGuid: string;
  espPartGuid: string;
  rootPartGuid: string;
  espVolumeId: string;
  espType: string;
  espStartLba: number;
  espSectors: number;
  rootStartLba: number;
  rootSectors: number;
  diskBytes: number;
  signedGrubPrefix: string;
  stubCfg: string;
  rootGrubCfg: string;
  menuEntry: string;
  unsignedGrub: { embeddedCfg: string; prefix: string; modules: string[]; insmodFromDisk: string[] };
  secureBootModes: SecureBootMode[];
  fixtures: Record<Gen2Fixture, Gen2Facts>;
}

let ready = false;

/**
 * Build the Gen2 set if needed (it builds the Gen1 set first; ~10 s when Gen1 is current, a no-op after). Safe from
 * parallel workers: the script serialises builds with flock. Call from a `beforeAll` with a long timeout.
 */
export function ensureGen2Fixtures(): void {
  if (ready) return;
  try {
    execFileSync("bash", [GEN2_SCRIPT], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], timeout: 900_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    const tail = err.stderr?.toString("utf8").trim().split("\n").slice(-15).join("\n") ?? "";
    throw new Error(`building Gen2 fixtures failed (bash scripts/build-fixtures-gen2.sh):\n${tail || err.message}`);
  }
  ready = true;
}

/** Path of a built Gen2 fixture (building the set on first use). */
export function gen2Fixture(name: Gen2Fixture | string): string {
  const known: readonly string[] = [...GEN2_FIXTURES, ...GEN2_EXTRAS];
  if (!known.includes(name)) throw new Error(`unknown Gen2 fixture ${JSON.stringify(name)}; known: ${known.join(", ")}`);
  ensureGen2Fixtures();
  const p = path.join(GEN2_DIR, name);
  if (!fs.existsSync(p)) throw new Error(`Gen2 fixture ${name} missing at ${p}; rerun scripts/build-fixtures-gen2.sh --force`);
  return p;
}

/** A Gen2 fixture opened through the container registry (raw or VHDX), as bootgate opens user images. */
export function openGen2(name: Gen2Fixture): BlockDevice {
  return openImage(gen2Fixture(name));
}

let manifest: Gen2Manifest | undefined;

/** What the builder recorded: ids, ESP files and digests, grub.cfg texts, expected outcome per Secure Boot mode. */
export function gen2Manifest(): Gen2Manifest {
  ensureGen2Fixtures();
  manifest ??= JSON.parse(fs.readFileSync(path.join(GEN2_DIR, "manifest.json"), "utf8")) as Gen2Manifest;
  return manifest;
}
