// Read-only NTFS 3.x reader: boot sector/BPB, $MFT and its runlist, attribute lists, $I30
// directory indexes, hard links, reparse-point and Interix symlinks. Facts from the Linux-NTFS
// "NTFS Documentation" and [MS-FSCC] 2.1.2 (reparse data buffers); compression is detected only.
import { ImageError, corrupt, hex, overLimit, unsupported } from "./errors.ts";
import { MAX_NTFS_ATTR_LIST_BYTES, MAX_NTFS_DIR_ENTRIES, MAX_NTFS_EXTENSION_RECORDS, MAX_NTFS_INDEX_BYTES, MAX_READ_SECTORS, NTFS_RECORD_CACHE } from "./limits.ts";
import { pushDiskRuns, type Extent, type FileHandle, type FileStat, type FileSystem } from "./fs.ts";
import type { BlockDevice } from "./block.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import {
  AT_ATTRIBUTE_LIST, AT_DATA, AT_FILE_NAME, AT_INDEX_ALLOCATION, AT_INDEX_ROOT, AT_REPARSE_POINT,
  AT_STANDARD_INFORMATION, AT_VOLUME_INFORMATION, AT_VOLUME_NAME, ATTR_COMPRESSION_MASK, ATTR_ENCRYPTED, ATTR_SPARSE,
  MFT_DIRECTORY, MFT_IN_USE, applyFixups, mergeSegments, parseAttributes, recordHeader, refRecord, type Attr, type Run,
} from "./ntfs-record.ts";
import { NS_DOS, indexNodeEntries, parseFileName, parseIndexRoot, upcaseName, type FileName, type IndexEntry, type IndexSlot } from "./ntfs-index.ts";

defineFindings([
  {
    code: "NTFS_DIRTY", severity: "warning", stage: "root",
    title: "NTFS volume marked dirty",
    message: "NTFS volume {label} is marked dirty ($Volume flags {flags}); Windows will run chkdsk at boot and unflushed changes may be missing here",
    remedy: "shut the source VM down cleanly (shutdown /s /t 0), or run chkdsk /f on the volume, before converting",
    explain: "The dirty bit in $Volume's $VOLUME_INFORMATION is set while the volume is mounted and cleared at clean dismount. A dirty volume was not shut down cleanly (or hibernated, or Fast Startup left it mounted); its $LogFile may hold changes bootgate does not replay.",
  },
  {
    code: "NTFS_TRUNCATED", severity: "error", stage: "image",
    title: "NTFS volume larger than its partition or image",
    message: "the NTFS boot sector declares {declared} bytes, the partition holds {available}",
    remedy: "re-create the image from the source disk (qemu-img convert) and check the partition size with sfdisk -l; ntfsresize can shrink a volume to fit",
    explain: "The volume's last sectors (and its backup boot sector) lie beyond the end of the partition or image: the copy was truncated or the partition shrunk without shrinking the filesystem. Windows refuses to mount such a volume.",
  },
  {
    code: "NTFS_MFT_MIRROR", severity: "info", stage: "root",
    title: "$MFTMirr differs from $MFT",
    message: "the first MFT record differs from its copy in $MFTMirr at LCN {mirrorLcn}",
    remedy: "run chkdsk /f on the volume in the source VM",
    explain: "NTFS keeps a copy of the first MFT records in $MFTMirr; chkdsk repairs them when they differ.",
  },
]);

// [MS-FSCC] 2.1.2.1: reparse tags this reader interprets.
const IO_REPARSE_TAG_MOUNT_POINT = 0xa0000003, IO_REPARSE_TAG_SYMLINK = 0xa000000c, IO_REPARSE_TAG_WOF = 0x80000017;
const SYMLINK_FLAG_RELATIVE = 1;
// FILE_ATTRIBUTE_* ([MS-FSCC] 2.6) as kept in $STANDARD_INFORMATION.
const FILE_ATTRIBUTE_SYSTEM = 0x4;
const INTERIX_SYMLINK = Buffer.from("IntxLNK\x01", "latin1");  // SFU / ntfs-3g symlink data prefix
const ROOT_RECORD = 5, UPCASE_RECORD = 10, FIRST_USER_RECORD = 16;

