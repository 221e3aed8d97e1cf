// The classic PC partition table: MBR in LBA 0 (UEFI 2.10 §5.2.1, Table 5-1/5-2) and the chain of
// extended boot records (EBRs) that holds logical partitions (as Linux block/partitions/msdos.c reads it).
import type { BlockDevice } from "./block.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { MAX_EBR_CHAIN } from "./limits.ts";

export const MBR_BOOT_CODE_BYTES = 440;       // BootCode[440]               [UEFI 2.10 Table 5-1]
export const MBR_DISK_SIGNATURE = 0x1b8;      // UniqueMBRDiskSignature (u32)
export const MBR_TABLE = 0x1be;               // PartitionRecord[4], 16 bytes each
export const MBR_SIGNATURE = 0x1fe;           // 0x55 0xAA
export const MBR_ENTRY_SIZE = 16;
export const MBR_STATUS_ACTIVE = 0x80;        // BootIndicator               [UEFI 2.10 Table 5-2]
export const MBR_TYPE_GPT_PROTECTIVE = 0xee;
export const MBR_TYPE_EFI = 0xef;
/** Types that hold an EBR chain: DOS extended, Win95 extended (LBA), Linux extended. */
export const MBR_EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);

/** Names as util-linux's sfdisk prints them, for the types a converted VM disk plausibly holds. */
const MBR_TYPE_NAMES: Record<number, string> = {
  0x00: "Empty", 0x01: "FAT12", 0x04: "FAT16 <32M", 0x05: "Extended", 0x06: "FAT16", 0x07: "HPFS/NTFS/exFAT",
  0x0b: "W95 FAT32", 0x0c: "W95 FAT32 (LBA)", 0x0e: "W95 FAT16 (LBA)", 0x0f: "W95 Ext'd (LBA)",
  0x11: "Hidden FAT12", 0x12: "Compaq diagnostics", 0x14: "Hidden FAT16 <32M", 0x16: "Hidden FAT16",
  0x17: "Hidden HPFS/NTFS", 0x1b: "Hidden W95 FAT32", 0x1c: "Hidden W95 FAT32 (LBA)", 0x1e: "Hidden W95 FAT16 (LBA)",
  0x27: "Hidden NTFS WinRE", 0x42: "SFS (Windows dynamic disk)", 0x82: "Linux swap / Solaris", 0x83: "Linux",
  0x85: "Linux extended", 0x86: "NTFS volume set", 0x87: "NTFS volume set", 0x8e: "Linux LVM",
  0xa5: "FreeBSD", 0xa6: "OpenBSD", 0xa8: "Darwin UFS", 0xa9: "NetBSD", 0xaf: "HFS / HFS+",
  0xbe: "Solaris boot", 0xbf: "Solaris", 0xde: "Dell Utility", 0xea: "Linux extended boot",
  0xee: "GPT", 0xef: "EFI (FAT-12/16/32)", 0xfb: "VMware VMFS", 0xfc: "VMware VMKCORE", 0xfd: "Linux raid autodetect",
};

export function mbrTypeName(t: number): string {
  return MBR_TYPE_NAMES[t] ?? "unknown";
}

export const mbrTypeText = (t: number): string => "0x" + t.toString(16).padStart(2, "0");

