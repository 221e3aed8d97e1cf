// `check --html FILE`: one self-contained HTML report of a verdict document (verdict.ts, bootgate.verdict/1) — no
// network, no external assets (a Content-Security-Policy meta, CSP Level 3, forbids any fetch), every image-derived
// string escaped. Sections: verdict, boot chain, disk map, screen, findings, trace window.
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { ImageError } from "../images/errors.ts";
import type { Finding } from "./findings.ts";
import type { GenerationResult, VerdictDoc } from "./verdict.ts";
import { indexImage, type DiskIndex } from "./disk-attribution.ts";
import { esc, jsonText, token } from "./report-html-escape.ts";
import { REPORT_CSS, REPORT_JS } from "./report-html-styles.ts";
import { renderChain } from "./report-html-chain.ts";
import { renderDiskMap } from "./report-html-diskmap.ts";
import { framebufferOf, renderConsole, renderFramebuffer } from "./report-html-screen.ts";
import { human } from "./report-text.ts";

export interface HtmlReportOptions {
  /** Partitions and file runs of the disk (disk-attribution.ts), or why they could not be read. */
  index?: DiskIndex | { error: string };
}

/** The section ids, in page order (tests and links rely on them). */
export const SECTION_IDS = ["verdict", "chain", "diskmap", "screen", "findings", "trace"] as const;

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("base64");

interface TraceWindow { at: string; mode: string; lines: { address: string; bytes: string; text: string }[]; registers?: Record<string, string> }

function traceWindowOf(v: unknown): TraceWindow | undefined {
  if (!v || typeof v !== "object") return undefined;
  const w = v as Partial<TraceWindow>;
  if (!Array.isArray(w.lines)) return undefined;
  return { at: String(w.at ?? ""), mode: String(w.mode ?? ""), lines: w.lines.slice(0, 64).filter((l) => l && typeof l === "object"),
    ...(w.registers && typeof w.registers === "object" ? { registers: w.registers } : {}) };
}

const hex = (n: number | undefined, w = 4) => (typeof n === "number" ? (n >>> 0).toString(16).padStart(w, "0") : "?");

function verdictCard(g: GenerationResult): string {
  const stop = g.stop ? `<div>stopped: <b>${esc(g.stop.reason)}</b>${g.stop.cs !== undefined ? ` at <code>${hex(g.stop.cs)}:${hex(g.stop.ip)}</code>` : ""}</div>`
    + `<div class="muted">${esc(g.stop.detail)}</div>` : `<div class="muted">no boot code was emulated</div>`;
  const worst = g.findings.find((f) => f.severity === "error") ?? g.findings.find((f) => f.severity === "warning");
  return `<div class="vcard ${token(g.verdict)}" data-gen="${g.generation}"><div class="big">Generation ${g.generation}: <span class="badge ${token(g.verdict)}">${esc(g.verdict)}</span></div>`
    + `<div>stage reached: <b>${esc(g.reached)}</b></div>${stop}`
    + (worst ? `<div>top finding: <code>${esc(worst.code)}</code> ${esc(worst.message)}</div>` : "") + `</div>`;
}

function findingHtml(f: Finding): string {
  const ev = f.evidence && Object.keys(f.evidence).length ? `<details><summary>evidence</summary><pre>${esc(jsonText(f.evidence))}</pre></details>` : "";
  return `<div class="finding ${token(f.severity)}"><span class="badge ${token(f.severity)}">${esc(f.severity)}</span> <span class="code">${esc(f.code)}</span>`
    + ` <span class="muted">(stage ${esc(f.stage)})</span><div class="msg">${esc(f.message)}</div>`
    + (f.remedy ? `<div class="remedy"><b>Remedy:</b> ${esc(f.remedy)}</div>` : "") + ev + `</div>`;
}

