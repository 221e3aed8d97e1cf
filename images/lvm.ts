// LVM2 physical volumes and logical volumes as block devices (lvm2 lib/label/label.h label_header,
// lib/format_text/layout.h pv_header / mda_header / raw_locn, text metadata in lvm-meta.ts).
import { corrupt, hex, ImageError, overLimit, unsupported } from "./errors.ts";
import { readBytesVia, type BlockDevice, type ContainerInfo, type ReadRecord } from "./block.ts";
import type { Extent } from "./fs.ts";
import { readLayout } from "./layout.ts";
import { MAX_READ_SECTORS, MAX_LVM_DISK_AREAS as MAX_DISK_AREAS, MAX_LVM_PVS as MAX_PVS, MAX_LVM_LVS as MAX_LVS, MAX_LVM_SEGMENTS as MAX_SEGMENTS, MAX_LVM_STRIPES as MAX_STRIPES, MAX_LVM_READ_CHUNK as MAX_LV_CHUNK } from "./limits.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { list, num, optSub, parseLvmText, sections, str, sub, type LvmSection } from "./lvm-meta.ts";

/** label.h: the label lives in one of the first 4 sectors, "LABELONE" then "LVM2 001". */
const LABEL_ID = "LABELONE";
const LVM2_LABEL_TYPE = "LVM2 001";
const LABEL_SCAN_SECTORS = 4;
const LABEL_SIZE = 512;
/** crc.h INITIAL_CRC; the CRC covers the label from offset_xl (byte 20) to the sector end. */
const INITIAL_CRC = 0xf597a6cf;
const LABEL_CRC_FROM = 20;
/** layout.h: mda_header is 512 bytes: checksum, magic, version 1, start, size, raw_locn[] at 40. */
const MDA_HEADER_SIZE = 512;
const FMTT_MAGIC = Buffer.from(" LVM2 x[5A%r0N*>", "latin1");
const FMTT_VERSION = 1;
const RAW_LOCN_OFF = 40;
const RAW_LOCN_IGNORED = 0x1;
/** ID_LEN: PV/VG/LV UUIDs are 32 characters, shown with dashes in 6-4-4-4-4-4-6 groups. */
const ID_LEN = 32;
/** LVM counts sizes in 512-byte sectors whatever the disk's sector size. */
const LVM_SECTOR = 512;

defineFindings([
  {
    code: "LVM_PV_MISSING", severity: "error", stage: "image",
    title: "LVM volume group spans a PV that is not on this disk",
    message: "volume group {vg} needs PV {pv} ({device}), which is not on this disk; LVs {lvs} cannot be assembled",
    remedy: "convert and attach every disk of the volume group, or move the data first (`pvmove`, `vgreduce {vg} --removemissing` in the source VM)",
    explain: "The VG's metadata lists physical volumes that none of the disk's partitions carry. The LVs that use them "
      + "are incomplete: a root LV among them means the guest cannot find its root filesystem.",
  },
  {
    code: "LVM_PV_UNREADABLE", severity: "warning", stage: "image",
    title: "LVM physical volume could not be read",
    message: "LVM PV at LBA {lba}: {error}",
    remedy: "check the PV in the source VM with `pvck --dump headers DEVICE` and `vgck`",
    explain: "A partition carries an LVM label but its PV header, metadata area or metadata text is damaged.",
  },
  {
    code: "LVM_METADATA_CHECKSUM", severity: "warning", stage: "image",
    title: "LVM metadata checksum mismatch",
    message: "LVM PV at LBA {lba}: {what} checksum {stored}, computed {computed}",
    remedy: "run `vgck --updatemetadata VG` in the source VM",
    explain: "LVM refuses metadata whose checksum does not match and falls back to another copy, if any.",
  },
  {
    code: "LVM_SEGMENT_UNSUPPORTED", severity: "warning", stage: "image",
    title: "LV segment type not read",
    message: "LV {vg}/{lv} has a {type} segment; bootgate reads linear and striped LVs only",
    remedy: "nothing to do for booting unless this LV holds / or /boot; `lvconvert` can turn mirrors into linear LVs",
    explain: "RAID, thin, cache and snapshot LVs need more than a sector map; bootgate does not assemble them.",
  },
]);

