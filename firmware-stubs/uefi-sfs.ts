// EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL (UEFI 2.10 13.4/13.5) on FAT partitions, read through
// bootgate's own FAT reader (images/fat.ts) — what the firmware's FAT driver gives loaders reading the ESP. Every
// file read is recorded (path, size) for the boot chain; writes are refused as on write-protected media.
import { openFat } from "../images/fat.ts";
import { PartitionView, type FileHandle, type FileSystem } from "../images/fs.ts";
import { ImageError } from "../images/errors.ts";
import { Call, FirmwareCore } from "./uefi-core.ts";
import { EFI, EFI_FILE_DIRECTORY, EFI_FILE_MODE_CREATE, FILE_INFO, FS_INFO, PROTOCOL_MEMBERS } from "./uefi-layout.ts";
import { GUID } from "./uefi-guid.ts";
import type { Storage } from "./uefi-storage.ts";
import { UEFI_MAX_OPEN_FILES } from "../images/limits.ts";

/** Open files at once (a loader that leaks handles gets EFI_OUT_OF_RESOURCES). */
export const MAX_OPEN_FILES = UEFI_MAX_OPEN_FILES;
const FAT_KINDS = new Set(["fat12", "fat16", "fat32"]);

interface OpenFile {
  fs: FileSystem;
  volume: Volume;
  h: FileHandle;
  /** Path from the volume root with '\' separators ("" for the root). */
  path: string;
  dir: boolean;
  pos: number;
  /** Directory reads: names still to return. */
  pending?: string[];
}

export interface Volume { handle: number; fs: FileSystem; label?: string; partitionIndex?: number; blockSize: number; sectors: number }

export class FileSystems {
  volumes: Volume[] = [];
  private files = new Map<number, OpenFile>();
  /** Files the guest opened and read (boot chain evidence). */
  readLog: { volume: number; path: string; bytes: number }[] = [];
  private fileVt: (number | undefined)[] = [];

  constructor(private fw: FirmwareCore, private storage: Storage) {}

  build(): void {
    const fw = this.fw;
    this.fileVt = fw.vtable(PROTOCOL_MEMBERS.File, "File", {
      Open: (c) => this.open(c),
      Close: (c) => { this.files.delete(c.ptr(0)); return EFI.SUCCESS; },
      Delete: (c) => { this.files.delete(c.ptr(0)); return 2n; /* EFI_WARN_DELETE_FAILURE */ },
      Read: (c) => this.read(c),
      Write: () => fw.note("File.Write", EFI.WRITE_PROTECTED),
      GetPosition: (c) => {
        const f = this.files.get(c.ptr(0));
        if (!f) return EFI.INVALID_PARAMETER;
        if (f.dir) return EFI.UNSUPPORTED;
        fw.w64(c.ptr(1), f.pos);
        return EFI.SUCCESS;
      },
      SetPosition: (c) => {
        const f = this.files.get(c.ptr(0));
        if (!f) return EFI.INVALID_PARAMETER;
        const p = c.arg(1);
        if (f.dir) { if (p !== 0n) return EFI.UNSUPPORTED; f.pending = undefined; return EFI.SUCCESS; }
        f.pos = p === 0xffffffffffffffffn ? f.fs.stat(f.h).size : Number(p > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : p);
        return EFI.SUCCESS;
      },
      GetInfo: (c) => this.getInfo(c),
      SetInfo: () => fw.note("File.SetInfo", EFI.WRITE_PROTECTED),
      Flush: () => EFI.SUCCESS,
    });
    const sfsVt = fw.vtable(PROTOCOL_MEMBERS.SimpleFileSystem, "SimpleFileSystem", {
      OpenVolume: (c) => {
        const v = this.bySfs.get(c.ptr(0));
        if (!v || !c.ptr(1)) return EFI.INVALID_PARAMETER;
        fw.w64(c.ptr(1), this.newFile({ fs: v.fs, volume: v, h: v.fs.root(), path: "", dir: true, pos: 0 }));
        return EFI.SUCCESS;
      },
    });
    for (const bh of this.storage.handles) {
      const p = bh.partition;
      if (!p || !FAT_KINDS.has(p.content.kind)) continue;
      let fs: FileSystem;
      try {
        fs = openFat(new PartitionView(this.storage.dev, p.startLba, p.sectorCount));
      } catch (e) {
        if (!(e instanceof ImageError)) throw e;
        fw.trace.add("note", `partition ${p.index}: FAT volume not mountable: ${e.message}`);
        continue;
      }
      const v: Volume = { handle: bh.handle, fs, label: p.content.label, partitionIndex: p.index, blockSize: this.storage.dev.sectorSize, sectors: p.sectorCount };
      const sfs = fw.instantiate(PROTOCOL_MEMBERS.SimpleFileSystem, sfsVt, { Revision: 0x00010000 });
      this.bySfs.set(sfs, v);
      fw.install(bh.handle, GUID.SIMPLE_FILE_SYSTEM, sfs);
      this.volumes.push(v);
    }
  }

