// What the fuzzing harness (scripts/fuzz.ts) feeds: one target per parser family, each with its real
// seeds (scripts/fuzz-seeds.ts) and a bounded run whose only acceptable failure is an ImageError.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Disk, type BlockDevice, type OpenContext } from "../images/block.ts";
import { ImageError } from "../images/errors.ts";
import { drivers, driverFor } from "../images/registry.ts";
import { readLayout, type Layout } from "../images/layout.ts";
import { openVolumes } from "../images/fs-open.ts";
import { resolvePath, type FileSystem, type FileHandle } from "../images/fs.ts";
import { openFat } from "../images/fat.ts";
import { openExt4 } from "../images/ext4.ts";
import { openXfs } from "../images/xfs.ts";
import { openNtfs } from "../images/ntfs.ts";
import { scanLvm, openLogicalVolume } from "../images/lvm.ts";
import { openHive, decodeValue, type Hive, type RegKey } from "../images/regf.ts";
import { readBcd, matchBcdToDisk } from "../images/bcd.ts";
import { readWindowsSystem, readWindowsVersion, storageDriverReadiness } from "../images/windows-system.ts";
import { parseCpio } from "../images/cpio.ts";
import { readInitramfs } from "../images/initramfs.ts";
import { decompressAuto } from "../images/decompress.ts";
import { readGrubConfig, parseGrubenv } from "../images/grub-cfg.ts";
import { parseBlsEntries, sortBlsEntries } from "../images/bls.ts";
import { parsePe, loadPe, authenticodeDigest, certificateTable } from "../firmware-stubs/pe.ts";
import { checkImage } from "../emu/check.ts";
import { parseAuthenticode, signerSignatureValid, carriedChain } from "../firmware-stubs/secureboot-authenticode.ts";
import { secureBootTemplate, verifyImage } from "../firmware-stubs/secureboot.ts";
import { clean, hotRanges, materialize, mutatedDisk, mutatedSource, readMutated, type Mutated, type Seed } from "./fuzz-mutate.ts";
import { SEED_DIR, gen1Path, seedPath } from "./fuzz-seeds.ts";

const HOT_DIR = path.join(SEED_DIR, "hot");

/** Walk bounds: a mutated filesystem may claim millions of files; the walk reads a bounded sample. */
const WALK_MAX_ENTRIES = 3000;
const WALK_MAX_DEPTH = 24;
const WALK_MAX_BYTES = 8 * 1024 * 1024;
const WALK_FILE_BYTES = 1024 * 1024;

export interface Target {
  name: string;
  /** Share of the cases (the full `check` is ~1000x slower than a parser). */
  weight: number;
  /** A case running longer than this is a hang (the worker is killed). */
  hangMs: number;
  seeds: () => Seed[];
  /** Feed one input; `log` collects the byte ranges read (for hot ranges on the clean seed). */
  run: (m: Mutated, log?: [number, number][]) => void | Promise<void>;
  /** Fixed hot ranges for in-memory parsers (default: the whole input). */
  hot?: (s: Seed) => [number, number][];
}

const fileSeed = (file: string, name = path.basename(file)): Seed => ({ name, file, size: fs.statSync(file).size, hot: [] });
const byteSeed = (file: string, name = path.basename(file)): Seed => { const b = fs.readFileSync(file); return { name, bytes: b, size: b.length, hot: [] }; };

/** Read every file of a filesystem tree, bounded in entries, depth and bytes. */
export function walkFs(f: FileSystem): number {
  let entries = 0, bytes = 0;
  const stack: [FileHandle, number][] = [[f.root(), 0]];
  while (stack.length && entries < WALK_MAX_ENTRIES) {
    const [dir, depth] = stack.pop()!;
    for (const name of f.readdir(dir)) {
      if (++entries > WALK_MAX_ENTRIES) break;
      if (name === "." || name === "..") continue;
      const h = f.lookup(dir, name);
      if (!h) continue;
      const st = f.stat(h);
      if (st.type === "dir") { if (depth < WALK_MAX_DEPTH) stack.push([h, depth + 1]); }
      else if (st.type === "symlink") f.readlink(h);
      else if (st.type === "file") {
        f.extents(h);
        for (let off = 0; off < Math.min(st.size, WALK_FILE_BYTES) && bytes < WALK_MAX_BYTES; off += 65536) {
          bytes += f.read(h, off, 65536).length;
        }
      }
    }
  }
  for (const p of ["/boot/grub/grub.cfg", "/sbin/init", "/etc/hostname.link", "/Windows/System32/config/SYSTEM"]) resolvePath(f, p);
  return entries;
}

