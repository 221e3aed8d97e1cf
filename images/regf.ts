// Windows registry hive (regf) reader: base block, hbins, nk/vk/sk cells, lf/lh/li/ri subkey
// lists, big data (db). Spec: Maxim Suhanov, "Windows registry file format specification"
// (github.com/msuhanov/regf, sections 2-4); read-only, transaction logs are not replayed.
import { corrupt, hex, overLimit, truncated, unsupported } from "./errors.ts";
import { MAX_HIVE_BYTES, MAX_REGF_DEPTH, MAX_REGF_SUBKEYS, MAX_REGF_VALUE_BYTES, MAX_REGF_VALUES } from "./limits.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";

defineFindings([
  {
    code: "REGF_DIRTY", severity: "warning", stage: "root",
    title: "Registry hive was not flushed (sequence numbers differ)",
    message: "hive {hive}: primary sequence number {primary} differs from secondary {secondary}; recent changes may live only in the transaction logs (.LOG1/.LOG2), which bootgate does not replay",
    remedy: "boot the source VM once more and shut it down cleanly (shutdown /s /t 0) before converting, so Windows flushes the logs into the hive",
    explain: "Windows writes registry changes to transaction logs first and into the hive later. When the primary and secondary sequence numbers of the base block differ, the hive file alone is stale: the loader replays SYSTEM.LOG1/LOG2 at boot. bootgate reads the hive as it is, so a recent change (for example a Start value just set to 0) may not be visible.",
  },
  {
    code: "REGF_CHECKSUM", severity: "warning", stage: "root",
    title: "Registry hive base block checksum is wrong",
    message: "hive {hive}: base block checksum {stored}, computed {computed}",
    remedy: "boot the source VM and shut it down cleanly so Windows rewrites the hive, or restore it from C:\\Windows\\System32\\config\\RegBack",
    explain: "The base block of a hive carries an XOR checksum of its first 508 bytes. A mismatch means a torn write; Windows then recovers the hive from its transaction logs, which may or may not succeed.",
  },
  {
    code: "REGF_TRUNCATED", severity: "warning", stage: "root",
    title: "Registry hive file shorter than its hive bins",
    message: "hive {hive}: base block says {declared} bytes of hive bins, the file holds {available}",
    remedy: "restore the hive from a backup (C:\\Windows\\System32\\config\\RegBack) or the source VM",
    explain: "The hive file ends before the hive bins its base block declares. Keys stored in the missing part cannot be read.",
  },
]);

/** Value types (winnt.h REG_*). */
export const REG_NONE = 0, REG_SZ = 1, REG_EXPAND_SZ = 2, REG_BINARY = 3, REG_DWORD = 4,
  REG_DWORD_BIG_ENDIAN = 5, REG_LINK = 6, REG_MULTI_SZ = 7, REG_RESOURCE_LIST = 8, REG_QWORD = 11;
const TYPE_NAMES: Record<number, string> = {
  0: "REG_NONE", 1: "REG_SZ", 2: "REG_EXPAND_SZ", 3: "REG_BINARY", 4: "REG_DWORD", 5: "REG_DWORD_BIG_ENDIAN",
  6: "REG_LINK", 7: "REG_MULTI_SZ", 8: "REG_RESOURCE_LIST", 9: "REG_FULL_RESOURCE_DESCRIPTOR",
  10: "REG_RESOURCE_REQUIREMENTS_LIST", 11: "REG_QWORD",
};

const BASE_BLOCK = 4096;          // spec 2.1: the base block is 4096 bytes; cell offsets count from its end
const HBIN_HEADER = 32;           // spec 2.2
const NK_COMP_NAME = 0x0020;      // spec 3.1 key node flag: name is ASCII (Latin-1)
const VK_COMP_NAME = 0x0001;      // spec 3.4 value flag: name is ASCII (Latin-1)
const DATA_INLINE = 0x80000000;   // spec 3.4: data size high bit -> data kept in the offset field
const BIG_DATA_SEGMENT = 16344;   // spec 3.5: largest segment of a "db" value
const NONE = 0xffffffff;

export interface RegKey {
  /** Cell offset of the nk record (relative to the first hbin): a stable identity. */
  readonly offset: number;
  readonly name: string;
  readonly className?: string;
  /** FILETIME of the last write, as a bigint of 100 ns ticks since 1601. */
  readonly lastWritten: bigint;
  readonly subkeyCount: number;
  readonly valueCount: number;
  readonly flags: number;
}