defineFindings([
  {
    code: "MBR_NO_ACTIVE_PARTITION", severity: "warning", stage: "image",
    title: "No active partition in the MBR",
    message: "no MBR partition is marked active (boot flag 0x80) among {count} primary partitions",
    remedy: "mark the boot partition active: `sfdisk --activate IMAGE N` (on a raw copy) or `diskpart` 'active'",
    explain: "Generation 1 (BIOS) boots by running the MBR's boot code. The Windows and SYSLINUX MBR code look for the "
      + "partition whose boot indicator is 0x80 and print 'Missing operating system' or 'Invalid partition table' when "
      + "none is; GRUB's boot.img does not care. Generation 2 (UEFI) ignores the flag.",
  },
  {
    code: "MBR_MULTIPLE_ACTIVE", severity: "warning", stage: "image",
    title: "More than one active partition in the MBR",
    message: "{count} MBR partitions are marked active (partitions {partitions}); classic MBR code requires exactly one",
    remedy: "clear the extra flags: `sfdisk --activate IMAGE N` sets exactly partition N active (on a raw copy)",
    explain: "The Windows MBR boot code stops with 'Invalid partition table' when more than one primary partition "
      + "has the boot indicator 0x80. Only Generation 1 (BIOS) runs that code.",
  },
  {
    code: "MBR_EBR_LOOP", severity: "error", stage: "image",
    title: "Extended partition chain loops",
    message: "the extended boot record chain loops back to LBA {lba} after {count} records; the walk stopped there",
    remedy: "rewrite the logical partitions: dump with `sfdisk -d IMAGE`, fix the script, re-apply with `sfdisk IMAGE < script`",
    explain: "Each EBR points to the next one. A pointer back to an earlier EBR makes naive readers loop forever; "
      + "bootgate stops at the first repeat and reports the logical partitions found before it.",
  },
  {
    code: "MBR_EBR_CHAIN_TOO_LONG", severity: "error", stage: "image",
    title: "Extended partition chain too long",
    message: "the extended boot record chain has more than {limit} records; the walk stopped at LBA {lba}",
    remedy: "rewrite the logical partitions with `sfdisk` from a dump (`sfdisk -d IMAGE`)",
    explain: "bootgate follows at most a bounded number of EBRs so that a hostile image cannot make it walk forever.",
  },
  {
    code: "MBR_EBR_BAD", severity: "error", stage: "image",
    title: "Extended boot record unreadable",
    message: "extended boot record at LBA {lba} is invalid: {reason}; logical partitions after it are not visible",
    remedy: "recreate the logical partitions with `sfdisk` (dump with `sfdisk -d IMAGE`, fix, re-apply)",
    explain: "An EBR must lie inside its extended partition and on the disk, and end with the 0x55AA signature. "
      + "Operating systems stop at a bad EBR, so the logical partitions after it disappear.",
  },
  {
    code: "MBR_LOGICAL_OUTSIDE_EXTENDED", severity: "error", stage: "image",
    title: "Logical partition outside its extended partition",
    message: "logical partition {index} (LBA {start}, {sectors} sectors) is not inside the extended partition (LBA {extStart}..{extEnd})",
    remedy: "fix the partition table with `sfdisk` (dump with `sfdisk -d IMAGE`, fix, re-apply)",
    explain: "A logical partition's EBR-relative start places it outside the extended container; tools disagree on such tables.",
  },
  {
    code: "MBR_MULTIPLE_EXTENDED", severity: "warning", stage: "image",
    title: "More than one extended partition",
    message: "the MBR has {count} extended partitions (slots {slots}); only the first is followed",
    remedy: "keep one extended partition: rewrite the table with `sfdisk`",
    explain: "DOS and Windows support only one extended partition per disk.",
  },
  {
    code: "MBR_DISK_OVER_2TIB", severity: "warning", stage: "image",
    title: "MBR disk larger than 2 TiB",
    message: "the disk has {sectors} sectors but an MBR can address only {limit} sectors; the space beyond is unusable",
    remedy: "convert the disk to GPT (`sgdisk -g IMAGE` on a raw copy, then boot it as Generation 2) or shrink it with `qemu-img resize --shrink`",
    explain: "MBR partition entries hold 32-bit sector numbers: 2 TiB with 512-byte sectors. Hyper-V Generation 1 OS disks "
      + "are limited to 2 TiB for the same reason.",
  },
]);

export interface Chs { cylinder: number; head: number; sector: number }

export interface MbrEntry {
  /** 0-based slot in the table. */
  slot: number;
  status: number;
  type: number;
  startLba: number;
  sectorCount: number;
  chsStart: Chs;
  chsEnd: Chs;
}

export interface MbrLogical {
  /** Linux partition number: 5, 6, ... in chain order. */
  index: number;
  /** The EBR holding this entry. */
  ebrLba: number;
  /** Entry with startLba made absolute (EBR LBA + relative start). */
  entry: MbrEntry;
}

export interface MbrInfo {
  signature: number;
  bootCodeEmpty: boolean;
  hasBootSignature: boolean;
  /** Every boot indicator is 0x00 or 0x80 (Linux refuses the table otherwise). */
  statusBytesValid: boolean;
  /** All four slots, empty ones included. */
  entries: MbrEntry[];
  extended?: { slot: number; startLba: number; sectorCount: number };
  logical: MbrLogical[];
  /** EBR LBAs visited, in order. */
  ebrChain: number[];
}

function chs(b: Buffer, o: number): Chs {
  return { head: b[o], sector: b[o + 1] & 0x3f, cylinder: ((b[o + 1] & 0xc0) << 2) | b[o + 2] };
}

function parseEntries(sec: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const o = MBR_TABLE + i * MBR_ENTRY_SIZE;
    out.push({
      slot: i, status: sec[o], type: sec[o + 4], startLba: sec.readUInt32LE(o + 8), sectorCount: sec.readUInt32LE(o + 12),
      chsStart: chs(sec, o + 1), chsEnd: chs(sec, o + 5),
    });
  }
  return out;
}

export const entryUsed = (e: MbrEntry): boolean => e.type !== 0 && e.sectorCount !== 0;

/** Parse LBA 0. Pure: no chain walk. */
export function parseMbr(sec: Buffer): MbrInfo {
  let bootCodeEmpty = true;
  for (let i = 0; i < MBR_BOOT_CODE_BYTES; i++) if (sec[i] !== 0) { bootCodeEmpty = false; break; }
  const entries = parseEntries(sec);
  return {
    signature: sec.readUInt32LE(MBR_DISK_SIGNATURE),
    bootCodeEmpty,
    hasBootSignature: sec[MBR_SIGNATURE] === 0x55 && sec[MBR_SIGNATURE + 1] === 0xaa,
    statusBytesValid: entries.every((e) => e.status === 0 || e.status === MBR_STATUS_ACTIVE),
    entries,
    logical: [],
    ebrChain: [],
  };
}

