// Valid seed inputs for the fuzzing harness, made by the real tools (sfdisk, mkfs.*, mtools, mkntfs +
// libntfs-3g, qemu-img, cpio, gzip/xz/zstd/lz4/bzip2, hivexregedit, grub-editenv) or taken from the
// Debian-built fixtures (.cache/fixtures/gen1) and packages (shim-signed); cached in .cache/fuzz/seeds.
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { ROOT, emptyHive, hiveFromReg, regHex, prng } from "../test/helpers.ts";
import { NtfsWriter } from "../test/ntfs-writer.ts";
import { protoFor, writePv } from "../test/image-builders.ts";
import { FileSource } from "../images/source.ts";
import { rawDriver } from "../images/raw.ts";
import { Disk } from "../images/block.ts";
import { readLayout } from "../images/layout.ts";
import { openVolumes } from "../images/fs-open.ts";
import { readFileAt } from "../images/fs.ts";

export const SEED_DIR = path.join(ROOT, ".cache/fuzz/seeds");
export const GEN1_DIR = path.join(ROOT, ".cache/fixtures/gen1");
const STAMP_VERSION = "seeds-3";
const MiB = 1024 * 1024;

const sh = (cmd: string, args: string[], opts: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  execFileSync(cmd, args, { input: opts.input, cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 256 * MiB });

export const seedPath = (name: string) => path.join(SEED_DIR, name);
export const gen1Path = (name: string) => path.join(GEN1_DIR, name);

/** A small directory tree shared by the filesystem, cpio and initramfs seeds. */
function makeTree(dir: string): void {
  const put = (p: string, b: Buffer | string) => { fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true }); fs.writeFileSync(path.join(dir, p), b); };
  put("boot/grub/grub.cfg", "set default=0\nmenuentry 'Debian' {\n  linux /vmlinuz root=UUID=0b5e1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b ro\n  initrd /initrd.img\n}\n");
  put("etc/fstab", "UUID=0b5e1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b / ext4 errors=remount-ro 0 1\n");
  put("etc/hostname", "fuzz\n");
  put("lib/modules/6.1.0-56-amd64/modules.dep", "kernel/drivers/hv/hv_vmbus.ko:\nkernel/drivers/scsi/hv_storvsc.ko: kernel/drivers/hv/hv_vmbus.ko\n");
  put("lib/modules/6.1.0-56-amd64/kernel/drivers/hv/hv_vmbus.ko", prng(7, 20000));
  put("lib/modules/6.1.0-56-amd64/kernel/drivers/scsi/hv_storvsc.ko", prng(8, 9000));
  put("usr/bin/big.bin", prng(9, 300 * 1024));
  put("A directory with a long name/and a file whose name is longer than eleven characters.txt", "long\n");
  for (let i = 0; i < 40; i++) put(`many/file-${String(i).padStart(3, "0")}.txt`, `file ${i}\n`);
  fs.mkdirSync(path.join(dir, "sbin"), { recursive: true });
  fs.symlinkSync("../usr/bin/big.bin", path.join(dir, "sbin/init"));
  fs.symlinkSync("/etc/hostname", path.join(dir, "etc/hostname.link"));
}

function lvmText(): string {
  const id = (s: string) => [s.slice(0, 6), s.slice(6, 10), s.slice(10, 14), s.slice(14, 18), s.slice(18, 22), s.slice(22, 26), s.slice(26)].join("-");
  return [`fuzzvg {`, `id = "${id("RX2i78sZFzB21AQeEaAc9CIPZhLs6FKk")}"`, "seqno = 3", `format = "lvm2"`, `status = ["RESIZEABLE", "READ", "WRITE"]`,
    "flags = []", "extent_size = 2048", "max_lv = 0", "max_pv = 0", "metadata_copies = 0", "", "physical_volumes {", "",
    "pv0 {", `id = "${id("Zfuzz1PVaaaabbbbccccddddeeeeffff")}"`, `device = "/dev/sda2"`, "", `status = ["ALLOCATABLE"]`, "flags = []",
    "dev_size = 40960", "pe_start = 2048", "pe_count = 18", "}", "}", "", "logical_volumes {", "",
    "root {", `id = "${id("VUA3s74sqUujuXuHeHCBYaVTgkrah3lr")}"`, `status = ["READ", "WRITE", "VISIBLE"]`, "flags = []",
    "creation_time = 1700000000", `creation_host = "fuzz"`, "segment_count = 2", "",
    "segment1 {", "start_extent = 0", "extent_count = 8", "", `type = "striped"`, "stripe_count = 1", "", "stripes = [", `"pv0", 8`, "]", "}",
    "segment2 {", "start_extent = 8", "extent_count = 8", "", `type = "striped"`, "stripe_count = 1", "", "stripes = [", `"pv0", 0`, "]", "}",
    "}", "}", "", "}", `contents = "Text Format Volume Group"`, "version = 1", `description = "fuzz seed"`, "",
    `creation_host = "fuzz"`, "creation_time = 1700000000", ""].join("\n");
}

