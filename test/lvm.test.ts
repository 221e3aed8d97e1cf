// LVM2 PVs on MBR partitions with linear and striped LVs holding a real XFS (mkfs.xfs), read back
// as block devices; plus damaged labels, metadata areas and metadata text.
//
// pvcreate/vgcreate cannot work on a plain file here (lvm2 2.03.16 scans block devices only:
// "No device found for FILE", and there is no device-mapper), so `writePv` (test/linux-disk.ts) lays down the
// on-disk format exactly as lvm2 writes it: label_header + pv_header (lib/label/label.h,
// lib/format_text/layout.h) in sector 1, mda_header at 4 KiB, the metadata text at 4 KiB + 512 in
// the form lvm2's export.c writes, with lvm2's CRC (crc.c's nibble table, reimplemented here
// independently of images/lvm.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import { resolvePath } from "../images/fs.ts";
import { openXfs } from "../images/xfs.ts";
import { LogicalVolume, mapperName, openLogicalVolume, readPvLabel, scanLvm } from "../images/lvm.ts";
import { parseLvmText } from "../images/lvm-meta.ts";
import { ImageError } from "../images/errors.ts";
import { prng, sh, tmpdir } from "./helpers.ts";
import { calcCrc, dashed, EXTENT, MiB, vgText, writePv, type Seg } from "./linux-disk.ts";

const PV0 = "Fjpscc0pSRxiUtV60PYzlYX07VbMul3y";
const PV1 = "JIrYxoFzX55oMaqwO7SPnQnoZ2K4WEY5";
const PV2 = "gQ7NxFuSH4NsDQoWi2jc2JKy6ZTMy5n6";

/** Where LV byte `pos` lives on the disk, for segments laid out as in `segs` (test's own mapping). */
function lvToDisk(pos: number, segs: Seg[], pvBase: Record<string, number>): number {
  for (const s of segs) {
    const start = s.start * EXTENT, len = s.count * EXTENT;
    if (pos < start || pos >= start + len) continue;
    const o = pos - start;
    if (s.stripes.length === 1) return pvBase[s.stripes[0][0]] + MiB + s.stripes[0][1] * EXTENT + o;
    const chunk = s.stripeSize! * 512, n = s.stripes.length;
    const k = Math.floor(o / chunk), [pv, pe] = s.stripes[k % n];
    return pvBase[pv] + MiB + pe * EXTENT + Math.floor(k / n) * chunk + (o % chunk);
  }
  throw new Error(`LV byte ${pos} unmapped`);
}

function expectCode(fn: () => unknown, code: string): void {
  try { fn(); } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    expect((e as ImageError).code).toBe(code);
    return;
  }
  throw new Error(`expected ImageError ${code}`);
}

