// EFI_GUID byte order against GUIDs compiled into Debian's signed shim and GRUB; device path parsing, building
// and EDK2 text forms (format strings of DevicePathToText.c); short-form HD matching against partitions made by
// sgdisk and sfdisk; hostile device paths refused with E_DEVPATH_MALFORMED.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { ImageError } from "../images/errors.ts";
import { GUID, guidFromBytes, guidName, guidToBytes } from "../firmware-stubs/uefi-guid.ts";
import {
  appendNodes, devicePathSize, devicePathToText, expandShortForm, filePath, filePathOf, hdGpt, hdInfo, hdMbr,
  hyperVScsiDisk, isPrefixOf, matchShortForm, nvme, parseDevicePath, scsi, serializeDevicePath, splitAtMedia,
  vendorMedia, vmbusChannel, vmbusRoot, type DevNode,
} from "../firmware-stubs/uefi-devpath.ts";
import { sh, tmpdir } from "./helpers.ts";

const SHIM = "/usr/lib/shim/shimx64.efi.signed";
const GRUB = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
const SCSI_INSTANCE = "f8b3781a-1e82-4818-a1c3-63d806ec15bb";

function malformed(fn: () => unknown): string {
  try { fn(); } catch (e) {
    if (e instanceof ImageError) return `${e.code}/${e.kind}`;
    throw e;
  }
  return "no error";
}
const node = (type: number, subType: number, hexData = ""): DevNode => ({ type, subType, data: Buffer.from(hexData, "hex") });

describe("EFI_GUID", () => {
  it("uses the mixed-endian layout of UEFI Appendix A", () => {
    expect(guidToBytes(GUID.EFI_GLOBAL_VARIABLE).toString("hex")).toBe("61dfe48bca93d211aa0d00e098032b8c");
    expect(guidFromBytes(Buffer.from("00" + "61dfe48bca93d211aa0d00e098032b8c", "hex"), 1)).toBe(GUID.EFI_GLOBAL_VARIABLE);
    expect(guidFromBytes(guidToBytes("{9B17E5A2-0891-42DD-B653-80B5C22809BA}"))).toBe(GUID.HV_VMBUS);
    expect(guidName("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")).toBe("EFI_GLOBAL_VARIABLE");
    expect(guidName("00000000-0000-0000-0000-000000000001")).toBeUndefined();
    expect(malformed(() => guidToBytes("8be4df61-93ca-11d2-aa0d"))).toBe("E_GUID_TEXT/usage");
    expect(malformed(() => guidFromBytes(Buffer.alloc(15)))).toBe("E_GUID_TRUNCATED/truncated");
  });

  it("matches the GUID bytes compiled into Debian's signed shim and GRUB", () => {
    const bins = Buffer.concat([fs.readFileSync(SHIM), fs.readFileSync(GRUB)]);
    const expected: (keyof typeof GUID)[] = [
      "EFI_GLOBAL_VARIABLE", "IMAGE_SECURITY_DATABASE", "SHIM_LOCK", "SHIM_IMAGE_LOADER", "EFI_CERT_X509",
      "EFI_CERT_SHA256", "EFI_CERT_PKCS7", "LOADED_IMAGE", "LOADED_IMAGE_DEVICE_PATH", "DEVICE_PATH",
      "DEVICE_PATH_TO_TEXT", "DEVICE_PATH_UTILITIES", "BLOCK_IO", "BLOCK_IO2", "DISK_IO", "DISK_IO2",
      "SIMPLE_FILE_SYSTEM", "FILE_INFO", "FILE_SYSTEM_INFO", "FILE_SYSTEM_VOLUME_LABEL", "LOAD_FILE", "LOAD_FILE2",
      "PCI_IO", "UNICODE_COLLATION", "SIMPLE_TEXT_INPUT", "SIMPLE_TEXT_INPUT_EX", "SIMPLE_TEXT_OUTPUT",
      "GRAPHICS_OUTPUT", "CONSOLE_CONTROL", "TCG", "TCG2", "SECURITY_ARCH", "SECURITY2_ARCH", "MEMORY_ATTRIBUTE",
      "HII_DATABASE", "HII_STRING", "HII_FONT", "HII_IMAGE", "HII_CONFIG_ROUTING", "ACPI_20_TABLE", "ACPI_TABLE",
      "SMBIOS_TABLE", "SMBIOS3_TABLE", "RT_PROPERTIES_TABLE", "SYSTEM_RESOURCE_TABLE", "FDT_TABLE",
      "LINUX_EFI_MOK_VARIABLE_TABLE",
    ];
    const missing = expected.filter((k) => !bins.includes(guidToBytes(GUID[k])));
    expect(missing).toEqual([]);
  });
});

