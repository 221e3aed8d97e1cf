// `check --controller ide|scsi|nvme` (issue 4, shared/HYPERV.md: Azure NVMe sizes are Gen2-only): Gen1 refuses a
// non-IDE boot disk at the firmware stage, Gen2 has no IDE, and on NVMe the Linux stage wants the nvme driver and
// /dev/nvme0n1 names while the Windows stage wants stornvme boot-start. Disks: the Gen1 fixtures (GRUB, Debian
// kernel + initramfs), one edited with debugfs; a GPT disk by sfdisk with an NTFS volume from mkntfs + libntfs-3g
// and a SYSTEM hive from hivexregedit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { cli, hiveFromReg, regHex, sh, tmpdir } from "./helpers.ts";
import { fixture } from "./fixtures.ts";
import { NtfsWriter } from "./ntfs-writer.ts";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import type { BlockDevice } from "../images/block.ts";
import { evaluateLinux } from "../emu/os-linux.ts";
import { evaluateWindows } from "../emu/os-windows.ts";
import { controllerFor, controllerUsageError } from "../emu/check.ts";
import { lookupFinding } from "../emu/findings.ts";

const dir = tmpdir("bootgate-controller-");
const opened: BlockDevice[] = [];
afterAll(() => { for (const d of opened) d.close(); });

function open(file: string): { dev: BlockDevice; layout: ReturnType<typeof readLayout> } {
  const dev = openImage(file);
  opened.push(dev);
  return { dev, layout: readLayout(dev) };
}
const codes = (r: { findings: { code: string }[] } | undefined) => r!.findings.map((f) => f.code);

describe("the controller rule", () => {
  it("defaults to IDE on Gen1 and SCSI on Gen2", () => {
    expect(controllerFor(1, { gens: [1, 2] })).toBe("ide");
    expect(controllerFor(2, { gens: [1, 2] })).toBe("scsi");
  });
  it("with one generation, applies to it", () => {
    expect(controllerFor(1, { gens: [1], controller: "nvme" })).toBe("nvme");
    expect(controllerFor(2, { gens: [2], controller: "nvme" })).toBe("nvme");
  });
  it("with both generations, gives ide to Gen1 and scsi/nvme to Gen2", () => {
    expect(controllerFor(1, { gens: [1, 2], controller: "ide" })).toBe("ide");
    expect(controllerFor(2, { gens: [1, 2], controller: "ide" })).toBe("scsi");
    expect(controllerFor(1, { gens: [1, 2], controller: "nvme" })).toBe("ide");
    expect(controllerFor(2, { gens: [1, 2], controller: "nvme" })).toBe("nvme");
  });
  it("refuses ide when only Gen2 is checked", () => {
    expect(controllerUsageError([2], "ide")).toMatch(/no IDE controller/);
    expect(controllerUsageError([1, 2], "ide")).toBeUndefined();
    expect(controllerUsageError([1], "scsi")).toBeUndefined();
  });
});

