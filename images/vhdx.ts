// VHDX container driver: fixed, dynamic and differencing disks ([MS-VHDX] v20240423: 2.2 header
// section, 2.3 log, 2.4 blocks, 2.5 BAT, 2.6 metadata region).
import * as path from "node:path";
import type { ContainerDriver } from "./registry.ts";
import type { ContainerInfo, OpenContext, VirtualDisk } from "./block.ts";
import type { ByteSource } from "./source.ts";
import { corrupt, hex, overLimit, truncated, unsupported } from "./errors.ts";
import { MAX_TABLE_ENTRIES, MAX_VIRTUAL_SIZE, MAX_VHDX_REGION_ENTRIES as MAX_REGION_ENTRIES, MAX_VHDX_METADATA_ENTRIES as MAX_METADATA_ENTRIES, MAX_VHDX_METADATA_ITEM as MAX_METADATA_ITEM } from "./limits.ts";
import { defineFindings, finding } from "../emu/findings.ts";
import { crc32c } from "./crc.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
// 2.2.1 File Type Identifier, 2.2.2 Headers, 2.2.3 Region Table
const FILE_SIGNATURE = "vhdxfile";
const HEADER_OFFSETS = [64 * KiB, 128 * KiB];
const HEADER_SIZE = 4 * KiB;
const HEADER_SIGNATURE = "head";
const REGION_OFFSETS = [192 * KiB, 256 * KiB];
const REGION_SIZE = 64 * KiB;
const REGION_SIGNATURE = "regi";
const BAT_REGION = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const METADATA_REGION = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
// 2.6 Metadata region
const METADATA_SIGNATURE = "metadata";
const METADATA_TABLE_SIZE = 64 * KiB;
const ITEM = {
  fileParameters: "CAA16737-FA36-4D43-B3B6-33F0AA44E76B",
  virtualDiskSize: "2FA54224-CD1B-4876-B211-5DBED83BF4B8",
  page83: "BECA12AB-B2E6-4523-93EF-C309E000C746",
  logicalSectorSize: "8141BF1D-A96F-4709-BA47-F233A8FAAB5F",
  physicalSectorSize: "CDA348C7-445D-4471-9CC9-E9885251C556",
  parentLocator: "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C",
};
const VHDX_PARENT_LOCATOR_TYPE = "B04AEFB7-D19E-4A81-B789-25B8E9445913"; // 2.6.2.6.3
// 2.5.1.1 payload block states, 2.5.1.2 sector bitmap block states
const PAYLOAD_NOT_PRESENT = 0, PAYLOAD_UNDEFINED = 1, PAYLOAD_ZERO = 2;
const PAYLOAD_FULLY_PRESENT = 6, PAYLOAD_PARTIALLY_PRESENT = 7;
const SB_PRESENT = 6;
const SECTOR_BITMAP_BLOCK = 1 * MiB;                 // 2.4: sector bitmap blocks are 1 MB
const STATE_NAMES = ["NOT_PRESENT", "UNDEFINED", "ZERO", "UNMAPPED", "reserved 4", "reserved 5", "FULLY_PRESENT", "PARTIALLY_PRESENT"];
const BITMAP_CACHE_BYTES = 32 * MiB;

defineFindings([
  { code: "VHDX_HEADER_INVALID", severity: "warning", stage: "image", title: "one VHDX header is damaged",
    message: "VHDX header {which} of {file} is invalid ({reason}); the other header (sequence {sequence}) was used",
    remedy: "Rewrite the container: qemu-img convert -O vhdx {file} repaired.vhdx (or open it once in Hyper-V)",
    explain: "A VHDX keeps two headers and updates them alternately; one of them failed its signature or CRC-32C check. Hyper-V opens the file with the other one, but the next interrupted update could leave none." },
  { code: "VHDX_REGION_TABLE_INVALID", severity: "warning", stage: "image", title: "one VHDX region table is damaged",
    message: "VHDX region table {which} of {file} is invalid ({reason}); the other copy was used",
    remedy: "Rewrite the container: qemu-img convert -O vhdx {file} repaired.vhdx",
    explain: "The region table (locations of the BAT and metadata) is stored twice; one copy failed its check." },
  { code: "VHDX_PARENT_LINKAGE_MISMATCH", severity: "error", stage: "image", title: "VHDX parent linkage mismatch",
    message: "differencing VHDX {file} expects a parent with DataWriteGuid {expected} but {parent} has {actual}",
    remedy: "Reattach the right parent or merge the chain: qemu-img convert -O vhdx {file} merged.vhdx (Hyper-V: Merge-VHD)",
    explain: "A differencing VHDX records the DataWriteGuid of its parent; Hyper-V refuses a chain whose parent was modified after the child was created." },
]);

