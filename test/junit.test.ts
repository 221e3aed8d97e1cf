// `check --junit FILE`: JUnit XML parsed back with a real XML parser (fast-xml-parser), on a good and a failing
// fixture per generation, and an escaper that survives hostile text.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { cli, tmpdir } from "./helpers.ts";
import { GEN1_DIR } from "./gen1-fixtures.ts";
import { IMAGE_RULES, toJunit, xmlEscape } from "../emu/junit.ts";
import { allFindings } from "../emu/findings.ts";
import "../emu/findings-check.ts";
import "../images/upload-rules.ts";
import type { VerdictDoc } from "../emu/verdict.ts";

type Node = Record<string, any>;   // eslint-disable-line @typescript-eslint/no-explicit-any
// htmlEntities: decode numeric character references (&#10; keeps a newline inside an attribute).
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", textNodeName: "#text", parseAttributeValue: false,
  htmlEntities: true, isArray: (name, _path, _leaf, isAttribute) => !isAttribute && ["testsuite", "testcase", "property", "failure", "error", "skipped"].includes(name) });

/** Parse JUnit text: well-formed (validator), then as objects. */
function parse(xml: string): Node {
  const valid = XMLValidator.validate(xml);
  expect(valid, JSON.stringify(valid)).toBe(true);
  return parser.parse(xml);
}

const fx = (name: string) => path.join(GEN1_DIR, name);
const GEN2_VHDX = path.join(import.meta.dirname, "../.cache/fixtures/gen2/gen2-shim-removable.vhdx");
let dir: string;
const out: Record<string, { status: number; xml: string }> = {};

async function junit(key: string, args: string[]): Promise<void> {
  const file = path.join(dir, `${key}.xml`);
  const r = await cli(["check", ...args, "--quiet", "--junit", file]);
  out[key] = { status: r.status, xml: fs.readFileSync(file, "utf8") };
}

beforeAll(async () => {
  dir = tmpdir("bootgate-junit-");
  await Promise.all([
    junit("gen1good", [fx("grub-mbr.img"), "--gen", "1", "--target", "hyperv"]),
    junit("gen1fail", [fx("no-55aa.img"), "--gen", "1"]),
    junit("gen2inconclusive", [GEN2_VHDX, "--gen", "2", "--target", "hyperv", "--secure-boot", "uefi-ca", "--max-instructions", "100"]),
    junit("gen2fail", [fx("grub-mbr.img"), "--gen", "2", "--target", "hyperv"]),
  ]);
}, 120_000);

const cases = (doc: Node): Node[] => doc.testsuites.testsuite.flatMap((s: Node) => s.testcase);
const named = (doc: Node, name: string): Node => {
  const c = cases(doc).find((x) => x.name === name);
  expect(c, `test case "${name}"`).toBeDefined();
  return c!;
};