/**
 * Read LBA 0 and walk the first extended partition's EBR chain. A loop, an over-long chain or a
 * bad EBR is a finding that stops the walk (the partitions found so far are kept): the table is
 * damaged but what precedes the damage is what an OS would also see. Never throws for bad bytes.
 */
export function readMbr(dev: BlockDevice, findings: Finding[]): MbrInfo {
  const mbr = parseMbr(Buffer.from(dev.read(0, 1)));
  const ext = mbr.entries.filter((e) => entryUsed(e) && MBR_EXTENDED_TYPES.has(e.type));
  if (ext.length > 1) {
    findings.push(finding("MBR_MULTIPLE_EXTENDED", { count: ext.length, slots: ext.map((e) => e.slot + 1).join(", ") }));
  }
  if (ext.length > 0) {
    const e = ext[0];
    mbr.extended = { slot: e.slot, startLba: e.startLba, sectorCount: e.sectorCount };
    walkEbrChain(dev, mbr, findings);
  }
  return mbr;
}

function walkEbrChain(dev: BlockDevice, mbr: MbrInfo, findings: Finding[]): void {
  const { startLba: extStart, sectorCount: extCount } = mbr.extended!;
  const extEnd = extStart + extCount;             // exclusive
  const seen = new Set<number>();
  let ebr = extStart;
  for (;;) {
    if (seen.has(ebr)) {
      findings.push(finding("MBR_EBR_LOOP", { lba: ebr, count: seen.size }, { chain: mbr.ebrChain.slice(0, 16) }));
      return;
    }
    if (seen.size >= MAX_EBR_CHAIN) {
      findings.push(finding("MBR_EBR_CHAIN_TOO_LONG", { limit: MAX_EBR_CHAIN, lba: ebr }));
      return;
    }
    if (ebr >= dev.sectorCount) {
      findings.push(finding("MBR_EBR_BAD", { lba: ebr, reason: `it lies past the last sector ${dev.sectorCount - 1}` }));
      return;
    }
    if (ebr < extStart || ebr >= extEnd) {
      findings.push(finding("MBR_EBR_BAD", { lba: ebr, reason: `it lies outside the extended partition (LBA ${extStart}..${extEnd - 1})` }));
      return;
    }
    seen.add(ebr);
    mbr.ebrChain.push(ebr);
    const sec = Buffer.from(dev.read(ebr, 1));
    if (sec[MBR_SIGNATURE] !== 0x55 || sec[MBR_SIGNATURE + 1] !== 0xaa) {
      findings.push(finding("MBR_EBR_BAD", { lba: ebr, reason: "no 0x55AA signature" }));
      return;
    }
    let next: number | undefined;
    for (const e of parseEntries(sec)) {
      if (!entryUsed(e)) continue;
      if (MBR_EXTENDED_TYPES.has(e.type)) {
        if (next === undefined) next = extStart + e.startLba;   // links are relative to the extended partition
        continue;
      }
      const index = 5 + mbr.logical.length;
      const abs = { ...e, startLba: ebr + e.startLba };        // data entries are relative to their EBR
      mbr.logical.push({ index, ebrLba: ebr, entry: abs });
      if (abs.startLba < extStart || abs.startLba + abs.sectorCount > extEnd) {
        findings.push(finding("MBR_LOGICAL_OUTSIDE_EXTENDED", {
          index, start: abs.startLba, sectors: abs.sectorCount, extStart, extEnd: extEnd - 1,
        }));
      }
    }
    if (next === undefined) return;
    ebr = next;
  }
}

/** Active-flag checks for a disk that boots through its MBR (Generation 1). */
export function checkActiveFlags(mbr: MbrInfo, findings: Finding[]): void {
  const used = mbr.entries.filter(entryUsed);
  if (used.length === 0) return;
  const active = used.filter((e) => e.status === MBR_STATUS_ACTIVE);
  if (active.length === 0) findings.push(finding("MBR_NO_ACTIVE_PARTITION", { count: used.length }));
  if (active.length > 1) {
    findings.push(finding("MBR_MULTIPLE_ACTIVE", { count: active.length, partitions: active.map((e) => e.slot + 1).join(", ") }));
  }
}

/** 2^32 sectors: the most an MBR entry can address. */
export const MBR_MAX_SECTORS = 2 ** 32;

export function checkMbrCapacity(dev: BlockDevice, findings: Finding[]): void {
  if (dev.sectorCount > MBR_MAX_SECTORS) {
    findings.push(finding("MBR_DISK_OVER_2TIB", { sectors: dev.sectorCount, limit: MBR_MAX_SECTORS }));
  }
}
