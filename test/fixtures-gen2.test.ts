// Checks the Gen2 (UEFI) fixtures with bootgate's own readers (registry, layout, FAT, ext4) against the Debian package files.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { BlockDevice } from "../images/block.ts";
import { readLayout, type Layout } from "../images/layout.ts";
import { openVolumes } from "../images/fs-open.ts";
import { readFileAt, resolvePath, type FileSystem } from "../images/fs.ts";
import { GPT_TYPE_ESP } from "../images/gpt.ts";
import { ROOT, sh, tmpdir } from "./helpers.ts";
import { ensureGen2Fixtures, gen2Fixture, gen2Manifest, GEN2_DIR, GEN2_EXTRAS, GEN2_FIXTURES, openGen2, type Gen2Fixture, type Gen2Manifest } from "./gen2-fixtures.ts";

const SHIM = "/usr/lib/shim/shimx64.efi.signed";
const FBX64 = "/usr/lib/shim/fbx64.efi.signed";
const CSV_DEBIAN = "/usr/lib/shim/BOOTX64.CSV";
const GRUB_SIGNED = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
const GRUB_EFI_DIR = "/usr/lib/grub/x86_64-efi";
const LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const GPT_IMAGES = GEN2_FIXTURES.filter((f) => f !== "gen2-mbr-bios.img");
const MAX_FILE = 64 << 20;

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const hostSums = new Map<string, string>();
const sha256File = (f: string): string => {
  let h = hostSums.get(f);
  if (!h) hostSums.set(f, (h = sha256(fs.readFileSync(f))));
  return h;
};
/** A file's digest as its builder recorded it in SHA256SUMS (hashing 64 MiB disks again would dominate the runtime). */
function recordedSum(dir: string, name: string): string | undefined {
  const line = fs.readFileSync(path.join(dir, "SHA256SUMS"), "utf8").split("\n").find((l) => l.endsWith(`  ${name}`));
  return line?.split(" ")[0];
}

interface Opened { dev: BlockDevice; layout: Layout; esp?: FileSystem; root?: FileSystem }
const opened = new Map<string, Opened>();

/** The fixture through openImage + readLayout, with its ESP (partition 1) and ext4 root (partition 2) opened. */
function open(name: Gen2Fixture): Opened {
  let o = opened.get(name);
  if (o) return o;
  const dev = openGen2(name);
  const layout = readLayout(dev);
  const vols = openVolumes(dev, layout);
  o = { dev, layout };
  for (const v of vols.list) {
    const f = v.open();
    if (f && v.kind === "fat32") o.esp = f;
    if (f && v.kind === "ext4") o.root = f;
  }
  opened.set(name, o);
  return o;
}

/** Every regular file under `dir` as absolute paths, names as the directory entries spell them. */
function tree(f: FileSystem, dir = "/"): string[] {
  const h = resolvePath(f, dir)!;
  const out: string[] = [];
  for (const n of f.readdir(h)) {
    if (n === "." || n === ".." || n === "lost+found") continue;
    const p = path.posix.join(dir, n);
    const st = f.stat(f.lookup(h, n)!);
    if (st.type === "dir") out.push(...tree(f, p));
    else out.push(p);
  }
  return out.sort();
}
const espPath = (uefi: string) => uefi.replace(/\\/g, "/");
const read = (f: FileSystem, p: string) => readFileAt(f, p, MAX_FILE);

/** PE/COFF facts [PE Format: MS-DOS stub e_lfanew at 0x3C; optional header magic, Subsystem, data directory 4 = certificate table]. */
function pe(b: Buffer) {
  const pe = b.readUInt32LE(0x3c);
  const opt = pe + 24;
  const magic = b.readUInt16LE(opt);
  const dirs = opt + (magic === 0x20b ? 112 : 96);
  return {
    mz: b.subarray(0, 2).toString("latin1"), sig: b.subarray(pe, pe + 4).toString("latin1"), machine: b.readUInt16LE(pe + 4),
    magic, subsystem: b.readUInt16LE(opt + 68), certBytes: b.readUInt32LE(dirs + 4 * 8 + 4),
  };
}