export interface DiskArea { offset: number; size: number }

export interface PhysicalVolume {
  /** PV UUID as stored: 32 characters without dashes. */
  uuid: string;
  startLba: number;
  sectorCount: number;
  /** Linux partition number, 0 for a whole-disk PV. */
  partition: number;
  deviceSize: number;
  dataAreas: DiskArea[];
  metadataAreas: DiskArea[];
  /** The current metadata text of this PV's first usable metadata area. */
  metadata?: { text: string; seqno: number; vgName: string };
}

export interface LvStripe { pv: string; startExtent: number }
export interface LvSegment { startExtent: number; extentCount: number; type: string; stripeSize: number; stripes: LvStripe[] }

export interface LogicalVolumeInfo {
  vg: string; name: string; id: string; status: string[]; visible: boolean;
  segments: LvSegment[]; sizeBytes: number;
  /** /dev/mapper/VG-LV with '-' doubled inside names (device-mapper's dm_build_dm_name). */
  mapperPath: string;
  devPath: string;
  /** PV keys (pv0...) this LV uses that are not on the disk. */
  missingPvs: string[];
  /** A segment type we cannot map, if any. */
  unsupportedType?: string;
}

export interface VgPv { key: string; id: string; deviceHint?: string; peStart: number; peCount: number; pv?: PhysicalVolume }

export interface VolumeGroup {
  name: string; id: string; seqno: number;
  /** Extent size in 512-byte sectors. */
  extentSize: number;
  pvs: VgPv[];
  lvs: LogicalVolumeInfo[];
}

export interface LvmScan { pvs: PhysicalVolume[]; vgs: VolumeGroup[]; findings: Finding[] }

/** lvm2's calc_crc: reflected CRC-32 (0xEDB88320) from INITIAL_CRC, no final inversion. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function lvmCrc(b: Uint8Array, initial = INITIAL_CRC): number {
  let c = initial >>> 0;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

const u64le = (b: Buffer, p: number, what: string): number => {
  const v = b.readUInt32LE(p) + b.readUInt32LE(p + 4) * 2 ** 32;
  if (!Number.isSafeInteger(v)) throw corrupt("E_LVM_PV", `${what}: 64-bit value out of range at byte ${p}`);
  return v;
};

/** "abcdef..." (32) -> "abcdef-ghij-...-uvwxyz" (6-4-4-4-4-4-6), as LVM prints ids. */
export function formatLvmId(id: string): string {
  const s = id.replace(/-/g, "");
  if (s.length !== ID_LEN) return id;
  return [s.slice(0, 6), s.slice(6, 10), s.slice(10, 14), s.slice(14, 18), s.slice(18, 22), s.slice(22, 26), s.slice(26)].join("-");
}

/** device-mapper name of an LV: '-' inside the VG and LV names is doubled, then joined by '-'. */
export function mapperName(vg: string, lv: string): string {
  return `${vg.replace(/-/g, "--")}-${lv.replace(/-/g, "--")}`;
}

/**
 * Read the PV label in sectors 0..3 of [startLba, +sectorCount): undefined when there is none,
 * an ImageError (E_LVM_PV) when a label is present but damaged.
 */
