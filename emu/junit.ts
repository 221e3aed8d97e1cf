// `check --junit FILE`: verdicts as JUnit XML (the Ant/Surefire dialect that Jenkins, GitLab, Azure Pipelines and
// the GitHub test-report actions read): a <testsuite> per image, a <testcase> per generation and per image rule.
//
// Mapping: a generation that fails, or a broken image rule, is a <failure type=CODE message=...> whose body lists
// each error/warning finding with its remedy. An inconclusive generation is <skipped>: CI systems show a skip as
// "not verified" (grey/yellow) without turning the report red, which matches exit code 3; <error> means "the test
// itself crashed" and is counted as a failure by Jenkins, GitLab and Azure Pipelines. <error> is used for that
// case only: an image that could not be read at all (exit code 2).
import * as path from "node:path";
import type { Finding } from "./findings.ts";
import type { GenerationResult, VerdictDoc } from "./verdict.ts";
import type { BatchErrorEntry } from "./batch.ts";
import type { Target } from "../images/upload-rules.ts";

/**
 * The upload rules images/upload-rules.ts checks for each target, as test cases that pass when their finding is
 * absent. test/junit.test.ts checks that every AZURE_* catalogue code is listed here.
 */
export const IMAGE_RULES: Record<Target, { code: string; name: string }[]> = {
  azure: [
    { code: "AZURE_NOT_FIXED_VHD", name: "image is a fixed VHD" },
    { code: "AZURE_SIZE_NOT_MIB", name: "virtual size is a whole number of MiB" },
    { code: "AZURE_FILE_SIZE", name: "fixed VHD file is virtual size + 512 bytes" },
    { code: "AZURE_SIZE_RANGE", name: "virtual size within Azure's limits" },
  ],
  hyperv: [],
};

/** XML 1.0 character data: escape markup; replace characters XML 1.0 cannot carry (controls, lone surrogates). */
export function xmlEscape(s: string, attribute = false): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case "&": out += "&amp;"; continue;
      case "<": out += "&lt;"; continue;
      case ">": out += "&gt;"; continue;
      case "\"": out += attribute ? "&quot;" : ch; continue;
      case "'": out += attribute ? "&apos;" : ch; continue;
      // An attribute's whitespace is normalised to spaces by every parser unless written as a reference.
      case "\n": out += attribute ? "&#10;" : ch; continue;
      case "\r": out += "&#13;"; continue;
      case "\t": out += attribute ? "&#9;" : ch; continue;
    }
    const legal = (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
    out += legal ? ch : "\uFFFD";
  }
  return out;
}

