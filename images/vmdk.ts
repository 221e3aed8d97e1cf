// VMDK disks (VMware Virtual Disk Format 1.1): hosted sparse extents ("KDMV": monolithicSparse,
// streamOptimized with compressed grains, markers and the footer), text descriptors with
// FLAT/VMFS/SPARSE/ZERO extents (monolithicFlat, twoGbMaxExtent*, vmfs), and delta disks.
import * as path from "node:path";
import * as zlib from "node:zlib";
import type { ContainerDriver } from "./registry.ts";
import type { ContainerInfo, Geometry, OpenContext, VirtualDisk } from "./block.ts";
import type { ByteSource } from "./source.ts";
import { ImageError, corrupt, hex, overLimit, truncated, unsupported } from "./errors.ts";
import {
  MAX_DESCRIPTOR_BYTES, MAX_OPEN_EXTENT_FILES, MAX_TABLE_ENTRIES, MAX_VIRTUAL_SIZE,
  MAX_VMDK_EXTENTS, MAX_VMDK_GRAIN_BYTES, MAX_VMDK_GTES_PER_GT,
} from "./limits.ts";
import { grainCache, tableCache, cacheOwner } from "./grain-cache.ts";
import { defineFindings, finding } from "../emu/findings.ts";

defineFindings([
  {
    code: "VMDK_UNCLEAN_SHUTDOWN", severity: "warning", stage: "image", title: "VMDK was not closed cleanly",
    message: "{file}: the sparse extent header has uncleanShutdown set; grain tables may be out of date",
    remedy: "vmware-vdiskmanager -R {file}",
    explain: "VMware sets uncleanShutdown while a sparse extent is open for writing. A set flag after the VM is off means the " +
      "disk was not closed, and VMware would check and repair it before use. Repair it in VMware before converting.",
  },
  {
    code: "VMDK_PARENT_CID_MISMATCH", severity: "warning", stage: "image", title: "VMDK delta does not match its parent",
    message: "{file}: parentCID {parentCID} but the parent {parent} has CID {cid}; the parent changed after the snapshot",
    remedy: "qemu-img convert -O vpc -o subformat=fixed,force_size=on {file} disk.vhd (after checking the chain in VMware)",
    explain: "A delta disk records its parent's content ID (CID). A different CID means the parent was written after the delta " +
      "was taken; VMware refuses to open such a chain and the merged content may be inconsistent.",
  },
  {
    code: "VMDK_EXTENT_SIZE_MISMATCH", severity: "warning", stage: "image", title: "VMDK extent size differs from its header",
    message: "{file}: descriptor gives extent {extent} {descriptorSectors} sectors, its header says {headerSectors}",
    remedy: "qemu-img check {file}",
    explain: "The descriptor and the sparse extent header disagree about the extent size. Sectors past the header's capacity read as zeros.",
  },
  {
    code: "VMDK_REDUNDANT_GD_USED", severity: "warning", stage: "image", title: "VMDK grain directory damaged, redundant copy used",
    message: "{file}: the grain directory at sector {gd} is invalid ({reason}); the redundant grain directory at sector {rgd} was used",
    remedy: "vmware-vdiskmanager -R {file}",
    explain: "Hosted sparse extents keep a redundant copy of the grain directory and tables. The primary copy was damaged.",
  },
]);

const SPARSE_MAGIC = 0x564d444b;                    // "KDMV" [VMDK 1.1, Hosted Sparse Extent Header]
const COWD_MAGIC = 0x44574f43;                      // "COWD" [VMDK 1.1, ESX Server Sparse Extents]
const SECTOR = 512;
const GD_AT_END = 0xffffffffffffffffn;              // [VMDK 1.1, Stream-Optimized] gdOffset: GD is at the end
const FLAG_NEWLINE_TEST = 1 << 0;                   // [VMDK 1.1] valid new line detection test
const FLAG_ZERO_GRAIN = 1 << 2;                     // GTE 1 means a zeroed grain
const FLAG_COMPRESSED = 1 << 16;                    // grains are compressed
const FLAG_MARKERS = 1 << 17;                       // metadata/grain markers present
const COMPRESSION_DEFLATE = 1;                      // compressAlgorithm
const MARKER_FOOTER = 3;                            // marker types: 0 EOS, 1 GT, 2 GD, 3 FOOTER
const GTE_ZEROED = 1;
const NO_PARENT_CID = 0xffffffff;

