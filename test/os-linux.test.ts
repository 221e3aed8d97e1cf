// The Linux OS stage: real Debian kernel, kernel config, modules lists and initramfs images (from the Gen1 fixture
// builder's extracted linux-image package and its cpio+gzip initrds) put on disks made with sfdisk + mkfs.ext4 -d;
// evaluated statically (grub.cfg), from hand-off objects, and twice behind the real Gen1 emulation.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { prng, tmpdir } from "./helpers.ts";
import { fixture, GEN1_DIR } from "./fixtures.ts";
import { readLayout } from "../images/layout.ts";
import type { BlockDevice } from "../images/block.ts";
import { evaluateLinux } from "../emu/os-linux.ts";
import { checkImage } from "../emu/check.ts";
import { codes, evaluate, LinuxKit, one, UUID_DATA, UUID_ELSEWHERE, UUID_ROOT, type TreeOpts } from "./linux-disk.ts";

const kit = new LinuxKit(tmpdir("bootgate-oslinux-"));
let KVER: string;
const tree = (name: string, o: TreeOpts) => kit.tree(name, o);
const disk = (name: string, root: string | undefined, second: "data" | "none" = "none", fat = false) => kit.disk(name, root, second, fat);
const lbaOf = (dev: BlockDevice, p: string) => kit.lbaOf(dev, p);
const appendCpio = (base: Buffer, files: Record<string, string>) => kit.appendCpio(base, files);

beforeAll(() => {
  kit.init();
  KVER = kit.KVER;
}, 900_000);
afterAll(() => kit.close());

