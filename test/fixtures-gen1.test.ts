// Checks that every Gen1 boot fixture has the structure it claims, with the real tools (sfdisk, sgdisk, blkid, debugfs, mtools, qemu-img).
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { sh, tmpdir } from "./helpers.ts";
import { ensureGen1Fixtures, fixture, fixtureManifest, GEN1_FIXTURES, type Gen1Manifest } from "./fixtures.ts";

const GRUB_DIR = "/usr/lib/grub/i386-pc";
const SECTOR = 512;

function readAt(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, "r");
  try {
    const b = Buffer.alloc(length);
    const n = fs.readSync(fd, b, 0, length, offset);
    return b.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}
const sector0 = (f: string) => readAt(f, 0, SECTOR);

interface SfdiskPart { start: number; size: number; type: string; bootable?: boolean; uuid?: string; name?: string }
interface SfdiskTable { label: string; id: string; firstlba?: number; partitions: SfdiskPart[] }
function sfdisk(f: string): SfdiskTable {
  return (JSON.parse(sh("sfdisk", ["--json", f])) as { partitiontable: SfdiskTable }).partitiontable;
}

/** ext4 at a byte offset, read with e2fsprogs' `file?offset=N` io option (no loop device). */
const ext4At = (f: string, lba: number) => `${f}?offset=${lba * SECTOR}`;
function debugfs(f: string, lba: number, cmd: string): string {
  return sh("debugfs", ["-R", cmd, ext4At(f, lba)]);
}
function dumpFile(f: string, lba: number, inside: string, dir: string): string {
  const out = path.join(dir, path.basename(inside) + "." + lba);
  sh("debugfs", ["-R", `dump ${inside} ${out}`, ext4At(f, lba)]);
  return out;
}

/** core.img as grub-mkimage builds it today: the fixture must hold these exact bytes (bar the blocklist start). */
function coreImg(dir: string, prefix: string, mods: string[]): Buffer {
  const out = path.join(dir, `core-${mods.join("-")}-${prefix.replace(/\W/g, "_")}.img`);
  sh("grub-mkimage", ["-O", "i386-pc", "-d", GRUB_DIR, "-p", prefix, "-o", out, ...mods]);
  return fs.readFileSync(out);
}
/** The GRUB core at `lba` equals `core` except the diskboot blocklist start (0x1F4), which must be lba + 1. */
function expectCoreAt(f: string, lba: number, core: Buffer): void {
  const got = readAt(f, lba * SECTOR, core.length);
  expect(got.readBigUInt64LE(0x1f4)).toBe(BigInt(lba + 1));
  const want = Buffer.from(core);
  want.writeBigUInt64LE(BigInt(lba + 1), 0x1f4);
  expect(got.equals(want)).toBe(true);
}
/** Sector 0 holds GRUB's boot.img (bytes 0..439) with the core LBA at 0x5C and the drive check NOPed at 0x66. */
function expectGrubBootImg(f: string, coreLba: number): void {
  const s0 = sector0(f);
  const boot = fs.readFileSync(path.join(GRUB_DIR, "boot.img"));
  expect(s0.readBigUInt64LE(0x5c)).toBe(BigInt(coreLba));
  expect([...s0.subarray(0x66, 0x68)]).toEqual([0x90, 0x90]);
  const want = Buffer.from(boot.subarray(0, 440));
  want.writeBigUInt64LE(BigInt(coreLba), 0x5c);
  want[0x66] = 0x90;
  want[0x67] = 0x90;
  expect(s0.subarray(0, 440).equals(want)).toBe(true);
  expect(s0.readUInt16LE(0x1fe)).toBe(0xaa55);
}

function cpioNames(gz: string): string[] {
  const cpio = execFileSync("gzip", ["-dc", gz], { maxBuffer: 64 << 20 });
  return sh("cpio", ["-it", "--quiet"], { input: cpio }).trim().split("\n");
}

