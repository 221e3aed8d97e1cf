// Read-only FAT12/16/32 with VFAT long names (Microsoft "FAT: General Overview of On-Disk Format"
// 1.03: §3 BPB, §3.5 FAT type by cluster count, §4 FAT entries, §6 directory entries, §7 long names).
import { corrupt, hex, ImageError, overLimit, truncated } from "./errors.ts";
import type { BlockDevice } from "./block.ts";
import { pushDiskRuns, type Extent, type FileHandle, type FileStat, type FileSystem } from "./fs.ts";
import { LruCache } from "./grain-cache.ts";
import { FS_METADATA_CACHE_BYTES, MAX_FAT_DIR_BYTES } from "./limits.ts";
import { defineFindings, finding } from "../emu/findings.ts";

/** §3.5: fewer than 4085 clusters is FAT12, fewer than 65525 FAT16, else FAT32. */
const FAT12_MAX_CLUSTERS = 4084;
const FAT16_MAX_CLUSTERS = 65524;
/** FAT32 entries use the low 28 bits (§4). */
const FAT32_MASK = 0x0fffffff;
/** §4: FAT[1] high bits: "clean shutdown" (FAT16 bit 15, FAT32 bit 27); clear = volume dirty. */
const FAT16_CLN_SHUT = 0x8000;
const FAT32_CLN_SHUT = 0x08000000;
// §6 DIR_Attr bits.
const ATTR_DIRECTORY = 0x10;
const ATTR_VOLUME_ID = 0x08;
const ATTR_LONG_NAME = 0x0f;
const ATTR_LONG_NAME_MASK = 0x3f;
/** §6.1: DIR_Name[0] 0xE5 = free entry, 0x00 = free and no more entries; 0x05 stands for 0xE5. */
const DIR_FREE = 0xe5;
const DIR_KANJI_E5 = 0x05;
/** §7: LDIR_Ord's last-entry flag. */
const LAST_LONG_ENTRY = 0x40;
/** Windows NT case bits in DIR_NTRes: lower-case base name / extension. */
const NT_LOWER_BASE = 0x08;
const NT_LOWER_EXT = 0x10;
/** Largest data read from the device at once. */
const READ_CHUNK = 8 * 1024 * 1024;
/** Chains shorter than this are loop-checked with a Set; longer ones with a bitmap of all clusters. */
const SMALL_CHAIN = 4096;

defineFindings([
  {
    code: "FAT_DIRTY", severity: "warning", stage: "image",
    title: "FAT volume not cleanly unmounted",
    message: "FAT volume {uuid} has its dirty bit set (FAT[1] = {fat1}); it was not unmounted cleanly before conversion",
    remedy: "run `fsck.fat -a /dev/sdXN` (Linux) or `chkdsk /f X:` (Windows) on the volume",
    explain: "FAT[1]'s clean-shutdown bit is cleared while a volume is mounted. A set dirty bit means files written just before the image was taken may be incomplete; firmware reads such an ESP anyway.",
  },
]);

interface Bpb {
  type: 12 | 16 | 32;
  bytesPerSector: number; sectorsPerCluster: number; clusterBytes: number; reserved: number;
  fats: number; fatSectors: number; rootEntries: number; totalSectors: number;
  firstDataSector: number; rootDirSector: number; clusterCount: number; rootCluster: number;
  volumeId: number; label: string;
}