export interface NtfsBpb {
  bytesPerSector: number; sectorsPerCluster: number; totalSectors: number; mftLcn: number; mftMirrLcn: number;
  recordSize: number; indexBlockSize: number; serial: string;
  /** CHS fields old boot code relies on (HYPERV.md: XP/2003 boot records). */
  sectorsPerTrack: number; heads: number; hiddenSectors: number;
}

export interface NtfsFileInfo {
  record: number;
  names: FileName[];
  fileAttributes: number;
  compressed: boolean;
  encrypted: boolean;
  sparse: boolean;
  reparseTag?: number;
}

interface Node {
  record: number;
  flags: number;
  attrs: Attr[];
  names: FileName[];
  fileAttributes: number;
}

type Handle = FileHandle & { record: number };

const mkHandle = (record: number): Handle => ({ record } as unknown as Handle);

export function probe(dev: BlockDevice): boolean {
  try { return dev.readBytes(0, 512).toString("latin1", 3, 11) === "NTFS    "; } catch { return false; }
}

/** Boot sector BPB (NTFS Documentation "$Boot"). */
export function parseBpb(b: Buffer): NtfsBpb {
  if (b.toString("latin1", 3, 11) !== "NTFS    ") throw corrupt("E_NTFS_BOOT", `boot sector OEM id ${JSON.stringify(b.toString("latin1", 3, 11))} is not "NTFS    "`);
  const bps = b.readUInt16LE(0x0b);
  if (bps < 256 || bps > 4096 || (bps & (bps - 1))) throw corrupt("E_NTFS_BOOT", `bytes per sector ${bps}`);
  const spcRaw = b[0x0d];
  const spc = spcRaw > 0x80 ? 2 ** (256 - spcRaw) : spcRaw;
  if (spc === 0 || (spc & (spc - 1)) || spc * bps > 2 * 1024 * 1024) throw corrupt("E_NTFS_BOOT", `sectors per cluster ${spcRaw}`);
  const cluster = spc * bps;
  const sizeOf = (v: number, what: string): number => {
    const s = v >= 0x80 ? 2 ** (256 - v) : v * cluster;
    if (s < 256 || s > 65536 || (s & (s - 1))) throw corrupt("E_NTFS_BOOT", `${what} size field ${hex(v, 2)} gives ${s} bytes`);
    return s;
  };
  const totalSectors = b.readBigUInt64LE(0x28);
  if (totalSectors === 0n || totalSectors > 2n ** 40n) throw corrupt("E_NTFS_BOOT", `total sectors ${totalSectors}`);
  const lcn = (off: number, what: string): number => {
    const v = b.readBigUInt64LE(off);
    if (v === 0n || v * BigInt(spc) >= totalSectors) throw corrupt("E_NTFS_BOOT", `${what} LCN ${v} outside the ${totalSectors}-sector volume`);
    return Number(v);
  };
  return {
    bytesPerSector: bps, sectorsPerCluster: spc, totalSectors: Number(totalSectors),
    mftLcn: lcn(0x30, "$MFT"), mftMirrLcn: lcn(0x38, "$MFTMirr"),
    recordSize: sizeOf(b[0x40], "MFT record"), indexBlockSize: sizeOf(b[0x44], "index block"),
    serial: b.readBigUInt64LE(0x48).toString(16).toUpperCase().padStart(16, "0"),
    sectorsPerTrack: b.readUInt16LE(0x18), heads: b.readUInt16LE(0x1a), hiddenSectors: b.readUInt32LE(0x1c),
  };
}