describe("Hyper-V device paths", () => {
  it("builds the VMBus root node byte for byte as mu_msvm's gVmbusRootNode", () => {
    const bytes = serializeDevicePath([vmbusRoot()]);
    // ACPI_DEVICE_PATH/ACPI_EXTENDED_DP, length 24; HID, UID, CID = 0; "VMBus\0" "\0" "\0"; End Entire.
    expect(bytes.toString("hex")).toBe("0202" + "1800" + "00".repeat(12) + "564d42757300" + "0000" + "7fff0400");
  });

  it("prints the SCSI disk path as EDK2 does, long and display-only", () => {
    const nodes = hyperVScsiDisk({ instanceGuid: SCSI_INSTANCE, target: 0, lun: 2 });
    const ven = "9b17e5a2-0891-42dd-b653-80b5c22809ba," + guidToBytes(GUID.HV_SCSI_CHANNEL_TYPE).toString("hex")
      + guidToBytes(SCSI_INSTANCE).toString("hex");
    expect(ven).toContain("d96361baa104294db60572e2ffb1dc7f");
    expect(devicePathToText(nodes)).toBe(`AcpiEx(@@@0000,@@@0000,0x0,VMBus,,)/VenHw(${ven})/Scsi(0x0,0x2)`);
    expect(devicePathToText(nodes, { displayOnly: true })).toBe(`AcpiEx(VMBus,,)/VenHw(${ven})/Scsi(0x0,0x2)`);
    expect(nodes[1]).toEqual(vmbusChannel(GUID.HV_SCSI_CHANNEL_TYPE, SCSI_INSTANCE));
    expect(nodes[1].data.length).toBe(48);   // VENDOR_DEVICE_PATH GUID + InterfaceType + InterfaceInstance
    expect(nodes[2].data.toString("hex")).toBe("00000200");
  });
});

describe("EDK2 text forms", () => {
  it("prints each node type with DevicePathToText.c's format strings", () => {
    const cases: [DevNode, string][] = [
      [node(2, 1, "d041030a" + "00000000"), "PciRoot(0x0)"],
      [node(2, 1, "d041080a" + "01000000"), "PcieRoot(0x1)"],
      [node(2, 1, "d0410105" + "00000000"), "Serial(0x0)"],
      [node(2, 1, "d0410c0c" + "02000000"), "Acpi(PNP0c0c,0x2)"],
      [node(2, 1, "78563412" + "03000000"), "Acpi(0x12345678,0x3)"],
      [node(1, 1, "0207"), "Pci(0x7,0x2)"],
      [node(1, 3, "0b000000" + "0000100000000000" + "ffff1f0000000000"), "MemoryMapped(0xb,0x100000,0x1fffff)"],
      [node(3, 0x12, "0100" + "ffff" + "0000"), "Sata(0x1,0xffff,0x0)"],
      [nvme(1, Buffer.from("0011223344556677", "hex")), "NVMe(0x1,77-66-55-44-33-22-11-00)"],
      [node(3, 0x0b, "00155d010203" + "00".repeat(26) + "01"), "MAC(00155d010203,0x1)"],
      [node(3, 0x18, Buffer.from("http://192.0.2.1/boot.efi").toString("hex")), "Uri(http://192.0.2.1/boot.efi)"],
      [node(4, 2, "01000000" + "1000000000000000" + "0020000000000000"), "CDROM(0x1,0x10,0x2000)"],
      [node(4, 8, "00000000" + "0002000000000000" + "ff03000000000000"), "Offset(0x200,0x3ff)"],
      [vendorMedia(GUID.LINUX_EFI_INITRD_MEDIA), "VenMedia(5568e427-68fc-4f3d-ac74-ca555231cc68)"],
      [filePath("\\EFI\\BOOT\\BOOTX64.EFI"), "\\EFI\\BOOT\\BOOTX64.EFI"],
      [node(3, 0x7e, "abcd"), "Msg(126,abcd)"],
      [node(0x42, 9, "01"), "Path(66,9,01)"],
      [node(3, 2, "00"), "Msg(2,00)"],   // a Scsi node too short for its fields falls back to the generic form
    ];
    for (const [n, text] of cases) expect(devicePathToText([n])).toBe(text);
  });

  it("prints End Instance as ',' with EDK2's '/' after it", () => {
    const p = [node(2, 1, "d041030a00000000"), node(0x7f, 1), node(2, 1, "d041030a01000000")];
    expect(devicePathToText(p)).toBe("PciRoot(0x0),/PciRoot(0x1)");
    expect(parseDevicePath(serializeDevicePath(p))).toEqual(p);
  });
});

