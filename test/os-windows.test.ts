// The Windows OS stage on Windows-like disks built by real tools: NTFS volumes from mkntfs populated through
// libntfs-3g (SYSTEM/SOFTWARE hives and the BCD written by hivexregedit, dummy driver files), MBR disks from
// sfdisk with an active NTFS partition, GPT disks from sgdisk with an ESP made by mkfs.fat + mtools.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { hiveFromReg, prng, regHex, sh, tmpdir } from "./helpers.ts";
import { guidBytes, partitionElement } from "./bcd-build.ts";
import { NtfsWriter } from "./ntfs-writer.ts";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import { PartitionView, resolvePath } from "../images/fs.ts";
import { openNtfs } from "../images/ntfs.ts";
import { BOOTMGR_GUID } from "../images/bcd.ts";
import { GPT_TYPE_ESP } from "../images/gpt.ts";
import { evaluateWindows, type PrebootEvidence } from "../emu/os-windows.ts";
import { runGen1 } from "../emu/gen1.ts";
import { checkImage } from "../emu/check.ts";

const SIG = 0x5eed0b07, OLD_SIG = 0x0badd15c;
const DISK_GUID = "6F1D2C3B-4A59-4E8D-9C7B-1A2B3C4D5E6F";
const ESP_GUID = "A1B2C3D4-1111-4222-8333-944455556666";
const WIN_GUID = "B1B2C3D4-1111-4222-8333-944455556666";
const OS = "{4c2a6f8e-1b3d-11ef-9a5b-00155d012345}";
const MIB = 2 ** 20, NTFS_MIB = 24, ESP_MIB = 16;
const DRIVERS = ["storvsc", "vmbus", "storflt", "vmstorfl", "atapi", "intelide", "pciide", "pciidex", "ataport", "disk", "partmgr", "volmgr"];

// ---- hives (hivexregedit) ----
const dword = (n: number) => `dword:${n.toString(16).padStart(8, "0")}`;
const expandSz = (s: string) => `hex(2):${regHex(Buffer.from(s + "\0", "utf16le"))}`;

function systemReg(start: Record<string, number> = {}, mounted?: { sig: number; offset: number }): string[] {
  const lines = ["[\\Select]", `"Current"=${dword(1)}`, `"Default"=${dword(1)}`, `"LastKnownGood"=${dword(1)}`, ""];
  for (const d of DRIVERS) {
    lines.push(`[\\ControlSet001\\Services\\${d}]`, `"Start"=${dword(start[d] ?? (d === "pciide" ? 3 : 0))}`, `"Type"=${dword(1)}`,
      `"ImagePath"=${expandSz(`System32\\drivers\\${d}.sys`)}`, "");
  }
  if (mounted) {
    const c = Buffer.alloc(12); c.writeUInt32LE(mounted.sig, 0); c.writeBigUInt64LE(BigInt(mounted.offset), 4);
    lines.push("[\\MountedDevices]", `"\\\\DosDevices\\\\C:"=hex:${regHex(c)}`, "");
  }
  return lines;
}

const softwareReg = (product: string, build: string) => ["[\\Microsoft\\Windows NT\\CurrentVersion]", `"ProductName"=${JSON.stringify(product)}`,
  `"CurrentBuildNumber"=${JSON.stringify(build)}`, `"CurrentBuild"=${JSON.stringify(build)}`, '"CurrentVersion"="6.3"', ""];

function bcdReg(bootmgrDev: Buffer, osDev: Buffer, winload: string): string[] {
  const el = (obj: string, type: string, data: string) => [`[\\Objects\\${obj}\\Elements\\${type}]`, `"Element"=${data}`, ""];
  return [
    "[\\Description]", '"KeyName"="BCD00000000"', "",
    `[\\Objects\\${BOOTMGR_GUID}\\Description]`, '"Type"=dword:10100002', "",
    ...el(BOOTMGR_GUID, "11000001", `hex:${regHex(bootmgrDev)}`),
    ...el(BOOTMGR_GUID, "23000003", JSON.stringify(OS)),
    `[\\Objects\\${OS}\\Description]`, '"Type"=dword:10200003', "",
    ...el(OS, "11000001", `hex:${regHex(osDev)}`),
    ...el(OS, "12000002", JSON.stringify(winload)),
    ...el(OS, "12000004", '"Windows Server"'),
    ...el(OS, "21000001", `hex:${regHex(osDev)}`),
    ...el(OS, "22000002", '"\\\\Windows"'),
  ];
}

