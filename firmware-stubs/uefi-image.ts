// Image services of the Gen2 firmware (UEFI 2.10 7.4): LoadImage from a buffer or a device path, Secure Boot
// verification of every image (the caller's policy hook), StartImage/Exit as guest calls on the caller's stack,
// UnloadImage, and the EFI_LOADED_IMAGE_PROTOCOL each image gets.
import { createHash } from "node:crypto";
import { Call, FirmwareCore, GuestFault, type Handler } from "./uefi-core.ts";
import { EFI, LOADED_IMAGE, LOADED_IMAGE_REVISION, MemType, AllocateType, PAGE_SIZE, statusName,
  type BootService } from "./uefi-layout.ts";
import { GUID } from "./uefi-guid.ts";
import { loadPe, parsePe, IMAGE_SUBSYSTEM_EFI_APPLICATION, IMAGE_SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER,
  IMAGE_SUBSYSTEM_EFI_RUNTIME_DRIVER, type PeInfo } from "./pe.ts";
import { ImageError } from "../images/errors.ts";
import { UEFI_MAX_LOAD_IMAGE_BYTES } from "../images/limits.ts";

/** Largest image LoadImage accepts (a kernel with an appended initramfs is tens of MiB). */
export const MAX_LOAD_IMAGE_BYTES = UEFI_MAX_LOAD_IMAGE_BYTES;

export interface LoadedImageInfo {
  handle: number;
  /** Where it came from: a device-path text or "memory buffer". */
  source: string;
  /** The file path inside its filesystem, when loaded from one. */
  filePath?: string;
  deviceHandle: number;
  parent: number;
  base: number;
  size: number;
  entry: number;
  sha256: string;
  bytes: Buffer;
  pe: PeInfo;
  /** A Linux bzImage with an EFI stub ("HdrS" at 0x202). */
  linux: boolean;
  started: boolean;
  exitStatus?: bigint;
  /** LoadOptions the caller set (UTF-16 command line for a kernel) — read when it starts. */
  loadOptions?: string;
}

/** What the firmware decides about an image before it may run (Secure Boot). */
export interface ImagePolicy {
  verify(img: { bytes: Buffer; source: string; filePath?: string; parentName?: string }): { allowed: boolean; status: "SECURITY_VIOLATION" | "ACCESS_DENIED" | "SUCCESS" };
}

export interface ImageHost {
  /** Read the file a device path names (SimpleFileSystem, or LoadFile2). */
  readDevicePath(dp: Buffer): { data: Buffer; deviceHandle: number; filePath?: string; deviceText: string } | { status: "NOT_FOUND" | "UNSUPPORTED" | "DEVICE_ERROR"; why: string };
  /** The image is about to run (for the boot chain). */
  onStart?(img: LoadedImageInfo): void;
  onLoadFailure?(what: string, status: bigint, why: string): void;
  devicePathBytes(p: number): Buffer;
  systemTable(): number;
}

export class ImageServices {
  images = new Map<number, LoadedImageInfo>();
  /** Images in load order (reports). */
  loadOrder: LoadedImageInfo[] = [];

  /** Why the last LoadImage failed (the boot manager reports it). */
  lastError?: string;

  constructor(private fw: FirmwareCore, private host: ImageHost, private policy: ImagePolicy) {}

  private failed(what: string, status: bigint, why: string): void {
    this.lastError = why;
    this.host.onLoadFailure?.(what, status, why);
  }

  handlers(): Partial<Record<BootService, Handler>> {
    return {
      LoadImage: (c) => this.loadImageCall(c),
      StartImage: (c) => this.startImage(c),
      Exit: (c) => this.exit(c),
      UnloadImage: (c) => {
        const img = this.images.get(c.ptr(0));
        if (!img) return EFI.INVALID_PARAMETER;
        if (img.started) return EFI.UNSUPPORTED;
        this.unload(img);
        return EFI.SUCCESS;
      },
    };
  }