function bad(msg: string): ImageError { return corrupt("E_FAT_BPB", msg); }
const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** §3.1-3.3: BPB fields and the derived layout; throws E_FAT_BPB for an invalid one. */
function parseBpb(b: Buffer): Bpb {
  if (b[0] !== 0xeb && b[0] !== 0xe9) throw bad(`boot sector jump byte ${hex(b[0], 2)}, expected 0xeb or 0xe9`);
  const bytesPerSector = b.readUInt16LE(11), sectorsPerCluster = b[13], reserved = b.readUInt16LE(14), fats = b[16];
  const rootEntries = b.readUInt16LE(17), fatSz16 = b.readUInt16LE(22);
  if (![512, 1024, 2048, 4096].includes(bytesPerSector)) throw bad(`BPB_BytsPerSec ${bytesPerSector}`);
  if (!isPow2(sectorsPerCluster) || sectorsPerCluster > 128) throw bad(`BPB_SecPerClus ${sectorsPerCluster}`);
  if (reserved < 1) throw bad("BPB_RsvdSecCnt 0");
  if (fats < 1 || fats > 4) throw bad(`BPB_NumFATs ${fats}`);
  const totalSectors = b.readUInt16LE(19) || b.readUInt32LE(32);
  const fatSectors = fatSz16 || b.readUInt32LE(36);
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const rootDirSector = reserved + fats * fatSectors;
  const firstDataSector = rootDirSector + rootDirSectors;
  if (fatSectors === 0 || totalSectors <= firstDataSector) {
    throw bad(`BPB_TotSec ${totalSectors} leaves no data area after ${firstDataSector} sectors of reserved area, FATs and root directory`);
  }
  const clusterCount = Math.floor((totalSectors - firstDataSector) / sectorsPerCluster);
  const type = clusterCount <= FAT12_MAX_CLUSTERS ? 12 : clusterCount <= FAT16_MAX_CLUSTERS ? 16 : 32;
  if (type === 32 && (rootEntries !== 0 || fatSz16 !== 0)) throw bad(`${clusterCount} clusters make FAT32 but BPB_RootEntCnt is ${rootEntries} and BPB_FATSz16 ${fatSz16}`);
  if (type !== 32 && rootEntries === 0) throw bad(`FAT${type} volume with BPB_RootEntCnt 0`);
  const needFatBytes = type === 12 ? Math.ceil(((clusterCount + 2) * 3) / 2) : (clusterCount + 2) * (type / 8);
  if (fatSectors * bytesPerSector < needFatBytes) throw bad(`FAT of ${fatSectors} sectors is too small for ${clusterCount} clusters`);
  const ext = type === 32 ? 0x40 : 0x24;
  const hasExt = b[ext + 2] === 0x29;
  const rootCluster = type === 32 ? b.readUInt32LE(44) : 0;
  if (type === 32 && (rootCluster < 2 || rootCluster > clusterCount + 1)) throw bad(`BPB_RootClus ${rootCluster} outside 2..${clusterCount + 1}`);
  return {
    type, bytesPerSector, sectorsPerCluster, clusterBytes: bytesPerSector * sectorsPerCluster, reserved, fats, fatSectors,
    rootEntries, totalSectors, firstDataSector, rootDirSector, clusterCount, rootCluster,
    volumeId: hasExt ? b.readUInt32LE(ext + 3) : 0,
    label: hasExt ? b.subarray(ext + 7, ext + 18).toString("latin1").replace(/ +$/, "") : "",
  };
}

/** Cheap check: a valid BPB at sector 0. */
export function probeFat(dev: BlockDevice): boolean {
  if (dev.sectorCount * dev.sectorSize < 512) return false;
  try { parseBpb(dev.readBytes(0, 512)); return true; } catch (e) { if (e instanceof ImageError) return false; throw e; }
}

interface Entry {
  name: string; shortName: string; dir: boolean; cluster: number; size: number;
  /** Byte offset of the 8.3 entry on the volume: the identity of the file. */
  at: number;
}

interface FatHandle { readonly __fileHandle: true; readonly e: Entry }

/** §7.2: the checksum of an 11-byte short name kept in each long-name entry. */
function shortNameChecksum(n: Buffer): number {
  let s = 0;
  for (let i = 0; i < 11; i++) s = (((s & 1) << 7) + (s >> 1) + n[i]) & 0xff;
  return s;
}