export interface RegValue {
  readonly name: string;     // "" for the default value
  readonly type: number;
  readonly typeName: string;
  readonly data: Buffer;
}

export type RegData = string | string[] | number | bigint | Buffer;

interface NkCell { key: RegKey; subkeyList: number; valueList: number }

export class Hive {
  readonly findings: Finding[] = [];
  readonly primarySequence: number;
  readonly secondarySequence: number;
  readonly version: string;
  readonly fileName: string;
  readonly root: RegKey;
  readonly dirty: boolean;
  private readonly data: Buffer;     // the hive bins
  private readonly minor: number;
  private readonly nkCache = new Map<number, NkCell>();

  constructor(file: Buffer, readonly name = "hive") {
    if (file.length < BASE_BLOCK + HBIN_HEADER) throw truncated("E_REGF_TRUNCATED", `${name}: ${file.length} bytes is too short for a registry hive`);
    if (file.length > MAX_HIVE_BYTES) throw overLimit("E_REGF_SIZE", `${name}: ${file.length} bytes exceeds the ${MAX_HIVE_BYTES}-byte hive limit`);
    if (file.toString("latin1", 0, 4) !== "regf") throw corrupt("E_REGF_SIGNATURE", `${name}: base block signature ${hex(file.readUInt32LE(0))} is not "regf"`);
    this.primarySequence = file.readUInt32LE(4);
    this.secondarySequence = file.readUInt32LE(8);
    const major = file.readUInt32LE(20);
    this.minor = file.readUInt32LE(24);
    this.version = `${major}.${this.minor}`;
    if (major !== 1) throw unsupported("E_REGF_VERSION", `${name}: hive format version ${this.version} (only 1.x exists)`);
    const fileType = file.readUInt32LE(28);
    if (fileType !== 0) throw unsupported("E_REGF_FILE_TYPE", `${name}: file type ${fileType} is a transaction log, not a primary hive`);
    const rootCell = file.readUInt32LE(36);
    const binsSize = file.readUInt32LE(40);
    this.fileName = file.toString("utf16le", 48, 48 + 64).replace(/\0.*$/s, "");
    this.dirty = this.primarySequence !== this.secondarySequence;
    if (this.dirty) this.findings.push(finding("REGF_DIRTY", { hive: name, primary: this.primarySequence, secondary: this.secondarySequence }));
    const stored = file.readUInt32LE(508);
    const computed = baseBlockChecksum(file);
    if (stored !== computed) this.findings.push(finding("REGF_CHECKSUM", { hive: name, stored: hex(stored), computed: hex(computed) }));
    const available = file.length - BASE_BLOCK;
    if (binsSize % 4096 !== 0 || binsSize === 0) throw corrupt("E_REGF_BASE_BLOCK", `${name}: hive bins data size ${binsSize} is not a non-zero multiple of 4096`);
    if (binsSize > available) this.findings.push(finding("REGF_TRUNCATED", { hive: name, declared: binsSize, available }));
    this.data = file.subarray(BASE_BLOCK, BASE_BLOCK + Math.min(binsSize, available));
    this.checkHbins();
    this.root = this.nk(rootCell).key;
  }

  /** Walk the hbin headers (spec 2.2): each starts "hbin" and records its own offset and size. */
  private checkHbins(): void {
    let off = 0, n = 0;
    while (off + HBIN_HEADER <= this.data.length) {
      if (this.data.toString("latin1", off, off + 4) !== "hbin") {
        if (off === 0) throw corrupt("E_REGF_HBIN", `${this.name}: first hive bin has signature ${hex(this.data.readUInt32LE(0))}, not "hbin"`);
        throw corrupt("E_REGF_HBIN", `${this.name}: hive bin at offset ${hex(off)} has signature ${hex(this.data.readUInt32LE(off))}, not "hbin"`);
      }
      const rel = this.data.readUInt32LE(off + 4), size = this.data.readUInt32LE(off + 8);
      if (rel !== off) throw corrupt("E_REGF_HBIN", `${this.name}: hive bin at ${hex(off)} says it is at ${hex(rel)}`);
      if (size < 4096 || size % 4096 !== 0) throw corrupt("E_REGF_HBIN", `${this.name}: hive bin at ${hex(off)} has size ${size}, not a multiple of 4096`);
      off += size;
      if (++n > this.data.length / 4096) throw corrupt("E_REGF_HBIN", `${this.name}: hive bin chain does not end`);
    }
  }

