// GUID Partition Table: header at LBA 1 and its backup at the last LBA, each with a CRC32 over the
// header and over the partition entry array (UEFI 2.10 §5.3.2 Table 5-5, §5.3.3 Table 5-6/5-7).
import * as zlib from "node:zlib";
import type { BlockDevice } from "./block.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { MAX_GPT_ENTRIES, MAX_GPT_ENTRY_SIZE } from "./limits.ts";

export const GPT_SIGNATURE = "EFI PART";          // Signature                    [UEFI 2.10 Table 5-5]
export const GPT_HEADER_MIN_SIZE = 92;            // HeaderSize >= 92, <= block size
export const GPT_ENTRY_MIN_SIZE = 128;            // SizeOfPartitionEntry = 128 * 2^n
export const GPT_PRIMARY_LBA = 1;
const GPT_NAME_BYTES = 72;                        // PartitionName: 36 UTF-16LE code units [Table 5-6]

/** Partition type GUIDs (UEFI 2.10 Table 5-7, Microsoft, the Discoverable Partitions Specification). */
const GPT_TYPES: Record<string, string> = {
  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
  "024DEE41-33E7-11D3-9D69-0008C781F39F": "MBR partition scheme",
  "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
  "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
  "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
  "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows recovery",
  "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3": "Microsoft LDM metadata",
  "AF9B60A0-1431-4F62-BC68-3311714A69AD": "Microsoft LDM data",
  "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D": "Microsoft Storage Spaces",
  "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
  "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
  "44479540-F297-41B2-9AF7-D131D5F0458A": "Linux root (x86)",
  "B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM-64)",
  "8484680C-9521-48C6-9C11-B0720656F69E": "Linux /usr (x86-64)",
  "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot (XBOOTLDR)",
  "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
  "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
  "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
  "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
  "3B8F8425-20E0-4F3B-907F-1A25A76F98E8": "Linux server data",
  "4D21B016-B534-45C2-A9FB-5C16E091FD2D": "Linux variable data",
  "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1": "Linux temporary data",
  "CA7D7CCB-63ED-4C53-861C-1742536059CC": "Linux LUKS",
  "7FFEC5C9-2D00-49B7-8941-3EA10A5586B7": "Linux dm-crypt",
  "8DA63339-0007-60C0-C436-083AC8230908": "Linux reserved",
  "D3BFE2DE-3DAF-11DF-BA40-E3A556D89593": "Intel Fast Flash",
  "48465300-0000-11AA-AA11-00306543ECAC": "Apple HFS/HFS+",
  "7C3457EF-0000-11AA-AA11-00306543ECAC": "Apple APFS",
  "516E7CB4-6ECF-11D6-8FF8-00022D09712B": "FreeBSD data",
  "83BD6B9D-7F41-11DC-BE0B-001560B84F0F": "FreeBSD boot",
  "516E7CB5-6ECF-11D6-8FF8-00022D09712B": "FreeBSD swap",
  "516E7CB6-6ECF-11D6-8FF8-00022D09712B": "FreeBSD UFS",
  "516E7CBA-6ECF-11D6-8FF8-00022D09712B": "FreeBSD ZFS",
  "6A82CB45-1DD2-11B2-99A6-080020736631": "Solaris boot",
  "6A85CF4D-1DD2-11B2-99A6-080020736631": "Solaris root",
  "6A898CC3-1DD2-11B2-99A6-080020736631": "Solaris /usr & Apple ZFS",
  "AA31E02A-400F-11DB-9590-000C2911D1B8": "VMware VMFS",
  "9D275380-40AD-11DB-BF97-000C2911D1B8": "VMware Diagnostic",
  "9198EFFC-31C0-11DB-8F78-000C2911D1B8": "VMware Reserved",
  "381CFCCC-7288-11E0-92EE-000C2911D0B2": "VMware Virtual SAN",
};

export const GPT_TYPE_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
export const GPT_TYPE_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649";