  private loadImageCall(c: Call): bigint {
    const fw = this.fw;
    const parent = c.ptr(1), dp = c.ptr(2), src = c.ptr(3), srcSize = c.num(4), out = c.ptr(5);
    if (!out || !this.images.has(parent)) return EFI.INVALID_PARAMETER;
    let data: Buffer, source: string, filePath: string | undefined, deviceHandle = 0;
    if (src) {
      if (srcSize > MAX_LOAD_IMAGE_BYTES) return EFI.OUT_OF_RESOURCES;
      data = Buffer.from(fw.bytes(src, srcSize));
      source = "memory buffer";
    } else {
      if (!dp) return EFI.NOT_FOUND;
      const r = this.host.readDevicePath(this.host.devicePathBytes(dp));
      if ("status" in r) { this.failed("LoadImage", EFI[r.status], r.why); return fw.note(`LoadImage(${r.why})`, EFI[r.status]); }
      ({ data, filePath, deviceHandle } = r);
      source = r.deviceText;
    }
    const res = this.load(data, { parent, source, filePath, deviceHandle, devicePath: dp ? this.host.devicePathBytes(dp) : undefined });
    if (typeof res === "bigint") return res;
    fw.w64(out, res.handle);
    return EFI.SUCCESS;
  }

  /** Load (and verify) an image; the boot manager calls this directly. Returns the image or a status. */
  load(data: Buffer, o: { parent: number; source: string; filePath?: string; deviceHandle: number; devicePath?: Buffer }): LoadedImageInfo | bigint {
    const fw = this.fw;
    let pe: PeInfo;
    try {
      pe = parsePe(data, o.filePath ?? o.source);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      this.failed(o.filePath ?? o.source, EFI.LOAD_ERROR, e.message);
      return fw.note(`LoadImage(${o.filePath ?? o.source}: ${e.message})`, EFI.LOAD_ERROR);
    }
    const subsystems = [IMAGE_SUBSYSTEM_EFI_APPLICATION, IMAGE_SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER, IMAGE_SUBSYSTEM_EFI_RUNTIME_DRIVER];
    if (pe.machine !== "x64" || !subsystems.includes(pe.subsystem)) {
      const why = pe.machine !== "x64" ? `a ${pe.machine} image cannot run on an x64 VM` : `PE subsystem ${pe.subsystem} is not an EFI image`;
      this.failed(o.filePath ?? o.source, EFI.UNSUPPORTED, why);
      return fw.note(`LoadImage(${o.filePath ?? o.source}: ${why})`, EFI.UNSUPPORTED);
    }
    const parentName = this.images.get(o.parent)?.filePath;
    const v = this.policy.verify({ bytes: data, source: o.source, filePath: o.filePath, parentName });
    if (!v.allowed) {
      this.failed(o.filePath ?? o.source, EFI[v.status], "Secure Boot policy");
      return fw.note(`LoadImage(${o.filePath ?? o.source}) denied by Secure Boot`, EFI[v.status]);
    }
    const pages = Math.ceil(pe.sizeOfImage / PAGE_SIZE);
    const code = pe.subsystem === IMAGE_SUBSYSTEM_EFI_APPLICATION ? MemType.LoaderCode
      : pe.subsystem === IMAGE_SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER ? MemType.BootServicesCode : MemType.RuntimeServicesCode;
    const a = fw.mem.allocatePages(AllocateType.AnyPages, code, pages, 0);
    if (!a.ok) return fw.note(`LoadImage(${pages} pages)`, EFI.OUT_OF_RESOURCES);
    let laid;
    try {
      laid = loadPe(data, BigInt(a.address), o.filePath ?? o.source);
    } catch (e) {
      fw.mem.freePages(a.address, pages, () => false);
      if (!(e instanceof ImageError)) throw e;
      this.failed(o.filePath ?? o.source, EFI.LOAD_ERROR, e.message);
      return fw.note(`LoadImage(${e.message})`, EFI.LOAD_ERROR);
    }
    fw.put(a.address, laid.image);
    const handle = fw.newHandle();
    const li = fw.alloc(LOADED_IMAGE.SIZE);
    fw.w32(li + LOADED_IMAGE.Revision, LOADED_IMAGE_REVISION);
    fw.w64(li + LOADED_IMAGE.ParentHandle, o.parent);
    fw.w64(li + LOADED_IMAGE.SystemTable, this.host.systemTable());
    fw.w64(li + LOADED_IMAGE.DeviceHandle, o.deviceHandle);
    const fileNodes = o.devicePath ? fileNodesOf(o.devicePath) : Buffer.alloc(0);
    const fpPtr = fw.alloc(fileNodes.length + 4);
    fw.put(fpPtr, Buffer.concat([fileNodes, END_NODE]));
    fw.w64(li + LOADED_IMAGE.FilePath, fileNodes.length ? fpPtr : 0);
    fw.w64(li + LOADED_IMAGE.ImageBase, a.address);
    fw.w64(li + LOADED_IMAGE.ImageSize, pages * PAGE_SIZE);
    fw.w32(li + LOADED_IMAGE.ImageCodeType, code);
    fw.w32(li + LOADED_IMAGE.ImageDataType, code === MemType.LoaderCode ? MemType.LoaderData : MemType.BootServicesData);
    fw.install(handle, GUID.LOADED_IMAGE, li);
    if (o.devicePath) {
      const dpCopy = fw.alloc(o.devicePath.length + 4);
      fw.put(dpCopy, Buffer.concat([o.devicePath, END_NODE]));
      fw.install(handle, GUID.LOADED_IMAGE_DEVICE_PATH, dpCopy);
    }
    const info: LoadedImageInfo = {
      handle, source: o.source, filePath: o.filePath, deviceHandle: o.deviceHandle, parent: o.parent, base: a.address,
      size: pages * PAGE_SIZE, entry: Number(laid.entry), sha256: createHash("sha256").update(data).digest("hex"), bytes: data, pe,
      linux: data.length > 0x206 && data.readUInt32LE(0x202) === 0x53726448, started: false,
    };
    this.images.set(handle, info);
    this.loadOrder.push(info);
    fw.trace.add("efi", `LoadImage ${o.filePath ?? o.source}`, { base: a.address.toString(16), size: info.size, entry: info.entry.toString(16), sha256: info.sha256 });
    return info;
  }