  private bySfs = new Map<number, Volume>();

  private newFile(f: OpenFile): number {
    if (this.files.size >= MAX_OPEN_FILES) throw new ImageError("E_UEFI_FILES", "limit", `more than ${MAX_OPEN_FILES} files open`);
    const a = this.fw.instantiate(PROTOCOL_MEMBERS.File, this.fileVt, { Revision: 0x00010000 });
    this.files.set(a, f);
    return a;
  }

  /** Resolve `name` (UEFI path: '\' separators, absolute or relative to `dir`) on a volume, case-insensitively. */
  lookup(v: Volume, base: string, name: string): { h: FileHandle; path: string } | undefined {
    const parts = (name.startsWith("\\") ? name : `${base}\\${name}`).split(/[\\/]/);
    const stack: string[] = [];
    for (const p of parts) {
      if (p === "" || p === ".") continue;
      if (p === "..") { stack.pop(); continue; }
      stack.push(p);
    }
    let h = v.fs.root();
    const real: string[] = [];
    for (const p of stack) {
      const next = v.fs.lookup(h, p);
      if (!next) return undefined;
      h = next;
      real.push(p);
    }
    return { h, path: real.join("\\") };
  }

  /** Read a whole file from a volume (the boot manager and LoadImage by device path). */
  readFile(v: Volume, path: string, maxBytes: number): Buffer | undefined {
    const r = this.lookup(v, "", path);
    if (!r) return undefined;
    const st = v.fs.stat(r.h);
    if (st.type !== "file" || st.size > maxBytes) return undefined;
    const data = v.fs.read(r.h, 0, st.size);
    this.readLog.push({ volume: v.partitionIndex ?? 0, path: "\\" + r.path, bytes: data.length });
    return data;
  }

  private open(c: Call): bigint {
    const fw = this.fw;
    const f = this.files.get(c.ptr(0));
    const out = c.ptr(1);
    if (!f || !out) return EFI.INVALID_PARAMETER;
    const name = fw.utf16(c.ptr(2), 1024);
    const mode = c.arg(3);
    const r = this.lookup(f.volume, f.path, name);
    if (!r) {
      if (mode & EFI_FILE_MODE_CREATE) return fw.note(`File.Open(create ${name})`, EFI.WRITE_PROTECTED);
      return fw.note(`File.Open(${name})`, EFI.NOT_FOUND);
    }
    const st = f.fs.stat(r.h);
    fw.w64(out, this.newFile({ fs: f.fs, volume: f.volume, h: r.h, path: r.path, dir: st.type === "dir", pos: 0 }));
    fw.trace.add("efi", `File.Open \\${r.path}`);
    return EFI.SUCCESS;
  }