describe("LVM2", () => {
  const dir = tmpdir("bootgate-lvm-");
  let img: string;
  const pvBase: Record<string, number> = {};
  const ROOT: Seg[] = [
    { start: 0, count: 3, stripes: [["pv1", 4]] },
    { start: 3, count: 8, stripes: [["pv0", 0], ["pv1", 0]], stripeSize: 128 },
  ];
  const DATA: Seg[] = [{ start: 0, count: 2, stripes: [["pv0", 4]] }];
  const kernel = prng(21, 2 * MiB + 777);
  const partBytes = 32 * MiB;
  let text: string;

  const build = (name: string, t: string, mutate?: (label: Buffer, mda: Buffer) => void): string => {
    const f = path.join(dir, name);
    fs.copyFileSync(img, f);
    writePv(f, pvBase.pv0, partBytes, PV0, t, mutate);
    writePv(f, pvBase.pv1, partBytes, PV1, t);
    return f;
  };

  beforeAll(() => {
    // An MBR disk: /boot (8 MiB), then two 32 MiB partitions of type 8e (Linux LVM).
    img = path.join(dir, "disk.img");
    sh("truncate", ["-s", "80M", img]);
    sh("sfdisk", ["-q", img], { input: "label: dos\nstart=2048, size=16384, type=83\nsize=65536, type=8e\nsize=65536, type=8e\n" });
    const parts = readLayout(openImage(img)).partitions;
    pvBase.pv0 = parts[1].startLba * 512;
    pvBase.pv1 = parts[2].startLba * 512;
    // A real XFS for the striped+linear root LV (11 extents = 44 MiB).
    const src = path.join(dir, "src");
    fs.mkdirSync(path.join(src, "boot"), { recursive: true });
    fs.mkdirSync(path.join(src, "etc"));
    fs.writeFileSync(path.join(src, "boot/vmlinuz"), kernel);
    fs.writeFileSync(path.join(src, "etc/fstab"), "/dev/mapper/rootvg-root / xfs defaults 0 0\n");
    const proto = path.join(dir, "proto");
    fs.writeFileSync(proto, ["/dev/null", "0 0", "d--755 0 0", "boot d--755 0 0", `vmlinuz ---644 0 0 ${src}/boot/vmlinuz`, "$",
      "etc d--755 0 0", `fstab ---644 0 0 ${src}/etc/fstab`, "$", "$", ""].join("\n"));
    const fsImg = path.join(dir, "root.xfs");
    sh("truncate", ["-s", `${11 * 4}M`, fsImg]);
    execFileSync("mkfs.xfs", ["-q", "-f", "-p", proto, fsImg], { env: { ...process.env, TEST_DIR: dir, TEST_DEV: "/dev/null", QA_CHECK_FS: "1" }, stdio: "pipe" });
    const data = fs.readFileSync(fsImg);
    const fd = fs.openSync(img, "r+");
    try {
      for (let pos = 0; pos < data.length; pos += 64 * 1024) fs.writeSync(fd, data, pos, 64 * 1024, lvToDisk(pos, ROOT, pvBase));
      const filler = prng(5, 2 * EXTENT);
      for (let pos = 0; pos < filler.length; pos += MiB) fs.writeSync(fd, filler, pos, MiB, lvToDisk(pos, DATA, pvBase));
    } finally { fs.closeSync(fd); }
    text = vgText("rootvg", 7, [["pv0", PV0, "/dev/sda2", 7], ["pv1", PV1, "/dev/sda3", 7]], [["root", ROOT], ["my-data", DATA]]);
    writePv(img, pvBase.pv0, partBytes, PV0, text);
    writePv(img, pvBase.pv1, partBytes, PV1, text);
    // An older copy on pv1 (seqno 6) must lose to the newer one.
    writePv(img, pvBase.pv1, partBytes, PV1, text.replace("seqno = 7", "seqno = 6").replace("my-data", "old-name"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("finds the PVs on the partitions and assembles the VG from the newest metadata", () => {
    const disk = openImage(img);
    try {
      expect(readLayout(disk).partitions.map((p) => p.content.kind)).toEqual(["empty", "lvm2", "lvm2"]);
      const scan = scanLvm(disk);
      expect(scan.pvs.map((p) => [p.partition, p.uuid])).toEqual([[2, PV0], [3, PV1]]);
      expect(scan.pvs[1].metadata?.seqno).toBe(6);
      expect(scan.vgs).toHaveLength(1);
      const vg = scan.vgs[0];
      expect([vg.name, vg.seqno, vg.extentSize]).toEqual(["rootvg", 7, 8192]);
      expect(vg.lvs.map((l) => [l.name, l.mapperPath, l.devPath, l.sizeBytes])).toEqual([
        ["root", "/dev/mapper/rootvg-root", "/dev/rootvg/root", 11 * EXTENT],
        ["my-data", "/dev/mapper/rootvg-my--data", "/dev/rootvg/my-data", 2 * EXTENT],
      ]);
      expect(scan.findings).toEqual([]);
      expect(mapperName("debian-vg", "root")).toBe("debian--vg-root");
    } finally { disk.close(); }
  });

  it("reads XFS through a linear + striped LV and maps file extents to whole-disk LBAs", () => {
    const disk = openImage(img);
    try {
      const lv = openLogicalVolume(disk, scanLvm(disk), "/dev/mapper/rootvg-root");
      expect(lv.sectorCount).toBe(11 * EXTENT / 512);
      const xfs = openXfs(lv);
      expect(xfs.readdir(xfs.root()).sort()).toEqual(["boot", "etc"]);
      const k = resolvePath(xfs, "/boot/vmlinuz")!;
      expect(xfs.read(k, 0, kernel.length).equals(kernel)).toBe(true);
      expect(xfs.read(resolvePath(xfs, "/etc/fstab")!, 0, 100).toString()).toContain("rootvg-root");
      // The kernel's runs on the disk, read directly, are its bytes; they cross stripes (several runs).
      const runs = xfs.extents(k);
      expect(runs.length).toBeGreaterThan(1);
      const inPart = (base: number) => runs.some((r) => r.lba * 512 >= base && r.lba * 512 < base + partBytes);
      expect(inPart(pvBase.pv0) && inPart(pvBase.pv1)).toBe(true); // 64 KiB chunks alternate between the PVs
      const got = Buffer.concat(runs.map((r) => Buffer.from(disk.read(r.lba, r.count))));
      expect(got.subarray(0, kernel.length).equals(kernel)).toBe(true);
      // Every LV sector maps inside a PV partition.
      for (const r of lv.mapToDisk(0, lv.sectorCount)) {
        expect(r.lba * 512 >= pvBase.pv0 + MiB || r.lba * 512 >= pvBase.pv1 + MiB).toBe(true);
      }
    } finally { disk.close(); }
  });

  it("reads an LV whose name holds a '-' by its /dev/mapper name", () => {
    const disk = openImage(img);
    try {
      const lv = openLogicalVolume(disk, scanLvm(disk), "/dev/mapper/rootvg-my--data");
      expect(Buffer.from(lv.read(0, 2 * EXTENT / 512 / 2)).equals(prng(5, 2 * EXTENT).subarray(0, EXTENT))).toBe(true);
      expect(openLogicalVolume(disk, scanLvm(disk), "/dev/rootvg/my-data")).toBeInstanceOf(LogicalVolume);
      expectCode(() => openLogicalVolume(disk, scanLvm(disk), "/dev/mapper/rootvg-swap"), "E_LVM_NO_LV");
    } finally { disk.close(); }
  });

  it("reports a VG spanning a PV that is not on the disk, and refuses the LVs on it", () => {
    const t = vgText("rootvg", 8, [["pv0", PV0, "/dev/sda2", 7], ["pv1", PV1, "/dev/sda3", 7], ["pv2", PV2, "/dev/sdb1", 100]],
      [["root", ROOT], ["home", [{ start: 0, count: 50, stripes: [["pv2", 0]] }]]]);
    const f = build("missing.img", t);
    const disk = openImage(f);
    try {
      const scan = scanLvm(disk);
      const miss = scan.findings.find((x) => x.code === "LVM_PV_MISSING")!;
      expect(miss.message).toContain(dashed(PV2));
      expect(miss.message).toContain("home");
      expect(scan.vgs[0].lvs.find((l) => l.name === "home")!.missingPvs).toEqual(["pv2"]);
      expectCode(() => openLogicalVolume(disk, scan, "/dev/mapper/rootvg-home"), "E_LVM_PV_MISSING");
      expect(openXfs(openLogicalVolume(disk, scan, "rootvg/root")).readdir(openXfs(openLogicalVolume(disk, scan, "rootvg/root")).root())).toContain("boot");
    } finally { disk.close(); }
  });

  describe("hostile PVs", () => {
    const pv0 = (f: string) => {
      const disk = openImage(f);
      try { return readPvLabel(disk, pvBase.pv0 / 512, partBytes / 512, 2); } finally { disk.close(); }
    };
    it("refuses a PV label whose checksum has a flipped bit", () => {
      const f = build("labelcrc.img", text, (l) => { l[16] ^= 1; });
      expectCode(() => pv0(f), "E_LVM_PV");
      const disk = openImage(f);
      try { expect(scanLvm(disk).findings.map((x) => x.code)).toContain("LVM_PV_UNREADABLE"); } finally { disk.close(); }
    });
    it("refuses a PV header whose data-area list never ends", () => {
      const f = build("areas.img", text, (l) => {
        for (let p = 72; p + 16 <= 512; p += 16) { l.writeBigUInt64LE(4096n, p); l.writeBigUInt64LE(1n, p + 8); }
        l.writeUInt32LE(calcCrc(l.subarray(20)), 16);
      });
      expectCode(() => pv0(f), "E_LVM_PV");
    });
    it("refuses a metadata area whose text length is 2^40", () => {
      const f = build("mdalen.img", text, (_l, m) => { m.writeBigUInt64LE(2n ** 40n, 48); m.writeUInt32LE(calcCrc(m.subarray(4, 512)), 0); });
      expectCode(() => pv0(f), "E_LVM_MDA");
    });
    it("refuses metadata text whose checksum does not match", () => {
      const f = build("textcrc.img", text, (_l, m) => { m[600] ^= 0x20; });
      expectCode(() => pv0(f), "E_LVM_METADATA");
    });
    it("refuses metadata text with an unbalanced brace", () => {
      expectCode(() => pv0(build("brace.img", text.replace("logical_volumes {", "logical_volumes {{"))), "E_LVM_METADATA");
    });
    it("refuses metadata nested 100000 sections deep without overflowing the stack", () => {
      expectCode(() => parseLvmText("a {".repeat(100000)), "E_LVM_METADATA");
    });
    it("refuses a striped segment whose stripe_count disagrees with its stripes", () => {
      const f = build("stripes.img", text.replace("stripe_count = 2", "stripe_count = 3"));
      const disk = openImage(f);
      try {
        const scan = scanLvm(disk);
        expect(scan.vgs).toEqual([]);
        expect(scan.findings.map((x) => x.message).join()).toContain("stripe_count 3");
      } finally { disk.close(); }
    });
    it("refuses an LV whose extents run past its PV", () => {
      const f = build("pastpv.img", text.replace(`"pv0", 4`, `"pv0", 6`));
      const disk = openImage(f);
      try { expectCode(() => openLogicalVolume(disk, scanLvm(disk), "/dev/mapper/rootvg-my--data"), "E_LVM_METADATA"); } finally { disk.close(); }
    });
  });
});