export class NtfsFileSystem implements FileSystem {
  readonly kind = "ntfs";
  label?: string;
  readonly uuid: string;
  readonly bpb: NtfsBpb;
  readonly findings: Finding[] = [];
  version = "";
  dirty = false;
  private readonly clusterSize: number;
  private readonly totalClusters: number;
  private mftRuns: Run[] = [];
  private mftRecords = 0;
  private mftInit = 0;
  private upcase: Uint16Array | undefined;
  private readonly records = new Map<number, Buffer>();
  private readonly nodes = new Map<number, Node>();
  private readonly dirs = new Map<number, IndexEntry[]>();
  private dirBytes = 0;

  constructor(private readonly dev: BlockDevice) {
    if (dev.sectorCount < 1) throw corrupt("E_NTFS_BOOT", "device has no sectors");
    this.bpb = parseBpb(dev.readBytes(0, 512));
    this.uuid = this.bpb.serial;
    this.clusterSize = this.bpb.bytesPerSector * this.bpb.sectorsPerCluster;
    const declared = this.bpb.totalSectors * this.bpb.bytesPerSector, have = dev.sectorCount * dev.sectorSize;
    if (declared > have) this.findings.push(finding("NTFS_TRUNCATED", { declared, available: have }));
    const volBytes = Math.min(declared, have);
    this.totalClusters = Math.floor(volBytes / this.clusterSize) + 1;
    this.loadMft();
    this.loadVolume();
    this.loadUpcase();
  }

  /** Data runs of $MFT itself (more than one = a fragmented MFT). */
  get mftRunCount(): number { return this.mftRuns.length; }

  // ---- MFT ----

  /** Record 0 at the boot sector's LCN, then its full $DATA runlist (extension records included). */
  private loadMft(): void {
    const rs = this.bpb.recordSize;
    const rec0 = this.clusters(this.bpb.mftLcn * this.clusterSize, rs, "$MFT record 0");
    applyFixups(rec0, "FILE", "$MFT record 0");
    const base = parseAttributes(rec0, 0, "$MFT record 0").filter((a) => a.type === AT_DATA && a.name === "");
    const first = base.find((a) => a.lowVcn === 0);
    if (!first || !first.nonResident) throw corrupt("E_NTFS_MFT", "$MFT record 0 has no non-resident $DATA attribute");
    if (first.runs.length === 0 || first.runs[0].lcn !== this.bpb.mftLcn) {
      throw corrupt("E_NTFS_MFT", `$MFT's first data run starts at LCN ${first.runs[0]?.lcn}, the boot sector says ${this.bpb.mftLcn}`);
    }
    this.mftRuns = first.runs;
    this.mftRecords = Math.floor(first.dataSize / rs);
    this.mftInit = first.initSize;
    this.records.set(0, rec0);
    const node = this.node(0);          // resolves $ATTRIBUTE_LIST with the partial runlist
    const data = this.dataAttr(node, "");
    if (!data || !data.nonResident) throw corrupt("E_NTFS_MFT", "$MFT has no non-resident $DATA");
    this.mftRuns = data.runs;
    const mapped = data.runs.reduce((s, r) => s + r.len, 0) * this.clusterSize;
    if (mapped < data.dataSize) throw corrupt("E_NTFS_MFT", `$MFT runlist maps ${mapped} bytes, its size is ${data.dataSize}`);
    this.mftRecords = Math.floor(data.dataSize / rs);
    this.mftInit = data.initSize;
    try {
      const mirr = this.clusters(this.bpb.mftMirrLcn * this.clusterSize, rs, "$MFTMirr record 0");
      applyFixups(mirr, "FILE", "$MFTMirr record 0");
      if (!mirr.equals(rec0)) this.findings.push(finding("NTFS_MFT_MIRROR", { mirrorLcn: this.bpb.mftMirrLcn }));
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      this.findings.push(finding("NTFS_MFT_MIRROR", { mirrorLcn: this.bpb.mftMirrLcn }, { error: e.message }));
    }
  }

