// INT 13h fixed-disk services for the Gen1 IDE disks (IBM PC/AT TRM; Phoenix "BIOS Enhanced Disk Drive
// Specification" 1.1 and T13 EDD 3.0 for AH=41h-48h). Every read goes through BlockDevice.read (the read log sees
// it); writes land in a copy-on-write overlay — the image is never written.
import type { BiosDisk, Gen1Bios, ServiceDef } from "./gen1-bios.ts";
import { MEM } from "../emu/machine.ts";

/** INT 13h status codes (AH). */
export const DISK_RET = {
  SUCCESS: 0x00,
  EPARAM: 0x01,        // invalid function or parameter
  ENOTFOUND: 0x04,     // sector not found
  EBOUNDARY: 0x09,     // data boundary error (transfer would wrap the 64 KiB segment)
  ENOTREADY: 0xaa,     // drive not ready
} as const;

/** Largest CHS transfer (AL) and EDD transfer (block count) real BIOSes accept (EDD 3.0: 127 blocks). */
const MAX_CHS_SECTORS = 128;
const MAX_EDD_BLOCKS = 127;
const SECTOR = 512;

/** Sectors [lba, lba+count) as the guest sees them: the image through BlockDevice.read, overlaid by guest writes. */
export function readSectors(b: Gen1Bios, d: BiosDisk, lba: number, count: number): Uint8Array {
  const data = d.dev.read(lba, count);
  if (d.overlay.size) {
    for (let i = 0; i < count; i++) {
      const o = d.overlay.get(lba + i);
      if (o) data.set(o, i * SECTOR);
    }
  }
  b.diskReads++;
  b.sectorsRead += count;
  b.lastProgressNs = b.m.clock.now;
  b.m.trace.add("disk", `read drive ${d.drive.toString(16)}h LBA ${lba} +${count}`, { lba, count });
  return data;
}

function writeSectors(b: Gen1Bios, d: BiosDisk, lba: number, count: number, linear: number): void {
  for (let i = 0; i < count; i++) d.overlay.set(lba + i, Uint8Array.from(b.m.cpu.read(linear + i * SECTOR, SECTOR)));
  b.m.trace.add("disk", `write drive ${d.drive.toString(16)}h LBA ${lba} +${count} (kept in the overlay)`, { lba, count, write: true });
}

/** The disk DL names, or a failure (AH=01h, CF=1) for drive numbers without an attached IDE disk. */
function driveOf(b: Gen1Bios): BiosDisk | undefined {
  const d = b.disk(b.cpu.reg("DL"));
  if (!d) b.fail(DISK_RET.EPARAM);
  return d;
}

function done(b: Gen1Bios, d: BiosDisk, status: number): void {
  d.lastStatus = status;
  b.m.w8(MEM.BDA + 0x74, status);
  if (status) b.fail(status); else b.ok();
}

/** Copy disk data into guest RAM, dropping stale translated code (the buffer often holds the next stage). */
function toGuest(b: Gen1Bios, linear: number, data: Uint8Array): boolean {
  if (linear + data.length > b.m.ram.length) return false;
  b.cpu.write(linear, data);
  return true;
}

/** CHS from CX/DH per the INT 13h encoding: CH = cylinder low, CL[7:6] = cylinder high, CL[5:0] = sector. */
function chsLba(b: Gen1Bios, d: BiosDisk): number | undefined {
  const c = b.cpu;
  const cl = c.reg("CL");
  const cyl = c.reg("CH") | ((cl & 0xc0) << 2), sec = cl & 0x3f, head = c.reg("DH");
  const g = d.geometry;
  if (sec < 1 || sec > g.sectorsPerTrack || head >= g.heads || cyl >= Math.min(g.cylinders, 1024)) return undefined;
  return (cyl * g.heads + head) * g.sectorsPerTrack + sec - 1;
}

