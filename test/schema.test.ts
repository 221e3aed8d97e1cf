// The published JSON Schemas (emu/verdict.schema.json, emu/batch.schema.json) against the JSON `check --json`
// really emits, validated with ajv in strict mode; and documents the schemas must refuse.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { cli, tmpdir } from "./helpers.ts";
import { GEN1_DIR } from "./gen1-fixtures.ts";
import { assertValidBatch, assertValidVerdict, BATCH_SCHEMA_ID, schemaErrors, schemaValidator, VERDICT_SCHEMA_ID } from "./schema-assert.ts";

const fx = (name: string) => path.join(GEN1_DIR, name);
const GEN2_VHDX = path.join(import.meta.dirname, "../.cache/fixtures/gen2/gen2-shim-removable.vhdx");
type Doc = Record<string, any>;   // eslint-disable-line @typescript-eslint/no-explicit-any
const docs: Record<string, { status: number; doc: Doc }> = {};

async function checkJson(key: string, args: string[]): Promise<void> {
  const r = await cli(["check", ...args, "--json", "-"]);
  docs[key] = { status: r.status, doc: JSON.parse(r.stdout.toString()) };
}

beforeAll(async () => {
  const dir = tmpdir("bootgate-schema-");
  const empty = path.join(dir, "empty.vhd");
  fs.writeFileSync(empty, Buffer.alloc(0));
  // Independent CLI runs, concurrently (each is a separate process).
  await Promise.all([
    checkJson("good", [fx("grub-mbr.vhd")]),                                   // Gen1 boots, Gen2 fails (a BIOS-only MBR disk)
    checkJson("failing", [fx("no-55aa.img"), "--gen", "1"]),                   // Gen1 fails at firmware
    checkJson("unreadable", [empty]),                                          // CONTAINER_UNREADABLE
    checkJson("gen2", [GEN2_VHDX, "--gen", "2", "--target", "hyperv", "--secure-boot", "uefi-ca"]),   // shim -> GRUB -> Linux -> root
    checkJson("batch", [fx("zeroed-bootcode.img"), fx("grub-wrong-prefix.img"), path.join(dir, "missing.vhd"),
      "--gen", "1", "--trace-blocks", "8"]),
  ]);
}, 120_000);

describe("bootgate.verdict/1 accepts what check --json emits", () => {
  it("the schemas compile in ajv's strict mode with their published $id", () => {
    const ajv = schemaValidator();
    expect(ajv.getSchema(VERDICT_SCHEMA_ID)).toBeTypeOf("function");
    expect(ajv.getSchema(BATCH_SCHEMA_ID)).toBeTypeOf("function");
    const s = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "../emu/verdict.schema.json"), "utf8"));
    expect(s.title).toBe("bootgate.verdict/1");
  });
  it("a good Gen1 fixture (fixed VHD, GRUB to a Linux root) and its Gen2 run", () => {
    const { status, doc } = docs.good;
    expect(status).toBe(1);
    expect(doc.generations.map((g: Doc) => g.verdict)).toEqual(["boots", "fails"]);
    expect(doc.generations[1].findings.map((f: Doc) => f.code)).toContain("GEN2_NO_UEFI_FILESYSTEM");
    expect(doc.generations[0].traceWindow.lines.length).toBeGreaterThan(0);
    expect(doc.generations[0].handoff).not.toBeNull();
    assertValidVerdict(doc);
  });
  it("a failing Gen1 fixture (no 55AA)", () => {
    const { status, doc } = docs.failing;
    expect(status).toBe(1);
    expect(doc.generations[0]).toMatchObject({ verdict: "fails", reached: "firmware", stop: { reason: "no-boot-device" } });
    assertValidVerdict(doc);
  });
  it("an image whose container cannot be read", () => {
    const { status, doc } = docs.unreadable;
    expect(status).toBe(1);
    expect(doc.image.format).toBe("unknown");
    expect(doc.imageFindings[0].code).toBe("CONTAINER_UNREADABLE");
    assertValidVerdict(doc);
  });
  it("a Generation 2 run", () => {
    const { status, doc } = docs.gen2;
    expect(status).toBe(0);
    expect(doc.generations[0]).toMatchObject({ verdict: "boots", reached: "root" });
    expect(doc.generations).toHaveLength(1);
    expect(doc.generations[0].generation).toBe(2);
    assertValidVerdict(doc);
  });
  it("a batch run (bootgate.batch/1) with trace blocks and an unreadable image; each result is a verdict or an error", () => {
    const { status, doc } = docs.batch;
    expect(status).toBe(2);
    assertValidBatch(doc);
    expect(doc.results).toHaveLength(3);
    expect(doc.results[1].generations[0].traceBlocks).toHaveLength(8);
    for (const r of doc.results.slice(0, 2)) assertValidVerdict(r);
    expect(doc.results[2]).toMatchObject({ exitCode: 2, error: { kind: "io" } });
  });
});

describe("bootgate.verdict/1 refuses what check --json never emits", () => {
  const base = () => structuredClone(docs.failing.doc);
  const refused = (doc: unknown, where: RegExp) => {
    const errs = schemaErrors(VERDICT_SCHEMA_ID, doc);
    expect(errs.length).toBeGreaterThan(0);
    expect(errs.map((e) => e.instancePath).join(" ")).toMatch(where);
  };
  it("a generation whose verdict is 'maybe'", () => {
    const d = base(); d.generations[0].verdict = "maybe";
    refused(d, /\/generations\/0\/verdict/);
  });
  it("an unknown top-level property", () => {
    const d = base(); d.extra = 1;
    refused(d, /^$|^\s*$/);
  });
  it("a finding without a remedy, and one with severity 'fatal'", () => {
    const d = base(); delete d.generations[0].findings[0].remedy;
    refused(d, /\/generations\/0\/findings\/0/);
    const e = base(); e.imageFindings[0].severity = "fatal";
    refused(e, /\/imageFindings\/0\/severity/);
  });
  it("a chain step at stage 'bios', a stop reason 'crashed', exit code 2 in a document", () => {
    const a = base(); a.generations[0].chain[0].stage = "bios";
    refused(a, /chain\/0\/stage/);
    const b = base(); b.generations[0].stop.reason = "crashed";
    refused(b, /stop\/reason/);
    const c = base(); c.exitCode = 2;
    refused(c, /\/exitCode/);
  });
  it("another schema name, and a generation 3", () => {
    const a = base(); a.schema = "bootgate.verdict/2";
    refused(a, /\/schema/);
    const b = base(); b.generations[0].generation = 3;
    refused(b, /\/generations\/0\/generation/);
  });
  it("evidence, handoff and stats stay open to new facts", () => {
    const d = base();
    d.generations[0].findings[0].evidence.newFact = { any: ["thing"] };
    d.generations[0].stats.newCounter = 5;
    d.generations[0].handoff = { protocol: "linux64", extra: true };
    assertValidVerdict(d);
  });
  it("a batch whose error entry lacks its code, or whose exit code is 4", () => {
    const b = structuredClone(docs.batch.doc);
    delete b.results[2].error.code;
    expect(schemaErrors(BATCH_SCHEMA_ID, b).length).toBeGreaterThan(0);
    const c = structuredClone(docs.batch.doc); c.exitCode = 4;
    expect(schemaErrors(BATCH_SCHEMA_ID, c).map((e) => e.instancePath)).toContain("/exitCode");
  });
});
