// root= / fstab / crypttab device specs resolved against disks partitioned by the real sfdisk and sgdisk
// with filesystems from mkfs.ext4 / mkfs.fat / mkswap (UUIDs and labels chosen on their command lines),
// read back through readLayout; kernel command line quoting; fstab escapes.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { sh, tmpdir, rawDisk } from "./helpers.ts";
import { Disk, type BlockDevice } from "../images/block.ts";
import { FileSource } from "../images/source.ts";
import { readLayout } from "../images/layout.ts";
import { parseCmdline, resolveCmdlineRoot, resolveDeviceSpec, volumesFromLayout, type Volume } from "../images/root-spec.ts";
import { fstabFor, parseCrypttab, parseFstab } from "../images/fstab.ts";

const ROOT_UUID = "3d6e1a52-1c0b-4f7e-9a3a-2b5c7d9e0f11";
const SWAP_UUID = "0c9b8a7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d";
const GPT_ROOT_UUID = "8a7b6c5d-4e3f-4a2b-9c1d-0e1f2a3b4c5d";
const ESP_GUID = "C1A2B3D4-E5F6-4789-8ABC-DEF012345678";
const ROOT_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4".replace("0FC63DAF", "5A1E2B3C");
let mbrVols: Volume[];
let gptVols: Volume[];

function place(disk: string, img: string, startLba: number): void {
  sh("dd", [`if=${img}`, `of=${disk}`, "bs=512", `seek=${startLba}`, "conv=notrunc", "status=none"]);
}

beforeAll(() => {
  const dir = tmpdir("bootgate-rootspec-");
  const mbr = path.join(dir, "mbr.img");
  fs.writeFileSync(mbr, ""); fs.truncateSync(mbr, 48 * 2 ** 20);
  sh("sfdisk", ["-q", mbr], { input: "label: dos\nlabel-id: 0x5e1f2d3c\nstart=2048, size=16384, type=83\nstart=18432, size=8192, type=82\nstart=26624, size=65536, type=5\nstart=28672, size=16384, type=c\n" });
  const ext = path.join(dir, "p1"), sw = path.join(dir, "p2"), fat = path.join(dir, "p5");
  sh("mkfs.ext4", ["-q", "-F", "-U", ROOT_UUID, "-L", "my root", ext, "8M"]);
  fs.writeFileSync(sw, ""); fs.truncateSync(sw, 4 * 2 ** 20);
  sh("mkswap", ["-U", SWAP_UUID, "-L", "swap", sw]);
  sh("mkfs.fat", ["-C", "-i", "1a2b3c4d", "-n", "DATA", fat, "8192"]);
  place(mbr, ext, 2048); place(mbr, sw, 18432); place(mbr, fat, 28672);
  mbrVols = volumesFromLayout(readLayout(rawDisk(mbr)));

  const gpt = path.join(dir, "gpt.img");
  fs.writeFileSync(gpt, ""); fs.truncateSync(gpt, 32 * 2 ** 20);
  sh("sgdisk", ["-n", "1:2048:+8M", "-t", "1:ef00", "-c", "1:EFI System Partition", "-u", `1:${ESP_GUID}`,
    "-n", "2:0:+12M", "-t", "2:8300", "-c", "2:rootfs", "-u", `2:${ROOT_GUID}`, gpt]);
  const ext2 = path.join(dir, "g2");
  sh("mkfs.ext4", ["-q", "-F", "-U", GPT_ROOT_UUID, ext2, "12M"]);
  place(gpt, ext2, 2048 + 16384);
  gptVols = [...volumesFromLayout(readLayout(rawDisk(gpt))), { lvName: "rhel/root", fsUuid: "aaaaaaaa-0000-4000-8000-000000000001", fsKind: "xfs" },
    { lvName: "my-vg/lv-root", fsKind: "ext4" }];
});