// ---- disks ----
interface WinDisk { system?: Buffer; software: Buffer; bcd: Buffer }
let dir: string;
const hives: Record<string, Buffer> = {};

function ntfsVolume(file: string, startLba: number, d: WinDisk, withBootFiles: boolean): void {
  sh("truncate", ["-s", `${NTFS_MIB}M`, file]);
  sh("mkntfs", ["-F", "-f", "-Q", "-L", "Windows", "-p", String(startLba), "-H", "255", "-S", "63", file]);
  const w = new NtfsWriter(file);
  try {
    for (const p of ["/Windows", "/Windows/System32", "/Windows/System32/config", "/Windows/System32/drivers"]) w.mkdir(p);
    if (d.system) w.write("/Windows/System32/config/SYSTEM", [[0, d.system]]);
    w.write("/Windows/System32/config/SOFTWARE", [[0, d.software]]);
    for (const drv of DRIVERS) w.write(`/Windows/System32/drivers/${drv}.sys`, [[0, Buffer.from(`dummy ${drv}.sys for the bootgate tests: content irrelevant\n`)]]);
    w.write("/Windows/System32/winload.exe", [[0, Buffer.from("dummy winload.exe: content irrelevant\n")]]);
    w.write("/Windows/System32/winload.efi", [[0, Buffer.from("dummy winload.efi: content irrelevant\n")]]);
    if (withBootFiles) {
      w.write("/bootmgr", [[0, prng(11, 16 * 1024)]]);             // non-resident: its clusters can be matched with a read log
      w.mkdir("/Boot");
      w.write("/Boot/BCD", [[0, d.bcd]]);
    }
  } finally { w.close(); }
}

/** An MBR disk (label-id SIG) whose only partition, active, is the Windows NTFS volume with \bootmgr and \Boot\BCD. */
function mbrDisk(name: string, d: WinDisk): string {
  const vol = path.join(dir, `${name}.ntfs`), disk = path.join(dir, `${name}.img`);
  ntfsVolume(vol, 2048, d, true);
  sh("truncate", ["-s", `${NTFS_MIB + 2}M`, disk]);
  sh("sfdisk", ["-q", disk], { input: `label: dos\nlabel-id: 0x${SIG.toString(16)}\nstart=2048, size=${NTFS_MIB * 2048}, type=7, bootable\n` });
  sh("dd", [`if=${vol}`, `of=${disk}`, "bs=1M", "seek=1", "conv=notrunc", "status=none"]);
  return disk;
}

/** The ESP (FAT16 by mkfs.fat, files by mtools) holding \EFI\Microsoft\Boot (BCD, bootmgfw.efi) and \EFI\BOOT\BOOTX64.EFI. */
function espImage(bcd: Buffer): string {
  const esp = path.join(dir, "esp.fat");
  sh("mkfs.fat", ["-F", "16", "-C", esp, String(ESP_MIB * 1024)]);
  sh("mmd", ["-i", esp, "::/EFI", "::/EFI/Microsoft", "::/EFI/Microsoft/Boot", "::/EFI/BOOT"]);
  const put = (bytes: Buffer, to: string) => { const f = path.join(dir, "esp-put"); fs.writeFileSync(f, bytes); sh("mcopy", ["-i", esp, f, `::${to}`]); };
  put(bcd, "/EFI/Microsoft/Boot/BCD");
  put(Buffer.from("dummy bootmgfw.efi: content irrelevant\n"), "/EFI/Microsoft/Boot/bootmgfw.efi");
  put(Buffer.from("dummy BOOTX64.EFI: content irrelevant\n"), "/EFI/BOOT/BOOTX64.EFI");
  return esp;
}

