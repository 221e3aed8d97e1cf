// cpio archive reader for initramfs: SVR4 "newc" (070701) and "crc" (070702) as the kernel's
// init/initramfs.c and Documentation/driver-api/early-userspace/buffer-format.rst define them,
// plus POSIX.1 "odc" (070707, portable ASCII) which the kernel refuses but tools still write.
import { corrupt, overLimit, truncated } from "./errors.ts";
import { MAX_CPIO_ENTRIES, MAX_CPIO_NAME } from "./limits.ts";

export type CpioFormat = "newc" | "crc" | "odc";
export type CpioType = "file" | "dir" | "symlink" | "chardev" | "blockdev" | "fifo" | "socket" | "other";

export interface CpioEntry {
  /** The name exactly as stored (may hold "./", "../" or a leading "/"). */
  name: string;
  mode: number;
  type: CpioType;
  uid: number;
  gid: number;
  nlink: number;
  ino: number;
  mtime: number;
  size: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  /** Body bytes (a view into the archive buffer, not a copy). */
  data: Buffer;
  /** Offset of the header within the buffer that was parsed. */
  offset: number;
  /** crc format: the stored checksum and whether it matches the body's byte sum. */
  checksumOk?: boolean;
}

export interface CpioArchive {
  format: CpioFormat;
  entries: CpioEntry[];
  /** Offset just past the TRAILER!!! entry and its padding. */
  end: number;
}

/** S_IFMT values (POSIX <sys/stat.h>, as cpio stores them). */
const S_IFMT = 0o170000;
const TYPES: Record<number, CpioType> = {
  0o040000: "dir", 0o100000: "file", 0o120000: "symlink", 0o020000: "chardev",
  0o060000: "blockdev", 0o010000: "fifo", 0o140000: "socket",
};
export const cpioType = (mode: number): CpioType => TYPES[mode & S_IFMT] ?? "other";

export const TRAILER = "TRAILER!!!";
/** newc/crc header: 6-byte magic + 13 fields of 8 hex digits (buffer-format.rst). */
const NEWC_HEADER = 110;
/** odc header: 6-byte magic + octal fields dev 6, ino 6, mode 6, uid 6, gid 6, nlink 6, rdev 6, mtime 11, namesize 6, filesize 11. */
const ODC_HEADER = 76;

const align4 = (n: number) => (n + 3) & ~3;

/** The cpio format whose magic starts at `off`, if any. */
export function cpioMagic(b: Uint8Array, off = 0): CpioFormat | undefined {
  if (off + 6 > b.length) return undefined;
  const m = Buffer.from(b.buffer, b.byteOffset + off, 6).toString("latin1");
  return m === "070701" ? "newc" : m === "070702" ? "crc" : m === "070707" ? "odc" : undefined;
}

function field(b: Buffer, off: number, len: number, radix: 16 | 8, name: string, at: number): number {
  let v = 0;
  for (let i = 0; i < len; i++) {
    const c = b[off + i];
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : radix === 16 && c >= 0x41 && c <= 0x46 ? c - 0x37
      : radix === 16 && c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d < 0 || d >= radix) {
      throw corrupt("E_CPIO_HEADER", `cpio: ${name} field "${b.toString("latin1", off, off + len)}" of the header at byte ${at} is not ${radix === 16 ? "hexadecimal" : "octal"}`);
    }
    v = v * radix + d;
  }
  return v;
}

/**
 * Parse one archive starting at `start` up to and including its TRAILER!!!. `base` is the offset
 * of `start` in the kernel's view (alignment is counted from the segment start, as this_header is).
 * An archive that ends without a trailer is "truncated" (the kernel reports junk / no trailer).
 */
