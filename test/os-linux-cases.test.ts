// The remaining Linux cases of issue 4's "Done when": initramfs images made here from the real Debian linux-image
// package's .ko files (hv-only, VMware-only, LVM + XFS), root=PARTUUID on MBR (signature-partition) and GPT disks made
// with sfdisk, and root on an LVM2 LV (PV written as lvm2 lays it down) holding an XFS made by mkfs.xfs -p protofile.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { sh, tmpdir } from "./helpers.ts";
import { GEN1_DIR } from "./fixtures.ts";
import type { BlockDevice } from "../images/block.ts";
import type { OsStageResult } from "../emu/os-linux.ts";
import { codes, evaluate, LinuxKit, MBR_LABEL_ID, mkfsXfs, one, protoFor, putAt, UUID_ROOT, vgText, writePv } from "./linux-disk.ts";

const kit = new LinuxKit(tmpdir("bootgate-oslinux-cases-"));
const HV = ["hv_vmbus", "hv_storvsc", "sd_mod", "ext4"];
const VMWARE = ["vmw_pvscsi", "mptspi", "mptscsih", "mptbase", "scsi_transport_spi", "sd_mod", "ext4"];
const GPT_DISK = "6a3c1f0e-2b4d-4e6f-8a1b-3c5d7e9f0a12";
const GPT_ROOT_PART = "4f2e8d6c-1a3b-4c5d-9e7f-0a1b2c3d4e5f";
const UUID_BOOT = "2d7a3c4e-5f60-4172-8c8d-9e0f1a2b3c4d";
const UUID_XFS = "3e8b4d5f-6071-4283-9d9e-0f1a2b3c4d5e";

const initrdMods = (r: OsStageResult) => (r.facts.kernelFacts as { initrdModules: string[] }).initrdModules;

beforeAll(() => kit.init(), 900_000);
afterAll(() => kit.close());

describe("initramfs contents", () => {
  it("boots on Gen1 and Gen2 with hv_vmbus + hv_storvsc + sd_mod but no ata_piix in the initramfs", () => {
    const dev = kit.disk("hvonly", kit.tree("hvonly", { initrd: kit.initrd("hvonly", HV) }));
    for (const gen of [1, 2] as const) {
      const r = evaluate(dev, gen);
      expect(r).toMatchObject({ reached: "root", verdict: "boots" });
      expect(codes(r)).toEqual(["LINUX_ROOT_FOUND"]);
      expect(r.facts.storageDrivers).toEqual(["hv_vmbus", "hv_storvsc", "sd_mod"]);
      expect(initrdMods(r)).not.toContain("ata_piix");
      expect(initrdMods(r)).toContain("scsi_transport_fc");
    }
  });

  it("fails on Gen1 and Gen2 with a VMware-only initramfs (vmw_pvscsi, mptspi), naming dracut and update-initramfs", () => {
    const dev = kit.disk("vmware", kit.tree("vmware", { initrd: kit.initrd("vmware", VMWARE) }));
    for (const gen of [1, 2] as const) {
      const r = evaluate(dev, gen);
      expect(r).toMatchObject({ reached: "kernel", verdict: "fails" });
      expect(initrdMods(r)).toEqual(expect.arrayContaining(["vmw_pvscsi", "mptspi", "mptscsih", "mptbase", "scsi_transport_spi", "sd_mod"]));
      const f = one(r, "LINUX_STORAGE_DRIVER_MISSING");
      expect(f.message).toContain("hv_vmbus, hv_storvsc");
      expect(f.message).toContain(gen === 1 ? "(or ata_piix)" : "Generation 2");
      expect(f.remedy).toContain(`dracut -f --add-drivers "hv_vmbus hv_storvsc" --kver ${kit.KVER}`);
      expect(f.remedy).toContain(`update-initramfs -u -k ${kit.KVER}`);
      expect(codes(r)).toEqual(["LINUX_STORAGE_DRIVER_MISSING"]);
    }
  });
});