  /** The data of the allocated cell at `off` (spec 2.3: negative size = allocated). */
  private cell(off: number, what: string): Buffer {
    if (off === NONE || off % 8 !== 0 || off < HBIN_HEADER || off + 4 > this.data.length) {
      throw corrupt("E_REGF_CELL", `${this.name}: ${what} cell offset ${hex(off)} lies outside the hive bins (${this.data.length} bytes)`);
    }
    const raw = this.data.readInt32LE(off);
    if (raw >= 0) throw corrupt("E_REGF_CELL", `${this.name}: ${what} cell at ${hex(off)} is free (size ${raw})`);
    const size = -raw;
    if (size < 8 || off + size > this.data.length) {
      throw corrupt("E_REGF_CELL", `${this.name}: ${what} cell at ${hex(off)} has size ${size}, past the end of the hive bins`);
    }
    return this.data.subarray(off + 4, off + size);
  }

  private nk(off: number): NkCell {
    const hit = this.nkCache.get(off);
    if (hit) return hit;
    const c = this.cell(off, "key");
    if (c.length < 76 || c.toString("latin1", 0, 2) !== "nk") {
      throw corrupt("E_REGF_NK", `${this.name}: cell ${hex(off)} is not a key node (signature ${c.length >= 2 ? hex(c.readUInt16LE(0), 4) : "none"})`);
    }
    const flags = c.readUInt16LE(2);
    const nameLen = c.readUInt16LE(72), classLen = c.readUInt16LE(74);
    if (76 + nameLen > c.length) throw corrupt("E_REGF_NK", `${this.name}: key at ${hex(off)} has name length ${nameLen}, beyond its ${c.length}-byte cell`);
    const name = flags & NK_COMP_NAME ? c.toString("latin1", 76, 76 + nameLen) : c.toString("utf16le", 76, 76 + nameLen);
    let className: string | undefined;
    const classOff = c.readUInt32LE(48);
    if (classOff !== NONE && classLen > 0) {
      const cc = this.cell(classOff, "class name");
      if (classLen > cc.length) throw corrupt("E_REGF_NK", `${this.name}: key ${name} class name length ${classLen} exceeds its ${cc.length}-byte cell`);
      className = cc.toString("utf16le", 0, classLen);
    }
    const key: RegKey = {
      offset: off, name, className, flags,
      lastWritten: c.readBigUInt64LE(4),
      subkeyCount: c.readUInt32LE(20),
      valueCount: c.readUInt32LE(36),
    };
    const r: NkCell = { key, subkeyList: c.readUInt32LE(28), valueList: c.readUInt32LE(40) };
    if (this.nkCache.size > 65536) this.nkCache.clear();
    this.nkCache.set(off, r);
    return r;
  }

  /** Subkeys of `key`, in on-disk (sorted) order. */
  subkeys(key: RegKey): RegKey[] {
    const nk = this.nk(key.offset);
    if (nk.key.subkeyCount === 0 || nk.subkeyList === NONE) return [];
    if (nk.key.subkeyCount > MAX_REGF_SUBKEYS) throw overLimit("E_REGF_LIMIT", `${this.name}: key ${key.name} claims ${nk.key.subkeyCount} subkeys (limit ${MAX_REGF_SUBKEYS})`);
    const offs: number[] = [];
    this.collectList(nk.subkeyList, offs, 0, key.name);
    if (offs.length !== nk.key.subkeyCount) {
      throw corrupt("E_REGF_LIST", `${this.name}: key ${key.name} says ${nk.key.subkeyCount} subkeys, its lists hold ${offs.length}`);
    }
    return offs.map((o) => {
      if (o === key.offset) throw corrupt("E_REGF_LOOP", `${this.name}: key ${key.name} lists itself as a subkey`);
      return this.nk(o).key;
    });
  }