describe("short-form HD paths on real partition tables", () => {
  let dir: string;
  beforeAll(() => { dir = tmpdir("bootgate-devpath-"); });

  /** sgdisk -i output: unique GUID, first sector and size of partition n. */
  function sgdiskInfo(img: string, n: number): { guid: string; start: number; size: number } {
    const out = sh("sgdisk", ["-i", String(n), img]);
    const g = /Partition unique GUID: ([0-9A-F-]{36})/.exec(out), f = /First sector: (\d+)/.exec(out), s = /Partition size: (\d+) sectors/.exec(out);
    if (!g || !f || !s) throw new Error(`unexpected sgdisk -i output:\n${out}`);
    return { guid: g[1], start: Number(f[1]), size: Number(s[1]) };
  }

  it("finds the partition a Boot#### HD(...) names on a disk with two GPT partitions", () => {
    const img = path.join(dir, "gpt.img");
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, 64 * 2 ** 20);
    sh("sgdisk", ["-n", "1:2048:+16M", "-t", "1:ef00", "-n", "2:0:0", "-t", "2:8300", img]);
    const p1 = sgdiskInfo(img, 1), p2 = sgdiskInfo(img, 2);
    const disk = hyperVScsiDisk({ instanceGuid: SCSI_INSTANCE, target: 0, lun: 0 });
    const hd1 = hdGpt(1, p1.start, p1.size, p1.guid), hd2 = hdGpt(2, p2.start, p2.size, p2.guid);
    // EDK2: L"HD(%d,%s,%g" then L",0x%lx,0x%lx)" — %g prints the GUID in lower case.
    expect(devicePathToText([hd1])).toBe(`HD(1,GPT,${p1.guid.toLowerCase()},0x800,0x8000)`);
    expect(devicePathToText([hd2], { displayOnly: true })).toBe(`HD(2,GPT,${p2.guid.toLowerCase()})`);
    expect(hdInfo(hd2)).toEqual({ partNumber: 2, startLba: BigInt(p2.start), sizeLba: BigInt(p2.size), kind: "gpt", signature: p2.guid.toLowerCase() });

    const candidates = [disk, appendNodes(disk, [hd1]), appendNodes(disk, [hd2])];
    const boot = [hdGpt(2, p2.start, p2.size, p2.guid), filePath("\\EFI\\debian\\shimx64.efi")];
    expect(matchShortForm(boot, candidates)).toBe(2);
    expect(matchShortForm([hd1, filePath("\\x")], candidates)).toBe(1);
    expect(devicePathToText(expandShortForm(boot, candidates)!)).toBe(
      devicePathToText(disk) + `/HD(2,GPT,${p2.guid.toLowerCase()},${"0x" + p2.start.toString(16)},${"0x" + p2.size.toString(16)})/\\EFI\\debian\\shimx64.efi`);
    // EDK2 compares number, MBR type, signature type and signature — not start or size.
    expect(matchShortForm([hdGpt(2, 1, 1, p2.guid)], candidates)).toBe(2);
    expect(matchShortForm([hdGpt(1, p2.start, p2.size, p2.guid)], candidates)).toBe(-1);
    expect(matchShortForm([hdGpt(2, p2.start, p2.size, "11111111-2222-3333-4444-555555555555")], candidates)).toBe(-1);
    // A file-path short form: the first file system holding the file.
    expect(matchShortForm([filePath("\\EFI\\BOOT\\BOOTX64.EFI")], candidates, (i, name) => i === 2 && name === "\\EFI\\BOOT\\BOOTX64.EFI")).toBe(2);
    expect(matchShortForm([scsi(0, 0)], candidates)).toBe(-1);
  });

  it("matches MBR partitions by disk signature and partition number (sfdisk label-id)", () => {
    const img = path.join(dir, "mbr.img");
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, 32 * 2 ** 20);
    sh("sfdisk", [img], { input: "label: dos\nlabel-id: 0x5eed1234\n2048,16384,ef\n,,83\n" });
    const dump = JSON.parse(sh("sfdisk", ["--json", img])).partitiontable;
    const sig = parseInt(dump.id, 16), [a, b] = dump.partitions as { start: number; size: number }[];
    const hd1 = hdMbr(1, a.start, a.size, sig), hd2 = hdMbr(2, b.start, b.size, sig);
    expect(devicePathToText([hd1])).toBe("HD(1,MBR,0x5eed1234,0x800,0x4000)");
    expect(hd1.data.subarray(20, 36).toString("hex")).toBe("3412ed5e" + "00".repeat(12));
    const disk = hyperVScsiDisk({ instanceGuid: SCSI_INSTANCE, target: 0, lun: 0 });
    const cands = [appendNodes(disk, [hd1]), appendNodes(disk, [hd2])];
    expect(matchShortForm([hdMbr(2, b.start, b.size, sig)], cands)).toBe(1);
    expect(matchShortForm([hdMbr(2, b.start, b.size, sig + 1)], cands)).toBe(-1);
    expect(matchShortForm([hdGpt(1, a.start, a.size, "00000000-0000-0000-0000-000000000000")], cands)).toBe(-1);
  });
});