  private loadVolume(): void {
    const vol = this.node(3);
    const name = vol.attrs.find((a) => a.type === AT_VOLUME_NAME);
    if (name?.value) this.label = name.value.toString("utf16le");
    const info = vol.attrs.find((a) => a.type === AT_VOLUME_INFORMATION);
    if (info?.value && info.value.length >= 12) {
      this.version = `${info.value[8]}.${info.value[9]}`;
      const flags = info.value.readUInt16LE(10);
      this.dirty = (flags & 1) !== 0;
      if (this.dirty) this.findings.push(finding("NTFS_DIRTY", { label: this.label ?? "(none)", flags: hex(flags, 4) }));
    }
  }

  private loadUpcase(): void {
    try {
      const up = this.node(UPCASE_RECORD);
      const d = this.dataAttr(up, "");
      if (d && d.dataSize === 131072) {
        const b = this.readAttr(d, 0, 131072, "$UpCase");
        this.upcase = new Uint16Array(65536);
        for (let i = 0; i < 65536; i++) this.upcase[i] = b.readUInt16LE(i * 2);
      }
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      this.upcase = undefined;       // fall back to JavaScript's per-character upcase
    }
  }

  /** One MFT record, fixed up (cached). */
  private record(n: number): Buffer {
    const hit = this.records.get(n);
    if (hit) return hit;
    if (!Number.isSafeInteger(n) || n < 0 || n >= this.mftRecords) throw corrupt("E_NTFS_RECORD", `MFT record ${n} is outside the $MFT (${this.mftRecords} records)`);
    const rs = this.bpb.recordSize;
    const b = this.readRuns(this.mftRuns, n * rs, rs, this.mftInit, `MFT record ${n}`);
    applyFixups(b, "FILE", `MFT record ${n}`);
    if (this.records.size >= NTFS_RECORD_CACHE) this.records.delete(this.records.keys().next().value as number);
    this.records.set(n, b);
    return b;
  }

  /** A file's attributes gathered from its base record and, through $ATTRIBUTE_LIST, its extension records. */
  private node(n: number): Node {
    const hit = this.nodes.get(n);
    if (hit) return hit;
    const what = `MFT record ${n}`;
    const rec = this.record(n);
    const h = recordHeader(rec, what);
    if (!(h.flags & MFT_IN_USE)) throw corrupt("E_NTFS_RECORD", `${what} is not in use (a stale directory entry)`);
    if (h.baseRecord !== 0) throw corrupt("E_NTFS_RECORD", `${what} is an extension record of ${h.baseRecord}, not a file`);
    let attrs = parseAttributes(rec, n, what);
    const list = attrs.find((a) => a.type === AT_ATTRIBUTE_LIST);
    if (list) attrs = this.expandAttrList(n, attrs, list);
    // merge non-resident attributes split over several records
    const groups = new Map<string, Attr[]>();
    for (const a of attrs) {
      const k = `${a.type}:${a.name}`;
      if (a.nonResident) groups.set(k, [...(groups.get(k) ?? []), a]);
    }
    const merged: Attr[] = attrs.filter((a) => !a.nonResident);
    for (const segs of groups.values()) merged.push(mergeSegments(segs, what));
    const names = merged.filter((a) => a.type === AT_FILE_NAME && a.value).map((a) => parseFileName(a.value!, what));
    const si = merged.find((a) => a.type === AT_STANDARD_INFORMATION);
    const node: Node = { record: n, flags: h.flags, attrs: merged, names, fileAttributes: si?.value && si.value.length >= 36 ? si.value.readUInt32LE(32) : 0 };
    if (this.nodes.size >= NTFS_RECORD_CACHE) this.nodes.delete(this.nodes.keys().next().value as number);
    this.nodes.set(n, node);
    return node;
  }