describe("Linux OS stage, static (default grub.cfg entry, no hand-off)", () => {
  it("finds root=UUID on ext4 with hv_vmbus + hv_storvsc in the initramfs: boots on Gen1 and Gen2", () => {
    const dev = disk("good", tree("good", {}));
    for (const gen of [1, 2] as const) {
      const r = evaluate(dev, gen);
      expect(r).toMatchObject({ reached: "root", verdict: "boots" });
      expect(codes(r)).toEqual(["LINUX_ROOT_FOUND"]);
      expect(r.facts).toMatchObject({ basis: "static", kernelVersion: KVER, storageDrivers: ["hv_vmbus", "hv_storvsc", "sd_mod"],
        root: { volume: "p1", fstype: "ext4", uuid: UUID_ROOT }, rootFsDriver: { module: "ext4", state: "initrd" } });
      expect((r.facts.kernelFacts as Record<string, string>).configFrom).toBe(`p1:/boot/config-${KVER}`);
      expect(r.chain.map((c) => c.what).join("\n")).toContain(`default entry "Debian GNU/Linux"`);
    }
  });

  it("fails when root=UUID names a filesystem that is not on the disk, naming the UUID that is", () => {
    const r = evaluate(disk("stale-uuid", tree("stale-uuid", { cmdline: `root=UUID=${UUID_ELSEWHERE} ro` })), 2);
    expect(r).toMatchObject({ reached: "kernel", verdict: "fails" });
    const f = one(r, "LINUX_ROOT_NOT_ON_DISK");
    expect(f.severity).toBe("error");
    expect(f.message).toContain(UUID_ELSEWHERE);
    expect(f.remedy).toContain(`root=UUID=${UUID_ROOT}`);
    expect(f.evidence.cmdline).toBe(`root=UUID=${UUID_ELSEWHERE} ro`);
  });

  it("fails when root=/dev/vda1 (a virtio-blk name) and says what the target calls it", () => {
    const r = evaluate(disk("vda-root", tree("vda-root", { cmdline: "root=/dev/vda1 ro" })), 1);
    expect(r.verdict).toBe("fails");
    const f = one(r, "LINUX_ROOT_DEVICE_NAME");
    expect(f.message).toContain("/dev/sda1");
    expect(f.remedy).toContain(`sed -i 's|root=/dev/vda1|root=UUID=${UUID_ROOT}|'`);
  });

  it("reaches root but fails on an fstab /data line naming /dev/vda2; /dev/vda1 for / is only a warning", () => {
    const fstab = `/dev/vda1 / ext4 defaults 0 1\n/dev/vda2 /data ext4 defaults 0 2\n/dev/vdb1 /scratch ext4 defaults,nofail 0 2\nproc /proc proc defaults 0 0\n`;
    const r = evaluate(disk("fstab-vda", tree("fstab-vda", { fstab }), "data"), 2);
    expect(r).toMatchObject({ reached: "root", verdict: "fails" });
    const bad = one(r, "LINUX_FSTAB_DEVICE_MISSING");
    expect(bad.severity).toBe("error");
    expect(bad.evidence).toMatchObject({ line: 2, spec: "/dev/vda2", mount: "/data", resolvesTo: "p2" });
    expect(bad.remedy).toContain(`s|^/dev/vda2\\([[:space:]]\\)|UUID=${UUID_DATA}\\1|`);
    const warn = r.findings.filter((f) => f.code === "LINUX_FSTAB_KERNEL_NAME").map((f) => f.evidence.line);
    expect(warn).toEqual([1, 3]);
    expect(codes(r)).not.toContain("LINUX_ROOT_FOUND");
  });

  it("fails when the initramfs's modprobe.d says `install hv_storvsc /bin/false`, on Gen2 and (ata_piix quirk) Gen1", () => {
    const initrd = appendCpio(fs.readFileSync(path.join(GEN1_DIR, "initrd-hv.cpio.gz")),
      { "etc/modprobe.d/hyperv.conf": "# left over from VMware\ninstall hv_storvsc /bin/false\n" });
    const dev = disk("blacklist", tree("blacklist", { initrd }));
    for (const gen of [1, 2] as const) {
      const r = evaluate(dev, gen);
      expect(r).toMatchObject({ reached: "kernel", verdict: "fails" });
      const f = one(r, "LINUX_STORAGE_DRIVER_BLACKLISTED");
      expect(f.evidence.module).toBe("hv_storvsc");
      expect(f.evidence.source).toContain("etc/modprobe.d/hyperv.conf:2 install hv_storvsc /bin/false");
      expect(f.remedy).toMatch(/update-initramfs -u -k|dracut -f/);
    }
    expect((evaluate(dev, 2).facts.initramfs as { segments: unknown[] }).segments).toHaveLength(2);
  });

  it("fails on Gen1 through the ata_piix quirk when only ata_piix is in the initramfs, and on Gen2 for lack of hv_storvsc", () => {
    const dev = disk("nohv", tree("nohv", { initrd: fs.readFileSync(path.join(GEN1_DIR, "initrd-nohv.cpio.gz")) }));
    const g1 = evaluate(dev, 1);
    expect(g1.verdict).toBe("fails");
    const q = one(g1, "LINUX_ATA_PIIX_DEFERS_TO_STORVSC");
    expect(q.evidence).toMatchObject({ config: "m", configFrom: `p1:/boot/config-${KVER}` });
    expect(q.remedy).toContain(`hv_vmbus hv_storvsc`);
    expect(one(evaluate(dev, 2), "LINUX_STORAGE_DRIVER_MISSING").message).toContain("hv_vmbus, hv_storvsc");
  });

  it("stays inconclusive, saying what is missing, when neither modules.builtin nor the kernel config is in the image", () => {
    const dev = disk("nofacts", tree("nofacts", { kernelFacts: false, initrd: fs.readFileSync(path.join(GEN1_DIR, "initrd-nohv.cpio.gz")) }));
    const r = evaluate(dev, 1);
    expect(r).toMatchObject({ reached: "kernel", verdict: "inconclusive" });
    expect(codes(r)).toContain("LINUX_KERNEL_FACTS_MISSING");
    expect(one(r, "LINUX_EVIDENCE_MISSING").message).toContain("CONFIG_HYPERV_STORAGE");
  });

  it("treats an initrd of 64 KiB random bytes as missing evidence, not a crash", () => {
    const r = evaluate(disk("junk-initrd", tree("junk-initrd", { initrd: prng(77, 65536) })), 2);
    expect(r.verdict).toBe("inconclusive");
    expect(one(r, "LINUX_INITRD_UNREADABLE").message).toContain("E_INITRAMFS_MAGIC");
    expect(codes(r)).toContain("LINUX_EVIDENCE_MISSING");
  });

  it("returns undefined for a disk that holds no Linux (one FAT32 partition)", () => {
    const dev = disk("fat-only", undefined, "none", true);
    expect(evaluateLinux({ dev, layout: readLayout(dev), generation: 1, target: "azure" })).toBeUndefined();
  });
});