describe("root=PARTUUID", () => {
  let mbr: BlockDevice, gpt: BlockDevice;
  beforeAll(() => {
    expect(MBR_LABEL_ID).toBe("0x5eed0001");
    mbr = kit.disk("partuuid-mbr", kit.tree("partuuid-mbr", {}));
    // The same root filesystem on a GPT disk whose partition 1 has a known PARTUUID.
    const img = path.join(kit.dir, "partuuid-gpt.img");
    sh("truncate", ["-s", "64M", img]);
    sh("sfdisk", ["-q", img], { input: `label: gpt\nlabel-id: ${GPT_DISK}\nstart=2048, size=98304, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${GPT_ROOT_PART}\n` });
    const p1 = path.join(kit.dir, "partuuid-gpt.p1");
    kit.ext4(p1, kit.tree("partuuid-gpt", {}), 48, ["-L", "root", "-U", UUID_ROOT]);
    putAt(img, p1, 2048);
    gpt = kit.open(img);
  });
  /** Hand-off as GRUB gives it: the command line, and the kernel and initrd sectors it read. */
  const withCmdline = (dev: BlockDevice, gen: 1 | 2, cmdline: string): OsStageResult =>
    evaluate(dev, gen, { cmdline, kernelVersion: kit.KVER, initrd: { size: fs.statSync(path.join(GEN1_DIR, "initrd-hv.cpio.gz")).size }, initrdLoadedFrom: { lba: kit.lbaOf(dev, `/boot/initrd.img-${kit.KVER}`) },
      kernelLoadedFrom: { lba: kit.lbaOf(dev, `/boot/vmlinuz-${kit.KVER}`) } });

  it("boots when root=PARTUUID=<MBR signature>-01 matches this disk's 0x1B8 signature", () => {
    for (const gen of [1, 2] as const) {
      const r = withCmdline(mbr, gen, "root=PARTUUID=5eed0001-01 ro");
      expect(r).toMatchObject({ reached: "root", verdict: "boots" });
      expect(r.facts.root).toMatchObject({ kind: "partuuid", volume: "p1" });
      expect(codes(r)).toContain("LINUX_ROOT_FOUND");
    }
  });

  it("fails when root=PARTUUID names another disk's MBR signature (a stale 0badf00d-01)", () => {
    const r = withCmdline(mbr, 1, "root=PARTUUID=0badf00d-01 ro");
    expect(r).toMatchObject({ reached: "kernel", verdict: "fails" });
    const f = one(r, "LINUX_ROOT_NOT_ON_DISK");
    expect(f.message).toContain("0badf00d-01");
    expect(f.remedy).toContain(`root=UUID=${UUID_ROOT}`);
  });

  it("boots on Gen2 when root=PARTUUID is the GPT partition GUID of partition 1 (any case)", () => {
    const r = withCmdline(gpt, 2, `root=PARTUUID=${GPT_ROOT_PART.toUpperCase()} ro`);
    expect(r).toMatchObject({ reached: "root", verdict: "boots" });
    expect(r.facts.root).toMatchObject({ kind: "partuuid", volume: "p1" });
  });

  it("fails when root=PARTUUID is a GPT GUID that is not on the disk", () => {
    const stale = "9d1f0c2e-aaaa-4bbb-8ccc-0123456789ab";
    const r = withCmdline(gpt, 2, `root=PARTUUID=${stale} ro`);
    expect(r).toMatchObject({ reached: "kernel", verdict: "fails" });
    expect(one(r, "LINUX_ROOT_NOT_ON_DISK").message).toContain(stale);
    expect(codes(r)).not.toContain("LINUX_ROOT_FOUND");
  });
});

