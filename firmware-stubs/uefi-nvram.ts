// UEFI variable store and load options, independent of the CPU (UEFI 2.10 8.2 "Variable Services", 3.1.3
// "Load Options"; ordering of the SetVariable checks follows EDK2 MdeModulePkg/Universal/Variable/RuntimeDxe/Variable.c).
import { ImageError } from "../images/errors.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { GUID, isGuidText, normGuid } from "./uefi-guid.ts";
import { parseDevicePath, serializeDevicePath, devicePathSize, type DevNode } from "./uefi-devpath.ts";
import { NVRAM_MAX_VARIABLE_BYTES, NVRAM_MAX_STORE_BYTES, NVRAM_MAX_VARIABLES, NVRAM_MAX_NAME_CHARS, NVRAM_MAX_WRITE_LOG, UEFI_MAX_LOAD_OPTION_PATHS } from "../images/limits.ts";

defineFindings([
  { code: "NVRAM_AUTHENTICATED_WRITE_REFUSED", severity: "info", stage: "firmware",
    title: "Signed (time-based authenticated) variable update not evaluated",
    message: "the guest wrote {name} ({guid}) as a time-based authenticated variable; bootgate cannot verify signed updates and returned EFI_SECURITY_VIOLATION",
    remedy: "Nothing to do for booting; apply the update on the real VM if it matters and check it there with 'efi-readvar -v {name}'",
    explain: "Time-based authenticated writes (PK, KEK, db, dbx updates) carry a PKCS#7 signature made with a key the firmware checks against PK or KEK. bootgate does not evaluate these updates: it refuses them as a real firmware refuses a signature it cannot verify, so the boot continues with the variables it started with." },
]);

/** SetVariable / GetVariable / GetNextVariableName results; the core maps them to EFI_STATUS values. */
export type Status = "SUCCESS" | "NOT_FOUND" | "BUFFER_TOO_SMALL" | "INVALID_PARAMETER" | "WRITE_PROTECTED"
  | "SECURITY_VIOLATION" | "OUT_OF_RESOURCES" | "UNSUPPORTED";

/** Variable attributes [UEFI 2.10 8.2.1, UefiSpec.h]. */
export const ATTR = {
  NON_VOLATILE: 0x01, BOOTSERVICE_ACCESS: 0x02, RUNTIME_ACCESS: 0x04, HARDWARE_ERROR_RECORD: 0x08,
  AUTHENTICATED_WRITE_ACCESS: 0x10, TIME_BASED_AUTHENTICATED_WRITE_ACCESS: 0x20, APPEND_WRITE: 0x40,
} as const;
/** EDK2 EFI_VARIABLE_ATTRIBUTES_MASK: every defined bit but the deprecated AUTHENTICATED_WRITE_ACCESS. */
const ATTRIBUTES_MASK = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40;
const NV = ATTR.NON_VOLATILE, BS = ATTR.BOOTSERVICE_ACCESS, RT = ATTR.RUNTIME_ACCESS, HR = ATTR.HARDWARE_ERROR_RECORD;
const AW = ATTR.AUTHENTICATED_WRITE_ACCESS, TBA = ATTR.TIME_BASED_AUTHENTICATED_WRITE_ACCESS, APPEND = ATTR.APPEND_WRITE;

/** Store limits: one variable (name with NUL in UTF-16 + data), the whole store, and the variable count. */
export const MAX_VARIABLE_BYTES = NVRAM_MAX_VARIABLE_BYTES;
export const MAX_STORE_BYTES = NVRAM_MAX_STORE_BYTES;
export const MAX_VARIABLES = NVRAM_MAX_VARIABLES;
/** Longest variable name we accept, in characters (the runtime reads names bounded the same way). */
export const MAX_NAME_CHARS = NVRAM_MAX_NAME_CHARS;
/** Entries kept in the write log (a guest looping on SetVariable must not grow it without bound). */
export const MAX_WRITE_LOG = NVRAM_MAX_WRITE_LOG;

export interface Variable { name: string; guid: string; attributes: number; data: Buffer }
export interface WriteRecord { name: string; guid: string; attributes: number; bytes: number; status: Status; data?: Buffer }

const key = (name: string, guid: string) => `${guid}\u0000${name}`;
const nameBytes = (name: string) => 2 * (name.length + 1);
const varBytes = (v: { name: string; data: Buffer }) => nameBytes(v.name) + v.data.length;
const visibleAtRuntime = (attributes: number) => (attributes & RT) !== 0;

