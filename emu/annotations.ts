// GitHub Actions annotations for `check` when GITHUB_ACTIONS=true: one `::error`/`::warning` workflow command per
// finding (GitHub Docs, "Workflow commands for GitHub Actions": `::error file={name},title={title}::{message}`).
import type { Finding } from "./findings.ts";
import type { VerdictDoc } from "./verdict.ts";
import type { BatchErrorEntry } from "./batch.ts";

/** Whether the process runs as a GitHub Actions step (the runner sets GITHUB_ACTIONS=true). */
export const inGithubActions = (env: NodeJS.ProcessEnv = process.env): boolean => env.GITHUB_ACTIONS === "true";

/** A command's message: the runner decodes %25, %0D and %0A (so a message can neither end the line nor forge one). */
export function escapeData(s: string): string {
  return s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}

/** A command property value: as data, plus ':' and ',' which delimit properties. */
export function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");
}

export type AnnotationLevel = "error" | "warning" | "notice";

export function annotation(level: AnnotationLevel, props: { file?: string; title?: string }, message: string): string {
  const p = Object.entries(props).filter(([, v]) => v !== undefined && v !== "").map(([k, v]) => `${k}=${escapeProperty(v!)}`).join(",");
  return `::${level}${p ? " " + p : ""}::${escapeData(message)}`;
}

const LEVEL: Partial<Record<Finding["severity"], AnnotationLevel>> = { error: "error", warning: "warning" };

/**
 * The annotations of one document: each error or warning finding once (an image finding that a generation repeats
 * is not repeated; a generation finding names its generations), and a notice for an inconclusive generation that
 * has no warning to show. Info findings are left out: GitHub shows at most 10 annotations of a kind per step.
 */
function docAnnotations(doc: VerdictDoc): string[] {
  const file = doc.image.path;
  const seen = new Map<string, { f: Finding; gens: number[] }>();
  const key = (f: Finding) => `${f.severity}\0${f.code}\0${f.message}`;
  for (const f of doc.imageFindings) if (!seen.has(key(f))) seen.set(key(f), { f, gens: [] });
  const imageKeys = new Set(seen.keys());
  for (const g of doc.generations) {
    for (const f of g.findings) {
      const k = key(f);
      if (imageKeys.has(k)) continue;
      const e = seen.get(k) ?? { f, gens: [] };
      if (!e.gens.includes(g.generation)) e.gens.push(g.generation);
      seen.set(k, e);
    }
  }
  const out: string[] = [];
  for (const { f, gens } of seen.values()) {
    const level = LEVEL[f.severity];
    if (!level) continue;
    const where = gens.length ? `Generation ${gens.join(" and ")}: ` : "";
    out.push(annotation(level, { file, title: f.code }, `${where}${f.message}\nFix: ${f.remedy}`));
  }
  for (const g of doc.generations) {
    if (g.verdict !== "inconclusive" || g.findings.some((f) => f.severity !== "info")) continue;
    const why = g.findings[0];
    out.push(annotation("notice", { file, title: `Generation ${g.generation} inconclusive` },
      `bootgate could not decide whether Generation ${g.generation} boots (reached ${g.reached})${why ? `: ${why.code}: ${why.message}` : ""}`));
  }
  return out;
}

/** Workflow-command lines (no trailing newline) for the results of one check or a batch. */
export function annotationLines(results: (VerdictDoc | BatchErrorEntry)[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    if ("error" in r) out.push(annotation("error", { file: r.path, title: r.error.code }, `bootgate could not read the image: ${r.error.message}`));
    else out.push(...docAnnotations(r));
  }
  return out;
}

/**
 * Print the annotations when running under GitHub Actions: on stdout (the runner reads workflow commands from the
 * step's output), or on stderr when stdout carries JSON (`--json -`), which the runner reads as well.
 */
export function emitAnnotations(results: (VerdictDoc | BatchErrorEntry)[], jsonOnStdout: boolean, writeOut: (s: string) => void): void {
  if (!inGithubActions()) return;
  const text = annotationLines(results).map((l) => l + "\n").join("");
  if (!text) return;
  if (jsonOnStdout) process.stderr.write(text);
  else writeOut(text);
}
