// Which partition, disk region and file a disk sector belongs to, for the HTML report's disk map and `--trace`:
// partitions from images/layout.ts (MBR / UEFI 2.10 §5.2-5.3 GPT), files by walking each openable filesystem
// (images/fs-open.ts, FileSystem.extents gives whole-disk LBAs) within a file, run and wall-time budget.
import { performance } from "node:perf_hooks";
import type { BlockDevice } from "../images/block.ts";
import { ImageError } from "../images/errors.ts";
import type { FileHandle, FileSystem } from "../images/fs.ts";
import { openVolumes } from "../images/fs-open.ts";
import { readLayout, type Layout } from "../images/layout.ts";
import { openImage } from "../images/registry.ts";

/** A partition as the disk map draws it. */
export interface MapPartition {
  /** "p1".. as fs-open names volumes. */
  id: string;
  index: number;
  startLba: number;
  sectorCount: number;
  typeName: string;
  /** Content kind by signature (ext4, fat32, ntfs, lvm2, swap...). */
  kind: string;
  label?: string;
  bootable?: boolean;
}

/** One run of a file's data on the disk. */
export interface FileRun { lba: number; count: number; path: string; volume: string }

export interface DiskIndex {
  sectorCount: number;
  sectorSize: number;
  partitioning: string;
  partitions: MapPartition[];
  /** File data runs sorted by lba (whole-disk LBAs). */
  files: FileRun[];
  /** Files whose extents were listed, and whether every openable filesystem was walked to the end. */
  filesIndexed: number;
  complete: boolean;
  /** Why the walk stopped early or a volume could not be read (shown in the report). */
  notes: string[];
}

/** A piece of a disk range: the partition (or the region outside partitions) and the file it belongs to. */
export interface Piece { lba: number; count: number; partition?: string; region?: string; file?: string }

export interface IndexBudget {
  /** Files (and directories) looked at, over all volumes. */
  maxFiles?: number;
  /** File runs kept. */
  maxRuns?: number;
  /** Host time for the whole walk. */
  maxMs?: number;
}

/** Defaults: enough for /boot and a few thousand system files; a big root filesystem is cut short, /boot first. */
export const INDEX_MAX_FILES = 20_000;
export const INDEX_MAX_RUNS = 200_000;
export const INDEX_MAX_MS = 3_000;
/** Entries listed per directory and directory depth followed. */
const MAX_DIR_ENTRIES = 10_000;
const MAX_DEPTH = 32;
/** Pieces one range is split into (the rest is reported as one more piece). */
const MAX_PIECES_PER_RANGE = 64;
/** Directory names walked before their siblings: where boot loaders, kernels and initrds live. */
const BOOT_NAMES = /^(boot|grub2?|efi|loader|syslinux|extlinux|isolinux|bootmgr|windows|system32|config|vmlinuz.*|initrd.*|initramfs.*)$/i;

/** Partitions of a layout, as the disk map needs them (extended containers left out: their logicals are listed). */
export function mapPartitions(layout: Layout): MapPartition[] {
  return layout.partitions.filter((p) => !p.extended && p.sectorCount > 0).map((p) => ({
    id: `p${p.index}`, index: p.index, startLba: p.startLba, sectorCount: p.sectorCount, typeName: p.typeName, kind: p.content.kind,
    ...(p.content.label ? { label: p.content.label } : {}), ...(p.bootable ? { bootable: true } : {}),
  }));
}

/**
 * Index the disk's partitions and (within the budget) its files' data runs. `hot` ranges (sectors the boot read)
 * put the volumes holding them first, and when given only runs that touch them are kept. Never throws ImageError.
 */
