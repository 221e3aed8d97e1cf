// SYSTEM and SOFTWARE hives written by the real hivexregedit with the keys Windows keeps (Select,
// ControlSet001\Services, CriticalDeviceDatabase, DriverDatabase, MountedDevices, Windows NT\CurrentVersion),
// read back into facts, and the boot-start storage drivers judged per Hyper-V/Azure controller.
import { beforeAll, describe, expect, it } from "vitest";
import * as path from "node:path";
import { hiveFromReg, regHex, tmpdir } from "./helpers.ts";
import { readWindowsSystem, readWindowsVersion, storageDriverReadiness } from "../images/windows-system.ts";

const STORVSC_CH = "{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}";
const expandSz = (s: string) => `hex(2):${regHex(Buffer.from(s + "\0", "utf16le"))}`;
const dword = (n: number) => `dword:${n.toString(16).padStart(8, "0")}`;

function service(name: string, start: number, extra: string[] = [], image = true): string[] {
  return [`[\\ControlSet001\\Services\\${name}]`, `"Start"=${dword(start)}`, `"Type"=${dword(1)}`, `"ErrorControl"=${dword(3)}`,
    ...(image ? [`"ImagePath"=${expandSz(`System32\\drivers\\${name}.sys`)}`] : []), ...extra, ""];
}

function systemReg(o: { storvsc?: number; current?: number; intelide?: number; badStart?: boolean } = {}): string[] {
  const mbrC = Buffer.alloc(12); mbrC.writeUInt32LE(0x9c3e5a71, 0); mbrC.writeBigUInt64LE(1048576n * 100n, 4);
  const gptD = Buffer.concat([Buffer.from("DMIO:ID:", "latin1"), Buffer.from("d4c3b2a1111122428333944455556666", "hex")]);
  return [
    "[\\Select]", `"Current"=${dword(o.current ?? 1)}`, `"Default"=${dword(1)}`, `"LastKnownGood"=${dword(2)}`, `"Failed"=${dword(0)}`, "",
    ...service("storvsc", o.storvsc ?? 0, ['"Group"="SCSI miniport"']),
    ...service("vmbus", 0, ['"Group"="System Bus Extender"']),
    ...service("storflt", 0),
    ...(o.badStart ? ["[\\ControlSet001\\Services\\atapi]", '"Start"=hex(4):00,00', ""] : service("atapi", 0, ['"Group"="SCSI miniport"'])),
    ...service("intelide", o.intelide ?? 0, [], false),
    ...service("pciide", 3),
    ...service("stornvme", 3),
    ...service("storahci", 0, []),
    "[\\ControlSet001\\Services\\storahci\\StartOverride]", `"0"=${dword(3)}`, "",
    ...service("disk", 0), ...service("partmgr", 0), ...service("volmgr", 0),
    `[\\ControlSet001\\Control\\CriticalDeviceDatabase\\vmbus#${STORVSC_CH}]`, '"Service"="storvsc"', '"ClassGUID"="{4D36E97B-E325-11CE-BFC1-08002BE10318}"', "",
    "[\\ControlSet001\\Control\\CriticalDeviceDatabase\\pci#ven_8086&dev_7111]", '"Service"="intelide"', "",
    `[\\DriverDatabase\\DeviceIds\\VMBUS\\${STORVSC_CH}]`, '"wstorvsc.inf"=hex:01,ff,00,00', "",
    "[\\DriverDatabase\\DeviceIds\\PCI\\VEN_8086&DEV_7111]", '"mshdc.inf"=hex:01,ff,00,00', "",
    "[\\MountedDevices]", `"\\\\DosDevices\\\\C:"=hex:${regHex(mbrC)}`, `"\\\\??\\\\Volume{0a1b2c3d-0000-11ef-8000-806e6f6e6963}"=hex:${regHex(gptD)}`,
    `"\\\\DosDevices\\\\D:"=hex:${regHex(Buffer.from("\\??\\IDE#CdRomMsft_Virtual_DVD-ROM\0", "utf16le"))}`, "",
  ];
}

let dir: string;
beforeAll(() => { dir = tmpdir("bootgate-winsys-"); });