let m: Gen2Manifest;
let work: string;

beforeAll(() => {
  ensureGen2Fixtures();
  m = gen2Manifest();
  work = tmpdir("bootgate-gen2-");
}, 900_000);
afterAll(() => {
  for (const o of opened.values()) o.dev.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("gen2 fixture set", () => {
  it("records the Gen1 kernel, the pinned ids and an outcome for every Secure Boot mode", () => {
    const gen1 = JSON.parse(fs.readFileSync(path.join(ROOT, ".cache/fixtures/gen1/manifest.json"), "utf8")) as { kernelVersion: string; kernelPackage: string };
    expect(m.kernelVersion).toMatch(/^6\.1\.\d+-\d+-amd64$/);
    expect(m.kernelVersion).toBe(gen1.kernelVersion);
    expect(m.kernelPackage).toBe(gen1.kernelPackage);
    expect(m.rootUuid).toBe("b007ea7e-0000-4000-8000-000000000002");
    expect(m.espPartGuid).toBe("B007EA7E-0000-4000-8000-0000000000E1");
    expect(m.espVolumeId).toBe("B007-EF15");
    expect(Object.keys(m.fixtures).sort()).toEqual([...GEN2_FIXTURES, ...GEN2_EXTRAS].sort());
    for (const [name, f] of Object.entries(m.fixtures)) {
      expect(Object.keys(f.expect).sort(), name).toEqual(["off", "trusted-launch", "uefi-ca", "windows"]);
    }
    expect(m.initrdModules.some((p) => p.endsWith("/hv_vmbus.ko"))).toBe(true);
    expect(m.initrdModules.some((p) => p.endsWith("/hv_storvsc.ko"))).toBe(true);
    for (const pkg of ["shim-signed", "grub-efi-amd64-signed", "grub-efi-amd64-bin", "shim-helpers-amd64-signed"]) {
      expect(m.packages[pkg], pkg).toBe(sh("dpkg-query", ["-W", "-f", "${Version}", pkg]));
    }
  });

  it("writes sparse raw disks of the recorded size, all listed in SHA256SUMS", () => {
    const sums = fs.readFileSync(path.join(GEN2_DIR, "SHA256SUMS"), "utf8");
    for (const name of [...GEN2_FIXTURES, ...GEN2_EXTRAS]) {
      const st = fs.statSync(gen2Fixture(name));
      if (GPT_IMAGES.includes(name as never)) expect(st.size, name).toBe(m.diskBytes);
      expect(st.blocks * 512, name).toBeLessThan(Math.max(st.size, m.diskBytes) / 2);
      expect(sums).toContain(`  ${name}\n`);
    }
  });

  it("expects the outcomes of issue 5 per Secure Boot mode", () => {
    const stages = (n: Gen2Fixture) => m.secureBootModes.map((s) => m.fixtures[n].expect[s].stage);
    expect(m.secureBootModes).toEqual(["off", "windows", "uefi-ca", "trusted-launch"]);
    expect(stages("gen2-shim-removable.img")).toEqual(["kernel", "firmware", "kernel", "kernel"]);
    expect(m.fixtures["gen2-shim-removable.img"].expect.windows.screen).toBe("Image execution was denied by Secure Boot policy.");
    expect(stages("gen2-debian-only.img")).toEqual(["firmware", "firmware", "firmware", "firmware"]);
    expect(stages("gen2-fallback.img")).toEqual(["kernel", "firmware", "kernel", "kernel"]);
    expect(m.fixtures["gen2-fallback.img"].expect["trusted-launch"].resets).toBe(1);
    expect(m.fixtures["gen2-fallback.img"].expect.off.resets).toBe(0);
    expect(stages("gen2-blank-esp.img")).toEqual(["firmware", "firmware", "firmware", "firmware"]);
    expect(stages("gen2-unsigned-grub.img")).toEqual(["kernel", "firmware", "firmware", "firmware"]);
    expect(stages("gen2-missing-uuid.img")).toEqual(["bootloader", "firmware", "bootloader", "bootloader"]);
    expect(m.fixtures["gen2-missing-uuid.img"].expect.off.screen).toBe(`error: no such device: ${m.missingUuid}.`);
    expect(m.fixtures["gen2-mbr-bios.img"].expect.off).toEqual({ stage: "firmware", screen: "No UEFI-compatible file system was found." });
  });

  it("rejects an unknown fixture name", () => {
    expect(() => gen2Fixture("gen2-nope.img")).toThrow(/unknown Gen2 fixture/);
  });
});

describe("GPT layout read by readLayout", () => {
  it.each(GPT_IMAGES)("%s: ESP (FAT32, pinned GUID and serial) then the ext4 root, no layout findings", (name) => {
    const { dev, layout } = open(name);
    expect(dev.format).toBe("raw");
    expect(layout.partitioning).toBe("gpt");
    expect(layout.findings.map((f) => f.code)).toEqual([]);
    expect(layout.gpt).toMatchObject({ diskGuid: m.gptDiskGuid, primaryOk: true, backupOk: true });
    expect(layout.partitions).toHaveLength(2);
    const [esp, root] = layout.partitions;
    expect(esp).toMatchObject({ index: 1, startLba: m.espStartLba, sectorCount: m.espSectors, type: GPT_TYPE_ESP, guid: m.espPartGuid });
    expect(esp!.content).toMatchObject({ kind: "fat32", uuid: m.espVolumeId });
    expect(root).toMatchObject({ index: 2, startLba: m.rootStartLba, sectorCount: m.rootSectors, type: LINUX_FS_TYPE, guid: m.rootPartGuid });
    expect(root!.content).toMatchObject({ kind: "ext4", uuid: m.rootUuid, label: "root" });
  });

  it("gen2-mbr-bios.img: Gen1's grub-mbr.img byte for byte; MBR with one ext4 partition and no FAT or ESP anywhere", () => {
    const { layout, esp } = open("gen2-mbr-bios.img");
    const gen1Dir = path.join(ROOT, ".cache/fixtures/gen1");
    expect(recordedSum(GEN2_DIR, "gen2-mbr-bios.img")).toMatch(/^[0-9a-f]{64}$/);
    expect(recordedSum(GEN2_DIR, "gen2-mbr-bios.img")).toBe(recordedSum(gen1Dir, "grub-mbr.img"));
    const head = (f: string) => { const fd = fs.openSync(f, "r"); try { const b = Buffer.alloc(1 << 20); fs.readSync(fd, b, 0, b.length, 0); return b; } finally { fs.closeSync(fd); } };
    expect(head(gen2Fixture("gen2-mbr-bios.img")).equals(head(path.join(gen1Dir, "grub-mbr.img")))).toBe(true);
    expect(layout.partitioning).toBe("mbr");
    expect(layout.partitions.map((p) => [p.type, p.content.kind])).toEqual([["0x83", "ext4"]]);
    expect(esp).toBeUndefined();
  });
});

describe("ESP contents read with the FAT reader", () => {
  it.each(GPT_IMAGES)("%s: exactly the recorded files, each with the sha256 of its Debian source", (name) => {
    const { esp } = open(name);
    const want = m.fixtures[name].esp ?? {};
    expect(tree(esp!)).toEqual(Object.keys(want).map(espPath).sort());
    for (const [p, f] of Object.entries(want)) {
      const data = read(esp!, espPath(p))!;
      expect(data.length, p).toBe(f.bytes);
      expect(sha256(data), p).toBe(f.sha256);
      if (!f.source.startsWith("(generated)")) expect(sha256(data), p).toBe(sha256File(f.source));
    }
  });

  it("gen2-shim-removable.img: shim as \\EFI\\BOOT\\BOOTX64.EFI, signed GRUB beside it, the stub grub.cfg in both folders, no fbx64", () => {
    const { esp } = open("gen2-shim-removable.img");
    const stub = `search.fs_uuid ${m.rootUuid} root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n`;
    expect(read(esp!, "/EFI/BOOT/BOOTX64.EFI")!.equals(fs.readFileSync(SHIM))).toBe(true);
    expect(read(esp!, "/EFI/BOOT/grubx64.efi")!.equals(fs.readFileSync(GRUB_SIGNED))).toBe(true);
    expect(read(esp!, "/EFI/debian/shimx64.efi")!.equals(fs.readFileSync(SHIM))).toBe(true);
    expect(read(esp!, "/EFI/debian/grubx64.efi")!.equals(fs.readFileSync(GRUB_SIGNED))).toBe(true);
    expect(read(esp!, "/EFI/BOOT/grub.cfg")!.toString()).toBe(stub);
    expect(read(esp!, "/EFI/debian/grub.cfg")!.toString()).toBe(stub);
    expect(m.stubCfg).toBe(stub);
    expect(read(esp!, "/EFI/BOOT/fbx64.efi")).toBeUndefined();
    // The signed GRUB's built-in prefix is /EFI/debian (so \EFI\debian\grub.cfg is what it reads first).
    expect(fs.readFileSync(GRUB_SIGNED).includes(Buffer.from(`\0${m.signedGrubPrefix}\0`))).toBe(true);
    const shim = pe(read(esp!, "/EFI/BOOT/BOOTX64.EFI")!);
    expect(shim).toMatchObject({ mz: "MZ", sig: "PE\0\0", machine: 0x8664, magic: 0x20b, subsystem: 10 });
    expect(shim.certBytes).toBeGreaterThan(0);
  });

  it("gen2-debian-only.img: the loader only under \\EFI\\debian, no \\EFI\\BOOT at all", () => {
    const { esp } = open("gen2-debian-only.img");
    expect(esp!.readdir(resolvePath(esp!, "/EFI")!)).toEqual(["debian"]);
    expect(resolvePath(esp!, "/EFI/BOOT")).toBeUndefined();
    expect(read(esp!, "/EFI/debian/shimx64.efi")!.equals(fs.readFileSync(SHIM))).toBe(true);
  });

  it("gen2-fallback.img: shim + fbx64.efi at \\EFI\\BOOT and a UTF-16LE BOOTX64.CSV (with BOM) naming shimx64.efi", () => {
    const { esp } = open("gen2-fallback.img");
    expect(read(esp!, "/EFI/BOOT/BOOTX64.EFI")!.equals(fs.readFileSync(SHIM))).toBe(true);
    expect(read(esp!, "/EFI/BOOT/fbx64.efi")!.equals(fs.readFileSync(FBX64))).toBe(true);
    expect(read(esp!, "/EFI/BOOT/grubx64.efi")).toBeUndefined(); // the chain must go through the fallback
    const csv = read(esp!, "/EFI/debian/BOOTX64.CSV")!;
    expect([...csv.subarray(0, 2)]).toEqual([0xff, 0xfe]);
    expect(csv.length % 2).toBe(0);
    const text = csv.subarray(2).toString("utf16le");
    expect(text).toBe("shimx64.efi,debian,,This is the boot entry for debian\n");
    expect(csv.subarray(2).equals(fs.readFileSync(CSV_DEBIAN))).toBe(true); // Debian's file is the same text without a BOM
    const [file, label] = text.split(",");
    expect(read(esp!, `/EFI/debian/${file}`)!.equals(fs.readFileSync(SHIM))).toBe(true);
    expect(m.fixtures["gen2-fallback.img"].bootEntry).toMatchObject({ description: label, path: "\\EFI\\debian\\shimx64.efi", device: `HD(1,GPT,${m.espPartGuid})` });
  });

  it("gen2-blank-esp.img: the ESP is a valid, empty FAT32", () => {
    const { esp } = open("gen2-blank-esp.img");
    expect(esp!.kind).toBe("fat32");
    expect(esp!.readdir(esp!.root())).toEqual([]);
  });

  it("gen2-unsigned-grub.img: BOOTX64.EFI is an unsigned x64 EFI application equal to a fresh grub-mkimage build", () => {
    const { esp } = open("gen2-unsigned-grub.img");
    const efi = read(esp!, "/EFI/BOOT/BOOTX64.EFI")!;
    expect(pe(efi)).toMatchObject({ mz: "MZ", sig: "PE\0\0", machine: 0x8664, magic: 0x20b, subsystem: 10, certBytes: 0 });
    const u = m.unsignedGrub;
    expect(u.embeddedCfg).toBe(`search.fs_uuid ${m.rootUuid} root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n`);
    expect(efi.includes(Buffer.from(u.embeddedCfg))).toBe(true);
    const cfg = path.join(work, "embedded.cfg"), out = path.join(work, "unsigned.efi");
    fs.writeFileSync(cfg, u.embeddedCfg);
    sh("grub-mkimage", ["-O", "x86_64-efi", "-d", GRUB_EFI_DIR, "-c", cfg, "-p", u.prefix, "-o", out, ...u.modules]);
    expect(efi.equals(fs.readFileSync(out))).toBe(true);
  });

  it("gen2-missing-uuid.img: both stub grub.cfg files search a UUID that no volume of the disk has", () => {
    const { esp, layout } = open("gen2-missing-uuid.img");
    for (const p of ["/EFI/BOOT/grub.cfg", "/EFI/debian/grub.cfg"]) {
      expect(read(esp!, p)!.toString()).toBe(`search.fs_uuid ${m.missingUuid} root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n`);
    }
    expect(m.fixtures["gen2-missing-uuid.img"].searchedUuid).toBe(m.missingUuid);
    expect(layout.partitions.map((p) => p.content.uuid)).not.toContain(m.missingUuid);
  });
});

describe("ext4 root read with the ext4 reader", () => {
  it("holds grub.cfg with the recorded kernel command line, insmod-ing only modules the signed GRUB has built in", () => {
    const { root } = open("gen2-shim-removable.img");
    const v = m.kernelVersion;
    const cfg = read(root!, "/boot/grub/grub.cfg")!.toString();
    expect(cfg).toBe(m.rootGrubCfg);
    expect(cfg).toContain("set timeout=0\n");
    expect(cfg.match(/^menuentry /gm)).toHaveLength(1);
    expect(cfg).toContain(`\tlinux /boot/vmlinuz-${v} root=UUID=${m.rootUuid} ro console=ttyS0\n\tinitrd /boot/initrd.img-${v}\n`);
    const f = m.fixtures["gen2-shim-removable.img"];
    expect(f.append).toBe(`root=UUID=${m.rootUuid} ro console=ttyS0`);
    expect(f.cmdline).toBe(`BOOT_IMAGE=/boot/vmlinuz-${v} ${f.append}`);
    const signed = fs.readFileSync(GRUB_SIGNED);
    const insmods = [...cfg.matchAll(/^\s*insmod (\S+)$/gm)].map((x) => x[1]!);
    expect(insmods.length).toBeGreaterThan(0);
    for (const mod of insmods) expect(signed.includes(Buffer.from(`\0${mod}\0`)), `${mod} in the signed image`).toBe(true);
  });

  it("holds Debian's signed vmlinuz, Gen1's Hyper-V initramfs, the module tree and fstab", () => {
    const { root } = open("gen2-shim-removable.img");
    const v = m.kernelVersion;
    const kernel = read(root!, `/boot/vmlinuz-${v}`)!;
    const debVmlinuz = path.join(ROOT, ".cache/debs/x", m.kernelPackage, `boot/vmlinuz-${v}`);
    expect(sha256(kernel)).toBe(m.vmlinuzSha256);
    if (fs.existsSync(debVmlinuz)) expect(sha256(kernel)).toBe(sha256File(debVmlinuz));
    expect(kernel.subarray(0x202, 0x206).toString("latin1")).toBe("HdrS");
    const k = pe(kernel); // the EFI stub makes it a PE image; Debian's signature sits in the certificate table
    expect(k).toMatchObject({ mz: "MZ", sig: "PE\0\0", machine: 0x8664 });
    expect(k.certBytes).toBeGreaterThan(0);
    const initrd = read(root!, `/boot/initrd.img-${v}`)!;
    expect(initrd.equals(fs.readFileSync(path.join(ROOT, ".cache/fixtures/gen1/initrd-hv.cpio.gz")))).toBe(true);
    expect(sha256(initrd)).toBe(m.initrdSha256);
    for (const ko of m.initrdModules) expect(resolvePath(root!, `/lib/modules/${v}/${ko}`), ko).toBeDefined();
    expect(read(root!, "/etc/fstab")!.toString()).toBe(`UUID=${m.rootUuid} / ext4 defaults 0 1\nUUID=${m.espVolumeId} /boot/efi vfat umask=0077 0 1\n`);
    expect(read(root!, "/sbin/init")!.toString()).toContain("bootgate-root: reached /sbin/init");
  });

  it("gen2-unsigned-grub.img: /boot/grub/x86_64-efi holds the modules the image lacks (gzio), so its insmod loads from disk", () => {
    const { root } = open("gen2-unsigned-grub.img");
    const moddep = new Map(fs.readFileSync(path.join(GRUB_EFI_DIR, "moddep.lst"), "utf8").trim().split("\n").map((l) => {
      const [k, deps] = l.split(":");
      return [k!, (deps ?? "").trim().split(/\s+/).filter(Boolean)] as const;
    }));
    const built = new Set<string>();
    const todo = [...m.unsignedGrub.modules];
    while (todo.length) {
      const mod = todo.pop()!;
      if (!built.has(mod)) { built.add(mod); todo.push(...(moddep.get(mod) ?? [])); }
    }
    const cfg = read(root!, "/boot/grub/grub.cfg")!.toString();
    const fromDisk = [...cfg.matchAll(/^\s*insmod (\S+)$/gm)].map((x) => x[1]!).filter((mod) => !built.has(mod));
    expect(fromDisk).toEqual(m.unsignedGrub.insmodFromDisk);
    for (const mod of [...fromDisk, ...(moddep.get("gzio") ?? [])]) {
      expect(read(root!, `/boot/grub/x86_64-efi/${mod}.mod`)!.equals(fs.readFileSync(path.join(GRUB_EFI_DIR, `${mod}.mod`)))).toBe(true);
    }
    expect(read(root!, "/boot/grub/x86_64-efi/moddep.lst")!.equals(fs.readFileSync(path.join(GRUB_EFI_DIR, "moddep.lst")))).toBe(true);
  });

  it("every GPT fixture shares the same root filesystem (superblock, group descriptors, bitmaps: the first MiB)", () => {
    const first = open("gen2-shim-removable.img").dev;
    const want = sha256(Buffer.from(first.read(m.rootStartLba, 2048)));
    for (const name of GPT_IMAGES) expect(sha256(Buffer.from(open(name).dev.read(m.rootStartLba, 2048))), name).toBe(want);
  });
});

describe("VHDX form", () => {
  it("gen2-shim-removable.vhdx opens as vhdx with the same layout and ESP files as the raw image", () => {
    const x = open("gen2-shim-removable.vhdx");
    const raw = open("gen2-shim-removable.img");
    expect(x.dev.format).toBe("vhdx");
    expect(x.dev.sectorCount).toBe(raw.dev.sectorCount);
    expect(x.layout.partitions.map((p) => [p.startLba, p.sectorCount, p.type, p.guid, p.content.uuid]))
      .toEqual(raw.layout.partitions.map((p) => [p.startLba, p.sectorCount, p.type, p.guid, p.content.uuid]));
    expect(tree(x.esp!)).toEqual(tree(raw.esp!));
    expect(read(x.esp!, "/EFI/BOOT/BOOTX64.EFI")!.equals(fs.readFileSync(SHIM))).toBe(true);
    expect(read(x.root!, "/boot/grub/grub.cfg")!.toString()).toBe(m.rootGrubCfg);
    expect(sh("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", gen2Fixture("gen2-shim-removable.vhdx"), gen2Fixture("gen2-shim-removable.img")]))
      .toContain("Images are identical");
  });
});