export function parseCpio(buf: Uint8Array, start = 0, entryBudget = MAX_CPIO_ENTRIES): CpioArchive {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const format = cpioMagic(b, start);
  if (!format) throw corrupt("E_CPIO_MAGIC", `cpio: no cpio magic at byte ${start} (found "${b.toString("latin1", start, Math.min(start + 6, b.length))}")`);
  const entries: CpioEntry[] = [];
  let p = start;
  for (;;) {
    if (entries.length >= entryBudget) throw overLimit("E_CPIO_ENTRIES", `cpio: more than ${entryBudget} entries`);
    const fmt = cpioMagic(b, p);
    if (fmt !== format) {
      if (p >= b.length) throw truncated("E_CPIO_NO_TRAILER", `cpio: archive at byte ${start} ends at byte ${p} without a ${TRAILER} entry (${entries.length} entries read)`);
      if (p + 6 > b.length) throw truncated("E_CPIO_TRUNCATED", `cpio: header at byte ${p} is cut short by the end of data`);
      throw corrupt("E_CPIO_MAGIC", `cpio: entry ${entries.length} at byte ${p} has magic "${b.toString("latin1", p, p + 6)}", not the archive's ${format} magic`);
    }
    const odc = format === "odc";
    const hsize = odc ? ODC_HEADER : NEWC_HEADER;
    if (p + hsize > b.length) throw truncated("E_CPIO_TRUNCATED", `cpio: header at byte ${p} is cut short by the end of data (${b.length})`);
    let e: Omit<CpioEntry, "name" | "data" | "type" | "offset">;
    let namesize: number;
    if (odc) {
      const f = (o: number, l: number, n: string) => field(b, p + o, l, 8, n, p);
      const dev = f(6, 6, "dev"), rdev = f(42, 6, "rdev");
      e = { devMajor: dev >>> 8, devMinor: dev & 0xff, ino: f(12, 6, "ino"), mode: f(18, 6, "mode"), uid: f(24, 6, "uid"),
        gid: f(30, 6, "gid"), nlink: f(36, 6, "nlink"), rdevMajor: rdev >>> 8, rdevMinor: rdev & 0xff,
        mtime: f(48, 11, "mtime"), size: f(65, 11, "filesize") };
      namesize = f(59, 6, "namesize");
    } else {
      const f = (i: number, n: string) => field(b, p + 6 + 8 * i, 8, 16, n, p);
      e = { ino: f(0, "ino"), mode: f(1, "mode"), uid: f(2, "uid"), gid: f(3, "gid"), nlink: f(4, "nlink"),
        mtime: f(5, "mtime"), size: f(6, "filesize"), devMajor: f(7, "devmajor"), devMinor: f(8, "devminor"),
        rdevMajor: f(9, "rdevmajor"), rdevMinor: f(10, "rdevminor") };
      namesize = f(11, "namesize");
    }
    const check = odc ? 0 : field(b, p + 6 + 8 * 12, 8, 16, "check", p);
    if (namesize === 0) throw corrupt("E_CPIO_NAME_SIZE", `cpio: header at byte ${p} has a name size of 0`);
    if (namesize > MAX_CPIO_NAME) throw overLimit("E_CPIO_NAME_SIZE", `cpio: header at byte ${p} has a name size of ${namesize}, over the ${MAX_CPIO_NAME}-byte limit (PATH_MAX)`);
    const nameOff = p + hsize;
    if (nameOff + namesize > b.length) throw truncated("E_CPIO_TRUNCATED", `cpio: name of ${namesize} bytes at byte ${nameOff} runs past the end (${b.length})`);
    if (b[nameOff + namesize - 1] !== 0) throw corrupt("E_CPIO_NAME", `cpio: name at byte ${nameOff} is not NUL-terminated`);
    const name = b.toString("utf8", nameOff, nameOff + namesize - 1);
    // newc pads header+name and the body to 4 bytes from the archive start; odc has no padding.
    const dataOff = odc ? nameOff + namesize : start + align4(nameOff + namesize - start);
    if (dataOff + e.size > b.length) {
      throw truncated("E_CPIO_TRUNCATED", `cpio: "${name}" declares ${e.size} bytes at byte ${dataOff}, past the end of data (${b.length})`);
    }
    const next = odc ? dataOff + e.size : start + align4(dataOff + e.size - start);
    if (name === TRAILER) {
      return { format, entries, end: Math.min(next, b.length) };
    }
    const data = b.subarray(dataOff, dataOff + e.size);
    const entry: CpioEntry = { ...e, name, type: cpioType(e.mode), data, offset: p };
    if (format === "crc" && entry.type === "file") {
      let sum = 0;
      for (let i = 0; i < data.length; i++) sum = (sum + data[i]) >>> 0;
      entry.checksumOk = sum === check;
    }
    entries.push(entry);
    p = next;
  }
}

/**
 * Normalise a cpio name to a path relative to the initramfs root, resolving "." and ".."
 * lexically inside the root (".." at the root stays at the root, as the kernel's lookup from "/"
 * does). Nothing here ever touches the host filesystem.
 */
export function normalizeCpioPath(name: string): string {
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") { out.pop(); continue; }
    out.push(part);
  }
  return out.join("/");
}
