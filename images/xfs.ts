// Read-only XFS v4/v5 reader (XFS Algorithms & Data Structures, 3rd ed.: "Allocation Groups" 13.1
// xfs_sb, "On-disk Inode" 14 xfs_dinode, data forks 15, directories 16, symbolic links 17).
import { corrupt, hex, ImageError, overLimit, truncated, unsupported } from "./errors.ts";
import type { BlockDevice } from "./block.ts";
import { pushDiskRuns, type Extent, type FileHandle, type FileStat, type FileSystem, type FileType } from "./fs.ts";
import { crc32c } from "./crc.ts";
import { uuidText } from "./fs-identify.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { decodeExtents, walkBmbtRoot, type BmapContext, type XfsExtent } from "./xfs-bmap.ts";
import { parseDataBlock, parseShortform, XFS_DIR2_LEAF_OFFSET, DIR3_CRC_OFF, type DirEntry, type DirFormat } from "./xfs-dir.ts";
import { MAX_XFS_AGCOUNT, MAX_XFS_DIR_BLOCKS, MAX_XFS_DIR_ENTRIES, MAX_XFS_READ_BYTES } from "./limits.ts";

/** "XFSB" (13.1). */
const XFS_SB_MAGIC = 0x58465342;
/** sb_versionnum bits (13.1): version in the low nibble, directory v2, more feature bits. */
const XFS_SB_VERSION_NUMBITS = 0x000f;
const XFS_SB_VERSION_DIRV2BIT = 0x2000;
const XFS_SB_VERSION_MOREBITSBIT = 0x8000;
/** sb_features2: directory entries carry a file type. */
const XFS_SB_VERSION2_FTYPE = 0x0200;
/** sb_features_incompat (v5): ftype, sparse inodes, meta uuid, bigtime, needsrepair, nrext64. */
const XFS_SB_FEAT_INCOMPAT_FTYPE = 0x01;
const XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR = 0x10;
/** Incompat bits whose layouts we read (through exchange-range, parent pointers, metadir, zoned: 0x3ff). */
const XFS_SB_FEAT_INCOMPAT_KNOWN = 0x3ff;
/** Superblock field offsets (13.1). */
const SB_CRC_OFF = 224;
/** "IN" (14.1 di_magic). */
const XFS_DINODE_MAGIC = 0x494e;
/** Literal area (data fork) starts after the core: 100 bytes for v1/v2 inodes, 176 for v3 (14.1). */
const DINODE_CORE_V2 = 100;
const DINODE_CORE_V3 = 176;
const DINODE_CRC_OFF = 100;
const DINODE_INO_OFF = 152;
/** di_format (14.1). */
const XFS_DINODE_FMT_DEV = 0, XFS_DINODE_FMT_LOCAL = 1, XFS_DINODE_FMT_EXTENTS = 2, XFS_DINODE_FMT_BTREE = 3;
/** di_flags: data on the realtime device; di_flags2: 64-bit extent counters. */
const XFS_DIFLAG_REALTIME = 0x1;
const XFS_DIFLAG2_NREXT64 = 0x10;
/** Remote symlink block header "XSLM" (17.2), 56 bytes on v5. */
const XFS_SYMLINK_MAGIC = 0x58534c4d;
const SYMLINK_HDR_V5 = 56;
const SYMLINK_CRC_OFF = 12;
/** XFS_SYMLINK_MAXLEN (17). */
const XFS_SYMLINK_MAXLEN = 1024;

/** Caches: parsed inodes and directory entries (in entries, all directories together). */
const INODE_CACHE_ENTRIES = 4096;
const DIR_CACHE_ENTRIES = 262144;
/** Largest single read() we serve, and the chunk we fetch from the device at a time. */
const READ_CHUNK_BYTES = 4 * 2 ** 20;
/** CRC mismatch findings per filesystem beyond which we stay silent. */
const MAX_CRC_FINDINGS = 8;