export function indexDisk(dev: BlockDevice, layout: Layout, hot?: { lba: number; count: number }[], budget: IndexBudget = {}): DiskIndex {
  const maxFiles = budget.maxFiles ?? INDEX_MAX_FILES, maxRuns = budget.maxRuns ?? INDEX_MAX_RUNS, maxMs = budget.maxMs ?? INDEX_MAX_MS;
  const t0 = performance.now();
  const idx: DiskIndex = { sectorCount: dev.sectorCount, sectorSize: dev.sectorSize, partitioning: layout.partitioning,
    partitions: mapPartitions(layout), files: [], filesIndexed: 0, complete: true, notes: [] };
  const hotSorted = hot ? [...hot].sort((a, b) => a.lba - b.lba) : undefined;
  const touchesHot = (lba: number, count: number): boolean => !hotSorted || overlapsAny(hotSorted, lba, count);
  let vols;
  try {
    vols = openVolumes(dev, layout);
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    idx.complete = false;
    idx.notes.push(`volumes not listed: ${e.message}`);
    return idx;
  }
  const list = [...vols.list];
  if (hotSorted) {
    const score = (v: (typeof list)[number]) => (v.startLba !== undefined && overlapsAny(hotSorted, v.startLba, v.sectorCount) ? 0 : 1);
    list.sort((a, b) => score(a) - score(b));
  }
  let looked = 0;
  const out = (): boolean => {
    const why = looked >= maxFiles ? `file budget of ${maxFiles} entries used up`
      : idx.files.length >= maxRuns ? `run budget of ${maxRuns} file extents used up`
        : performance.now() - t0 > maxMs ? `time budget of ${maxMs} ms used up` : undefined;
    if (!why) return false;
    idx.complete = false;
    if (!idx.notes.includes(why)) idx.notes.push(why);
    return true;
  };
  for (const v of list) {
    if (out()) break;
    let fs: FileSystem | undefined;
    try {
      fs = v.open();
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      idx.notes.push(`${v.id} (${v.kind}) not readable: ${e.message}`);
      continue;
    }
    if (!fs) continue;
    // Breadth first, boot-related names first at every level.
    const queue: { h: FileHandle; path: string; depth: number }[] = [{ h: fs.root(), path: "", depth: 0 }];
    for (let qi = 0; qi < queue.length; qi++) {
      if (out()) break;
      const d = queue[qi];
      let names: string[];
      try {
        names = fs.readdir(d.h).filter((n) => n !== "." && n !== "..");
      } catch (e) {
        if (!(e instanceof ImageError)) throw e;
        idx.notes.push(`${v.id}:${d.path || "/"} not listed: ${e.message}`);
        continue;
      }
      if (names.length > MAX_DIR_ENTRIES) {
        idx.complete = false;
        idx.notes.push(`${v.id}:${d.path || "/"} has ${names.length} entries; the first ${MAX_DIR_ENTRIES} were indexed`);
        names = names.slice(0, MAX_DIR_ENTRIES);
      }
      names.sort((a, b) => Number(!BOOT_NAMES.test(a)) - Number(!BOOT_NAMES.test(b)));
      for (const name of names) {
        if (++looked > maxFiles || idx.files.length >= maxRuns) break;
        if ((looked & 255) === 0 && performance.now() - t0 > maxMs) break;
        const p = `${d.path}/${name}`;
        try {
          const h = fs.lookup(d.h, name);
          if (!h) continue;
          const st = fs.stat(h);
          if (st.type === "dir") {
            if (d.depth + 1 < MAX_DEPTH) queue.push({ h, path: p, depth: d.depth + 1 });
          } else if (st.type === "file") {
            idx.filesIndexed++;
            for (const x of fs.extents(h)) {
              if (idx.files.length >= maxRuns) break;
              if (x.count > 0 && touchesHot(x.lba, x.count)) idx.files.push({ lba: x.lba, count: x.count, path: p, volume: v.id });
            }
          }
        } catch (e) {
          if (!(e instanceof ImageError)) throw e;
          if (idx.notes.length < 32) idx.notes.push(`${v.id}:${p} skipped: ${e.message}`);
        }
      }
    }
  }
  idx.files.sort((a, b) => a.lba - b.lba);
  return idx;
}

/** Open an image just to index it (the check itself opens its own device); a note instead of an exception. */
export function indexImage(file: string, opts: { format?: string; allowDirs?: string[] }, hot?: { lba: number; count: number }[],
  budget?: IndexBudget): DiskIndex | { error: string } {
  let dev: BlockDevice;
  try {
    dev = openImage(file, { format: opts.format, allowDirs: opts.allowDirs ?? [] });
  } catch (e) {
    if (e instanceof ImageError) return { error: e.message };
    throw e;
  }
  try {
    return indexDisk(dev, readLayout(dev), hot, budget);
  } catch (e) {
    if (e instanceof ImageError) return { error: e.message };
    throw e;
  } finally {
    dev.close();
  }
}