describe("specs against an sfdisk MBR disk (signature 5e1f2d3c)", () => {
  it("UUID, LABEL and MBR PARTUUID (primary and logical, hex partition number) resolve", () => {
    expect(resolveDeviceSpec(`UUID=${ROOT_UUID.toUpperCase()}`, mbrVols, "gen2-scsi").resolvesTo?.partitionIndex).toBe(1);
    expect(resolveDeviceSpec("LABEL=my root", mbrVols, "gen2-scsi").resolvesTo?.partitionIndex).toBe(1);
    expect(resolveDeviceSpec(`UUID=${SWAP_UUID}`, mbrVols, "gen2-scsi").resolvesTo?.fsKind).toBe("swap");
    expect(resolveDeviceSpec("UUID=1A2B-3C4D", mbrVols, "gen2-scsi").resolvesTo?.partitionIndex).toBe(5);
    const p = resolveDeviceSpec("PARTUUID=5e1f2d3c-01", mbrVols, "gen1-ide");
    expect(p).toMatchObject({ kind: "partuuid", stableAcrossControllers: true, resolvesTo: { partitionIndex: 1, fsUuid: ROOT_UUID } });
    expect(resolveDeviceSpec("PARTUUID=5E1F2D3C-05", mbrVols, "gen1-ide").resolvesTo?.partitionIndex).toBe(5);
    expect(resolveDeviceSpec("PARTUUID=5e1f2d3c-02/PARTNROFF=-1", mbrVols, "gen1-ide").resolvesTo?.partitionIndex).toBe(1);
  });

  it("a stale MBR PARTUUID and an absent UUID say why", () => {
    const s = resolveDeviceSpec("PARTUUID=deadbeef-01", mbrVols, "gen2-scsi");
    expect(s.resolvesTo).toBeUndefined();
    expect(s.problem).toContain("MBR signature is 5e1f2d3c, not deadbeef");
    expect(resolveDeviceSpec("UUID=11111111-2222-3333-4444-555555555555", mbrVols, "gen2-scsi").problem).toMatch(/no volume .* UUID 11111111/);
  });

  it("kernel names: /dev/sda1 exists on Gen1/Gen2 but not on Azure NVMe; vda/xvda/hda never on Hyper-V", () => {
    const sda = resolveDeviceSpec("/dev/sda1", mbrVols, "gen1-ide");
    expect(sda).toMatchObject({ kind: "dev-name", stableAcrossControllers: false, targetName: "/dev/sda1", resolvesTo: { partitionIndex: 1 } });
    expect(sda.problem).toBeUndefined();
    const nv = resolveDeviceSpec("/dev/sda1", mbrVols, "azure-nvme");
    expect(nv.targetName).toBe("/dev/nvme0n1p1");
    expect(nv.problem).toContain("/dev/nvme0n1p1");
    const vd = resolveDeviceSpec("/dev/vda1", mbrVols, "gen2-scsi");
    expect(vd.problem).toMatch(/virtio-blk .* is \/dev\/sda1, so \/dev\/vda1 does not exist/);
    expect(resolveDeviceSpec("/dev/xvda5", mbrVols, "gen2-scsi").targetName).toBe("/dev/sda5");
    expect(resolveDeviceSpec("/dev/hda1", mbrVols, "gen1-ide").problem).toContain("legacy IDE");
    expect(resolveDeviceSpec("/dev/nvme0n1p2", mbrVols, "gen2-scsi")).toMatchObject({ targetName: "/dev/sda2", resolvesTo: { fsKind: "swap" } });
    expect(resolveDeviceSpec("/dev/sdb1", mbrVols, "gen2-scsi").problem).toContain("not the first disk");
    expect(resolveDeviceSpec("/dev/sda9", mbrVols, "gen2-scsi").problem).toContain("no partition 9");
  });

  it("device numbers and ZFS are noted as unresolvable", () => {
    expect(resolveDeviceSpec("0801", mbrVols, "gen1-ide")).toMatchObject({ kind: "majmin", stableAcrossControllers: false });
    expect(resolveDeviceSpec("0801", mbrVols, "gen1-ide").problem).toContain("/dev/sda1");
    expect(resolveDeviceSpec("8:1", mbrVols, "gen1-ide").kind).toBe("majmin");
    expect(resolveDeviceSpec("ZFS=rpool/ROOT/debian", mbrVols, "gen1-ide").kind).toBe("zfs");
  });
});