defineFindings([
  {
    code: "XFS_CRC_MISMATCH", severity: "warning", stage: "image",
    title: "XFS metadata checksum mismatch",
    message: "XFS {what}: stored CRC {stored}, computed {computed}",
    remedy: "run `xfs_repair -n` on the partition (then `xfs_repair`) before converting; the kernel refuses metadata with bad CRCs",
    explain: "XFS v5 protects every metadata block with CRC-32C. The Linux kernel rejects a block whose CRC does not match "
      + "(EFSBADCRC), so a file or directory behind it is unreadable at boot even though bootgate read it.",
  },
  {
    code: "XFS_NEEDS_REPAIR", severity: "error", stage: "image",
    title: "XFS marked as needing repair",
    message: "the XFS filesystem {uuid} has the NEEDSREPAIR incompat flag set; the kernel will not mount it",
    remedy: "run `xfs_repair` on the partition in the source VM or on the image",
    explain: "xfs_repair sets NEEDSREPAIR while it rewrites metadata and clears it when done. A filesystem left with the flag "
      + "(an interrupted repair or upgrade) cannot be mounted.",
  },
  {
    code: "XFS_V4_FORMAT", severity: "info", stage: "image",
    title: "XFS v4 (no metadata CRCs)",
    message: "the XFS filesystem {uuid} uses the v4 on-disk format",
    remedy: "keep the guest's kernel; to move to newer kernels, back up with `xfsdump`, recreate with `mkfs.xfs -m crc=1` and restore",
    explain: "XFS v4 is deprecated; kernels built without CONFIG_XFS_SUPPORT_V4 (RHEL 9 and later) refuse to mount it. "
      + "The guest's own kernel (RHEL/CentOS 7 era) reads it.",
  },
]);

export interface XfsSuper {
  blockSize: number; blockLog: number; sectSize: number; dblocks: number;
  agBlocks: number; agBlkLog: number; agCount: number;
  inodeSize: number; inoPBlog: number; rootIno: number;
  version: 4 | 5; ftype: boolean; dirBlkLog: number; incompat: number;
  label: string; uuid: string;
}

interface XfsInode {
  ino: number; mode: number; type: FileType; size: number; format: number; nextents: number;
  version: number; realtime: boolean;
  /** Byte offset of the inode in the filesystem. */
  pos: number;
  fork: Buffer;
  map?: XfsExtent[];
}

interface XfsHandle { readonly ino: number }

const TWO32 = 2 ** 32;
const u64 = (b: Buffer, p: number): number => b.readUInt32BE(p) * TWO32 + b.readUInt32BE(p + 4);
const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/** Cheap signature check: "XFSB" at byte 0. */
export function probe(dev: BlockDevice): boolean {
  try { return dev.readBytes(0, 4).readUInt32BE(0) === XFS_SB_MAGIC; } catch { return false; }
}

