// The Gen2 hand-off: ExitBootServices called by a Linux kernel's EFI stub (started by LoadImage/StartImage, or
// entered through the EFI handover protocol by GRUB's linuxefi). The kernel, its command line and initrd are read
// from the boot_params the stub filled in (Documentation/arch/x86/boot.rst, zero-page.rst), the kernel image and
// initrd are traced back to disk sectors through the reads the loaders made.
import { parseHeader, LOADERS, type Handoff, type KernelOnDisk } from "./linux-handoff.ts";
import type { BlockDevice } from "../images/block.ts";
import type { LoadedImageInfo } from "../firmware-stubs/uefi-image.ts";

const HDRS = 0x53726448;
const SECTOR = 512;
const PAGE = 4096;

const printable = (s: string) => /^[\x20-\x7e]*$/.test(s);

/** Watches guest disk reads: recognises bzImage headers and indexes sector contents to say where data came from. */
export class KernelTracker {
  kernels: KernelOnDisk[] = [];
  private sectorIndex = new Map<string, number>();

  constructor(private dev: BlockDevice) {}

  onRead(lba: number, buf: Buffer): void {
    for (let i = 0; i + SECTOR <= buf.length; i += SECTOR) {
      if (this.sectorIndex.size < 1_000_000 && buf.readBigUInt64LE(i) !== 0n) {
        const k = buf.toString("hex", i, i + 32);
        if (!this.sectorIndex.has(k)) this.sectorIndex.set(k, lba + i / SECTOR);
      }
      if (buf.readUInt16LE(i + 0x1fe) !== 0xaa55 || i + 0x206 > buf.length) continue;
      if (buf.readUInt32LE(i + 0x202) !== HDRS) continue;
      const hdr = Buffer.concat([buf.subarray(i, i + SECTOR * 2), i + SECTOR * 2 > buf.length ? this.safeRead(lba + i / SECTOR + 1, 1) : Buffer.alloc(0)]);
      const k = parseHeader(hdr, lba + i / SECTOR);
      if (k && !this.kernels.some((x) => x.lba === k.lba) && this.kernels.length < 8) {
        k.pmHead = this.safeRead(k.lba + k.setupSects + 1, 1).subarray(0, 16);
        this.kernels.push(k);
      }
    }
  }

  whereFrom(ram: Buffer, addr: number): number | undefined {
    if (addr + 32 > ram.length) return undefined;
    return this.sectorIndex.get(ram.toString("hex", addr, addr + 32));
  }

  safeRead(lba: number, count: number): Buffer {
    try {
      if (lba < 0 || lba + count > this.dev.sectorCount) return Buffer.alloc(0);
      return Buffer.from(this.dev.read(lba, count));
    } catch {
      return Buffer.alloc(0);
    }
  }

  /** The kernel_version string of a kernel found on disk. */
  versionOnDisk(k: KernelOnDisk): string | undefined {
    if (!k.kernelVersionOffset) return undefined;
    const off = 0x200 + k.kernelVersionOffset;
    const data = this.safeRead(k.lba + Math.floor(off / SECTOR), 2);
    const s = data.length ? data.toString("latin1", off % SECTOR, off % SECTOR + 256).split("\0")[0] : "";
    return /^\d/.test(s) && printable(s) ? s : undefined;
  }
}

const cstr = (ram: Buffer, a: number, max: number): string => {
  if (a <= 0 || a >= ram.length) return "";
  const end = ram.indexOf(0, a);
  return ram.toString("latin1", a, Math.min(end < 0 ? ram.length : end, a + max));
};

/**
 * boot_params pages in the guest's allocations (`ranges`: scanning all of RAM would touch every page): page-aligned zero pages whose setup header says "HdrS" and carries a command line
 * pointer (a loader or the stub filled them in; a raw copy of the bzImage file has none).
 */
export function findBootParams(ram: Buffer, ranges: { start: number; pages: number }[]): number[] {
  const out: number[] = [];
  for (const r of ranges) for (let p = Math.max(PAGE, r.start); p + PAGE <= Math.min(ram.length, r.start + r.pages * PAGE); p += PAGE) {
    if (ram.readUInt32LE(p + 0x202) !== HDRS || ram.readUInt16LE(p + 0x1fe) !== 0xaa55) continue;
    const cl = ram.readUInt32LE(p + 0x228) + ram.readUInt32LE(p + 0x0c8) * 2 ** 32;
    if (cl && cl < ram.length) out.push(p);
  }
  return out;
}