let m: Gen1Manifest;
let work: string;
let coreMsdos1: Buffer;

beforeAll(() => {
  ensureGen1Fixtures();
  m = fixtureManifest();
  work = tmpdir("bootgate-fx-");
  coreMsdos1 = coreImg(work, "(hd0,msdos1)/boot/grub", ["biosdisk", "part_msdos", "ext2"]);
}, 900_000);

describe("gen1 fixture set", () => {
  it("records a Debian 6.1 kernel and the pinned identities in manifest.json", () => {
    expect(m.kernelVersion).toMatch(/^6\.1\.\d+-\d+-amd64$/);
    expect(m.kernelPackage.startsWith(`linux-image-${m.kernelVersion}_`)).toBe(true);
    expect(m.rootUuid).toBe("b007ea7e-0000-4000-8000-000000000001");
    expect(m.notBuilt["extlinux-ext4.img"]).toMatch(/mounted/);
    expect(Object.keys(m.fixtures).sort()).toEqual([...GEN1_FIXTURES].sort());
  });

  it("builds every raw fixture as a sparse 64 MiB disk listed in SHA256SUMS", () => {
    const sums = fs.readFileSync(path.join(path.dirname(fixture("grub-mbr.img")), "SHA256SUMS"), "utf8");
    for (const name of GEN1_FIXTURES) {
      const st = fs.statSync(fixture(name));
      expect(st.size).toBe(m.diskBytes);
      expect(st.blocks * 512).toBeLessThan(st.size / 2);
      expect(sums).toContain(`  ${name}\n`);
    }
  });

  it("rejects an unknown fixture name", () => {
    expect(() => fixture("extlinux-ext4.img")).toThrow(/unknown fixture/);
  });
});

