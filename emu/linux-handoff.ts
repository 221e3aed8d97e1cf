// Detects the hand-off to a Linux kernel per the x86 boot protocol (Documentation/arch/x86/boot.rst): the 32-bit
// entry at code32_start with ESI = boot_params (GRUB `linux`), or the real-mode jump to setup at seg+20h:0000
// (GRUB `linux16`, SYSLINUX/EXTLINUX). Kernel images are recognised as their sectors pass through INT 13h.
import type { Machine } from "./machine.ts";
import type { BlockDevice } from "../images/block.ts";

/** "HdrS" at offset 202h of the setup header (boot protocol >= 2.00). */
const HDRS = 0x53726448;
const SECTOR = 512;
/** Loader ids in type_of_loader (boot.rst "type_of_loader"). */
export const LOADERS: Record<number, string> = { 0x0: "LILO", 0x1: "Loadlin", 0x2: "bootsect-loader", 0x3: "SYSLINUX",
  0x4: "Etherboot/gPXE/iPXE", 0x5: "ELILO", 0x7: "GRUB", 0x8: "U-Boot", 0x9: "Xen", 0xa: "Gujin", 0xb: "Qemu",
  0xc: "Arcturus Networks uCbootloader", 0xd: "kexec-tools", 0xe: "extended", 0xf: "special", 0x10: "reserved",
  0x11: "Minimal Linux Bootloader", 0x12: "OVMF UEFI virtualization stack", 0x13: "barebox" };

/** A kernel image seen on disk (its first sector, with the boot sector signature and the setup header). */
export interface KernelOnDisk {
  lba: number;
  setupSects: number;
  protocol: string;
  code32Start: number;
  prefAddress: number;
  relocatable: boolean;
  kernelVersionOffset: number;
  /** First bytes of the protected-mode code (file offset (setup_sects+1)*512), read when the kernel is found. */
  pmHead?: Buffer;
}

export interface Handoff {
  protocol: "linux32" | "linux16" | "linux64" | "efi-handover" | "efi-stub";
  entry: { cs: number; ip: number; linear: number };
  bootParams: number;
  bootProtocol: string;
  kernelVersion?: string;
  kernelVersionFrom?: string;
  cmdline?: string;
  initrd?: { address: number; size: number };
  loaderType?: string;
  setupSects?: number;
  kernelLoadedFrom?: { lba: number };
  initrdLoadedFrom?: { lba: number };
  loadflags?: number;
}

const printable = (s: string) => /^[\x20-\x7e]*$/.test(s);

/** Parse the setup header fields from bytes where offset 0 is the start of the kernel image (sector 0). */
export function parseHeader(b: Buffer, lba: number): KernelOnDisk | undefined {
  if (b.length < 0x268 || b.readUInt16LE(0x1fe) !== 0xaa55 || b.readUInt32LE(0x202) !== HDRS) return undefined;
  const ver = b.readUInt16LE(0x206);
  return {
    lba,
    setupSects: b[0x1f1] || 4,
    protocol: `${ver >> 8}.${(ver & 0xff).toString().padStart(2, "0")}`,
    code32Start: b.readUInt32LE(0x214),
    prefAddress: ver >= 0x20a ? Number(b.readBigUInt64LE(0x258)) : 0x100000,
    relocatable: ver >= 0x205 && b[0x234] !== 0,
    kernelVersionOffset: b.readUInt16LE(0x20e),
  };
}

export class LinuxHandoffDetector {
  kernels: KernelOnDisk[] = [];
  handoff?: Handoff;
  /** First 32 bytes of every non-empty sector read -> its LBA, to say where loaded data came from. */
  private sectorIndex = new Map<string, number>();

  constructor(private m: Machine, private dev: BlockDevice, private onFound: (h: Handoff) => void) {}

