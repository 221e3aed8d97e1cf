// The one request shape every disk read goes through (SeaBIOS disk_op_s / process_op): container
// drivers only fill a buffer from a virtual byte offset; bounds, transfer limits and the read log
// live here once.
import * as fs from "node:fs";
import * as path from "node:path";
import { ImageError, overLimit } from "./errors.ts";
import { FileSource, type ByteSource } from "./source.ts";
import { MAX_PARENT_DEPTH, MAX_READ_SECTORS, MAX_VIRTUAL_SIZE } from "./limits.ts";
import type { Finding } from "../emu/findings.ts";

export interface Geometry { cylinders: number; heads: number; sectorsPerTrack: number }

/** What a container says about itself; reported by `inspect` and used by the upload rules. */
export interface ContainerInfo {
  format: string;             // "raw" | "vhd" | "vhdx" | "vmdk" | "qcow2"
  subformat?: string;         // "fixed" | "dynamic" | "differencing" | "monolithicSparse" | ...
  path: string;
  fileSize: number;           // bytes of the image file itself (all extents for VMDK)
  virtualSize: number;        // bytes the guest sees
  sectorSize: number;         // logical sector size
  physicalSectorSize?: number;
  geometry?: Geometry;        // CHS as the container records it (VHD footer, VMDK ddb)
  creator?: string;           // VHD creator application, VMDK createType, ...
  diskId?: string;            // VHD unique id, VHDX page83 id, VMDK CID
  parent?: ContainerInfo;     // differencing parent / backing file
  /** Anomalies that do not stop the read, as findings (stage "image"). */
  findings: Finding[];
  details?: Record<string, unknown>;
}

/** A driver's view: fill `dst` with virtual-disk bytes from byte `offset` (zeros where unallocated). */
export interface VirtualDisk {
  info: ContainerInfo;
  readInto(dst: Buffer, offset: number): void;
  close(): void;
}

export interface ReadRecord { lba: number; count: number }

/** The disk as everything above the containers sees it. Synchronous: called from CPU hooks. */
export interface BlockDevice {
  readonly format: string;
  readonly sectorSize: number;
  readonly sectorCount: number;
  readonly info: ContainerInfo;
  read(lba: number, count: number): Uint8Array;
  /** Byte-granular read for parsers (partition tables, superblocks). */
  readBytes(offset: number, length: number): Buffer;
  /** Observers of every read (the disk map, the trace). */
  onRead: ((r: ReadRecord) => void)[];
  close(): void;
}

export class Disk implements BlockDevice {
  readonly format: string;
  readonly sectorSize: number;
  readonly sectorCount: number;
  readonly info: ContainerInfo;
  onRead: ((r: ReadRecord) => void)[] = [];
  private vd: VirtualDisk;

  constructor(vd: VirtualDisk) {
    this.vd = vd;
    this.info = vd.info;
    this.format = vd.info.format;
    this.sectorSize = vd.info.sectorSize;
    if (!(vd.info.virtualSize >= 0 && vd.info.virtualSize <= MAX_VIRTUAL_SIZE)) {
      throw overLimit("E_SIZE_LIMIT", `virtual size ${vd.info.virtualSize} bytes is beyond the ${MAX_VIRTUAL_SIZE / 2 ** 40} TiB limit`);
    }
    this.sectorCount = Math.floor(vd.info.virtualSize / this.sectorSize);
  }

  read(lba: number, count: number): Uint8Array {
    if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(count) || lba < 0 || count < 0) {
      throw new ImageError("E_READ_RANGE", "usage", `invalid read: LBA ${lba}, count ${count}`);
    }
    if (count > MAX_READ_SECTORS) {
      throw new ImageError("E_READ_RANGE", "usage", `read of ${count} sectors exceeds the ${MAX_READ_SECTORS}-sector limit`);
    }
    if (lba + count > this.sectorCount) {
      throw new ImageError("E_READ_RANGE", "usage",
        `read of LBA ${lba} (+${count}) lies past the last sector ${this.sectorCount - 1}`);
    }
    const buf = Buffer.alloc(count * this.sectorSize);
    if (count > 0) this.vd.readInto(buf, lba * this.sectorSize);
    for (const cb of this.onRead) cb({ lba, count });
    return buf;
  }

  readBytes(offset: number, length: number): Buffer { return readBytesVia(this, offset, length); }

  close(): void { this.vd.close(); }
}

/** Byte-granular read through a device's sector reads (every BlockDevice's readBytes). */
export function readBytesVia(dev: Pick<BlockDevice, "sectorSize" | "read">, offset: number, length: number): Buffer {
  const ss = dev.sectorSize;
  const first = Math.floor(offset / ss);
  const last = Math.ceil((offset + length) / ss);
  return Buffer.from(dev.read(first, last - first)).subarray(offset - first * ss, offset - first * ss + length);
}

/** Options and shared state for opening an image and its parents/extents. */
export interface OpenContext {
  /** Folders besides the image's own folder from which parents/extents may be opened. */
  allowDirs: string[];
  /** Realpaths already open in this chain (loop detection). */
  chain: string[];
  /** Open another image as a parent (differencing VHD/VHDX, qcow2 backing file). */
  openParent(from: ByteSource, candidates: string[], expectFormat?: string): VirtualDisk;
  /** Open a related plain file (VMDK extent) under the same confinement rules. */
  openRelated(from: ByteSource, name: string): ByteSource;
}

/**
 * Resolve a path named inside an untrusted image. Relative names resolve against the image's
 * folder; absolute ones are tried by their base name in that folder first, and as given only when
 * they lie inside the image's folder or an allowed folder. Never escapes those folders.
 */
export function confinePath(fromFile: string, name: string, allowDirs: string[]): string | undefined {
  const base = path.dirname(fs.realpathSync(fromFile));
  const roots = [base, ...allowDirs.map((d) => { try { return fs.realpathSync(d); } catch { return path.resolve(d); } })];
  const norm = name.replace(/\\/g, "/").replace(/^[A-Za-z]:/, "");
  const tries: string[] = [];
  if (!path.isAbsolute(norm) && !/^[A-Za-z]:/.test(name)) tries.push(path.resolve(base, norm));
  tries.push(path.join(base, path.basename(norm)));
  if (path.isAbsolute(norm)) tries.push(norm);
  for (const t of tries) {
    let real: string;
    try { real = fs.realpathSync(t); } catch { continue; }
    if (roots.some((r) => real === r || real.startsWith(r + path.sep))) return real;
  }
  return undefined;
}

export function parentDepthGuard(chain: string[], next: string): void {
  if (chain.includes(next)) {
    throw new ImageError("E_PARENT_LOOP", "corrupt", `parent chain loops back to ${path.basename(next)}`);
  }
  if (chain.length >= MAX_PARENT_DEPTH) {
    throw overLimit("E_PARENT_DEPTH", `parent chain deeper than ${MAX_PARENT_DEPTH} images`);
  }
}

export { FileSource };
