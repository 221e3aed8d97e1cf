// Windows Boot Configuration Data store (a regf hive: Objects\{GUID}\Elements\<type>\Element;
// element types from Microsoft's BCD WMI provider docs, "BcdLibraryElementTypes" / "BcdOSLoaderElementTypes";
// device element layout as reverse-engineered by ReactOS boot/environ bl.h BL_DEVICE_DESCRIPTOR) and
// the comparison of the default loader's device/osdevice with the actual disk.
import { corrupt, hex, ImageError } from "./errors.ts";
import { decodeValue, openHive, openKey, type Hive, type RegKey } from "./regf.ts";
import { guidText } from "./gpt.ts";
import type { Layout } from "./layout.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";

defineFindings([
  {
    code: "BCD_DEVICE_MISMATCH", severity: "error", stage: "root",
    title: "BCD names a disk or partition that is not on this disk",
    message: "BCD {object} element {element} ({name}) names {device}: {reason}",
    remedy: "boot the VM from Windows installation media, open the command prompt and run `bcdedit /set {default} device partition=C:` and `bcdedit /set {default} osdevice partition=C:` (and `bcdedit /set {bootmgr} device partition=S:` for the system partition), or `bcdboot C:\\Windows`",
    explain: "winload and bootmgr find their partitions by the MBR disk signature plus the partition's byte offset, or by GPT disk and partition GUIDs, recorded in the BCD store. A disk converted with a new signature (or re-partitioned) leaves them pointing nowhere: the boot fails with 0xc000000e.",
  },
  {
    code: "BCD_NO_DEFAULT", severity: "error", stage: "root",
    title: "BCD has no usable default boot entry",
    message: "BCD: {reason}",
    remedy: "rebuild the store from Windows installation media: `bcdboot C:\\Windows /s S: /f ALL` (S: being the system/EFI partition)",
    explain: "The Windows Boot Manager object {9dea862c-5cdd-4e70-acc1-f32b344d4795} names its default OS loader in element 0x23000003. Without it (or when it names a missing object) bootmgr shows an error instead of loading Windows.",
  },
  {
    code: "BCD_ELEMENT_BAD", severity: "warning", stage: "root",
    title: "BCD element cannot be decoded",
    message: "BCD {object} element {element}: {reason}",
    remedy: "rebuild the store from Windows installation media: `bcdboot C:\\Windows`",
    explain: "A BCD element's data does not have the size or structure its type requires; bootmgr would reject it.",
  },
]);

export const BOOTMGR_GUID = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";
/** Element types (BcdLibraryElementTypes / BcdBootMgrElementTypes / BcdOSLoaderElementTypes). */
export const BCDE = {
  APPLICATION_DEVICE: 0x11000001, APPLICATION_PATH: 0x12000002, DESCRIPTION: 0x12000004,
  OS_DEVICE: 0x21000001, SYSTEM_ROOT: 0x22000002, DEFAULT_OBJECT: 0x23000003, DISPLAY_ORDER: 0x24000001,
  TIMEOUT: 0x25000004,
} as const;
const ELEMENT_NAMES: Record<number, string> = {
  [BCDE.APPLICATION_DEVICE]: "device", [BCDE.APPLICATION_PATH]: "path", [BCDE.DESCRIPTION]: "description",
  [BCDE.OS_DEVICE]: "osdevice", [BCDE.SYSTEM_ROOT]: "systemroot", [BCDE.DEFAULT_OBJECT]: "default",
  [BCDE.DISPLAY_ORDER]: "displayorder", [BCDE.TIMEOUT]: "timeout",
};