/** A GPT disk made by sfdisk (disk and partition GUIDs fixed): the ESP, then the Windows NTFS volume. */
function gptDisk(name: string, d: WinDisk, esp: string): string {
  const vol = path.join(dir, `${name}.ntfs`), disk = path.join(dir, `${name}.img`);
  const winStart = 2048 + ESP_MIB * 2048;
  ntfsVolume(vol, winStart, d, false);
  sh("truncate", ["-s", `${ESP_MIB + NTFS_MIB + 2}M`, disk]);
  sh("sfdisk", ["-q", disk], { input: `label: gpt\nlabel-id: ${DISK_GUID}\nstart=2048, size=${ESP_MIB * 2048}, type=${GPT_TYPE_ESP}, uuid=${ESP_GUID}\n`
    + `start=${winStart}, size=${NTFS_MIB * 2048}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=${WIN_GUID}\n` });
  sh("dd", [`if=${esp}`, `of=${disk}`, "bs=1M", "seek=1", "conv=notrunc", "status=none"]);
  sh("dd", [`if=${vol}`, `of=${disk}`, "bs=1M", `seek=${1 + ESP_MIB}`, "conv=notrunc", "status=none"]);
  return disk;
}

const disks: Record<string, string> = {};
beforeAll(() => {
  dir = tmpdir("bootgate-oswin-");
  const h = (name: string, lines: string[]) => (hives[name] = hiveFromReg(path.join(dir, name), lines));
  const mbrPart = partitionElement({ mbr: SIG, offset: MIB });
  h("SYSTEM-mbr", systemReg({}, { sig: SIG, offset: MIB }));
  h("SYSTEM-gpt", systemReg());
  h("SYSTEM-storvsc3", systemReg({ storvsc: 3 }));
  h("SYSTEM-intelide4", systemReg({ intelide: 4 }, { sig: SIG, offset: MIB }));
  h("SOFTWARE-2019", softwareReg("Windows Server 2019 Datacenter", "17763"));
  h("SOFTWARE-2008R2", softwareReg("Windows Server 2008 R2 Datacenter", "7601"));
  h("BCD-mbr", bcdReg(mbrPart, mbrPart, "\\Windows\\system32\\winload.exe"));
  h("BCD-stale", bcdReg(partitionElement({ mbr: OLD_SIG, offset: MIB }), partitionElement({ mbr: OLD_SIG, offset: MIB }), "\\Windows\\system32\\winload.exe"));
  const gptEl = (part: string) => partitionElement({ disk: DISK_GUID, part });
  h("BCD-gpt", bcdReg(gptEl(ESP_GUID), gptEl(WIN_GUID), "\\Windows\\system32\\winload.efi"));
  const sw = hives["SOFTWARE-2019"];
  disks.mbrGood = mbrDisk("mbr-good", { system: hives["SYSTEM-mbr"], software: sw, bcd: hives["BCD-mbr"] });
  disks.mbrIde4 = mbrDisk("mbr-ide4", { system: hives["SYSTEM-intelide4"], software: sw, bcd: hives["BCD-mbr"] });
  disks.mbrStale = mbrDisk("mbr-stale", { system: hives["SYSTEM-mbr"], software: sw, bcd: hives["BCD-stale"] });
  const bcd = hives["BCD-gpt"], esp = espImage(bcd);
  disks.gptGood = gptDisk("gpt-good", { system: hives["SYSTEM-gpt"], software: sw, bcd }, esp);
  disks.gptStorvsc3 = gptDisk("gpt-storvsc3", { system: hives["SYSTEM-storvsc3"], software: sw, bcd }, esp);
  disks.gptNoSystem = gptDisk("gpt-nosystem", { software: sw, bcd }, esp);
  disks.gpt2008 = gptDisk("gpt-2008r2", { system: hives["SYSTEM-gpt"], software: hives["SOFTWARE-2008R2"], bcd }, esp);
  disks.gptGarbageSystem = gptDisk("gpt-garbage", { system: Buffer.concat([Buffer.from("regf"), prng(9, 64 * 1024)]), software: sw, bcd }, esp);
}, 60_000);

function evaluate(name: string, generation: 1 | 2, preboot?: PrebootEvidence, target: "azure" | "hyperv" = "hyperv") {
  const dev = openImage(disks[name]);
  try { return evaluateWindows({ dev, layout: readLayout(dev), generation, target, ...(preboot ? { preboot } : {}) }); } finally { dev.close(); }
}
const codes = (r: { findings: { code: string }[] } | undefined) => r!.findings.map((f) => f.code);

