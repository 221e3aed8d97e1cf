// The read-only filesystem interface every guest filesystem reader implements (FAT, ext2/3/4,
// XFS, NTFS), path resolution with symlinks kept inside the filesystem, and partition views.
import { ImageError } from "./errors.ts";
import { readBytesVia, type BlockDevice, type ContainerInfo, type ReadRecord } from "./block.ts";
import { MAX_SYMLINK_HOPS, MAX_PATH_DEPTH } from "./limits.ts";
export { MAX_SYMLINK_HOPS, MAX_PATH_DEPTH } from "./limits.ts";

/** A run of disk sectors, in LBAs of the whole disk (for the disk map). */
export interface Extent { lba: number; count: number }

export type FileType = "file" | "dir" | "symlink" | "other";

export interface FileStat {
  type: FileType;
  size: number;
  /** POSIX mode bits where the filesystem has them. */
  mode?: number;
  /** Inode / MFT record / directory-entry cluster: a stable identity for hard links. */
  id?: number | string;
}

export interface FileSystem {
  readonly kind: string;
  readonly label?: string;
  readonly uuid?: string;
  /** Look up one path component in a directory (no symlink following); case rules are the fs's own. */
  lookup(dir: FileHandle, name: string): FileHandle | undefined;
  root(): FileHandle;
  stat(h: FileHandle): FileStat;
  readdir(h: FileHandle): string[];
  /** File data from `offset`, at most `length` bytes (short at end of file). */
  read(h: FileHandle, offset: number, length: number): Buffer;
  readlink(h: FileHandle): string;
  /** Where the file's data lives on the disk (whole-disk LBAs); sparse holes are omitted. */
  extents(h: FileHandle): Extent[];
}

/** Opaque per-filesystem file reference. */
export type FileHandle = { readonly __fileHandle: true } & object;

/** Resolve an absolute guest path, following symlinks only inside `fs` (never on the host). */
export function resolvePath(fs: FileSystem, p: string, followLast = true): FileHandle | undefined {
  let hops = 0;
  const walk = (start: FileHandle, parts: string[], stack: FileHandle[]): FileHandle | undefined => {
    let cur = start;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === "" || part === ".") continue;
      if (part === "..") { cur = stack.pop() ?? fs.root(); continue; }
      if (stack.length > MAX_PATH_DEPTH) throw new ImageError("E_FS_PATH_DEPTH", "limit", `path deeper than ${MAX_PATH_DEPTH} components: ${p}`);
      const next = fs.lookup(cur, part);
      if (!next) return undefined;
      const st = fs.stat(next);
      const last = i === parts.length - 1;
      if (st.type === "symlink" && (!last || followLast)) {
        if (++hops > MAX_SYMLINK_HOPS) throw new ImageError("E_FS_SYMLINK_LOOP", "corrupt", `too many symbolic links resolving ${p}`);
        const target = fs.readlink(next);
        const base = target.startsWith("/") ? fs.root() : cur;
        const baseStack = target.startsWith("/") ? [] : [...stack];
        const r = walk(base, target.split("/"), baseStack);
        if (!r) return undefined;
        stack.push(cur);
        cur = r;
        continue;
      }
      stack.push(cur);
      cur = next;
    }
    return cur;
  };
  return walk(fs.root(), p.split("/"), []);
}

/** Read a whole file by path, bounded by `maxBytes` (a larger file is an ImageError of kind "limit"). */
export function readFileAt(fs: FileSystem, p: string, maxBytes: number): Buffer | undefined {
  const h = resolvePath(fs, p);
  if (!h) return undefined;
  const st = fs.stat(h);
  if (st.type !== "file") return undefined;
  if (st.size > maxBytes) throw new ImageError("E_FS_FILE_TOO_LARGE", "limit", `${p} is ${st.size} bytes, more than the ${maxBytes}-byte limit`);
  return fs.read(h, 0, st.size);
}

/** A device that can say where its sectors lie on the whole disk (partition views, logical volumes). */
export interface DiskMapped { mapToDisk(lba: number, count: number): Extent[] }

/** Whole-disk runs of device sectors [lba, lba+count): through partition views and LV maps, or as they are. */
export function deviceToDisk(dev: BlockDevice, lba: number, count: number): Extent[] {
  const m = dev as Partial<DiskMapped>;
  return typeof m.mapToDisk === "function" ? m.mapToDisk(lba, count) : [{ lba, count }];
}

/** Append device sectors [lba, lba+count) to `out` as whole-disk runs, merging a run that continues the last one. */
export function pushDiskRuns(out: Extent[], dev: BlockDevice, lba: number, count: number): void {
  for (const x of deviceToDisk(dev, lba, count)) {
    const last = out[out.length - 1];
    if (last && last.lba + last.count === x.lba) last.count += x.count;
    else out.push({ ...x });
  }
}

/** A partition as a block device of its own (LBA 0 = the partition's first sector). */
export class PartitionView implements BlockDevice {
  readonly format: string;
  readonly sectorSize: number;
  readonly sectorCount: number;
  readonly info: ContainerInfo;
  onRead: ((r: ReadRecord) => void)[] = [];
  constructor(readonly disk: BlockDevice, readonly startLba: number, sectorCount: number) {
    this.format = disk.format;
    this.sectorSize = disk.sectorSize;
    this.sectorCount = Math.max(0, Math.min(sectorCount, disk.sectorCount - startLba));
    this.info = disk.info;
  }
  read(lba: number, count: number): Uint8Array {
    if (lba < 0 || count < 0 || lba + count > this.sectorCount) {
      throw new ImageError("E_READ_RANGE", "corrupt", `read of partition sector ${lba} (+${count}) lies past its end (${this.sectorCount} sectors)`);
    }
    return this.disk.read(this.startLba + lba, count);
  }
  readBytes(offset: number, length: number): Buffer { return readBytesVia(this, offset, length); }
  mapToDisk(lba: number, count: number): Extent[] { return deviceToDisk(this.disk, this.startLba + lba, count); }
  close(): void { /* the disk owns the file */ }
}