  private read(c: Call): bigint {
    const fw = this.fw;
    const f = this.files.get(c.ptr(0));
    const sizeP = c.ptr(1), buf = c.ptr(2);
    if (!f || !sizeP) return EFI.INVALID_PARAMETER;
    const want = Number(fw.u64(sizeP) > 0x10000000n ? 0x10000000n : fw.u64(sizeP));
    if (f.dir) {
      if (!f.pending) f.pending = f.fs.readdir(f.h).filter((n) => n !== "." && n !== "..");
      const next = f.pending[0];
      if (next === undefined) { fw.w64(sizeP, 0); return EFI.SUCCESS; }
      const child = f.fs.lookup(f.h, next);
      const info = child ? this.fileInfo(f.fs, child, next) : undefined;
      if (!info) { f.pending.shift(); fw.w64(sizeP, 0); return EFI.SUCCESS; }
      fw.w64(sizeP, info.length);
      if (want < info.length) return EFI.BUFFER_TOO_SMALL;
      fw.put(buf, info);
      f.pending.shift();
      return EFI.SUCCESS;
    }
    const size = f.fs.stat(f.h).size;
    if (f.pos > size) return EFI.DEVICE_ERROR;
    const n = Math.min(want, size - f.pos);
    if (n > 0) {
      if (!buf) return EFI.INVALID_PARAMETER;
      const data = f.fs.read(f.h, f.pos, n);
      fw.put(buf, data);
      if (f.pos === 0) this.readLog.push({ volume: f.volume.partitionIndex ?? 0, path: "\\" + f.path, bytes: size });
      f.pos += data.length;
      fw.w64(sizeP, data.length);
    } else fw.w64(sizeP, 0);
    return EFI.SUCCESS;
  }

  private fileInfo(fs: FileSystem, h: FileHandle, name: string): Buffer {
    const st = fs.stat(h);
    const nameBytes = Buffer.from(name + "\0", "utf16le");
    const b = Buffer.alloc(FILE_INFO.FileName + nameBytes.length);
    b.writeBigUInt64LE(BigInt(b.length), FILE_INFO.Size);
    b.writeBigUInt64LE(BigInt(st.size), FILE_INFO.FileSize);
    b.writeBigUInt64LE(BigInt(Math.ceil(st.size / 4096) * 4096), FILE_INFO.PhysicalSize);
    for (const off of [FILE_INFO.CreateTime, FILE_INFO.LastAccessTime, FILE_INFO.ModificationTime]) {
      b.writeUInt16LE(2024, off); b[off + 2] = 1; b[off + 3] = 1;
    }
    b.writeBigUInt64LE(st.type === "dir" ? EFI_FILE_DIRECTORY : 0n, FILE_INFO.Attribute);
    nameBytes.copy(b, FILE_INFO.FileName);
    return b;
  }

  private getInfo(c: Call): bigint {
    const fw = this.fw;
    const f = this.files.get(c.ptr(0));
    const type = c.ptr(1) ? fw.guid(c.ptr(1)) : "";
    const sizeP = c.ptr(2), buf = c.ptr(3);
    if (!f || !sizeP) return EFI.INVALID_PARAMETER;
    let info: Buffer;
    if (type === GUID.FILE_INFO) {
      info = this.fileInfo(f.fs, f.h, f.path.split("\\").pop() ?? "");
    } else if (type === GUID.FILE_SYSTEM_INFO) {
      const label = Buffer.from((f.volume.label ?? "") + "\0", "utf16le");
      info = Buffer.alloc(FS_INFO.VolumeLabel + label.length);
      info.writeBigUInt64LE(BigInt(info.length), FS_INFO.Size);
      info[FS_INFO.ReadOnly] = 1;
      info.writeBigUInt64LE(BigInt(f.volume.sectors * f.volume.blockSize), FS_INFO.VolumeSize);
      info.writeUInt32LE(f.volume.blockSize, FS_INFO.BlockSize);
      label.copy(info, FS_INFO.VolumeLabel);
    } else if (type === GUID.FILE_SYSTEM_VOLUME_LABEL) {
      info = Buffer.from((f.volume.label ?? "") + "\0", "utf16le");
    } else {
      return fw.note(`File.GetInfo(${type})`, EFI.UNSUPPORTED);
    }
    const have = fw.u64(sizeP);
    fw.w64(sizeP, info.length);
    if (have < BigInt(info.length)) return EFI.BUFFER_TOO_SMALL;
    if (!buf) return EFI.INVALID_PARAMETER;
    fw.put(buf, info);
    return EFI.SUCCESS;
  }

  volumeOf(handle: number): Volume | undefined { return this.volumes.find((v) => v.handle === handle); }
}
