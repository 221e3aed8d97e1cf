// The EFI system table, boot and runtime service tables (UEFI 2.10 4.3-4.5) and the configuration tables a
// Hyper-V Gen2 VM publishes: ACPI 2.0 RSDP -> XSDT (ACPI 6.5 5.2.5/5.2.8) and an SMBIOS 3.0 entry point with the
// Hyper-V strings (DSP0134 3.0 5.2.2, types 0/1/127). Header CRC32s are computed as the spec requires.
import crc32 from "crc-32";
import { FirmwareCore, type Handler } from "./uefi-core.ts";
import { BOOT_SERVICES, RUNTIME_SERVICES, SIGNATURE, ST, TABLE_HEADER_SIZE, UEFI_REVISION, type BootService,
  type RuntimeService } from "./uefi-layout.ts";
import { SMBIOS_STRINGS } from "./hyperv.ts";
import { GUID, guidToBytes } from "./uefi-guid.ts";

/** mu_msvm reports "Microsoft" as the firmware vendor (Linux prints "EFI v2.7 by Microsoft"). */
export const FIRMWARE_VENDOR = "Microsoft";
export const FIRMWARE_REVISION = 0x00010000;

export interface Tables { st: number; bs: number; rt: number; configArray: number }

function header(fw: FirmwareCore, at: number, sig: bigint, size: number): void {
  fw.w64(at, sig);
  fw.w32(at + 8, UEFI_REVISION);
  fw.w32(at + 12, size);
  fw.w32(at + 16, 0);
}

export function fixCrc(fw: FirmwareCore, at: number): void {
  fw.w32(at + 16, 0);
  const size = fw.u32(at + 12);
  fw.w32(at + 16, crc32.buf(fw.bytes(at, size)) >>> 0);
}

export function buildTables(fw: FirmwareCore, bs: Partial<Record<BootService, Handler>>, rt: Partial<Record<RuntimeService, Handler>>): Tables {
  const bsSize = TABLE_HEADER_SIZE + BOOT_SERVICES.length * 8;
  const rtSize = TABLE_HEADER_SIZE + RUNTIME_SERVICES.length * 8;
  const bsAt = fw.alloc(bsSize);
  const rtAt = fw.alloc(rtSize);
  const stAt = fw.alloc(ST.SIZE);
  header(fw, bsAt, SIGNATURE.BOOT_SERVICES, bsSize);
  header(fw, rtAt, SIGNATURE.RUNTIME_SERVICES, rtSize);
  header(fw, stAt, SIGNATURE.SYSTEM_TABLE, ST.SIZE);
  BOOT_SERVICES.forEach((name, i) => {
    const h = bs[name] ?? ((c) => fw.unsupported(`BootServices.${name}`, c));
    fw.w64(bsAt + TABLE_HEADER_SIZE + 8 * i, fw.stub(name, h));
  });
  RUNTIME_SERVICES.forEach((name, i) => {
    const h = rt[name] ?? ((c) => fw.unsupported(`RuntimeServices.${name}`, c));
    fw.w64(rtAt + TABLE_HEADER_SIZE + 8 * i, fw.stub(name, h));
  });
  fixCrc(fw, bsAt);
  fixCrc(fw, rtAt);
  fw.w64(stAt + ST.FirmwareVendor, fw.allocUtf16(FIRMWARE_VENDOR));
  fw.w32(stAt + ST.FirmwareRevision, FIRMWARE_REVISION);
  fw.w64(stAt + ST.RuntimeServices, rtAt);
  fw.w64(stAt + ST.BootServices, bsAt);
  const configArray = fw.alloc(64 * 24);
  fw.w64(stAt + ST.ConfigurationTable, configArray);
  fixCrc(fw, stAt);
  return { st: stAt, bs: bsAt, rt: rtAt, configArray };
}

/** Rewrite the configuration table array and the system table's count (InstallConfigurationTable). */
export function writeConfigTables(fw: FirmwareCore, t: Tables, list: { guid: string; table: number }[]): void {
  list.slice(0, 64).forEach((e, i) => {
    fw.put(t.configArray + 24 * i, guidToBytes(e.guid));
    fw.w64(t.configArray + 24 * i + 16, e.table);
  });
  fw.w64(t.st + ST.NumberOfTableEntries, Math.min(64, list.length));
  fixCrc(fw, t.st);
}