/** BL_DEVICE_TYPE (ReactOS bl.h). */
const DEV_DISK = 0, DEV_LEGACY_PARTITION = 2, DEV_BOOT = 5, DEV_PARTITION = 6, DEV_LOCATE = 8;
/** BL_PARTITION_TYPE. */
const PART_GPT = 0, PART_MBR = 1, PART_RAW = 2;
/** Element data: 16-byte options GUID, then the descriptor: type, flags, size, reserved (16 bytes). */
const DESC_OFF = 0x10, DESC_HEADER = 16;
/** Partition descriptor payload: partition id (16: u64 byte offset or GUID), local-device type (4), partition style (4), disk id (16). */
const PARTITION_PAYLOAD = 40;

export type BcdDevice =
  | { type: "partition"; scheme: "mbr"; mbrSignature: number; partitionOffset: number }
  | { type: "partition"; scheme: "gpt"; diskGuid: string; partitionGuid: string }
  | { type: "partition"; scheme: "raw"; diskNumber: number }
  | { type: "boot" }
  | { type: "locate" | "file" | "disk" | "other"; deviceType: number };

/** Decode a device element (0x11000001 / 0x21000001). Throws ImageError E_BCD_DEVICE for malformed data. */
export function decodeBcdDevice(d: Buffer): BcdDevice {
  if (d.length < DESC_OFF + DESC_HEADER) throw corrupt("E_BCD_DEVICE", `device element is ${d.length} bytes, shorter than its ${DESC_OFF + DESC_HEADER}-byte header`);
  const type = d.readUInt32LE(DESC_OFF), size = d.readUInt32LE(DESC_OFF + 8);
  if (size < DESC_HEADER || DESC_OFF + size > d.length) throw corrupt("E_BCD_DEVICE", `device descriptor says ${size} bytes, the element holds ${d.length - DESC_OFF}`);
  if (type === DEV_BOOT) return { type: "boot" };
  if (type === DEV_PARTITION || type === DEV_LEGACY_PARTITION) {
    if (size < DESC_HEADER + PARTITION_PAYLOAD) throw corrupt("E_BCD_DEVICE", `partition device descriptor of ${size} bytes (needs ${DESC_HEADER + PARTITION_PAYLOAD})`);
    const p = DESC_OFF + DESC_HEADER;
    const style = d.readUInt32LE(p + 20);
    if (style === PART_MBR) {
      const off = d.readBigUInt64LE(p);
      if (off > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt("E_BCD_DEVICE", `partition offset ${off} is beyond any disk`);
      return { type: "partition", scheme: "mbr", mbrSignature: d.readUInt32LE(p + 24), partitionOffset: Number(off) };
    }
    if (style === PART_GPT) return { type: "partition", scheme: "gpt", partitionGuid: guidText(d, p), diskGuid: guidText(d, p + 24) };
    if (style === PART_RAW) return { type: "partition", scheme: "raw", diskNumber: d.readUInt32LE(p + 24) };
    throw corrupt("E_BCD_DEVICE", `partition style ${style} is neither GPT (0), MBR (1) nor raw (2)`);
  }
  if (type === DEV_LOCATE) return { type: "locate", deviceType: type };
  if (type === 0 && d.readUInt32LE(DESC_OFF + 4) === 0 && size > DESC_HEADER) return { type: "file", deviceType: type };
  if (type === DEV_DISK) return { type: "disk", deviceType: type };
  return { type: "other", deviceType: type };
}

export function deviceText(d: BcdDevice): string {
  if (d.type !== "partition") return d.type;
  if (d.scheme === "mbr") return `partition at byte offset ${d.partitionOffset} of MBR disk ${hex(d.mbrSignature)}`;
  if (d.scheme === "gpt") return `GPT partition ${d.partitionGuid} of disk ${d.diskGuid}`;
  return `partition on raw disk ${d.diskNumber}`;
}

export interface BcdLoader {
  guid: string;
  objectType?: number;
  description?: string;
  path?: string;
  systemRoot?: string;
  device?: BcdDevice;
  osDevice?: BcdDevice;
}

export interface BcdStore {
  /** Object GUIDs (lowercase, braced) with their Description\Type. */
  objects: { guid: string; type?: number }[];
  bootmgr?: { device?: BcdDevice; defaultGuid?: string; displayOrder: string[]; timeout?: number };
  defaultLoader?: BcdLoader;
  findings: Finding[];
}

export function readBcd(file: Buffer | Hive): BcdStore {
  const hive = Buffer.isBuffer(file) ? openHive(file, "BCD") : file;
  const st: BcdStore = { objects: [], findings: [...hive.findings] };
  const objs = openKey(hive, "Objects");
  if (!objs) { st.findings.push(finding("BCD_NO_DEFAULT", { reason: "the hive has no Objects key: not a BCD store" })); return st; }
  const byGuid = new Map<string, RegKey>();
  for (const k of hive.subkeys(objs)) {
    const g = k.name.toLowerCase();
    byGuid.set(g, k);
    const t = elementValue(hive, k, undefined, "Description", "Type");
    st.objects.push({ guid: g, ...(typeof t === "number" ? { type: t } : {}) });
  }
  const bm = byGuid.get(BOOTMGR_GUID);
  if (!bm) { st.findings.push(finding("BCD_NO_DEFAULT", { reason: `no Windows Boot Manager object ${BOOTMGR_GUID}` })); return st; }
  const el = (k: RegKey, type: number) => {
    try { return elementValue(hive, k, type); } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      st.findings.push(finding("BCD_ELEMENT_BAD", { object: k.name, element: hex(type), reason: e.message })); return undefined;
    }
  };
  const dev = (k: RegKey, type: number): BcdDevice | undefined => {
    const v = el(k, type);
    if (v === undefined) return undefined;
    if (!Buffer.isBuffer(v)) { st.findings.push(finding("BCD_ELEMENT_BAD", { object: k.name, element: hex(type), reason: "device element is not binary data" })); return undefined; }
    try { return decodeBcdDevice(v); } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      st.findings.push(finding("BCD_ELEMENT_BAD", { object: k.name, element: hex(type), reason: e.message })); return undefined;
    }
  };
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const def = str(el(bm, BCDE.DEFAULT_OBJECT))?.toLowerCase();
  const order = el(bm, BCDE.DISPLAY_ORDER);
  const timeout = el(bm, BCDE.TIMEOUT);
  st.bootmgr = {
    device: dev(bm, BCDE.APPLICATION_DEVICE), ...(def ? { defaultGuid: def } : {}),
    displayOrder: Array.isArray(order) ? order.map((x) => x.toLowerCase()) : [],
    ...(Buffer.isBuffer(timeout) && timeout.length === 8 ? { timeout: Number(timeout.readBigUInt64LE(0)) } : {}),
  };
  if (!def) { st.findings.push(finding("BCD_NO_DEFAULT", { reason: "the boot manager has no default element (0x23000003)" })); return st; }
  const lk = byGuid.get(def);
  if (!lk) { st.findings.push(finding("BCD_NO_DEFAULT", { reason: `the default ${def} names no object in the store` })); return st; }
  const t = elementValue(hive, lk, undefined, "Description", "Type");
  st.defaultLoader = {
    guid: def, ...(typeof t === "number" ? { objectType: t } : {}),
    description: str(el(lk, BCDE.DESCRIPTION)), path: str(el(lk, BCDE.APPLICATION_PATH)), systemRoot: str(el(lk, BCDE.SYSTEM_ROOT)),
    device: dev(lk, BCDE.APPLICATION_DEVICE), osDevice: dev(lk, BCDE.OS_DEVICE),
  };
  return st;
}

