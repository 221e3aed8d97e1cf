// qcow2 images exported from KVM/QEMU (QEMU docs/interop/qcow2.txt): header v2/v3 with header
// extensions, L1/L2 tables, zlib-compressed clusters, zero clusters, extended L2 entries, backing files.
import * as path from "node:path";
import * as zlib from "node:zlib";
import type { ContainerDriver } from "./registry.ts";
import type { OpenContext, VirtualDisk, ContainerInfo } from "./block.ts";
import type { ByteSource } from "./source.ts";
import { ImageError, corrupt, hex, overLimit, truncated, unsupported } from "./errors.ts";
import { MAX_QCOW2_L1_ENTRIES, MAX_VIRTUAL_SIZE } from "./limits.ts";
import { cacheOwner, grainCache, tableCache } from "./grain-cache.ts";
import { defineFindings, finding } from "../emu/findings.ts";

defineFindings([
  {
    code: "QCOW2_DIRTY", severity: "warning", stage: "image", title: "qcow2 image was not closed cleanly",
    message: "{file}: the qcow2 dirty bit is set (lazy refcounts were not flushed); the data reads fine but refcounts may be stale",
    remedy: "qemu-img check -r all {file}",
    explain: "The incompatible-feature 'dirty' bit (qcow2.txt, header bit 0) means QEMU was writing the image with lazy " +
      "refcounts and did not close it. Guest data is intact; the refcount tables may leak clusters. Repair before converting.",
  },
  {
    code: "QCOW2_CORRUPT_FLAG", severity: "warning", stage: "image", title: "qcow2 image is marked corrupt",
    message: "{file}: QEMU marked this qcow2 image corrupt (incompatible feature bit 1); its metadata overlapped and data may be wrong",
    remedy: "qemu-img check -r all {file}",
    explain: "QEMU sets the 'corrupt' bit (qcow2.txt, header bit 1) when it detects overlapping metadata. QEMU then opens " +
      "the image read-only only. Check and repair it, and verify the guest, before converting.",
  },
  {
    code: "QCOW2_INTERNAL_SNAPSHOTS", severity: "info", stage: "image", title: "qcow2 image has internal snapshots",
    message: "{file}: {count} internal snapshot(s); only the active state is read and converted",
    remedy: "qemu-img snapshot -l {file}",
    explain: "qemu-img convert copies the active layer only. Internal snapshots are not carried to VHD/VHDX.",
  },
]);

const QCOW2_MAGIC = 0x514649fb;                       // "QFI\xfb" [qcow2.txt Header, bytes 0-3]
const V2_HEADER_BYTES = 72;                           // [qcow2.txt] version 2 header length
const V3_MIN_HEADER_BYTES = 104;                      // [qcow2.txt] header_length >= 104 for v3
const MIN_CLUSTER_BITS = 9, MAX_CLUSTER_BITS = 21;    // [qcow2.txt] cluster_bits 9..21 (512 B..2 MiB)
const MAX_BACKING_NAME = 1023;                        // [qcow2.txt] backing_file_size <= 1023
// Incompatible feature bits [qcow2.txt Header, bytes 72-79].
const INCOMPAT_DIRTY = 0, INCOMPAT_CORRUPT = 1, INCOMPAT_DATA_FILE = 2, INCOMPAT_COMPRESSION = 3, INCOMPAT_EXTL2 = 4;
const KNOWN_INCOMPAT = ["dirty", "corrupt", "external data file", "compression type", "extended L2 entries"];
// Header extension types [qcow2.txt Header extensions].
const EXT_END = 0x00000000, EXT_BACKING_FORMAT = 0xe2792aca, EXT_FEATURE_TABLE = 0x6803f857,
  EXT_DATA_FILE = 0x44415441;
const L2E_COMPRESSED_HI = 0x40000000;                 // bit 62 of a standard L2 entry
const L2E_ZERO_LO = 0x1;                              // bit 0 (v3): cluster reads as zeros
const OFFSET_HI_MASK = 0x00ffffff;                    // bits 32-55 of an L1/L2 offset (bits 9-55)
const OFFSET_LO_MASK = 0xfffffe00;                    // bits 9-31
const SUBCLUSTERS = 32;                               // [qcow2.txt Extended L2 Entries]

/** qemu backing_fmt names -> our driver names. */
const BACKING_FORMATS: Record<string, string | undefined> = {
  qcow2: "qcow2", raw: "raw", vmdk: "vmdk", vpc: "vhd", vhdx: "vhdx", file: "raw",
};

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;