function overlapsAny(sorted: { lba: number; count: number }[], lba: number, count: number): boolean {
  // Ranges may overlap each other: a linear scan from the first candidate by binary search on start.
  let lo = 0, hi = sorted.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (sorted[mid].lba < lba + count) lo = mid + 1; else hi = mid; }
  for (let i = lo - 1; i >= 0; i--) {
    if (sorted[i].lba + sorted[i].count > lba) return true;
    if (lba - sorted[i].lba > 1 << 30) break;                 // far enough back: no huge range reaches this far
  }
  return false;
}

/** The region of the disk outside partitions a sector lies in (MBR, GPT structures, gaps). */
export function regionOf(idx: Pick<DiskIndex, "partitioning" | "partitions" | "sectorCount">, lba: number): string {
  if (lba === 0) return idx.partitioning === "gpt" || idx.partitioning === "hybrid" ? "protective MBR" : "MBR (boot code and partition table)";
  const gpt = idx.partitioning === "gpt" || idx.partitioning === "hybrid";
  if (gpt && lba === 1) return "GPT header";
  if (gpt && lba < 34) return "GPT partition entries";
  if (gpt && lba >= idx.sectorCount - 33) return "backup GPT";
  const first = Math.min(...idx.partitions.map((p) => p.startLba), idx.sectorCount);
  if (lba < first) return "gap before the first partition (post-MBR gap: GRUB core.img lives here on MBR disks)";
  return "outside any partition";
}

/** Split [lba, lba+count) into pieces by partition and file (bounded; the index need not be complete). */
export function attribute(idx: DiskIndex, lba: number, count: number): Piece[] {
  const pieces: Piece[] = [];
  const end = lba + count;
  let at = lba;
  // File runs are sorted by lba: start at the last run beginning at or before `lba` and walk forward.
  let lo = 0, hi = idx.files.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (idx.files[mid].lba <= lba) lo = mid + 1; else hi = mid; }
  let fi = Math.max(0, lo - 1);
  while (fi > 0 && idx.files[fi - 1].lba + idx.files[fi - 1].count > lba && lba - idx.files[fi - 1].lba < 1 << 24) fi--;
  while (at < end) {
    if (pieces.length >= MAX_PIECES_PER_RANGE) {
      pieces.push({ lba: at, count: end - at, ...where(idx, at) });
      break;
    }
    // The file run covering `at`, else the next run's start.
    let file: FileRun | undefined;
    let nextStart = end;
    for (let i = fi; i < idx.files.length; i++) {
      const r = idx.files[i];
      if (r.lba > at) { nextStart = Math.min(nextStart, r.lba); break; }
      if (r.lba + r.count > at) { file = r; break; }
      if (i === fi) fi++;
    }
    const w = where(idx, at);
    let stop = Math.min(end, file ? file.lba + file.count : nextStart, w.until);
    if (stop <= at) stop = at + 1;
    pieces.push({ lba: at, count: stop - at, ...(w.partition ? { partition: w.partition } : { region: w.region }),
      ...(file ? { file: `${file.volume}:${file.path}` } : {}) });
    at = stop;
  }
  // Merge neighbours with the same labels.
  const merged: Piece[] = [];
  for (const p of pieces) {
    const last = merged[merged.length - 1];
    if (last && last.lba + last.count === p.lba && last.partition === p.partition && last.region === p.region && last.file === p.file) last.count += p.count;
    else merged.push({ ...p });
  }
  return merged;
}

/** Partition (or region) at `lba`, and the first LBA after it where that answer may change. */
function where(idx: DiskIndex, lba: number): { partition?: string; region?: string; until: number } {
  const p = idx.partitions.find((x) => lba >= x.startLba && lba < x.startLba + x.sectorCount);
  if (p) return { partition: p.id, until: p.startLba + p.sectorCount };
  const next = Math.min(...idx.partitions.map((x) => (x.startLba > lba ? x.startLba : Infinity)), idx.sectorCount, lba <= 33 ? 34 : Infinity);
  return { region: regionOf(idx, lba), until: lba === 0 ? 1 : lba === 1 ? 2 : Math.max(lba + 1, next) };
}