describe("check --controller (CLI)", () => {
  it("--controller scsi --gen 1 fails Gen1 at the firmware stage without emulating", async () => {
    const json = path.join(dir, "scsi-gen1.json");
    const r = await cli(["check", fixture("demo-good.vhd"), "--controller", "scsi", "--gen", "1", "--json", json, "--quiet"]);
    expect(r.status).toBe(1);
    const doc = JSON.parse(fs.readFileSync(json, "utf8"));
    expect(doc.generations).toHaveLength(1);
    const g = doc.generations[0];
    expect(g).toMatchObject({ generation: 1, verdict: "fails", reached: "firmware" });
    expect(g.findings.map((f: { code: string }) => f.code)).toEqual(["GEN1_CONTROLLER_NOT_BOOTABLE"]);
    expect(g.findings[0].remedy).toMatch(/^attach the OS disk to IDE controller 0/);
    expect(g.findings[0].message).toMatch(/SCSI controller/);
    expect(g.stop).toBeUndefined();                   // no emulation ran
    expect(g.chain[0].evidence.controller).toBe("scsi");
    expect(lookupFinding("GEN1_CONTROLLER_NOT_BOOTABLE")?.stage).toBe("firmware");
  });
  it("--controller nvme --gen 1 names NVMe and the Generation 2 way out", async () => {
    const r = await cli(["check", fixture("demo-good.vhd"), "--controller", "nvme", "--gen", "1", "--target", "hyperv"]);
    expect(r.status).toBe(1);
    const out = r.stdout.toString("utf8");
    expect(out).toMatch(/GEN1_CONTROLLER_NOT_BOOTABLE: the OS disk is attached to the NVMe controller/);
    expect(out).toMatch(/Add-VMHardDiskDrive -VMName <vm> -ControllerType IDE -ControllerNumber 0/);
  });
  it("--controller ide --gen 2 is a one-line usage error (exit 2)", async () => {
    const r = await cli(["check", fixture("demo-good.vhd"), "--controller", "ide", "--gen", "2"]);
    expect(r.status).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^bootgate: --controller ide: a Generation 2 VM has no IDE controller/);
  });
  it("--controller sata is refused by the option's choices", async () => {
    expect((await cli(["check", fixture("demo-good.vhd"), "--controller", "sata"])).status).toBe(2);
  });
});

describe("Linux OS stage on NVMe (Gen2)", () => {
  it("fails for the missing nvme driver (the fixture initramfs has hv_storvsc, not nvme)", () => {
    const { dev, layout } = open(fixture("grub-mbr.img"));
    const scsi = evaluateLinux({ dev, layout, generation: 2, target: "azure" })!;
    expect(scsi.verdict).toBe("boots");                // the same disk is fine on Gen2 SCSI
    const r = evaluateLinux({ dev, layout, generation: 2, target: "azure", controller: "nvme" })!;
    expect(r.verdict).toBe("fails");
    expect(r.reached).toBe("kernel");
    expect(codes(r)).toContain("LINUX_NVME_DRIVER_MISSING");
    expect(codes(r)).not.toContain("LINUX_STORAGE_DRIVER_MISSING");
    const f = r.findings.find((x) => x.code === "LINUX_NVME_DRIVER_MISSING")!;
    expect(f.remedy).toMatch(/dracut -f --add-drivers "nvme nvme_core"/);
    expect(f.remedy).toMatch(/\/etc\/initramfs-tools\/modules && update-initramfs -u/);
    expect(f.evidence.initrdModules).toContain("hv_storvsc");
    expect(f.evidence.initrdModules).not.toContain("nvme");
  });

  it("fails root=/dev/sda1 on NVMe, where the partition is /dev/nvme0n1p1", () => {
    // grub-mbr.img with its grub.cfg rewritten by debugfs to name root=/dev/sda1.
    const img = path.join(dir, "sda1.img"), p1 = path.join(dir, "sda1.p1"), cfg = path.join(dir, "grub.cfg");
    fs.copyFileSync(fixture("grub-mbr.img"), img);
    sh("dd", [`if=${img}`, `of=${p1}`, "bs=512", "skip=2048", "count=129024", "status=none"]);
    const text = sh("debugfs", ["-R", "cat /boot/grub/grub.cfg", p1]);
    expect(text).toMatch(/root=UUID=/);
    fs.writeFileSync(cfg, text.replace(/root=UUID=[0-9a-f-]+/g, "root=/dev/sda1"));
    sh("debugfs", ["-w", "-R", "rm /boot/grub/grub.cfg", p1]);
    sh("debugfs", ["-w", "-R", `write ${cfg} /boot/grub/grub.cfg`, p1]);
    sh("dd", [`if=${p1}`, `of=${img}`, "bs=512", "seek=2048", "conv=notrunc", "status=none"]);
    const { dev, layout } = open(img);
    const scsi = evaluateLinux({ dev, layout, generation: 2, target: "azure", controller: "scsi" })!;
    expect(codes(scsi)).not.toContain("LINUX_ROOT_DEVICE_NAME");   // /dev/sda1 exists on SCSI (a kernel-name warning at most)
    const r = evaluateLinux({ dev, layout, generation: 2, target: "azure", controller: "nvme" })!;
    expect(r.verdict).toBe("fails");
    const f = r.findings.find((x) => x.code === "LINUX_ROOT_DEVICE_NAME")!;
    expect(f).toBeDefined();
    expect(f.message).toMatch(/\/dev\/nvme0n1p1/);
  });
});