function shortNameText(raw: Buffer, ntRes: number): string {
  const n = Buffer.from(raw);
  if (n[0] === DIR_KANJI_E5) n[0] = DIR_FREE;
  let base = n.subarray(0, 8).toString("latin1").replace(/ +$/, "");
  let ext = n.subarray(8, 11).toString("latin1").replace(/ +$/, "");
  if (ntRes & NT_LOWER_BASE) base = base.toLowerCase();
  if (ntRes & NT_LOWER_EXT) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}

const fold = (s: string) => s.toUpperCase();

class FatFs implements FileSystem {
  readonly kind: string;
  label?: string;
  readonly uuid?: string;
  readonly details: Record<string, unknown>;
  private fatCache = new LruCache<number, Buffer>(FS_METADATA_CACHE_BYTES / 2);
  private dirs = new LruCache<number, Map<string, Entry>>(4096);
  private chains = new LruCache<number, { runs: [number, number][]; clusters: number }>(16384);
  private readonly rootEntry: Entry;

  constructor(private dev: BlockDevice, private bpb: Bpb) {
    this.kind = `fat${bpb.type}`;
    this.uuid = bpb.volumeId ? `${hex(bpb.volumeId >>> 16, 4).slice(2)}-${hex(bpb.volumeId & 0xffff, 4).slice(2)}`.toUpperCase() : undefined;
    this.label = bpb.label && bpb.label !== "NO NAME" ? bpb.label : undefined;
    this.rootEntry = { name: "", shortName: "", dir: true, cluster: bpb.rootCluster, size: 0, at: -1 };
    this.details = {
      bytesPerSector: bpb.bytesPerSector, sectorsPerCluster: bpb.sectorsPerCluster, clusters: bpb.clusterCount,
      fats: bpb.fats, fatSectors: bpb.fatSectors, rootEntries: bpb.rootEntries,
    };
  }

  /** FAT entry `n` of the first FAT (§4), through a cache of 64 KiB pieces of the FAT. */
  fatEntry(n: number): number {
    const b = this.bpb;
    const off = b.type === 12 ? n + (n >> 1) : n * (b.type / 8);
    const byte = (o: number): number => {
      const piece = Math.floor(o / 65536);
      let p = this.fatCache.get(piece);
      if (!p) {
        const start = b.reserved * b.bytesPerSector + piece * 65536;
        const len = Math.min(65536, b.fatSectors * b.bytesPerSector - piece * 65536);
        p = this.dev.readBytes(start, len);
        this.fatCache.set(piece, p, p.length);
      }
      return p[o % 65536];
    };
    if (b.type === 12) {
      const v = byte(off) | (byte(off + 1) << 8);
      return n & 1 ? v >> 4 : v & 0xfff;
    }
    if (b.type === 16) return byte(off) | (byte(off + 1) << 8);
    return (byte(off) | (byte(off + 1) << 8) | (byte(off + 2) << 16) | (byte(off + 3) << 24)) & FAT32_MASK;
  }

  private isEoc(v: number): boolean {
    return v >= (this.bpb.type === 12 ? 0xff8 : this.bpb.type === 16 ? 0xfff8 : 0x0ffffff8);
  }

