// VHD container driver: fixed, dynamic and differencing disks (Microsoft Virtual Hard Disk Image
// Format Specification v1.0, 2006: "Hard Disk Footer Format", "Dynamic Disk Header Format",
// "Block Allocation Table and Data Blocks", "Splitting Hard Disk Images" for parent locators).
import * as path from "node:path";
import type { ContainerDriver } from "./registry.ts";
import type { ContainerInfo, Geometry, OpenContext, VirtualDisk } from "./block.ts";
import type { ByteSource } from "./source.ts";
import { corrupt, hex, overLimit, truncated } from "./errors.ts";
import { MAX_DESCRIPTOR_BYTES, MAX_TABLE_ENTRIES, MAX_VIRTUAL_SIZE } from "./limits.ts";
import { defineFindings, finding } from "../emu/findings.ts";

// --- Spec constants ("Hard Disk Footer Format") ---
const FOOTER_SIZE = 512;
const OLD_FOOTER_SIZE = 511;          // Virtual PC before 2004 wrote a 511-byte footer
const FOOTER_COOKIE = "conectix";
const DYN_COOKIE = "cxsparse";
const DYN_HEADER_SIZE = 1024;
const SECTOR = 512;
const NO_DATA_OFFSET = 0xffffffffffffffffn; // footer "Data Offset" of a fixed disk
const BAT_UNUSED = 0xffffffff;               // "Block Allocation Table": unused entry

/** Footer "Disk Type" field. */
const DISK_TYPE: Record<number, "fixed" | "dynamic" | "differencing"> = { 2: "fixed", 3: "dynamic", 4: "differencing" };

/** Footer "Creator Host OS". */
const HOST_OS: Record<number, string> = { 0x5769326b: "Windows (Wi2k)", 0x4d616320: "Macintosh (Mac )" };

/** Parent locator "Platform Code" values, in the order we try them (relative W2ru first). */
const PLATFORM = { W2ru: 0x57327275, W2ku: 0x57326b75, MacX: 0x4d616358, Mac: 0x4d616320, Wi2r: 0x57693272, Wi2k: 0x5769326b } as const;

/**
 * Creator-application quirks: which size field each producer's readers trust (facts as documented
 * in QEMU block/vpc.c). "chs" = cylinders*heads*sectors*512 (Virtual PC reads the geometry);
 * "current" = the footer's Current Size (Hyper-V reads only this). A disk whose CHS is the
 * maximum (65535/16/255) always uses Current Size, because the geometry cannot express it.
 */
const CREATORS: Record<string, { name: string; size: "chs" | "current" }> = {
  "vpc ": { name: "Microsoft Virtual PC", size: "chs" },
  "vs  ": { name: "Microsoft Virtual Server", size: "chs" },
  "qemu": { name: "QEMU (CHS-rounded size)", size: "chs" },
  "qem2": { name: "QEMU (force_size=on)", size: "current" },
  "win ": { name: "Microsoft Hyper-V / Windows", size: "current" },
  "d2v ": { name: "Sysinternals Disk2vhd", size: "current" },
  "tap\0": { name: "XenServer blktap", size: "current" },
  "CTXS": { name: "Citrix XenConverter", size: "current" },
  "vbox": { name: "Oracle VirtualBox", size: "current" },
};