/** A GUID in its on-disk mixed-endian form ([MS-DTYP] 2.3.4.2) as upper-case text. */
function guidText(b: Buffer, o: number): string {
  const h = (x: number, w: number) => x.toString(16).padStart(w, "0");
  const tail = b.subarray(o + 8, o + 16).toString("hex");
  return `${h(b.readUInt32LE(o), 8)}-${h(b.readUInt16LE(o + 4), 4)}-${h(b.readUInt16LE(o + 6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`.toUpperCase();
}
const ZERO_GUID = "00000000-0000-0000-0000-000000000000";
const normGuid = (s: string) => s.replace(/[{}]/g, "").trim().toUpperCase();

const u64 = (b: Buffer, o: number): number => {
  const v = b.readBigUInt64LE(o);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
};

interface Header { sequence: number; fileWriteGuid: string; dataWriteGuid: string; logGuid: string; logVersion: number; version: number; logLength: number; logOffset: number }

function parseHeader(b: Buffer): Header | string {
  if (b.toString("latin1", 0, 4) !== HEADER_SIGNATURE) return `signature '${b.toString("latin1", 0, 4).replace(/[^\x20-\x7e]/g, ".")}'`;
  const stored = b.readUInt32LE(4), computed = crc32c(b, 4);
  if (stored !== computed) return `CRC-32C ${hex(stored)}, computed ${hex(computed)}`;
  const h: Header = {
    sequence: u64(b, 8), fileWriteGuid: guidText(b, 16), dataWriteGuid: guidText(b, 32), logGuid: guidText(b, 48),
    logVersion: b.readUInt16LE(64), version: b.readUInt16LE(66), logLength: b.readUInt32LE(68), logOffset: u64(b, 72),
  };
  if (h.version !== 1) return `version ${h.version} (expected 1)`;
  return h;
}

interface Region { guid: string; offset: number; length: number; required: boolean }

function parseRegionTable(b: Buffer): Region[] | string {
  if (b.toString("latin1", 0, 4) !== REGION_SIGNATURE) return `signature '${b.toString("latin1", 0, 4).replace(/[^\x20-\x7e]/g, ".")}'`;
  const stored = b.readUInt32LE(4), computed = crc32c(b, 4);
  if (stored !== computed) return `CRC-32C ${hex(stored)}, computed ${hex(computed)}`;
  const n = b.readUInt32LE(8);
  if (n > MAX_REGION_ENTRIES) return `entry count ${n} exceeds ${MAX_REGION_ENTRIES}`;
  const out: Region[] = [];
  for (let i = 0; i < n; i++) {
    const o = 16 + i * 32;
    out.push({ guid: guidText(b, o), offset: u64(b, o + 16), length: b.readUInt32LE(o + 24), required: (b.readUInt32LE(o + 28) & 1) === 1 });
  }
  return out;
}

/** Pick the valid copy of two, with a finding when one is bad and an error when both are. */
function pickCopy<T>(copies: (T | string)[], file: string, what: string, code: string, findings: ContainerInfo["findings"],
                     better: (a: T, b: T) => boolean, seq: (t: T) => number | string): { value: T; index: number } {
  const good = copies.map((c, i) => ({ c, i })).filter((x) => typeof x.c !== "string") as { c: T; i: number }[];
  if (good.length === 0) {
    throw corrupt(code, `${file}: both VHDX ${what}s are invalid: #1 ${copies[0] as string}; #2 ${copies[1] as string}`);
  }
  const best = good.length === 2 && better(good[1].c, good[0].c) ? good[1] : good[0];
  const bad = copies.findIndex((c) => typeof c === "string");
  if (bad >= 0) {
    findings.push(finding(what === "header" ? "VHDX_HEADER_INVALID" : "VHDX_REGION_TABLE_INVALID",
      { file, which: bad + 1, reason: copies[bad] as string, sequence: seq(best.c) }));
  }
  return { value: best.c, index: best.i };
}