  /** Subkey list cells (spec 3.2): li/lf/lh hold key offsets, ri holds offsets of other lists (one level). */
  private collectList(off: number, out: number[], depth: number, keyName: string): void {
    const c = this.cell(off, "subkey list");
    if (c.length < 4) throw corrupt("E_REGF_LIST", `${this.name}: subkey list at ${hex(off)} is ${c.length} bytes`);
    const sig = c.toString("latin1", 0, 2), count = c.readUInt16LE(2);
    const stride = sig === "lf" || sig === "lh" ? 8 : sig === "li" || sig === "ri" ? 4 : 0;
    if (stride === 0) throw corrupt("E_REGF_LIST", `${this.name}: subkey list of ${keyName} at ${hex(off)} has unknown signature ${JSON.stringify(sig)}`);
    if (4 + count * stride > c.length) throw corrupt("E_REGF_LIST", `${this.name}: subkey list at ${hex(off)} has ${count} entries, more than its ${c.length}-byte cell holds`);
    if (sig === "ri" && depth > 0) throw corrupt("E_REGF_LOOP", `${this.name}: index root list at ${hex(off)} nested inside another index root (key ${keyName})`);
    for (let i = 0; i < count; i++) {
      const o = c.readUInt32LE(4 + i * stride);
      if (sig === "ri") this.collectList(o, out, depth + 1, keyName);
      else out.push(o);
      if (out.length > MAX_REGF_SUBKEYS) throw overLimit("E_REGF_LIMIT", `${this.name}: key ${keyName} lists more than ${MAX_REGF_SUBKEYS} subkeys`);
    }
  }

  /** One subkey by name, case-insensitively (Windows compares upcased names). */
  subkey(key: RegKey, name: string): RegKey | undefined {
    const want = upcase(name);
    return this.subkeys(key).find((k) => upcase(k.name) === want);
  }

  values(key: RegKey): RegValue[] {
    const nk = this.nk(key.offset);
    const n = nk.key.valueCount;
    if (n === 0 || nk.valueList === NONE) return [];
    if (n > MAX_REGF_VALUES) throw overLimit("E_REGF_LIMIT", `${this.name}: key ${key.name} claims ${n} values (limit ${MAX_REGF_VALUES})`);
    const list = this.cell(nk.valueList, "value list");
    if (n * 4 > list.length) throw corrupt("E_REGF_LIST", `${this.name}: key ${key.name} has ${n} values but its value list cell is ${list.length} bytes`);
    const out: RegValue[] = [];
    for (let i = 0; i < n; i++) out.push(this.vk(list.readUInt32LE(i * 4), key.name));
    return out;
  }

  value(key: RegKey, name: string): RegValue | undefined {
    const want = upcase(name);
    return this.values(key).find((v) => upcase(v.name) === want);
  }

  /** A key value record (spec 3.4) with its data. */
  private vk(off: number, keyName: string): RegValue {
    const c = this.cell(off, "value");
    if (c.length < 20 || c.toString("latin1", 0, 2) !== "vk") throw corrupt("E_REGF_VK", `${this.name}: value cell ${hex(off)} of key ${keyName} is not a vk record`);
    const nameLen = c.readUInt16LE(2), sizeField = c.readUInt32LE(4), dataOff = c.readUInt32LE(8);
    const type = c.readUInt32LE(12), flags = c.readUInt16LE(16);
    if (20 + nameLen > c.length) throw corrupt("E_REGF_VK", `${this.name}: value at ${hex(off)} has name length ${nameLen}, beyond its ${c.length}-byte cell`);
    const name = flags & VK_COMP_NAME ? c.toString("latin1", 20, 20 + nameLen) : c.toString("utf16le", 20, 20 + nameLen);
    const size = (sizeField & ~DATA_INLINE) >>> 0;
    let data: Buffer;
    if (sizeField & DATA_INLINE) {
      if (size > 4) throw corrupt("E_REGF_VK", `${this.name}: value ${keyName}\\${name} has inline data of ${size} bytes (at most 4)`);
      data = Buffer.from(c.subarray(8, 8 + size));
    } else if (size === 0) {
      data = Buffer.alloc(0);
    } else {
      if (size > MAX_REGF_VALUE_BYTES) throw overLimit("E_REGF_LIMIT", `${this.name}: value ${keyName}\\${name} is ${size} bytes (limit ${MAX_REGF_VALUE_BYTES})`);
      const d = this.cell(dataOff, "value data");
      if (size > BIG_DATA_SEGMENT && this.minor >= 4 && d.toString("latin1", 0, 2) === "db") data = this.bigData(d, size, `${keyName}\\${name}`);
      else {
        if (size > d.length) throw corrupt("E_REGF_VK", `${this.name}: value ${keyName}\\${name} has ${size} bytes of data in a ${d.length}-byte cell`);
        data = Buffer.from(d.subarray(0, size));
      }
    }
    return { name, type, typeName: TYPE_NAMES[type] ?? `REG_${hex(type)}`, data };
  }

