// UEFI device paths: parse, build, text form and short-form matching (UEFI 2.10 10.3 "Device Path Nodes",
// 3.1.2 "Load Option Processing"; layouts from EDK2 MdePkg/Include/Protocol/DevicePath.h, text forms from
// MdePkg/Library/UefiDevicePathLib/DevicePathToText.c, Hyper-V nodes from mu_msvm MsvmPkg/VmbusDxe).
import { ImageError, hex } from "../images/errors.ts";
import { GUID, guidFromBytes, guidToBytes } from "./uefi-guid.ts";
import { UEFI_MAX_DEVPATH_BYTES, UEFI_MAX_DEVPATH_NODES } from "../images/limits.ts";

/** One device path node: `data` is the bytes after the 4-byte header (Type, SubType, Length[2]). */
export interface DevNode { type: number; subType: number; data: Buffer }

/** Node types [DevicePath.h]. */
export const HARDWARE_DEVICE_PATH = 0x01;
export const ACPI_DEVICE_PATH = 0x02;
export const MESSAGING_DEVICE_PATH = 0x03;
export const MEDIA_DEVICE_PATH = 0x04;
export const BBS_DEVICE_PATH = 0x05;
export const END_DEVICE_PATH_TYPE = 0x7f;
/** Sub-types [DevicePath.h]. */
export const HW_PCI_DP = 0x01, HW_PCCARD_DP = 0x02, HW_MEMMAP_DP = 0x03, HW_VENDOR_DP = 0x04, HW_CONTROLLER_DP = 0x05;
export const ACPI_DP = 0x01, ACPI_EXTENDED_DP = 0x02, ACPI_ADR_DP = 0x03;
export const MSG_ATAPI_DP = 0x01, MSG_SCSI_DP = 0x02, MSG_USB_DP = 0x05, MSG_VENDOR_DP = 0x0a, MSG_MAC_ADDR_DP = 0x0b;
export const MSG_SATA_DP = 0x12, MSG_NVME_NAMESPACE_DP = 0x17, MSG_URI_DP = 0x18;
export const MEDIA_HARDDRIVE_DP = 0x01, MEDIA_CDROM_DP = 0x02, MEDIA_VENDOR_DP = 0x03, MEDIA_FILEPATH_DP = 0x04;
export const MEDIA_PROTOCOL_DP = 0x05, MEDIA_PIWG_FW_FILE_DP = 0x06, MEDIA_PIWG_FW_VOL_DP = 0x07;
export const MEDIA_RELATIVE_OFFSET_RANGE_DP = 0x08;
export const END_INSTANCE_DEVICE_PATH_SUBTYPE = 0x01, END_ENTIRE_DEVICE_PATH_SUBTYPE = 0xff;
export const END_DEVICE_PATH_LENGTH = 4;
/** HARDDRIVE_DEVICE_PATH.MBRType / SignatureType [DevicePath.h]. */
export const MBR_TYPE_PCAT = 0x01, MBR_TYPE_EFI_PARTITION_TABLE_HEADER = 0x02;
export const SIGNATURE_TYPE_MBR = 0x01, SIGNATURE_TYPE_GUID = 0x02;
/** HARDDRIVE_DEVICE_PATH is 42 bytes: header, PartitionNumber u32, Start u64, Size u64, Signature[16], MBRType, SignatureType. */
const HD_DATA_BYTES = 38;

/** Bounds on untrusted device paths: bytes before the End node must appear, and nodes in one path. */
export const MAX_DEVPATH_BYTES = UEFI_MAX_DEVPATH_BYTES;
export const MAX_DEVPATH_NODES = UEFI_MAX_DEVPATH_NODES;

const bad = (kind: "corrupt" | "truncated" | "limit", msg: string) => new ImageError("E_DEVPATH_MALFORMED", kind, msg);

/**
 * Parse an EFI_DEVICE_PATH_PROTOCOL byte stream up to the End Entire node (not returned). End Instance nodes
 * are kept. Validity follows EDK2's IsDevicePathValid: node length >= 4, the End Entire node exactly 4 bytes,
 * file path nodes NUL-terminated; plus our bounds (`maxBytes` including the End node, MAX_DEVPATH_NODES).
 */