export class VariableStore {
  private vars = new Map<string, Variable>();
  private readOnly = new Set<string>();
  private atRuntime = false;
  /** Every SetVariable the guest made, in order (at most MAX_WRITE_LOG; `writesDropped` counts the rest). */
  readonly writes: WriteRecord[] = [];
  writesDropped = 0;
  /** Findings raised by guest writes (deduplicated per variable). */
  readonly findings: Finding[] = [];

  /** GetVariable: undefined when absent or (after ExitBootServices) not runtime-accessible. Data is a copy. */
  get(name: string, guid: string): { attributes: number; data: Buffer } | undefined {
    const v = this.vars.get(key(name, normGuid(guid)));
    if (!v || (this.atRuntime && !visibleAtRuntime(v.attributes))) return undefined;
    return { attributes: v.attributes, data: Buffer.from(v.data) };
  }

  /** SetVariable as the guest calls it: every spec check, logged in `writes`. */
  set(name: string, guid: string, attributes: number, data: Buffer): Status {
    const g = isGuidText(guid) ? normGuid(guid) : guid;
    const status = isGuidText(guid) ? this.setChecked(name, g, attributes >>> 0, data) : "INVALID_PARAMETER";
    if (this.writes.length < MAX_WRITE_LOG) {
      this.writes.push({ name, guid: g, attributes: attributes >>> 0, bytes: data.length, status,
        data: data.length <= MAX_VARIABLE_BYTES ? Buffer.from(data) : undefined });
    } else this.writesDropped++;
    return status;
  }

  private setChecked(name: string, guid: string, attributes: number, data: Buffer): Status {
    if (name === "" || name.length > MAX_NAME_CHARS || name.includes("\0")) return "INVALID_PARAMETER";
    if ((attributes & ~(ATTRIBUTES_MASK | AW)) !== 0) return "INVALID_PARAMETER";           // reserved bits
    const access = attributes & (RT | BS);
    if (access === RT || (attributes & ATTRIBUTES_MASK) === NV) {                              // RT needs BS; NV alone
      return (attributes & AW) ? "UNSUPPORTED" : "INVALID_PARAMETER";
    }
    if ((attributes & HR) && !this.validHwErrRec(name, guid, attributes)) return "INVALID_PARAMETER";
    if (attributes & AW) return "UNSUPPORTED";                                                 // deprecated, 8.2.3
    if (attributes & TBA) {
      this.note(finding("NVRAM_AUTHENTICATED_WRITE_REFUSED", { name, guid }, { attributes, bytes: data.length }));
      return "SECURITY_VIOLATION";
    }
    if (nameBytes(name) + data.length > MAX_VARIABLE_BYTES) return "INVALID_PARAMETER";
    const k = key(name, guid);
    if (this.readOnly.has(k)) return "WRITE_PROTECTED";
    const old = this.vars.get(k);
    if (old) {
      if (this.atRuntime && !(old.attributes & RT)) return "WRITE_PROTECTED";
      if (attributes !== 0 && (attributes & ~APPEND) !== old.attributes) return "INVALID_PARAMETER";
      if (old.attributes & TBA) {
        this.note(finding("NVRAM_AUTHENTICATED_WRITE_REFUSED", { name, guid }, { attributes, bytes: data.length }));
        return "SECURITY_VIOLATION";
      }
      if (this.atRuntime && !(old.attributes & NV)) return "WRITE_PROTECTED";                 // volatile at runtime
      const isDelete = (!(attributes & APPEND) && data.length === 0) || access === 0;
      if (isDelete) { this.vars.delete(k); return "SUCCESS"; }
      const next = attributes & APPEND ? Buffer.concat([old.data, data]) : Buffer.from(data);
      if (nameBytes(name) + next.length > MAX_VARIABLE_BYTES) return "INVALID_PARAMETER";
      if (this.usedBytes() - varBytes(old) + nameBytes(name) + next.length > MAX_STORE_BYTES) return "OUT_OF_RESOURCES";
      old.data = next;                                                                          // keeps its place in the order
      return "SUCCESS";
    }
    if (data.length === 0 && (attributes & APPEND)) return "SUCCESS";
    if (data.length === 0 || access === 0) return "NOT_FOUND";                                 // delete of nothing
    if (this.atRuntime && (!(attributes & RT) || !(attributes & NV))) return "INVALID_PARAMETER";
    if (this.vars.size >= MAX_VARIABLES) return "OUT_OF_RESOURCES";
    if (this.usedBytes() + nameBytes(name) + data.length > MAX_STORE_BYTES) return "OUT_OF_RESOURCES";
    this.vars.set(k, { name, guid, attributes: attributes & ~APPEND, data: Buffer.from(data) });
    return "SUCCESS";
  }