describe("root on LVM on XFS, /boot on ext4", () => {
  const LVM_MODS = ["dm_mod", "xfs", "hv_vmbus", "hv_storvsc", "sd_mod"];
  const PV = "Fjpscc0pSRxiUtV60PYzlYX07VbMul3y";

  /** MBR: p1 ext4 /boot (16 MiB, kernel + initrd + config + grub.cfg), p2 type 8e: PV with rootvg/root (8 extents) = XFS. */
  function lvmDisk(name: string, initrd: Buffer): BlockDevice {
    const { KVER } = kit;
    const img = path.join(kit.dir, `${name}.img`);
    sh("truncate", ["-s", "64M", img]);
    sh("sfdisk", ["-q", img], { input: "label: dos\nlabel-id: 0x5eed0002\nstart=2048, size=32768, type=83, bootable\nstart=34816, size=67584, type=8e\n" });
    const boot = path.join(kit.dir, `${name}-boot`);
    fs.mkdirSync(path.join(boot, "grub"), { recursive: true });
    fs.copyFileSync(path.join(kit.KX, `boot/vmlinuz-${KVER}`), path.join(boot, `vmlinuz-${KVER}`));
    fs.copyFileSync(path.join(kit.KX, `boot/config-${KVER}`), path.join(boot, `config-${KVER}`));
    fs.writeFileSync(path.join(boot, `initrd.img-${KVER}`), initrd);
    fs.writeFileSync(path.join(boot, "grub/grub.cfg"), kit.grubCfg("", "root=/dev/mapper/rootvg-root ro rd.lvm.lv=rootvg/root"));
    const p1 = path.join(kit.dir, `${name}.p1`);
    kit.ext4(p1, boot, 16, ["-L", "boot", "-U", UUID_BOOT]);
    putAt(img, p1, 2048);

    const root = path.join(kit.dir, `${name}-root`);
    fs.mkdirSync(path.join(root, "boot"), { recursive: true });
    fs.mkdirSync(path.join(root, "etc"));
    kit.moduleLists(root);
    fs.writeFileSync(path.join(root, "etc/fstab"), `/dev/mapper/rootvg-root / xfs defaults 0 0\nUUID=${UUID_BOOT} /boot ext4 defaults 0 2\n`);
    const proto = path.join(kit.dir, `${name}.proto`);
    fs.writeFileSync(proto, protoFor(root));
    const xfs = path.join(kit.dir, `${name}.xfs`);
    mkfsXfs(xfs, 32, proto, ["-L", "root", "-m", `uuid=${UUID_XFS}`]);
    putAt(img, xfs, 34816 + 2048);                       // pe_start = 1 MiB, root's extent 0 = PE 0
    writePv(img, 34816 * 512, 67584 * 512, PV, vgText("rootvg", 3, [["pv0", PV, "/dev/sda2", 8]], [["root", [{ start: 0, count: 8, stripes: [["pv0", 0]] }]]]));
    return kit.open(img);
  }

  it("boots on Gen1 and Gen2 with dm_mod, the lvm tool (a placeholder usr/sbin/lvm), xfs and hv_storvsc", () => {
    const dev = lvmDisk("lvm-good", kit.initrd("lvm-good", LVM_MODS, { "usr/sbin/lvm": "placeholder: the stage checks presence only\n" }));
    for (const gen of [1, 2] as const) {
      const r = evaluate(dev, gen);
      expect(r, codes(r).join(", ")).toMatchObject({ reached: "root", verdict: "boots" });
      expect(r.facts.root).toMatchObject({ spec: "/dev/mapper/rootvg-root", kind: "lvm", volume: "lv:rootvg/root", fstype: "xfs", uuid: UUID_XFS });
      expect(r.facts.rootFsDriver).toMatchObject({ module: "xfs", state: "initrd" });
      expect((r.facts.kernelFacts as Record<string, string>).configFrom).toBe(`p1:/config-${kit.KVER}`);
      expect(codes(r)).toEqual(["LINUX_ROOT_FOUND"]);
    }
  });

  it("fails with the LVM finding when the initramfs has the lvm tool but no dm_mod", () => {
    const dev = lvmDisk("lvm-nodm", kit.initrd("lvm-nodm", LVM_MODS.filter((m) => m !== "dm_mod"), { "usr/sbin/lvm": "placeholder\n" }));
    for (const gen of [1, 2] as const) {
      const r = evaluate(dev, gen);
      expect(r).toMatchObject({ reached: "kernel", verdict: "fails" });
      const f = one(r, "LINUX_LVM_TOOLS_MISSING");
      expect(f.message).toBe("root rootvg/root is a logical volume, but the initramfs lacks dm_mod");
      expect(f.remedy).toContain("dm_mod");
    }
  });
});