defineFindings([
  { code: "VHD_FOOTER_CHECKSUM", severity: "error", stage: "image", title: "VHD footer checksum is wrong",
    message: "VHD footer checksum is {stored}, computed {computed}: Hyper-V refuses to attach this disk",
    remedy: "Rewrite the container: qemu-img convert -O vpc -o subformat=fixed,force_size=on {file} fixed.vhd",
    explain: "The footer's checksum (one's complement of the byte sum) does not match its content. The rest of the footer is consistent, so bootgate reads the disk, but Hyper-V and Azure reject it." },
  { code: "VHD_FOOTER_COPY_USED", severity: "error", stage: "image", title: "VHD end footer damaged, header copy used",
    message: "the footer at the end of {file} is damaged ({reason}); the copy at offset 0 was used",
    remedy: "Rewrite the container: qemu-img convert -O vpc -o subformat=fixed,force_size=on {file} fixed.vhd",
    explain: "Dynamic and differencing VHDs keep a copy of the footer at offset 0. Hyper-V reads the footer at the end of the file, so the disk will not attach until it is rewritten." },
  { code: "VHD_FOOTER_COPY_DIFFERS", severity: "warning", stage: "image", title: "VHD footer copies differ",
    message: "the footer copy at offset 0 differs from the footer at the end of {file}",
    remedy: "Rewrite the container: qemu-img convert -O vpc {file} repaired.vhd",
    explain: "The two footer copies of a dynamic VHD should be identical; a difference points to an interrupted write." },
  { code: "VHD_DYN_HEADER_CHECKSUM", severity: "error", stage: "image", title: "VHD dynamic header checksum is wrong",
    message: "VHD dynamic disk header checksum is {stored}, computed {computed}",
    remedy: "Rewrite the container: qemu-img convert -O vpc {file} repaired.vhd",
    explain: "The dynamic disk header's checksum does not match; Hyper-V refuses such disks." },
  { code: "VHD_SIZE_FIELDS_DIFFER", severity: "warning", stage: "image", title: "VHD size fields disagree",
    message: "VHD made by '{creator}': Current Size is {currentSize} bytes but the CHS geometry gives {chsSize} bytes; using {used} bytes ({rule})",
    remedy: "Make the size explicit: qemu-img convert -O vpc -o subformat=fixed,force_size=on {file} fixed.vhd",
    explain: "Virtual PC and old QEMU size a VHD by its CHS geometry, Hyper-V by the footer's Current Size. When they differ, the guest sees a different disk size on Hyper-V than where the image was made, which can move the backup GPT header." },
  { code: "VHD_PARENT_ID_MISMATCH", severity: "error", stage: "image", title: "VHD parent unique id mismatch",
    message: "differencing VHD {file} expects parent unique id {expected} but {parent} has {actual}",
    remedy: "Reattach the right parent, or merge the chain: qemu-img convert -O vpc -o subformat=fixed,force_size=on {file} merged.vhd",
    explain: "A differencing disk records its parent's unique id; Hyper-V refuses a chain whose parent was replaced or modified." },
  { code: "VHD_SAVED_STATE", severity: "warning", stage: "image", title: "VHD saved-state flag set",
    message: "the VHD footer of {file} has the Saved State flag set",
    remedy: "Shut the source VM down cleanly and convert again: qemu-img convert -O vpc -o subformat=fixed,force_size=on {file} fixed.vhd",
    explain: "The disk belonged to a VM in a saved state; its content may not be consistent." },
  { code: "VHD_OLD_FOOTER", severity: "info", stage: "image", title: "511-byte VHD footer",
    message: "{file} has the 511-byte footer written by Virtual PC before 2004",
    remedy: "Rewrite the container for Azure: qemu-img convert -O vpc -o subformat=fixed,force_size=on {file} fixed.vhd",
    explain: "Old Virtual PC versions wrote a 511-byte footer; Azure requires the file size to be the virtual size plus 512." },
]);

interface Footer {
  features: number; version: number; dataOffset: bigint; timestamp: number;
  creatorApp: string; creatorVersion: number; creatorHostOs: number;
  originalSize: number; currentSize: number; geometry: Geometry; diskType: number;
  checksum: number; computed: number; uniqueId: string; savedState: boolean;
}

/** One's complement of the byte sum with the checksum field (4 bytes at `at`) taken as zero. */
function vhdChecksum(b: Buffer, at: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) if (i < at || i >= at + 4) sum = (sum + b[i]) >>> 0;
  return (~sum) >>> 0;
}

