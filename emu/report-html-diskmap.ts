// The HTML report's disk map: partitions to scale (MBR / UEFI 2.10 §5.3 GPT, from images/layout.ts) as inline SVG,
// the sectors the boot actually read highlighted, each read attributed to its partition and file
// (emu/disk-attribution.ts); plus a table of the files the boot read.
import { attribute, regionOf, type DiskIndex, type MapPartition, type Piece } from "./disk-attribution.ts";
import { esc } from "./report-html-escape.ts";
import { human } from "./report-text.ts";

export interface ReadRange { lba: number; count: number }

const W = 1000;
const LABEL_W = 200;
const BAR_X = LABEL_W + 10;
const BAR_W = W - BAR_X - 10;
const ROW_H = 34;
/** Narrowest drawn read, in SVG units, so a single sector on a 2 TB disk is still visible. */
const MIN_READ_W = 2;
/** Pieces listed in one read's details; rows in the files table. */
const MAX_PIECES_SHOWN = 12;
const MAX_FILE_ROWS = 300;

const KIND_FILL: Record<string, string> = {
  ext2: "#b7e4c7", ext3: "#b7e4c7", ext4: "#b7e4c7", xfs: "#a8dadc", btrfs: "#a8dadc", fat12: "#bde0fe", fat16: "#bde0fe",
  fat32: "#bde0fe", exfat: "#bde0fe", ntfs: "#d8c8f0", lvm2: "#ffd6a5", swap: "#dee2e6", luks: "#ffc8dd", bitlocker: "#ffc8dd",
};

interface Lane { label: string; start: number; count: number; reads: number[] }

function partLabel(p: MapPartition): string {
  return `${p.id} ${p.kind}${p.label ? ` "${p.label}"` : ""}`;
}

/** Where a run of sectors sits, for one line of text. */
function pieceText(idx: DiskIndex | undefined, p: Piece): string {
  const part = p.partition && idx ? idx.partitions.find((x) => x.id === p.partition) : undefined;
  const where = part ? `${partLabel(part)}` : p.region ?? "disk";
  const file = p.file ? p.file.replace(/^[^:]*:/, "") : part ? (idx!.complete ? "(no file: filesystem metadata or free space)" : "(no indexed file)") : "";
  return `LBA ${p.lba}+${p.count}  ${where}${file ? "  " + file : ""}`;
}