export function parseDevicePath(buf: Uint8Array, maxBytes = MAX_DEVPATH_BYTES): DevNode[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const nodes: DevNode[] = [];
  let off = 0;
  for (;;) {
    if (off + END_DEVICE_PATH_LENGTH > maxBytes) {
      throw bad("limit", `device path has no End node within ${maxBytes} bytes (${nodes.length} nodes read)`);
    }
    if (off + END_DEVICE_PATH_LENGTH > b.length) {
      throw bad("truncated", `device path node header at offset ${off} runs past the ${b.length}-byte buffer`);
    }
    const type = b[off], subType = b[off + 1], len = b.readUInt16LE(off + 2);
    if (len < END_DEVICE_PATH_LENGTH) {
      throw bad("corrupt", `device path node ${nodes.length} (type ${hex(type, 2)}/${hex(subType, 2)}) at offset ${off} has length ${len} < 4`);
    }
    if (type === END_DEVICE_PATH_TYPE && subType === END_ENTIRE_DEVICE_PATH_SUBTYPE) {
      if (len !== END_DEVICE_PATH_LENGTH) throw bad("corrupt", `End Entire node at offset ${off} has length ${len}, must be 4`);
      return nodes;
    }
    if (off + len > b.length) {
      throw bad("truncated", `device path node ${nodes.length} at offset ${off} has length ${len}, past the ${b.length}-byte buffer`);
    }
    if (off + len + END_DEVICE_PATH_LENGTH > maxBytes) {
      throw bad("limit", `device path has no End node within ${maxBytes} bytes (node ${nodes.length} at ${off}, length ${len})`);
    }
    if (nodes.length >= MAX_DEVPATH_NODES) throw bad("limit", `device path has more than ${MAX_DEVPATH_NODES} nodes`);
    const data = Buffer.from(b.subarray(off + 4, off + len));
    if (type === MEDIA_DEVICE_PATH && subType === MEDIA_FILEPATH_DP && (data.length < 2 || data.readUInt16LE(data.length - 2) !== 0)) {
      throw bad("corrupt", `file path node ${nodes.length} at offset ${off} (length ${len}) is not NUL-terminated`);
    }
    nodes.push({ type, subType, data });
    off += len;
  }
}

/** Bytes of one node with its header. */
export function nodeBytes(n: DevNode): Buffer {
  const len = 4 + n.data.length;
  if (len > 0xffff) throw new ImageError("E_DEVPATH_MALFORMED", "usage", `device path node of ${len} bytes exceeds 65535`);
  const h = Buffer.alloc(4);
  h[0] = n.type; h[1] = n.subType; h.writeUInt16LE(len, 2);
  return Buffer.concat([h, n.data]);
}

/** The nodes followed by an End Entire node. */
export function serializeDevicePath(nodes: DevNode[]): Buffer {
  return Buffer.concat([...nodes.map(nodeBytes), Buffer.from([END_DEVICE_PATH_TYPE, END_ENTIRE_DEVICE_PATH_SUBTYPE, 4, 0])]);
}

/** Size in bytes of the serialized path, End node included (GetDevicePathSize). */
export function devicePathSize(nodes: DevNode[]): number {
  return nodes.reduce((s, n) => s + 4 + n.data.length, END_DEVICE_PATH_LENGTH);
}

// ---------------------------------------------------------------- text (DevicePathToText.c)

const x = (n: number | bigint) => "0x" + n.toString(16);
const hexBytes = (b: Buffer) => b.toString("hex");
/** EDK2's EISA id text: three 5-bit letters ('A'-1 based) and the product number in %04X. */
function eisaText(id: number): string {
  const c = (s: number) => String.fromCharCode(((id >>> s) & 0x1f) + 0x40);
  return c(10) + c(5) + c(0) + ((id >>> 16) & 0xffff).toString(16).toUpperCase().padStart(4, "0");
}
const EISA_PNP_CONST = 0x41d0, PNP_MASK = 0xffff;
const eisaNum = (id: number) => (id >>> 16) & 0xffff;