  /** Register the firmware's own image handle (the parent of the first boot option). */
  registerFirmwareImage(handle: number, info: Omit<LoadedImageInfo, "handle">): void {
    this.images.set(handle, { ...info, handle });
  }

  private startImage(c: Call): bigint | undefined {
    const img = this.images.get(c.ptr(0));
    if (!img || img.started || img.bytes.length === 0) return EFI.INVALID_PARAMETER;
    const stubAddr = Number(this.fw.cpu.reg64("RIP"));
    this.start(img, (status) => this.fw.returnFromTrap(stubAddr, status));
    return undefined;
  }

  /** Run an image's entry point as a guest call; `done(status)` when it returns or calls Exit. */
  start(img: LoadedImageInfo, done: (status: bigint) => void): void {
    img.started = true;
    const li = this.fw.iface(img.handle, GUID.LOADED_IMAGE);
    if (li !== undefined) {
      const size = this.fw.u32(li + LOADED_IMAGE.LoadOptionsSize);
      const p = Number(this.fw.u64(li + LOADED_IMAGE.LoadOptions));
      if (p && size) img.loadOptions = this.fw.utf16(p, Math.min(size / 2, 4096));
    }
    this.host.onStart?.(img);
    this.fw.trace.add("stage", `StartImage ${img.filePath ?? img.source}`, { entry: img.entry.toString(16) });
    this.fw.callGuest(img.entry, [BigInt(img.handle), BigInt(this.host.systemTable())], "image", (rax) => {
      img.exitStatus = rax;
      this.fw.trace.add("efi", `image ${img.filePath ?? img.source} returned ${statusName(rax)}`);
      done(rax);
    }, img.handle);
  }

  private exit(c: Call): bigint | undefined {
    const h = c.ptr(0);
    const img = this.images.get(h);
    if (!img) return EFI.INVALID_PARAMETER;
    if (!img.started) { this.unload(img); return EFI.SUCCESS; }
    if (!this.fw.unwindImage(h, c.arg(1))) throw new GuestFault(`Exit() for image ${img.filePath ?? h.toString(16)} that is not running`);
    return undefined;
  }

  private unload(img: LoadedImageInfo): void {
    for (const g of this.fw.protocolsOf(img.handle)) this.fw.uninstall(img.handle, g);
    this.fw.mem.freePages(img.base, img.size / PAGE_SIZE, () => false);
    this.images.delete(img.handle);
  }

  /** The loaded image whose memory holds `addr` (to say which image called a service). */
  imageAt(addr: number): LoadedImageInfo | undefined {
    for (const i of this.images.values()) if (addr >= i.base && addr < i.base + i.size) return i;
    return undefined;
  }
}

const END_NODE = Buffer.from([0x7f, 0xff, 0x04, 0x00]);

/** The media file-path nodes (type 4, subtype 4) at the end of a device path, as bytes. */
export function fileNodesOf(dp: Buffer): Buffer {
  let off = 0;
  let fileStart = -1;
  while (off + 4 <= dp.length) {
    const type = dp[off], sub = dp[off + 1], len = dp.readUInt16LE(off + 2);
    if (len < 4) break;
    if (type === 4 && sub === 4) { if (fileStart < 0) fileStart = off; }
    else fileStart = -1;
    off += len;
  }
  return fileStart < 0 ? Buffer.alloc(0) : dp.subarray(fileStart, off);
}

export { Call };