describe("specs against an sgdisk GPT disk with LVs", () => {
  it("GPT PARTUUID, PARTNROFF, PARTLABEL and /dev/disk/by-* links", () => {
    expect(resolveDeviceSpec(`PARTUUID=${ROOT_GUID.toLowerCase()}`, gptVols, "gen2-scsi").resolvesTo?.fsUuid).toBe(GPT_ROOT_UUID);
    expect(resolveDeviceSpec(`PARTUUID=${ESP_GUID}/PARTNROFF=1`, gptVols, "gen2-scsi").resolvesTo?.partitionIndex).toBe(2);
    expect(resolveDeviceSpec("PARTLABEL=EFI System Partition", gptVols, "gen2-scsi").resolvesTo?.fsKind).toBe("empty");
    expect(resolveDeviceSpec(`/dev/disk/by-uuid/${GPT_ROOT_UUID}`, gptVols, "gen2-scsi").resolvesTo?.partitionIndex).toBe(2);
    expect(resolveDeviceSpec(`/dev/disk/by-partuuid/${ROOT_GUID}`, gptVols, "gen2-scsi").kind).toBe("partuuid");
    expect(resolveDeviceSpec("/dev/disk/by-partlabel/EFI\\x20System\\x20Partition", gptVols, "gen2-scsi").resolvesTo?.partitionIndex).toBe(1);
    const bp = resolveDeviceSpec("/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:0:0-part2", gptVols, "gen2-scsi");
    expect(bp).toMatchObject({ kind: "by-path", stableAcrossControllers: false });
    const bi = resolveDeviceSpec("/dev/disk/by-id/ata-VMware_Virtual_IDE_Hard_Drive_00000000000000000001-part2", gptVols, "gen1-ide");
    expect(bi.problem).toContain("model/serial");
  });

  it("LVM names in all three spellings", () => {
    expect(resolveDeviceSpec("/dev/mapper/rhel-root", gptVols, "gen2-scsi").resolvesTo?.fsKind).toBe("xfs");
    expect(resolveDeviceSpec("/dev/rhel/root", gptVols, "gen2-scsi").resolvesTo?.fsKind).toBe("xfs");
    expect(resolveDeviceSpec("/dev/mapper/my--vg-lv--root", gptVols, "gen2-scsi").resolvesTo?.lvName).toBe("my-vg/lv-root");
    expect(resolveDeviceSpec("/dev/disk/by-id/dm-name-rhel-root", gptVols, "gen2-scsi").kind).toBe("lvm");
    expect(resolveDeviceSpec("/dev/mapper/centos-root", gptVols, "gen2-scsi").problem).toContain("no logical volume centos/root");
  });

  it("kernel command line: quoting, last root= wins, '--' ends the kernel's part, dracut keys", () => {
    const p = parseCmdline('BOOT_IMAGE=/vmlinuz root=/dev/sda1 root="LABEL=my root" ro quiet rd.lvm.lv=rhel/root -- single');
    expect(p.args.find((a) => a.key === "root" && a.value === "LABEL=my root")).toBeTruthy();
    expect(p.init).toEqual(["single"]);
    const r = resolveCmdlineRoot('root=/dev/mapper/rhel-root ro rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rd.luks.uuid=luks-0000 resume=/dev/mapper/rhel-swap rootfstype=xfs', gptVols, "gen2-scsi");
    expect(r.root).toMatchObject({ kind: "lvm", resolvesTo: { lvName: "rhel/root" } });
    expect(r.rootfstype).toBe("xfs");
    expect(r.lvmLvs).toEqual(["rhel/root", "rhel/swap"]);
    expect(r.problems).toEqual(["rd.lvm.lv=rhel/swap names no logical volume on the disk", "rd.luks.uuid=luks-0000 names no LUKS container on the disk"]);
    expect(resolveCmdlineRoot("ro quiet", gptVols, "gen2-scsi").problems[0]).toContain("no root=");
  });
});

describe("fstab and crypttab", () => {
  const FSTAB = [
    "# /etc/fstab: static file system information.",
    `UUID=${ROOT_UUID} /               ext4    errors=remount-ro 0       1`,
    "/dev/vdb1 /mnt/My\\040Data ext4 defaults,nofail 0 2",
    "LABEL=swap none swap sw 0 0",
    "tmpfs /tmp tmpfs",
    "/dev/sdc1 /srv xfs noauto",
    "",
  ].join("\n");

  it("parses fields, octal escapes, nofail/noauto and short lines", () => {
    const f = parseFstab(FSTAB);
    expect(f.map((e) => e.file)).toEqual(["/", "/mnt/My Data", "none", "/tmp", "/srv"]);
    expect(f[1]).toMatchObject({ line: 3, nofail: true, passno: 2 });
    expect(f[3]).toMatchObject({ options: ["defaults"], shortLine: true });
    expect(f[4].noauto).toBe(true);
    expect(fstabFor(f, "/")!.spec).toBe(`UUID=${ROOT_UUID}`);
    expect(resolveDeviceSpec(fstabFor(f, "/")!.spec, mbrVols, "azure-nvme").resolvesTo?.partitionIndex).toBe(1);
    expect(resolveDeviceSpec(f[1].spec, mbrVols, "gen2-scsi").problem).toContain("not the first disk");
    expect(resolveDeviceSpec(f[3].spec, mbrVols, "gen2-scsi").kind).toBe("virtual");
  });

  it("parses crypttab", () => {
    const c = parseCrypttab("# <target name> <source device> <key file> <options>\nluks-abc UUID=abc none luks,discard\ncswap /dev/sda2 /dev/urandom swap,cipher=aes-xts-plain64\n");
    expect(c).toEqual([
      { line: 2, name: "luks-abc", device: "UUID=abc", options: ["luks", "discard"] },
      { line: 3, name: "cswap", device: "/dev/sda2", keyFile: "/dev/urandom", options: ["swap", "cipher=aes-xts-plain64"] },
    ]);
  });

  it("refuses a 2 MiB fstab", () => {
    expect(() => parseFstab("#".repeat(2 * 2 ** 20))).toThrow(/more than/);
  });
});