/** NUL-terminated ASCII strings packed after a node's fixed part (ACPI _HID/_UID/_CID), at most `max`. */
function cStrings(d: Buffer, from: number, max: number): string[] {
  const out: string[] = [];
  let p = from;
  while (p < d.length && out.length < max) {
    let e = d.indexOf(0, p);
    if (e < 0) e = d.length;
    out.push(d.toString("latin1", p, e));
    p = e + 1;
  }
  return out;
}

/** The path name of a file path node: UTF-16LE up to the first NUL. */
export function filePathNodeText(n: DevNode): string {
  let end = n.data.length & ~1;
  for (let i = 0; i + 1 < n.data.length; i += 2) if (n.data.readUInt16LE(i) === 0) { end = i; break; }
  return n.data.toString("utf16le", 0, end);
}

function acpiExText(d: Buffer, displayOnly: boolean): string {
  const hid = d.readUInt32LE(0), uid = d.readUInt32LE(4), cid = d.readUInt32LE(8);
  const [hidStr, uidStr, cidStr] = cStrings(d, 12, 3);   // stored in the order HidStr, UidStr, CidStr
  if (displayOnly) {
    if (eisaNum(hid) === 0x0a03 || (eisaNum(cid) === 0x0a03 && eisaNum(hid) !== 0x0a08)) {
      return uidStr !== undefined ? `PciRoot(${uidStr})` : `PciRoot(${x(uid)})`;
    }
    if (eisaNum(hid) === 0x0a08 || eisaNum(cid) === 0x0a08) {
      return uidStr !== undefined ? `PcieRoot(${uidStr})` : `PcieRoot(${x(uid)})`;
    }
  }
  if (hidStr === "" && cidStr === "" && uidStr !== undefined && uidStr !== "") {
    return cid === 0 ? `AcpiExp(${eisaText(hid)},0,${uidStr})` : `AcpiExp(${eisaText(hid)},${eisaText(cid)},${uidStr})`;
  }
  if (displayOnly) {
    return `AcpiEx(${hidStr ?? eisaText(hid)},${cidStr ?? eisaText(cid)},${uidStr ?? x(uid)})`;
  }
  const z = (v: string | undefined) => v ?? "<null string>";   // BasePrintLib prints NULL %a this way
  return `AcpiEx(${eisaText(hid)},${eisaText(cid)},${x(uid)},${z(hidStr)},${z(cidStr)},${z(uidStr)})`;
}

function acpiText(d: Buffer): string {
  const hid = d.readUInt32LE(0), uid = d.readUInt32LE(4);
  if ((hid & PNP_MASK) !== EISA_PNP_CONST) return `Acpi(0x${hid.toString(16).padStart(8, "0")},${x(uid)})`;
  const names: Record<number, string> = { 0x0a03: "PciRoot", 0x0a08: "PcieRoot", 0x0604: "Floppy", 0x0301: "Keyboard", 0x0501: "Serial", 0x0401: "ParallelPort" };
  const name = names[eisaNum(hid)];
  return name ? `${name}(${x(uid)})` : `Acpi(PNP${eisaNum(hid).toString(16).padStart(4, "0")},${x(uid)})`;
}

function hdText(d: Buffer, displayOnly: boolean): string {
  const part = d.readUInt32LE(0), sigType = d[37];
  let s: string;
  if (sigType === SIGNATURE_TYPE_MBR) s = `HD(${part},MBR,0x${d.readUInt32LE(20).toString(16).padStart(8, "0")}`;
  else if (sigType === SIGNATURE_TYPE_GUID) s = `HD(${part},GPT,${guidFromBytes(d, 20)}`;
  else s = `HD(${part},${sigType},0`;
  return displayOnly ? s + ")" : `${s},${x(d.readBigUInt64LE(4))},${x(d.readBigUInt64LE(12))})`;
}