  /** $ATTRIBUTE_LIST entries: type, length, name, starting VCN, record holding the attribute, id. */
  private expandAttrList(n: number, baseAttrs: Attr[], list: Attr): Attr[] {
    const what = `MFT record ${n} $ATTRIBUTE_LIST`;
    if (list.dataSize > MAX_NTFS_ATTR_LIST_BYTES) throw overLimit("E_NTFS_LIMIT", `${what} is ${list.dataSize} bytes (limit ${MAX_NTFS_ATTR_LIST_BYTES})`);
    const v = list.nonResident ? this.readAttr(list, 0, list.dataSize, what) : list.value!;
    const wanted = new Map<number, Set<string>>();
    for (let p = 0; p + 26 <= v.length;) {
      const len = v.readUInt16LE(p + 4);
      if (len < 26 || p + len > v.length) throw corrupt("E_NTFS_ATTR_LIST", `${what}: entry at ${p} has length ${len}`);
      const rec = refRecord(v, p + 16);
      if (rec !== n) {
        if (!wanted.has(rec)) wanted.set(rec, new Set());
        wanted.get(rec)!.add(`${v.readUInt32LE(p)}:${v.readUInt16LE(p + 24)}`);
      }
      if (wanted.size > MAX_NTFS_EXTENSION_RECORDS) throw overLimit("E_NTFS_LIMIT", `${what} names more than ${MAX_NTFS_EXTENSION_RECORDS} extension records`);
      p += len;
    }
    const out = baseAttrs.filter((a) => a.type !== AT_ATTRIBUTE_LIST);
    for (const [rec, keys] of wanted) {
      const ew = `extension record ${rec} of MFT record ${n}`;
      const b = this.record(rec);
      const h = recordHeader(b, ew);
      if (!(h.flags & MFT_IN_USE) || h.baseRecord !== n) throw corrupt("E_NTFS_ATTR_LIST", `${ew} belongs to record ${h.baseRecord} (in use: ${h.flags & MFT_IN_USE})`);
      for (const a of parseAttributes(b, rec, ew)) if (keys.has(`${a.type}:${a.id}`)) out.push(a);
    }
    return out;
  }

  private dataAttr(node: Node, name: string): Attr | undefined {
    return node.attrs.find((a) => a.type === AT_DATA && a.name === name);
  }

  // ---- data ----

  /** Bytes at a volume byte offset, read in chunks under the device's transfer limit. */
  private clusters(byteOff: number, length: number, what: string): Buffer {
    const lcnEnd = Math.ceil((byteOff + length) / this.clusterSize);
    if (lcnEnd > this.totalClusters) throw corrupt("E_NTFS_RANGE", `${what}: bytes ${byteOff}..${byteOff + length} lie past the end of the volume`);
    const chunk = MAX_READ_SECTORS * this.dev.sectorSize / 2;
    if (length <= chunk) return this.dev.readBytes(byteOff, length);
    const parts: Buffer[] = [];
    for (let p = 0; p < length; p += chunk) parts.push(this.dev.readBytes(byteOff + p, Math.min(chunk, length - p)));
    return Buffer.concat(parts);
  }

  /** `length` bytes from `offset` of a run-mapped stream whose valid bytes end at `limit` (zeros after). */
  private readRuns(runs: Run[], offset: number, length: number, limit: number, what: string): Buffer {
    const out = Buffer.alloc(length);
    const cs = this.clusterSize;
    const end = Math.min(offset + length, limit);
    for (const r of runs) {
      const rs = r.vcn * cs, re = (r.vcn + r.len) * cs;
      const s = Math.max(rs, offset), e = Math.min(re, end);
      if (s >= e) continue;
      if (r.lcn < 0) continue;                               // sparse: zeros
      this.clusters(r.lcn * cs + (s - rs), e - s, what).copy(out, s - offset);
    }
    const mapped = runs.length ? (runs[runs.length - 1].vcn + runs[runs.length - 1].len) * cs : 0;
    if (end > mapped) throw corrupt("E_NTFS_RUNLIST", `${what}: bytes up to ${end} needed, the runlist maps ${mapped}`);
    return out;
  }