/** The "Element" value of Elements\<type> (8 hex digits), or another subkey/value of the object. */
function elementValue(hive: Hive, obj: RegKey, type: number | undefined, sub = "", valueName = "Element") {
  const k = openKey(hive, type === undefined ? sub : `Elements\\${type.toString(16).padStart(8, "0")}`, obj);
  if (!k) return undefined;
  const v = hive.value(k, valueName);
  return v ? decodeValue(v) : undefined;
}

export interface BcdDeviceMatch {
  object: string;
  element: "device" | "osdevice";
  device: BcdDevice;
  /** undefined: the device is resolved at boot time (boot, locate) and cannot be checked statically. */
  matches?: boolean;
  partitionIndex?: number;
  reason: string;
}

/** Compare the boot manager's and the default loader's devices with the disk (MBR signature at 0x1B8 + offsets, or GPT GUIDs). */
export function matchBcdToDisk(store: BcdStore, layout: Layout, findings: Finding[] = store.findings): BcdDeviceMatch[] {
  const out: BcdDeviceMatch[] = [];
  const check = (object: string, element: "device" | "osdevice", d?: BcdDevice) => {
    if (!d) return;
    const m = matchOne(d, layout);
    const r: BcdDeviceMatch = { object, element, device: d, ...m };
    out.push(r);
    if (m.matches === false) {
      findings.push(finding("BCD_DEVICE_MISMATCH", { object, element: element === "device" ? hex(BCDE.APPLICATION_DEVICE) : hex(BCDE.OS_DEVICE), name: element, device: deviceText(d), reason: m.reason }));
    }
  };
  check(BOOTMGR_GUID, "device", store.bootmgr?.device);
  if (store.defaultLoader) {
    check(store.defaultLoader.guid, "device", store.defaultLoader.device);
    check(store.defaultLoader.guid, "osdevice", store.defaultLoader.osDevice);
  }
  return out;
}