const dword = (n: number) => `dword:${n.toString(16).padStart(8, "0")}`;

function systemReg(): string[] {
  const svc = (name: string, start: number) => [`[\\ControlSet001\\Services\\${name}]`, `"Start"=${dword(start)}`, `"Type"=${dword(1)}`,
    `"ErrorControl"=${dword(3)}`, `"ImagePath"=hex(2):${regHex(Buffer.from(`System32\\drivers\\${name}.sys\0`, "utf16le"))}`, `"Group"="SCSI miniport"`, ""];
  const mbrC = Buffer.alloc(12); mbrC.writeUInt32LE(0x9c3e5a71, 0); mbrC.writeBigUInt64LE(104857600n, 4);
  return ["[\\Select]", `"Current"=${dword(1)}`, `"Default"=${dword(1)}`, `"LastKnownGood"=${dword(2)}`, "",
    ...svc("storvsc", 0), ...svc("vmbus", 0), ...svc("storflt", 0), ...svc("intelide", 0), ...svc("atapi", 0), ...svc("disk", 0), ...svc("pciide", 3),
    "[\\ControlSet001\\Services\\storahci\\StartOverride]", `"0"=${dword(3)}`, "",
    "[\\ControlSet001\\Control\\CriticalDeviceDatabase\\pci#ven_8086&dev_7111]", '"Service"="intelide"', "",
    "[\\DriverDatabase\\DeviceIds\\PCI\\VEN_8086&DEV_7111]", '"mshdc.inf"=hex:01,ff,00,00', "",
    "[\\MountedDevices]", `"\\\\DosDevices\\\\C:"=hex:${regHex(mbrC)}`, "",
    "[\\ControlSet001\\Control\\Big]", `"Blob"=hex:${regHex(prng(11, 20000))}`, `"Multi"=hex(7):${regHex(Buffer.from("a\0bb\0ccc\0\0", "utf16le"))}`, ""];
}

function bcdReg(): string[] {
  const BM = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}", OS = "{4c2a6f8e-1b3d-11ef-9a5b-00155d012345}";
  const part = (offset: number) => { const b = Buffer.alloc(0x58); b.writeUInt32LE(6, 0x10); b.writeUInt32LE(0x48, 0x18);
    b.writeBigUInt64LE(BigInt(offset), 0x20); b.writeUInt32LE(1, 0x34); b.writeUInt32LE(0x9c3e5a71, 0x38); return b; };
  const el = (obj: string, type: string, data: string) => [`[\\Objects\\${obj}\\Elements\\${type}]`, `"Element"=${data}`, ""];
  return ["[\\Description]", '"KeyName"="BCD00000000"', "", `[\\Objects\\${BM}\\Description]`, '"Type"=dword:10100002', "",
    ...el(BM, "11000001", `hex:${regHex(part(1048576))}`), ...el(BM, "12000004", '"Windows Boot Manager"'), ...el(BM, "23000003", `"${OS}"`),
    ...el(BM, "24000001", `hex(7):${regHex(Buffer.from(`${OS}\0\0`, "utf16le"))}`), ...el(BM, "25000004", "hex:1e,00,00,00,00,00,00,00"),
    `[\\Objects\\${OS}\\Description]`, '"Type"=dword:10200003', "",
    ...el(OS, "11000001", `hex:${regHex(part(105906176))}`), ...el(OS, "21000001", `hex:${regHex(part(105906176))}`),
    ...el(OS, "12000002", '"\\\\Windows\\\\system32\\\\winload.exe"'), ...el(OS, "12000004", '"Windows Server 2019"'), ...el(OS, "22000002", '"\\\\Windows"')];
}

const BLS = [
  "title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Server Edition)\nversion 6.5.6-300.fc39.x86_64\nlinux /vmlinuz-6.5.6-300.fc39.x86_64\n" +
  "initrd /initramfs-6.5.6-300.fc39.x86_64.img\noptions root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/root $tuned_params\n" +
  "grub_users $grub_users\ngrub_arg --unrestricted\ngrub_class fedora\n",
  "title Red Hat Enterprise Linux (5.14.0-362.8.1.el9_3.x86_64) 9.3 (Plow)\nversion 5.14.0-362.8.1.el9_3.x86_64\n" +
  "linux /vmlinuz-5.14.0-362.8.1.el9_3.x86_64\ninitrd /initramfs-5.14.0-362.8.1.el9_3.x86_64.img $tuned_initrd\noptions $kernelopts\nid rhel-20231114-5.14.0\nsort-key rhel\n",
];

