// A disk's partitioning as firmware and OSes see it: MBR, GPT behind a protective MBR (UEFI 2.10
// §5.2.3), hybrid MBRs, their mutual consistency, overlaps and out-of-disk partitions, and each
// partition's content by signature. Bad tables are findings, never exceptions.
import type { BlockDevice } from "./block.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import {
  checkActiveFlags, checkMbrCapacity, entryUsed, mbrTypeName, mbrTypeText, parseMbr, readMbr,
  MBR_EXTENDED_TYPES, MBR_STATUS_ACTIVE, MBR_TYPE_GPT_PROTECTIVE, type MbrEntry, type MbrInfo,
} from "./mbr.ts";
import { gptSignatureAt, gptTypeName, readGpt, readGptHeader, type GptInfo } from "./gpt.ts";
import { identifyContent, type Content } from "./fs-identify.ts";

export type { Content } from "./fs-identify.ts";

export interface Partition {
  /** Linux numbering: MBR 1-4 by slot, 5.. logical in chain order; GPT entry index + 1. */
  index: number;
  scheme: "mbr" | "gpt";
  startLba: number;
  sectorCount: number;
  /** "0x83" for MBR, the type GUID for GPT. */
  type: string;
  typeName: string;
  /** MBR boot indicator 0x80; GPT attribute bit 2 (legacy BIOS bootable). */
  bootable?: boolean;
  /** MBR: the extended container itself / a partition inside it. */
  extended?: boolean;
  logical?: boolean;
  guid?: string;
  name?: string;
  attributes?: string;
  attributeFlags?: string[];
  content: Content;
}

export interface Layout {
  partitioning: "mbr" | "gpt" | "hybrid" | "none";
  sectorSize: number;
  sectorCount: number;
  mbr?: MbrInfo;
  gpt?: GptInfo;
  partitions: Partition[];
  /** What the whole disk holds when it has no partition table (a "superfloppy" filesystem, a whole-disk PV). */
  wholeDisk?: Content;
  findings: Finding[];
}

/** Filesystems whose first sector is a boot sector with 0x55AA: at LBA 0 they are a "superfloppy", not an MBR. */
const BOOT_SECTOR_KINDS = new Set(["fat12", "fat16", "fat32", "exfat", "ntfs", "refs", "bitlocker"]);
/** Overlap findings beyond this many are summarised in the last one's evidence. */
const MAX_OVERLAP_FINDINGS = 16;
/** 0xFFFFFFFF: the protective MBR's SizeInLBA for disks with more sectors than an MBR counts. */
const PMBR_MAX_SIZE = 0xffffffff;