type Attrs = Record<string, string | number | undefined>;
function el(name: string, attrs: Attrs, body?: string): string {
  const a = Object.entries(attrs).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}="${xmlEscape(String(v), true)}"`).join("");
  return body === undefined ? `<${name}${a}/>` : `<${name}${a}>${body}</${name}>`;
}

const findingText = (f: Finding): string => `${f.severity.toUpperCase()} ${f.code}: ${f.message}\n  fix: ${f.remedy}`;
const seconds = (ms: number | undefined): string => ((ms ?? 0) / 1000).toFixed(3);

interface Case { name: string; classname: string; time?: string; failure?: { type: string; message: string; body: string };
  error?: { type: string; message: string; body: string }; skipped?: string; out?: string }

function caseXml(c: Case): string {
  const parts: string[] = [];
  if (c.failure) parts.push(el("failure", { message: c.failure.message, type: c.failure.type }, xmlEscape(c.failure.body)));
  if (c.error) parts.push(el("error", { message: c.error.message, type: c.error.type }, xmlEscape(c.error.body)));
  if (c.skipped !== undefined) parts.push(el("skipped", { message: c.skipped }));
  if (c.out) parts.push(el("system-out", {}, xmlEscape(c.out)));
  return "    " + el("testcase", { name: c.name, classname: c.classname, time: c.time ?? "0.000" },
    parts.length ? `\n      ${parts.join("\n      ")}\n    ` : undefined);
}

function generationCase(g: GenerationResult, classname: string): Case {
  const name = `gen${g.generation} boots`;
  const chain = g.chain.map((s) => `- ${s.stage}: ${s.what}`);
  const body = [`Generation ${g.generation}: ${g.verdict} (reached ${g.reached})`, ...g.findings.map(findingText), "boot chain:", ...chain].join("\n");
  const c: Case = { name, classname, time: seconds(g.stats.wallMs) };
  if (g.verdict === "fails") {
    const first = g.findings.find((f) => f.severity === "error") ?? g.findings.find((f) => f.severity === "warning") ?? g.findings[0];
    c.failure = { type: first?.code ?? "BOOT_FAILS", message: `Generation ${g.generation} fails at stage ${g.reached}${first ? `: ${first.message}` : ""}`, body };
  } else if (g.verdict === "inconclusive") {
    const why = g.findings.find((f) => f.severity !== "info") ?? g.findings[0];
    c.skipped = `Generation ${g.generation} inconclusive (reached ${g.reached})${why ? `: ${why.code}: ${why.message}` : ""}`;
    c.out = body;
  } else {
    c.out = body;
  }
  return c;
}

/** The image-stage test cases: each rule of the target, then every other image finding of severity error or warning. */
function imageCases(doc: VerdictDoc, classname: string): Case[] {
  const out: Case[] = [];
  const rules = IMAGE_RULES[doc.target as Target] ?? [];
  for (const r of rules) {
    const hits = doc.imageFindings.filter((f) => f.code === r.code);
    const c: Case = { name: `image rule: ${r.name} (${r.code})`, classname };
    if (hits.length) c.failure = { type: r.code, message: hits[0].message, body: hits.map(findingText).join("\n") };
    out.push(c);
  }
  const seen = new Map<string, number>();
  for (const f of doc.imageFindings) {
    if (rules.some((r) => r.code === f.code) || f.severity === "info") continue;
    const n = (seen.get(f.code) ?? 0) + 1;
    seen.set(f.code, n);
    const c: Case = { name: `image: ${f.code}${n > 1 ? ` #${n}` : ""}`, classname };   // CI systems merge same-named cases
    if (f.severity === "error") c.failure = { type: f.code, message: f.message, body: findingText(f) };
    else c.out = findingText(f);
    out.push(c);
  }
  return out;
}

function suiteXml(name: string, props: Attrs, cases: Case[]): string {
  const count = (p: (c: Case) => boolean) => cases.filter(p).length;
  const time = cases.reduce((t, c) => t + Number(c.time ?? 0), 0).toFixed(3);
  const propXml = Object.entries(props).filter(([, v]) => v !== undefined)
    .map(([k, v]) => `      ${el("property", { name: k, value: v })}`).join("\n");
  return "  " + el("testsuite", { name, tests: cases.length, failures: count((c) => !!c.failure), errors: count((c) => !!c.error),
    skipped: count((c) => c.skipped !== undefined), time },
  `\n    <properties>\n${propXml}\n    </properties>\n${cases.map(caseXml).join("\n")}\n  `);
}

/** JUnit XML for the results of one check (one document) or a batch (documents and error entries, in order). */
export function toJunit(results: (VerdictDoc | BatchErrorEntry)[]): string {
  const suites: string[] = [];
  let tests = 0, failures = 0, errors = 0, skipped = 0;
  for (const r of results) {
    const file = "error" in r ? r.path : r.image.path;
    // Jenkins splits a classname at dots into package and class: keep the file name in one piece.
    const classname = path.basename(file).replace(/\./g, "_");
    let cases: Case[];
    let props: Attrs;
    if ("error" in r) {
      cases = [{ name: "image can be read", classname,
        error: { type: r.error.code, message: r.error.message, body: `bootgate could not read ${r.path}: ${r.error.message} [${r.error.code}]` } }];
      props = { path: r.path, exitCode: r.exitCode };
    } else {
      cases = [...imageCases(r, classname), ...r.generations.map((g) => generationCase(g, classname))];
      props = { path: r.image.path, format: r.image.format + (r.image.subformat ? ` ${r.image.subformat}` : ""),
        partitioning: r.image.partitioning, target: r.target, exitCode: r.exitCode, tool: `${r.tool.name} ${r.tool.version}` };
    }
    tests += cases.length;
    failures += cases.filter((c) => c.failure).length;
    errors += cases.filter((c) => c.error).length;
    skipped += cases.filter((c) => c.skipped !== undefined).length;
    suites.push(suiteXml(file, props, cases));
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n`
    + el("testsuites", { name: "bootgate", tests, failures, errors, skipped }, `\n${suites.join("\n")}\n`) + "\n";
}
