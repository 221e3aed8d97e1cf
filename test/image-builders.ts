// Builders of filesystem and volume-manager structures shared by the tests and the fuzz seeds (scripts/fuzz-seeds.ts):
// no vitest import here, so plain scripts can use them too.
import * as fs from "node:fs";
import * as path from "node:path";

const MiB = 1024 * 1024;

/**
 * mkfs.xfs prototype file (mkfs.xfs(8) PROTOTYPE FILE) describing `dir`. Names with spaces are left out: the format
 * separates fields with blanks and cannot express them.
 */
export function protoFor(dir: string): string {
  const lines = ["/dev/null", "0 0", "d--755 0 0"];
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      if (name.includes(" ")) continue;
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) lines.push(`${name} l--777 0 0 ${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) { lines.push(`${name} d--755 0 0`); walk(p); lines.push("$"); }
      else lines.push(`${name} ---644 0 0 ${p}`);
    }
  };
  walk(dir);
  lines.push("$");
  return lines.join("\n") + "\n";
}

/** lvm2 lib/misc/crc.c: two nibble steps per byte from INITIAL_CRC 0xf597a6cf, no final xor. */
export function calcCrc(buf: Buffer): number {
  const tab = [0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
    0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c];
  let crc = 0xf597a6cf;
  for (const b of buf) {
    crc = (crc ^ b) >>> 0;
    crc = ((crc >>> 4) ^ tab[crc & 0xf]) >>> 0;
    crc = ((crc >>> 4) ^ tab[crc & 0xf]) >>> 0;
  }
  return crc;
}

/** Lay down a PV label, PV header and one metadata area (1 MiB before pe_start) at byte `base` of `img`. */
export function writePv(img: string, base: number, size: number, uuid: string, text: string, mutate?: (label: Buffer, mda: Buffer) => void): void {
  const label = Buffer.alloc(512);
  label.write("LABELONE", 0, "latin1");
  label.writeBigUInt64LE(1n, 8);
  label.writeUInt32LE(32, 20);
  label.write("LVM2 001", 24, "latin1");
  let p = 32;
  label.write(uuid, p, "latin1"); p += 32;
  label.writeBigUInt64LE(BigInt(size), p); p += 8;
  label.writeBigUInt64LE(BigInt(MiB), p); p += 16;                  // data area at pe_start, size 0 = to the end
  p += 16;                                                          // end of data areas
  label.writeBigUInt64LE(4096n, p); label.writeBigUInt64LE(BigInt(MiB - 4096), p + 8); p += 16;
  p += 16;                                                          // end of metadata areas
  label.writeUInt32LE(2, p); label.writeUInt32LE(1, p + 4);         // pv_header_extension v2, PV_EXT_USED
  const body = Buffer.from(text + "\0", "utf8");
  const mda = Buffer.alloc(512 + body.length);
  mda.write(" LVM2 x[5A%r0N*>", 4, "latin1");
  mda.writeUInt32LE(1, 20);
  mda.writeBigUInt64LE(4096n, 24);
  mda.writeBigUInt64LE(BigInt(MiB - 4096), 32);
  mda.writeBigUInt64LE(512n, 40);
  mda.writeBigUInt64LE(BigInt(body.length), 48);
  mda.writeUInt32LE(calcCrc(body), 56);
  body.copy(mda, 512);
  mda.writeUInt32LE(calcCrc(mda.subarray(4, 512)), 0);
  label.writeUInt32LE(calcCrc(label.subarray(20)), 16);
  mutate?.(label, mda);
  const fd = fs.openSync(img, "r+");
  try {
    fs.writeSync(fd, label, 0, 512, base + 512);
    fs.writeSync(fd, mda, 0, mda.length, base + 4096);
  } finally { fs.closeSync(fd); }
}