  /** UEFI 2.10 N.2.1: HwErrRec#### in gEfiHardwareErrorVariableGuid, NV+BS+RT. */
  private validHwErrRec(name: string, guid: string, attributes: number): boolean {
    return /^HwErrRec[0-9A-F]{4}$/.test(name) && guid === GUID.HARDWARE_ERROR_VARIABLE && (attributes & (NV | BS | RT)) === (NV | BS | RT);
  }

  private note(f: Finding): void {
    if (!this.findings.some((o) => o.code === f.code && o.evidence.name === f.evidence.name && o.evidence.guid === f.evidence.guid)) this.findings.push(f);
  }

  /**
   * GetNextVariableName: "" starts the walk; the order is insertion order. The end gives NOT_FOUND; a name/GUID
   * that is not an existing (visible) variable gives INVALID_PARAMETER (UEFI 2.10 8.2.2, as EDK2 does).
   */
  nextName(name: string, guid: string): { status: Status; name?: string; guid?: string } {
    const visible = [...this.vars.values()].filter((v) => !this.atRuntime || visibleAtRuntime(v.attributes));
    let i = 0;
    if (name !== "") {
      if (!isGuidText(guid)) return { status: "INVALID_PARAMETER" };
      const g = normGuid(guid);
      const at = visible.findIndex((v) => v.name === name && v.guid === g);
      if (at < 0) return { status: "INVALID_PARAMETER" };
      i = at + 1;
    }
    if (i >= visible.length) return { status: "NOT_FOUND" };
    return { status: "SUCCESS", name: visible[i].name, guid: visible[i].guid };
  }

  /** QueryVariableInfo figures. */
  query(): { maxStorage: number; remaining: number; maxVariable: number } {
    return { maxStorage: MAX_STORE_BYTES, remaining: MAX_STORE_BYTES - this.usedBytes(), maxVariable: MAX_VARIABLE_BYTES };
  }

  private usedBytes(): number {
    let n = 0;
    for (const v of this.vars.values()) n += varBytes(v);
    return n;
  }

  /** Mark a variable the guest may not change (SecureBoot, SetupMode, BootCurrent, PK/KEK/db/dbx under Secure Boot...). */
  setReadOnly(name: string, guid: string): void { this.readOnly.add(key(name, normGuid(guid))); }
  isReadOnly(name: string, guid: string): boolean { return this.readOnly.has(key(name, normGuid(guid))); }

  /** Firmware-side write with no access checks and no log (the core setting SecureBoot, BootCurrent...). */
  put(name: string, guid: string, attributes: number, data: Buffer): void {
    const k = key(name, normGuid(guid));
    if (data.length === 0) { this.vars.delete(k); return; }
    const old = this.vars.get(k);
    if (old) { old.attributes = attributes & ~APPEND; old.data = Buffer.from(data); return; }
    this.vars.set(k, { name, guid: normGuid(guid), attributes: attributes & ~APPEND, data: Buffer.from(data) });
  }

  /** BootCurrent (UEFI 2.10 3.3: BS+RT, volatile, read-only to the guest) = the option being started. */
  setBootCurrent(num: number | Buffer): void {
    const b = Buffer.isBuffer(num) ? Buffer.from(num.subarray(0, 2)) : buildBootOrder([num]);
    this.put("BootCurrent", GUID.EFI_GLOBAL_VARIABLE, BS | RT, b);
    this.setReadOnly("BootCurrent", GUID.EFI_GLOBAL_VARIABLE);
  }

  /** Firmware-side delete. */
  remove(name: string, guid: string): boolean { return this.vars.delete(key(name, normGuid(guid))); }

  /** After ExitBootServices: BS-only variables disappear and only NV+RT variables may be written. */
  exitBootServices(): void { this.atRuntime = true; }
  get runtime(): boolean { return this.atRuntime; }

  /** A platform reset: volatile variables are lost, boot services are back. */
  reset(): void {
    for (const [k, v] of this.vars) if (!(v.attributes & NV)) this.vars.delete(k);
    this.atRuntime = false;
  }

  /** All variables (copies), in GetNextVariableName order, ignoring the runtime filter. */
  list(): Variable[] {
    return [...this.vars.values()].map((v) => ({ ...v, data: Buffer.from(v.data) }));
  }