describe("GRUB on MBR", () => {
  it("grub-mbr.img: one active Linux partition at 1 MiB, boot.img in sector 0, core.img at LBA 1", () => {
    const f = fixture("grub-mbr.img");
    const t = sfdisk(f);
    expect(t.label).toBe("dos");
    expect(t.id).toBe("0xb007ea7e");
    expect(t.partitions).toHaveLength(1);
    expect(t.partitions[0]).toMatchObject({ start: 2048, size: 129024, type: "83", bootable: true });
    expectGrubBootImg(f, 1);
    expectCoreAt(f, 1, coreMsdos1);
  });

  it("grub-mbr.img: ext4 root with the fixed UUID holding the kernel, initrd, grub.cfg and GRUB's modules", () => {
    const f = fixture("grub-mbr.img");
    const v = m.kernelVersion;
    expect(sh("blkid", ["-p", "-O", String(2048 * SECTOR), "-o", "export", f])).toContain(`UUID=${m.rootUuid}\nVERSION=1.0\nBLOCK_SIZE=4096\nTYPE=ext4`);
    const sb = sh("dumpe2fs", ["-h", ext4At(f, 2048)]);
    expect(sb).toMatch(/Filesystem volume name:\s+root/);
    expect(sb).toMatch(new RegExp(`Filesystem UUID:\\s+${m.rootUuid}`));
    expect(sb).toMatch(/Filesystem created:\s+Tue Nov 14 22:13:20 2023/);
    const cfg = debugfs(f, 2048, "cat /boot/grub/grub.cfg");
    expect(cfg).toContain("set timeout=0\n");
    expect(cfg).toContain(`linux /boot/vmlinuz-${v} root=UUID=${m.rootUuid} ro console=ttyS0 quiet\n`);
    expect(cfg).toContain(`initrd /boot/initrd.img-${v}\nboot\n`);
    expect(m.fixtures["grub-mbr.img"].append).toBe(`root=UUID=${m.rootUuid} ro console=ttyS0 quiet`);
    expect(m.fixtures["grub-mbr.img"].cmdline).toBe(`BOOT_IMAGE=/boot/vmlinuz-${v} root=UUID=${m.rootUuid} ro console=ttyS0 quiet`);
    expect(debugfs(f, 2048, "cat /etc/fstab")).toBe(`UUID=${m.rootUuid} / ext4 defaults 0 1\n`);
    const mods = debugfs(f, 2048, "ls /boot/grub/i386-pc");
    for (const mod of ["normal.mod", "linux.mod", "ext2.mod", "biosdisk.mod", "command.lst", "moddep.lst"]) expect(mods).toContain(mod);
    expect(debugfs(f, 2048, `ls /lib/modules/${v}/kernel/drivers/hv`)).toContain("hv_vmbus.ko");
    expect(debugfs(f, 2048, `ls /lib/modules/${v}/kernel/drivers/scsi`)).toContain("hv_storvsc.ko");
  });

  it("grub-mbr.img: /boot holds Debian's bzImage and a gzip newc initramfs with busybox and the Hyper-V storage modules", () => {
    const f = fixture("grub-mbr.img");
    const v = m.kernelVersion;
    const kernel = fs.readFileSync(dumpFile(f, 2048, `/boot/vmlinuz-${v}`, work));
    expect(kernel.subarray(0x202, 0x206).toString("latin1")).toBe("HdrS"); // Linux x86 boot protocol header
    const verOff = kernel.readUInt16LE(0x20e) + 0x200; // kernel_version pointer
    expect(kernel.subarray(verOff, verOff + v.length).toString("latin1")).toBe(v);
    const initrd = dumpFile(f, 2048, `/boot/initrd.img-${v}`, work);
    expect([...readAt(initrd, 0, 2)]).toEqual([0x1f, 0x8b]);
    const names = cpioNames(initrd);
    expect(names).toContain("init");
    expect(names).toContain("bin/busybox");
    for (const ko of m.initrdModules) expect(names).toContain(`lib/modules/${v}/${ko}`);
    for (const need of ["hv_vmbus.ko", "hv_storvsc.ko", "ata_piix.ko", "sd_mod.ko", "ext4.ko"]) {
      expect(m.initrdModules.some((p) => p.endsWith(`/${need}`))).toBe(true);
    }
    expect(fs.readFileSync(initrd).equals(fs.readFileSync(fixture("initrd-hv.cpio.gz")))).toBe(true);
  });

  it("grub-wrong-prefix.img: same filesystem, core.img built with the prefix (hd0,msdos2)/boot/grub", () => {
    const f = fixture("grub-wrong-prefix.img");
    const good = fixture("grub-mbr.img");
    expectGrubBootImg(f, 1);
    const wrong = coreImg(work, "(hd0,msdos2)/boot/grub", ["biosdisk", "part_msdos", "ext2"]);
    expect(wrong.equals(coreMsdos1)).toBe(false);
    expectCoreAt(f, 1, wrong);
    expect(sfdisk(f).partitions).toHaveLength(1);
    expect(readAt(f, 2048 * SECTOR, 8 << 20).equals(readAt(good, 2048 * SECTOR, 8 << 20))).toBe(true);
  });

  it("grub-menu-timeout.img: two menu entries, default 0, timeout 5, and every module normal.mod depends on", () => {
    const f = fixture("grub-menu-timeout.img");
    expectCoreAt(f, 1, coreMsdos1);
    const cfg = debugfs(f, 2048, "cat /boot/grub/grub.cfg");
    expect(cfg).toContain("set default=0\n");
    expect(cfg).toContain("set timeout=5\n");
    expect(cfg.match(/^menuentry /gm)).toHaveLength(2);
    expect(cfg).toContain(`linux /boot/vmlinuz-${m.kernelVersion} ${m.fixtures["grub-menu-timeout.img"].append}\n`);
    const present = new Set(debugfs(f, 2048, "ls -p /boot/grub/i386-pc").split("\n").map((l) => l.split("/")[5]).filter(Boolean));
    const moddep = new Map(fs.readFileSync(path.join(GRUB_DIR, "moddep.lst"), "utf8").trim().split("\n").map((l) => {
      const [k, deps] = l.split(":");
      return [k!, (deps ?? "").trim().split(/\s+/).filter(Boolean)] as const;
    }));
    const todo = ["normal", "linux"];
    const seen = new Set<string>();
    while (todo.length) {
      const mod = todo.pop()!;
      if (seen.has(mod)) continue;
      seen.add(mod);
      expect(present.has(`${mod}.mod`), `${mod}.mod in /boot/grub/i386-pc`).toBe(true);
      todo.push(...(moddep.get(mod) ?? []));
    }
    expect(seen.size).toBeGreaterThan(5);
  });

  it("grub-no-hv-initrd.img: the initrd has ata_piix and ext4 but neither hv_vmbus nor hv_storvsc", () => {
    const f = fixture("grub-no-hv-initrd.img");
    const names = cpioNames(dumpFile(f, 2048, `/boot/initrd.img-${m.kernelVersion}`, work));
    expect(names.some((n) => n.endsWith("/ata_piix.ko"))).toBe(true);
    expect(names.some((n) => n.endsWith("/ext4.ko"))).toBe(true);
    expect(names.some((n) => n.endsWith("/hv_vmbus.ko") || n.endsWith("/hv_storvsc.ko"))).toBe(false);
    expect(m.initrdModulesNoHv.some((p) => p.includes("/hv/"))).toBe(false);
    expect(debugfs(f, 2048, `ls /lib/modules/${m.kernelVersion}/kernel/drivers/scsi`)).toContain("hv_storvsc.ko"); // root still has them
  });

  it("zeroed-bootcode.img: bytes 0..439 are zero, the signature and partition table are kept", () => {
    const f = fixture("zeroed-bootcode.img");
    const s0 = sector0(f);
    const good = sector0(fixture("grub-mbr.img"));
    expect(s0.subarray(0, 440).every((b) => b === 0)).toBe(true);
    expect(s0.subarray(440).equals(good.subarray(440))).toBe(true);
    expect(sfdisk(f).partitions[0]).toMatchObject({ start: 2048, bootable: true });
  });

  it("no-55aa.img: GRUB's boot code is intact but 0x1FE..0x1FF are zero", () => {
    const f = fixture("no-55aa.img");
    const s0 = sector0(f);
    const good = sector0(fixture("grub-mbr.img"));
    expect(s0.readUInt16LE(0x1fe)).toBe(0);
    expect(s0.subarray(0, 0x1fe).equals(good.subarray(0, 0x1fe))).toBe(true);
    expect(() => sh("sfdisk", ["--dump", f])).toThrow(); // no 55AA, so no recognisable MBR
  });
});