export function gptTypeName(guid: string): string {
  return GPT_TYPES[guid.toUpperCase()] ?? "unknown";
}

/** EFI_GUID text: Data1..Data3 little-endian, Data4 in byte order (UEFI 2.10 Appendix A). Uppercase like sgdisk. */
export function guidText(b: Buffer, off = 0): string {
  const h = (s: number, e: number) => b.subarray(off + s, off + e).toString("hex");
  const le = (s: number, n: number) => Buffer.from(b.subarray(off + s, off + s + n)).reverse().toString("hex");
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${h(8, 10)}-${h(10, 16)}`.toUpperCase();
}

const REPAIR = "`sgdisk -e IMAGE` rewrites both GPT headers at the right places from the valid copy (on a raw copy; check with `sgdisk -v IMAGE`)";

defineFindings([
  {
    code: "GPT_PRIMARY_INVALID", severity: "error", stage: "image",
    title: "Primary GPT header invalid, backup used",
    message: "the primary GPT at LBA 1 is invalid ({reason}); the backup at LBA {backupLba} is valid and was used",
    remedy: REPAIR,
    explain: "UEFI firmware falls back to the backup GPT and may rewrite the primary, but boot loaders that read only "
      + "the primary header (GRUB's part_gpt) and some tools then see no or stale partitions.",
  },
  {
    code: "GPT_INVALID", severity: "error", stage: "image",
    title: "No valid GPT header",
    message: "neither GPT header is valid: primary at LBA 1: {primary}; backup at LBA {backupLba}: {backup}",
    remedy: "recreate the partition table with the original layout (`sgdisk` / `sfdisk`), or recover with `gdisk IMAGE` (recovery menu)",
    explain: "The disk's MBR says it is GPT-partitioned (type 0xEE) but no GPT header passes the UEFI checks "
      + "(signature, header CRC32, MyLBA, entry-array CRC32, sane sizes). Firmware sees no partitions.",
  },
  {
    code: "GPT_BACKUP_NOT_AT_END", severity: "warning", stage: "image",
    title: "Backup GPT header not at the end of the disk",
    message: "the primary GPT header places its backup at LBA {alternate}, but the disk's last LBA is {last}"
      + " (was the disk grown with `qemu-img resize`?); the last usable LBA {lastUsable} leaves {unusedMiB} MiB unusable",
    remedy: "`sgdisk -e IMAGE` moves the backup GPT to the end of the disk (`sgdisk --move-second-header`), on a raw copy",
    explain: "UEFI requires the backup header at the last LBA. After a disk is grown the backup stays at the old end: "
      + "firmware may 'repair' it, Windows shows the new space as unusable and partitioning tools complain.",
  },
  {
    code: "GPT_BACKUP_INVALID", severity: "warning", stage: "image",
    title: "Backup GPT header invalid",
    message: "the backup GPT header at LBA {lba} is invalid: {reason}",
    remedy: REPAIR,
    explain: "A missing or corrupt backup GPT leaves no copy to recover from; UEFI firmware may write a new one.",
  },
  {
    code: "GPT_BACKUP_MISMATCH", severity: "warning", stage: "image",
    title: "Backup GPT differs from the primary",
    message: "the backup GPT at LBA {lba} disagrees with the primary: {fields}",
    remedy: REPAIR,
    explain: "Primary and backup GPT must describe the same partitions; tools disagree about which one is right.",
  },
  {
    code: "GPT_ENTRY_BAD_RANGE", severity: "error", stage: "image",
    title: "GPT entry ends before it starts",
    message: "GPT partition {index} has StartingLBA {start} after EndingLBA {end}",
    remedy: "delete and recreate the partition with `sgdisk -d {index} -n {index}:START:END IMAGE`",
    explain: "A GPT entry's ending LBA is inclusive and must not be below its starting LBA.",
  },
  {
    code: "GPT_PART_OUTSIDE_USABLE", severity: "error", stage: "image",
    title: "GPT partition outside the usable area",
    message: "GPT partition {index} (LBA {start}..{end}) lies outside the usable LBAs {firstUsable}..{lastUsable}",
    remedy: "move or shrink the partition so it fits (`sgdisk -d {index} -n {index}:START:END IMAGE`), or `sgdisk -e IMAGE` if the disk was grown",
    explain: "Partitions must lie between FirstUsableLBA and LastUsableLBA, clear of the GPT structures themselves.",
  },
  {
    code: "GPT_LAST_USABLE_PAST_END", severity: "error", stage: "image",
    title: "GPT describes a larger disk",
    message: "the GPT's last usable LBA is {lastUsable} but the disk ends at LBA {last} (was the disk shrunk or truncated?)",
    remedy: "restore the disk's size (`qemu-img resize IMAGE {bytes}`), then check with `sgdisk -v IMAGE`",
    explain: "The partition table was written for a larger disk; Linux rejects such a GPT and data past the end is gone.",
  },
]);

export interface GptHeader {
  lba: number;
  revision: string;
  headerSize: number;
  headerCrc: number;
  myLba: number;
  alternateLba: number;
  firstUsable: number;
  lastUsable: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

export interface GptEntry {
  index: number;           // entry number + 1
  typeGuid: string;
  guid: string;
  startLba: number;
  endLba: number;          // inclusive
  attributes: string;      // 0x%016x
  attributeFlags: string[];
  name: string;
}

export interface GptInfo {
  diskGuid: string;
  primaryOk: boolean;
  backupOk: boolean;
  /** The header whose entries were used. */
  used: "primary" | "backup";
  primary?: GptHeader;
  backup?: GptHeader;
  backupLba: number;
  firstUsable: number;
  lastUsable: number;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  /** Non-empty entries only. */
  entries: GptEntry[];
}

type HeaderRead = { ok: true; header: GptHeader; array: Buffer } | { ok: false; reason: string; header?: GptHeader };

const u64 = (b: Buffer, o: number) => Number(b.readBigUInt64LE(o));
const crc32 = (b: Buffer) => zlib.crc32(b) >>> 0;
const hex8 = (n: number) => "0x" + (n >>> 0).toString(16).padStart(8, "0");

/** True when the 8 bytes at `byteOffset` are "EFI PART" (used to spot a GPT written for another sector size). */
export function gptSignatureAt(dev: BlockDevice, byteOffset: number): boolean {
  if (byteOffset + 8 > dev.sectorCount * dev.sectorSize) return false;
  return dev.readBytes(byteOffset, 8).toString("latin1") === GPT_SIGNATURE;
}

/** Read and validate the header at `lba` and its entry array (UEFI 2.10 §5.3.2 "validity checks"). */
export function readGptHeader(dev: BlockDevice, lba: number): HeaderRead {
  if (lba < 1 || lba >= dev.sectorCount) return { ok: false, reason: `LBA ${lba} is not on the disk` };
  const sec = Buffer.from(dev.read(lba, 1));
  if (sec.toString("latin1", 0, 8) !== GPT_SIGNATURE) {
    return { ok: false, reason: isAllZero(sec) ? "sector is empty" : "no 'EFI PART' signature" };
  }
  const h: GptHeader = {
    lba,
    revision: `${sec.readUInt16LE(10)}.${sec.readUInt16LE(8)}`,
    headerSize: sec.readUInt32LE(12), headerCrc: sec.readUInt32LE(16),
    myLba: u64(sec, 24), alternateLba: u64(sec, 32), firstUsable: u64(sec, 40), lastUsable: u64(sec, 48),
    diskGuid: guidText(sec, 56), entriesLba: u64(sec, 72), entryCount: sec.readUInt32LE(80),
    entrySize: sec.readUInt32LE(84), entriesCrc: sec.readUInt32LE(88),
  };
  if (h.headerSize < GPT_HEADER_MIN_SIZE || h.headerSize > dev.sectorSize) {
    return { ok: false, header: h, reason: `header size ${h.headerSize} is outside ${GPT_HEADER_MIN_SIZE}..${dev.sectorSize}` };
  }
  const copy = Buffer.from(sec.subarray(0, h.headerSize));
  copy.writeUInt32LE(0, 16);
  const computed = crc32(copy);
  if (computed !== h.headerCrc) {
    return { ok: false, header: h, reason: `header CRC32 ${hex8(h.headerCrc)}, computed ${hex8(computed)}` };
  }
  if (h.myLba !== lba) return { ok: false, header: h, reason: `MyLBA ${h.myLba} but the header was read from LBA ${lba}` };
  if (h.entrySize < GPT_ENTRY_MIN_SIZE || h.entrySize % GPT_ENTRY_MIN_SIZE !== 0
      || ((h.entrySize / GPT_ENTRY_MIN_SIZE) & (h.entrySize / GPT_ENTRY_MIN_SIZE - 1)) !== 0) {
    return { ok: false, header: h, reason: `partition entry size ${h.entrySize} is not 128 * 2^n` };
  }
  if (h.entrySize > MAX_GPT_ENTRY_SIZE) {
    return { ok: false, header: h, reason: `partition entry size ${h.entrySize} exceeds the ${MAX_GPT_ENTRY_SIZE}-byte limit` };
  }
  if (h.entryCount > MAX_GPT_ENTRIES) {
    return { ok: false, header: h, reason: `partition entry count ${h.entryCount} exceeds the ${MAX_GPT_ENTRIES}-entry limit` };
  }
  if (h.firstUsable > h.lastUsable + 1) {
    return { ok: false, header: h, reason: `first usable LBA ${h.firstUsable} is after last usable LBA ${h.lastUsable}` };
  }
  const bytes = h.entryCount * h.entrySize;
  const sectors = Math.ceil(bytes / dev.sectorSize);
  if (h.entriesLba < 1 || h.entriesLba + sectors > dev.sectorCount) {
    return { ok: false, header: h, reason: `partition entry array at LBA ${h.entriesLba} (+${sectors} sectors) is not on the disk` };
  }
  const array = sectors > 0 ? Buffer.from(dev.read(h.entriesLba, sectors)).subarray(0, bytes) : Buffer.alloc(0);
  const arrayCrc = crc32(array);
  if (arrayCrc !== h.entriesCrc) {
    return { ok: false, header: h, reason: `partition entry array CRC32 ${hex8(h.entriesCrc)}, computed ${hex8(arrayCrc)}` };
  }
  return { ok: true, header: h, array };
}

function isAllZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Attribute bits (UEFI 2.10 Table 5-8; bits 60/62/63 are Microsoft basic data's). */
const ATTRIBUTE_BITS: [bigint, string][] = [
  [0n, "required"], [1n, "no-block-io"], [2n, "legacy-bios-bootable"],
  [60n, "read-only"], [62n, "hidden"], [63n, "no-drive-letter"],
];

function parseEntries(h: GptHeader, array: Buffer): GptEntry[] {
  const out: GptEntry[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const o = i * h.entrySize;
    const e = array.subarray(o, o + GPT_ENTRY_MIN_SIZE);
    if (isAllZero(e.subarray(0, 16))) continue;               // unused entry: type GUID all zero
    const attrs = e.readBigUInt64LE(48);
    const nameRaw = e.subarray(56, 56 + GPT_NAME_BYTES).toString("utf16le");
    const z = nameRaw.indexOf("\0");
    out.push({
      index: i + 1, typeGuid: guidText(e, 0), guid: guidText(e, 16),
      startLba: u64(e, 32), endLba: u64(e, 40),
      attributes: "0x" + attrs.toString(16).padStart(16, "0"),
      attributeFlags: ATTRIBUTE_BITS.filter(([bit]) => (attrs >> bit) & 1n).map(([, n]) => n),
      name: z < 0 ? nameRaw : nameRaw.slice(0, z),
    });
  }
  return out;
}

function compareHeaders(p: GptHeader, b: GptHeader): string[] {
  const diffs: string[] = [];
  const same = (k: keyof GptHeader) => { if (p[k] !== b[k]) diffs.push(`${k} ${p[k]} vs ${b[k]}`); };
  same("diskGuid"); same("firstUsable"); same("lastUsable"); same("entryCount"); same("entrySize");
  if (p.entriesCrc !== b.entriesCrc) diffs.push(`entry array CRC32 ${hex8(p.entriesCrc)} vs ${hex8(b.entriesCrc)}`);
  if (b.alternateLba !== GPT_PRIMARY_LBA) diffs.push(`backup's AlternateLBA ${b.alternateLba} (expected 1)`);
  return diffs;
}

