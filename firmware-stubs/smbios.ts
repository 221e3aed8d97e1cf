// SMBIOS 2.4 entry point with type 0 (BIOS) and type 1 (system) structures carrying the Hyper-V strings (DMTF
// DSP0134 2.4, sections 5.2, 7.1, 7.2), and an ACPI 1.0 RSDP + empty RSDT (ACPI 6.5 sections 5.2.5, 5.2.7).
import { SMBIOS_STRINGS } from "./hyperv.ts";
import type { Machine } from "../emu/machine.ts";

/** Where the tables live in the BIOS image (16-byte aligned, F0000-FFFFF as both specs require). */
export const SMBIOS_EP = 0xf0000;
export const SMBIOS_TABLE = 0xf0100;
export const ACPI_RSDP = 0xf0400;

/** The Hyper-V-like top-of-RAM ACPI areas: 60 KiB ACPI data then 4 KiB ACPI NVS below the end of memory. */
export function acpiRegions(memoryBytes: number): { dataStart: number; nvsStart: number; end: number } {
  const end = Math.min(memoryBytes, 0xf000_0000);
  return { dataStart: end - 0x10000, nvsStart: end - 0x1000, end };
}

function checksum(b: Buffer, start: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i++) s = (s + b[start + i]) & 0xff;
  return (0x100 - s) & 0xff;
}

function structure(type: number, handle: number, formatted: number[], strings: string[]): Buffer {
  const head = Buffer.from([type, formatted.length + 4, handle & 0xff, handle >> 8, ...formatted]);
  const strs = Buffer.from(strings.map((s) => s + "\0").join("") + "\0", "latin1");
  return Buffer.concat([head, strings.length ? strs : Buffer.from([0, 0])]);
}

export function installSmbios(m: Machine, memoryMiB: number): void {
  const s = SMBIOS_STRINGS;
  // Type 0: vendor=1, version=2, start segment E800 (any), release date=3, ROM size 64K, characteristics (PCI,
  // BIOS upgradable, selectable boot, EDD, int 13h 5.25/3.5 floppies, print screen, 8042, serial, CGA/mono).
  const t0 = structure(0, 0, [1, 2, 0x00, 0xe8, 3, 0x00, 0x90, 0x1a, 0x03, 0x80, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00],
    [s.biosVendor, s.biosVersionString, "01/01/2024"]);
  // Type 1: manufacturer=1, product=2, version=3, serial=4, UUID (fixed), wake-up type power switch (6).
  const uuid = [0x7e, 0xea, 0x07, 0xb0, 0x00, 0x00, 0x00, 0x40, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01];
  const t1 = structure(1, 1, [1, 2, 3, 4, ...uuid, 6], [s.systemManufacturer, s.productName, "7.0", "0000-0000-0000-0000-0000-0000-00"]);
  const end = structure(127, 2, [], []);
  const table = Buffer.concat([t0, t1, end]);
  m.ram.set(table, SMBIOS_TABLE);
  // Entry point structure "_SM_" (31 bytes) with the intermediate "_DMI_" anchor.
  const ep = Buffer.alloc(31);
  ep.write("_SM_", 0, "latin1");
  ep[5] = 0x1f; ep[6] = 2; ep[7] = 4;
  ep.writeUInt16LE(Math.max(t0.length, t1.length), 8);
  ep.write("_DMI_", 16, "latin1");
  ep.writeUInt16LE(table.length, 22);
  ep.writeUInt32LE(SMBIOS_TABLE, 24);
  ep.writeUInt16LE(3, 28);
  ep[30] = 0x24;
  ep[21] = checksum(ep, 16, 15);
  ep[4] = checksum(ep, 0, 31);
  m.ram.set(ep, SMBIOS_EP);
  // ACPI: RSDP (20 bytes, revision 0) -> RSDT with no entries (a header only), placed in the ACPI data area.
  const { dataStart } = acpiRegions(memoryMiB * 2 ** 20);
  const rsdt = Buffer.alloc(36);
  rsdt.write("RSDT", 0, "latin1");
  rsdt.writeUInt32LE(36, 4); rsdt[8] = 1;
  rsdt.write("VRTUAL", 10, "latin1"); rsdt.write("MICROSFT", 16, "latin1");
  rsdt.writeUInt32LE(1, 24); rsdt.write("MSFT", 28, "latin1"); rsdt.writeUInt32LE(0x01000013, 32);
  rsdt[9] = checksum(rsdt, 0, 36);
  m.ram.set(rsdt, dataStart);
  const rsdp = Buffer.alloc(20);
  rsdp.write("RSD PTR ", 0, "latin1");
  rsdp.write("VRTUAL", 9, "latin1");
  rsdp.writeUInt32LE(dataStart, 16);
  rsdp[8] = checksum(rsdp, 0, 20);
  m.ram.set(rsdp, ACPI_RSDP);
}