  /** The non-volatile variables as JSON (the NVRAM a VM would keep). */
  toJSON(): { variables: { name: string; guid: string; attributes: number; data: string }[] } {
    return { variables: [...this.vars.values()].filter((v) => v.attributes & NV)
      .map((v) => ({ name: v.name, guid: v.guid, attributes: v.attributes, data: v.data.toString("hex") })) };
  }

  /** A store from JSON (e.g. a user's --nvram file), validated with messages naming the bad entry. */
  static fromJSON(json: unknown): VariableStore {
    const fail = (where: string, msg: string) => new ImageError("E_NVRAM_JSON", "usage", `NVRAM JSON ${where}: ${msg}`);
    if (typeof json !== "object" || json === null || !Array.isArray((json as { variables?: unknown }).variables)) {
      throw fail("root", "expected an object { \"variables\": [ { name, guid, attributes, data } ... ] }");
    }
    const list = (json as { variables: unknown[] }).variables;
    if (list.length > MAX_VARIABLES) throw fail("variables", `${list.length} entries, at most ${MAX_VARIABLES}`);
    const s = new VariableStore();
    let total = 0;
    list.forEach((e, i) => {
      const at = `variables[${i}]`;
      if (typeof e !== "object" || e === null) throw fail(at, "not an object");
      const { name, guid, attributes, data } = e as Record<string, unknown>;
      if (typeof name !== "string" || name === "" || name.length > MAX_NAME_CHARS || name.includes("\0")) {
        throw fail(`${at}.name`, `expected a non-empty string of at most ${MAX_NAME_CHARS} characters without NUL`);
      }
      if (typeof guid !== "string" || !isGuidText(guid)) throw fail(`${at}.guid`, `${JSON.stringify(guid)} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
      if (typeof attributes !== "number" || !Number.isInteger(attributes) || attributes < 0 || attributes > 0xffffffff) {
        throw fail(`${at}.attributes`, `${JSON.stringify(attributes)} is not a 32-bit unsigned integer`);
      }
      if ((attributes & ~ATTRIBUTES_MASK) || (attributes & APPEND) || !(attributes & BS)) {
        throw fail(`${at}.attributes`, `0x${attributes.toString(16)} for ${name}: needs BOOTSERVICE_ACCESS (0x2); only NV 0x1, BS 0x2, RT 0x4, HR 0x8, time-based auth 0x20 may be set`);
      }
      if (typeof data !== "string" || !/^(?:[0-9a-fA-F]{2})+$/.test(data)) {
        throw fail(`${at}.data`, "expected a non-empty hex string with an even number of digits");
      }
      const bytes = Buffer.from(data, "hex");
      const size = nameBytes(name) + bytes.length;
      if (size > MAX_VARIABLE_BYTES) throw fail(at, `${name} is ${size} bytes with its name, at most ${MAX_VARIABLE_BYTES}`);
      total += size;
      if (total > MAX_STORE_BYTES) throw fail(at, `the variables add up to more than ${MAX_STORE_BYTES} bytes`);
      if (s.vars.has(key(name, normGuid(guid)))) throw fail(at, `${name} ${normGuid(guid)} appears twice`);
      s.put(name, guid, attributes, bytes);
    });
    return s;
  }

  /** An independent copy (variables, read-only marks, runtime state); the write log and findings start empty. */
  clone(): VariableStore {
    const c = new VariableStore();
    for (const v of this.vars.values()) c.vars.set(key(v.name, v.guid), { ...v, data: Buffer.from(v.data) });
    for (const k of this.readOnly) c.readOnly.add(k);
    c.atRuntime = this.atRuntime;
    return c;
  }
}

// ---------------------------------------------------------------- load options (UEFI 2.10 3.1.3)

/** EFI_LOAD_OPTION Attributes [UefiSpec.h]. */
export const LOAD_OPTION = {
  ACTIVE: 0x1, FORCE_RECONNECT: 0x2, HIDDEN: 0x8, CATEGORY: 0x1f00, CATEGORY_BOOT: 0x0, CATEGORY_APP: 0x100,
} as const;
/** Device paths we read from one FilePathList beyond the first. */
export const MAX_LOAD_OPTION_PATHS = UEFI_MAX_LOAD_OPTION_PATHS;

export interface LoadOption {
  attributes: number;
  description: string;
  /** FilePathList[0]: where the image is. */
  filePathList: DevNode[];
  /** Every device path in FilePathList (FilePathList[0] first), e.g. an initrd path some OS loaders add. */
  filePaths: DevNode[][];
  optionalData: Buffer;
}

const loadErr = (kind: "corrupt" | "truncated" | "limit", msg: string) => new ImageError("E_LOADOPTION_MALFORMED", kind, msg);

/** Parse an EFI_LOAD_OPTION (Boot####, Driver####...). Rules as EDK2 BmValidateOption plus device path validity. */
export function parseLoadOption(buf: Uint8Array): LoadOption {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (b.length < 8) throw loadErr("truncated", `load option is ${b.length} bytes, the fixed part and a NUL description need 8`);
  const attributes = b.readUInt32LE(0), fpl = b.readUInt16LE(4);
  let end = -1;
  for (let i = 6; i + 1 < b.length; i += 2) if (b.readUInt16LE(i) === 0) { end = i; break; }
  if (end < 0) throw loadErr("truncated", `load option description has no NUL within ${b.length} bytes`);
  const description = b.toString("utf16le", 6, end);
  const fpStart = end + 2;
  if (fpl === 0) throw loadErr("corrupt", `load option "${description}" has FilePathListLength 0`);
  if (fpStart + fpl > b.length) {
    throw loadErr("truncated", `load option "${description}" FilePathListLength ${fpl} at offset ${fpStart} runs past its ${b.length} bytes`);
  }
  const list = b.subarray(fpStart, fpStart + fpl);
  const filePaths: DevNode[][] = [];
  let off = 0;
  while (off < list.length) {
    if (filePaths.length > MAX_LOAD_OPTION_PATHS) throw loadErr("limit", `load option "${description}" holds more than ${MAX_LOAD_OPTION_PATHS + 1} device paths`);
    let nodes: DevNode[];
    try {
      nodes = parseDevicePath(list.subarray(off), list.length - off);
    } catch (e) {
      if (e instanceof ImageError) throw loadErr(e.kind === "limit" ? "limit" : e.kind === "truncated" ? "truncated" : "corrupt", `load option "${description}" device path ${filePaths.length} at offset ${fpStart + off}: ${e.message}`);
      throw e;
    }
    filePaths.push(nodes);
    off += devicePathSize(nodes);
  }
  return { attributes, description, filePathList: filePaths[0], filePaths, optionalData: Buffer.from(b.subarray(fpStart + fpl)) };
}

/** Build an EFI_LOAD_OPTION; `filePathList` is one path or several (FilePathList[0] first). */
export function buildLoadOption(o: { attributes?: number; description: string; filePathList: DevNode[] | DevNode[][]; optionalData?: Buffer }): Buffer {
  const paths = o.filePathList.length && Array.isArray(o.filePathList[0]) ? o.filePathList as DevNode[][] : [o.filePathList as DevNode[]];
  const fp = Buffer.concat(paths.map(serializeDevicePath));
  if (fp.length > 0xffff) throw new ImageError("E_LOADOPTION_MALFORMED", "usage", `FilePathList of ${fp.length} bytes exceeds 65535`);
  const head = Buffer.alloc(6);
  head.writeUInt32LE((o.attributes ?? LOAD_OPTION.ACTIVE) >>> 0, 0);
  head.writeUInt16LE(fp.length, 4);
  return Buffer.concat([head, Buffer.from(o.description + "\0", "utf16le"), fp, o.optionalData ?? Buffer.alloc(0)]);
}

/** BootOrder: an array of UINT16 option numbers (a trailing odd byte is ignored, as EDK2's size / 2 does). */
export function parseBootOrder(buf: Uint8Array): number[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const out: number[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) out.push(b.readUInt16LE(i));
  return out;
}

/** BootOrder bytes from option numbers. */
export function buildBootOrder(nums: number[]): Buffer {
  const b = Buffer.alloc(nums.length * 2);
  nums.forEach((n, i) => b.writeUInt16LE(n, i * 2));
  return b;
}

/** "Boot000A": option number in four upper-case hex digits (UEFI 2.10 3.1.1). */
export function bootVarName(n: number, prefix = "Boot"): string {
  return prefix + (n & 0xffff).toString(16).toUpperCase().padStart(4, "0");
}

/** The option number of "Boot####" (upper-case hex only, as EDK2 accepts), else undefined. */
export function parseBootVarName(name: string, prefix = "Boot"): number | undefined {
  const m = new RegExp(`^${prefix}([0-9A-F]{4})$`).exec(name);
  return m ? parseInt(m[1], 16) : undefined;
}