/** Build every seed once (stamped); returns the seed folder. */
export function buildSeeds(log: (s: string) => void = () => {}): string {
  const stamp = path.join(SEED_DIR, ".stamp");
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === STAMP_VERSION) return SEED_DIR;
  fs.rmSync(SEED_DIR, { recursive: true, force: true });
  fs.mkdirSync(SEED_DIR, { recursive: true });
  const S = seedPath, work = path.join(SEED_DIR, "work");
  fs.mkdirSync(work);
  const tree = path.join(work, "tree");
  makeTree(tree);
  log("seeds: filesystems");
  // FAT12/16/32: mkfs.fat + mcopy.
  for (const [kind, kib, args] of [["fat12", 2048, ["-F", "12", "-s", "4"]], ["fat16", 16384, ["-F", "16", "-s", "4"]], ["fat32", 34 * 1024, ["-F", "32", "-s", "1"]]] as const) {
    sh("mkfs.fat", [...args, "-n", "FUZZ", "-i", "1234abcd", "-C", S(`${kind}.img`), String(kib)]);
    for (const top of ["boot", "etc", "many", "A directory with a long name"]) sh("mcopy", ["-s", "-i", S(`${kind}.img`), path.join(tree, top), "::/"]);
  }
  // ext2/ext4 with a tree (mke2fs -d).
  sh("mkfs.ext4", ["-q", "-F", "-b", "1024", "-O", "^64bit,metadata_csum", "-L", "root", "-U", "0b5e1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b", "-d", tree, S("ext4-1k.img"), "8M"]);
  sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-O", "inline_data", "-d", tree, S("ext4-inline.img"), "8M"]);
  sh("mkfs.ext2", ["-q", "-F", "-b", "1024", "-I", "128", "-d", tree, S("ext2.img"), "4M"]);
  // XFS with a protofile (fstests' variables allow a small filesystem).
  fs.writeFileSync(path.join(work, "proto"), protoFor(tree));
  sh("truncate", ["-s", "24M", S("xfs.img")]);
  sh("mkfs.xfs", ["-q", "-f", "-p", path.join(work, "proto"), S("xfs.img")], { env: { ...process.env, TEST_DIR: work, TEST_DEV: "/dev/null", QA_CHECK_FS: "1" } });
  // NTFS: mkntfs, populated through libntfs-3g.
  sh("truncate", ["-s", "12M", S("ntfs.img")]);
  sh("mkntfs", ["-F", "-f", "-Q", "-L", "Windows", S("ntfs.img")]);
  const w = new NtfsWriter(S("ntfs.img"));
  try {
    for (const d of ["/Windows", "/Windows/System32", "/Windows/System32/config", "/many"]) w.mkdir(d);
    w.write("/Windows/System32/config/SYSTEM", [[0, prng(1, 70 * 1024)]]);
    w.write("/bootmgr", [[0, prng(2, 5000)]]);
    for (let i = 0; i < 30; i++) w.write(`/many/entry number ${i}.txt`, [[0, Buffer.from(`n ${i}`)]]);
  } finally { w.close(); }
  log("seeds: partitioned disks and LVM");
  // MBR with an extended partition chain (sfdisk).
  sh("truncate", ["-s", "16M", S("ebr.img")]);
  sh("sfdisk", ["-q", S("ebr.img")], { input: "label: dos\nlabel-id: 0x5eed0001\nstart=2048, size=4096, type=83, bootable\nstart=6144, type=5\nstart=8192, size=2048, type=83\nstart=12288, size=2048, type=82\nstart=16384, type=7\n" });
  // GPT disk with an ESP (FAT16 above) and an LVM PV holding an LV whose two segments map an ext2 filesystem.
  sh("truncate", ["-s", "64M", S("gpt-lvm.img")]);
  sh("sfdisk", ["-q", S("gpt-lvm.img")], { input: "label: gpt\nstart=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=34816, size=40960, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n" });
  sh("dd", [`if=${S("fat16.img")}`, `of=${S("gpt-lvm.img")}`, "bs=512", "seek=2048", "conv=notrunc", "status=none"]);
  writePv(S("gpt-lvm.img"), 34816 * 512, 40960 * 512, "Zfuzz1PVaaaabbbbccccddddeeeeffff", lvmText());
  // The LV: extents 0-7 map PE 8.., extents 8-15 map PE 0..: put the ext2 image's halves there.
  const ext2 = fs.readFileSync(S("ext2.img")), pe0 = (34816 + 2048) * 512, ext = 1024 * 1024;
  const fd = fs.openSync(S("gpt-lvm.img"), "r+");
  try { fs.writeSync(fd, ext2, 0, 8 * ext / 2, pe0 + 8 * ext); } finally { fs.closeSync(fd); }
  log("seeds: containers");
  // An 8 MiB MBR disk with a FAT12 partition, converted by qemu-img to every container.
  sh("truncate", ["-s", "8M", S("small.raw")]);
  sh("sfdisk", ["-q", S("small.raw")], { input: "label: dos\nstart=2048, size=4096, type=1, bootable\n" });
  sh("dd", [`if=${S("fat12.img")}`, `of=${S("small.raw")}`, "bs=512", "seek=2048", "conv=notrunc", "status=none"]);
  const conv = (out: string, fmt: string, o: string[] = []) => sh("qemu-img", ["convert", "-q", "-f", "raw", "-O", fmt, ...o, S("small.raw"), S(out)]);
  conv("fixed.vhd", "vpc", ["-o", "subformat=fixed,force_size=on"]);
  conv("dynamic.vhd", "vpc", ["-o", "subformat=dynamic"]);
  conv("disk.vhdx", "vhdx", ["-o", "block_size=1M,log_size=1M"]);
  conv("sparse.vmdk", "vmdk", ["-o", "subformat=monolithicSparse"]);
  conv("stream.vmdk", "vmdk", ["-o", "subformat=streamOptimized"]);
  conv("disk.qcow2", "qcow2", ["-o", "cluster_size=4096"]);
  conv("compressed.qcow2", "qcow2", ["-c", "-o", "cluster_size=4096"]);
  log("seeds: cpio, initramfs, compressors");
  const list = sh("find", [".", "-print0"], { cwd: tree }).toString("latin1").split("\0").filter(Boolean).sort().join("\n") + "\n";
  for (const [name, fmt] of [["newc.cpio", "newc"], ["crc.cpio", "crc"], ["odc.cpio", "odc"]] as const) {
    fs.writeFileSync(S(name), sh("cpio", ["-o", "-H", fmt, "-R", "0:0", "--quiet"], { cwd: tree, input: list }));
  }
  const cpio = fs.readFileSync(S("newc.cpio"));
  for (const [ext, cmd, args] of [["gz", "gzip", ["-9n"]], ["xz", "xz", ["--check=crc32", "-6"]], ["zst", "zstd", ["-q", "-19"]],
    ["lz4", "lz4", ["-l", "-q"]], ["bz2", "bzip2", ["-9"]], ["lzma", "lzma", ["-6"]]] as const) {
    fs.writeFileSync(S(`initrd.${ext}`), sh(cmd, [...args, "-c"], { input: cpio }));
  }
  // Early microcode cpio + compressed main archive, as dracut and initramfs-tools lay them out.
  const early = sh("cpio", ["-o", "-H", "newc", "-R", "0:0", "--quiet"], { cwd: tree, input: "etc\netc/hostname\n" });
  fs.writeFileSync(S("initrd-early.img"), Buffer.concat([early, fs.readFileSync(S("initrd.gz"))]));
  log("seeds: hives, PE, boot configuration");
  hiveFromReg(S("SYSTEM"), systemReg());
  hiveFromReg(S("BCD"), bcdReg());
  fs.writeFileSync(S("empty.hive"), emptyHive());
  fs.copyFileSync("/usr/lib/shim/shimx64.efi.signed", S("shimx64.efi"));
  sh("grub-editenv", [S("grubenv"), "create"]);
  sh("grub-editenv", [S("grubenv"), "set", "saved_entry=gnulinux-advanced>gnulinux-6.1.0", "next_entry=", "kernelopts=root=/dev/sda1 ro"]);
  // grub.cfg files of the Debian-built fixtures (read with our own ext4 reader).
  for (const f of ["grub-mbr.img", "grub-menu-timeout.img"]) {
    const src = new FileSource(gen1Path(f));
    const dev = new Disk(rawDriver.open(src, {} as never));
    try {
      const vols = openVolumes(dev, readLayout(dev));
      const cfg = readFileAt(vols.list[0].open()!, "/boot/grub/grub.cfg", MiB);
      if (cfg) fs.writeFileSync(S(`${f.replace(".img", "")}.cfg`), cfg);
    } finally { dev.close(); }
  }
  BLS.forEach((t, i) => fs.writeFileSync(S(`bls-${i}.conf`), t));
  fs.rmSync(work, { recursive: true, force: true });
  fs.writeFileSync(stamp, STAMP_VERSION);
  return SEED_DIR;
}