function traceHtml(g: GenerationResult): string {
  const out: string[] = [];
  const w = traceWindowOf(g.traceWindow);
  if (g.stop) out.push(`<p>Stop: <b>${esc(g.stop.reason)}</b> — ${esc(g.stop.detail)}</p>`);
  if (w) {
    out.push(`<p class="muted">Disassembly (Capstone, ${esc(w.mode)} mode) from linear address ${esc(w.at)}; the first line is where the run stopped.</p>`);
    out.push(`<table class="disasm"><tbody>${w.lines.map((l, i) => `<tr${i === 0 ? ` class="at"` : ""}><td>${esc(l.address)}</td><td class="muted">${esc(l.bytes)}</td><td>${esc(l.text)}</td></tr>`).join("")}</tbody></table>`);
    if (w.registers) {
      const regs = Object.entries(w.registers).slice(0, 32).map(([k, v]) => `<span class="mono">${esc(k.padEnd(6))} ${esc(v)}</span>`);
      out.push(`<h3>Registers at the stop</h3><div class="regs">${regs.join("")}</div>`);
    }
  } else if (g.stop) {
    out.push(`<p class="muted">No instruction window: the run stopped outside guest code.</p>`);
  }
  if (Array.isArray(g.traceBlocks) && g.traceBlocks.length) {
    out.push(`<details><summary>last ${g.traceBlocks.length} basic blocks</summary><pre>${esc(g.traceBlocks.slice(-2000).map((b) => `${b.address} +${b.size}`).join("\n"))}</pre></details>`);
  }
  const stats = Object.entries(g.stats ?? {});
  if (stats.length) out.push(`<table class="stats"><tbody>${stats.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</tbody></table>`);
  return out.join("\n") || `<p class="muted">Nothing was emulated for this generation.</p>`;
}

/** Gen2: the UEFI images loaded with their Secure Boot verdicts, the ESP files read and the NVRAM variables written. */
function uefiHtml(g: GenerationResult): string {
  const u = g.uefi as { images?: { file: string; sha256: string; size?: number; started?: boolean;
    secureBoot?: { allowed: boolean; reason: string; signers?: { subject: string }[]; acceptedBy?: string[] } }[];
    filesRead?: { volume: number; path: string; bytes: number }[]; nvramWrites?: { name: string; bytes: number; status: string }[];
    secureBoot?: { template: string } } | undefined;
  if (!u) return "";
  const out: string[] = [`<h4>UEFI images (Secure Boot setting: ${esc(u.secureBoot?.template ?? "?")})</h4>`];
  out.push(`<table class="uefi-images"><thead><tr><th>file</th><th>sha256</th><th>started</th><th>Secure Boot</th><th>signer</th><th>accepted by</th></tr></thead><tbody>`
    + (u.images ?? []).slice(0, 64).map((i) => `<tr><td class="mono">${esc(i.file)}</td><td class="mono">${esc(i.sha256.slice(0, 16))}…</td><td>${i.started ? "yes" : "no"}</td>`
      + `<td>${i.secureBoot ? `${i.secureBoot.allowed ? "allowed" : "denied"} (${esc(i.secureBoot.reason)})` : "not verified by firmware"}</td>`
      + `<td>${esc(i.secureBoot?.signers?.[0]?.subject ?? "")}</td><td>${esc((i.secureBoot?.acceptedBy ?? []).join(", ") || "—")}</td></tr>`).join("")
    + `</tbody></table>`);
  if (u.filesRead?.length) out.push(`<details><summary>${u.filesRead.length} file(s) read from the ESP</summary><pre>${esc(u.filesRead.slice(0, 256).map((f) => `p${f.volume} ${f.path} (${f.bytes} bytes)`).join("\n"))}</pre></details>`);
  if (u.nvramWrites?.length) out.push(`<details><summary>${u.nvramWrites.length} NVRAM write(s)</summary><pre>${esc(u.nvramWrites.slice(0, 256).map((w) => `${w.name} (${w.bytes} bytes): ${w.status}`).join("\n"))}</pre></details>`);
  return out.join("\n");
}