/** Parse and validate the primary superblock (13.1). */
export function parseSuper(sb: Buffer): XfsSuper {
  const bad = (msg: string) => corrupt("E_XFS_SUPERBLOCK", `XFS superblock: ${msg}`);
  const magic = sb.readUInt32BE(0);
  if (magic !== XFS_SB_MAGIC) throw bad(`magic ${hex(magic)}, expected ${hex(XFS_SB_MAGIC)} ("XFSB")`);
  const blockSize = sb.readUInt32BE(4), blockLog = sb[120];
  if (!isPow2(blockSize) || blockSize < 512 || blockSize > 65536 || 1 << blockLog !== blockSize) {
    throw bad(`block size ${blockSize} (log ${blockLog})`);
  }
  const dblocks = u64(sb, 8);
  const sectSize = sb.readUInt16BE(102), sectLog = sb[121];
  if (!isPow2(sectSize) || sectSize < 512 || sectSize > blockSize || 1 << sectLog !== sectSize) throw bad(`sector size ${sectSize} (log ${sectLog})`);
  const inodeSize = sb.readUInt16BE(104), inodeLog = sb[122], inoPBlock = sb.readUInt16BE(106), inoPBlog = sb[123];
  if (!isPow2(inodeSize) || inodeSize < 256 || inodeSize > 2048 || 1 << inodeLog !== inodeSize
      || inodeSize > blockSize || inoPBlock !== blockSize / inodeSize || 1 << inoPBlog !== inoPBlock) {
    throw bad(`inode size ${inodeSize} (log ${inodeLog}), ${inoPBlock} per block (log ${inoPBlog}) with ${blockSize}-byte blocks`);
  }
  const agBlocks = sb.readUInt32BE(84), agCount = sb.readUInt32BE(88), agBlkLog = sb[124];
  if (agBlocks < 1 || agBlkLog > 31 || 2 ** agBlkLog < agBlocks || (agBlkLog > 0 && 2 ** (agBlkLog - 1) >= agBlocks)) {
    throw bad(`AG size ${agBlocks} blocks with log ${agBlkLog}`);
  }
  if (agCount < 1 || agCount > MAX_XFS_AGCOUNT) throw bad(`AG count ${agCount} (allowed 1..${MAX_XFS_AGCOUNT})`);
  if (!Number.isSafeInteger(dblocks * blockSize) || dblocks > agCount * agBlocks || dblocks <= (agCount - 1) * agBlocks) {
    throw bad(`${dblocks} data blocks do not fit ${agCount} AGs of ${agBlocks} blocks`);
  }
  const vnum = sb.readUInt16BE(100), ver = vnum & XFS_SB_VERSION_NUMBITS;
  if (ver !== 4 && ver !== 5) throw unsupported("E_XFS_VERSION", `XFS superblock version ${ver} (versionnum ${hex(vnum, 4)}); only v4 and v5 are read`);
  if (ver === 4 && !(vnum & XFS_SB_VERSION_DIRV2BIT)) throw unsupported("E_XFS_VERSION", `XFS v4 without version 2 directories (versionnum ${hex(vnum, 4)})`);
  const features2 = vnum & XFS_SB_VERSION_MOREBITSBIT ? sb.readUInt32BE(200) : 0;
  const incompat = ver === 5 ? sb.readUInt32BE(216) : 0;
  if (incompat & ~XFS_SB_FEAT_INCOMPAT_KNOWN) {
    throw unsupported("E_XFS_FEATURE", `XFS incompatible features ${hex(incompat)} include unknown bits ${hex(incompat & ~XFS_SB_FEAT_INCOMPAT_KNOWN)}`);
  }
  const dirBlkLog = sb[192];
  if (blockLog + dirBlkLog > 16) throw bad(`directory block log ${dirBlkLog} with ${blockSize}-byte blocks (over 64 KiB)`);
  if (ver === 5 && inodeSize < 512) throw bad(`v5 filesystem with ${inodeSize}-byte inodes (minimum 512)`);
  const rootIno = u64(sb, 56);
  if (!Number.isSafeInteger(rootIno)) throw bad(`root inode number out of range`);
  return {
    blockSize, blockLog, sectSize, dblocks, agBlocks, agBlkLog, agCount, inodeSize, inoPBlog, rootIno,
    version: ver, dirBlkLog, incompat,
    ftype: ver === 5 ? (incompat & XFS_SB_FEAT_INCOMPAT_FTYPE) !== 0 : (features2 & XFS_SB_VERSION2_FTYPE) !== 0,
    label: sb.subarray(108, 120).toString("latin1").replace(/\0.*$/s, ""),
    uuid: uuidText(sb.subarray(32, 48)),
  };
}

/** Open an XFS filesystem on `dev` (a partition view or a logical volume). */
export function openXfs(dev: BlockDevice): XfsFileSystem {
  return new XfsFileSystem(dev);
}

export class XfsFileSystem implements FileSystem {
  readonly kind = "xfs";
  readonly label?: string;
  readonly uuid: string;
  readonly sb: XfsSuper;
  readonly findings: Finding[] = [];
  private inodes = new Map<number, XfsInode>();
  private dirs = new Map<number, Map<string, number>>();
  private dirEntries = 0;
  private crcFindings = 0;
  private bmap: BmapContext;
  private dirFmt: DirFormat;