defineFindings([
  {
    code: "PART_NONE", severity: "warning", stage: "image",
    title: "No partition table",
    message: "the disk has no partition table ({reason}); the whole disk holds: {content}",
    remedy: "partition the disk (`sfdisk` / `sgdisk`) or check that the right file was converted",
    explain: "Neither an MBR (0x55AA in LBA 0 with sane boot indicators) nor a GPT was found. Hyper-V firmware "
      + "boots from partitioned disks; a whole-disk filesystem or LVM PV is usually a data disk.",
  },
  {
    code: "PART_PAST_END", severity: "error", stage: "image",
    title: "Partition extends past the end of the disk",
    message: "partition {index} (LBA {start}, {sectors} sectors) ends at LBA {end}, past the disk's last LBA {last}",
    remedy: "grow the disk back to at least {bytes} bytes (`qemu-img resize IMAGE {bytes}`) or fix the table with `sfdisk`/`sgdisk`",
    explain: "The image is smaller than its partition table says: often a truncated copy or a disk shrunk after "
      + "partitioning. The data past the end is missing; OSes refuse or truncate the partition.",
  },
  {
    code: "PART_OVERLAP", severity: "error", stage: "image",
    title: "Partitions overlap",
    message: "partitions {a} (LBA {aStart}..{aEnd}) and {b} (LBA {bStart}..{bEnd}) overlap by {sectors} sectors",
    remedy: "fix the partition table with `sfdisk` (dump with `sfdisk -d IMAGE`) or `sgdisk`; writing to one destroys the other",
    explain: "Two partitions claim the same sectors. Tools and OSes disagree about such tables and filesystems corrupt each other.",
  },
  {
    code: "PART_OVERLAPS_MBR", severity: "error", stage: "image",
    title: "Partition covers the MBR",
    message: "MBR partition {index} starts at LBA {start} and covers the partition table in LBA 0",
    remedy: "recreate the partition from LBA 2048 with `sfdisk`",
    explain: "A partition that includes LBA 0 overwrites the partition table when its filesystem is written.",
  },
  {
    code: "GPT_PROTECTIVE_MBR_MISSING", severity: "error", stage: "image",
    title: "GPT disk without a protective MBR",
    message: "a valid GPT is at LBA 1 but LBA 0 holds no protective MBR entry (type 0xEE){detail}; UEFI firmware and Linux ignore the GPT",
    remedy: "`sgdisk -e IMAGE` writes a fresh protective MBR (on a raw copy); check with `sgdisk -v IMAGE`",
    explain: "UEFI (EDK2's PartitionDxe, so Hyper-V Generation 2) only reads the GPT when LBA 0 has a 0xEE entry starting at LBA 1.",
  },
  {
    code: "GPT_PMBR_BAD_START", severity: "error", stage: "image",
    title: "Protective MBR entry does not start at LBA 1",
    message: "the protective MBR's 0xEE entry starts at LBA {start}, not 1; UEFI firmware will not read the GPT",
    remedy: "`sgdisk -e IMAGE` rewrites the protective MBR (on a raw copy)",
    explain: "EDK2 (Hyper-V Generation 2) accepts a GPT only when an 0xEE entry has StartingLBA 1 (UEFI 2.10 Table 5-4).",
  },
  {
    code: "GPT_PMBR_SIZE", severity: "info", stage: "image",
    title: "Protective MBR does not cover the disk",
    message: "the protective MBR's 0xEE entry covers {size} sectors; the disk needs {expected} (was it resized?)",
    remedy: "`sgdisk -e IMAGE` rewrites the protective MBR and moves the backup GPT (on a raw copy)",
    explain: "UEFI 2.10 Table 5-4 says SizeInLBA is the disk size minus one, or 0xFFFFFFFF. Most firmware tolerates a mismatch.",
  },
  {
    code: "GPT_HYBRID_MBR", severity: "warning", stage: "image",
    title: "Hybrid MBR",
    message: "the protective MBR also lists {count} ordinary partitions ({types}): a hybrid MBR",
    remedy: "replace it by a plain protective MBR: `gdisk IMAGE`, recovery menu 'r', then 'n' and 'w' (on a raw copy)",
    explain: "Hybrid MBRs let BIOS software see some GPT partitions. Windows refuses them, and BIOS and UEFI "
      + "boots may see different partitions.",
  },
  {
    code: "GPT_HYBRID_MISMATCH", severity: "error", stage: "image",
    title: "Hybrid MBR entry disagrees with the GPT",
    message: "hybrid MBR entry {slot} (LBA {start}, {sectors} sectors) matches no GPT partition",
    remedy: "rebuild the hybrid MBR from the GPT with `gdisk IMAGE` (recovery menu 'h') or drop it ('n')",
    explain: "BIOS software reads the MBR entry, UEFI the GPT: when they disagree the two boots see different disks.",
  },
  {
    code: "GPT_LEFTOVER_WITH_MBR", severity: "warning", stage: "image",
    title: "Stale GPT behind an MBR",
    message: "the disk has an MBR partition table and also a valid GPT at LBA 1 (disk GUID {diskGuid}, {count} partitions); tools disagree about which one is real",
    remedy: "`sgdisk --zap IMAGE` removes the GPT and keeps the MBR (on a raw copy)",
    explain: "An old GPT left after re-partitioning with an MBR tool. Firmware uses the MBR; some installers and "
      + "partitioning tools pick the GPT.",
  },
  {
    code: "GPT_SECTOR_SIZE_MISMATCH", severity: "error", stage: "image",
    title: "GPT written for another sector size",
    message: "a GPT header sits at byte {offset}, where a disk with {otherSize}-byte sectors keeps it, but this disk has {sectorSize}-byte logical sectors: firmware finds no GPT",
    remedy: "convert again keeping {otherSize}-byte logical sectors (e.g. `New-VHD -LogicalSectorSizeBytes {otherSize}` / `qemu-img convert -O vhdx`)",
    explain: "GPT locations are in logical sectors. A disk partitioned with 512-byte sectors and presented with 4096-byte "
      + "sectors (or the reverse) has its GPT at the wrong byte offset.",
  },
]);

/** Codes meaning the table itself is malformed: `inspect`/`read` may refuse such a disk outright. */
export const MALFORMED_LAYOUT_CODES = new Set([
  "MBR_EBR_LOOP", "MBR_EBR_CHAIN_TOO_LONG", "MBR_EBR_BAD", "MBR_LOGICAL_OUTSIDE_EXTENDED", "GPT_INVALID",
  "GPT_ENTRY_BAD_RANGE", "GPT_PART_OUTSIDE_USABLE", "GPT_LAST_USABLE_PAST_END", "PART_PAST_END", "PART_OVERLAP",
  "PART_OVERLAPS_MBR",
]);

