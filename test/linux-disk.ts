// Shared builders for Linux guest disks in tests: trees with the real Debian kernel/config/module lists (fixture
// builder's .cache/debs), initramfs images from its .ko files (modprobe --show-depends + cpio newc + gzip), sfdisk +
// mkfs.ext4 -d disks, mkfs.xfs protofiles (mkfs.xfs(8) PROTOTYPE FILE), and LVM2 PVs written as lvm2 lays them down
// (lib/label/label.h, lib/format_text/layout.h, export.c; pvcreate cannot run on a plain file here).
import { expect } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { ROOT, sh } from "./helpers.ts";
import { calcCrc, protoFor, writePv } from "./image-builders.ts";
import { fixtureManifest, GEN1_DIR } from "./fixtures.ts";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import type { BlockDevice } from "../images/block.ts";
import { openVolumes } from "../images/fs-open.ts";
import { resolvePath } from "../images/fs.ts";
import { evaluateLinux, type OsStageInput, type OsStageResult } from "../emu/os-linux.ts";

export const UUID_ROOT = "0b5e1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b";
export const UUID_DATA = "1c6f2b3d-4e5f-4061-9b7c-8d9e0f1a2b3c";
export const UUID_ELSEWHERE = "deadbeef-0000-4000-8000-00000000cafe";
export const MBR_LABEL_ID = "0x5eed0001";
export const MiB = 1024 * 1024;
export { calcCrc, protoFor, writePv };
/** LVM extent size used by vgText (extent_size = 8192 sectors). */
export const EXTENT = 4 * MiB;

export interface TreeOpts {
  cmdline?: string;
  fstab?: string;
  initrd?: Buffer;
  /** Copy /boot/config-<ver> and /lib/modules/<ver>/modules.{builtin,dep} (the kernel facts). */
  kernelFacts?: boolean;
  grubCfg?: boolean;
}

export const codes = (r: OsStageResult): string[] => r.findings.map((f) => f.code);
export const one = (r: OsStageResult, code: string) => {
  const f = r.findings.filter((x) => x.code === code);
  expect(f, `${code} in ${codes(r).join(", ")}`).toHaveLength(1);
  return f[0];
};

export function evaluate(dev: BlockDevice, generation: 1 | 2, handoff?: OsStageInput["handoff"]): OsStageResult {
  const r = evaluateLinux({ dev, layout: readLayout(dev), generation, target: "hyperv", ...(handoff ? { handoff } : {}) });
  expect(r).toBeDefined();
  return r!;
}

/** Builders bound to one temp dir and the fixture builder's extracted Debian kernel; call init() in beforeAll. */
export class LinuxKit {
  KVER = "";
  KX = "";
  readonly opened: BlockDevice[] = [];
  constructor(readonly dir: string) {}

  init(): void {
    const m = fixtureManifest();
    this.KVER = m.kernelVersion;
    this.KX = path.join(ROOT, ".cache/debs/x", m.kernelPackage);
    expect(fs.existsSync(path.join(this.KX, `boot/config-${this.KVER}`))).toBe(true);
  }