/** Container drivers never see a parent or extent: the case is one file. */
const noRelatives: OpenContext = {
  allowDirs: [], chain: [],
  openParent: () => { throw new ImageError("E_PARENT_MISSING", "corrupt", "fuzz: no parent images"); },
  openRelated: () => { throw new ImageError("E_EXTENT_MISSING", "corrupt", "fuzz: no extent files"); },
};

function containerTarget(format: string, seeds: () => Seed[]): Target {
  return {
    name: format, weight: 1, hangMs: 10_000, seeds,
    run(m, log) {
      const src = mutatedSource(m, `fuzz.${format}`, log);
      const head = src.readUpTo(0, 65536);
      for (const d of drivers) d.probe(head, src.size, src);
      const disk = new Disk(driverFor(format)!.open(src, noRelatives));
      try {
        readLayout(disk);
        // The first 2 MiB (partition tables, boot code) and 64 sectors spread over the disk: every table level.
        const n = Math.min(disk.sectorCount, 4096);
        for (let lba = 0; lba < n; lba += 128) disk.read(lba, Math.min(128, n - lba));
        for (let i = 1; i <= 64; i++) disk.read(Math.floor((disk.sectorCount - 1) * i / 64), 1);
      } finally { disk.close(); }
    },
  };
}

function fsTarget(name: string, open: (d: BlockDevice) => FileSystem, files: string[]): Target {
  return {
    name, weight: 1, hangMs: 10_000, seeds: () => files.map((f) => fileSeed(seedPath(f))),
    run(m, log) { walkFs(open(mutatedDisk(m, `fuzz-${name}`, log))); },
  };
}

function walkHive(h: Hive): void {
  let keys = 0;
  const visit = (k: RegKey, depth: number) => {
    if (++keys > 5000 || depth > 64) return;
    for (const v of h.values(k)) decodeValue(v);
    for (const s of h.subkeys(k)) visit(s, depth + 1);
  };
  visit(h.root, 0);
}

let bcdLayout: Layout | undefined;

/** Where check writes each case's image (one file, rewritten per case). */
const checkFile = path.join(os.tmpdir(), `bootgate-fuzz-${process.pid}.img`);