/** \bootmgr's whole-disk extents on an MBR fixture (what a real NTFS boot record would read). */
function bootmgrExtents(name: string) {
  const dev = openImage(disks[name]);
  try {
    const v = openNtfs(new PartitionView(dev, 2048, NTFS_MIB * 2048));
    return v.extents(resolvePath(v, "/bootmgr")!);
  } finally { dev.close(); }
}

describe("Windows OS stage, Generation 1 (MBR, active NTFS partition)", () => {
  it("a good disk is inconclusive without emulation evidence, with reached root and every static fact", () => {
    const r = evaluate("mbrGood", 1)!;
    expect(r.verdict).toBe("inconclusive");
    expect(r.reached).toBe("root");
    expect(codes(r)).toEqual(["WIN_OS_FOUND", "WIN_PREBOOT_NOT_VERIFIED"]);
    expect(r.findings[0].message).toBe("Windows Server 2019 Datacenter build 17763 on partition 1, control set ControlSet001");
    expect(r.facts.bootVolume).toMatchObject({ partition: 1, startLba: 2048, kind: "ntfs" });
    expect(r.facts.bcd).toMatchObject({ defaultGuid: OS, path: "\\Windows\\system32\\winload.exe" });
    expect((r.facts.bcd as { matches: { matches?: boolean }[] }).matches.map((m) => m.matches)).toEqual([true, true, true]);
    expect(r.facts.mountedDevicesC).toMatchObject({ matches: true });
    expect(r.chain[0].what).toContain("static analysis: bootmgr not emulated");
  });

  it("boots when the Gen1 run executed the NTFS boot record and read all of \\bootmgr without an error", () => {
    const ext = bootmgrExtents("mbrGood");
    expect(ext.reduce((n, e) => n + e.count, 0)).toBe(32);
    const pre: PrebootEvidence = {
      reached: "bootloader", stopReason: "halted", stopDetail: "HLT with interrupts on in protected mode",
      chain: [{ stage: "bootloader", what: "boot record at 0000:7C00: NTFS boot record (BOOTMGR)", evidence: { kind: "ntfs-vbr", lba: 2048 } }],
      readLog: [{ lba: 0, count: 1 }, { lba: 2048, count: 16 }, ...ext], screen: [],
    };
    const r = evaluate("mbrGood", 1, pre)!;
    expect(r.verdict).toBe("boots");
    expect(r.reached).toBe("root");
    expect(codes(r)).toEqual(["WIN_OS_FOUND"]);
    expect(r.chain.some((c) => c.what.includes("read \\bootmgr (32 sectors) and stopped inside bootmgr (halted)"))).toBe(true);
    // half of bootmgr read: not enough; an error on screen: fails
    const half = evaluate("mbrGood", 1, { ...pre, stopReason: "budget-time", readLog: [{ lba: ext[0].lba, count: 8 }] })!;
    expect(half.verdict).toBe("inconclusive");
    const msg = evaluate("mbrGood", 1, { ...pre, screen: ["BOOTMGR is compressed"] })!;
    expect(msg.verdict).toBe("fails");
    expect(codes(msg)).toContain("WIN_PREBOOT_FAILED");
  });

  it("a real Gen1 run (SYSLINUX mbr.bin -> mkntfs boot record, which never loads bootmgr) fails the pre-boot check", () => {
    const f = path.join(dir, "mbr-syslinux.img");
    fs.copyFileSync(disks.mbrGood, f);
    sh("dd", ["if=/usr/lib/syslinux/mbr/mbr.bin", `of=${f}`, "bs=440", "count=1", "conv=notrunc", "status=none"]);
    const dev = openImage(f);
    try {
      const g = runGen1(dev, { maxWallMs: 10_000 });
      expect(g.chain.some((c) => c.evidence.kind === "ntfs-vbr")).toBe(true);
      expect(g.stop.reason).toBe("waiting-for-key");                    // "This is not a bootable disk. ... press any key"
      const r = evaluateWindows({ dev, layout: readLayout(dev), generation: 1, target: "hyperv",
        preboot: { reached: g.reached, stopReason: g.stop.reason, stopDetail: g.stop.detail, chain: g.chain, readLog: g.readLog, screen: g.screen } })!;
      expect(r.verdict).toBe("fails");
      expect(r.reached).toBe("bootloader");
      const f1 = r.findings.find((x) => x.code === "WIN_PREBOOT_FAILED")!;
      expect(f1.evidence).toMatchObject({ ntfsBootRecordRan: true, bootmgrRead: false });
    } finally { dev.close(); }
  });

  it("intelide Start=4 with pciide Start=3 fails with STOP 0x7B and the reg add remedy", () => {
    const r = evaluate("mbrIde4", 1)!;
    expect(r.verdict).toBe("fails");
    expect(r.reached).toBe("kernel");
    const f = r.findings.find((x) => x.code === "WIN_STOP_7B")!;
    expect(f.message).toContain("STOP 0x7B INACCESSIBLE_BOOT_DEVICE on gen1-ide: no PIIX4 IDE controller driver is ready (intelide Start=4 (disabled), not 0 (boot); pciide Start=3 (demand), not 0 (boot))");
    expect(f.remedy).toContain("reg load HKLM\\OFFLINE C:\\Windows\\System32\\config\\SYSTEM");
    expect(f.remedy).toContain("reg add HKLM\\OFFLINE\\ControlSet001\\Services\\intelide /v Start /t REG_DWORD /d 0 /f");
    expect(codes(r)).not.toContain("WIN_PREBOOT_NOT_VERIFIED");
    // the same registry is fine for Generation 2's storvsc... but an MBR disk cannot boot Windows on Gen2
    const g2 = evaluate("mbrIde4", 2)!;
    expect(g2.reached).toBe("firmware");
    expect(g2.findings.find((x) => x.code === "WIN_NO_BOOT_VOLUME")!.remedy).toContain("mbr2gpt /convert /disk:0 /allowFullOS");
  });

  it("a BCD naming an old disk signature fails with winload 0xc000000e and the bcdedit remedy", () => {
    const r = evaluate("mbrStale", 1)!;
    expect(r.verdict).toBe("fails");
    expect(r.reached).toBe("bootloader");
    const f = r.findings.filter((x) => x.code === "BCD_DEVICE_MISMATCH");
    expect(f).toHaveLength(3);
    expect(f[2].evidence).toMatchObject({ bootError: "winload 0xc000000e (STATUS_NO_SUCH_DEVICE)", file: "\\Boot\\BCD", name: "osdevice" });
    expect(f[2].message).toContain("the disk's MBR signature (LBA 0 offset 0x1B8) is 0x5eed0b07, not 0x0badd15c");
    expect(f[2].remedy).toContain("bcdedit /set {default} osdevice partition=C:");
  });
});