describe("Linux OS stage from a hand-off", () => {
  let good: BlockDevice, nohv: BlockDevice;
  beforeAll(() => {
    good = disk("ho-good", tree("ho-good", { grubCfg: false }));
    nohv = disk("ho-nohv", tree("ho-nohv", { grubCfg: false, initrd: fs.readFileSync(path.join(GEN1_DIR, "initrd-nohv.cpio.gz")) }));
  });
  const handoff = (dev: BlockDevice, cmdline: string, initrdSize: number) => ({
    cmdline, kernelVersion: `${KVER} (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian`,
    initrd: { size: initrdSize }, kernelLoadedFrom: { lba: lbaOf(dev, `/boot/vmlinuz-${KVER}`) + 3 },
    initrdLoadedFrom: { lba: lbaOf(dev, `/boot/initrd.img-${KVER}`) },
  });

  it("maps the kernel and initrd LBAs back to their files without any boot configuration", () => {
    const size = fs.statSync(path.join(GEN1_DIR, "initrd-hv.cpio.gz")).size;
    const r = evaluate(good, 1, handoff(good, `BOOT_IMAGE=/boot/vmlinuz-${KVER} root=UUID=${UUID_ROOT} ro`, size));
    expect(r).toMatchObject({ reached: "root", verdict: "boots" });
    expect(r.chain[0].what).toBe(`Linux ${KVER} from /boot/vmlinuz-${KVER} on partition 1 (handed off by the boot loader)`);
    expect((r.facts.initramfs as { files: { path: string }[] }).files[0].path).toBe(`/boot/initrd.img-${KVER}`);
  });

  it("fails when the command line blacklists hv_vmbus with rd.driver.blacklist", () => {
    const size = fs.statSync(path.join(GEN1_DIR, "initrd-hv.cpio.gz")).size;
    const r = evaluate(good, 2, handoff(good, `root=UUID=${UUID_ROOT} ro rd.driver.blacklist=hv_vmbus`, size));
    expect(r.verdict).toBe("fails");
    expect(one(r, "LINUX_STORAGE_DRIVER_BLACKLISTED").evidence).toMatchObject({ module: "hv_vmbus", source: "kernel command line:1 blacklist hv_vmbus" });
  });

  it("boots Gen1 through ata_piix when the command line says ata_piix.prefer_ms_hyperv=0; Gen2 still fails", () => {
    const size = fs.statSync(path.join(GEN1_DIR, "initrd-nohv.cpio.gz")).size;
    const h = handoff(nohv, `root=UUID=${UUID_ROOT} ro ata_piix.prefer_ms_hyperv=0`, size);
    const g1 = evaluate(nohv, 1, h);
    expect(g1).toMatchObject({ reached: "root", verdict: "boots" });
    expect(g1.facts.storageDrivers).toEqual(["ata_piix", "sd_mod"]);
    expect(evaluate(nohv, 2, h).verdict).toBe("fails");
  });

  it("is inconclusive when the loaded initrd matches no file (LBA in the MBR gap, no initrd line to fall back on)", () => {
    const r = evaluate(good, 2, { ...handoff(good, `root=UUID=${UUID_ROOT}`, 12345), initrdLoadedFrom: { lba: 5 } });
    expect(r).toMatchObject({ reached: "kernel", verdict: "inconclusive" });
    expect(one(r, "LINUX_INITRD_NOT_LOCATED").message).toContain("12345-byte initramfs (first sector from LBA 5)");
    expect(one(r, "LINUX_EVIDENCE_MISSING").message).toContain("the initramfs file the boot loader loaded");
  });
});

describe("Linux OS stage behind the real Gen1 emulation (check)", () => {
  it("grub-mbr.img: GRUB hands off, the OS stage finds root=UUID with hv_storvsc: boots, ROOT_NOT_EVALUATED gone", () => {
    const g = checkImage(fixture("grub-mbr.img"), { gens: [1], target: "hyperv" }).generations[0];
    expect(g).toMatchObject({ reached: "root", verdict: "boots" });
    const c = g.findings.map((f) => f.code);
    expect(c).toContain("GEN1_LINUX_HANDOFF");
    expect(c).toContain("LINUX_ROOT_FOUND");
    expect(c).not.toContain("ROOT_NOT_EVALUATED");
    expect(g.chain.map((s) => s.what)).toContain(`Linux ${KVER} from /boot/vmlinuz-${KVER} on partition 1 (handed off by the boot loader)`);
  }, 180_000);

  it("grub-no-hv-initrd.img: fails on Gen1 through ata_piix's Hyper-V quirk (CONFIG_HYPERV_STORAGE=m in /boot/config)", () => {
    const g = checkImage(fixture("grub-no-hv-initrd.img"), { gens: [1], target: "hyperv" }).generations[0];
    expect(g).toMatchObject({ reached: "kernel", verdict: "fails" });
    const f = g.findings.find((x) => x.code === "LINUX_ATA_PIIX_DEFERS_TO_STORVSC");
    expect(f?.evidence).toMatchObject({ config: "m", configFrom: `p1:/boot/config-${KVER}` });
    expect(f?.remedy).toMatch(/hv_vmbus hv_storvsc/);
  }, 180_000);
});