/**
 * Read the GPT: primary first, the backup at the last LBA when the primary is invalid. Problems are
 * findings; returns undefined when neither header is valid (GPT_INVALID). Never throws for bad bytes.
 */
export function readGpt(dev: BlockDevice, findings: Finding[]): GptInfo | undefined {
  const last = dev.sectorCount - 1;
  const p = readGptHeader(dev, GPT_PRIMARY_LBA);
  let used: GptHeader, array: Buffer, backup: HeaderRead;
  let backupLba = last;
  if (p.ok) {
    used = p.header; array = p.array;
    const alt = p.header.alternateLba;
    if (alt !== last) {
      const unused = Math.max(0, last - p.header.lastUsable) * dev.sectorSize;
      findings.push(finding("GPT_BACKUP_NOT_AT_END", {
        alternate: alt, last, lastUsable: p.header.lastUsable, unusedMiB: Math.floor(unused / 2 ** 20),
      }));
      if (alt >= 1 && alt < dev.sectorCount) backupLba = alt;
    }
    backup = readGptHeader(dev, backupLba);
    if (!backup.ok) {
      findings.push(finding("GPT_BACKUP_INVALID", { lba: backupLba, reason: backup.reason }));
    } else {
      const diffs = compareHeaders(p.header, backup.header);
      if (diffs.length) findings.push(finding("GPT_BACKUP_MISMATCH", { lba: backupLba, fields: diffs.join("; ") }));
    }
  } else {
    backup = readGptHeader(dev, last);
    if (!backup.ok) {
      findings.push(finding("GPT_INVALID", { primary: p.reason, backupLba: last, backup: backup.reason }));
      return undefined;
    }
    findings.push(finding("GPT_PRIMARY_INVALID", { reason: p.reason, backupLba: last }));
    used = backup.header; array = backup.array;
  }
  if (used.lastUsable > last) {
    findings.push(finding("GPT_LAST_USABLE_PAST_END", {
      lastUsable: used.lastUsable, last, bytes: (Math.max(used.alternateLba, used.myLba) + 1) * dev.sectorSize,
    }));
  }
  const entries = parseEntries(used, array);
  for (const e of entries) {
    if (e.endLba < e.startLba) {
      findings.push(finding("GPT_ENTRY_BAD_RANGE", { index: e.index, start: e.startLba, end: e.endLba }));
    } else if (e.startLba < used.firstUsable || e.endLba > used.lastUsable) {
      findings.push(finding("GPT_PART_OUTSIDE_USABLE", {
        index: e.index, start: e.startLba, end: e.endLba, firstUsable: used.firstUsable, lastUsable: used.lastUsable,
      }));
    }
  }
  return {
    diskGuid: used.diskGuid, primaryOk: p.ok, backupOk: backup.ok, used: p.ok ? "primary" : "backup",
    primary: p.header, backup: backup.header, backupLba: p.ok ? backupLba : last,
    firstUsable: used.firstUsable, lastUsable: used.lastUsable, entriesLba: used.entriesLba,
    entryCount: used.entryCount, entrySize: used.entrySize, entries,
  };
}