/** AH=00h: reset disk system. */
function int13_00(b: Gen1Bios): void { const d = driveOf(b); if (d) done(b, d, 0); }
/** AH=01h: get status of last operation. */
function int13_01(b: Gen1Bios): void {
  const d = driveOf(b); if (!d) return;
  const s = d.lastStatus;
  b.cpu.setReg("AH", s); b.setCF(s !== 0);
}
/** AH=02h / 03h: read / write sectors by CHS into / from ES:BX. */
function chsTransfer(b: Gen1Bios, write: boolean): void {
  const d = driveOf(b); if (!d) return;
  const c = b.cpu;
  const count = c.reg("AL");
  const lba = chsLba(b, d);
  if (count === 0 || count > MAX_CHS_SECTORS) { c.setReg("AL", 0); done(b, d, DISK_RET.EPARAM); return; }
  if (lba === undefined || lba + count > d.dev.sectorCount) { c.setReg("AL", 0); done(b, d, DISK_RET.ENOTFOUND); return; }
  const bx = c.reg("BX");
  if (bx + count * SECTOR > 0x10000) { c.setReg("AL", 0); done(b, d, DISK_RET.EBOUNDARY); return; }
  const linear = c.reg("ES") * 16 + bx;
  if (write) writeSectors(b, d, lba, count, linear);
  else if (!toGuest(b, linear, readSectors(b, d, lba, count))) { c.setReg("AL", 0); done(b, d, DISK_RET.EPARAM); return; }
  c.setReg("AL", count);
  done(b, d, 0);
}
function int13_02(b: Gen1Bios): void { chsTransfer(b, false); }
function int13_03(b: Gen1Bios): void { chsTransfer(b, true); }
/** AH=04h: verify sectors (nothing to verify on a virtual disk). */
function int13_04(b: Gen1Bios): void { const d = driveOf(b); if (d) done(b, d, 0); }
/** AH=08h: get drive parameters (CHS as the BIOS translates it, at most 1024 cylinders). */
function int13_08(b: Gen1Bios): void {
  const d = driveOf(b); if (!d) return;
  const c = b.cpu, g = d.geometry;
  const maxCyl = Math.min(g.cylinders, 1024) - 1;
  c.setReg("CH", maxCyl & 0xff);
  c.setReg("CL", (g.sectorsPerTrack & 0x3f) | ((maxCyl >> 2) & 0xc0));
  c.setReg("DH", g.heads - 1);
  c.setReg("DL", b.disks.length);
  c.setReg("AL", 0); c.setReg("BL", 0);
  c.setReg("ES", 0); c.setReg("DI", 0);
  done(b, d, 0);
}
/** AH=0Ch: seek to cylinder. */
function int13_0c(b: Gen1Bios): void { const d = driveOf(b); if (d) done(b, d, 0); }
/** AH=0Dh: alternate disk reset. */
function int13_0d(b: Gen1Bios): void { const d = driveOf(b); if (d) done(b, d, 0); }
/** AH=10h: test drive ready. */
function int13_10(b: Gen1Bios): void { const d = driveOf(b); if (d) done(b, d, 0); }
/** AH=11h: recalibrate drive. */
function int13_11(b: Gen1Bios): void { const d = driveOf(b); if (d) done(b, d, 0); }
/** AH=15h: get disk type: AH=03h fixed disk, CX:DX = sectors. */
function int13_15(b: Gen1Bios): void {
  const d = driveOf(b); if (!d) return;
  const g = d.geometry;
  const n = Math.min(g.cylinders, 1024) * g.heads * g.sectorsPerTrack;
  b.cpu.setReg("CX", Math.floor(n / 65536)); b.cpu.setReg("DX", n & 0xffff);
  b.ok(0x03);
}
/** AH=41h: EDD installation check (BX=55AAh -> AA55h, AH=30h EDD 3.0, CX=0005h fixed-disk access + EDD). */
function int13_41(b: Gen1Bios): void {
  const d = driveOf(b); if (!d) return;
  if (b.cpu.reg("BX") !== 0x55aa) { done(b, d, DISK_RET.EPARAM); return; }
  b.cpu.setReg("BX", 0xaa55);
  b.cpu.setReg("CX", 0x0005);
  b.ok(0x30);
}
/** The EDD disk address packet at DS:SI: count at +2, buffer seg:off at +4, LBA at +8, flat buffer at +10h. */
function packet(b: Gen1Bios): { at: number; count: number; linear: number; lba: number } {
  const c = b.cpu, m = b.m;
  const at = c.reg("DS") * 16 + c.reg("SI");
  const size = m.u8(at), count = m.u16(at + 2);
  const off = m.u16(at + 4), seg = m.u16(at + 6);
  let linear = seg * 16 + off;
  if (size >= 0x18 && off === 0xffff && seg === 0xffff) linear = Number(m.ram.readBigUInt64LE(at + 0x10));
  const lba = Number(m.ram.readBigUInt64LE(at + 8));
  return { at, count, linear, lba };
}
/** AH=42h / 43h: extended read / write. */
function extTransfer(b: Gen1Bios, write: boolean): void {
  const d = driveOf(b); if (!d) return;
  const p = packet(b);
  const fail = (s: number) => { b.m.w16(p.at + 2, 0); done(b, d, s); };
  if (p.count > MAX_EDD_BLOCKS) { fail(DISK_RET.EPARAM); return; }
  if (p.count === 0) { done(b, d, 0); return; }
  if (!Number.isSafeInteger(p.lba) || p.lba + p.count > d.dev.sectorCount) { fail(DISK_RET.ENOTFOUND); return; }
  if (write) writeSectors(b, d, p.lba, p.count, p.linear);
  else if (!toGuest(b, p.linear, readSectors(b, d, p.lba, p.count))) { fail(DISK_RET.EPARAM); return; }
  done(b, d, 0);
}
function int13_42(b: Gen1Bios): void { extTransfer(b, false); }
function int13_43(b: Gen1Bios): void { extTransfer(b, true); }
/** AH=44h: extended verify. */
function int13_44(b: Gen1Bios): void {
  const d = driveOf(b); if (!d) return;
  const p = packet(b);
  done(b, d, p.lba + p.count > d.dev.sectorCount ? DISK_RET.ENOTFOUND : 0);
}
/** AH=47h: extended seek. */
function int13_47(b: Gen1Bios): void { const d = driveOf(b); if (d) done(b, d, 0); }
/** AH=48h: extended get drive parameters, EDD 3.0 result buffer (1Ah/1Eh/42h bytes) at DS:SI. */
function int13_48(b: Gen1Bios): void {
  const d = driveOf(b); if (!d) return;
  const m = b.m, g = d.geometry;
  const at = b.cpu.reg("DS") * 16 + b.cpu.reg("SI");
  const size = m.u16(at);
  if (size < 0x1a) { done(b, d, DISK_RET.EPARAM); return; }
  const out = Buffer.alloc(0x42);
  const len = size >= 0x42 ? 0x42 : size >= 0x1e ? 0x1e : 0x1a;
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(0x0002, 2);                    // CHS information valid
  out.writeUInt32LE(g.cylinders, 4);
  out.writeUInt32LE(g.heads, 8);
  out.writeUInt32LE(g.sectorsPerTrack, 12);
  out.writeBigUInt64LE(BigInt(d.dev.sectorCount), 16);
  out.writeUInt16LE(SECTOR, 24);
  out.writeUInt32LE(0xffffffff, 26);               // no DPTE (the ATA registers are not for boot code)
  if (len === 0x42) {
    const [channel, position] = d.slot.replace(/^ide/, "").split(":").map(Number);
    out.writeUInt16LE(0xbedd, 30);                 // device path information present
    out[32] = 0x24;                                // its length: 36 bytes (offset 1Eh to 41h)
    out.write("PCI ", 36, "latin1");
    out.write("ATA     ", 40, "latin1");
    out[48] = 0; out[49] = 7; out[50] = 1;         // PIIX4 IDE function: bus 0, device 7, function 1 (i440BX)
    out[56] = position & 1;                        // ATA: 0 master, 1 slave
    void channel;
    let sum = 0;
    for (let i = 30; i < 0x41; i++) sum = (sum + out[i]) & 0xff;
    out[0x41] = (0x100 - sum) & 0xff;
  }
  m.ram.set(out.subarray(0, len), at);
  done(b, d, 0);
}
/** AH=4Bh: El Torito terminate disk emulation / get status — hard disks are "not emulating" (AH=01h, CF=1). */
function int13_4b(b: Gen1Bios): void { b.fail(DISK_RET.EPARAM); }