describe("Windows OS stage on NVMe (Gen2)", () => {
  const dword = (n: number) => `dword:${n.toString(16).padStart(8, "0")}`;
  const expandSz = (s: string) => `hex(2):${regHex(Buffer.from(s + "\0", "utf16le"))}`;
  const DRIVERS = ["storvsc", "vmbus", "storflt", "vmstorfl", "stornvme", "disk", "partmgr", "volmgr"];
  let disk: string;

  beforeAll(() => {
    // SYSTEM: every Gen2 SCSI driver boot-start, stornvme demand-start (3, its usual value on a VM without NVMe).
    const lines = ["[\\Select]", `"Current"=${dword(1)}`, `"Default"=${dword(1)}`, `"LastKnownGood"=${dword(1)}`, ""];
    for (const d of DRIVERS) {
      lines.push(`[\\ControlSet001\\Services\\${d}]`, `"Start"=${dword(d === "stornvme" ? 3 : 0)}`, `"Type"=${dword(1)}`,
        `"ImagePath"=${expandSz(`System32\\drivers\\${d}.sys`)}`, "");
    }
    const system = hiveFromReg(path.join(dir, "SYSTEM"), lines);
    const vol = path.join(dir, "win.ntfs");
    sh("truncate", ["-s", "24M", vol]);
    sh("mkntfs", ["-F", "-f", "-Q", "-L", "Windows", "-p", "2048", "-H", "255", "-S", "63", vol]);
    const w = new NtfsWriter(vol);
    try {
      for (const p of ["/Windows", "/Windows/System32", "/Windows/System32/config", "/Windows/System32/drivers"]) w.mkdir(p);
      w.write("/Windows/System32/config/SYSTEM", [[0, system]]);
      for (const d of DRIVERS) w.write(`/Windows/System32/drivers/${d}.sys`, [[0, Buffer.from(`dummy ${d}.sys\n`)]]);
    } finally { w.close(); }
    disk = path.join(dir, "win-gpt.img");
    sh("truncate", ["-s", "26M", disk]);
    sh("sfdisk", ["-q", disk], { input: "label: gpt\nstart=2048, size=49152, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n" });
    sh("dd", [`if=${vol}`, `of=${disk}`, "bs=1M", "seek=1", "conv=notrunc", "status=none"]);
  }, 60_000);

  it("stornvme Start=3 fails on NVMe (STOP 0x7B) and is no concern on SCSI", () => {
    const { dev, layout } = open(disk);
    const stop7b = (r: ReturnType<typeof evaluateWindows>) => r!.findings.filter((f) => f.code === "WIN_STOP_7B");
    const scsi = evaluateWindows({ dev, layout, generation: 2, target: "azure" });
    expect(stop7b(scsi)).toEqual([]);
    const r = evaluateWindows({ dev, layout, generation: 2, target: "azure", controller: "nvme" });
    expect(r!.verdict).toBe("fails");
    const f = stop7b(r);
    expect(f).toHaveLength(1);
    expect(f[0].message).toMatch(/stornvme Start=3/);
    expect(f[0].evidence.controller).toBe("azure-nvme");
    expect(f[0].remedy).toMatch(/Services\\stornvme \/v Start \/t REG_DWORD \/d 0/);
  });
});