describe("device path helpers", () => {
  it("round-trips, sizes, splits and joins file path nodes as the EDK2 shell does", () => {
    const disk = hyperVScsiDisk({ instanceGuid: SCSI_INSTANCE, target: 0, lun: 0 });
    const full = [...disk, hdGpt(1, 2048, 32768, SCSI_INSTANCE), filePath("\\EFI"), filePath("debian\\grubx64.efi")];
    const bytes = serializeDevicePath(full);
    expect(bytes.length).toBe(devicePathSize(full));
    expect(devicePathSize(full)).toBe(24 + 52 + 8 + 42 + (4 + 10) + (4 + 38) + 4);
    expect(parseDevicePath(bytes)).toEqual(full);
    expect(filePathOf(full)).toBe("\\EFI\\debian\\grubx64.efi");
    expect(filePathOf([filePath("\\EFI\\"), filePath("\\BOOT\\x.efi")])).toBe("\\EFI\\\\BOOT\\x.efi");
    expect(filePathOf(disk)).toBeUndefined();
    const { device, file } = splitAtMedia(full);
    expect(device.length).toBe(4);
    expect(file.length).toBe(2);
    expect(isPrefixOf(disk, full)).toBe(true);
    expect(isPrefixOf(hyperVScsiDisk({ instanceGuid: SCSI_INSTANCE, target: 0, lun: 1 }), full)).toBe(false);
    // Trailing bytes after End Entire are not part of the path.
    expect(parseDevicePath(Buffer.concat([bytes, Buffer.from("ffff", "hex")]))).toEqual(full);
  });
});

describe("hostile device paths", () => {
  const end = "7fff0400";
  it("refuses a node whose length is 0", () => {
    expect(malformed(() => parseDevicePath(Buffer.from("04040000" + end, "hex")))).toBe("E_DEVPATH_MALFORMED/corrupt");
  });
  it("refuses a node whose length is 3", () => {
    expect(malformed(() => parseDevicePath(Buffer.from("03020300" + end, "hex")))).toBe("E_DEVPATH_MALFORMED/corrupt");
  });
  it("refuses a node longer than the buffer", () => {
    expect(malformed(() => parseDevicePath(Buffer.from("0302ff00000000" + end, "hex")))).toBe("E_DEVPATH_MALFORMED/truncated");
  });
  it("refuses a path that ends without an End node", () => {
    expect(malformed(() => parseDevicePath(Buffer.from("0302080000000000", "hex")))).toBe("E_DEVPATH_MALFORMED/truncated");
    expect(malformed(() => parseDevicePath(Buffer.from("0302", "hex")))).toBe("E_DEVPATH_MALFORMED/truncated");
  });
  it("refuses 10k nodes", () => {
    const buf = Buffer.concat([Buffer.from("0302080000000000".repeat(10_000), "hex"), Buffer.from(end, "hex")]);
    expect(malformed(() => parseDevicePath(buf, buf.length))).toBe("E_DEVPATH_MALFORMED/limit");
    expect(malformed(() => parseDevicePath(buf))).toBe("E_DEVPATH_MALFORMED/limit");   // 4096-byte default bound
  });
  it("refuses an End node beyond maxBytes and an End Entire node of length 8", () => {
    const p = serializeDevicePath([scsi(0, 0), scsi(0, 1)]);
    expect(parseDevicePath(p, p.length).length).toBe(2);
    expect(malformed(() => parseDevicePath(p, p.length - 1))).toBe("E_DEVPATH_MALFORMED/limit");
    expect(malformed(() => parseDevicePath(Buffer.from("7fff080000000000", "hex")))).toBe("E_DEVPATH_MALFORMED/corrupt");
  });
  it("refuses a file path node that is not NUL-terminated", () => {
    expect(malformed(() => parseDevicePath(Buffer.from("0404080041004200" + end, "hex")))).toBe("E_DEVPATH_MALFORMED/corrupt");
  });
});