function u64n(b: Buffer, off: number, what: string, file: string): number {
  const v = b.readBigUInt64BE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt("E_QCOW2_HEADER", `${file}: ${what} ${hex(v, 16)} is out of range`);
  return Number(v);
}

/** Host offset of an L1/L2 entry (bits 9-55), from its big-endian high and low words. */
const entryOffset = (hi: number, lo: number): number => (hi & OFFSET_HI_MASK) * 2 ** 32 + ((lo & OFFSET_LO_MASK) >>> 0);

function sizeOf(b: Buffer, file: string): number {
  const v = b.readBigUInt64BE(24);
  if (v > BigInt(MAX_VIRTUAL_SIZE)) {
    throw overLimit("E_SIZE_LIMIT", `${file}: qcow2 virtual size ${v} bytes is beyond the ${MAX_VIRTUAL_SIZE / 2 ** 40} TiB limit`);
  }
  return Number(v);
}

interface Header {
  version: number; clusterBits: number; size: number; cryptMethod: number; l1Size: number; l1Offset: number;
  nbSnapshots: number; incompat: bigint; compressionType: number; headerLength: number;
  backingOffset: number; backingSize: number;
}

function parseHeader(b: Buffer, file: string): Header {
  if (b.length < V2_HEADER_BYTES) throw truncated("E_TRUNCATED", `${file}: qcow2 header needs ${V2_HEADER_BYTES} bytes, file has ${b.length}`);
  const magic = b.readUInt32BE(0);
  if (magic !== QCOW2_MAGIC) throw corrupt("E_QCOW2_MAGIC", `${file}: qcow2 magic ${hex(magic)}, expected ${hex(QCOW2_MAGIC)}`);
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw unsupported("E_QCOW2_VERSION", `${file}: qcow2 version ${version} (only 2 and 3 are read)`);
  const clusterBits = b.readUInt32BE(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw corrupt("E_QCOW2_CLUSTER_BITS", `${file}: qcow2 cluster_bits ${clusterBits} outside ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`);
  }
  const h: Header = {
    version, clusterBits,
    backingOffset: u64n(b, 8, "backing_file_offset", file),
    backingSize: b.readUInt32BE(16),
    size: sizeOf(b, file),
    cryptMethod: b.readUInt32BE(32),
    l1Size: b.readUInt32BE(36),
    l1Offset: u64n(b, 40, "l1_table_offset", file),
    nbSnapshots: b.readUInt32BE(60),
    incompat: 0n, compressionType: 0, headerLength: V2_HEADER_BYTES,
  };
  if (version === 3) {
    if (b.length < V3_MIN_HEADER_BYTES) throw truncated("E_TRUNCATED", `${file}: qcow2 v3 header needs ${V3_MIN_HEADER_BYTES} bytes`);
    h.incompat = b.readBigUInt64BE(72);
    h.headerLength = b.readUInt32BE(100);
    if (h.headerLength < V3_MIN_HEADER_BYTES || h.headerLength > 2 ** clusterBits || h.headerLength > b.length) {
      throw corrupt("E_QCOW2_HEADER", `${file}: qcow2 header_length ${h.headerLength} outside ${V3_MIN_HEADER_BYTES}..${Math.min(2 ** clusterBits, b.length)}`);
    }
    if (h.headerLength > 104) h.compressionType = b[104];
  }
  return h;
}

interface Extensions { backingFormat?: string; dataFile?: string; featureNames: Map<number, string> }

/** Header extensions between the header and the end of the first cluster [qcow2.txt Header extensions]. */
function parseExtensions(b: Buffer, start: number, end: number, file: string): Extensions {
  const ext: Extensions = { featureNames: new Map() };
  let off = start;
  for (let n = 0; off + 8 <= end; n++) {
    if (n > 1024) throw overLimit("E_QCOW2_EXTENSIONS", `${file}: more than 1024 qcow2 header extensions`);
    const type = b.readUInt32BE(off), len = b.readUInt32BE(off + 4);
    if (type === EXT_END) break;
    if (off + 8 + len > end) {
      throw corrupt("E_QCOW2_EXTENSIONS", `${file}: qcow2 header extension ${hex(type)} of ${len} bytes at ${off} runs past the first cluster`);
    }
    const data = b.subarray(off + 8, off + 8 + len);
    if (type === EXT_BACKING_FORMAT) ext.backingFormat = data.toString("latin1").replace(/\0.*$/s, "");
    else if (type === EXT_DATA_FILE) ext.dataFile = data.toString("latin1").replace(/\0.*$/s, "");
    else if (type === EXT_FEATURE_TABLE) {
      for (let i = 0; i + 48 <= len; i += 48) {     // entries: type u8, bit u8, name[46]
        if (data[i] === 0) ext.featureNames.set(data[i + 1], data.subarray(i + 2, i + 48).toString("latin1").replace(/\0.*$/s, ""));
      }
    }
    off += 8 + Math.ceil(len / 8) * 8;
  }
  return ext;
}