  /** Look at every sector the BIOS delivered: index it, and recognise bzImage headers. */
  onDiskRead(lba: number, data: Uint8Array): void {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i + SECTOR <= buf.length; i += SECTOR) {
      if (this.sectorIndex.size < 1_000_000 && buf.readBigUInt64LE(i) !== 0n) {
        const k = buf.toString("hex", i, i + 32);
        if (!this.sectorIndex.has(k)) this.sectorIndex.set(k, lba + i / SECTOR);
      }
      if (buf.readUInt32LE(i + 0x1fc) >>> 16 !== 0xaa55) continue;
      const hdr = Buffer.concat([buf.subarray(i, i + SECTOR * 2),
        i + SECTOR * 2 > buf.length ? this.safeRead(lba + i / SECTOR + 1, 1) : Buffer.alloc(0)]);
      const k = parseHeader(hdr, lba + i / SECTOR);
      if (!k || this.kernels.some((x) => x.lba === k.lba) || this.kernels.length >= 8) continue;
      k.pmHead = this.safeRead(k.lba + k.setupSects + 1, 1).subarray(0, 16);
      this.kernels.push(k);
      this.m.trace.add("stage", `Linux kernel image (boot protocol ${k.protocol}) read from LBA ${k.lba}`, { lba: k.lba });
    }
  }

  /** Analysis reads bypass the BIOS (they are not guest reads and stay out of its read log). */
  private safeRead(lba: number, count: number): Buffer {
    try {
      if (lba + count > this.dev.sectorCount) return Buffer.alloc(0);
      return Buffer.from(this.dev.read(lba, count));
    } catch {
      return Buffer.alloc(0);
    }
  }

  /**
   * Single-address code traps at the usual protected-mode entry points (code32_start 100000h, and pref_address
   * 1000000h of relocatable kernels), installed before the first instruction runs: adding Unicorn hooks later
   * flushes the translation cache, which costs seconds. Other entry points are caught by checkProtectedCpuid().
   */
  static readonly ENTRY_TRAPS = [0x100000, 0x1000000];

  armEntryTraps(): void {
    for (const a of LinuxHandoffDetector.ENTRY_TRAPS) {
      if (a < this.m.ram.length) this.m.cpu.addCodeHook(a, a, (addr) => this.check32(addr, addr));
    }
  }

  /**
   * The kernel's startup_32 (arch/x86/boot/compressed/head_64.S) runs CPUID in verify_cpu a few instructions after
   * the entry, with ESI = boot_params and EBP = its own load address: a hand-off at an untrapped address shows here.
   */
  checkProtectedCpuid(): void {
    if (this.handoff || !this.kernels.length || !this.m.protectedMode()) return;
    const ebp = this.m.cpu.reg("EBP");
    if (ebp + 16 <= this.m.ram.length) this.check32(ebp, this.m.pcLinear());
  }

  /** At a trapped address: is this the kernel's 32-bit entry with ESI pointing at boot_params? */
  private check32(addr: number, at: number): void {
    if (this.handoff || !this.kernels.length || !this.m.protectedMode()) return;
    const esi = this.m.cpu.reg("ESI");
    if (this.m.u32(esi + 0x202) !== HDRS) return;
    const k = this.kernels.find((x) => x.pmHead && x.pmHead.length === 16 && this.m.ram.subarray(addr, addr + 16).equals(x.pmHead))
      ?? (this.kernels.length === 1 && !this.kernels[0].pmHead?.length ? this.kernels[0] : undefined);
    if (!k) return;
    const cs = this.m.cpu.reg("CS");
    this.finish("linux32", { cs, ip: addr - this.m.segBase(cs), linear: addr }, esi, k);
    if (at !== addr) this.m.trace.add("note", `hand-off seen at ${at.toString(16)}, ${at - addr} bytes into the kernel entry`);
  }

  /** Real-mode check, called from every BIOS call, port access and CPUID: is CS the setup code of a loaded kernel? */
  checkRealMode(): void {
    if (this.handoff || this.m.protectedMode()) return;
    const cs = this.m.cpu.reg("CS");
    if (cs < 0x20 || cs >= 0xa000) return;
    const base = (cs - 0x20) * 16;
    if (this.m.u32(base + 0x202) !== HDRS || this.m.u16(base + 0x1fe) !== 0xaa55) return;
    const k = this.kernels.find((x) => x.setupSects === (this.m.u8(base + 0x1f1) || 4)) ?? this.kernels[0];
    this.finish("linux16", { cs, ip: 0, linear: cs * 16 }, base, k);
  }

  private finish(protocol: "linux32" | "linux16", entry: Handoff["entry"], bp: number, k: KernelOnDisk | undefined): void {
    const m = this.m;
    const ver = m.u16(bp + 0x206);
    const h: Handoff = { protocol, entry, bootParams: bp, bootProtocol: `${ver >> 8}.${(ver & 0xff).toString().padStart(2, "0")}` };
    h.setupSects = m.u8(bp + 0x1f1) || 4;
    h.loadflags = m.u8(bp + 0x211);
    const lt = m.u8(bp + 0x210);
    const id = lt >> 4 === 0xe ? 0x10 + m.u8(bp + 0x227) : lt >> 4;
    h.loaderType = `${LOADERS[id] ?? `id ${id}`} (type_of_loader 0x${lt.toString(16).padStart(2, "0")})`;
    // Command line: cmd_line_ptr (protocol >= 2.02), else the old 0x20/0x22 magic in the zero page.
    let cl = ver >= 0x202 ? m.u32(bp + 0x228) : 0;
    if (!cl && m.u16(bp + 0x20) === 0xa33f) cl = bp + m.u16(bp + 0x22);
    if (cl) h.cmdline = m.cstr(cl, 4096);
    let rdImage = m.u32(bp + 0x218), rdSize = m.u32(bp + 0x21c);
    if (protocol === "linux32") { rdImage += m.u32(bp + 0x0c0) * 2 ** 32; rdSize += m.u32(bp + 0x0c4) * 2 ** 32; }
    if (rdImage && rdSize) {
      h.initrd = { address: rdImage, size: rdSize };
      const from = this.whereFrom(rdImage);
      if (from !== undefined) h.initrdLoadedFrom = { lba: from };
    }
    const kvOff = m.u16(bp + 0x20e);
    if (protocol === "linux16" && kvOff) {
      const s = m.cstr(bp + 0x200 + kvOff, 256);
      if (s && printable(s)) { h.kernelVersion = s; h.kernelVersionFrom = "setup code in memory"; }
    }
    if (k) {
      h.kernelLoadedFrom = { lba: k.lba };
      if (!h.kernelVersion && k.kernelVersionOffset) {
        const off = 0x200 + k.kernelVersionOffset;
        const data = this.safeRead(k.lba + Math.floor(off / SECTOR), 2);
        const s = data.length ? data.toString("latin1", off % SECTOR, off % SECTOR + 256).split("\0")[0] : "";
        if (/^\d/.test(s) && printable(s)) { h.kernelVersion = s; h.kernelVersionFrom = `disk, LBA ${k.lba} + ${off} bytes`; }
      }
    }
    this.handoff = h;
    m.trace.add("stage", `Linux hand-off (${protocol}) at ${entry.cs.toString(16)}:${entry.ip.toString(16)}`, { bootParams: bp });
    this.onFound(h);
  }

  private whereFrom(addr: number): number | undefined {
    if (addr + 32 > this.m.ram.length) return undefined;
    return this.sectorIndex.get(this.m.ram.toString("hex", addr, addr + 32));
  }
}
