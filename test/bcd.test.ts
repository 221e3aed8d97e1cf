// BCD stores written by the real hivexregedit (the same keys and element types bcdedit creates; the
// device element bytes follow the BL_DEVICE_DESCRIPTOR layout), matched against disks partitioned by
// the real sfdisk (MBR label-id) and sgdisk (GPT disk/partition GUIDs).
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { hiveFromReg, regHex, sh, tmpdir, rawDisk } from "./helpers.ts";
import { guidBytes, partitionElement } from "./bcd-build.ts";
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource } from "../images/source.ts";
import { readLayout, type Layout } from "../images/layout.ts";
import { BOOTMGR_GUID, decodeBcdDevice, matchBcdToDisk, readBcd } from "../images/bcd.ts";
import { ImageError } from "../images/errors.ts";

const bootElement = () => { const b = Buffer.alloc(0x48); b.writeUInt32LE(5, 0x10); b.writeUInt32LE(0x38, 0x18); return b; };

const OS = "{4c2a6f8e-1b3d-11ef-9a5b-00155d012345}";
function bcdReg(sys: Buffer, os: Buffer, opts: { defaultGuid?: string; winload?: string } = {}): string[] {
  const el = (obj: string, type: string, data: string) => [`[\\Objects\\${obj}\\Elements\\${type}]`, `"Element"=${data}`, ""];
  const sz = (s: string) => JSON.stringify(s);
  return [
    "[\\Description]", '"KeyName"="BCD00000000"', "",
    `[\\Objects\\${BOOTMGR_GUID}\\Description]`, '"Type"=dword:10100002', "",
    ...el(BOOTMGR_GUID, "11000001", `hex:${regHex(sys)}`),
    ...el(BOOTMGR_GUID, "12000004", sz("Windows Boot Manager")),
    ...(opts.defaultGuid === "" ? [] : el(BOOTMGR_GUID, "23000003", sz(opts.defaultGuid ?? OS))),
    ...el(BOOTMGR_GUID, "24000001", `hex(7):${regHex(Buffer.from(`${OS}\0\0`, "utf16le"))}`),
    ...el(BOOTMGR_GUID, "25000004", "hex:1e,00,00,00,00,00,00,00"),
    `[\\Objects\\${OS}\\Description]`, '"Type"=dword:10200003', "",
    ...el(OS, "11000001", `hex:${regHex(os)}`),
    ...el(OS, "12000002", sz(opts.winload ?? "\\Windows\\system32\\winload.exe")),
    ...el(OS, "12000004", sz("Windows Server 2019")),
    ...el(OS, "21000001", `hex:${regHex(os)}`),
    ...el(OS, "22000002", sz("\\Windows")),
  ];
}

const SIG = 0x9c3e5a71;
const DISK_GUID = "6F1D2C3B-4A59-4E8D-9C7B-1A2B3C4D5E6F";
const ESP = "A1B2C3D4-1111-4222-8333-944455556666";
const WINP = "B1B2C3D4-1111-4222-8333-944455556666";
let dir: string;
let mbrLayout: Layout;
let gptLayout: Layout;

beforeAll(() => {
  dir = tmpdir("bootgate-bcd-");
  const mbr = path.join(dir, "mbr.img");
  fs.writeFileSync(mbr, ""); fs.truncateSync(mbr, 16 * 2 ** 20);
  sh("sfdisk", ["-q", mbr], { input: `label: dos\nlabel-id: 0x${SIG.toString(16)}\nstart=2048, size=4096, type=7, bootable\nstart=6144, type=7\n` });
  mbrLayout = readLayout(rawDisk(mbr));
  const gpt = path.join(dir, "gpt.img");
  fs.writeFileSync(gpt, ""); fs.truncateSync(gpt, 16 * 2 ** 20);
  sh("sgdisk", ["-U", DISK_GUID, "-n", "1:2048:+2M", "-t", "1:ef00", "-u", `1:${ESP}`, "-n", "2:0:+8M", "-t", "2:0700", "-u", `2:${WINP}`, gpt]);
  gptLayout = readLayout(rawDisk(gpt));
});