  constructor(readonly dev: BlockDevice) {
    const devBytes = dev.sectorCount * dev.sectorSize;
    if (devBytes < 512) throw truncated("E_XFS_TRUNCATED", `device of ${devBytes} bytes cannot hold an XFS superblock`);
    const head = dev.readBytes(0, Math.min(devBytes, 4096));
    if (head.length < 512) throw truncated("E_XFS_TRUNCATED", `only ${head.length} bytes before the device end`);
    this.sb = parseSuper(head);
    const sb = this.sb;
    this.label = sb.label || undefined;
    this.uuid = sb.uuid;
    const fsBytes = sb.dblocks * sb.blockSize;
    if (fsBytes > devBytes) {
      throw truncated("E_XFS_TRUNCATED", `XFS ${sb.uuid} is ${fsBytes} bytes (${sb.dblocks} blocks of ${sb.blockSize}) but the device holds only ${devBytes}`);
    }
    if (sb.version === 5 && head.length >= sb.sectSize) this.checkCrc(head.subarray(0, sb.sectSize), SB_CRC_OFF, "superblock");
    if (sb.incompat & XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR) this.note(finding("XFS_NEEDS_REPAIR", { uuid: sb.uuid }));
    if (sb.version === 4) this.note(finding("XFS_V4_FORMAT", { uuid: sb.uuid }));
    this.dirFmt = { ftype: sb.ftype, v5: sb.version === 5 };
    this.bmap = {
      blockSize: sb.blockSize, v5: sb.version === 5,
      readFsBlock: (fsbno) => this.readBytes(this.fsbToByte(fsbno), sb.blockSize),
      checkCrc: (buf, off, what) => this.checkCrc(buf, off, what),
      checkRange: (fsbno, count, what) => { this.fsbToByte(fsbno, count, what); },
    };
    const root = this.inode(sb.rootIno);
    if (root.type !== "dir") throw corrupt("E_XFS_INODE", `root inode ${sb.rootIno} is not a directory (mode ${hex(root.mode, 4)})`);
  }

  // ---- FileSystem ----

  root(): FileHandle { return this.handle(this.sb.rootIno); }

  lookup(dir: FileHandle, name: string): FileHandle | undefined {
    const ino = this.dirMap(this.ino(dir)).get(name);
    return ino === undefined ? undefined : this.handle(ino);
  }

  stat(h: FileHandle): FileStat {
    const i = this.inode(this.ino(h));
    return { type: i.type, size: i.size, mode: i.mode, id: i.ino };
  }

  readdir(h: FileHandle): string[] { return [...this.dirMap(this.ino(h)).keys()]; }

  read(h: FileHandle, offset: number, length: number): Buffer {
    const i = this.inode(this.ino(h));
    if (i.type !== "file") throw new ImageError("E_FS_NOT_FILE", "usage", `inode ${i.ino} is a ${i.type}, not a regular file`);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new ImageError("E_READ_RANGE", "usage", `bad file offset ${offset}`);
    const n = Math.max(0, Math.min(length, i.size - offset));
    if (n > MAX_XFS_READ_BYTES) throw overLimit("E_FS_READ_LIMIT", `read of ${n} bytes from inode ${i.ino} exceeds the ${MAX_XFS_READ_BYTES}-byte limit`);
    return this.readData(i, offset, n);
  }

  readlink(h: FileHandle): string {
    const i = this.inode(this.ino(h));
    if (i.type !== "symlink") throw new ImageError("E_FS_NOT_SYMLINK", "usage", `inode ${i.ino} is a ${i.type}, not a symbolic link`);
    if (i.size < 1 || i.size > XFS_SYMLINK_MAXLEN) throw corrupt("E_XFS_SYMLINK", `symlink inode ${i.ino} has length ${i.size} (allowed 1..${XFS_SYMLINK_MAXLEN})`);
    if (i.format === XFS_DINODE_FMT_LOCAL) return i.fork.subarray(0, i.size).toString("utf8");
    if (this.sb.version === 4) return this.readData(i, 0, i.size).toString("utf8");
    // v5 remote symlink: each block starts with a 56-byte xfs_dsymlink_hdr.
    const parts: Buffer[] = [];
    let got = 0;
    for (const e of this.extentMap(i)) {
      for (let k = 0; k < e.count && got < i.size; k++) {
        const fsbno = e.fsbno + k;
        const b = this.readBytes(this.fsbToByte(fsbno), this.sb.blockSize);
        const magic = b.readUInt32BE(0), off = b.readUInt32BE(4), bytes = b.readUInt32BE(8);
        if (magic !== XFS_SYMLINK_MAGIC) throw corrupt("E_XFS_SYMLINK", `symlink inode ${i.ino} block ${fsbno}: magic ${hex(magic)}, expected ${hex(XFS_SYMLINK_MAGIC)}`);
        if (off !== got || bytes < 1 || bytes > this.sb.blockSize - SYMLINK_HDR_V5 || got + bytes > i.size) {
          throw corrupt("E_XFS_SYMLINK", `symlink inode ${i.ino} block ${fsbno}: offset ${off}, ${bytes} bytes after ${got} of ${i.size}`);
        }
        this.checkCrc(b, SYMLINK_CRC_OFF, `symlink block ${fsbno} of inode ${i.ino}`);
        parts.push(b.subarray(SYMLINK_HDR_V5, SYMLINK_HDR_V5 + bytes));
        got += bytes;
      }
    }
    if (got !== i.size) throw corrupt("E_XFS_SYMLINK", `symlink inode ${i.ino}: ${got} of ${i.size} bytes found in its blocks`);
    return Buffer.concat(parts).toString("utf8");
  }

