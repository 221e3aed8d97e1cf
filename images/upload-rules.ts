// Azure and Hyper-V rules checked before any boot: upload rules (fail the gate, leave the boot
// verdicts alone) and attachment rules (fail a generation at stage "image").
import * as path from "node:path";
import type { ContainerInfo } from "./block.ts";
import { finding, type Finding } from "../emu/findings.ts";
import "./findings-image.ts";
import {
  AZURE_GEN2_OS_MAX_BYTES, AZURE_MAX_BYTES, AZURE_MIN_BYTES, HYPERV_IDE_MAX_BYTES,
} from "../firmware-stubs/hyperv.ts";

export type Target = "azure" | "hyperv";
const MiB = 2 ** 20;

/** Upload rules: findings of the image itself, independent of the generation. */
export function uploadRuleFindings(info: ContainerInfo, target: Target): Finding[] {
  const out: Finding[] = [];
  const p = { path: path.basename(info.path), format: info.format, virtualSize: info.virtualSize };
  if (target === "azure") {
    const fixedVhd = info.format === "vhd" && info.subformat === "fixed";
    if (!fixedVhd) {
      out.push(finding("AZURE_NOT_FIXED_VHD", { ...p, subformat: info.subformat ?? "",
        subformatText: info.subformat ? ` (${info.subformat})` : "" }));
    }
    if (info.virtualSize % MiB !== 0) {
      const roundedMiB = Math.ceil(info.virtualSize / MiB);
      out.push(finding("AZURE_SIZE_NOT_MIB", { ...p, remainder: info.virtualSize % MiB, roundedMiB, roundedBytes: roundedMiB * MiB }));
    }
    if (fixedVhd && info.fileSize !== info.virtualSize + 512) {
      out.push(finding("AZURE_FILE_SIZE", { ...p, fileSize: info.fileSize, expected: info.virtualSize + 512 }));
    }
    if (info.virtualSize < AZURE_MIN_BYTES || info.virtualSize > AZURE_MAX_BYTES) {
      out.push(finding("AZURE_SIZE_RANGE", { ...p, min: AZURE_MIN_BYTES, max: AZURE_MAX_BYTES }));
    }
  }
  return out;
}

/** Attachment rules: what stops generation `gen` from attaching the disk at all. */
export function attachFindings(info: ContainerInfo, gen: 1 | 2, target: Target): Finding[] {
  const out: Finding[] = [];
  const p = { path: path.basename(info.path), format: info.format, virtualSize: info.virtualSize };
  // Container anomalies of severity error (a bad footer checksum...) make Hyper-V refuse the disk.
  for (const f of info.findings) if (f.severity === "error" && f.code !== "IMAGE_EXTENSION_MISMATCH") out.push(f);
  if (gen === 1) {
    // 2040 GB is below the 2 TiB MBR/Azure Gen1 OS disk limit, so the IDE limit covers both.
    if (info.virtualSize > HYPERV_IDE_MAX_BYTES) out.push(finding("HYPERV_IDE_LIMIT", { ...p, limit: HYPERV_IDE_MAX_BYTES }));
  } else {
    if (target === "hyperv" && info.format !== "vhdx") out.push(finding("HYPERV_GEN2_NEEDS_VHDX", p));
    if (target === "azure" && info.virtualSize > AZURE_GEN2_OS_MAX_BYTES) out.push(finding("OS_DISK_TOO_LARGE_GEN2", p));
  }
  return out;
}