interface SparseHeader {
  version: number; flags: number; capacity: number; grainSize: number; descriptorOffset: number;
  descriptorSize: number; numGTEsPerGT: number; rgdOffset: number; gdOffset: number; gdAtEnd: boolean;
  unclean: boolean; compressAlgorithm: number;
}

function num64(b: Buffer, off: number, what: string, file: string): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt("E_VMDK_HEADER", `${file}: ${what} ${hex(v, 16)} is out of range`);
  return Number(v);
}

/** The 512-byte hosted sparse extent header (also the footer copy of streamOptimized files). */
function parseSparseHeader(b: Buffer, file: string): SparseHeader {
  if (b.length < SECTOR) throw truncated("E_TRUNCATED", `${file}: sparse extent header needs ${SECTOR} bytes, file has ${b.length}`);
  const magic = b.readUInt32LE(0);
  if (magic !== SPARSE_MAGIC) throw corrupt("E_VMDK_MAGIC", `${file}: sparse extent magic ${hex(magic)}, expected ${hex(SPARSE_MAGIC)} ("KDMV")`);
  const version = b.readUInt32LE(4);
  if (version < 1 || version > 3) throw unsupported("E_VMDK_VERSION", `${file}: sparse extent version ${version} (1..3 are read)`);
  const flags = b.readUInt32LE(8);
  const gdRaw = b.readBigUInt64LE(56);
  const h: SparseHeader = {
    version, flags,
    capacity: num64(b, 12, "capacity", file),
    grainSize: num64(b, 20, "grainSize", file),
    descriptorOffset: num64(b, 28, "descriptorOffset", file),
    descriptorSize: num64(b, 36, "descriptorSize", file),
    numGTEsPerGT: b.readUInt32LE(44),
    rgdOffset: num64(b, 48, "rgdOffset", file),
    gdAtEnd: gdRaw === GD_AT_END,
    gdOffset: gdRaw === GD_AT_END ? 0 : num64(b, 56, "gdOffset", file),
    unclean: b[72] !== 0,
    compressAlgorithm: b.readUInt16LE(77),
  };
  if ((flags & FLAG_NEWLINE_TEST) && (b[73] !== 0x0a || b[74] !== 0x20 || b[75] !== 0x0d || b[76] !== 0x0a)) {
    throw corrupt("E_VMDK_NEWLINE", `${file}: newline test bytes ${b.subarray(73, 77).toString("hex")} (expected 0a200d0a): the file was transferred in text mode`);
  }
  if (h.capacity * SECTOR > MAX_VIRTUAL_SIZE) {
    throw overLimit("E_SIZE_LIMIT", `${file}: capacity ${h.capacity} sectors is beyond the ${MAX_VIRTUAL_SIZE / 2 ** 40} TiB limit`);
  }
  if (h.grainSize < 1 || (h.grainSize & (h.grainSize - 1)) !== 0 || h.grainSize * SECTOR > MAX_VMDK_GRAIN_BYTES) {
    throw corrupt("E_VMDK_GRAIN_SIZE", `${file}: grainSize ${h.grainSize} sectors is not a power of two up to ${MAX_VMDK_GRAIN_BYTES / SECTOR}`);
  }
  if (h.numGTEsPerGT < 1 || h.numGTEsPerGT > MAX_VMDK_GTES_PER_GT) {
    throw overLimit("E_VMDK_GT_SIZE", `${file}: numGTEsPerGT ${h.numGTEsPerGT} outside 1..${MAX_VMDK_GTES_PER_GT} (the spec uses 512)`);
  }
  if ((flags & FLAG_COMPRESSED) && h.compressAlgorithm !== COMPRESSION_DEFLATE) {
    throw unsupported("E_VMDK_COMPRESSION", `${file}: compressAlgorithm ${h.compressAlgorithm} (only 1, deflate, is read)`);
  }
  return h;
}