/** A GUID as stored by VHD (big-endian, byte order as written) in the usual text form. */
function uuidText(b: Buffer): string {
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const u64 = (b: Buffer, o: number): number => {
  const v = b.readBigUInt64BE(o);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
};

function parseFooter(b: Buffer): Footer {
  // A 511-byte footer is padded with one zero byte (its last reserved byte is missing).
  const f = b.length === FOOTER_SIZE ? b : Buffer.concat([b, Buffer.alloc(1)]);
  return {
    features: f.readUInt32BE(8),
    version: f.readUInt32BE(12),
    dataOffset: f.readBigUInt64BE(16),
    timestamp: f.readUInt32BE(24),
    creatorApp: f.toString("latin1", 28, 32),
    creatorVersion: f.readUInt32BE(32),
    creatorHostOs: f.readUInt32BE(36),
    originalSize: u64(f, 40),
    currentSize: u64(f, 48),
    geometry: { cylinders: f.readUInt16BE(56), heads: f[58], sectorsPerTrack: f[59] },
    diskType: f.readUInt32BE(60),
    checksum: f.readUInt32BE(64),
    computed: vhdChecksum(b, 64),
    uniqueId: uuidText(f.subarray(68, 84)),
    savedState: f[84] !== 0,
  };
}

/** Why a footer is unusable, or undefined when it is consistent (checksum judged separately). */
function footerProblem(f: Footer): string | undefined {
  if (f.version >>> 16 !== 1) return `format version ${hex(f.version)} (expected 0x0001xxxx)`;
  if (!DISK_TYPE[f.diskType]) return `disk type ${f.diskType} (expected 2, 3 or 4)`;
  if (f.currentSize % SECTOR !== 0 && f.originalSize % SECTOR !== 0) return `current size ${f.currentSize} is not a multiple of 512`;
  if (f.currentSize > MAX_VIRTUAL_SIZE) return `current size ${f.currentSize} exceeds ${MAX_VIRTUAL_SIZE}`;
  if (f.diskType === 2 && f.dataOffset !== NO_DATA_OFFSET) return `fixed disk with data offset ${f.dataOffset}`;
  if (f.diskType !== 2 && f.dataOffset === NO_DATA_OFFSET) return `${DISK_TYPE[f.diskType]} disk without a dynamic header offset`;
  return undefined;
}

/** Which byte count the guest sees, following the creator table. */
function chooseSize(f: Footer): { size: number; rule: string; chsSize: number } {
  const g = f.geometry;
  const chsSize = g.cylinders * g.heads * g.sectorsPerTrack * SECTOR;
  const maxChs = g.cylinders === 65535 && g.heads === 16 && g.sectorsPerTrack === 255;
  const cur = f.currentSize % SECTOR === 0 && f.currentSize > 0 ? f.currentSize : f.originalSize;
  const quirk = CREATORS[f.creatorApp];
  if (maxChs) return { size: cur, rule: "maximum CHS geometry: Current Size", chsSize };
  if (quirk?.size === "chs" && chsSize > 0) return { size: chsSize, rule: `${quirk.name} sizes by CHS`, chsSize };
  return { size: cur, rule: quirk ? `${quirk.name} sizes by Current Size` : "unknown creator: Current Size, as Hyper-V reads it", chsSize };
}

interface DynHeader {
  tableOffset: number; maxTableEntries: number; blockSize: number; checksum: number; computed: number;
  parentUniqueId: string; parentTimestamp: number; parentName: string;
  locators: { code: number; space: number; length: number; offset: number }[];
}

function parseDynHeader(b: Buffer, file: string): DynHeader {
  if (b.toString("latin1", 0, 8) !== DYN_COOKIE) {
    throw corrupt("E_VHD_DYN_HEADER", `${file}: dynamic disk header cookie is '${b.toString("latin1", 0, 8).replace(/[^\x20-\x7e]/g, ".")}', expected '${DYN_COOKIE}'`);
  }
  const version = b.readUInt32BE(24);
  if (version >>> 16 !== 1) throw corrupt("E_VHD_DYN_HEADER", `${file}: dynamic header version ${hex(version)} (expected 0x00010000)`);
  const nameRaw = b.subarray(64, 576);
  let name = "";
  for (let i = 0; i + 1 < nameRaw.length; i += 2) {
    const c = nameRaw.readUInt16BE(i);
    if (c === 0) break;
    name += String.fromCharCode(c);
  }
  const locators = [];
  for (let i = 0; i < 8; i++) {
    const o = 576 + i * 24;
    locators.push({ code: b.readUInt32BE(o), space: b.readUInt32BE(o + 4), length: b.readUInt32BE(o + 8), offset: u64(b, o + 16) });
  }
  return {
    tableOffset: u64(b, 16), maxTableEntries: b.readUInt32BE(28), blockSize: b.readUInt32BE(32),
    checksum: b.readUInt32BE(36), computed: vhdChecksum(b, 36),
    parentUniqueId: uuidText(b.subarray(40, 56)), parentTimestamp: b.readUInt32BE(56), parentName: name, locators,
  };
}

/** Parent path candidates from the locators: W2ru (relative) first, then W2ku, MacX, the unicode name. */
function parentCandidates(src: ByteSource, dh: DynHeader): string[] {
  const order = [PLATFORM.W2ru, PLATFORM.W2ku, PLATFORM.MacX, PLATFORM.Wi2r, PLATFORM.Wi2k];
  const out: string[] = [];
  for (const code of order) {
    for (const l of dh.locators) {
      if (l.code !== code || l.length === 0) continue;
      if (l.length > MAX_DESCRIPTOR_BYTES || l.offset + l.length > src.size) {
        throw corrupt("E_VHD_PARENT_LOCATOR", `${path.basename(src.path)}: parent locator data at ${l.offset} (+${l.length}) lies outside the file (${src.size} bytes)`);
      }
      const raw = src.read(l.offset, l.length, "VHD parent locator");
      let s: string;
      if (code === PLATFORM.W2ru || code === PLATFORM.W2ku) s = raw.toString("utf16le");
      else if (code === PLATFORM.MacX) {
        s = raw.toString("utf8");
        try { s = decodeURIComponent(s.replace(/^file:\/\/(localhost)?/i, "")); } catch { /* keep as is */ }
      } else s = raw.toString("latin1");
      s = s.replace(/\0+$/, "");
      if (s) out.push(s);
    }
  }
  if (dh.parentName) out.push(dh.parentName);
  return [...new Set(out)];
}

const BITMAP_CACHE_ENTRIES = 4096;

export const vhdDriver: ContainerDriver = {
  format: "vhd",
  extensions: ["vhd"],
  probe(head, size, src) {
    if (size >= FOOTER_SIZE && src.readUpTo(size - FOOTER_SIZE, 8).toString("latin1") === FOOTER_COOKIE) return 100;
    if (size >= OLD_FOOTER_SIZE && src.readUpTo(size - OLD_FOOTER_SIZE, 8).toString("latin1") === FOOTER_COOKIE) return 95;
    if (head.length >= FOOTER_SIZE && head.toString("latin1", 0, 8) === FOOTER_COOKIE) return 90; // header copy only
    return 0;
  },
  open(src: ByteSource, ctx: OpenContext): VirtualDisk {
    const file = path.basename(src.path);
    const findings: ContainerInfo["findings"] = [];
    if (src.size < FOOTER_SIZE) throw truncated("E_VHD_TRUNCATED", `${file}: ${src.size} bytes is too small for a VHD footer (512 bytes)`);

    // --- Footer: end of file (512, or 511 from old Virtual PC), then the copy at offset 0. ---
    let endRaw = src.read(src.size - FOOTER_SIZE, FOOTER_SIZE, "VHD footer");
    let footerAt = src.size - FOOTER_SIZE;
    if (endRaw.toString("latin1", 0, 8) !== FOOTER_COOKIE && src.readUpTo(src.size - OLD_FOOTER_SIZE, 8).toString("latin1") === FOOTER_COOKIE) {
      endRaw = src.read(src.size - OLD_FOOTER_SIZE, OLD_FOOTER_SIZE, "VHD footer");
      footerAt = src.size - OLD_FOOTER_SIZE;
      findings.push(finding("VHD_OLD_FOOTER", { file }));
    }
    const end = parseFooter(endRaw);
    const endCookie = endRaw.toString("latin1", 0, 8) === FOOTER_COOKIE;
    const endProblem = !endCookie ? `cookie '${endRaw.toString("latin1", 0, 8).replace(/[^\x20-\x7e]/g, ".")}'` : footerProblem(end);
    const headRaw = src.read(0, FOOTER_SIZE, "VHD footer copy");
    const copy = headRaw.toString("latin1", 0, 8) === FOOTER_COOKIE && footerAt >= FOOTER_SIZE ? parseFooter(headRaw) : undefined;
    const copyOk = copy !== undefined && !footerProblem(copy) && copy.checksum === copy.computed && copy.diskType !== 2;

    let ft: Footer;
    if (!endProblem) {
      ft = end;
      if (end.checksum !== end.computed) {
        findings.push(finding("VHD_FOOTER_CHECKSUM", { file, stored: hex(end.checksum), computed: hex(end.computed) }));
      }
      if (copy && ft.diskType !== 2 && !headRaw.subarray(0, OLD_FOOTER_SIZE).equals(endRaw.subarray(0, OLD_FOOTER_SIZE))) {
        findings.push(finding("VHD_FOOTER_COPY_DIFFERS", { file }));
      }
    } else if (copyOk) {
      ft = copy!;
      findings.push(finding("VHD_FOOTER_COPY_USED", { file, reason: endProblem }));
    } else if (!endCookie) {
      throw corrupt("E_VHD_COOKIE", `${file}: no VHD footer: ${endProblem} at byte ${src.size - FOOTER_SIZE}, expected '${FOOTER_COOKIE}'` +
        (copy ? "; the copy at offset 0 is damaged too" : ""));
    } else {
      throw corrupt("E_VHD_FOOTER", `${file}: VHD footer is inconsistent: ${endProblem} (checksum ${hex(end.checksum)}, computed ${hex(end.computed)})`);
    }
    if (ft.savedState) findings.push(finding("VHD_SAVED_STATE", { file }));

    const subformat = DISK_TYPE[ft.diskType];
    const sized = chooseSize(ft);
    const virtualSize = sized.size;
    if (virtualSize <= 0 || virtualSize % SECTOR !== 0 || virtualSize > MAX_VIRTUAL_SIZE) {
      throw corrupt("E_VHD_SIZE", `${file}: virtual size ${virtualSize} bytes (current ${ft.currentSize}, CHS ${sized.chsSize}) is not a positive multiple of 512 up to ${MAX_VIRTUAL_SIZE}`);
    }
    if (sized.chsSize !== ft.currentSize && !sized.rule.startsWith("maximum")) {
      findings.push(finding("VHD_SIZE_FIELDS_DIFFER", { file, creator: ft.creatorApp.replace(/\0/g, "\\0"), currentSize: ft.currentSize, chsSize: sized.chsSize, used: virtualSize, rule: sized.rule }));
    }
    const info: ContainerInfo = {
      format: "vhd", subformat, path: src.path, fileSize: src.size, virtualSize, sectorSize: SECTOR,
      geometry: ft.geometry, creator: `${ft.creatorApp.replace(/\0/g, "\\0")} ${ft.creatorVersion >>> 16}.${ft.creatorVersion & 0xffff}`,
      diskId: ft.uniqueId, findings,
      details: {
        creatorApp: ft.creatorApp, creatorName: CREATORS[ft.creatorApp]?.name ?? "unknown",
        creatorVersion: `${ft.creatorVersion >>> 16}.${ft.creatorVersion & 0xffff}`,
        creatorHostOs: HOST_OS[ft.creatorHostOs] ?? hex(ft.creatorHostOs),
        originalSize: ft.originalSize, currentSize: ft.currentSize, chsSize: sized.chsSize, sizeRule: sized.rule,
        timestamp: new Date(Date.UTC(2000, 0, 1) + ft.timestamp * 1000).toISOString(),
        checksumOk: ft.checksum === ft.computed, footerOffset: footerAt,
      },
    };

    if (subformat === "fixed") {
      if (virtualSize > footerAt) {
        throw truncated("E_VHD_TRUNCATED", `${file}: fixed VHD of ${virtualSize} bytes needs ${virtualSize + FOOTER_SIZE} bytes, the file has ${src.size}`);
      }
      return {
        info,
        readInto(dst, offset) {
          // Checked above: the data area lies inside the file, so a short read is the file shrinking under us.
          if (src.readInto(dst, offset) !== dst.length) throw truncated("E_TRUNCATED", `${file}: short read of VHD data at byte ${offset}`);
        },
        close: () => src.close(),
      };
    }

    // --- Dynamic / differencing: dynamic header, BAT, blocks. ---
    const dhOff = Number(ft.dataOffset);
    if (!Number.isSafeInteger(dhOff) || dhOff + DYN_HEADER_SIZE > src.size) {
      throw truncated("E_VHD_TRUNCATED", `${file}: dynamic header at ${ft.dataOffset} lies past the end of the file (${src.size} bytes)`);
    }
    const dh = parseDynHeader(src.read(dhOff, DYN_HEADER_SIZE, "VHD dynamic header"), file);
    if (dh.checksum !== dh.computed) findings.push(finding("VHD_DYN_HEADER_CHECKSUM", { file, stored: hex(dh.checksum), computed: hex(dh.computed) }));
    const bs = dh.blockSize;
    if (bs < SECTOR || bs > 256 * 2 ** 20 || (bs & (bs - 1)) !== 0) {
      throw corrupt("E_VHD_BLOCK_SIZE", `${file}: block size ${bs} is not a power of two between 512 bytes and 256 MiB`);
    }
    const n = dh.maxTableEntries;
    if (n > MAX_TABLE_ENTRIES) throw overLimit("E_VHD_BAT_LIMIT", `${file}: BAT has ${n} entries, more than the limit of ${MAX_TABLE_ENTRIES}`);
    if (n * bs < virtualSize) {
      throw corrupt("E_VHD_BAT_SIZE", `${file}: BAT of ${n} entries x ${bs}-byte blocks covers ${n * bs} bytes, less than the virtual size ${virtualSize}`);
    }
    if (dh.tableOffset + n * 4 > src.size) {
      throw truncated("E_VHD_TRUNCATED", `${file}: BAT at ${dh.tableOffset} (${n} entries) lies past the end of the file (${src.size} bytes)`);
    }
    const bat = new Uint32Array(n);
    const batRaw = src.read(dh.tableOffset, n * 4, "VHD BAT");
    const bitmapBytes = Math.ceil(bs / SECTOR / 8 / SECTOR) * SECTOR;
    for (let i = 0; i < n; i++) {
      const e = batRaw.readUInt32BE(i * 4);
      if (e !== BAT_UNUSED && e * SECTOR + bitmapBytes + bs > src.size) {
        throw corrupt("E_VHD_BAT_ENTRY", `${file}: BAT entry ${i} points to sector ${e}, a block past the end of the file (${src.size} bytes)`);
      }
      bat[i] = e;
    }
    info.details!.blockSize = bs;
    info.details!.batEntries = n;

    let parent: VirtualDisk | undefined;
    if (subformat === "differencing") {
      const cands = parentCandidates(src, dh);
      if (cands.length === 0) throw corrupt("E_VHD_PARENT_LOCATOR", `${file}: differencing VHD names no parent (no usable parent locator)`);
      parent = ctx.openParent(src, cands, "vhd");
      info.parent = parent.info;
      info.details!.parentCandidates = cands;
      info.details!.parentUniqueId = dh.parentUniqueId;
      if (parent.info.format === "vhd" && parent.info.diskId !== dh.parentUniqueId) {
        findings.push(finding("VHD_PARENT_ID_MISMATCH", { file, parent: path.basename(parent.info.path), expected: dh.parentUniqueId, actual: parent.info.diskId }));
      }
    }

    // Block bitmaps of a differencing disk decide, per sector, child or parent. Cached, bounded.
    const bitmaps = new Map<number, Buffer>();
    const bitmapOf = (blk: number): Buffer => {
      let b = bitmaps.get(blk);
      if (!b) {
        if (bitmaps.size >= BITMAP_CACHE_ENTRIES) bitmaps.delete(bitmaps.keys().next().value!);
        b = src.read(bat[blk] * SECTOR, bitmapBytes, "VHD block bitmap");
        bitmaps.set(blk, b);
      }
      return b;
    };
    const readParent = (dst: Buffer, offset: number) => {
      if (!parent) { dst.fill(0); return; }
      const pSize = parent.info.virtualSize;
      const inParent = Math.max(0, Math.min(dst.length, pSize - offset));
      if (inParent > 0) parent.readInto(dst.subarray(0, inParent), offset);
      dst.fill(0, inParent);
    };

    return {
      info,
      readInto(dst, offset) {
        let done = 0;
        while (done < dst.length) {
          const pos = offset + done;
          const blk = Math.floor(pos / bs);
          const inBlk = pos - blk * bs;
          const len = Math.min(dst.length - done, bs - inBlk);
          const part = dst.subarray(done, done + len);
          const e = blk < n ? bat[blk] : BAT_UNUSED;
          if (e === BAT_UNUSED) readParent(part, pos);
          else if (!parent) src.read(e * SECTOR + bitmapBytes + inBlk, len, "VHD block").copy(part);
          else {
            // Runs of sectors with the same bitmap bit (bit 7 of byte 0 is the block's first sector).
            const bm = bitmapOf(blk);
            const bitOf = (sec: number) => (bm[sec >> 3] >> (7 - (sec & 7))) & 1;
            let s = 0;
            while (s < len) {
              const sec = Math.floor((inBlk + s) / SECTOR);
              const bit = bitOf(sec);
              let runEnd = Math.min(len, (sec + 1) * SECTOR - inBlk);
              while (runEnd < len) {
                const s2 = Math.floor((inBlk + runEnd) / SECTOR);
                if (bitOf(s2) !== bit) break;
                runEnd = Math.min(len, (s2 + 1) * SECTOR - inBlk);
              }
              const sub = part.subarray(s, runEnd);
              if (bit) src.read(e * SECTOR + bitmapBytes + inBlk + s, sub.length, "VHD block").copy(sub);
              else readParent(sub, pos + s);
              s = runEnd;
            }
          }
          done += len;
        }
      },
      close() { parent?.close(); src.close(); },
    };
  },
};