  extents(h: FileHandle): Extent[] {
    const i = this.inode(this.ino(h));
    const out: Extent[] = [];
    if (i.format === XFS_DINODE_FMT_LOCAL || i.format === XFS_DINODE_FMT_DEV) {
      // Inline data lives in the inode itself.
      this.pushDisk(out, i.pos, this.sb.inodeSize);
      return out;
    }
    if (i.realtime) return out;
    const lastBlock = Math.ceil(i.size / this.sb.blockSize);
    for (const e of this.extentMap(i)) {
      if (e.unwritten || e.off >= lastBlock) continue;
      const count = Math.min(e.count, lastBlock - e.off);
      this.pushDisk(out, this.fsbToByte(e.fsbno, count), count * this.sb.blockSize);
    }
    return out;
  }

  // ---- inodes ----

  private handle(ino: number): FileHandle { return { ino } as XfsHandle as unknown as FileHandle; }

  private ino(h: FileHandle): number {
    const ino = (h as unknown as XfsHandle).ino;
    if (typeof ino !== "number") throw new ImageError("E_FS_HANDLE", "usage", "file handle does not come from this XFS filesystem");
    return ino;
  }

  /** Byte offset of inode `ino`: AG number, AG block and slot are packed as agno | agbno | offset (14.2). */
  private inodePos(ino: number): number {
    const sb = this.sb;
    const perAg = 2 ** (sb.agBlkLog + sb.inoPBlog);
    const agno = Math.floor(ino / perAg), rest = ino % perAg;
    const agbno = Math.floor(rest / 2 ** sb.inoPBlog), slot = rest % 2 ** sb.inoPBlog;
    if (agno >= sb.agCount || agbno >= sb.agBlocks || agno * sb.agBlocks + agbno >= sb.dblocks) {
      throw corrupt("E_XFS_INODE", `inode number ${ino} (AG ${agno}, block ${agbno}) lies outside the filesystem`);
    }
    return (agno * sb.agBlocks + agbno) * sb.blockSize + slot * sb.inodeSize;
  }

  private inode(ino: number): XfsInode {
    const hit = this.inodes.get(ino);
    if (hit) return hit;
    const sb = this.sb;
    const pos = this.inodePos(ino);
    const b = this.readBytes(pos, sb.inodeSize);
    const bad = (msg: string) => corrupt("E_XFS_INODE", `inode ${ino}: ${msg}`);
    const magic = b.readUInt16BE(0);
    if (magic !== XFS_DINODE_MAGIC) throw bad(`magic ${hex(magic, 4)}, expected ${hex(XFS_DINODE_MAGIC, 4)} ("IN")`);
    const mode = b.readUInt16BE(2), version = b[4], format = b[5];
    if (version < 1 || version > 3 || (version === 3) !== (sb.version === 5)) throw bad(`inode version ${version} on an XFS v${sb.version} filesystem`);
    if (version === 3) {
      this.checkCrc(b, DINODE_CRC_OFF, `inode ${ino}`);
      const self = u64(b, DINODE_INO_OFF);
      if (self !== ino) throw bad(`records its own number as ${self}`);
    }
    const size = u64(b, 56);
    if (!Number.isSafeInteger(size)) throw bad(`size field ${hex(b.readUInt32BE(56))}${b.readUInt32BE(60).toString(16).padStart(8, "0")} is out of range`);
    const flags2 = version === 3 ? u64(b, 120) : 0;
    const nextents = version === 3 && (flags2 & XFS_DIFLAG2_NREXT64) ? u64(b, 24) : b.readUInt32BE(76);
    const forkOff = b[82];
    const lit = version === 3 ? DINODE_CORE_V3 : DINODE_CORE_V2;
    const dsize = forkOff ? forkOff * 8 : sb.inodeSize - lit;
    if (lit + dsize > sb.inodeSize) throw bad(`attribute fork offset ${forkOff} leaves no room in a ${sb.inodeSize}-byte inode`);
    const t = mode & 0xf000;
    const type: FileType = t === 0x8000 ? "file" : t === 0x4000 ? "dir" : t === 0xa000 ? "symlink" : "other";
    if (format > XFS_DINODE_FMT_BTREE) throw bad(`data fork format ${format}`);
    if (type !== "other" && format === XFS_DINODE_FMT_DEV) throw bad(`a ${type} with a device data fork`);
    if (format === XFS_DINODE_FMT_LOCAL && size > dsize) throw bad(`${size} bytes of inline data in a ${dsize}-byte fork`);
    const node: XfsInode = {
      ino, mode, type, size, format, nextents, version, pos,
      realtime: (b.readUInt16BE(90) & XFS_DIFLAG_REALTIME) !== 0,
      fork: Buffer.from(b.subarray(lit, lit + dsize)),
    };
    if (this.inodes.size >= INODE_CACHE_ENTRIES) this.inodes.delete(this.inodes.keys().next().value as number);
    this.inodes.set(ino, node);
    return node;
  }