describe("GRUB on GPT", () => {
  it("grub-gpt-biosboot.img: a 1 MiB BIOS boot partition holding core.img (part_gpt, prefix (hd0,gpt2)) and ext4 root", () => {
    const f = fixture("grub-gpt-biosboot.img");
    const t = sfdisk(f);
    expect(t.label).toBe("gpt");
    expect(t.id).toBe(m.gptDiskGuid);
    expect(t.partitions).toHaveLength(2);
    expect(t.partitions[0]).toMatchObject({ start: 2048, size: 2048, type: "21686148-6449-6E6F-744E-656564454649", name: "BIOS boot" });
    expect(t.partitions[1]).toMatchObject({ start: 4096, type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4" });
    const sg = sh("sgdisk", ["-p", f]);
    expect(sg).toMatch(/^\s+1\s+2048\s+4095\s+1024\.0 KiB\s+EF02\s+BIOS boot$/m);
    expect(sh("sgdisk", ["-v", f])).toContain("No problems found");
    expect(sector0(f)[0x1c2]).toBe(0xee); // protective MBR entry
    expectGrubBootImg(f, 2048);
    expectCoreAt(f, 2048, coreImg(work, "(hd0,gpt2)/boot/grub", ["biosdisk", "part_gpt", "ext2"]));
    expect(sh("blkid", ["-p", "-O", String(4096 * SECTOR), "-s", "UUID", "-o", "value", f]).trim()).toBe(m.rootUuid);
    expect(debugfs(f, 4096, "cat /boot/grub/grub.cfg")).toContain(`root=UUID=${m.rootUuid} ro console=ttyS0 quiet`);
  });

  it("gpt-no-biosboot.img: only the ext4 root; boot.img still points at LBA 2048, which is unpartitioned zeros", () => {
    const f = fixture("gpt-no-biosboot.img");
    const t = sfdisk(f);
    expect(t.label).toBe("gpt");
    expect(t.partitions).toHaveLength(1);
    expect(t.partitions[0]).toMatchObject({ start: 4096, type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4" });
    expectGrubBootImg(f, 2048);
    expect(readAt(f, 2048 * SECTOR, 2048 * SECTOR).every((b) => b === 0)).toBe(true);
    expect(debugfs(f, 4096, "ls /boot/grub")).toContain("grub.cfg");
  });
});

describe("SYSLINUX", () => {
  it("syslinux-fat.img: mbr.bin in sector 0, active FAT32 with ldlinux.sys, kernel, initrd and syslinux.cfg", () => {
    const f = fixture("syslinux-fat.img");
    const mbr = fs.readFileSync("/usr/lib/syslinux/mbr/mbr.bin");
    const s0 = sector0(f);
    expect(s0.subarray(0, 440).equals(mbr.subarray(0, 440))).toBe(true);
    expect(s0.readUInt16LE(0x1fe)).toBe(0xaa55);
    const t = sfdisk(f);
    expect(t.partitions[0]).toMatchObject({ start: 2048, size: 81920, type: "c", bootable: true });
    expect(t.partitions[1]).toMatchObject({ start: 83968, type: "83" });
    expect(t.partitions[1]!.bootable).toBeUndefined();
    const vbr = readAt(f, 2048 * SECTOR, SECTOR);
    expect(vbr.subarray(3, 11).toString("latin1")).toBe("SYSLINUX"); // OEM name written by the installer
    expect(vbr.readUInt32LE(0x1c)).toBe(2048); // hidden sectors = partition start
    expect(vbr.subarray(0x52, 0x5a).toString("latin1")).toBe("FAT32   ");
    const fat = `${f}@@${2048 * SECTOR}`;
    const env = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
    const dir = execFileSync("mdir", ["-a", "-i", fat, "::/"], { encoding: "utf8", env });
    for (const entry of [/ldlinux\s+sys/, /ldlinux\s+c32/, /vmlinuz\s+\d+/, /initrd\s+img/, /syslinux\s+cfg/]) expect(dir).toMatch(entry);
    expect(execFileSync("minfo", ["-i", fat], { encoding: "utf8", env })).toMatch(/serial number: B007EA7E/);
    const cfg = execFileSync("mtype", ["-i", fat, "::/syslinux.cfg"], { encoding: "utf8", env });
    expect(cfg).toContain("DEFAULT linux\n");
    expect(cfg).toContain("LABEL linux\n  KERNEL vmlinuz\n");
    expect(cfg).toContain(`  APPEND root=UUID=${m.rootUuid} ro console=ttyS0\n  INITRD initrd.img\n`);
    expect(sh("blkid", ["-p", "-O", String(83968 * SECTOR), "-s", "UUID", "-o", "value", f]).trim()).toBe(m.rootUuid);
  });

  it("no-active.img: identical to syslinux-fat.img except that no partition is marked active", () => {
    const f = fixture("no-active.img");
    const good = fixture("syslinux-fat.img");
    const s0 = sector0(f);
    const g0 = sector0(good);
    expect(s0[0x1be]).toBe(0);
    expect(g0[0x1be]).toBe(0x80);
    expect(Buffer.concat([s0.subarray(0, 0x1be), s0.subarray(0x1bf)]).equals(Buffer.concat([g0.subarray(0, 0x1be), g0.subarray(0x1bf)]))).toBe(true);
    expect(sfdisk(f).partitions.every((p) => !p.bootable)).toBe(true);
    expect(readAt(f, 2048 * SECTOR, 1 << 20).equals(readAt(good, 2048 * SECTOR, 1 << 20))).toBe(true);
  });
});

describe("demo images and containers", () => {
  /** VHD footer: "conectix", disk type at 60 (2 fixed, 3 dynamic), checksum at 64 over the footer with it zeroed. */
  function vhdFooter(f: string, at: number) {
    const ft = readAt(f, at, 512);
    let sum = 0;
    for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += ft[i]!;
    return {
      cookie: ft.subarray(0, 8).toString("latin1"),
      timestamp: ft.readUInt32BE(24),
      currentSize: ft.readBigUInt64BE(48),
      diskType: ft.readUInt32BE(60),
      checksumOk: ((~sum) >>> 0) === ft.readUInt32BE(64),
      uuid: ft.subarray(68, 84).toString("hex"),
    };
  }

  it("demo-good.vhd and demo-broken.vhd are Azure-style fixed VHDs of a whole number of MiB with pinned footers", () => {
    for (const [name, src] of [["demo-good.vhd", "grub-mbr.img"], ["demo-broken.vhd", "grub-wrong-prefix.img"]] as const) {
      const f = fixture(name);
      const size = fs.statSync(f).size;
      expect(size).toBe(m.diskBytes + 512);
      const ft = vhdFooter(f, size - 512);
      expect(ft).toMatchObject({ cookie: "conectix", diskType: 2, checksumOk: true, currentSize: BigInt(m.diskBytes) });
      expect(ft.timestamp).toBe(1700000000 - 946684800);
      expect(ft.uuid.startsWith("b007ea7e")).toBe(true);
      expect(readAt(f, 0, m.diskBytes).equals(readAt(fixture(src), 0, m.diskBytes))).toBe(true);
    }
  });

  it("demo-dynamic.vhd is a dynamic VHD (the subformat Azure refuses) with the same contents", () => {
    const f = fixture("demo-dynamic.vhd");
    const size = fs.statSync(f).size;
    const head = vhdFooter(f, 0);
    const tail = vhdFooter(f, size - 512);
    expect(head).toMatchObject({ cookie: "conectix", diskType: 3, checksumOk: true });
    expect(tail).toEqual(head);
    expect(sh("qemu-img", ["compare", "-f", "vpc", "-F", "raw", f, fixture("grub-mbr.img")])).toContain("Images are identical");
  });

  it("grub-mbr in vhd, vhdx, streamOptimized vmdk and qcow2 reads back identical to the raw image", () => {
    const raw = fixture("grub-mbr.img");
    for (const [name, fmt] of [["grub-mbr.vhd", "vpc"], ["grub-mbr.vhdx", "vhdx"], ["grub-mbr.vmdk", "vmdk"], ["grub-mbr.qcow2", "qcow2"]] as const) {
      const info = JSON.parse(sh("qemu-img", ["info", "-f", fmt, "--output=json", fixture(name)])) as { format: string; "virtual-size": number };
      expect(info.format).toBe(fmt);
      expect(info["virtual-size"]).toBe(m.diskBytes);
      expect(sh("qemu-img", ["compare", "-f", fmt, "-F", "raw", fixture(name), raw])).toContain("Images are identical");
    }
    expect(readAt(fixture("grub-mbr.vmdk"), 0, 4096).toString("latin1")).toContain("CID=b007ea7e\n");
  });
});