  close(): void {
    for (const d of this.opened) d.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  open(img: string): BlockDevice {
    const dev = openImage(img);
    this.opened.push(dev);
    return dev;
  }

  get kmods(): string { return path.join(this.KX, "lib/modules", this.KVER); }

  /** A root tree: kernel + initrd (+ config, modules lists) in /boot, grub.cfg whose default entry boots `cmdline`, /etc/fstab. */
  tree(name: string, o: TreeOpts): string {
    const { KVER, KX } = this;
    const d = path.join(this.dir, name);
    fs.mkdirSync(path.join(d, "boot/grub"), { recursive: true });
    fs.mkdirSync(path.join(d, "etc"));
    fs.copyFileSync(path.join(KX, `boot/vmlinuz-${KVER}`), path.join(d, `boot/vmlinuz-${KVER}`));
    fs.writeFileSync(path.join(d, `boot/initrd.img-${KVER}`), o.initrd ?? fs.readFileSync(path.join(GEN1_DIR, "initrd-hv.cpio.gz")));
    if (o.kernelFacts !== false) {
      fs.copyFileSync(path.join(KX, `boot/config-${KVER}`), path.join(d, `boot/config-${KVER}`));
      this.moduleLists(d);
    }
    if (o.grubCfg !== false) fs.writeFileSync(path.join(d, "boot/grub/grub.cfg"), this.grubCfg("/boot", o.cmdline ?? `root=UUID=${UUID_ROOT} ro quiet`));
    fs.writeFileSync(path.join(d, "etc/fstab"), o.fstab ?? `UUID=${UUID_ROOT} / ext4 errors=remount-ro 0 1\n`);
    return d;
  }

  /** /lib/modules/<ver>/modules.{builtin,dep} under `d`. */
  moduleLists(d: string): void {
    fs.mkdirSync(path.join(d, `lib/modules/${this.KVER}`), { recursive: true });
    for (const f of ["modules.builtin", "modules.dep"]) fs.copyFileSync(path.join(this.kmods, f), path.join(d, `lib/modules/${this.KVER}`, f));
  }

  /** grub.cfg as update-grub writes it, kernel and initrd under `prefix` ("/boot", or "" for a separate /boot). */
  grubCfg(prefix: string, cmdline: string): string {
    const { KVER } = this;
    return ["set default=0", "set timeout=5",
      `menuentry 'Debian GNU/Linux' --class debian {`, `\tlinux ${prefix}/vmlinuz-${KVER} ${cmdline}`,
      `\tinitrd ${prefix}/initrd.img-${KVER}`, "}",
      `menuentry 'Debian GNU/Linux (recovery mode)' {`, `\tlinux ${prefix}/vmlinuz-${KVER} root=UUID=${UUID_ROOT} ro single`, "}", ""].join("\n");
  }

  /** An MBR disk: partition 1 ext4 from `root` (48 MiB), optional partition 2 ext4 "data" (8 MiB) or FAT. */
  disk(name: string, root: string | undefined, second: "data" | "none" = "none", fat = false): BlockDevice {
    const img = path.join(this.dir, `${name}.img`);
    sh("truncate", ["-s", "64M", img]);
    sh("sfdisk", ["-q", img], { input: `label: dos\nlabel-id: ${MBR_LABEL_ID}\nstart=2048, size=98304, type=${fat ? "c" : "83"}, bootable\n`
      + (second === "data" ? "start=100352, size=16384, type=83\n" : "") });
    const p1 = path.join(this.dir, `${name}.p1`);
    if (fat) sh("mkfs.fat", ["-F", "32", "-C", p1, String(48 * 1024)]);
    else this.ext4(p1, root!, 48, ["-L", "root", "-U", UUID_ROOT]);
    putAt(img, p1, 2048);
    if (second === "data") {
      const empty = path.join(this.dir, `${name}.empty`);
      fs.mkdirSync(empty);
      const p2 = path.join(this.dir, `${name}.p2`);
      this.ext4(p2, empty, 8, ["-L", "data", "-U", UUID_DATA]);
      putAt(img, p2, 100352);
    }
    return this.open(img);
  }

  /** mkfs.ext4 -d `src` into a `mib`-MiB image file. */
  ext4(img: string, src: string, mib: number, extra: string[]): void {
    sh("mkfs.ext4", ["-q", "-F", "-b", "4096", ...extra, "-E", "root_owner=0:0", "-d", src, img, `${mib}M`]);
  }

  /** Module paths (relative to /lib/modules/<ver>) of `mods` and their dependencies, in load order (modprobe --show-depends). */
  closure(mods: string[]): string[] {
    const out: string[] = [];
    for (const m of mods) {
      const text = execFileSync("modprobe", ["-d", this.KX, "-S", this.KVER, "--show-depends", m], { encoding: "utf8" });
      for (const line of text.split("\n")) {
        const f = /^insmod (\S+)/.exec(line)?.[1];
        if (!f) continue;
        const rel = path.relative(this.kmods, f);
        if (!rel.startsWith("..") && !out.includes(rel)) out.push(rel);
      }
    }
    expect(out.length).toBeGreaterThanOrEqual(mods.length);
    return out;
  }

  /** A gzip'd newc initramfs holding the real .ko files of `mods` (+ dependencies) and `files` (path -> text). */
  initrd(name: string, mods: string[], files: Record<string, string> = {}): Buffer {
    const d = path.join(this.dir, `initrd-${name}`);
    const base = `lib/modules/${this.KVER}`;
    fs.mkdirSync(path.join(d, base), { recursive: true });
    for (const rel of this.closure(mods)) {
      fs.mkdirSync(path.join(d, base, path.dirname(rel)), { recursive: true });
      fs.copyFileSync(path.join(this.kmods, rel), path.join(d, base, rel));
    }
    for (const [p, text] of Object.entries({ init: "#!/bin/sh\nexec sh\n", ...files })) {
      fs.mkdirSync(path.join(d, path.dirname(p)), { recursive: true });
      fs.writeFileSync(path.join(d, p), text);
    }
    const list = execFileSync("find", [".", "-mindepth", "1"], { cwd: d, encoding: "utf8" }).split("\n").filter(Boolean).sort().join("\n") + "\n";
    const arc = execFileSync("cpio", ["-o", "-H", "newc", "-R", "0:0", "--quiet"], { cwd: d, input: list, maxBuffer: 256 * MiB });
    return execFileSync("gzip", ["-1n"], { input: arc, maxBuffer: 256 * MiB });
  }

  /** An initrd made of `base` plus a second (uncompressed newc) archive holding `files`, 4-byte aligned like the kernel wants. */
  appendCpio(base: Buffer, files: Record<string, string>): Buffer {
    const d = fs.mkdtempSync(path.join(this.dir, "cpio-"));
    for (const [p, text] of Object.entries(files)) {
      fs.mkdirSync(path.join(d, path.dirname(p)), { recursive: true });
      fs.writeFileSync(path.join(d, p), text);
    }
    const list = execFileSync("find", [".", "-mindepth", "1"], { cwd: d, encoding: "utf8" }).split("\n").filter(Boolean).sort().join("\n") + "\n";
    const arc = execFileSync("cpio", ["-o", "-H", "newc", "-R", "0:0", "--quiet"], { cwd: d, input: list });
    const pad = Buffer.alloc((4 - (base.length % 4)) % 4);
    return Buffer.concat([base, pad, arc]);
  }

  /** Where a file of partition 1 starts on the disk, as the boot loader would have read it. */
  lbaOf(dev: BlockDevice, p: string): number {
    const vols = openVolumes(dev, readLayout(dev));
    const v = vols.list.find((x) => x.partitionIndex === 1)!;
    const fsys = v.open()!;
    return fsys.extents(resolvePath(fsys, p)!)[0].lba;
  }
}

/** dd `fsImg` into `img` at sector `lba`. */
export function putAt(img: string, fsImg: string, lba: number): void {
  sh("dd", [`if=${fsImg}`, `of=${img}`, "bs=512", `seek=${lba}`, "conv=notrunc,sparse", "status=none"]);
}

// ---- XFS ----


/** mkfs.xfs on a file; fstests' variables let it make a filesystem under its 300 MB floor. */
export function mkfsXfs(img: string, mib: number, proto: string | undefined, extra: string[] = []): void {
  sh("truncate", ["-s", `${mib}M`, img]);
  execFileSync("mkfs.xfs", ["-q", "-f", ...extra, ...(proto ? ["-p", proto] : []), img], {
    env: { ...process.env, TEST_DIR: path.dirname(img), TEST_DEV: "/dev/null", QA_CHECK_FS: "1" }, stdio: "pipe",
  });
}

// ---- LVM2 ----


export const dashed = (id: string): string =>
  [id.slice(0, 6), id.slice(6, 10), id.slice(10, 14), id.slice(14, 18), id.slice(18, 22), id.slice(22, 26), id.slice(26)].join("-");

export interface Seg { start: number; count: number; stripes: [string, number][]; stripeSize?: number }

/** VG metadata text as lvm2 2.03 writes it into a metadata area (export.c, no indentation). */
export function vgText(vg: string, seqno: number, pvs: [string, string, string, number][], lvs: [string, Seg[]][]): string {
  const L: string[] = [`${vg} {`, `id = "${dashed("RX2i78sZFzB21AQeEaAc9CIPZhLs6FKk")}"`, `seqno = ${seqno}`, `format = "lvm2"`,
    `status = ["RESIZEABLE", "READ", "WRITE"]`, "flags = []", "extent_size = 8192", "max_lv = 0", "max_pv = 0", "metadata_copies = 0",
    "", "physical_volumes {", ""];
  for (const [key, id, dev, count] of pvs) {
    L.push(`${key} {`, `id = "${dashed(id)}"`, `device = "${dev}"`, "", `status = ["ALLOCATABLE"]`, "flags = []",
      `dev_size = ${(count * EXTENT + MiB) / 512}`, "pe_start = 2048", `pe_count = ${count}`, "}");
  }
  L.push("}", "", "logical_volumes {", "");
  for (const [name, segs] of lvs) {
    L.push(`${name} {`, `id = "${dashed("VUA3s74sqUujuXuHeHCBYaVTgkrah3lr")}"`, `status = ["READ", "WRITE", "VISIBLE"]`, "flags = []",
      `creation_time = 1700000000`, `creation_host = "rocky9"`, `segment_count = ${segs.length}`, "");
    segs.forEach((s, i) => {
      L.push(`segment${i + 1} {`, `start_extent = ${s.start}`, `extent_count = ${s.count}`, "", `type = "striped"`, `stripe_count = ${s.stripes.length}`);
      if (s.stripes.length > 1) L.push(`stripe_size = ${s.stripeSize}`);
      L.push("", "stripes = [", s.stripes.map(([k, pe]) => `"${k}", ${pe}`).join(",\n"), "]", "}");
    });
    L.push("}");
  }
  L.push("}", "", "}", `# Generated by LVM2 version 2.03.16(2) (2022-05-18): Tue Nov 14 22:13:20 2023`, "",
    `contents = "Text Format Volume Group"`, "version = 1", "", `description = "Write from lvcreate -n root rootvg."`, "",
    `creation_host = "rocky9"\t# Linux rocky9 5.14.0-362.8.1.el9_3.x86_64 #1 SMP PREEMPT_DYNAMIC x86_64`,
    `creation_time = 1700000000\t# Tue Nov 14 22:13:20 2023`, "");
  return L.join("\n");
}