function inflateCluster(data: Buffer, clusterSize: number, file: string, hostOffset: number): Buffer {
  let out: Buffer;
  try {
    out = zlib.inflateRawSync(data, { maxOutputLength: clusterSize });     // raw deflate, window 2^12 [qcow2.txt]
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ERR_BUFFER_TOO_LARGE") {
      throw corrupt("E_QCOW2_COMPRESSED", `${file}: compressed cluster at ${hex(hostOffset, 1)} inflates past the ${clusterSize}-byte cluster`);
    }
    throw corrupt("E_QCOW2_COMPRESSED", `${file}: compressed cluster at ${hex(hostOffset, 1)} does not inflate: ${err.message}`);
  }
  if (out.length !== clusterSize) {
    throw corrupt("E_QCOW2_COMPRESSED", `${file}: compressed cluster at ${hex(hostOffset, 1)} inflates to ${out.length} bytes, expected ${clusterSize}`);
  }
  return out;
}

function openQcow2(src: ByteSource, ctx: OpenContext): VirtualDisk {
  const file = path.basename(src.path);
  const head = src.readUpTo(0, 65536);
  const h = parseHeader(head, file);
  const clusterSize = 2 ** h.clusterBits;
  if (h.cryptMethod !== 0) {
    throw unsupported("E_QCOW2_ENCRYPTED", `${file}: qcow2 image is encrypted (crypt_method ${h.cryptMethod}: ${h.cryptMethod === 1 ? "AES" : h.cryptMethod === 2 ? "LUKS" : "unknown"}); decrypt it first with qemu-img convert --object secret,...`);
  }
  const firstCluster = head.subarray(0, Math.min(head.length, clusterSize));
  const ext = parseExtensions(firstCluster, h.headerLength, firstCluster.length, file);

  // Incompatible features: refuse every bit we do not implement, naming it.
  const findings: ContainerInfo["findings"] = [];
  for (let i = 0; i < 64; i++) {
    if (!bit(h.incompat, i)) continue;
    if (i === INCOMPAT_DIRTY) findings.push(finding("QCOW2_DIRTY", { file }));
    else if (i === INCOMPAT_CORRUPT) findings.push(finding("QCOW2_CORRUPT_FLAG", { file }));
    else if (i === INCOMPAT_DATA_FILE) {
      throw unsupported("E_QCOW2_DATA_FILE", `${file}: qcow2 guest data lives in an external data file${ext.dataFile ? ` '${ext.dataFile}'` : ""} (incompatible feature bit 2), which is not read`);
    } else if (i === INCOMPAT_COMPRESSION) {
      if (h.compressionType !== 0) {
        throw unsupported("E_QCOW2_COMPRESSION", `${file}: qcow2 compression type ${h.compressionType}${h.compressionType === 1 ? " (zstd)" : ""} is not supported (only zlib); recompress with qemu-img convert -O qcow2 -o compression_type=zlib`);
      }
    } else if (i === INCOMPAT_EXTL2) { /* extended L2 entries: supported below */ }
    else {
      const name = ext.featureNames.get(i) ?? KNOWN_INCOMPAT[i] ?? "unknown";
      throw unsupported("E_QCOW2_FEATURE", `${file}: qcow2 incompatible feature bit ${i} (${name}) is not supported`);
    }
  }
  if (h.compressionType !== 0 && !bit(h.incompat, INCOMPAT_COMPRESSION)) {
    throw corrupt("E_QCOW2_HEADER", `${file}: qcow2 compression_type ${h.compressionType} without incompatible feature bit 3`);
  }
  const extL2 = bit(h.incompat, INCOMPAT_EXTL2);
  if (extL2 && h.clusterBits < 14) {
    throw corrupt("E_QCOW2_HEADER", `${file}: extended L2 entries need clusters of at least 16 KiB, cluster_bits is ${h.clusterBits}`);
  }
  if (h.nbSnapshots > 0) findings.push(finding("QCOW2_INTERNAL_SNAPSHOTS", { file, count: h.nbSnapshots }));

  // L1 table: bound it, read only the entries the virtual size needs, check each L2 offset.
  const l2EntryBytes = extL2 ? 16 : 8;
  const l2Entries = clusterSize / l2EntryBytes;
  const l1Needed = Math.ceil(h.size / (clusterSize * l2Entries));
  if (h.l1Size > MAX_QCOW2_L1_ENTRIES) {
    throw overLimit("E_QCOW2_L1_SIZE", `${file}: qcow2 L1 table of ${h.l1Size} entries exceeds the ${MAX_QCOW2_L1_ENTRIES}-entry limit`);
  }
  if (h.l1Size < l1Needed) {
    throw corrupt("E_QCOW2_L1_SIZE", `${file}: qcow2 L1 table has ${h.l1Size} entries, the virtual size ${h.size} needs ${l1Needed}`);
  }
  if (l1Needed > 0 && (h.l1Offset % clusterSize !== 0 || h.l1Offset === 0)) {
    throw corrupt("E_QCOW2_L1_OFFSET", `${file}: qcow2 L1 table offset ${hex(h.l1Offset, 1)} is not a nonzero multiple of the cluster size ${clusterSize}`);
  }
  const l1 = l1Needed > 0 ? src.read(h.l1Offset, l1Needed * 8, "qcow2 L1 table") : Buffer.alloc(0);
  for (let i = 0; i < l1Needed; i++) {
    const off = entryOffset(l1.readUInt32BE(i * 8), l1.readUInt32BE(i * 8 + 4));
    if (off === 0) continue;
    if (off % clusterSize !== 0 || off + clusterSize > src.size) {
      throw corrupt("E_QCOW2_L2_OFFSET", `${file}: L1 entry ${i} points to an L2 table at ${hex(off, 1)}, ` +
        `${off % clusterSize ? "not cluster-aligned" : `past the end of the file (${src.size} bytes)`}`);
    }
  }

  // Backing file [qcow2.txt backing_file_offset/size] and its format (header extension).
  let parent: VirtualDisk | undefined;
  let backingName: string | undefined;
  if (h.backingOffset !== 0) {
    if (h.backingSize > MAX_BACKING_NAME) {
      throw overLimit("E_QCOW2_BACKING", `${file}: backing file name of ${h.backingSize} bytes exceeds ${MAX_BACKING_NAME}`);
    }
    backingName = src.read(h.backingOffset, h.backingSize, "qcow2 backing file name").toString("utf8");
    if (/[\0-\x1f]/.test(backingName) || backingName.length === 0) {
      throw corrupt("E_QCOW2_BACKING", `${file}: backing file name ${JSON.stringify(backingName)} holds control characters or is empty`);
    }
    if (/^[a-z][a-z0-9+.-]*:/i.test(backingName) && !/^[A-Za-z]:[\\/]/.test(backingName)) {
      throw unsupported("E_QCOW2_BACKING", `${file}: backing file '${backingName}' is a protocol/JSON name, not a file`);
    }
    const fmt = ext.backingFormat;
    if (fmt !== undefined && !(fmt in BACKING_FORMATS)) {
      throw unsupported("E_QCOW2_BACKING", `${file}: backing file format '${fmt}' is not supported`);
    }
    parent = ctx.openParent(src, [backingName], fmt ? BACKING_FORMATS[fmt] : undefined);
  }

  const owner = cacheOwner();
  const csizeShift = 62 - (h.clusterBits - 8);        // [qcow2.txt Compressed Clusters Descriptor]
  const csizeMask = (1n << BigInt(h.clusterBits - 8)) - 1n;
  const coffMask = (1n << BigInt(csizeShift)) - 1n;
  const parentSize = parent?.info.virtualSize ?? 0;

  const l2Table = (l2Off: number): Buffer =>
    tableCache.getOrLoad(owner.prefix + l2Off, () => src.read(l2Off, clusterSize, "qcow2 L2 table"), (b) => b.length);

  const readBacking = (dst: Buffer, voff: number): void => {
    const n = parent ? Math.max(0, Math.min(dst.length, parentSize - voff)) : 0;
    if (n > 0) parent!.readInto(dst.subarray(0, n), voff);
    if (n < dst.length) dst.fill(0, n);
  };

  const readHost = (dst: Buffer, hostOff: number): void => {
    if (hostOff >= src.size) {
      throw truncated("E_TRUNCATED", `${file}: data cluster at ${hex(hostOff, 1)} lies past the end of the file (${src.size} bytes)`);
    }
    const b = src.readUpTo(hostOff, dst.length);        // a short tail cluster reads as zeros, like QEMU
    b.copy(dst, 0);
    if (b.length < dst.length) dst.fill(0, b.length);
  };

  const compressedCluster = (hi: number, lo: number): Buffer => {
    const v = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo >>> 0);
    const coff = Number(v & coffMask);
    const nsec = Number((v >> BigInt(csizeShift)) & csizeMask) + 1;
    return grainCache.getOrLoad(owner.prefix + coff, () => {
      if (coff >= src.size) {
        throw truncated("E_TRUNCATED", `${file}: compressed cluster at ${hex(coff, 1)} lies past the end of the file (${src.size} bytes)`);
      }
      const clen = Math.min(nsec * 512 - (coff % 512), src.size - coff);
      return inflateCluster(src.read(coff, clen, "qcow2 compressed cluster"), clusterSize, file, coff);
    }, (b) => b.length);
  };

  const info: ContainerInfo = {
    format: "qcow2", subformat: `v${h.version}`, path: src.path, fileSize: src.size, virtualSize: h.size,
    sectorSize: 512, creator: h.version === 2 ? "qemu compat=0.10" : "qemu compat=1.1", findings,
    parent: parent?.info,
    details: {
      version: h.version, clusterSize, l1Size: h.l1Size, extendedL2: extL2, snapshots: h.nbSnapshots,
      backingFile: backingName, backingFormat: ext.backingFormat, dirty: bit(h.incompat, INCOMPAT_DIRTY),
      compressionType: h.compressionType === 0 ? "zlib" : h.compressionType,
    },
  };

  return {
    info,
    readInto(dst: Buffer, offset: number): void {
      let pos = 0;
      while (pos < dst.length) {
        const voff = offset + pos;
        const ci = Math.floor(voff / clusterSize);
        const inner = voff - ci * clusterSize;
        let n = Math.min(clusterSize - inner, dst.length - pos);
        const l1i = Math.floor(ci / l2Entries);
        const l2i = ci - l1i * l2Entries;
        const part = (): Buffer => dst.subarray(pos, pos + n);
        const l2Off = l1i < l1Needed ? entryOffset(l1.readUInt32BE(l1i * 8), l1.readUInt32BE(l1i * 8 + 4)) : 0;
        if (l2Off === 0) { readBacking(part(), voff); pos += n; continue; }
        const t = l2Table(l2Off);
        const hi = t.readUInt32BE(l2i * l2EntryBytes), lo = t.readUInt32BE(l2i * l2EntryBytes + 4);
        if (hi & L2E_COMPRESSED_HI) {
          compressedCluster(hi, lo).copy(dst, pos, inner, inner + n);
        } else if (extL2) {
          // 32 subclusters: allocation bits 0-31, zero bits 32-63 of the second word [qcow2.txt Extended L2 Entries].
          const sc = clusterSize / SUBCLUSTERS;
          const si = Math.floor(inner / sc);
          n = Math.min(n, (si + 1) * sc - inner);
          const bmHi = t.readUInt32BE(l2i * 16 + 8), bmLo = t.readUInt32BE(l2i * 16 + 12);
          const host = entryOffset(hi, lo);
          if ((bmLo >>> si) & 1) {
            if (host === 0) throw corrupt("E_QCOW2_L2_ENTRY", `${file}: subcluster ${si} of cluster ${ci} is allocated but the cluster has no host offset`);
            readHost(part(), host + inner);
          } else if ((bmHi >>> si) & 1) part().fill(0);
          else readBacking(part(), voff);
        } else {
          const host = entryOffset(hi, lo);
          if (h.version >= 3 && (lo & L2E_ZERO_LO)) part().fill(0);
          else if (host === 0) readBacking(part(), voff);
          else if (host % clusterSize !== 0) {
            throw corrupt("E_QCOW2_L2_ENTRY", `${file}: L2 entry of cluster ${ci} points to ${hex(host, 1)}, not cluster-aligned`);
          } else readHost(part(), host + inner);
        }
        pos += n;
      }
    },
    close(): void {
      owner.release();
      parent?.close();
      src.close();
    },
  };
}

export const qcow2Driver: ContainerDriver = {
  format: "qcow2",
  extensions: ["qcow2", "qcow", "qcow2c"],
  probe(head: Buffer): number {
    if (head.length < 8 || head.readUInt32BE(0) !== QCOW2_MAGIC) return 0;
    const v = head.readUInt32BE(4);
    return v === 2 || v === 3 ? 100 : 90;
  },
  open(src: ByteSource, ctx: OpenContext): VirtualDisk {
    try {
      return openQcow2(src, ctx);
    } catch (e) {
      if (e instanceof ImageError) throw e;
      throw corrupt("E_QCOW2_HEADER", `${path.basename(src.path)}: malformed qcow2 image: ${(e as Error).message}`);
    }
  },
};