  private readAttr(a: Attr, offset: number, length: number, what: string): Buffer {
    const n = Math.max(0, Math.min(length, a.dataSize - offset));
    if (!a.nonResident) return Buffer.from(a.value!.subarray(offset, offset + n));
    if (n === 0) return Buffer.alloc(0);
    if (n > 2 ** 30) throw overLimit("E_NTFS_LIMIT", `${what}: a single read of ${n} bytes (limit 1 GiB)`);
    if (a.flags & ATTR_COMPRESSION_MASK) throw unsupported("E_NTFS_COMPRESSED", `${what} is NTFS-compressed (LZNT1), which bootgate does not decompress`);
    if (a.flags & ATTR_ENCRYPTED) throw unsupported("E_NTFS_ENCRYPTED", `${what} is EFS-encrypted`);
    return this.readRuns(a.runs, offset, n, a.initSize, what);
  }

  // ---- directories ----

  private entries(dir: Node): IndexEntry[] {
    const hit = this.dirs.get(dir.record);
    if (hit) return hit;
    const what = `directory MFT record ${dir.record}`;
    if (!(dir.flags & MFT_DIRECTORY)) throw corrupt("E_NTFS_NOT_DIR", `MFT record ${dir.record} is not a directory`);
    const root = dir.attrs.find((a) => a.type === AT_INDEX_ROOT && a.name === "$I30");
    if (!root?.value) throw corrupt("E_NTFS_INDEX", `${what} has no $I30 index root`);
    const rootSlots: IndexSlot[] = [];
    const { blockSize } = parseIndexRoot(root.value, rootSlots, what);
    const alloc = dir.attrs.find((a) => a.type === AT_INDEX_ALLOCATION && a.name === "$I30");
    const out: IndexEntry[] = [];
    if (alloc && (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)))) throw corrupt("E_NTFS_INDEX", `${what}: index block size ${blockSize}`);
    if (alloc && alloc.dataSize > MAX_NTFS_INDEX_BYTES) throw overLimit("E_NTFS_LIMIT", `${what}: $INDEX_ALLOCATION of ${alloc.dataSize} bytes (limit ${MAX_NTFS_INDEX_BYTES})`);
    const vcnShift = blockSize >= this.clusterSize ? Math.log2(this.clusterSize) : 9;
    const visited = new Set<number>();
    // in-order walk of the B+ tree: sub-node first, then the entry; every block visited at most once
    const walk = (slots: IndexSlot[], depth: number): void => {
      if (depth > 32) throw corrupt("E_NTFS_INDEX", `${what}: index tree deeper than 32 levels`);
      for (const s of slots) {
        if (s.child !== undefined) {
          if (!alloc) throw corrupt("E_NTFS_INDEX", `${what}: index entry points at sub-node VCN ${s.child} but there is no $INDEX_ALLOCATION`);
          if (visited.has(s.child)) throw corrupt("E_NTFS_INDEX", `${what}: index sub-node VCN ${s.child} is reached twice (a loop in the index tree)`);
          visited.add(s.child);
          const off = s.child * 2 ** vcnShift;
          const bw = `${what} INDX block at VCN ${s.child}`;
          if (off + blockSize > alloc.dataSize) throw corrupt("E_NTFS_INDEX", `${bw} lies past the ${alloc.dataSize}-byte $INDEX_ALLOCATION`);
          const b = this.readAttr(alloc, off, blockSize, bw);
          applyFixups(b, "INDX", bw);
          const vcn = Number(b.readBigUInt64LE(16));
          if (vcn !== s.child) throw corrupt("E_NTFS_INDEX", `${bw} says it is VCN ${vcn}`);
          const sub: IndexSlot[] = [];
          indexNodeEntries(b, 24, sub, bw);
          walk(sub, depth + 1);
        }
        if (s.entry) {
          out.push(s.entry);
          if (out.length > MAX_NTFS_DIR_ENTRIES) throw overLimit("E_NTFS_LIMIT", `${what} has more than ${MAX_NTFS_DIR_ENTRIES} entries`);
        }
      }
    };
    walk(rootSlots, 0);
    this.dirBytes += out.length;
    while (this.dirBytes > MAX_NTFS_DIR_ENTRIES && this.dirs.size) {
      const k = this.dirs.keys().next().value as number;
      this.dirBytes -= this.dirs.get(k)!.length;
      this.dirs.delete(k);
    }
    this.dirs.set(dir.record, out);
    return out;
  }

  // ---- FileSystem ----

  root(): FileHandle { return mkHandle(ROOT_RECORD); }

  lookup(dir: FileHandle, name: string): FileHandle | undefined {
    const es = this.entries(this.node((dir as Handle).record));
    const exact = es.find((e) => e.name === name);
    if (exact) return mkHandle(exact.record);
    const want = upcaseName(name, this.upcase);
    const e = es.find((x) => upcaseName(x.name, this.upcase) === want);
    return e ? mkHandle(e.record) : undefined;
  }

  readdir(h: FileHandle): string[] {
    const es = this.entries(this.node((h as Handle).record));
    const seen = new Set<string>();
    const out: string[] = [];
    for (const e of es) {
      if (e.namespace === NS_DOS || e.record < FIRST_USER_RECORD || seen.has(e.name)) continue;
      seen.add(e.name);
      out.push(e.name);
    }
    return out;
  }

  private reparse(node: Node): { tag: number; data: Buffer } | undefined {
    const a = node.attrs.find((x) => x.type === AT_REPARSE_POINT);
    if (!a) return undefined;
    const v = a.nonResident ? this.readAttr(a, 0, Math.min(a.dataSize, 16 * 1024), `MFT record ${node.record} $REPARSE_POINT`) : a.value!;
    if (v.length < 8) throw corrupt("E_NTFS_REPARSE", `MFT record ${node.record}: reparse data of ${v.length} bytes`);
    return { tag: v.readUInt32LE(0), data: v };
  }

  private interix(node: Node): boolean {
    if (!(node.fileAttributes & FILE_ATTRIBUTE_SYSTEM) || node.flags & MFT_DIRECTORY) return false;
    const d = this.dataAttr(node, "");
    if (!d || d.dataSize < 8 || d.dataSize > 8 + 4096 * 2) return false;
    return this.readAttr(d, 0, 8, `MFT record ${node.record}`).equals(INTERIX_SYMLINK);
  }

  stat(h: FileHandle): FileStat {
    const node = this.node((h as Handle).record);
    const rp = this.reparse(node);
    const id = node.record;
    if (rp && (rp.tag === IO_REPARSE_TAG_SYMLINK || rp.tag === IO_REPARSE_TAG_MOUNT_POINT)) return { type: "symlink", size: this.readlink(h).length, id };
    if (node.flags & MFT_DIRECTORY) return { type: "dir", size: 0, id };
    if (this.interix(node)) return { type: "symlink", size: this.readlink(h).length, id };
    const d = this.dataAttr(node, "");
    return { type: d ? "file" : "other", size: d?.dataSize ?? 0, id };
  }

  /** NTFS-specific details: all names with their namespaces, compression, encryption, reparse tag. */
  info(h: FileHandle): NtfsFileInfo {
    const node = this.node((h as Handle).record);
    const d = this.dataAttr(node, "");
    const flags = d?.flags ?? 0;
    return {
      record: node.record, names: node.names, fileAttributes: node.fileAttributes,
      compressed: (flags & ATTR_COMPRESSION_MASK) !== 0 || (node.fileAttributes & 0x800) !== 0,
      encrypted: (flags & ATTR_ENCRYPTED) !== 0 || (node.fileAttributes & 0x4000) !== 0,
      sparse: (flags & ATTR_SPARSE) !== 0, reparseTag: this.reparse(node)?.tag,
    };
  }

  read(h: FileHandle, offset: number, length: number): Buffer {
    const node = this.node((h as Handle).record);
    const what = `MFT record ${node.record} data`;
    if (node.flags & MFT_DIRECTORY) throw new ImageError("E_NTFS_IS_DIR", "usage", `MFT record ${node.record} is a directory`);
    const rp = this.reparse(node);
    if (rp?.tag === IO_REPARSE_TAG_WOF) throw unsupported("E_NTFS_WOF", `${what} is WOF-compressed (CompactOS / compact /exe), which bootgate does not decompress`);
    const d = this.dataAttr(node, "");
    if (!d) return Buffer.alloc(0);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new ImageError("E_READ_RANGE", "usage", `read of ${length} bytes at ${offset}`);
    return this.readAttr(d, offset, length, what);
  }

  readlink(h: FileHandle): string {
    const node = this.node((h as Handle).record);
    const rp = this.reparse(node);
    if (rp && (rp.tag === IO_REPARSE_TAG_SYMLINK || rp.tag === IO_REPARSE_TAG_MOUNT_POINT)) return reparseTarget(rp.tag, rp.data, node.record);
    if (this.interix(node)) {
      const d = this.dataAttr(node, "")!;
      return this.readAttr(d, 8, d.dataSize - 8, `MFT record ${node.record}`).toString("utf16le");
    }
    throw new ImageError("E_FS_NOT_SYMLINK", "usage", `MFT record ${node.record} is not a symbolic link`);
  }

  extents(h: FileHandle): Extent[] {
    const node = this.node((h as Handle).record);
    const d = this.dataAttr(node, "");
    const ss = this.dev.sectorSize;
    if (!d) return [];
    if (!d.nonResident) {
      // resident data lives inside the MFT record: report the record's sectors
      const rs = this.bpb.recordSize;
      const out: Extent[] = [];
      for (const r of this.runsFor(this.mftRuns, d.record * rs, rs)) out.push(r);
      return out.map((e) => ({ lba: e.lba, count: e.count }));
    }
    return this.runsFor(d.runs, 0, Math.ceil(d.dataSize / ss) * ss);
  }

  /** Whole-disk sector extents of bytes [offset, offset+length) of a run-mapped stream. */
  private runsFor(runs: Run[], offset: number, length: number): Extent[] {
    const ss = this.dev.sectorSize, cs = this.clusterSize, out: Extent[] = [];
    for (const r of runs) {
      const rs = r.vcn * cs, re = (r.vcn + r.len) * cs;
      const s = Math.max(rs, offset), e = Math.min(re, offset + length);
      if (s >= e || r.lcn < 0) continue;
      pushDiskRuns(out, this.dev, (r.lcn * cs + (s - rs)) / ss, Math.ceil((e - s) / ss));
    }
    return out;
  }
}