  /** The data fork's extent list (15.1 extents, 15.3 B+tree). */
  private extentMap(i: XfsInode): XfsExtent[] {
    if (i.map) return i.map;
    const out: XfsExtent[] = [];
    if (i.format === XFS_DINODE_FMT_EXTENTS) {
      if (i.nextents * 16 > i.fork.length) {
        throw corrupt("E_XFS_BMAP", `inode ${i.ino}: ${i.nextents} extents do not fit its ${i.fork.length}-byte data fork`);
      }
      decodeExtents(i.fork, 0, i.nextents, out, this.bmap, i.ino);
    } else if (i.format === XFS_DINODE_FMT_BTREE) {
      walkBmbtRoot(i.fork, this.bmap, i.ino, out);
    }
    i.map = out;
    return out;
  }

  // ---- data ----

  private readData(i: XfsInode, offset: number, n: number): Buffer {
    const out = Buffer.alloc(n);
    if (n === 0) return out;
    if (i.format === XFS_DINODE_FMT_LOCAL) {
      i.fork.copy(out, 0, offset, offset + n);
      return out;
    }
    if (i.realtime) throw unsupported("E_XFS_REALTIME", `inode ${i.ino} keeps its data on the realtime device`);
    const bs = this.sb.blockSize;
    const end = offset + n;
    for (const e of this.extentMap(i)) {
      const eStart = e.off * bs, eEnd = (e.off + e.count) * bs;
      if (eEnd <= offset || eStart >= end || e.unwritten) continue;
      let from = Math.max(eStart, offset);
      const to = Math.min(eEnd, end);
      const base = this.fsbToByte(e.fsbno, e.count);
      while (from < to) {
        const len = Math.min(to - from, READ_CHUNK_BYTES);
        this.readBytes(base + (from - eStart), len).copy(out, from - offset);
        from += len;
      }
    }
    return out;
  }

  /** Directory contents as name -> inode (16): short-form in the inode, else every data block. */
  private dirMap(ino: number): Map<string, number> {
    const hit = this.dirs.get(ino);
    if (hit) return hit;
    const i = this.inode(ino);
    if (i.type !== "dir") throw new ImageError("E_FS_NOT_DIR", "usage", `inode ${ino} is a ${i.type}, not a directory`);
    let entries: DirEntry[];
    if (i.format === XFS_DINODE_FMT_LOCAL) {
      entries = parseShortform(i.fork.subarray(0, i.size), this.dirFmt, ino).entries;
    } else if (i.format === XFS_DINODE_FMT_EXTENTS || i.format === XFS_DINODE_FMT_BTREE) {
      entries = this.readDirBlocks(i);
    } else {
      throw corrupt("E_XFS_DIR", `directory inode ${ino} has data fork format ${i.format}`);
    }
    const map = new Map<string, number>();
    for (const e of entries) if (!map.has(e.name)) map.set(e.name, e.ino);
    while (this.dirEntries + map.size > DIR_CACHE_ENTRIES && this.dirs.size > 0) {
      const k = this.dirs.keys().next().value as number;
      this.dirEntries -= this.dirs.get(k)!.size;
      this.dirs.delete(k);
    }
    this.dirs.set(ino, map);
    this.dirEntries += map.size;
    return map;
  }