describe("check --junit", () => {
  it("a Gen1 boot is a passing 'gen1 boots' test case in a suite named after the image", () => {
    expect(out.gen1good.status).toBe(0);
    const d = parse(out.gen1good.xml);
    const suite = d.testsuites.testsuite[0];
    expect(suite.name).toBe(fx("grub-mbr.img"));
    expect(suite).toMatchObject({ tests: "1", failures: "0", errors: "0", skipped: "0" });
    const c = named(d, "gen1 boots");
    expect(c.classname).toBe("grub-mbr_img");
    expect(c.failure).toBeUndefined();
    expect(Number(c.time)).toBeGreaterThan(0);
    expect(c["system-out"]).toContain("Linux OS stage: boots");
    expect(suite.properties.property).toContainEqual({ name: "target", value: "hyperv" });
  });
  it("a Gen1 failure carries type=CODE, the message and the remedy; each Azure rule is a test case", () => {
    expect(out.gen1fail.status).toBe(1);
    const d = parse(out.gen1fail.xml);
    const g = named(d, "gen1 boots");
    expect(g.failure[0].type).toBe("GEN1_NO_BOOT_DEVICE");
    expect(g.failure[0].message).toMatch(/^Generation 1 fails at stage firmware: The Gen1 BIOS found no bootable device/);
    expect(g.failure[0]["#text"]).toContain("fix: Write a boot sector: 'grub-install --target=i386-pc /dev/sdX'");
    const rules = cases(d).filter((c) => c.name.startsWith("image rule: "));
    expect(rules.map((c) => c.name)).toHaveLength(IMAGE_RULES.azure.length);
    const fixed = named(d, "image rule: image is a fixed VHD (AZURE_NOT_FIXED_VHD)");
    expect(fixed.failure[0]).toMatchObject({ type: "AZURE_NOT_FIXED_VHD", message: "Azure needs a fixed VHD; this image is raw" });
    expect(fixed.failure[0]["#text"]).toContain("fix: qemu-img convert -O vpc -o subformat=fixed,force_size=on");
    expect(named(d, "image rule: virtual size is a whole number of MiB (AZURE_SIZE_NOT_MIB)").failure).toBeUndefined();
    // Counts on both levels agree with the test cases.
    const failures = cases(d).filter((c) => c.failure).length;
    expect(d.testsuites.failures).toBe(String(failures));
    expect(d.testsuites.testsuite[0].failures).toBe(String(failures));
    expect(d.testsuites.tests).toBe(String(cases(d).length));
  });
  it("an inconclusive Gen2 run is <skipped> with the reason, not a failure", () => {
    expect(out.gen2inconclusive.status).toBe(3);
    const d = parse(out.gen2inconclusive.xml);
    const g = named(d, "gen2 boots");
    expect(g.failure).toBeUndefined();
    expect(g.skipped[0].message).toMatch(/^Generation 2 inconclusive \(reached (firmware|bootloader)\): GEN2_BUDGET_EXHAUSTED: /);
    expect(d.testsuites).toMatchObject({ skipped: "1", failures: "0", errors: "0" });
  });
  it("a Gen2 failure (Hyper-V Gen2 needs VHDX) is a failure typed with its code", () => {
    expect(out.gen2fail.status).toBe(1);
    const g = named(parse(out.gen2fail.xml), "gen2 boots");
    expect(g.failure[0].type).toBe("HYPERV_GEN2_NEEDS_VHDX");
    expect(g.failure[0]["#text"]).toMatch(/fix: .*(Convert-VHD|qemu-img)/);
  });
  it("an image that cannot be read is an <error> test case", () => {
    const xml = toJunit([{ path: "/x/missing.vhd", error: { code: "E_IO_OPEN", kind: "io", message: "cannot open /x/missing.vhd" }, exitCode: 2 }]);
    const c = named(parse(xml), "image can be read");
    expect(c.error[0]).toMatchObject({ type: "E_IO_OPEN", message: "cannot open /x/missing.vhd" });
  });
  it("every AZURE_* catalogue code is an image-rule test case (the rule table has not drifted)", () => {
    const azure = allFindings().filter((e) => e.code.startsWith("AZURE_")).map((e) => e.code).sort();
    expect(IMAGE_RULES.azure.map((r) => r.code).sort()).toEqual(azure);
  });
});

describe("XML escaping", () => {
  const hostile = "a<b>&c\"d'e ]]> \u0000\u0001\u001b[31m \t tab\nnew\r\nline \uD800 lone \uFFFE end \u{1F600}";
  const cleaned = hostile.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\uFFFE]|\uD800(?![\uDC00-\uDFFF])/g, "\uFFFD");
  it("text with markup, control bytes, a lone surrogate and CR LF round-trips through a parser (illegal characters as U+FFFD)", () => {
    const xml = `<r a="${xmlEscape(hostile, true)}">${xmlEscape(hostile)}</r>`;
    expect(XMLValidator.validate(xml)).toBe(true);
    const p = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", htmlEntities: true, trimValues: false,
      processEntities: true }).parse(xml);
    expect(p.r.a).toBe(cleaned);
    // Element text: CR LF is normalised to LF by XML parsers, so compare with that.
    expect(p.r["#text"].replace(/\r\n?/g, "\n")).toBe(cleaned.replace(/\r\n?/g, "\n"));
  });
  it("a finding whose message holds markup and a quote stays one well-formed attribute", () => {
    const doc = structuredClone(minimalDoc());
    doc.generations[0].findings[0].message = `screen said "<error: 'x' & y>"\nthen halted`;
    const d = parse(toJunit([doc]));
    expect(named(d, "gen1 boots").failure[0].message).toBe(`Generation 1 fails at stage bootloader: screen said "<error: 'x' & y>"\nthen halted`);
  });
});

function minimalDoc(): VerdictDoc {
  return {
    schema: "bootgate.verdict/1", tool: { name: "bootgate", version: "0.1.0" }, target: "hyperv",
    image: { path: "/tmp/a.vhdx", format: "vhdx", subformat: "dynamic", fileSize: 1, virtualSize: 1, sectorSize: 512, partitioning: "mbr" },
    imageFindings: [],
    generations: [{ generation: 1, verdict: "fails", reached: "bootloader", chain: [], handoff: null, screen: [], stats: { wallMs: 5 },
      findings: [{ code: "GEN1_HALTED", severity: "error", stage: "bootloader", message: "m", remedy: "r", evidence: {} }] }],
    exitCode: 1,
  };
}