interface Metadata {
  blockSize: number; leaveBlocksAllocated: boolean; hasParent: boolean; virtualSize: number;
  page83: string; logicalSectorSize: number; physicalSectorSize: number; parentLocator?: Map<string, string>;
}

function parseParentLocator(item: Buffer, file: string): Map<string, string> {
  if (item.length < 20) throw corrupt("E_VHDX_METADATA", `${file}: parent locator item of ${item.length} bytes is shorter than its 20-byte header`);
  const type = guidText(item, 0);
  if (type !== VHDX_PARENT_LOCATOR_TYPE) throw unsupported("E_VHDX_PARENT_TYPE", `${file}: parent locator type ${type} is not a VHDX parent (${VHDX_PARENT_LOCATOR_TYPE})`);
  const count = item.readUInt16LE(18);
  if (20 + count * 12 > item.length) throw corrupt("E_VHDX_METADATA", `${file}: parent locator has ${count} entries, more than its ${item.length} bytes hold`);
  const kv = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const o = 20 + i * 12;
    const ko = item.readUInt32LE(o), vo = item.readUInt32LE(o + 4), kl = item.readUInt16LE(o + 8), vl = item.readUInt16LE(o + 10);
    if (ko + kl > item.length || vo + vl > item.length) {
      throw corrupt("E_VHDX_METADATA", `${file}: parent locator entry ${i} (key ${ko}+${kl}, value ${vo}+${vl}) lies outside the ${item.length}-byte item`);
    }
    kv.set(item.toString("utf16le", ko, ko + kl), item.toString("utf16le", vo, vo + vl));
  }
  return kv;
}

function parseMetadata(src: ByteSource, region: Region, file: string): Metadata {
  const table = src.read(region.offset, METADATA_TABLE_SIZE, "VHDX metadata table");
  if (table.toString("latin1", 0, 8) !== METADATA_SIGNATURE) {
    throw corrupt("E_VHDX_METADATA", `${file}: metadata table signature is '${table.toString("latin1", 0, 8).replace(/[^\x20-\x7e]/g, ".")}', expected '${METADATA_SIGNATURE}'`);
  }
  const n = table.readUInt16LE(10);
  if (n > MAX_METADATA_ENTRIES) throw corrupt("E_VHDX_METADATA", `${file}: metadata table has ${n} entries, more than ${MAX_METADATA_ENTRIES}`);
  const items = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const o = 32 + i * 32;
    const id = guidText(table, o);
    const off = table.readUInt32LE(o + 16), len = table.readUInt32LE(o + 20), flags = table.readUInt32LE(o + 24);
    const isUser = (flags & 1) !== 0, isRequired = (flags & 4) !== 0;
    if (len > MAX_METADATA_ITEM || (len > 0 && (off < METADATA_TABLE_SIZE || off + len > region.length))) {
      throw corrupt("E_VHDX_METADATA", `${file}: metadata item ${id} at ${off} (+${len}) lies outside the ${region.length}-byte metadata region`);
    }
    const known = !isUser && Object.values(ITEM).includes(id);
    if (!known) {
      if (isRequired) throw unsupported("E_VHDX_METADATA_UNKNOWN", `${file}: required metadata item ${id} is unknown to bootgate`);
      continue;
    }
    items.set(id, len > 0 ? src.read(region.offset + off, len, `VHDX metadata item ${id}`) : Buffer.alloc(0));
  }
  const need = (id: string, name: string, min: number): Buffer => {
    const b = items.get(id);
    if (!b) throw corrupt("E_VHDX_METADATA", `${file}: required metadata item ${name} (${id}) is missing`);
    if (b.length < min) throw corrupt("E_VHDX_METADATA", `${file}: metadata item ${name} is ${b.length} bytes, expected ${min}`);
    return b;
  };
  const fp = need(ITEM.fileParameters, "File Parameters", 8);
  const flags = fp.readUInt32LE(4);
  const md: Metadata = {
    blockSize: fp.readUInt32LE(0), leaveBlocksAllocated: (flags & 1) !== 0, hasParent: (flags & 2) !== 0,
    virtualSize: u64(need(ITEM.virtualDiskSize, "Virtual Disk Size", 8), 0),
    page83: guidText(need(ITEM.page83, "Virtual Disk ID", 16), 0),
    logicalSectorSize: need(ITEM.logicalSectorSize, "Logical Sector Size", 4).readUInt32LE(0),
    physicalSectorSize: need(ITEM.physicalSectorSize, "Physical Sector Size", 4).readUInt32LE(0),
  };
  if (md.hasParent) md.parentLocator = parseParentLocator(need(ITEM.parentLocator, "Parent Locator", 20), file);
  return md;
}