/** The first finding that says the partition table is malformed, if any. */
export function malformedLayout(layout: Layout): Finding | undefined {
  return layout.findings.find((f) => MALFORMED_LAYOUT_CODES.has(f.code));
}

/**
 * Read the partitioning of `dev`. Throws only what the device throws (container I/O errors);
 * anything wrong with the tables themselves is a finding in `layout.findings` (stage "image").
 */
export function readLayout(dev: BlockDevice): Layout {
  const findings: Finding[] = [];
  const layout: Layout = { partitioning: "none", sectorSize: dev.sectorSize, sectorCount: dev.sectorCount, partitions: [], findings };
  if (dev.sectorCount < 1) {
    findings.push(finding("PART_NONE", { reason: "the disk is empty", content: "nothing" }));
    return layout;
  }
  const lba0 = parseMbr(Buffer.from(dev.read(0, 1)));
  const isMbr = lba0.hasBootSignature && lba0.statusBytesValid;
  const used = isMbr ? lba0.entries.filter(entryUsed) : [];
  const pmbr = used.filter((e) => e.type === MBR_TYPE_GPT_PROTECTIVE);

  if (pmbr.length > 0) {
    layout.mbr = lba0;
    const others = used.filter((e) => e.type !== MBR_TYPE_GPT_PROTECTIVE);
    layout.partitioning = others.length ? "hybrid" : "gpt";
    checkProtective(dev, pmbr, others.length > 0, findings);
    layout.gpt = readGpt(dev, findings);
    if (!layout.gpt) checkSectorSizeMismatch(dev, findings);
    if (others.length) {
      findings.push(finding("GPT_HYBRID_MBR", { count: others.length, types: others.map((e) => mbrTypeText(e.type)).join(", ") }));
      if (layout.gpt) checkHybrid(others, layout.gpt, findings);
    }
    layout.partitions = layout.gpt ? gptPartitions(layout.gpt) : others.map((e) => mbrPartition(e, e.slot + 1));
  } else if (isMbr && used.length > 0) {
    layout.mbr = readMbr(dev, findings);
    layout.partitioning = "mbr";
    layout.partitions = mbrPartitions(layout.mbr);
    checkActiveFlags(layout.mbr, findings);
    checkMbrCapacity(dev, findings);
    const g = readGptHeader(dev, 1);
    if (g.ok) {
      const gi = readGpt(dev, []);
      findings.push(finding("GPT_LEFTOVER_WITH_MBR", { diskGuid: g.header.diskGuid, count: gi?.entries.length ?? 0 }));
    }
  } else if (readGptHeader(dev, 1).ok) {
    if (isMbr) layout.mbr = lba0;
    layout.partitioning = "gpt";
    findings.push(finding("GPT_PROTECTIVE_MBR_MISSING", {
      detail: lba0.hasBootSignature ? (isMbr ? " (all four MBR entries are empty)" : " (invalid boot indicators)") : " (no 0x55AA signature)",
    }));
    layout.gpt = readGpt(dev, findings);
    layout.partitions = layout.gpt ? gptPartitions(layout.gpt) : [];
  } else {
    if (isMbr) layout.mbr = lba0;
    checkSectorSizeMismatch(dev, findings);
    layout.wholeDisk = identify(dev, 0, dev.sectorCount);
    const bootSector = BOOT_SECTOR_KINDS.has(layout.wholeDisk.kind);
    const reason = !lba0.hasBootSignature ? "no 0x55AA signature in LBA 0"
      : bootSector ? `LBA 0 is a ${layout.wholeDisk.kind} boot sector, not an MBR`
      : !lba0.statusBytesValid ? "LBA 0 has a 0x55AA signature but invalid boot indicators"
      : "the MBR lists no partitions";
    findings.push(finding("PART_NONE", { reason, content: layout.wholeDisk.kind }));
  }

  checkBounds(dev, layout, findings);
  for (const p of layout.partitions) {
    if (p.extended) { p.content = { kind: "extended" }; continue; }
    if (p.sectorCount === 0) continue;                         // a bad GPT range: nothing to probe
    p.content = identify(dev, p.startLba, p.sectorCount);
  }
  return layout;
}

function identify(dev: BlockDevice, start: number, count: number): Content {
  try {
    return identifyContent(dev, start, count);
  } catch (e) {
    // Buffer bounds in a signature probe (a bug, or bytes we did not foresee) must not fail the whole layout.
    if (e instanceof RangeError) return { kind: "unknown", details: { probeError: e.message } };
    throw e;
  }
}

const placeholder = (): Content => ({ kind: "unknown" });