export const TARGETS: Target[] = [
  containerTarget("vhd", () => [fileSeed(seedPath("fixed.vhd")), fileSeed(seedPath("dynamic.vhd")), fileSeed(gen1Path("grub-mbr.vhd"))]),
  containerTarget("vhdx", () => [fileSeed(seedPath("disk.vhdx")), fileSeed(gen1Path("grub-mbr.vhdx"))]),
  containerTarget("vmdk", () => [fileSeed(seedPath("sparse.vmdk")), fileSeed(seedPath("stream.vmdk")), fileSeed(gen1Path("grub-mbr.vmdk"))]),
  containerTarget("qcow2", () => [fileSeed(seedPath("disk.qcow2")), fileSeed(seedPath("compressed.qcow2")), fileSeed(gen1Path("grub-mbr.qcow2"))]),
  {
    name: "layout", weight: 1, hangMs: 10_000,
    seeds: () => [fileSeed(gen1Path("grub-mbr.img")), fileSeed(gen1Path("grub-gpt-biosboot.img")), fileSeed(seedPath("ebr.img")), fileSeed(seedPath("gpt-lvm.img"))],
    run(m, log) {
      const dev = mutatedDisk(m, "fuzz-layout", log);
      const vols = openVolumes(dev, readLayout(dev));
      for (const v of vols.list) v.spec;
    },
  },
  fsTarget("fat", openFat, ["fat12.img", "fat16.img", "fat32.img"]),
  fsTarget("ext4", openExt4, ["ext4-1k.img", "ext4-inline.img", "ext2.img"]),
  fsTarget("xfs", openXfs, ["xfs.img"]),
  fsTarget("ntfs", openNtfs, ["ntfs.img"]),
  {
    name: "lvm", weight: 1, hangMs: 10_000, seeds: () => [fileSeed(seedPath("gpt-lvm.img"))],
    run(m, log) {
      const dev = mutatedDisk(m, "fuzz-lvm", log);
      const scan = scanLvm(dev);
      for (const vg of scan.vgs) for (const lv of vg.lvs.slice(0, 8)) {
        const v = openLogicalVolume(dev, scan, `${vg.name}/${lv.name}`);
        const n = Math.min(v.sectorCount, 16384);
        for (let lba = 0; lba < n; lba += 256) v.read(lba, Math.min(256, n - lba));
        walkFs(openExt4(v));
      }
    },
  },
  {
    name: "regf", weight: 1, hangMs: 10_000,
    seeds: () => [byteSeed(seedPath("SYSTEM")), byteSeed(seedPath("BCD")), byteSeed(seedPath("empty.hive"))],
    run(m) { walkHive(openHive(materialize(m), "fuzz")); },
  },
  {
    name: "bcd", weight: 1, hangMs: 10_000, seeds: () => [byteSeed(seedPath("BCD"))],
    run(m) {
      bcdLayout ??= readLayout(mutatedDisk(clean(fileSeed(seedPath("ebr.img"))), "ebr"));
      matchBcdToDisk(readBcd(materialize(m)), bcdLayout);
    },
  },
  {
    name: "windows-system", weight: 1, hangMs: 10_000, seeds: () => [byteSeed(seedPath("SYSTEM"))],
    run(m) {
      const b = materialize(m);
      const f = readWindowsSystem(b, { driverFiles: ["storvsc.sys", "vmbus.sys", "intelide.sys"] });
      for (const t of ["gen1-ide", "gen2-scsi", "azure-nvme"] as const) storageDriverReadiness(f, t);
      readWindowsVersion(b);
    },
  },
  {
    name: "cpio", weight: 1, hangMs: 10_000,
    seeds: () => ["newc.cpio", "crc.cpio", "odc.cpio"].map((f) => byteSeed(seedPath(f))),
    hot: (s) => headerRanges(s),
    run(m) { parseCpio(materialize(m)); },
  },
  {
    name: "initramfs", weight: 1, hangMs: 15_000,
    seeds: () => [...["initrd.gz", "initrd.xz", "initrd.zst", "initrd.lz4", "initrd.bz2", "initrd.lzma", "initrd-early.img", "newc.cpio"].map((f) => byteSeed(seedPath(f))),
      byteSeed(gen1Path("initrd-hv.cpio.gz"))],
    run(m) {
      const r = readInitramfs(materialize(m), 64 * 1024 * 1024);
      void [r.entries.length, r.modules.length, r.kernelVersions, r.generator, r.cmdline, r.dracut, r.initramfsTools, r.modprobe, r.modulesDep(), r.modulesBuiltin()];
      r.file("/etc/hostname"); r.resolve("/sbin/init"); r.list("/lib/modules");
    },
  },
  {
    name: "decompress", weight: 1, hangMs: 15_000,
    seeds: () => ["initrd.gz", "initrd.xz", "initrd.zst", "initrd.lz4", "initrd.bz2", "initrd.lzma"].map((f) => byteSeed(seedPath(f))),
    hot: (s) => [[0, Math.min(s.size, 4096)], [Math.max(0, s.size - 512), Math.min(512, s.size)], [0, s.size]],
    run(m) { decompressAuto(materialize(m), 16 * 1024 * 1024); },
  },
  {
    name: "pe", weight: 1, hangMs: 10_000,
    seeds: () => [byteSeed(seedPath("shimx64.efi")), byteSeed("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "grubx64.efi")],
    hot: (s) => {
      const pe = parsePe(s.bytes!);
      return [[0, Math.min(pe.sizeOfHeaders, 4096)], ...(pe.security.size ? [[pe.security.offset, Math.min(pe.security.size, 4096)] as [number, number]] : [])];
    },
    run(m) {
      const b = materialize(m);
      parsePe(b);
      certificateTable(b);
      authenticodeDigest(b);
      loadPe(b, 0x100000n);
    },
  },
  {
    // Authenticode PKCS#7 (firmware-stubs/secureboot*.ts): the mutations land in the signature blob.
    name: "pkcs7", weight: 1, hangMs: 10_000,
    seeds: () => [byteSeed(seedPath("shimx64.efi")), byteSeed("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "grubx64.efi")],
    hot: (s) => { const pe = parsePe(s.bytes!); return [[pe.security.offset, pe.security.size]]; },
    run(m) {
      const b = materialize(m);
      for (const c of certificateTable(b)) {
        const sig = parseAuthenticode(c.data);
        signerSignatureValid(sig);
        carriedChain(sig);
      }
      verifyImage(b, secureBootTemplate("uefi-ca"));
    },
  },
  {
    name: "grub-cfg", weight: 1, hangMs: 10_000,
    seeds: () => [byteSeed(seedPath("grub-mbr.cfg")), byteSeed(seedPath("grub-menu-timeout.cfg"))],
    run(m) {
      const env = parseGrubenv(fs.readFileSync(seedPath("grubenv"))).vars;
      readGrubConfig(materialize(m), { platform: "pc", grubenv: env, initialRoot: "hd0,msdos1",
        bls: parseBlsEntries([{ name: "a.conf", text: fs.readFileSync(seedPath("bls-0.conf")) }]) });
    },
  },
  {
    name: "grubenv", weight: 0.5, hangMs: 10_000, seeds: () => [byteSeed(seedPath("grubenv"))],
    run(m) { parseGrubenv(materialize(m)); },
  },
  {
    name: "bls", weight: 0.5, hangMs: 10_000, seeds: () => [byteSeed(seedPath("bls-0.conf")), byteSeed(seedPath("bls-1.conf"))],
    run(m) { sortBlsEntries(parseBlsEntries([{ name: "x.conf", text: materialize(m) }, { name: "y.conf", text: fs.readFileSync(seedPath("bls-1.conf")) }])); },
  },
  {
    // The whole pipeline on a mutated Gen1 disk, with a small emulation budget.
    name: "check", weight: 0.01, hangMs: 60_000,
    seeds: () => ["grub-mbr.img", "syslinux-fat.img", "grub-gpt-biosboot.img"].map((f) => fileSeed(gen1Path(f))),
    async run(m, log) {
      writeMutatedFile(m, checkFile);
      try {
        const doc = checkImage(checkFile, { gens: [1, 2], target: "azure", gen1: { maxEvents: 100_000, maxWallMs: 2_000, memoryMiB: 256 } });
        if (![0, 1, 2, 3].includes(doc.exitCode)) throw new Error(`verdict document with exit code ${doc.exitCode}`);
        for (const g of doc.generations) for (const r of g.readLog ?? []) log?.push([r.lba * 512, r.count * 512]);
      } finally { fs.rmSync(checkFile, { force: true }); }
    },
  },
];

/** For `check`: the mutated image as a file (a copy of the seed, patched in place). */
export function writeMutatedFile(m: Mutated, file: string): void {
  fs.copyFileSync(m.seed.file!, file);
  const fd = fs.openSync(file, "r+");
  try {
    fs.ftruncateSync(fd, Math.min(m.size, m.cut ?? m.size));
    fs.ftruncateSync(fd, m.size);
    for (const p of m.patches) {
      const a = Math.min(p.off, m.size), b = Math.min(p.off + p.bytes.length, m.size);
      if (a < b) fs.writeSync(fd, readMutated(m, a, b - a), 0, b - a, a);
    }
  } finally { fs.closeSync(fd); }
}

/** cpio: the headers and names (every entry start), not the file bodies. */
function headerRanges(s: Seed): [number, number][] {
  const out: [number, number][] = [];
  try { for (const e of parseCpio(s.bytes!).entries) out.push([e.offset, 110 + e.name.length + 4]); } catch { /* whole input */ }
  return out.length ? out : [[0, s.size]];
}

export const targetByName = (n: string) => TARGETS.find((t) => t.name === n);

/** Seeds of a target with their hot ranges (the byte ranges a clean run reads), cached per seed file version. */
export async function prepareSeeds(t: Target): Promise<Seed[]> {
  const seeds = t.seeds();
  const cacheFile = path.join(HOT_DIR, `${t.name}.json`);
  let cache: Record<string, { key: string; hot: [number, number][] }> = {};
  try { cache = JSON.parse(fs.readFileSync(cacheFile, "utf8")); } catch { /* first run */ }
  let changed = false;
  for (const s of seeds) {
    if (t.hot) { s.hot = t.hot(s); continue; }
    const key = `${s.size}:${s.file ? fs.statSync(s.file).mtimeMs : "mem"}`;
    const c = cache[s.name];
    if (c && c.key === key) { s.hot = c.hot; continue; }
    const log: [number, number][] = [];
    try { await t.run(clean(s), log); } catch (e) { if (!(e instanceof ImageError)) throw e; }
    s.hot = log.length ? hotRanges(log) : [[0, s.size]];
    cache[s.name] = { key, hot: s.hot };
    changed = true;
  }
  if (changed) {
    fs.mkdirSync(HOT_DIR, { recursive: true });
    const tmp = `${cacheFile}.${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(cache));
    fs.renameSync(tmp, cacheFile);
  }
  return seeds;
}