export const vhdxDriver: ContainerDriver = {
  format: "vhdx",
  extensions: ["vhdx", "avhdx"],
  probe(head) {
    return head.length >= 8 && head.toString("latin1", 0, 8) === FILE_SIGNATURE ? 100 : 0;
  },
  open(src: ByteSource, ctx: OpenContext): VirtualDisk {
    const file = path.basename(src.path);
    const findings: ContainerInfo["findings"] = [];
    const headerEnd = REGION_OFFSETS[1] + REGION_SIZE;
    if (src.size < headerEnd) throw truncated("E_VHDX_TRUNCATED", `${file}: ${src.size} bytes is smaller than the ${headerEnd}-byte VHDX header section`);
    const ident = src.read(0, 520, "VHDX file type identifier");
    if (ident.toString("latin1", 0, 8) !== FILE_SIGNATURE) {
      throw corrupt("E_VHDX_SIGNATURE", `${file}: file type identifier is '${ident.toString("latin1", 0, 8).replace(/[^\x20-\x7e]/g, ".")}', expected '${FILE_SIGNATURE}'`);
    }
    const creator = ident.toString("utf16le", 8, 520).replace(/\0.*$/s, "");

    // 2.2.2: the valid header with the higher sequence number is current.
    const headers = HEADER_OFFSETS.map((o) => parseHeader(src.read(o, HEADER_SIZE, "VHDX header")));
    const { value: hdr, index: hdrIndex } = pickCopy(headers, file, "header", "E_VHDX_HEADER", findings,
      (a, b) => a.sequence > b.sequence, (h) => h.sequence);
    if (hdr.logGuid !== ZERO_GUID) {
      throw unsupported("E_VHDX_LOG_REPLAY",
        `${file}: the VHDX log (LogGuid ${hdr.logGuid}, ${hdr.logLength} bytes at ${hdr.logOffset}) holds writes that were never applied; ` +
        `bootgate never writes an image: open it once in Hyper-V (Mount-VHD) or run 'qemu-img check -r all ${file}' on a copy, then check again`);
    }

    // 2.2.3: region tables.
    const tables = REGION_OFFSETS.map((o) => parseRegionTable(src.read(o, REGION_SIZE, "VHDX region table")));
    const { value: regions } = pickCopy(tables, file, "region table", "E_VHDX_REGION", findings, () => false, () => "-");
    let batRegion: Region | undefined, metaRegion: Region | undefined;
    for (const r of regions) {
      if (r.guid === BAT_REGION) batRegion = r;
      else if (r.guid === METADATA_REGION) metaRegion = r;
      else if (r.required) throw unsupported("E_VHDX_REGION_UNKNOWN", `${file}: required region ${r.guid} is unknown to bootgate`);
      else continue;
      if (r.offset % MiB !== 0 || r.offset < MiB || r.length === 0 || r.length % MiB !== 0) {
        throw corrupt("E_VHDX_REGION", `${file}: region ${r.guid} at ${r.offset} (+${r.length}) is not 1 MiB-aligned after the header section`);
      }
      if (r.offset + r.length > src.size) {
        throw truncated("E_VHDX_TRUNCATED", `${file}: region ${r.guid} at ${r.offset} (+${r.length}) lies past the end of the file (${src.size} bytes)`);
      }
    }
    if (!batRegion || !metaRegion) throw corrupt("E_VHDX_REGION", `${file}: region table lacks the ${!batRegion ? "BAT" : "metadata"} region`);

    // 2.6: metadata.
    const md = parseMetadata(src, metaRegion, file);
    const bs = md.blockSize, lss = md.logicalSectorSize;
    if (bs < MiB || bs > 256 * MiB || (bs & (bs - 1)) !== 0) {
      throw corrupt("E_VHDX_BLOCK_SIZE", `${file}: block size ${bs} is not a power of two between 1 MiB and 256 MiB`);
    }
    if (lss !== 512 && lss !== 4096) throw corrupt("E_VHDX_SECTOR_SIZE", `${file}: logical sector size ${lss} is neither 512 nor 4096`);
    if (md.physicalSectorSize !== 512 && md.physicalSectorSize !== 4096) {
      throw corrupt("E_VHDX_SECTOR_SIZE", `${file}: physical sector size ${md.physicalSectorSize} is neither 512 nor 4096`);
    }
    const vsize = md.virtualSize;
    if (vsize <= 0 || vsize > MAX_VIRTUAL_SIZE || vsize % lss !== 0) {
      throw corrupt("E_VHDX_SIZE", `${file}: virtual size ${vsize} is not a positive multiple of ${lss} up to 64 TiB`);
    }

    // 2.5: BAT, payload and sector bitmap entries interleaved per chunk.
    const chunkRatio = (2 ** 23 * lss) / bs;
    const dataBlocks = Math.ceil(vsize / bs);
    const bitmapBlocks = Math.ceil(dataBlocks / chunkRatio);
    const entries = md.hasParent ? bitmapBlocks * (chunkRatio + 1) : dataBlocks + Math.floor((dataBlocks - 1) / chunkRatio);
    if (entries > MAX_TABLE_ENTRIES) throw overLimit("E_VHDX_BAT_LIMIT", `${file}: BAT needs ${entries} entries, more than the limit of ${MAX_TABLE_ENTRIES}`);
    if (entries * 8 > batRegion.length) {
      throw corrupt("E_VHDX_BAT_SIZE", `${file}: BAT region of ${batRegion.length} bytes cannot hold the ${entries} entries a ${vsize}-byte disk needs`);
    }
    const batRaw = src.read(batRegion.offset, entries * 8, "VHDX BAT");
    const state = new Uint8Array(entries);
    const offMB = new Float64Array(entries);
    for (let i = 0; i < entries; i++) {
      const lo = batRaw.readUInt32LE(i * 8), hi = batRaw.readUInt32LE(i * 8 + 4);
      state[i] = lo & 7;
      offMB[i] = hi * 4096 + (lo >>> 20);
    }
    const batIndex = (blk: number) => blk + Math.floor(blk / chunkRatio);
    for (let blk = 0; blk < dataBlocks; blk++) {
      const i = batIndex(blk), s = state[i];
      if (s === 4 || s === 5 || (s === PAYLOAD_PARTIALLY_PRESENT && !md.hasParent)) {
        throw corrupt("E_VHDX_BAT_ENTRY", `${file}: BAT entry ${i} (payload block ${blk}) has state ${STATE_NAMES[s]}, invalid in a ${md.hasParent ? "differencing" : "non-differencing"} VHDX`);
      }
      if (s === PAYLOAD_FULLY_PRESENT || s === PAYLOAD_PARTIALLY_PRESENT) {
        const need = Math.min(bs, vsize - blk * bs);
        if (offMB[i] < 1 || offMB[i] * MiB + need > src.size) {
          throw corrupt("E_VHDX_BAT_ENTRY", `${file}: BAT entry ${i} (payload block ${blk}) points to ${offMB[i]} MiB, outside the file (${src.size} bytes)`);
        }
      }
      if (s === PAYLOAD_PARTIALLY_PRESENT) {
        const sb = Math.floor(blk / chunkRatio) * (chunkRatio + 1) + chunkRatio;
        if (state[sb] !== SB_PRESENT || offMB[sb] < 1 || offMB[sb] * MiB + SECTOR_BITMAP_BLOCK > src.size) {
          throw corrupt("E_VHDX_BAT_ENTRY", `${file}: payload block ${blk} is PARTIALLY_PRESENT but its sector bitmap (BAT entry ${sb}, state ${state[sb]}, ${offMB[sb]} MiB) is not in the file`);
        }
      }
    }

    const subformat = md.hasParent ? "differencing" : md.leaveBlocksAllocated ? "fixed" : "dynamic";
    const info: ContainerInfo = {
      format: "vhdx", subformat, path: src.path, fileSize: src.size, virtualSize: vsize, sectorSize: lss,
      physicalSectorSize: md.physicalSectorSize, creator, diskId: md.page83, findings,
      details: {
        blockSize: bs, chunkRatio, batEntries: entries, headerInUse: hdrIndex + 1, headerSequence: hdr.sequence,
        fileWriteGuid: hdr.fileWriteGuid, dataWriteGuid: hdr.dataWriteGuid, logGuid: hdr.logGuid,
        logOffset: hdr.logOffset, logLength: hdr.logLength, leaveBlocksAllocated: md.leaveBlocksAllocated,
      },
    };

    let parent: VirtualDisk | undefined;
    if (md.hasParent) {
      const loc = md.parentLocator!;
      const cands = ["relative_path", "volume_path", "absolute_win32_path"].map((k) => loc.get(k) ?? "").filter(Boolean);
      if (cands.length === 0) throw corrupt("E_VHDX_PARENT_LOCATOR", `${file}: differencing VHDX parent locator names no path (keys: ${[...loc.keys()].join(", ") || "none"})`);
      info.details!.parentLocator = Object.fromEntries(loc);
      parent = ctx.openParent(src, cands, "vhdx");
      info.parent = parent.info;
      if (parent.info.sectorSize !== lss) {
        parent.close();
        throw corrupt("E_VHDX_PARENT_SECTOR_SIZE", `${file}: logical sector size ${lss} differs from its parent's ${parent.info.sectorSize}`);
      }
      const linkage = loc.get("parent_linkage");
      const actual = parent.info.details?.dataWriteGuid as string | undefined;
      if (linkage && actual && normGuid(linkage) !== normGuid(actual) && normGuid(loc.get("parent_linkage2") ?? "") !== normGuid(actual)) {
        findings.push(finding("VHDX_PARENT_LINKAGE_MISMATCH", { file, parent: path.basename(parent.info.path), expected: normGuid(linkage), actual }));
      }
    }

    // Sector bitmap slices (one per payload block) of a differencing disk, cached and bounded.
    const bitmapSlice = bs / lss / 8;
    const bitmaps = new Map<number, Buffer>();
    const bitmapOf = (blk: number): Buffer => {
      let b = bitmaps.get(blk);
      if (!b) {
        if (bitmaps.size * bitmapSlice >= BITMAP_CACHE_BYTES) bitmaps.delete(bitmaps.keys().next().value!);
        const sb = Math.floor(blk / chunkRatio) * (chunkRatio + 1) + chunkRatio;
        b = src.read(offMB[sb] * MiB + (blk % chunkRatio) * bitmapSlice, bitmapSlice, "VHDX sector bitmap");
        bitmaps.set(blk, b);
      }
      return b;
    };
    const readParent = (dst: Buffer, offset: number) => {
      if (!parent) { dst.fill(0); return; }
      const inParent = Math.max(0, Math.min(dst.length, parent.info.virtualSize - offset));
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
          const i = batIndex(blk);
          const s = blk < dataBlocks ? state[i] : PAYLOAD_ZERO;
          if (s === PAYLOAD_FULLY_PRESENT) src.read(offMB[i] * MiB + inBlk, len, "VHDX payload block").copy(part);
          else if (s === PAYLOAD_PARTIALLY_PRESENT) {
            // Runs of sectors with the same bit (bit 0 of byte 0 is the block's first sector, 2.4).
            const bm = bitmapOf(blk);
            const bit = (sec: number) => (bm[sec >> 3] >> (sec & 7)) & 1;
            let x = 0;
            while (x < len) {
              const sec = Math.floor((inBlk + x) / lss), b = bit(sec);
              let end = Math.min(len, (sec + 1) * lss - inBlk);
              while (end < len) {
                const s2 = Math.floor((inBlk + end) / lss);
                if (bit(s2) !== b) break;
                end = Math.min(len, (s2 + 1) * lss - inBlk);
              }
              const sub = part.subarray(x, end);
              if (b) src.read(offMB[i] * MiB + inBlk + x, sub.length, "VHDX payload block").copy(sub);
              else readParent(sub, pos + x);
              x = end;
            }
          } else if (parent && (s === PAYLOAD_NOT_PRESENT || s === PAYLOAD_UNDEFINED)) readParent(part, pos);
          else part.fill(0);  // ZERO and UNMAPPED read as zeros (2.5.1.1), as does any unallocated block without a parent
          done += len;
        }
      },
      close() { parent?.close(); src.close(); },
    };
  },
};