export const int13Services: ServiceDef[] = [
  { int: 0x13, ah: 0x00, name: "int13_00", fn: int13_00 },
  { int: 0x13, ah: 0x01, name: "int13_01", fn: int13_01 },
  { int: 0x13, ah: 0x02, name: "int13_02", fn: int13_02 },
  { int: 0x13, ah: 0x03, name: "int13_03", fn: int13_03 },
  { int: 0x13, ah: 0x04, name: "int13_04", fn: int13_04 },
  { int: 0x13, ah: 0x08, name: "int13_08", fn: int13_08 },
  { int: 0x13, ah: 0x0c, name: "int13_0c", fn: int13_0c },
  { int: 0x13, ah: 0x0d, name: "int13_0d", fn: int13_0d },
  { int: 0x13, ah: 0x10, name: "int13_10", fn: int13_10 },
  { int: 0x13, ah: 0x11, name: "int13_11", fn: int13_11 },
  { int: 0x13, ah: 0x15, name: "int13_15", fn: int13_15 },
  { int: 0x13, ah: 0x41, name: "int13_41", fn: int13_41 },
  { int: 0x13, ah: 0x42, name: "int13_42", fn: int13_42 },
  { int: 0x13, ah: 0x43, name: "int13_43", fn: int13_43 },
  { int: 0x13, ah: 0x44, name: "int13_44", fn: int13_44 },
  { int: 0x13, ah: 0x47, name: "int13_47", fn: int13_47 },
  { int: 0x13, ah: 0x48, name: "int13_48", fn: int13_48 },
  { int: 0x13, ah: 0x4b, name: "int13_4b", fn: int13_4b },
];