/** The disk map section body for one generation's read log. */
export function renderDiskMap(reads: ReadRange[], idx: DiskIndex | undefined, disk: { sectorCount: number; sectorSize: number }): string {
  const total = Math.max(1, idx?.sectorCount ?? disk.sectorCount);
  const sectorSize = idx?.sectorSize ?? disk.sectorSize;
  const parts = idx?.partitions ?? [];
  const pieces = reads.map((r) => (idx ? attribute(idx, r.lba, r.count) : [{ lba: r.lba, count: r.count }]));
  const info = reads.map((r, i) => {
    const ps = pieces[i];
    const lines = ps.slice(0, MAX_PIECES_SHOWN).map((p) => "  " + pieceText(idx, p));
    if (ps.length > MAX_PIECES_SHOWN) lines.push(`  … ${ps.length - MAX_PIECES_SHOWN} more pieces`);
    return `read #${i + 1} of ${reads.length}: LBA ${r.lba}..${r.lba + r.count - 1} (${r.count} sectors, ${human(r.count * sectorSize)})\n${lines.join("\n")}`;
  });

  // Lanes: the whole disk, then every partition or outside region holding reads, each scaled to itself.
  const lanes: Lane[] = [{ label: `whole disk, ${human(total * sectorSize)}`, start: 0, count: total, reads: reads.map((_, i) => i) }];
  const laneOf = new Map<string, Lane>();
  reads.forEach((r, i) => {
    for (const p of pieces[i]) {
      const part = p.partition ? parts.find((x) => x.id === p.partition) : undefined;
      let key: string, lane: Lane;
      if (part) {
        key = part.id;
        lane = laneOf.get(key) ?? { label: `${partLabel(part)}, ${human(part.sectorCount * sectorSize)}`, start: part.startLba, count: part.sectorCount, reads: [] };
      } else {
        // Outside partitions: the stretch between the neighbouring partitions (or disk ends).
        const before = Math.max(0, ...parts.filter((x) => x.startLba + x.sectorCount <= p.lba).map((x) => x.startLba + x.sectorCount));
        const after = Math.min(total, ...parts.filter((x) => x.startLba > p.lba).map((x) => x.startLba));
        key = `gap:${before}`;
        lane = laneOf.get(key) ?? { label: `LBA ${before}..${after - 1} (${idx ? "outside partitions" : "no partition table read"})`, start: before, count: Math.max(1, after - before), reads: [] };
      }
      laneOf.set(key, lane);
      if (lane.reads[lane.reads.length - 1] !== i) lane.reads.push(i);
    }
  });
  if (idx) lanes.push(...[...laneOf.values()].sort((a, b) => a.start - b.start));

  const svg: string[] = [];
  const height = 28 + lanes.length * ROW_H + 8;
  svg.push(`<svg viewBox="0 0 ${W} ${height}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="disk map">`);
  svg.push(`<text x="${BAR_X}" y="16">LBA 0</text><text x="${W - 10}" y="16" text-anchor="end">LBA ${total - 1}</text>`);
  lanes.forEach((lane, li) => {
    const y = 24 + li * ROW_H;
    const x = (lba: number) => BAR_X + ((lba - lane.start) / lane.count) * BAR_W;
    svg.push(`<text x="4" y="${y + 17}">${esc(lane.label.length > 34 ? lane.label.slice(0, 33) + "…" : lane.label)}<title>${esc(lane.label)}</title></text>`);
    svg.push(`<rect class="lane" x="${BAR_X}" y="${y}" width="${BAR_W}" height="24"/>`);
    if (li === 0) {
      for (const p of parts) {
        const px = x(p.startLba), pw = Math.max(1, x(p.startLba + p.sectorCount) - px);
        svg.push(`<rect class="part" data-part="${esc(p.id)}" x="${px.toFixed(2)}" y="${y}" width="${pw.toFixed(2)}" height="24" fill="${KIND_FILL[p.kind] ?? "#e9ecef"}">`
          + `<title>${esc(`${partLabel(p)}: ${p.typeName}, LBA ${p.startLba}..${p.startLba + p.sectorCount - 1}, ${human(p.sectorCount * sectorSize)}${p.bootable ? ", active" : ""}`)}</title></rect>`);
        if (pw > 70) svg.push(`<text x="${(px + 4).toFixed(2)}" y="${y + 16}">${esc(partLabel(p).slice(0, Math.floor(pw / 7)))}</text>`);
      }
    }
    for (const i of lane.reads) {
      const r = reads[i];
      const a = Math.max(lane.start, r.lba), b = Math.min(lane.start + lane.count, r.lba + r.count);
      if (b <= a) continue;
      let rx = x(a), rw = x(b) - rx;
      if (rw < MIN_READ_W) { rx = Math.min(rx, BAR_X + BAR_W - MIN_READ_W); rw = MIN_READ_W; }
      svg.push(`<rect class="rd" data-i="${i}" data-info="${esc(info[i])}" x="${rx.toFixed(2)}" y="${y + 3}" width="${rw.toFixed(2)}" height="18"><title>${esc(info[i])}</title></rect>`);
    }
  });
  svg.push("</svg>");

  const out: string[] = [];
  out.push(`<div class="diskmap">`);
  out.push(`<p class="muted">${reads.length} read${reads.length === 1 ? "" : "s"} (contiguous runs merged), ${reads.reduce((s, r) => s + r.count, 0)} sectors. `
    + `Partitions are drawn to scale on the first line; each further line zooms into one partition or gap. Hover a red mark for its sectors, click to pin the details.</p>`);
  out.push(svg.join(""));
  out.push(`<div class="pinfo mono" aria-live="polite">Click a highlighted read.</div>`);
  if (idx && !idx.complete) out.push(`<p class="muted">File attribution is partial: ${esc(idx.notes.slice(0, 4).join("; "))}</p>`);
  if (!idx) out.push(`<p class="muted">The partition table could not be read for the map; reads are shown on the bare disk.</p>`);
  out.push(renderFilesTable(reads, pieces, idx));
  out.push(`</div>`);
  return out.join("\n");
}

/** Files (and regions) the boot read, in the order first read, with the sectors read from each. */
function renderFilesTable(reads: ReadRange[], pieces: Piece[][], idx: DiskIndex | undefined): string {
  if (!reads.length) return `<p class="muted">The boot read no sectors.</p>`;
  const rows = new Map<string, { what: string; where: string; sectors: number; first: number }>();
  pieces.forEach((ps, i) => {
    for (const p of ps) {
      const part = p.partition && idx ? idx.partitions.find((x) => x.id === p.partition) : undefined;
      const where = part ? partLabel(part) : p.region ?? (idx ? regionOf(idx, p.lba) : "disk");
      const what = p.file ? p.file.replace(/^[^:]*:/, "") : part ? (idx!.complete ? "(filesystem metadata or free space)" : "(no indexed file)") : "";
      const key = `${where}\u0000${what}`;
      const row = rows.get(key);
      if (row) row.sectors += p.count;
      else if (rows.size < MAX_FILE_ROWS) rows.set(key, { what, where, sectors: p.count, first: i + 1 });
    }
  });
  const body = [...rows.values()].map((r) => `<tr><td>${r.first}</td><td>${esc(r.where)}</td><td class="mono">${esc(r.what)}</td><td>${r.sectors}</td></tr>`);
  return `<details class="reads"><summary>What the boot read: ${rows.size} file${rows.size === 1 ? "" : "s"} and regions, in the order first read</summary><table class="files"><thead><tr><th>first read #</th><th>partition / region</th><th>file</th><th>sectors</th></tr></thead>`
    + `<tbody>${body.join("")}</tbody></table>${rows.size >= MAX_FILE_ROWS ? `<p class="muted">First ${MAX_FILE_ROWS} rows shown.</p>` : ""}</details>`;
}
