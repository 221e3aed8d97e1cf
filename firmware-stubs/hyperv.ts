// Hyper-V machine facts shared by the image rules and the firmware models (HYPERV.md).
import type { Geometry } from "../images/block.ts";

/** Hyper-V attaches IDE disks up to 2040 GB (GiB in Hyper-V Manager's units). */
export const HYPERV_IDE_MAX_BYTES = 2040 * 2 ** 30;
/** An MBR-partitioned OS disk (Gen1) addresses at most 2 TiB with 512-byte sectors. */
export const MBR_MAX_BYTES = 2 ** 32 * 512;
/** Azure page-blob VHD rules: fixed, whole MiB, 20 MiB .. 32 TiB (Azure "Upload a VHD"). */
export const AZURE_MIN_BYTES = 20 * 2 ** 20;
export const AZURE_MAX_BYTES = 32 * 2 ** 40;
/** Azure Gen1 OS disks are limited to 2 TiB; Gen2 OS disks to 4 TiB (Azure managed-disk docs). */
export const AZURE_GEN1_OS_MAX_BYTES = 2 * 2 ** 40;
export const AZURE_GEN2_OS_MAX_BYTES = 4 * 2 ** 40;

export const SMBIOS_STRINGS = {
  systemManufacturer: "Microsoft Corporation",
  productName: "Virtual Machine",
  biosVendor: "American Megatrends Inc.",
  biosVersion: "090008",
  biosVersionString: "VRTUAL - 12001807",
  gen2FirmwareVendor: "Microsoft Corporation",
  gen2FirmwareVersion: "Hyper-V UEFI Release v4.0",
};

/**
 * CHS geometry for a disk of `totalSectors` 512-byte sectors, per the VHD specification
 * ("CHS Calculation", Appendix) — the geometry Hyper-V's emulated IDE reports.
 */
export function vhdGeometry(totalSectors: number): Geometry {
  let t = Math.min(totalSectors, 65535 * 16 * 255);
  let spt: number, heads: number, cth: number;
  if (t >= 65535 * 16 * 63) {
    spt = 255; heads = 16; cth = Math.floor(t / spt);
  } else {
    spt = 17; cth = Math.floor(t / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) { spt = 31; heads = 16; cth = Math.floor(t / spt); }
    if (cth >= heads * 1024) { spt = 63; heads = 16; cth = Math.floor(t / spt); }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}