export function readPvLabel(disk: BlockDevice, startLba: number, sectorCount: number, partition = 0,
                            notes: Finding[] = []): PhysicalVolume | undefined {
  const ss = disk.sectorSize;
  const partBytes = Math.min(sectorCount, disk.sectorCount - startLba) * ss;
  if (partBytes < LABEL_SCAN_SECTORS * LABEL_SIZE) return undefined;
  const head = disk.readBytes(startLba * ss, LABEL_SCAN_SECTORS * LABEL_SIZE);
  let at = -1;
  for (let s = 0; s < LABEL_SCAN_SECTORS; s++) {
    if (head.toString("latin1", s * LABEL_SIZE, s * LABEL_SIZE + 8) === LABEL_ID) { at = s; break; }
  }
  if (at < 0) return undefined;
  const where = `LVM label at LBA ${startLba} sector ${at}`;
  const lab = head.subarray(at * LABEL_SIZE, (at + 1) * LABEL_SIZE);
  const sectorXl = u64le(lab, 8, where);
  const crc = lab.readUInt32LE(16), offset = lab.readUInt32LE(20);
  const type = lab.toString("latin1", 24, 32);
  if (sectorXl !== at) throw corrupt("E_LVM_PV", `${where}: records sector ${sectorXl}`);
  if (type !== LVM2_LABEL_TYPE) throw unsupported("E_LVM_PV", `${where}: label type ${JSON.stringify(type)}, expected "${LVM2_LABEL_TYPE}"`);
  const computed = lvmCrc(lab.subarray(LABEL_CRC_FROM));
  if (computed !== crc) throw corrupt("E_LVM_PV", `${where}: label checksum ${hex(crc)}, computed ${hex(computed)}`);
  if (offset < 32 || offset + ID_LEN + 8 + 16 > LABEL_SIZE) throw corrupt("E_LVM_PV", `${where}: PV header offset ${offset}`);
  // pv_header: uuid[32], device_size, then two lists of {offset, size} each ended by a zero pair.
  let p = offset;
  const uuid = lab.toString("latin1", p, p + ID_LEN);
  if (!/^[A-Za-z0-9!#]{32}$/.test(uuid)) throw corrupt("E_LVM_PV", `${where}: PV UUID ${JSON.stringify(uuid)} is not 32 id characters`);
  p += ID_LEN;
  const deviceSize = u64le(lab, p, where);
  p += 8;
  const areas = (): DiskArea[] => {
    const out: DiskArea[] = [];
    while (true) {
      if (p + 16 > LABEL_SIZE) throw corrupt("E_LVM_PV", `${where}: disk area list runs past the label sector`);
      const o = u64le(lab, p, where), s = u64le(lab, p + 8, where);
      p += 16;
      if (o === 0) return out;
      if (out.length >= MAX_DISK_AREAS) throw overLimit("E_LVM_PV", `${where}: more than ${MAX_DISK_AREAS} disk areas`);
      if (o + s > partBytes) throw corrupt("E_LVM_PV", `${where}: area at byte ${o} (+${s}) lies past the ${partBytes}-byte partition`);
      out.push({ offset: o, size: s });
    }
  };
  const dataAreas = areas();
  const metadataAreas = areas();
  const pv: PhysicalVolume = { uuid, startLba, sectorCount, partition, deviceSize, dataAreas, metadataAreas };
  for (const mda of metadataAreas) {
    const m = readMetadataArea(disk, pv, mda, notes);
    if (m && (!pv.metadata || m.seqno > pv.metadata.seqno)) pv.metadata = m;
  }
  return pv;
}

/** The current metadata text of one metadata area (mda_header + raw_locn[0], wrapping past the end). */
function readMetadataArea(disk: BlockDevice, pv: PhysicalVolume, mda: DiskArea, notes: Finding[]): PhysicalVolume["metadata"] {
  const ss = disk.sectorSize;
  const where = `LVM metadata area at byte ${mda.offset} of the PV at LBA ${pv.startLba}`;
  if (mda.size < MDA_HEADER_SIZE * 2) throw corrupt("E_LVM_MDA", `${where}: ${mda.size} bytes is too small`);
  const base = pv.startLba * ss + mda.offset;
  const h = disk.readBytes(base, MDA_HEADER_SIZE);
  if (!h.subarray(4, 20).equals(FMTT_MAGIC)) throw corrupt("E_LVM_MDA", `${where}: bad magic ${JSON.stringify(h.toString("latin1", 4, 20))}`);
  const stored = h.readUInt32LE(0), computed = lvmCrc(h.subarray(4));
  if (stored !== computed) {
    notes.push(finding("LVM_METADATA_CHECKSUM", { lba: pv.startLba, what: "metadata area header", stored: hex(stored), computed: hex(computed) }));
  }
  const version = h.readUInt32LE(20);
  if (version !== FMTT_VERSION) throw unsupported("E_LVM_MDA", `${where}: version ${version}`);
  const start = u64le(h, 24, where), size = u64le(h, 32, where);
  if (start !== mda.offset || size !== mda.size) throw corrupt("E_LVM_MDA", `${where}: header says start ${start}, size ${size}`);
  const off = u64le(h, RAW_LOCN_OFF, where), len = u64le(h, RAW_LOCN_OFF + 8, where);
  const crc = h.readUInt32LE(RAW_LOCN_OFF + 16), flags = h.readUInt32LE(RAW_LOCN_OFF + 20);
  if (off === 0 || (flags & RAW_LOCN_IGNORED)) return undefined;
  if (off < MDA_HEADER_SIZE || off >= size || len === 0 || len > size - MDA_HEADER_SIZE) {
    throw corrupt("E_LVM_MDA", `${where}: metadata at offset ${off} (+${len}) does not fit the ${size}-byte area`);
  }
  // The text may wrap from the area's end to just after its header.
  const first = Math.min(len, size - off);
  const parts = [disk.readBytes(base + off, first)];
  if (first < len) parts.push(disk.readBytes(base + MDA_HEADER_SIZE, len - first));
  const raw = Buffer.concat(parts);
  const tcrc = lvmCrc(raw);
  if (tcrc !== crc) throw corrupt("E_LVM_METADATA", `${where}: metadata text checksum ${hex(crc)}, computed ${hex(tcrc)}`);
  const text = raw.toString("utf8").replace(/\0+$/, "");
  const root = parseLvmText(text);
  const vgs = sections(root);
  if (vgs.length !== 1) throw corrupt("E_LVM_METADATA", `${where}: ${vgs.length} volume groups in one metadata text`);
  const [vgName, vg] = vgs[0];
  return { text, seqno: num(vg, "seqno", `VG ${vgName}`), vgName };
}

/** Find every PV on the disk's partitions (or the whole disk) and assemble volume groups. */
export function scanLvm(disk: BlockDevice): LvmScan {
  const findings: Finding[] = [];
  const layout = readLayout(disk);
  const cands: { lba: number; count: number; part: number }[] = layout.partitions
    .filter((p) => !p.extended)
    .map((p) => ({ lba: p.startLba, count: p.sectorCount, part: p.index }));
  if (layout.partitioning === "none") cands.push({ lba: 0, count: disk.sectorCount, part: 0 });
  const pvs: PhysicalVolume[] = [];
  for (const c of cands) {
    try {
      const pv = readPvLabel(disk, c.lba, c.count, c.part, findings);
      if (pv) pvs.push(pv);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      findings.push(finding("LVM_PV_UNREADABLE", { lba: c.lba, error: `${e.code}: ${e.message}` }));
    }
    if (pvs.length > MAX_PVS) throw overLimit("E_LVM_PV", `more than ${MAX_PVS} PVs on one disk`);
  }
  // The newest metadata per VG name wins (highest seqno).
  const newest = new Map<string, PhysicalVolume>();
  for (const pv of pvs) {
    if (!pv.metadata) continue;
    const cur = newest.get(pv.metadata.vgName);
    if (!cur || pv.metadata.seqno > cur.metadata!.seqno) newest.set(pv.metadata.vgName, pv);
  }
  const vgs: VolumeGroup[] = [];
  for (const [name, pv] of newest) {
    try {
      vgs.push(buildVg(name, parseLvmText(pv.metadata!.text), pvs, findings));
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      findings.push(finding("LVM_PV_UNREADABLE", { lba: pv.startLba, error: `${e.code}: ${e.message}` }));
    }
  }
  const list = disk.info?.findings;
  if (list) for (const f of findings) if (!list.some((g) => g.code === f.code && g.message === f.message)) list.push(f);
  return { pvs, vgs, findings };
}

function buildVg(name: string, root: LvmSection, pvs: PhysicalVolume[], findings: Finding[]): VolumeGroup {
  const vg = sub(root, name, "metadata");
  const where = `VG ${name}`;
  const extentSize = num(vg, "extent_size", where);
  if (extentSize < 1) throw corrupt("E_LVM_METADATA", `${where}: extent size 0`);
  const vgPvs: VgPv[] = [];
  for (const [key, s] of sections(sub(vg, "physical_volumes", where))) {
    if (vgPvs.length >= MAX_PVS) throw overLimit("E_LVM_METADATA", `${where}: more than ${MAX_PVS} PVs`);
    const id = str(s, "id", `${where} ${key}`);
    const pv = pvs.find((p) => p.uuid === id.replace(/-/g, ""));
    vgPvs.push({ key, id, deviceHint: str(s, "device", key, ""), peStart: num(s, "pe_start", key), peCount: num(s, "pe_count", key), pv });
  }
  const lvs: LogicalVolumeInfo[] = [];
  const lvSec = optSub(vg, "logical_volumes");
  for (const [lvName, s] of lvSec ? sections(lvSec) : []) {
    if (lvs.length >= MAX_LVS) throw overLimit("E_LVM_METADATA", `${where}: more than ${MAX_LVS} LVs`);
    const lw = `LV ${name}/${lvName}`;
    const status = list(s, "status").map(String);
    const segments: LvSegment[] = [];
    let unsupportedType: string | undefined;
    for (const [segKey, g] of sections(s)) {
      if (!/^segment\d+$/.test(segKey)) continue;
      if (segments.length >= MAX_SEGMENTS) throw overLimit("E_LVM_METADATA", `${lw}: more than ${MAX_SEGMENTS} segments`);
      const type = str(g, "type", `${lw} ${segKey}`);
      const seg: LvSegment = { startExtent: num(g, "start_extent", segKey), extentCount: num(g, "extent_count", segKey), type, stripeSize: 0, stripes: [] };
      if (type === "striped" || type === "linear") {
        const raw = list(g, "stripes");
        const n = num(g, "stripe_count", segKey, 1);
        if (n < 1 || n > MAX_STRIPES || raw.length !== 2 * n) throw corrupt("E_LVM_METADATA", `${lw} ${segKey}: stripe_count ${n} with ${raw.length / 2} stripes listed`);
        for (let k = 0; k < n; k++) {
          const pvKey = raw[2 * k], pe = raw[2 * k + 1];
          if (typeof pvKey !== "string" || typeof pe !== "number" || !Number.isSafeInteger(pe) || pe < 0) {
            throw corrupt("E_LVM_METADATA", `${lw} ${segKey}: stripe ${k} is ${JSON.stringify([pvKey, pe])}`);
          }
          seg.stripes.push({ pv: pvKey, startExtent: pe });
        }
        seg.stripeSize = n > 1 ? num(g, "stripe_size", segKey) : 0;
      } else if (!unsupportedType) {
        unsupportedType = type;
        findings.push(finding("LVM_SEGMENT_UNSUPPORTED", { vg: name, lv: lvName, type }));
      }
      segments.push(seg);
    }
    segments.sort((a, b) => a.startExtent - b.startExtent);
    const extents = segments.reduce((t, x) => t + x.extentCount, 0);
    const used = new Set(segments.flatMap((x) => x.stripes.map((t) => t.pv)));
    const missingPvs = [...used].filter((k) => !vgPvs.find((v) => v.key === k)?.pv).sort();
    lvs.push({
      vg: name, name: lvName, id: str(s, "id", lw, ""), status, visible: status.includes("VISIBLE"),
      segments, sizeBytes: extents * extentSize * LVM_SECTOR,
      mapperPath: `/dev/mapper/${mapperName(name, lvName)}`, devPath: `/dev/${name}/${lvName}`,
      missingPvs, unsupportedType,
    });
  }
  for (const v of vgPvs) {
    if (v.pv) continue;
    const users = lvs.filter((l) => l.missingPvs.includes(v.key)).map((l) => l.name);
    findings.push(finding("LVM_PV_MISSING", { vg: name, pv: formatLvmId(v.id), device: v.deviceHint || v.key, lvs: users.join(", ") || "(none)" }));
  }
  return { name, id: str(vg, "id", where, ""), seqno: num(vg, "seqno", where), extentSize, pvs: vgPvs, lvs };
}

/** Find an LV by /dev/mapper/VG-LV, /dev/VG/LV or "VG/LV". */
export function findLogicalVolume(scan: LvmScan, path: string): { vg: VolumeGroup; lv: LogicalVolumeInfo } | undefined {
  for (const vg of scan.vgs) {
    for (const lv of vg.lvs) {
      if (path === lv.mapperPath || path === lv.devPath || path === `${vg.name}/${lv.name}`) return { vg, lv };
    }
  }
  return undefined;
}

interface MappedSegment { startByte: number; endByte: number; seg: LvSegment; bases: number[]; stripeBytes: number }

/** A linear or striped LV as a block device whose sectors map onto whole-disk LBAs. */
export class LogicalVolume implements BlockDevice {
  readonly format: string;
  readonly sectorSize: number;
  readonly sectorCount: number;
  readonly info: ContainerInfo;
  readonly name: string;
  onRead: ((r: ReadRecord) => void)[] = [];
  private segs: MappedSegment[] = [];

  constructor(readonly disk: BlockDevice, readonly vg: VolumeGroup, readonly lv: LogicalVolumeInfo) {
    this.format = disk.format;
    this.sectorSize = disk.sectorSize;
    this.info = disk.info;
    this.name = lv.mapperPath;
    const lw = `LV ${vg.name}/${lv.name}`;
    if (lv.missingPvs.length) {
      throw new ImageError("E_LVM_PV_MISSING", "corrupt", `${lw} uses PVs ${lv.missingPvs.join(", ")} that are not on this disk`);
    }
    if (lv.unsupportedType) throw unsupported("E_LVM_SEGMENT", `${lw} has a ${lv.unsupportedType} segment`);
    const ext = vg.extentSize * LVM_SECTOR;
    let next = 0;
    for (const seg of lv.segments) {
      if (seg.startExtent !== next) throw corrupt("E_LVM_METADATA", `${lw}: segment at extent ${seg.startExtent}, expected ${next}`);
      const n = seg.stripes.length;
      if (seg.extentCount % n !== 0) throw corrupt("E_LVM_METADATA", `${lw}: ${seg.extentCount} extents over ${n} stripes`);
      const perStripe = seg.extentCount / n;
      const stripeBytes = n > 1 ? seg.stripeSize * LVM_SECTOR : perStripe * ext;
      if (stripeBytes < 1 || (n > 1 && (ext * perStripe) % stripeBytes !== 0)) throw corrupt("E_LVM_METADATA", `${lw}: stripe size ${seg.stripeSize} sectors`);
      const bases = seg.stripes.map((st) => {
        const v = vg.pvs.find((p) => p.key === st.pv);
        if (!v?.pv) throw new ImageError("E_LVM_PV_MISSING", "corrupt", `${lw}: PV ${st.pv} is not on this disk`);
        if (st.startExtent + perStripe > v.peCount) throw corrupt("E_LVM_METADATA", `${lw}: extents ${st.startExtent}+${perStripe} beyond ${st.pv}'s ${v.peCount}`);
        const base = v.pv.startLba * this.sectorSize + v.peStart * LVM_SECTOR + st.startExtent * ext;
        const end = base + perStripe * ext;
        if (end > (v.pv.startLba + v.pv.sectorCount) * this.sectorSize) throw corrupt("E_LVM_METADATA", `${lw}: extents on ${st.pv} run past its partition`);
        return base;
      });
      this.segs.push({ startByte: next * ext, endByte: (next + seg.extentCount) * ext, seg, bases, stripeBytes });
      next += seg.extentCount;
    }
    if (!Number.isSafeInteger(next * ext)) throw corrupt("E_LVM_METADATA", `${lw}: ${next} extents is out of range`);
    this.sectorCount = Math.floor((next * ext) / this.sectorSize);
  }

  /** Disk byte offset of LV byte `pos` and how many bytes stay contiguous from there. */
  private locate(pos: number): { disk: number; run: number } {
    let lo = 0, hi = this.segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segs[mid].startByte <= pos) lo = mid; else hi = mid - 1;
    }
    const s = this.segs[lo];
    const o = pos - s.startByte, n = s.bases.length;
    const chunk = Math.floor(o / s.stripeBytes), within = o % s.stripeBytes;
    const stripe = chunk % n, row = Math.floor(chunk / n);
    return { disk: s.bases[stripe] + row * s.stripeBytes + within, run: Math.min(s.stripeBytes - within, s.endByte - pos) };
  }

  read(lba: number, count: number): Uint8Array {
    if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(count) || lba < 0 || count < 0 || lba + count > this.sectorCount) {
      throw new ImageError("E_READ_RANGE", "usage", `read of LV ${this.name} sector ${lba} (+${count}) lies past its end (${this.sectorCount} sectors)`);
    }
    if (count > MAX_READ_SECTORS) throw new ImageError("E_READ_RANGE", "usage", `read of ${count} sectors exceeds the ${MAX_READ_SECTORS}-sector limit`);
    const ss = this.sectorSize;
    const out = Buffer.alloc(count * ss);
    let pos = lba * ss, done = 0;
    while (done < out.length) {
      const { disk, run } = this.locate(pos);
      const len = Math.min(run, out.length - done, MAX_LV_CHUNK);
      this.disk.readBytes(disk, len).copy(out, done);
      done += len;
      pos += len;
    }
    for (const cb of this.onRead) cb({ lba, count });
    return out;
  }

  readBytes(offset: number, length: number): Buffer { return readBytesVia(this, offset, length); }

  /** Whole-disk LBAs of LV sectors [lba, lba+count), merged into runs. */
  mapToDisk(lba: number, count: number): Extent[] {
    if (lba < 0 || count < 0 || lba + count > this.sectorCount) {
      throw new ImageError("E_READ_RANGE", "usage", `LV ${this.name} sector ${lba} (+${count}) lies past its end`);
    }
    const ss = this.sectorSize, out: Extent[] = [];
    let pos = lba * ss;
    const end = (lba + count) * ss;
    while (pos < end) {
      const { disk, run } = this.locate(pos);
      const len = Math.min(run, end - pos);
      const x = { lba: Math.floor(disk / ss), count: Math.ceil(len / ss) };
      const last = out[out.length - 1];
      if (last && last.lba + last.count === x.lba) last.count += x.count; else out.push(x);
      pos += len;
    }
    return out;
  }

  close(): void { /* the disk owns the file */ }
}

/** Open LV `path` (/dev/mapper/VG-LV, /dev/VG/LV or VG/LV) found by `scan` on `disk`. */
export function openLogicalVolume(disk: BlockDevice, scan: LvmScan, path: string): LogicalVolume {
  const hit = findLogicalVolume(scan, path);
  if (!hit) throw new ImageError("E_LVM_NO_LV", "usage", `no logical volume ${path} on this disk (have: ${scan.vgs.flatMap((v) => v.lvs.map((l) => l.mapperPath)).join(", ") || "none"})`);
  return new LogicalVolume(disk, hit.vg, hit.lv);
}