/**
 * 64-bit boot protocol entry points (load address + 200h, RSI = boot_params) where a loader that exits boot services
 * itself (GRUB's `linux` without shim) jumps: the kernel's preferred address and the classic 1 MiB. Trapped with
 * single-address hooks installed before the run (adding hooks later flushes Unicorn's translation cache).
 */
export const ENTRY64_TRAPS = [0x1000200, 0x100200];

/** At an entry trap after ExitBootServices: boot_params at RSI? */
export function bootParamsAt(ram: Buffer, rsi: number): boolean {
  // Loaders copy the setup header from 1F1h but need not keep boot_flag (GRUB leaves 1FEh zero): "HdrS" and a
  // boot protocol version the 64-bit entry requires (2.06+) identify it.
  return rsi > 0 && rsi + PAGE <= ram.length && ram.readUInt32LE(rsi + 0x202) === HDRS && ram.readUInt16LE(rsi + 0x206) >= 0x206 &&
    ram.readUInt16LE(rsi + 0x206) < 0x300;
}

/** Build the hand-off record at ExitBootServices. `caller` is the image whose code called it, if a loaded one. */
export function linuxHandoff(ram: Buffer, ranges: { start: number; pages: number }[], tracker: KernelTracker, caller: LoadedImageInfo | undefined,
  returnAddress: number, entry?: { address: number; bootParams: number }): Handoff | undefined {
  const bps = entry ? [entry.bootParams] : findBootParams(ram, ranges);
  if (!bps.length && !caller?.linux) return undefined;
  // Prefer a zero page with an initrd, then the most recently allocated (highest: allocation is top-down... any).
  const bp = bps.find((p) => ram.readUInt32LE(p + 0x218) !== 0) ?? bps[0];
  const protocol = caller?.linux ? "efi-stub" : entry ? "linux64" : "efi-handover";
  const at = entry?.address ?? returnAddress;
  const h: Handoff = { protocol, entry: { cs: 0x38, ip: at, linear: at }, bootParams: bp ?? 0, bootProtocol: "" };
  if (bp !== undefined) {
    const ver = ram.readUInt16LE(bp + 0x206);
    h.bootProtocol = `${ver >> 8}.${(ver & 0xff).toString().padStart(2, "0")}`;
    h.setupSects = ram[bp + 0x1f1] || 4;
    h.loadflags = ram[bp + 0x211];
    const lt = ram[bp + 0x210];
    const id = lt >> 4 === 0xe ? 0x10 + ram[bp + 0x227] : lt >> 4;
    h.loaderType = `${LOADERS[id] ?? `id ${id}`} (type_of_loader 0x${lt.toString(16).padStart(2, "0")})`;
    const cl = ram.readUInt32LE(bp + 0x228) + ram.readUInt32LE(bp + 0x0c8) * 2 ** 32;
    h.cmdline = cstr(ram, cl, 4096);
    const rdImage = ram.readUInt32LE(bp + 0x218) + ram.readUInt32LE(bp + 0x0c0) * 2 ** 32;
    const rdSize = ram.readUInt32LE(bp + 0x21c) + ram.readUInt32LE(bp + 0x0c4) * 2 ** 32;
    if (rdImage && rdSize) {
      h.initrd = { address: rdImage, size: rdSize };
      const from = tracker.whereFrom(ram, rdImage);
      if (from !== undefined) h.initrdLoadedFrom = { lba: from };
    }
  } else if (caller?.loadOptions) {
    h.cmdline = caller.loadOptions;
  }
  // The kernel: the image the stub runs from (LoadImage'd), else the one bzImage the loaders read from disk.
  if (caller?.linux && caller.bytes.length > 0x210) {
    const off = 0x200 + caller.bytes.readUInt16LE(0x20e);
    const s = caller.bytes.toString("latin1", off, Math.min(caller.bytes.length, off + 256)).split("\0")[0];
    if (/^\d/.test(s) && printable(s)) { h.kernelVersion = s; h.kernelVersionFrom = `${caller.filePath ?? caller.source} (loaded image)`; }
  }
  const k = tracker.kernels[tracker.kernels.length - 1];
  if (k) {
    h.kernelLoadedFrom = { lba: k.lba };
    if (!h.kernelVersion) {
      const v = tracker.versionOnDisk(k);
      if (v) { h.kernelVersion = v; h.kernelVersionFrom = `disk, LBA ${k.lba}`; }
    }
  }
  return h;
}