/** Descriptor contents [VMDK 1.1, The Descriptor File]. */
interface ExtentLine { access: string; sectors: number; type: string; file?: string; offset: number }
interface Descriptor { keys: Map<string, string>; extents: ExtentLine[] }

function parseDescriptor(text: string, file: string): Descriptor {
  const keys = new Map<string, string>();
  const extents: ExtentLine[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    if (/[\0-\x08\x0e-\x1f]/.test(line)) throw corrupt("E_VMDK_DESCRIPTOR", `${file}: descriptor line ${i + 1} holds binary data`);
    const ext = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$/i.exec(line);
    if (ext) {
      if (extents.length >= MAX_VMDK_EXTENTS) throw overLimit("E_VMDK_EXTENTS", `${file}: more than ${MAX_VMDK_EXTENTS} extents`);
      const sectors = Number(ext[2]), offset = ext[5] ? Number(ext[5]) : 0;
      if (!Number.isSafeInteger(sectors) || !Number.isSafeInteger(offset) || sectors * SECTOR > MAX_VIRTUAL_SIZE || offset * SECTOR > Number.MAX_SAFE_INTEGER) {
        throw corrupt("E_VMDK_DESCRIPTOR", `${file}: extent line ${i + 1} has size ${ext[2]} / offset ${ext[5] ?? 0} out of range`);
      }
      extents.push({ access: ext[1].toUpperCase(), sectors, type: ext[3].toUpperCase(), file: ext[4], offset });
      continue;
    }
    if (/^(RW|RDONLY|NOACCESS)\s/i.test(line)) {
      throw corrupt("E_VMDK_DESCRIPTOR", `${file}: extent line ${i + 1} is malformed: ${JSON.stringify(line.slice(0, 80))}`);
    }
    const kv = /^([^=\s"]+)\s*=\s*(.*)$/.exec(line);
    if (kv) keys.set(kv[1], kv[2].replace(/^"(.*)"$/, "$1"));
    // Other lines are ignored, as VMware and QEMU do.
  }
  return { keys, extents };
}

function descriptorText(b: Buffer, file: string): string {
  const nul = b.indexOf(0);
  const text = b.subarray(0, nul < 0 ? b.length : nul).toString("utf8");
  if (!/^\s*#\s*Disk DescriptorFile/i.test(text) && !/createType\s*=/i.test(text)) {
    throw corrupt("E_VMDK_DESCRIPTOR", `${file}: not a VMDK descriptor (no "# Disk DescriptorFile" line, no createType)`);
  }
  return text;
}

/** Extent files opened through the context (confined to the image folder), at most N open at once. */
class ExtentFiles {
  private open = new Map<string, ByteSource>();
  constructor(private ctx: OpenContext, private from: ByteSource) {}
  get(name: string): ByteSource {
    let s = this.open.get(name);
    if (s) { this.open.delete(name); this.open.set(name, s); return s; }
    if (this.open.size >= MAX_OPEN_EXTENT_FILES) {
      const [oldName, old] = this.open.entries().next().value as [string, ByteSource];
      old.close();
      this.open.delete(oldName);
    }
    s = this.ctx.openRelated(this.from, name);
    this.open.set(name, s);
    return s;
  }
  closeAll(): void { for (const s of this.open.values()) s.close(); this.open.clear(); }
}

/** One hosted sparse extent: header, grain directory, grain tables on demand. */
class SparseExtent {
  readonly h: SparseHeader;
  readonly gd: Uint32Array;
  readonly grainBytes: number;
  readonly fileSize: number;
  readonly findings: ContainerInfo["findings"] = [];

  /** `key` prefixes this extent's entries in the shared caches. */
  constructor(private src: () => ByteSource, private key: string, private file: string) {
    const s = src();
    this.fileSize = s.size;
    let h = parseSparseHeader(s.readUpTo(0, SECTOR), file);
    if (h.gdAtEnd) h = this.footer(s, h);
    this.h = h;
    this.grainBytes = h.grainSize * SECTOR;
    if (h.unclean) this.findings.push(finding("VMDK_UNCLEAN_SHUTDOWN", { file }));
    const gdEntries = Math.ceil(h.capacity / (h.grainSize * h.numGTEsPerGT));
    if (gdEntries > MAX_TABLE_ENTRIES) {
      throw overLimit("E_VMDK_GD_SIZE", `${file}: grain directory of ${gdEntries} entries exceeds the ${MAX_TABLE_ENTRIES}-entry limit`);
    }
    let gd = this.loadGd(s, h.gdOffset, gdEntries);
    let bad = this.checkGd(gd, s.size);
    if (bad && h.rgdOffset > 0 && h.rgdOffset !== h.gdOffset) {
      const rgd = this.loadGd(s, h.rgdOffset, gdEntries, true);
      if (rgd && !this.checkGd(rgd, s.size)) {
        this.findings.push(finding("VMDK_REDUNDANT_GD_USED", { file, gd: h.gdOffset, rgd: h.rgdOffset, reason: bad }));
        gd = rgd; bad = undefined;
      }
    }
    if (bad) throw corrupt("E_VMDK_GT_OFFSET", `${file}: ${bad}`);
    this.gd = gd!;
  }

  /** streamOptimized: the real header is the footer copy, 1536 bytes before the end [VMDK 1.1 Stream-Optimized]. */
  private footer(s: ByteSource, first: SparseHeader): SparseHeader {
    if (!(first.flags & FLAG_MARKERS)) throw corrupt("E_VMDK_HEADER", `${this.file}: gdOffset is GD_AT_END but the extent has no markers`);
    const end = Math.floor(s.size / SECTOR) * SECTOR;
    if (end < 3 * SECTOR + SECTOR) throw truncated("E_TRUNCATED", `${this.file}: too short (${s.size} bytes) for a stream footer`);
    const tail = s.read(end - 3 * SECTOR, 3 * SECTOR, "stream footer");
    const mSize = tail.readUInt32LE(8), mType = tail.readUInt32LE(12);
    if (mSize !== 0 || mType !== MARKER_FOOTER) {
      throw corrupt("E_VMDK_FOOTER", `${this.file}: no footer marker 1536 bytes before the end (size ${mSize}, type ${mType}); the stream is truncated or incomplete`);
    }
    const h = parseSparseHeader(tail.subarray(SECTOR, 2 * SECTOR), this.file);
    if (h.gdAtEnd) throw corrupt("E_VMDK_FOOTER", `${this.file}: footer gdOffset is GD_AT_END too`);
    return h;
  }

  private loadGd(s: ByteSource, sector: number, entries: number, soft = false): Uint32Array | undefined {
    const off = sector * SECTOR;
    if (entries === 0) return new Uint32Array(0);
    if (sector === 0 || off + entries * 4 > s.size) {
      if (soft) return undefined;
      throw corrupt("E_VMDK_GD_OFFSET", `${this.file}: grain directory at sector ${sector} (${entries} entries) lies outside the file (${s.size} bytes)`);
    }
    const b = s.read(off, entries * 4, "grain directory");
    const gd = new Uint32Array(entries);
    for (let i = 0; i < entries; i++) gd[i] = b.readUInt32LE(i * 4);
    return gd;
  }

  /** Undefined when every grain table lies inside the file, else the reason. */
  private checkGd(gd: Uint32Array | undefined, size: number): string | undefined {
    if (!gd) return "missing";
    const gtBytes = this.h.numGTEsPerGT * 4;
    for (let i = 0; i < gd.length; i++) {
      if (gd[i] !== 0 && gd[i] * SECTOR + gtBytes > size) {
        return `grain directory entry ${i} points to a grain table at sector ${gd[i]}, past the end of the file (${size} bytes)`;
      }
    }
    return undefined;
  }

  /** Grain table entry for grain `g`: 0 unallocated, GTE_ZEROED, or the grain's sector. */
  gte(g: number): number {
    const gdi = Math.floor(g / this.h.numGTEsPerGT);
    const gtSector = gdi < this.gd.length ? this.gd[gdi] : 0;
    if (gtSector === 0) return 0;
    const gt = tableCache.getOrLoad(`${this.key}:${gtSector}`,
      () => this.src().read(gtSector * SECTOR, this.h.numGTEsPerGT * 4, "grain table"), (t) => t.length);
    return gt.readUInt32LE((g - gdi * this.h.numGTEsPerGT) * 4);
  }

  /** Fill `dst` from grain `g` at byte `inner`; returns false when the grain is unallocated. */
  read(dst: Buffer, g: number, inner: number): boolean {
    const gte = this.gte(g);
    if (gte === 0) return false;
    if (gte === GTE_ZEROED && (this.h.flags & FLAG_ZERO_GRAIN)) { dst.fill(0); return true; }
    const off = gte * SECTOR;
    if (off >= this.fileSize) {
      throw corrupt("E_VMDK_GRAIN_OFFSET", `${this.file}: grain ${g} at sector ${gte} lies past the end of the file (${this.fileSize} bytes)`);
    }
    if (this.h.flags & FLAG_COMPRESSED) {
      this.grain(g, off).copy(dst, 0, inner, inner + dst.length);
    } else {
      const b = this.src().readUpTo(off + inner, dst.length);
      b.copy(dst, 0);
      if (b.length < dst.length) dst.fill(0, b.length);
    }
    return true;
  }

  /** A compressed grain, inflated (bounded to the grain size) and cached. */
  private grain(g: number, off: number): Buffer {
    return grainCache.getOrLoad(`${this.key}:${off}`, () => {
      const s = this.src();
      let data: Buffer;
      if (this.h.flags & FLAG_MARKERS) {                 // grain marker: lba u64, size u32, data
        const m = s.read(off, 12, "grain marker");
        const size = m.readUInt32LE(8);
        const maxSize = this.grainBytes * 2 + 1024;
        if (size === 0 || size > maxSize) {
          throw corrupt("E_VMDK_GRAIN", `${this.file}: grain ${g} at byte ${off} has compressed size ${size} (expected 1..${maxSize})`);
        }
        data = s.read(off + 12, size, "compressed grain");
      } else {
        data = s.readUpTo(off, this.grainBytes * 2);
      }
      let out: Buffer;
      const isZlib = data.length >= 2 && (data[0] & 0x0f) === 8 && ((data[0] << 8) | data[1]) % 31 === 0;
      try {
        const opts = { maxOutputLength: this.grainBytes };
        out = isZlib ? zlib.inflateSync(data, opts) : zlib.inflateRawSync(data, opts);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw corrupt("E_VMDK_GRAIN", err.code === "ERR_BUFFER_TOO_LARGE"
          ? `${this.file}: compressed grain ${g} at byte ${off} inflates past the ${this.grainBytes}-byte grain`
          : `${this.file}: compressed grain ${g} at byte ${off} does not inflate: ${err.message}`);
      }
      if (out.length < this.grainBytes) out = Buffer.concat([out, Buffer.alloc(this.grainBytes - out.length)]);
      return out;
    }, (b) => b.length);
  }
}

interface Extent {
  start: number;            // virtual byte offset
  length: number;           // bytes
  type: "flat" | "sparse" | "zero";
  name?: string;            // extent file (undefined: the image file itself)
  flatOffset: number;       // bytes into a flat file
  sparse?: SparseExtent;
}

const geometryOf = (keys: Map<string, string>): Geometry | undefined => {
  const c = Number(keys.get("ddb.geometry.cylinders")), h = Number(keys.get("ddb.geometry.heads")),
    s = Number(keys.get("ddb.geometry.sectors"));
  // Cylinders may be 0: qemu-img writes 0 for SCSI disks under 8 MiB.
  return Number.isSafeInteger(c) && c >= 0 && [h, s].every((x) => Number.isSafeInteger(x) && x > 0)
    ? { cylinders: c, heads: h, sectorsPerTrack: s } : undefined;
};

function openVmdk(src: ByteSource, ctx: OpenContext): VirtualDisk {
  const file = path.basename(src.path);
  const head = src.readUpTo(0, SECTOR);
  const files = new ExtentFiles(ctx, src);
  const owner = cacheOwner();
  const findings: ContainerInfo["findings"] = [];
  const extents: Extent[] = [];
  let desc: Descriptor | undefined;
  let fileSize = src.size;
  let sparseVersion: number | undefined;
  let parent: VirtualDisk | undefined;

  try {
    if (head.length >= 4 && head.readUInt32LE(0) === COWD_MAGIC) {
      throw unsupported("E_VMDK_COWD", `${file}: ESX "COWD" sparse extent (vmfsSparse delta) is not read; consolidate the snapshot in vSphere first`);
    }
    if (head.length >= 4 && head.readUInt32LE(0) === SPARSE_MAGIC) {
      // Monolithic sparse / streamOptimized: the file is its own single extent; the descriptor is embedded.
      const sp = new SparseExtent(() => src, owner.prefix + "0", file);
      sparseVersion = sp.h.version;
      findings.push(...sp.findings);
      if (sp.h.descriptorOffset > 0 && sp.h.descriptorSize > 0) {
        const bytes = sp.h.descriptorSize * SECTOR;
        if (bytes > MAX_DESCRIPTOR_BYTES) {
          throw overLimit("E_VMDK_DESCRIPTOR", `${file}: embedded descriptor of ${bytes} bytes exceeds ${MAX_DESCRIPTOR_BYTES}`);
        }
        const area = src.read(sp.h.descriptorOffset * SECTOR, bytes, "embedded descriptor");
        // Extent files of a twoGbMaxExtentSparse disk reserve the area but leave it empty.
        if (area.some((c) => c !== 0)) desc = parseDescriptor(descriptorText(area, file), file);
      }
      extents.push({ start: 0, length: sp.h.capacity * SECTOR, type: "sparse", flatOffset: 0, sparse: sp });
    } else {
      // Text descriptor naming extent files next to it.
      if (src.size > MAX_DESCRIPTOR_BYTES) {
        throw corrupt("E_VMDK_MAGIC", `${file}: no "KDMV" sparse extent header (magic ${hex(head.length >= 4 ? head.readUInt32LE(0) : 0)}) ` +
          `and ${src.size} bytes is too large for a text descriptor (limit ${MAX_DESCRIPTOR_BYTES})`);
      }
      desc = parseDescriptor(descriptorText(src.read(0, src.size, "descriptor"), file), file);
      if (desc.extents.length === 0) throw corrupt("E_VMDK_DESCRIPTOR", `${file}: descriptor lists no extents`);
      let start = 0;
      for (const [i, e] of desc.extents.entries()) {
        const len = e.sectors * SECTOR;
        const x: Extent = { start, length: len, type: "zero", flatOffset: 0 };
        if (e.type === "ZERO") { /* reads as zeros */ }
        else if (e.type === "FLAT" || e.type === "VMFS") {
          if (!e.file) throw corrupt("E_VMDK_DESCRIPTOR", `${file}: ${e.type} extent ${i} names no file`);
          const s = files.get(e.file);
          x.type = "flat"; x.name = e.file; x.flatOffset = e.offset * SECTOR;
          if (x.flatOffset + len > s.size) {
            throw truncated("E_VMDK_EXTENT_TRUNCATED", `${file}: flat extent '${e.file}' is ${s.size} bytes, the descriptor needs ${x.flatOffset + len}`);
          }
          fileSize += s.size;
        } else if (e.type === "SPARSE") {
          if (!e.file) throw corrupt("E_VMDK_DESCRIPTOR", `${file}: SPARSE extent ${i} names no file`);
          const name = e.file;
          const s = files.get(name);
          const sp = new SparseExtent(() => files.get(name), owner.prefix + i, path.basename(name));
          x.type = "sparse"; x.name = name; x.sparse = sp;
          sparseVersion ??= sp.h.version;
          findings.push(...sp.findings);
          if (sp.h.capacity !== e.sectors) {
            findings.push(finding("VMDK_EXTENT_SIZE_MISMATCH", { file, extent: name, descriptorSectors: e.sectors, headerSectors: sp.h.capacity }));
          }
          fileSize += s.size;
        } else if (e.type === "VMFSSPARSE" || e.type === "SESPARSE") {
          throw unsupported("E_VMDK_SNAPSHOT_DELTA", `${file}: extent ${i} is an ESXi snapshot delta (${e.type}), which is not read; ` +
            "consolidate the snapshots in vSphere (Delete All) or export the VM with ovftool first");
        } else {
          throw unsupported("E_VMDK_EXTENT_TYPE", `${file}: extent ${i} has type ${e.type} (FLAT, VMFS, SPARSE and ZERO are read)`);
        }
        extents.push(x);
        start += len;
        if (start > MAX_VIRTUAL_SIZE) throw overLimit("E_SIZE_LIMIT", `${file}: extents add up to more than ${MAX_VIRTUAL_SIZE / 2 ** 40} TiB`);
      }
    }

    const keys = desc?.keys ?? new Map<string, string>();
    const cidOf = (k: string): number | undefined => {
      const v = keys.get(k);
      return v !== undefined && /^[0-9a-f]{1,8}$/i.test(v) ? parseInt(v, 16) : undefined;
    };
    const parentCID = cidOf("parentCID");
    const hint = keys.get("parentFileNameHint");
    if (parentCID !== undefined && parentCID !== NO_PARENT_CID) {
      if (!hint) throw corrupt("E_VMDK_PARENT", `${file}: delta disk (parentCID ${hex(parentCID)}) names no parentFileNameHint`);
      if (/[\0-\x1f]/.test(hint)) throw corrupt("E_VMDK_PARENT", `${file}: parentFileNameHint holds control characters`);
      parent = ctx.openParent(src, [hint], "vmdk");
      const pcid = parent.info.diskId;
      if (pcid !== undefined && parseInt(pcid, 16) !== parentCID) {
        findings.push(finding("VMDK_PARENT_CID_MISMATCH", { file, parent: path.basename(hint), parentCID: hex(parentCID), cid: pcid }));
      }
    }

    const virtualSize = extents.reduce((a, e) => a + e.length, 0);
    const cid = cidOf("CID");
    const sp0 = extents.find((e) => e.sparse)?.sparse;
    const createType = keys.get("createType") ?? (sp0 && (sp0.h.flags & FLAG_MARKERS) ? "streamOptimized" : "monolithicSparse");
    const info: ContainerInfo = {
      format: "vmdk", subformat: createType, path: src.path, fileSize, virtualSize, sectorSize: SECTOR,
      geometry: geometryOf(keys), creator: createType, findings, parent: parent?.info,
      diskId: cid !== undefined ? hex(cid) : undefined,
      details: {
        createType, adapterType: keys.get("ddb.adapterType"), virtualHWVersion: keys.get("ddb.virtualHWVersion"),
        toolsVersion: keys.get("ddb.toolsVersion"), uuid: keys.get("ddb.uuid"), longContentID: keys.get("ddb.longContentID"),
        cid: cid !== undefined ? hex(cid) : undefined, parentCID: parentCID !== undefined ? hex(parentCID) : undefined,
        parentFileNameHint: hint, sparseVersion,
        grainSize: sp0 ? sp0.grainBytes : undefined, compressed: sp0 ? (sp0.h.flags & FLAG_COMPRESSED) !== 0 : undefined,
        extents: desc?.extents.map((e) => ({ access: e.access, type: e.type, sectors: e.sectors, file: e.file, offset: e.offset })),
      },
    };
    const parentSize = parent?.info.virtualSize ?? 0;
    const readParent = (dst: Buffer, voff: number): void => {
      const n = parent ? Math.max(0, Math.min(dst.length, parentSize - voff)) : 0;
      if (n > 0) parent!.readInto(dst.subarray(0, n), voff);
      if (n < dst.length) dst.fill(0, n);
    };
    const findExtent = (voff: number): number => {
      let lo = 0, hi = extents.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (extents[mid].start <= voff) lo = mid; else hi = mid - 1;
      }
      return lo;
    };

    return {
      info,
      readInto(dst: Buffer, offset: number): void {
        let pos = 0;
        let xi = findExtent(offset);
        while (pos < dst.length) {
          const voff = offset + pos;
          while (xi < extents.length - 1 && voff >= extents[xi].start + extents[xi].length) xi++;
          const x = extents[xi];
          const rel = voff - x.start;
          if (rel >= x.length) { dst.fill(0, pos); return; }      // past the last extent (Disk bounds reads)
          let n = Math.min(x.length - rel, dst.length - pos);
          if (x.type === "zero") {
            dst.fill(0, pos, pos + n);
          } else if (x.type === "flat") {
            const s = files.get(x.name!);
            s.read(x.flatOffset + rel, n, `flat extent ${x.name}`).copy(dst, pos);
          } else {
            const sp = x.sparse!;
            const g = Math.floor(rel / sp.grainBytes);
            const inner = rel - g * sp.grainBytes;
            n = Math.min(n, sp.grainBytes - inner);
            const part = dst.subarray(pos, pos + n);
            if (rel >= sp.h.capacity * SECTOR || !sp.read(part, g, inner)) readParent(part, voff);
          }
          pos += n;
        }
      },
      close(): void {
        owner.release();
        files.closeAll();
        parent?.close();
        src.close();
      },
    };
  } catch (e) {
    owner.release();
    files.closeAll();
    parent?.close();
    throw e;
  }
}

const DESCRIPTOR_HEAD = /^\s*#\s*Disk DescriptorFile/i;

export const vmdkDriver: ContainerDriver = {
  format: "vmdk",
  extensions: ["vmdk"],
  probe(head: Buffer, size: number): number {
    if (head.length >= 4 && head.readUInt32LE(0) === SPARSE_MAGIC) return 100;
    if (head.length >= 4 && head.readUInt32LE(0) === COWD_MAGIC) return 80;
    if (size > MAX_DESCRIPTOR_BYTES) return 0;
    const text = head.subarray(0, 1024).toString("latin1");
    if (DESCRIPTOR_HEAD.test(text)) return 100;
    if (/^[\x09\x0a\x0d\x20-\x7e]*$/.test(text.replace(/\0+$/, "")) && /createType\s*=/i.test(text)) return 80;
    return 0;
  },
  open(src: ByteSource, ctx: OpenContext): VirtualDisk {
    try {
      return openVmdk(src, ctx);
    } catch (e) {
      if (e instanceof ImageError) throw e;
      throw corrupt("E_VMDK_HEADER", `${path.basename(src.path)}: malformed VMDK: ${(e as Error).message}`);
    }
  },
};