  /**
   * Follow the chain from `first` (§4) for at most `limit` clusters (to the end-of-chain mark
   * when undefined): runs of [cluster, count]. A loop, a free or bad cluster, or a number outside
   * the volume inside the chain is an ImageError.
   */
  chain(first: number, limit: number | undefined, what: string): { runs: [number, number][]; clusters: number } {
    const key = first * 2 + (limit === undefined ? 1 : 0);
    const hit = this.chains.get(key);
    if (hit && (limit === undefined || hit.clusters >= limit)) return hit;
    const maxC = this.bpb.clusterCount + 1;
    const runs: [number, number][] = [];
    let small: Set<number> | undefined = new Set();
    let bitmap: Uint8Array | undefined;
    let c = first, n = 0;
    for (;;) {
      if (c < 2 || c > maxC) throw corrupt("E_FAT_CHAIN", `${what}: cluster ${c} (after ${n} clusters) lies outside 2..${maxC}`);
      if (small) {
        if (small.has(c)) throw corrupt("E_FAT_CHAIN_LOOP", `${what}: cluster chain loops back to cluster ${c} after ${n} clusters`);
        small.add(c);
        if (small.size > SMALL_CHAIN) {
          bitmap = new Uint8Array((maxC >> 3) + 1);
          for (const x of small) bitmap[x >> 3] |= 1 << (x & 7);
          small = undefined;
        }
      } else if (bitmap) {
        if (bitmap[c >> 3] & (1 << (c & 7))) throw corrupt("E_FAT_CHAIN_LOOP", `${what}: cluster chain loops back to cluster ${c} after ${n} clusters`);
        bitmap[c >> 3] |= 1 << (c & 7);
      }
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === c) last[1]++; else runs.push([c, 1]);
      n++;
      if (limit !== undefined && n >= limit) break;
      const next = this.fatEntry(c);
      if (this.isEoc(next)) break;
      if (next === 0) throw corrupt("E_FAT_CHAIN", `${what}: cluster ${c} links to a free cluster`);
      c = next;
    }
    const r = { runs, clusters: n };
    this.chains.set(key, r, 1);
    return r;
  }

  private clusterOffset(c: number): number {
    return (this.bpb.firstDataSector + (c - 2) * this.bpb.sectorsPerCluster) * this.bpb.bytesPerSector;
  }

  /** The bytes of a directory: the fixed FAT12/16 root region, or a cluster chain. */
  private dirBytes(e: Entry): Buffer {
    const b = this.bpb;
    if (e.cluster === 0) {
      if (e !== this.rootEntry && e.at !== -1) return Buffer.alloc(0);
      return this.dev.readBytes(b.rootDirSector * b.bytesPerSector, b.rootEntries * 32);
    }
    const { runs, clusters } = this.chain(e.cluster, Math.floor(MAX_FAT_DIR_BYTES / b.clusterBytes) + 1, `directory ${e.name || "/"}`);
    if (clusters * b.clusterBytes > MAX_FAT_DIR_BYTES) {
      // The capped walk stopped early: find out whether the chain really continues.
      const last = runs[runs.length - 1];
      if (!this.isEoc(this.fatEntry(last[0] + last[1] - 1))) {
        throw overLimit("E_FAT_DIR_TOO_LARGE", `directory ${e.name || "/"} is larger than ${MAX_FAT_DIR_BYTES} bytes (65536 entries)`);
      }
    }
    return Buffer.concat(runs.map(([c, n]) => this.dev.readBytes(this.clusterOffset(c), n * b.clusterBytes)));
  }

  /** §6-7: the entries of a directory, long names checked against their short-name checksum. */
  private directory(e: Entry): Map<string, Entry> {
    const key = e.at;
    const hit = this.dirs.get(key);
    if (hit) return hit;
    if (!e.dir) throw new ImageError("E_FS_NOT_DIRECTORY", "usage", `${e.name} is not a directory`);
    const buf = this.dirBytes(e);
    const base = e.cluster === 0 ? this.bpb.rootDirSector * this.bpb.bytesPerSector : -1;
    const map = new Map<string, Entry>();
    let lfn: string[] = [], lfnOrd = 0, lfnSum = -1;
    for (let p = 0; p + 32 <= buf.length; p += 32) {
      const d = buf.subarray(p, p + 32);
      if (d[0] === 0) break;
      if (d[0] === DIR_FREE) { lfn = []; lfnOrd = 0; continue; }
      const attr = d[11];
      if ((attr & ATTR_LONG_NAME_MASK) === ATTR_LONG_NAME) {
        const ord = d[0] & 0x3f;
        if (d[0] & LAST_LONG_ENTRY) { lfn = []; lfnOrd = ord; lfnSum = d[13]; }
        else if (ord !== lfnOrd - 1 || d[13] !== lfnSum) { lfn = []; lfnOrd = 0; continue; }
        else lfnOrd = ord;
        if (ord === 0 || ord > 20) { lfn = []; lfnOrd = 0; continue; }
        const units = Buffer.concat([d.subarray(1, 11), d.subarray(14, 26), d.subarray(28, 32)]);
        lfn[ord - 1] = units.toString("utf16le");
        continue;
      }
      const raw = d.subarray(0, 11);
      let longName: string | undefined;
      if (lfnOrd === 1 && lfn.length && lfnSum === shortNameChecksum(raw)) {
        const full = lfn.join("");
        const z = full.indexOf("\u0000");
        longName = z < 0 ? full : full.slice(0, z);
      }
      lfn = []; lfnOrd = 0;
      if (attr & ATTR_VOLUME_ID) {
        if (e === this.rootEntry) this.label = raw.toString("latin1").replace(/ +$/, "") || this.label;
        continue;
      }
      const shortName = shortNameText(raw, d[12]);
      if (shortName === "." || shortName === "..") continue;
      const hi = this.bpb.type === 32 ? d.readUInt16LE(20) : 0;
      const ent: Entry = {
        name: longName || shortName, shortName, dir: (attr & ATTR_DIRECTORY) !== 0,
        cluster: (hi << 16 | d.readUInt16LE(26)) >>> 0, size: d.readUInt32LE(28),
        at: base >= 0 ? base + p : this.entryOffset(e, p),
      };
      if (ent.dir && ent.cluster === e.cluster && e.cluster !== 0) {
        throw corrupt("E_FAT_DIR_LOOP", `directory entry ${ent.name} in ${e.name || "/"} names its own directory's cluster ${ent.cluster}`);
      }
      if (!map.has(fold(ent.name))) map.set(fold(ent.name), ent);
      if (!map.has(fold(shortName))) map.set(fold(shortName), ent);
    }
    this.dirs.set(key, map, 1);
    return map;
  }

  /** Volume byte offset of byte `p` of a cluster-chained directory. */
  private entryOffset(dir: Entry, p: number): number {
    const cb = this.bpb.clusterBytes;
    let idx = Math.floor(p / cb);
    for (const [c, n] of this.chain(dir.cluster, Math.floor(MAX_FAT_DIR_BYTES / cb) + 1, "directory").runs) {
      if (idx < n) return this.clusterOffset(c + idx) + (p % cb);
      idx -= n;
    }
    return -2;
  }

  private entry(h: FileHandle): Entry { return (h as unknown as FatHandle).e; }
  private handle(e: Entry): FileHandle { return { __fileHandle: true, e } as FatHandle as FileHandle; }

  root(): FileHandle { return this.handle(this.rootEntry); }

  stat(h: FileHandle): FileStat {
    const e = this.entry(h);
    return { type: e.dir ? "dir" : "file", size: e.dir ? 0 : e.size, id: e.at };
  }

  readdir(h: FileHandle): string[] {
    const seen = new Set<Entry>();
    for (const e of this.directory(this.entry(h)).values()) seen.add(e);
    return [...seen].map((e) => e.name);
  }

  /** Case-insensitive, by long or 8.3 name (Windows' and Linux vfat's default). */
  lookup(dir: FileHandle, name: string): FileHandle | undefined {
    const e = this.directory(this.entry(dir)).get(fold(name));
    return e ? this.handle(e) : undefined;
  }

  private fileRuns(e: Entry): [number, number][] {
    if (e.dir) throw new ImageError("E_FS_IS_DIRECTORY", "usage", `${e.name} is a directory`);
    if (e.size === 0) return [];
    const need = Math.ceil(e.size / this.bpb.clusterBytes);
    if (need > this.bpb.clusterCount) {
      throw corrupt("E_FAT_CHAIN", `file ${e.name} claims ${e.size} bytes (${need} clusters); the volume has ${this.bpb.clusterCount}`);
    }
    const { runs, clusters } = this.chain(e.cluster, need, `file ${e.name}`);
    if (clusters < need) {
      throw corrupt("E_FAT_CHAIN", `file ${e.name} is ${e.size} bytes (${need} clusters) but its cluster chain ends after ${clusters}`);
    }
    return runs;
  }

  read(h: FileHandle, offset: number, length: number): Buffer {
    const e = this.entry(h);
    const runs = this.fileRuns(e);
    const end = Math.min(e.size, offset + Math.max(0, length));
    if (offset >= end) return Buffer.alloc(0);
    const out = Buffer.alloc(end - offset);
    const cb = this.bpb.clusterBytes;
    let pos = 0;
    for (const [c, n] of runs) {
      const rs = pos, re = pos + n * cb;
      pos = re;
      if (re <= offset) continue;
      if (rs >= end) break;
      const s = Math.max(rs, offset), t = Math.min(re, end);
      for (let q = s; q < t; q += READ_CHUNK) {
        const len = Math.min(READ_CHUNK, t - q);
        this.dev.readBytes(this.clusterOffset(c) + (q - rs), len).copy(out, q - offset);
      }
    }
    return out;
  }

  readlink(h: FileHandle): string {
    throw new ImageError("E_FS_NOT_SYMLINK", "usage", `${this.entry(h).name}: FAT has no symbolic links`);
  }

  /** Sectors of the file's clusters (the last one cut at the file size), as whole-disk LBAs. */
  extents(h: FileHandle): Extent[] {
    const e = this.entry(h);
    let runs: [number, number][];
    let size: number;
    if (e.dir) {
      if (e.cluster === 0) {
        const b = this.bpb;
        return this.toExtents([], b.rootDirSector * b.bytesPerSector, b.rootEntries * 32);
      }
      const ch = this.chain(e.cluster, Math.floor(MAX_FAT_DIR_BYTES / this.bpb.clusterBytes) + 1, `directory ${e.name}`);
      runs = ch.runs;
      size = ch.clusters * this.bpb.clusterBytes;
    } else {
      runs = this.fileRuns(e);
      size = e.size;
    }
    const out: Extent[] = [];
    let pos = 0;
    for (const [c, n] of runs) {
      const len = Math.min(n * this.bpb.clusterBytes, size - pos);
      pos += n * this.bpb.clusterBytes;
      if (len <= 0) break;
      this.toExtents(out, this.clusterOffset(c), len);
    }
    return out;
  }

  /** Append the whole-disk sectors of bytes [byte, byte+len) of the volume to `out`. */
  private toExtents(out: Extent[], byte: number, len: number): Extent[] {
    const ss = this.dev.sectorSize;
    const lba = Math.floor(byte / ss);
    pushDiskRuns(out, this.dev, lba, Math.ceil((byte + len) / ss) - lba);
    return out;
  }

  checkDirty(): void {
    const b = this.bpb;
    if (b.type === 12) return;
    const raw = this.fatEntry(1);
    const bit = b.type === 16 ? FAT16_CLN_SHUT : FAT32_CLN_SHUT;
    if (!(raw & bit)) this.dev.info.findings.push(finding("FAT_DIRTY", { uuid: this.uuid ?? "(no id)", fat1: hex(raw, b.type / 4) }));
  }
}

/** Open a FAT12/16/32 volume read-only. Throws ImageError (E_FAT_*) for an invalid one. FSInfo is ignored. */
export function openFat(dev: BlockDevice): FileSystem & { details: Record<string, unknown> } {
  const devBytes = dev.sectorCount * dev.sectorSize;
  if (devBytes < 512) throw truncated("E_FAT_TRUNCATED", `device of ${devBytes} bytes holds no boot sector`);
  const bpb = parseBpb(dev.readBytes(0, 512));
  if (bpb.totalSectors * bpb.bytesPerSector > devBytes) {
    throw truncated("E_FAT_TRUNCATED", `FAT volume is ${bpb.totalSectors} sectors of ${bpb.bytesPerSector} bytes but the device holds ${devBytes} bytes`);
  }
  const fs = new FatFs(dev, bpb);
  fs.checkDirty();
  fs.readdir(fs.root());                       // reads the volume label entry
  return fs;
}