describe("Windows OS stage, Generation 2 (GPT, ESP)", () => {
  it("a statically clean disk is inconclusive (bootmgfw.efi not emulated) with reached root", () => {
    const r = evaluate("gptGood", 2)!;
    expect(r.verdict).toBe("inconclusive");
    expect(r.reached).toBe("root");
    expect(codes(r)).toEqual(["WIN_OS_FOUND", "WIN_PREBOOT_NOT_VERIFIED"]);
    expect(r.facts.bootVolume).toMatchObject({ partition: 1, kind: "fat16", bcd: "\\EFI\\Microsoft\\Boot\\BCD" });
    expect(r.facts.systemVolume).toMatchObject({ partition: 2 });
    expect((r.facts.bcd as { matches: { partition?: number }[] }).matches.map((m) => m.partition)).toEqual([1, 2, 2]);
    // Gen1 cannot start Windows from a GPT disk
    const g1 = evaluate("gptGood", 1)!;
    expect(g1.verdict).toBe("fails");
    expect(g1.findings[0].message).toContain("GPT-partitioned");
  });

  it("storvsc Start=3 fails with STOP 0x7B; Azure's remedy names az vm repair", () => {
    const r = evaluate("gptStorvsc3", 2, undefined, "azure")!;
    expect(r.verdict).toBe("fails");
    expect(r.reached).toBe("kernel");
    const f = r.findings.filter((x) => x.code === "WIN_STOP_7B");
    expect(f).toHaveLength(1);
    expect(f[0].message).toBe("STOP 0x7B INACCESSIBLE_BOOT_DEVICE on gen2-scsi: storvsc Start=3 (demand), not 0 (boot) (ControlSet001 in \\Windows\\System32\\config\\SYSTEM)");
    expect(f[0].remedy).toContain("reg add HKLM\\OFFLINE\\ControlSet001\\Services\\storvsc /v Start /t REG_DWORD /d 0 /f");
    expect(f[0].remedy).toContain("az vm repair create");
    expect(f[0].evidence.services).toEqual([{ service: "storvsc", start: 3, sysPath: "System32\\drivers\\storvsc.sys", fileFound: true }]);
  });

  it("a missing SYSTEM hive is inconclusive with the reason", () => {
    const r = evaluate("gptNoSystem", 2)!;
    expect(r.verdict).toBe("inconclusive");
    expect(r.reached).toBe("kernel");
    expect(r.findings.find((x) => x.code === "WIN_UNREADABLE")!.message).toBe("SYSTEM hive: \\Windows\\System32\\config\\SYSTEM is missing on partition 2");
    expect(r.facts.inconclusiveBecause).toContain("SYSTEM hive: \\Windows\\System32\\config\\SYSTEM is missing on partition 2");
  });

  it("a SYSTEM hive of random bytes after 'regf' is inconclusive, not a crash", () => {
    const r = evaluate("gptGarbageSystem", 2)!;
    expect(r.verdict).toBe("inconclusive");
    expect(r.findings.find((x) => x.code === "WIN_UNREADABLE")!.message).toMatch(/^SYSTEM hive: /);
  });

  it("Windows Server 2008 R2 fails on Generation 2", () => {
    const r = evaluate("gpt2008", 2)!;
    expect(r.verdict).toBe("fails");
    expect(r.reached).toBe("bootloader");
    expect(r.findings.find((x) => x.code === "WIN_GEN2_UNSUPPORTED")!.message)
      .toBe("Windows Server 2008 R2 Datacenter (build 7601) is older than Windows Server 2012 / Windows 8 (build 9200): not supported on Generation 2");
  });

  it("a disk without \\Windows\\System32 is not a Windows disk", () => {
    const f = path.join(dir, "esp-only.img");
    fs.copyFileSync(disks.gptGood, f);
    sh("sfdisk", ["-q", "--delete", f, "2"]);            // only the ESP is left
    const dev = openImage(f);
    try { expect(evaluateWindows({ dev, layout: readLayout(dev), generation: 2, target: "hyperv" })).toBeUndefined(); } finally { dev.close(); }
  });
});