/** Minimum data bytes each known node needs before its text form may read it (else the generic form is used). */
const TEXT_FORMS: Record<string, [number, (d: Buffer, n: DevNode, displayOnly: boolean) => string]> = {
  [`${HARDWARE_DEVICE_PATH}/${HW_PCI_DP}`]: [2, (d) => `Pci(${x(d[1])},${x(d[0])})`],
  [`${HARDWARE_DEVICE_PATH}/${HW_PCCARD_DP}`]: [1, (d) => `PcCard(${x(d[0])})`],
  [`${HARDWARE_DEVICE_PATH}/${HW_MEMMAP_DP}`]: [20, (d) => `MemoryMapped(${x(d.readUInt32LE(0))},${x(d.readBigUInt64LE(4))},${x(d.readBigUInt64LE(12))})`],
  [`${HARDWARE_DEVICE_PATH}/${HW_VENDOR_DP}`]: [16, (d) => vendorText("Hw", d)],
  [`${HARDWARE_DEVICE_PATH}/${HW_CONTROLLER_DP}`]: [4, (d) => `Ctrl(${x(d.readUInt32LE(0))})`],
  [`${ACPI_DEVICE_PATH}/${ACPI_DP}`]: [8, (d) => acpiText(d)],
  [`${ACPI_DEVICE_PATH}/${ACPI_EXTENDED_DP}`]: [12, (d, _n, disp) => acpiExText(d, disp)],
  [`${ACPI_DEVICE_PATH}/${ACPI_ADR_DP}`]: [4, (d) => {
    const adr: string[] = [];
    for (let i = 0; i + 4 <= d.length; i += 4) adr.push(x(d.readUInt32LE(i)));
    return `AcpiAdr(${adr.join(",")})`;
  }],
  [`${MESSAGING_DEVICE_PATH}/${MSG_ATAPI_DP}`]: [4, (d, _n, disp) => disp ? `Ata(${x(d.readUInt16LE(2))})`
    : `Ata(${d[0] === 1 ? "Secondary" : "Primary"},${d[1] === 1 ? "Slave" : "Master"},${x(d.readUInt16LE(2))})`],
  [`${MESSAGING_DEVICE_PATH}/${MSG_SCSI_DP}`]: [4, (d) => `Scsi(${x(d.readUInt16LE(0))},${x(d.readUInt16LE(2))})`],
  [`${MESSAGING_DEVICE_PATH}/${MSG_USB_DP}`]: [2, (d) => `USB(${x(d[0])},${x(d[1])})`],
  [`${MESSAGING_DEVICE_PATH}/${MSG_SATA_DP}`]: [6, (d) => `Sata(${x(d.readUInt16LE(0))},${x(d.readUInt16LE(2))},${x(d.readUInt16LE(4))})`],
  // EDK2 prints the UINT64 NamespaceUuid most significant byte first, i.e. the stored bytes reversed.
  [`${MESSAGING_DEVICE_PATH}/${MSG_NVME_NAMESPACE_DP}`]: [12, (d) => `NVMe(${x(d.readUInt32LE(0))},${[...d.subarray(4, 12)].reverse().map((v) => v.toString(16).padStart(2, "0")).join("-")})`],
  [`${MESSAGING_DEVICE_PATH}/${MSG_VENDOR_DP}`]: [16, (d) => vendorText("Msg", d)],
  [`${MESSAGING_DEVICE_PATH}/${MSG_MAC_ADDR_DP}`]: [33, (d) => `MAC(${hexBytes(d.subarray(0, d[32] === 0 || d[32] === 1 ? 6 : 32))},${x(d[32])})`],
  [`${MESSAGING_DEVICE_PATH}/${MSG_URI_DP}`]: [0, (d) => `Uri(${d.toString("latin1").split("\0")[0]})`],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_HARDDRIVE_DP}`]: [HD_DATA_BYTES, (d, _n, disp) => hdText(d, disp)],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_CDROM_DP}`]: [20, (d, _n, disp) => disp ? `CDROM(${x(d.readUInt32LE(0))})`
    : `CDROM(${x(d.readUInt32LE(0))},${x(d.readBigUInt64LE(4))},${x(d.readBigUInt64LE(12))})`],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_VENDOR_DP}`]: [16, (d) => vendorText("Media", d)],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_FILEPATH_DP}`]: [0, (_d, n) => filePathNodeText(n)],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_PROTOCOL_DP}`]: [16, (d) => `Media(${guidFromBytes(d, 0)})`],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_PIWG_FW_FILE_DP}`]: [16, (d) => `FvFile(${guidFromBytes(d, 0)})`],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_PIWG_FW_VOL_DP}`]: [16, (d) => `Fv(${guidFromBytes(d, 0)})`],
  [`${MEDIA_DEVICE_PATH}/${MEDIA_RELATIVE_OFFSET_RANGE_DP}`]: [20, (d) => `Offset(${x(d.readBigUInt64LE(4))},${x(d.readBigUInt64LE(12))})`],
};

function vendorText(kind: string, d: Buffer): string {
  const rest = d.subarray(16);
  return `Ven${kind}(${guidFromBytes(d, 0)}${rest.length ? "," + hexBytes(rest) : ""})`;
}

const GENERIC_NAMES: Record<number, string> = {
  [HARDWARE_DEVICE_PATH]: "HardwarePath", [ACPI_DEVICE_PATH]: "AcpiPath", [MESSAGING_DEVICE_PATH]: "Msg",
  [MEDIA_DEVICE_PATH]: "MediaPath", [BBS_DEVICE_PATH]: "BbsPath",
};

/** Text of one node (ConvertDeviceNodeToText). Unknown or short nodes use EDK2's generic form. */
export function deviceNodeToText(n: DevNode, opts: { displayOnly?: boolean } = {}): string {
  if (n.type === END_DEVICE_PATH_TYPE && n.subType === END_INSTANCE_DEVICE_PATH_SUBTYPE) return ",";
  const form = TEXT_FORMS[`${n.type}/${n.subType}`];
  if (form && n.data.length >= form[0]) return form[1](n.data, n, opts.displayOnly ?? false);
  const head = GENERIC_NAMES[n.type] ? `${GENERIC_NAMES[n.type]}(${n.subType}` : `Path(${n.type},${n.subType}`;
  return `${head}${n.data.length ? "," + hexBytes(n.data) : ""})`;
}

/**
 * Text of a whole path (ConvertDevicePathToText with DisplayOnly = opts.displayOnly, AllowShortcuts = FALSE).
 * Like EDK2, a '/' precedes every node but the first and End Instance nodes, so instances print as "A,/B".
 */
export function devicePathToText(nodes: DevNode[], opts: { displayOnly?: boolean } = {}): string {
  let s = "";
  for (const n of nodes) {
    const t = deviceNodeToText(n, opts);
    const endInstance = n.type === END_DEVICE_PATH_TYPE && n.subType === END_INSTANCE_DEVICE_PATH_SUBTYPE;
    if (s.length && !endInstance) s += "/";
    s += t;
  }
  return s;
}

// ---------------------------------------------------------------- builders

const u16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
const u64 = (v: bigint | number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };

/** The VMBus root node exactly as mu_msvm builds it (VmbusRoot.c gVmbusRootNode): AcpiEx with HID = UID = CID = 0
 *  and the strings HidStr "VMBus", UidStr "", CidStr "" (24 bytes). Text: AcpiEx(@@@0000,@@@0000,0x0,VMBus,,). */
export function vmbusRoot(): DevNode {
  return { type: ACPI_DEVICE_PATH, subType: ACPI_EXTENDED_DP, data: Buffer.concat([u32(0), u32(0), u32(0), Buffer.from("VMBus\0\0\0", "latin1")]) };
}

/** A VMBus channel node (mu_msvm VMBUS_DEVICE_PATH): VenHw(HV_VMBUS) + InterfaceType GUID + InterfaceInstance GUID. */
export function vmbusChannel(channelTypeGuid: string, instanceGuid: string): DevNode {
  return vendorNode(HARDWARE_DEVICE_PATH, HW_VENDOR_DP, GUID.HV_VMBUS, Buffer.concat([guidToBytes(channelTypeGuid), guidToBytes(instanceGuid)]));
}

function vendorNode(type: number, subType: number, guid: string, data: Buffer = Buffer.alloc(0)): DevNode {
  return { type, subType, data: Buffer.concat([guidToBytes(guid), data]) };
}

/** SCSI_DEVICE_PATH: Pun (target) and Lun, UINT16 each. */
export function scsi(target: number, lun: number): DevNode {
  return { type: MESSAGING_DEVICE_PATH, subType: MSG_SCSI_DP, data: Buffer.concat([u16(target), u16(lun)]) };
}

/** NVME_NAMESPACE_DEVICE_PATH: NamespaceId and the 8-byte EUI-64 as stored (Identify Namespace EUI64 bytes). */
export function nvme(nsid: number, eui64: Buffer = Buffer.alloc(8)): DevNode {
  if (eui64.length !== 8) throw new ImageError("E_DEVPATH_MALFORMED", "usage", `EUI-64 must be 8 bytes, got ${eui64.length}`);
  return { type: MESSAGING_DEVICE_PATH, subType: MSG_NVME_NAMESPACE_DP, data: Buffer.concat([u32(nsid), Buffer.from(eui64)]) };
}

function hd(partNumber: number, startLba: bigint | number, sizeLba: bigint | number, sig: Buffer, mbrType: number, sigType: number): DevNode {
  return { type: MEDIA_DEVICE_PATH, subType: MEDIA_HARDDRIVE_DP,
    data: Buffer.concat([u32(partNumber), u64(startLba), u64(sizeLba), sig, Buffer.from([mbrType, sigType])]) };
}

/** HARDDRIVE_DEVICE_PATH for a GPT partition: Signature = the partition's unique GUID. */
export function hdGpt(partNumber: number, startLba: bigint | number, sizeLba: bigint | number, partGuid: string): DevNode {
  return hd(partNumber, startLba, sizeLba, guidToBytes(partGuid), MBR_TYPE_EFI_PARTITION_TABLE_HEADER, SIGNATURE_TYPE_GUID);
}

/** HARDDRIVE_DEVICE_PATH for an MBR partition: Signature = the 32-bit disk signature at 0x1B8, zero padded. */
export function hdMbr(partNumber: number, startLba: bigint | number, sizeLba: bigint | number, mbrSignature: number): DevNode {
  const sig = Buffer.alloc(16);
  sig.writeUInt32LE(mbrSignature >>> 0, 0);
  return hd(partNumber, startLba, sizeLba, sig, MBR_TYPE_PCAT, SIGNATURE_TYPE_MBR);
}

/** FILEPATH_DEVICE_PATH: UTF-16LE path with its NUL. */
export function filePath(path: string): DevNode {
  return { type: MEDIA_DEVICE_PATH, subType: MEDIA_FILEPATH_DP, data: Buffer.from(path + "\0", "utf16le") };
}

/** VENDOR_DEVICE_PATH in the media type (e.g. LINUX_EFI_INITRD_MEDIA). */
export function vendorMedia(guid: string, data?: Buffer): DevNode {
  return vendorNode(MEDIA_DEVICE_PATH, MEDIA_VENDOR_DP, guid, data);
}

/** The whole-disk path of a disk on the Hyper-V synthetic SCSI controller (HYPERV.md; mu_msvm StorvscDxe
 *  ExtScsiPassThru.c BuildDevicePath makes the Scsi node with Pun = target id, Lun = lun). */
export function hyperVScsiDisk(o: { instanceGuid: string; target: number; lun: number }): DevNode[] {
  return [vmbusRoot(), vmbusChannel(GUID.HV_SCSI_CHANNEL_TYPE, o.instanceGuid), scsi(o.target, o.lun)];
}

// ---------------------------------------------------------------- helpers

export const appendNodes = (a: DevNode[], b: DevNode[]): DevNode[] => [...a, ...b];

const isFileNode = (n: DevNode) => n.type === MEDIA_DEVICE_PATH && n.subType === MEDIA_FILEPATH_DP;
const isHdNode = (n: DevNode) => n.type === MEDIA_DEVICE_PATH && n.subType === MEDIA_HARDDRIVE_DP && n.data.length >= HD_DATA_BYTES;

/**
 * The file name a path names, joining consecutive file path nodes as the EDK2 shell does
 * (EfiShellGetFilePathFromDevicePath: insert '\' only when neither side has one). Undefined without file nodes.
 */
export function filePathOf(nodes: DevNode[]): string | undefined {
  const { file } = splitAtMedia(nodes);
  if (!file.length) return undefined;
  let s = "";
  for (const n of file) {
    if (!isFileNode(n)) break;
    const p = filePathNodeText(n);
    if (s.length && !s.endsWith("\\") && !p.startsWith("\\")) s += "\\";
    s += p;
  }
  return s;
}

/** Split a path where its file path nodes start: `device` locates the file system, `file` names the file. */
export function splitAtMedia(nodes: DevNode[]): { device: DevNode[]; file: DevNode[] } {
  const i = nodes.findIndex(isFileNode);
  return i < 0 ? { device: nodes, file: [] } : { device: nodes.slice(0, i), file: nodes.slice(i) };
}

const nodeEqual = (a: DevNode, b: DevNode) => a.type === b.type && a.subType === b.subType && a.data.equals(b.data);

/** True when every node of `prefix` equals the node at the same place in `nodes`. */
export function isPrefixOf(prefix: DevNode[], nodes: DevNode[]): boolean {
  return prefix.length <= nodes.length && prefix.every((n, i) => nodeEqual(n, nodes[i]));
}

/**
 * EDK2 BmMatchPartitionDevicePathNode: an HD node matches when PartitionNumber, MBRType, SignatureType and all
 * 16 Signature bytes are equal (start and size are not compared, so a resized partition still matches).
 */
export function hdNodesMatch(a: DevNode, b: DevNode): boolean {
  if (!isHdNode(a) || !isHdNode(b)) return false;
  return a.data.readUInt32LE(0) === b.data.readUInt32LE(0) && a.data[36] === b.data[36] && a.data[37] === b.data[37]
    && a.data.subarray(20, 36).equals(b.data.subarray(20, 36));
}

/**
 * UEFI 2.10 3.1.2 short-form expansion. `path` starting with an HD node: the index of the first candidate
 * (full device paths of partition handles) containing a matching HD node (hdNodesMatch). `path` starting with a
 * file path node: the first candidate (file systems in boot order) for which `fileExists(index, name)` is true
 * (every candidate when no predicate is given). Anything else, or no match: -1.
 */
export function matchShortForm(path: DevNode[], candidates: DevNode[][],
                               fileExists?: (index: number, name: string) => boolean): number {
  if (!path.length) return -1;
  if (isHdNode(path[0])) return candidates.findIndex((c) => c.some((n) => hdNodesMatch(n, path[0])));
  if (isFileNode(path[0])) {
    const name = filePathOf(path) ?? "";
    return candidates.findIndex((_c, i) => fileExists ? fileExists(i, name) : true);
  }
  return -1;
}

/** The full path a short-form path expands to (candidate up to its matching HD node + the rest of `path`). */
export function expandShortForm(path: DevNode[], candidates: DevNode[][],
                                fileExists?: (index: number, name: string) => boolean): DevNode[] | undefined {
  const i = matchShortForm(path, candidates, fileExists);
  if (i < 0) return undefined;
  if (isFileNode(path[0])) return [...candidates[i], ...path];
  const at = candidates[i].findIndex((n) => hdNodesMatch(n, path[0]));
  return [...candidates[i].slice(0, at + 1), ...path.slice(1)];
}

/** The fields of an HD node, for reports and for the boot manager's partition lookup. */
export function hdInfo(n: DevNode): { partNumber: number; startLba: bigint; sizeLba: bigint; kind: "gpt" | "mbr" | "other"; signature: string } | undefined {
  if (!isHdNode(n)) return undefined;
  const d = n.data, sigType = d[37];
  const kind = sigType === SIGNATURE_TYPE_GUID ? "gpt" : sigType === SIGNATURE_TYPE_MBR ? "mbr" : "other";
  const signature = kind === "gpt" ? guidFromBytes(d, 20) : kind === "mbr" ? hex(d.readUInt32LE(20)) : hexBytes(d.subarray(20, 36));
  return { partNumber: d.readUInt32LE(0), startLba: d.readBigUInt64LE(4), sizeLba: d.readBigUInt64LE(12), kind, signature };
}