describe("BCD stores made with hivexregedit", () => {
  it("MBR: bootmgr on System Reserved, winload on C:, both match the disk", () => {
    const h = hiveFromReg(path.join(dir, "BCD-mbr"), bcdReg(partitionElement({ mbr: SIG, offset: 2048 * 512 }), partitionElement({ mbr: SIG, offset: 6144 * 512 })));
    const s = readBcd(h);
    expect(s.bootmgr).toMatchObject({ defaultGuid: OS, displayOrder: [OS], timeout: 30 });
    expect(s.defaultLoader).toMatchObject({ guid: OS, objectType: 0x10200003, path: "\\Windows\\system32\\winload.exe", systemRoot: "\\Windows", description: "Windows Server 2019" });
    expect(s.defaultLoader!.osDevice).toEqual({ type: "partition", scheme: "mbr", mbrSignature: SIG, partitionOffset: 6144 * 512 });
    const m = matchBcdToDisk(s, mbrLayout);
    expect(m.map((x) => [x.element, x.matches, x.partitionIndex])).toEqual([["device", true, 1], ["device", true, 2], ["osdevice", true, 2]]);
    expect(s.findings).toEqual([]);
  });

  it("a BCD pointing at another disk signature fails with the signatures in the reason", () => {
    const h = hiveFromReg(path.join(dir, "BCD-stale"), bcdReg(bootElement(), partitionElement({ mbr: 0x12345678, offset: 6144 * 512 })));
    const s = readBcd(h);
    const m = matchBcdToDisk(s, mbrLayout);
    expect(m[0]).toMatchObject({ element: "device", device: { type: "boot" } });
    expect(m[0].matches).toBeUndefined();
    expect(m[2]).toMatchObject({ element: "osdevice", matches: false });
    expect(m[2].reason).toBe(`the disk's MBR signature (LBA 0 offset 0x1B8) is 0x9c3e5a71, not 0x12345678`);
    const f = s.findings.filter((x) => x.code === "BCD_DEVICE_MISMATCH");
    expect(f).toHaveLength(2);
    expect(f[1].remedy).toContain("bcdedit /set {default} osdevice partition=C:");
  });

  it("a right signature with a wrong partition offset is reported", () => {
    const s = readBcd(hiveFromReg(path.join(dir, "BCD-off"), bcdReg(bootElement(), partitionElement({ mbr: SIG, offset: 206848 * 512 }))));
    const m = matchBcdToDisk(s, mbrLayout);
    expect(m[2].reason).toContain("no partition starts at byte offset 105906176 (LBA 206848)");
  });

  it("GPT: disk and partition GUIDs match; an MBR-style element on a GPT disk does not", () => {
    const good = readBcd(hiveFromReg(path.join(dir, "BCD-gpt"), bcdReg(partitionElement({ disk: DISK_GUID, part: ESP }), partitionElement({ disk: DISK_GUID, part: WINP }), { winload: "\\Windows\\system32\\winload.efi" })));
    expect(good.defaultLoader!.device).toEqual({ type: "partition", scheme: "gpt", diskGuid: DISK_GUID, partitionGuid: WINP });
    expect(matchBcdToDisk(good, gptLayout).map((x) => x.partitionIndex)).toEqual([1, 2, 2]);
    const bad = readBcd(hiveFromReg(path.join(dir, "BCD-gpt-bad"), bcdReg(partitionElement({ disk: DISK_GUID, part: ESP }), partitionElement({ disk: "00000000-0000-0000-0000-000000000001", part: WINP }))));
    expect(matchBcdToDisk(bad, gptLayout)[1].reason).toContain(`the disk's GPT disk GUID is ${DISK_GUID}`);
    expect(matchBcdToDisk(good, mbrLayout)[1].reason).toBe("the disk has no GPT, the element names a GPT disk");
  });

  it("a store without default, or whose default names no object, gets BCD_NO_DEFAULT", () => {
    const none = readBcd(hiveFromReg(path.join(dir, "BCD-nodef"), bcdReg(bootElement(), bootElement(), { defaultGuid: "" })));
    expect(none.findings.map((f) => f.code)).toEqual(["BCD_NO_DEFAULT"]);
    const gone = readBcd(hiveFromReg(path.join(dir, "BCD-gone"), bcdReg(bootElement(), bootElement(), { defaultGuid: "{00000000-1111-2222-3333-444444444444}" })));
    expect(gone.findings[0].message).toContain("names no object");
  });
});

describe("hostile BCD elements", () => {
  it("refuses a device element of wrong size without throwing from readBcd", () => {
    const short = partitionElement({ mbr: SIG, offset: 1048576 }).subarray(0, 0x30);
    const s = readBcd(hiveFromReg(path.join(dir, "BCD-short"), bcdReg(bootElement(), short)));
    expect(s.defaultLoader!.osDevice).toBeUndefined();
    expect(s.findings.filter((f) => f.code === "BCD_ELEMENT_BAD").map((f) => f.message)[0]).toContain("descriptor says 72 bytes, the element holds 32");
  });

  it("decodeBcdDevice throws ImageError for truncated headers, huge sizes and unknown partition styles", () => {
    const codes = [Buffer.alloc(8), (() => { const b = partitionElement({ mbr: 1, offset: 0 }); b.writeUInt32LE(0xffffffff, 0x18); return b; })(),
      (() => { const b = partitionElement({ mbr: 1, offset: 0 }); b.writeUInt32LE(7, 0x34); return b; })(),
      (() => { const b = partitionElement({ mbr: 1, offset: 0 }); b.writeUInt32LE(0x20, 0x18); return b; })()]
      .map((b) => { try { decodeBcdDevice(b); return "no error"; } catch (e) { return e instanceof ImageError ? e.code : String(e); } });
    expect(codes).toEqual(["E_BCD_DEVICE", "E_BCD_DEVICE", "E_BCD_DEVICE", "E_BCD_DEVICE"]);
  });

  it("a hive that is not a BCD store says so", () => {
    const s = readBcd(hiveFromReg(path.join(dir, "NOTBCD"), ["[\\Select]", '"Current"=dword:00000001', ""]));
    expect(s.findings[0].message).toContain("no Objects key");
  });
});