describe("SYSTEM hive facts", () => {
  it("reads Select, the current control set's services, CDDB, DriverDatabase and MountedDevices", () => {
    const f = readWindowsSystem(hiveFromReg(path.join(dir, "SYSTEM"), systemReg()));
    expect(f.select).toEqual({ current: 1, default: 1, lastKnownGood: 2, failed: 0 });
    expect(f.controlSet).toBe("ControlSet001");
    expect(f.services.storvsc).toEqual({ name: "storvsc", present: true, start: 0, type: 1, errorControl: 3, group: "SCSI miniport", imagePath: "System32\\drivers\\storvsc.sys" });
    expect(f.services.storahci.startOverride).toEqual({ "0": 3 });
    expect(f.services.msahci).toEqual({ name: "msahci", present: false });
    expect(f.criticalDevices).toContainEqual({ id: `vmbus#${STORVSC_CH}`, service: "storvsc", classGuid: "{4D36E97B-E325-11CE-BFC1-08002BE10318}" });
    expect(f.driverDatabase.deviceIds).toEqual({ [`VMBUS\\${STORVSC_CH}`]: ["wstorvsc.inf"], "PCI\\VEN_8086&DEV_7111": ["mshdc.inf"] });
    expect(f.systemDrive).toEqual({ name: "\\DosDevices\\C:", kind: "mbr", mbrSignature: 0x9c3e5a71, partitionOffset: 104857600 });
    expect(f.mountedDevices.find((m) => m.kind === "gpt")!.partitionGuid).toBe("A1B2C3D4-1111-4222-8333-944455556666");
    expect(f.mountedDevices.find((m) => m.name === "\\DosDevices\\D:")!.text).toBe("\\??\\IDE#CdRomMsft_Virtual_DVD-ROM");
    expect(f.findings).toEqual([]);
  });

  it("Select\\Current naming a missing control set is a finding", () => {
    const f = readWindowsSystem(hiveFromReg(path.join(dir, "SYSTEM-cs"), systemReg({ current: 2 })));
    expect(f.controlSet).toBeUndefined();
    expect(f.findings.map((x) => x.code)).toEqual(["WINSYS_NO_CONTROLSET"]);
    expect(f.findings[0].message).toContain("ControlSet002 does not exist");
  });
});

describe("storageDriverReadiness", () => {
  it("storvsc Start=0: ready for Gen2 SCSI and Gen1 IDE, not for Azure NVMe (stornvme Start=3)", () => {
    const f = readWindowsSystem(hiveFromReg(path.join(dir, "SYSTEM-ok"), systemReg()), { driverFiles: ["storvsc.sys", "vmbus.sys", "storflt.sys", "disk.sys", "partmgr.sys", "volmgr.sys", "atapi.sys", "intelide.sys"] });
    const g2 = storageDriverReadiness(f, "gen2-scsi");
    expect(g2.ready).toBe(true);
    expect(g2.items.find((i) => i.service === "storvsc")).toMatchObject({ role: "required", start: 0, startName: "boot", bootStart: true, sysPathKnown: true, fileFound: true, ok: true });
    const g1 = storageDriverReadiness(f, "gen1-ide");
    expect(g1.ready).toBe(true);
    expect(g1.items.find((i) => i.service === "intelide")).toMatchObject({ sysPath: "System32\\drivers\\intelide.sys", sysPathKnown: false, ok: true });
    const nv = storageDriverReadiness(f, "azure-nvme");
    expect(nv.ready).toBe(false);
    expect(nv.items.find((i) => i.service === "stornvme")!.problem).toBe("stornvme Start=3 (demand), not 0 (boot)");
  });

  it("storvsc Start=3 fails Gen2 (the STOP 0x7B case) but not Gen1", () => {
    const f = readWindowsSystem(hiveFromReg(path.join(dir, "SYSTEM-3"), systemReg({ storvsc: 3 })));
    const g2 = storageDriverReadiness(f, "gen2-scsi");
    expect(g2.ready).toBe(false);
    expect(g2.items.filter((i) => !i.ok).map((i) => i.service)).toEqual(["storvsc", "vmstorfl"]);
    expect(storageDriverReadiness(f, "gen1-ide").ready).toBe(true);
  });

  it("Gen1 needs one of intelide/pciide boot-start; a missing .sys is reported", () => {
    const f = readWindowsSystem(hiveFromReg(path.join(dir, "SYSTEM-ide"), systemReg({ intelide: 3 })), { driverFiles: ["atapi.sys"] });
    const g1 = storageDriverReadiness(f, "gen1-ide");
    expect(g1.ready).toBe(false);
    expect(g1.items.find((i) => i.service === "disk")!.problem).toBe("System32\\drivers\\disk.sys is missing from System32\\drivers");
  });

  it("a Start value of the wrong size is 'no Start value', not a crash", () => {
    const f = readWindowsSystem(hiveFromReg(path.join(dir, "SYSTEM-bad"), systemReg({ badStart: true })));
    expect(f.services.atapi.present).toBe(true);
    expect(f.services.atapi.start).toBeUndefined();
    expect(storageDriverReadiness(f, "gen1-ide").items.find((i) => i.service === "atapi")!.problem).toBe("atapi has no Start value");
  });
});

describe("SOFTWARE hive", () => {
  it("reads product name, build and edition", () => {
    const h = hiveFromReg(path.join(dir, "SOFTWARE"), [
      "[\\Microsoft\\Windows NT\\CurrentVersion]", '"ProductName"="Windows Server 2019 Datacenter"', '"EditionID"="ServerDatacenter"',
      '"InstallationType"="Server"', '"CurrentVersion"="6.3"', '"CurrentBuild"="17763"', '"CurrentBuildNumber"="17763"',
      `"UBR"=${dword(5329)}`, `"CurrentMajorVersionNumber"=${dword(10)}`, `"CurrentMinorVersionNumber"=${dword(0)}`, "",
    ]);
    expect(readWindowsVersion(h)).toEqual({
      productName: "Windows Server 2019 Datacenter", editionId: "ServerDatacenter", installationType: "Server", currentVersion: "6.3",
      currentBuild: "17763", currentBuildNumber: "17763", ubr: 5329, majorVersion: 10, minorVersion: 0,
    });
  });
});