/** The whole report as one HTML string. */
export function renderHtmlReport(doc: VerdictDoc, opts: HtmlReportOptions = {}): string {
  const idx = opts.index && !("error" in opts.index) ? opts.index : undefined;
  const im = doc.image;
  const name = path.basename(im.path);
  const gens = doc.generations;
  const perGen = (f: (g: GenerationResult) => string) => gens.map((g) => `<h3>Generation ${g.generation}</h3>${f(g)}`).join("\n");
  const isImageFinding = (f: Finding) => doc.imageFindings.some((x) => x === f || (x.code === f.code && x.message === f.message));

  const sections: Record<(typeof SECTION_IDS)[number], { title: string; body: string }> = {
    verdict: { title: "Verdict", body: `<div class="verdicts">${gens.map(verdictCard).join("")}</div>`
      + `<p>Exit code for a CI gate: <b>${doc.exitCode}</b> (0 boots, 1 fails, 3 inconclusive). Target: ${esc(doc.target)}.</p>` },
    chain: { title: "Boot chain", body: perGen((g) => renderChain(g) + uefiHtml(g)) },
    diskmap: { title: "Disk map", body: (opts.index && "error" in opts.index ? `<p class="muted">Partitions could not be read: ${esc(opts.index.error)}</p>` : "")
      + perGen((g) => (g.readLog ? renderDiskMap(g.readLog, idx, { sectorCount: Math.floor(im.virtualSize / (im.sectorSize || 512)), sectorSize: im.sectorSize || 512 })
        : `<p class="muted">No boot code ran for this generation: no sectors were read.</p>`)) },
    screen: { title: "Screen", body: perGen((g) => {
      const fb = framebufferOf((g as { framebuffer?: unknown }).framebuffer);
      const attrs = (g as { screenAttrs?: unknown }).screenAttrs;
      const text = g.screen?.length ? renderConsole(g.screen, Array.isArray(attrs) ? attrs.map(String) : undefined) : "";
      return (fb ? renderFramebuffer(fb) : "") + (text || (fb ? "" : `<p class="muted">No screen was captured.</p>`));
    }) },
    findings: { title: "Findings", body: (doc.imageFindings.length ? `<h3>Image</h3>${doc.imageFindings.map(findingHtml).join("")}` : "")
      + perGen((g) => {
        const fs = g.findings.filter((f) => !isImageFinding(f));
        return fs.length ? fs.map(findingHtml).join("") : `<p class="muted">No findings.</p>`;
      }) },
    trace: { title: "Trace window", body: perGen(traceHtml) },
  };

  const csp = `default-src 'none'; img-src data:; style-src 'sha256-${sha256(REPORT_CSS)}'; script-src 'sha256-${sha256(REPORT_JS)}'; `
    + `base-uri 'none'; form-action 'none'; connect-src 'none'; font-src 'none'; media-src 'none'; object-src 'none'; frame-src 'none'`;
  const sub = `${im.format}${im.subformat ? ` (${im.subformat})` : ""}, ${human(im.virtualSize)}, ${im.partitioning} partitioning, target ${doc.target} — ${doc.tool.name} ${doc.tool.version}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bootgate: ${esc(name)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<header><h1>bootgate report: ${esc(name)}</h1><div class="sub">${esc(sub)}</div><div class="sub mono">${esc(im.path)}</div></header>
<nav>${SECTION_IDS.map((id) => `<a href="#${id}">${sections[id].title}</a>`).join("")}</nav>
<main>
${SECTION_IDS.map((id) => `<section id="${id}"><h2>${sections[id].title}</h2>\n${sections[id].body}\n</section>`).join("\n")}
</main>
<footer>Generated by ${esc(doc.tool.name)} ${esc(doc.tool.version)} (${esc(doc.schema)}). Self-contained: no network access, no external resources.</footer>
<script>${REPORT_JS}</script>
</body>
</html>
`;
}

/**
 * Write the report of `doc` to `file`, attributing its reads with `index` when given, else by indexing the image
 * (opened again with the check's options; the walk is bounded, see disk-attribution.ts).
 */
export function writeHtmlReport(file: string, doc: VerdictDoc, open: { format?: string; allowDirs?: string[] }, index?: DiskIndex): void {
  const reads = doc.generations.flatMap((g) => g.readLog ?? []);
  const idx = index?.complete ? index : doc.image.format === "unknown" ? { error: "the container could not be opened" } : indexImage(doc.image.path, open, reads);
  try {
    fs.writeFileSync(file, renderHtmlReport(doc, { index: idx }));
  } catch (e) {
    throw new ImageError("OUTPUT_WRITE", "io", `cannot write the HTML report ${file}: ${(e as Error).message}`);
  }
}
