// Human-readable terminal output for `inspect` and `check` (JSON is the machine format).
import * as path from "node:path";
import type { BlockDevice, ContainerInfo } from "../images/block.ts";
import type { Layout } from "../images/layout.ts";
import type { Finding } from "./findings.ts";
import type { VerdictDoc } from "./verdict.ts";

export interface InspectDoc {
  schema: "bootgate.inspect/1";
  image: string;
  container: Omit<ContainerInfo, "findings" | "parent" | "path"> & { parents: { path: string; format: string; subformat?: string }[] };
  sectorCount: number;
  layout: Omit<Layout, "findings">;
  findings: Finding[];
}

export function inspectDoc(image: string, dev: BlockDevice, layout: Layout): InspectDoc {
  const { findings: cf, parent, path: _p, ...container } = dev.info;
  const parents: InspectDoc["container"]["parents"] = [];
  for (let p = parent; p; p = p.parent) parents.push({ path: p.path, format: p.format, subformat: p.subformat });
  const { findings: lf, ...lay } = layout;
  return { schema: "bootgate.inspect/1", image, container: { ...container, parents }, sectorCount: dev.sectorCount, layout: lay, findings: [...cf, ...lf] };
}

const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
export function human(bytes: number): string {
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** ANSI colours for a terminal (check's summary on a TTY without NO_COLOR); identity otherwise. */
export interface Paint { verdict(v: string, text: string): string; severity(s: string, text: string): string; dim(text: string): string }
const PLAIN: Paint = { verdict: (_v, t) => t, severity: (_s, t) => t, dim: (t) => t };
export const ANSI: Paint = {
  verdict: (v, t) => `\x1b[1;${v === "boots" ? 32 : v === "fails" ? 31 : 33}m${t}\x1b[0m`,
  severity: (s, t) => (s === "error" ? `\x1b[31m${t}\x1b[0m` : s === "warning" ? `\x1b[33m${t}\x1b[0m` : `\x1b[2m${t}\x1b[0m`),
  dim: (t) => `\x1b[2m${t}\x1b[0m`,
};
/** Colour when writing to a terminal that wants it (https://no-color.org). */
export function terminalPaint(stream: { isTTY?: boolean }): Paint {
  return stream.isTTY && !process.env.NO_COLOR && process.env.TERM !== "dumb" ? ANSI : PLAIN;
}

function findingLines(fs: Finding[], indent = "  ", paint: Paint = PLAIN): string[] {
  const out: string[] = [];
  for (const f of fs) {
    out.push(`${indent}${paint.severity(f.severity, f.severity.toUpperCase().padEnd(7))} ${f.code}: ${f.message}`);
    // The summary stays short: remedies for what needs fixing; info findings are one line.
    if (f.remedy && f.severity !== "info") out.push(`${indent}        ${paint.dim("fix:")} ${f.remedy}`);
  }
  return out;
}

export function formatInspect(d: InspectDoc): string {
  const c = d.container;
  const L: string[] = [];
  L.push(`${path.basename(d.image)}: ${c.format}${c.subformat ? ` (${c.subformat})` : ""}, virtual size ${human(c.virtualSize)} (${c.virtualSize} bytes), file ${human(c.fileSize)}`);
  L.push(`  sectors: ${d.sectorCount} x ${c.sectorSize} bytes${c.physicalSectorSize ? ` (physical ${c.physicalSectorSize})` : ""}`);
  if (c.geometry) L.push(`  CHS geometry: ${c.geometry.cylinders}/${c.geometry.heads}/${c.geometry.sectorsPerTrack}`);
  if (c.creator) L.push(`  creator: ${c.creator}`);
  if (c.diskId) L.push(`  disk id: ${c.diskId}`);
  for (const p of c.parents) L.push(`  parent: ${p.path} (${p.format}${p.subformat ? " " + p.subformat : ""})`);
  L.push(`  partitioning: ${d.layout.partitioning}`);
  if (d.layout.partitions.length) {
    L.push(`  ${"#".padStart(3)}  ${"start".padStart(12)} ${"sectors".padStart(12)} ${"size".padStart(10)}  type / content`);
    for (const p of d.layout.partitions) {
      const ct = p.content;
      const extra = [ct.label ? `label "${ct.label}"` : "", ct.uuid ? `uuid ${ct.uuid}` : ""].filter(Boolean).join(", ");
      L.push(`  ${String(p.index).padStart(3)}${p.bootable ? "*" : " "} ${String(p.startLba).padStart(12)} ${String(p.sectorCount).padStart(12)} ${human(p.sectorCount * c.sectorSize).padStart(10)}  ${p.typeName} (${p.type}) / ${ct.kind}${extra ? ` [${extra}]` : ""}`);
    }
  }
  if (d.findings.length) { L.push("  findings:"); L.push(...findingLines(d.findings, "    ")); }
  return L.join("\n") + "\n";
}

export function formatCheck(doc: VerdictDoc, paint: Paint = PLAIN): string {
  const L: string[] = [];
  const im = doc.image;
  L.push(`${path.basename(im.path)}: ${im.format}${im.subformat ? ` (${im.subformat})` : ""}, ${human(im.virtualSize)}, ${im.partitioning} partitioning, target ${doc.target}`);
  if (doc.imageFindings.length) { L.push("  image:"); L.push(...findingLines(doc.imageFindings, "    ", paint)); }
  for (const g of doc.generations) {
    L.push(`  Generation ${g.generation}: ${paint.verdict(g.verdict, g.verdict.toUpperCase())} (reached ${g.reached})`);
    for (const s of g.chain) L.push(`    - ${s.stage}: ${s.what}`);
    const shown = g.findings.filter((f) => !doc.imageFindings.includes(f));
    L.push(...findingLines(shown, "    ", paint));
  }
  return L.join("\n") + "\n";
}