describe("bootgate check runs the Windows stage", () => {
  it("Gen2 storvsc Start=3 fails with WIN_STOP_7B (and a placeholder loader on its ESP); Gen1 of the good MBR disk fails on its empty MBR boot code", () => {
    const vhdx = path.join(dir, "gpt-storvsc3.vhdx");                 // Hyper-V attaches Gen2 disks as VHDX
    sh("qemu-img", ["convert", "-O", "vhdx", disks.gptStorvsc3, vhdx]);
    const g2 = checkImage(vhdx, { gens: [2], target: "hyperv" }).generations[0];
    expect(g2.verdict).toBe("fails");
    // The test ESP's BOOTX64.EFI is a placeholder, not a PE image: the Gen2 firmware fails first, and the Windows stage
    // still reports 0x7B.
    expect(g2.reached).toBe("firmware");
    expect(g2.findings.map((f) => f.code)).toEqual(expect.arrayContaining(["GEN2_LOADER_INVALID", "WIN_STOP_7B"]));
    const g1 = checkImage(disks.mbrGood, { gens: [1], target: "hyperv", gen1: { maxWallMs: 10_000 } }).generations[0];
    expect(g1.verdict).toBe("fails");
    expect(g1.findings.map((f) => f.code)).toEqual(expect.arrayContaining(["GEN1_EMPTY_BOOT_CODE", "WIN_PREBOOT_FAILED", "WIN_OS_FOUND"]));
  });
});