function matchOne(d: BcdDevice, layout: Layout): Omit<BcdDeviceMatch, "object" | "element" | "device"> {
  if (d.type === "boot") return { reason: "boot: the partition bootmgr itself was loaded from (resolved at boot)" };
  if (d.type === "locate") return { reason: "locate: the loader searches the partitions for its path at boot" };
  if (d.type !== "partition") return { reason: `${d.type} device: not checked against the disk` };
  if (d.scheme === "raw") return { matches: false, reason: `raw disk number ${d.diskNumber} cannot be checked` };
  if (d.scheme === "mbr") {
    if (layout.partitioning !== "mbr" || !layout.mbr) return { matches: false, reason: `the disk is ${layout.partitioning === "none" ? "not partitioned" : "GPT"}, the element names an MBR disk` };
    if (layout.mbr.signature !== d.mbrSignature) {
      return { matches: false, reason: `the disk's MBR signature (LBA 0 offset 0x1B8) is ${hex(layout.mbr.signature)}, not ${hex(d.mbrSignature)}` };
    }
    const p = layout.partitions.find((x) => !x.extended && x.startLba * layout.sectorSize === d.partitionOffset);
    if (!p) return { matches: false, reason: `no partition starts at byte offset ${d.partitionOffset} (LBA ${d.partitionOffset / layout.sectorSize}); partitions start at LBAs ${layout.partitions.map((x) => x.startLba).join(", ")}` };
    return { matches: true, partitionIndex: p.index, reason: `partition ${p.index} starts at LBA ${p.startLba} on disk ${hex(d.mbrSignature)}` };
  }
  if (!layout.gpt) return { matches: false, reason: "the disk has no GPT, the element names a GPT disk" };
  if (layout.gpt.diskGuid.toUpperCase() !== d.diskGuid.toUpperCase()) return { matches: false, reason: `the disk's GPT disk GUID is ${layout.gpt.diskGuid}, not ${d.diskGuid}` };
  const p = layout.partitions.find((x) => x.guid?.toUpperCase() === d.partitionGuid.toUpperCase());
  if (!p) return { matches: false, reason: `no GPT partition has GUID ${d.partitionGuid}` };
  return { matches: true, partitionIndex: p.index, reason: `GPT partition ${p.index} (${p.guid})` };
}
