// Test helper: validate documents against the published JSON Schemas (emu/verdict.schema.json, bootgate.verdict/1;
// emu/batch.schema.json, bootgate.batch/1) with ajv in strict mode. Any test that produces check JSON can reuse it.
import * as fs from "node:fs";
import * as path from "node:path";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { expect } from "vitest";
import { ROOT } from "./helpers.ts";

export const VERDICT_SCHEMA_ID = "https://bootgate.dev/schema/bootgate.verdict/1.json";
export const BATCH_SCHEMA_ID = "https://bootgate.dev/schema/bootgate.batch/1.json";

const load = (file: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(ROOT, "emu", file), "utf8"));

let ajv: Ajv2020 | undefined;
/** One strict validator holding both schemas (the batch schema refers to the verdict schema by $id). */
export function schemaValidator(): Ajv2020 {
  if (!ajv) {
    ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
    ajv.addSchema(load("verdict.schema.json"));
    ajv.addSchema(load("batch.schema.json"));
  }
  return ajv;
}

function validator(id: string): ValidateFunction {
  const v = schemaValidator().getSchema(id);
  if (!v) throw new Error(`schema ${id} is not loaded`);
  return v;
}

/** The validation errors of `doc` against schema `id` ([] when valid). */
export function schemaErrors(id: string, doc: unknown): ErrorObject[] {
  const v = validator(id);
  return v(doc) ? [] : [...(v.errors ?? [])];
}

const explain = (errs: ErrorObject[]): string =>
  errs.slice(0, 10).map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`).join("\n");

/** Fails the test, listing the schema errors, unless `doc` is a valid bootgate.verdict/1 document. */
export function assertValidVerdict(doc: unknown): void {
  const errs = schemaErrors(VERDICT_SCHEMA_ID, doc);
  expect(errs.length, `bootgate.verdict/1 violations:\n${explain(errs)}`).toBe(0);
}

/** Fails the test unless `doc` is a valid bootgate.batch/1 document (each result a verdict or an error entry). */
export function assertValidBatch(doc: unknown): void {
  const errs = schemaErrors(BATCH_SCHEMA_ID, doc);
  expect(errs.length, `bootgate.batch/1 violations:\n${explain(errs)}`).toBe(0);
}