/** Console handles and interfaces into the system table. */
export function setConsoles(fw: FirmwareCore, t: Tables, c: { inHandle: number; conIn: number; outHandle: number; conOut: number }): void {
  fw.w64(t.st + ST.ConsoleInHandle, c.inHandle);
  fw.w64(t.st + ST.ConIn, c.conIn);
  fw.w64(t.st + ST.ConsoleOutHandle, c.outHandle);
  fw.w64(t.st + ST.ConOut, c.conOut);
  fw.w64(t.st + ST.StandardErrorHandle, c.outHandle);
  fw.w64(t.st + ST.StdErr, c.conOut);
  fixCrc(fw, t.st);
}

function checksum8(b: Buffer, start: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i++) s = (s + b[start + i]) & 0xff;
  return (0x100 - s) & 0xff;
}

function smbiosStructure(type: number, handle: number, formatted: number[], strings: string[]): Buffer {
  const head = Buffer.from([type, formatted.length + 4, handle & 0xff, handle >> 8, ...formatted]);
  const strs = Buffer.from(strings.map((s) => s + "\0").join("") + "\0", "latin1");
  return Buffer.concat([head, strings.length ? strs : Buffer.from([0, 0])]);
}

/** ACPI and SMBIOS tables written at `at` (a reserved region of at least 8 KiB); returns config table entries. */
export function buildPlatformTables(fw: FirmwareCore, at: number): { guid: string; table: number }[] {
  const s = SMBIOS_STRINGS;
  // SMBIOS 3.0: type 0 (vendor, version, date; UEFI supported in characteristics ext. 2 bit 3, VM bit 4),
  // type 1 (Microsoft Corporation / Virtual Machine), end of table.
  const t0 = smbiosStructure(0, 0, [1, 2, 0x00, 0x00, 3, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x18, 4, 0, 0xff, 0xff],
    [s.gen2FirmwareVendor, s.gen2FirmwareVersion, "01/01/2024"]);
  const uuid = [0x7e, 0xea, 0x07, 0xb0, 0x00, 0x00, 0x00, 0x40, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02];
  const t1 = smbiosStructure(1, 1, [1, 2, 3, 4, ...uuid, 6, 5, 6], [s.systemManufacturer, s.productName, "Hyper-V UEFI Release v4.0",
    "0000-0000-0000-0000-0000-0000-00", "None", "Virtual Machine"]);
  const end = smbiosStructure(127, 2, [], []);
  const table = Buffer.concat([t0, t1, end]);
  const tableAt = at + 0x100;
  fw.put(tableAt, table);
  const ep = Buffer.alloc(24);
  ep.write("_SM3_", 0, "latin1");
  ep[6] = 24; ep[7] = 3; ep[8] = 0; ep[9] = 0; ep[10] = 1;
  ep.writeUInt32LE(table.length, 12);
  ep.writeBigUInt64LE(BigInt(tableAt), 16);
  ep[5] = checksum8(ep, 0, 24);
  fw.put(at, ep);
  // ACPI 2.0: RSDP (36 bytes) -> XSDT with no entries.
  const xsdtAt = at + 0x1000;
  const xsdt = Buffer.alloc(36);
  xsdt.write("XSDT", 0, "latin1");
  xsdt.writeUInt32LE(36, 4); xsdt[8] = 1;
  xsdt.write("VRTUAL", 10, "latin1"); xsdt.write("MICROSFT", 16, "latin1");
  xsdt.writeUInt32LE(1, 24); xsdt.write("MSFT", 28, "latin1"); xsdt.writeUInt32LE(0x01000013, 32);
  xsdt[9] = checksum8(xsdt, 0, 36);
  fw.put(xsdtAt, xsdt);
  const rsdpAt = at + 0x800;
  const rsdp = Buffer.alloc(36);
  rsdp.write("RSD PTR ", 0, "latin1");
  rsdp.write("VRTUAL", 9, "latin1");
  rsdp[15] = 2;
  rsdp.writeUInt32LE(36, 20);
  rsdp.writeBigUInt64LE(BigInt(xsdtAt), 24);
  rsdp[8] = checksum8(rsdp, 0, 20);
  rsdp[32] = checksum8(rsdp, 0, 36);
  fw.put(rsdpAt, rsdp);
  return [{ guid: GUID.ACPI_20_TABLE, table: rsdpAt }, { guid: GUID.SMBIOS3_TABLE, table: at }];
}