  /** Big data record (spec 3.5): "db", segment count, offset of a list of segment cells. */
  private bigData(db: Buffer, size: number, what: string): Buffer {
    if (db.length < 8) throw corrupt("E_REGF_DB", `${this.name}: big data record of ${what} is ${db.length} bytes`);
    const count = db.readUInt16LE(2), listOff = db.readUInt32LE(4);
    const need = Math.ceil(size / BIG_DATA_SEGMENT);
    if (count < need) throw corrupt("E_REGF_DB", `${this.name}: ${what} needs ${need} big-data segments for ${size} bytes, the record has ${count}`);
    const list = this.cell(listOff, "big data segment list");
    if (count * 4 > list.length) throw corrupt("E_REGF_DB", `${this.name}: ${what} segment list holds ${list.length / 4} entries, the record says ${count}`);
    const out = Buffer.alloc(size);
    let pos = 0;
    for (let i = 0; i < count && pos < size; i++) {
      const seg = this.cell(list.readUInt32LE(i * 4), "big data segment");
      const n = Math.min(BIG_DATA_SEGMENT, size - pos, seg.length);
      seg.copy(out, pos, 0, n);
      pos += n;
    }
    if (pos < size) throw corrupt("E_REGF_DB", `${this.name}: ${what} segments hold ${pos} of ${size} bytes`);
    return out;
  }
}

/** Windows-style upcase: character by character, never changing length (so "ß" stays "ß"). */
export function upcase(s: string): string {
  let o = "";
  for (const ch of s) {
    const u = ch.toUpperCase();
    o += u.length === ch.length ? u : ch;
  }
  return o;
}

/** XOR of the first 127 dwords of the base block (spec 2.1.1), with 0 and ~0 remapped. */
export function baseBlockChecksum(b: Buffer): number {
  let x = 0;
  for (let i = 0; i < 508; i += 4) x = (x ^ b.readUInt32LE(i)) >>> 0;
  if (x === 0xffffffff) return 0xfffffffe;
  if (x === 0) return 1;
  return x;
}

export function openHive(file: Buffer, name?: string): Hive {
  return new Hive(file, name);
}

/** Look up a key by backslash-separated path below the root, case-insensitively ("ControlSet001\\Services\\storvsc"). */
export function openKey(hive: Hive, path: string, from: RegKey = hive.root): RegKey | undefined {
  const parts = path.split("\\").filter((p) => p !== "");
  if (parts.length > MAX_REGF_DEPTH) throw overLimit("E_REGF_DEPTH", `key path deeper than ${MAX_REGF_DEPTH} levels: ${path}`);
  let cur = from;
  for (const p of parts) {
    const next = hive.subkey(cur, p);
    if (!next) return undefined;
    cur = next;
  }
  return cur;
}

/** Value data decoded by type: strings (NUL-terminated UTF-16LE), string arrays, numbers, raw bytes. */
export function decodeValue(v: RegValue): RegData {
  const d = v.data;
  switch (v.type) {
    case REG_SZ: case REG_EXPAND_SZ: case REG_LINK:
      return utf16z(d);
    case REG_MULTI_SZ: {
      const s = d.toString("utf16le", 0, d.length & ~1);
      const parts = s.split("\0");
      while (parts.length && parts[parts.length - 1] === "") parts.pop();
      return parts;
    }
    case REG_DWORD:
      if (d.length < 4) throw corrupt("E_REGF_DATA", `REG_DWORD ${v.name} has ${d.length} bytes`);
      return d.readUInt32LE(0);
    case REG_DWORD_BIG_ENDIAN:
      if (d.length < 4) throw corrupt("E_REGF_DATA", `REG_DWORD_BIG_ENDIAN ${v.name} has ${d.length} bytes`);
      return d.readUInt32BE(0);
    case REG_QWORD:
      if (d.length < 8) throw corrupt("E_REGF_DATA", `REG_QWORD ${v.name} has ${d.length} bytes`);
      return d.readBigUInt64LE(0);
    default:
      return d;
  }
}

function utf16z(d: Buffer): string {
  const s = d.toString("utf16le", 0, d.length & ~1);
  const z = s.indexOf("\0");
  return z >= 0 ? s.slice(0, z) : s;
}

/** One value of a key by path, decoded; undefined when the key or value is absent. */
export function getValue(hive: Hive, keyPath: string, valueName: string): RegData | undefined {
  const k = openKey(hive, keyPath);
  if (!k) return undefined;
  const v = hive.value(k, valueName);
  return v ? decodeValue(v) : undefined;
}