/**
 * A symlink or junction target ([MS-FSCC] 2.1.2.4 / 2.1.2.5) as a guest path: relative links keep
 * their relative form with "/" separators; absolute ones on a drive ("C:\\Windows") become
 * "/Windows", assuming the link points into this same volume (resolvePath then follows it here).
 */
function reparseTarget(tag: number, v: Buffer, rec: number): string {
  const hdr = tag === IO_REPARSE_TAG_SYMLINK ? 20 : 16;
  if (v.length < hdr) throw corrupt("E_NTFS_REPARSE", `MFT record ${rec}: reparse buffer of ${v.length} bytes`);
  const subOff = v.readUInt16LE(8), subLen = v.readUInt16LE(10), prOff = v.readUInt16LE(12), prLen = v.readUInt16LE(14);
  const str = (o: number, l: number): string => {
    if (hdr + o + l > v.length) throw corrupt("E_NTFS_REPARSE", `MFT record ${rec}: reparse name at ${o} (+${l}) past the ${v.length}-byte buffer`);
    return v.toString("utf16le", hdr + o, hdr + o + l);
  };
  let t = prLen ? str(prOff, prLen) : str(subOff, subLen);
  const relative = tag === IO_REPARSE_TAG_SYMLINK && (v.readUInt32LE(16) & SYMLINK_FLAG_RELATIVE) !== 0;
  if (relative) return t.replace(/\\/g, "/");
  t = t.replace(/^\\\?\?\\/, "");
  const m = /^[A-Za-z]:(\\.*)?$/.exec(t);
  if (m) return (m[1] ?? "\\").replace(/\\/g, "/");
  return t;
}

export function openNtfs(dev: BlockDevice): NtfsFileSystem {
  return new NtfsFileSystem(dev);
}