  /** Scan the directory's data blocks: its address space below XFS_DIR2_LEAF_OFFSET (16.3-16.5). */
  private readDirBlocks(i: XfsInode): DirEntry[] {
    const sb = this.sb;
    const perDirBlk = 2 ** sb.dirBlkLog;
    const leafOff = XFS_DIR2_LEAF_OFFSET / sb.blockSize;
    const map = this.extentMap(i);
    let total = 0;
    const dblocks = new Set<number>();
    for (const e of map) {
      if (e.off >= leafOff) break;
      const end = Math.min(e.off + e.count, leafOff);
      total += end - e.off;
      if (total > MAX_XFS_DIR_BLOCKS * perDirBlk) {
        throw overLimit("E_XFS_DIR_SIZE", `directory inode ${i.ino} has more than ${MAX_XFS_DIR_BLOCKS} data blocks`);
      }
      for (let fb = e.off; fb < end; fb += 1) dblocks.add(Math.floor(fb / perDirBlk));
    }
    const out: DirEntry[] = [];
    const dirBlkBytes = sb.blockSize * perDirBlk;
    for (const db of [...dblocks].sort((a, b) => a - b)) {
      const buf = Buffer.alloc(dirBlkBytes);
      for (let k = 0; k < perDirBlk; k++) {
        const fb = db * perDirBlk + k;
        const e = findExtent(map, fb);
        if (!e || e.unwritten) throw corrupt("E_XFS_DIR", `directory inode ${i.ino}: block ${fb} of directory block ${db} is not mapped`);
        this.readBytes(this.fsbToByte(e.fsbno + (fb - e.off)), sb.blockSize).copy(buf, k * sb.blockSize);
      }
      parseDataBlock(buf, this.dirFmt, i.ino, db, (what) => this.checkCrc(buf, DIR3_CRC_OFF, what), out, MAX_XFS_DIR_ENTRIES);
    }
    return out;
  }

  // ---- addressing and device access ----

  /** Byte offset of AG-encoded block `fsbno` (agno << agblklog | agbno); checks [fsbno, +count) stays in one AG. */
  private fsbToByte(fsbno: number, count = 1, what = "block"): number {
    const sb = this.sb;
    const agno = Math.floor(fsbno / 2 ** sb.agBlkLog), agbno = fsbno % 2 ** sb.agBlkLog;
    const lin = agno * sb.agBlocks + agbno;
    if (agno >= sb.agCount || agbno + count > sb.agBlocks || lin + count > sb.dblocks) {
      throw corrupt("E_XFS_BLOCK", `${what}: blocks ${fsbno}..+${count} (AG ${agno}, block ${agbno}) lie outside the filesystem`);
    }
    return lin * sb.blockSize;
  }

  private readBytes(pos: number, len: number): Buffer {
    if (pos + len > this.sb.dblocks * this.sb.blockSize) {
      throw corrupt("E_XFS_BLOCK", `read at byte ${pos} (+${len}) past the filesystem end`);
    }
    return this.dev.readBytes(pos, len);
  }

  /** Append the whole-disk sectors holding bytes [pos, pos+len) of the device, merging runs. */
  private pushDisk(out: Extent[], pos: number, len: number): void {
    const ss = this.dev.sectorSize;
    const lba = Math.floor(pos / ss), count = Math.ceil((pos + len) / ss) - lba;
    pushDiskRuns(out, this.dev, lba, count);
  }

  private checkCrc(buf: Buffer, off: number, what: string): void {
    const stored = buf.readUInt32LE(off), computed = crc32c(buf, off);
    if (stored === computed || this.crcFindings >= MAX_CRC_FINDINGS) return;
    this.crcFindings++;
    this.note(finding("XFS_CRC_MISMATCH", { what, stored: hex(stored), computed: hex(computed) }, { uuid: this.uuid }));
  }

  private note(f: Finding): void {
    this.findings.push(f);
    const list = this.dev.info?.findings;
    if (list && !list.some((g) => g.code === f.code && g.message === f.message)) list.push(f);
  }
}

function findExtent(map: XfsExtent[], fb: number): XfsExtent | undefined {
  let lo = 0, hi = map.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1, e = map[mid];
    if (fb < e.off) hi = mid - 1;
    else if (fb >= e.off + e.count) lo = mid + 1;
    else return e;
  }
  return undefined;
}