function mbrPartition(e: MbrEntry, index: number, logical = false): Partition {
  const p: Partition = {
    index, scheme: "mbr", startLba: e.startLba, sectorCount: e.sectorCount, type: mbrTypeText(e.type),
    typeName: mbrTypeName(e.type), bootable: e.status === MBR_STATUS_ACTIVE, content: placeholder(),
  };
  if (MBR_EXTENDED_TYPES.has(e.type) && !logical) p.extended = true;
  if (logical) p.logical = true;
  return p;
}

function mbrPartitions(mbr: MbrInfo): Partition[] {
  return [
    ...mbr.entries.filter(entryUsed).map((e) => mbrPartition(e, e.slot + 1)),
    ...mbr.logical.map((l) => mbrPartition(l.entry, l.index, true)),
  ];
}

function gptPartitions(gpt: GptInfo): Partition[] {
  return gpt.entries.map((e) => ({
    index: e.index, scheme: "gpt" as const, startLba: e.startLba,
    sectorCount: e.endLba >= e.startLba ? e.endLba - e.startLba + 1 : 0,
    type: e.typeGuid, typeName: gptTypeName(e.typeGuid), bootable: e.attributeFlags.includes("legacy-bios-bootable"),
    guid: e.guid, name: e.name, attributes: e.attributes, attributeFlags: e.attributeFlags, content: placeholder(),
  }));
}

function checkProtective(dev: BlockDevice, pmbr: MbrEntry[], hybrid: boolean, findings: Finding[]): void {
  const e = pmbr.find((x) => x.startLba === 1);
  if (!e) {
    findings.push(finding("GPT_PMBR_BAD_START", { start: pmbr[0].startLba }));
    return;
  }
  if (hybrid) return;                     // a hybrid's 0xEE entry covers only what the other entries leave
  const expected = Math.min(dev.sectorCount - 1, PMBR_MAX_SIZE);
  if (e.sectorCount !== expected && e.sectorCount !== PMBR_MAX_SIZE) {
    findings.push(finding("GPT_PMBR_SIZE", { size: e.sectorCount, expected }));
  }
}

function checkHybrid(others: MbrEntry[], gpt: GptInfo, findings: Finding[]): void {
  for (const e of others) {
    const match = gpt.entries.some((g) => g.startLba === e.startLba && g.endLba - g.startLba + 1 === e.sectorCount);
    if (!match) findings.push(finding("GPT_HYBRID_MISMATCH", { slot: e.slot + 1, start: e.startLba, sectors: e.sectorCount }));
  }
}

function checkSectorSizeMismatch(dev: BlockDevice, findings: Finding[]): void {
  const otherSize = dev.sectorSize === 512 ? 4096 : 512;
  if (gptSignatureAt(dev, otherSize) && !gptSignatureAt(dev, dev.sectorSize)) {
    findings.push(finding("GPT_SECTOR_SIZE_MISMATCH", { offset: otherSize, otherSize, sectorSize: dev.sectorSize }));
  }
}

/** Past-the-end, overlapping and LBA-0 partitions. Bounded: at most MAX_OVERLAP_FINDINGS pair findings. */
function checkBounds(dev: BlockDevice, layout: Layout, findings: Finding[]): void {
  const parts = layout.partitions.filter((p) => p.sectorCount > 0);
  const last = dev.sectorCount - 1;
  for (const p of parts) {
    const end = p.startLba + p.sectorCount - 1;
    if (end > last) {
      findings.push(finding("PART_PAST_END", {
        index: p.index, start: p.startLba, sectors: p.sectorCount, end, last, bytes: (end + 1) * dev.sectorSize,
      }));
    }
    if (p.scheme === "mbr" && p.startLba === 0) findings.push(finding("PART_OVERLAPS_MBR", { index: p.index, start: 0 }));
  }
  const sorted = [...parts].sort((a, b) => a.startLba - b.startLba || a.index - b.index);
  let reported = 0, total = 0;
  let lastOverlap: Finding | undefined;
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i];
    const aEnd = a.startLba + a.sectorCount - 1;
    for (let j = i + 1; j < sorted.length && sorted[j].startLba <= aEnd; j++) {
      const b = sorted[j];
      if ((a.extended && b.logical) || (b.extended && a.logical)) continue;   // logicals live inside the container
      const bEnd = b.startLba + b.sectorCount - 1;
      total++;
      if (reported >= MAX_OVERLAP_FINDINGS) continue;
      reported++;
      lastOverlap = finding("PART_OVERLAP", {
        a: a.index, aStart: a.startLba, aEnd, b: b.index, bStart: b.startLba, bEnd,
        sectors: Math.min(aEnd, bEnd) - b.startLba + 1,
      });
      findings.push(lastOverlap);
    }
  }
  if (lastOverlap && total > reported) lastOverlap.evidence.moreOverlapsNotReported = total - reported;
}
