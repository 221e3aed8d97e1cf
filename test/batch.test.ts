// `bootgate check A B ...`: images checked in worker threads, results in the order given (the same documents and
// text as one `check` each), one combined exit code, progress on stderr only on a terminal, from the bundle and tsx.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { cli, ROOT, tmpdir } from "./helpers.ts";
import { GEN1_DIR } from "./gen1-fixtures.ts";
import { assertValidBatch, assertValidVerdict } from "./schema-assert.ts";
import { combinedExitCode, type ImageResult } from "../emu/batch.ts";

type Doc = Record<string, any>;   // eslint-disable-line @typescript-eslint/no-explicit-any
const fx = (name: string) => path.join(GEN1_DIR, name);
const GEN2_VHDX = path.join(import.meta.dirname, "../.cache/fixtures/gen2/gen2-shim-removable.vhdx");
/** A document without its timings, which differ from run to run. */
const untimed = (d: Doc): Doc => ({ ...d, generations: d.generations.map((g: Doc) => ({ ...g, stats: { ...g.stats, wallMs: 0 } })) });

let dir: string, missing: string, empty: string;
beforeAll(() => {
  dir = tmpdir("bootgate-batch-");
  missing = path.join(dir, "missing.vhd");
  empty = path.join(dir, "empty.vhd");      // a container that cannot be read: a document failing at "image"
  fs.writeFileSync(empty, Buffer.alloc(0));
});

describe("check A B C", () => {
  it("three images, one missing: exit 2, bootgate.batch/1 in the order given, each result as `check` alone gives it", async () => {
    const [batch, a, b] = await Promise.all([
      cli(["check", fx("grub-mbr.img"), fx("no-55aa.img"), missing, "--gen", "1", "--json", "-"]),
      cli(["check", fx("grub-mbr.img"), "--gen", "1", "--json", "-"]),
      cli(["check", fx("no-55aa.img"), "--gen", "1", "--json", "-"]),
    ]);
    expect(batch.status).toBe(2);
    const doc = JSON.parse(batch.stdout.toString());
    assertValidBatch(doc);
    expect(doc).toMatchObject({ schema: "bootgate.batch/1", exitCode: 2 });
    expect(doc.results.map((r: Doc) => r.exitCode)).toEqual([1, 1, 2]);
    expect(untimed(doc.results[0])).toEqual(untimed(JSON.parse(a.stdout.toString())));
    expect(untimed(doc.results[1])).toEqual(untimed(JSON.parse(b.stdout.toString())));
    for (const r of doc.results.slice(0, 2)) assertValidVerdict(r);
    expect(doc.results[2]).toEqual({ path: missing, exitCode: 2,
      error: { code: "E_IO_OPEN", kind: "io", message: expect.stringContaining(`cannot open ${missing}`) } });
    // The unreadable image is also one line on stderr, as for `check` alone; stderr is no terminal: no progress.
    expect(batch.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^bootgate: .*missing\.vhd: cannot open .*\[E_IO_OPEN\]$/)]);
  });

  it("the text summaries come in the order given, equal to one check each, then a total line", async () => {
    // The slow image first with two workers: the fast one finishes first but is printed second.
    const args = ["--gen", "1", "--target", "hyperv"];
    const [batch, a, b] = await Promise.all([
      cli(["check", fx("grub-wrong-prefix.img"), empty, missing, ...args, "--jobs", "2"]),
      cli(["check", fx("grub-wrong-prefix.img"), ...args]),
      cli(["check", empty, ...args]),
    ]);
    expect(batch.status).toBe(2);
    const text = batch.stdout.toString();
    expect(text).toBe(a.stdout.toString() + b.stdout.toString()
      + `missing.vhd: cannot be checked: cannot open ${missing}: ENOENT: no such file or directory, open '${missing}' [E_IO_OPEN]\n`
      + "3 images: 0 boot, 2 fail, 0 inconclusive, 1 unreadable; exit code 2\n");
  });

  it("ends a worker's guest that spins without BIOS calls at the wall budget (the main thread keeps the time-outs)", async () => {
    // A synthetic MBR: inc ax ; jmp back to it — no BIOS call, no port, no new code: only the time-out can end it.
    const mbr = Buffer.alloc(512);
    Buffer.from([0x40, 0xeb, 0xfd]).copy(mbr);
    mbr.writeUInt16LE(0xaa55, 510);
    const spin = path.join(dir, "spin.img");
    fs.writeFileSync(spin, Buffer.concat([mbr, Buffer.alloc(2047 * 512)]));
    const t0 = Date.now();
    const r = await cli(["check", spin, fx("no-active.img"), "--gen", "1", "--max-seconds", "2", "--json", "-"]);
    const doc = JSON.parse(r.stdout.toString()) as Doc;
    expect(doc.results[0].generations[0].verdict).toBe("inconclusive");
    expect(doc.results[0].generations[0].stop.reason).toBe("budget-time");
    expect(doc.results[1].generations[0].stop.reason).toBe("int18-return");
    expect(r.status).toBe(1);
    expect(Date.now() - t0).toBeLessThan(30_000);
  }, 60_000);

  it("combined exit code: 3 when the worst is inconclusive, 1 when one fails, 0 when all boot", async () => {
    // A shim chain with a budget of one firmware call cannot reach a decision: inconclusive.
    const gen2 = ["--gen", "2", "--target", "hyperv", "--secure-boot", "uefi-ca", "--max-instructions", "100", "--quiet"];
    const [inconclusive, fails] = await Promise.all([
      cli(["check", GEN2_VHDX, GEN2_VHDX, ...gen2]),
      cli(["check", GEN2_VHDX, fx("no-55aa.img"), ...gen2]),     // Hyper-V Gen2 needs a VHDX
    ]);
    expect(inconclusive.status).toBe(3);
    expect(fails.status).toBe(1);
    const r = (exitCode: number) => ({ exitCode }) as ImageResult;
    expect(combinedExitCode([r(0), r(0)])).toBe(0);
    expect(combinedExitCode([r(0), r(3), r(0)])).toBe(3);
    expect(combinedExitCode([r(3), r(1), r(0)])).toBe(1);
    expect(combinedExitCode([r(1), r(2), r(3)])).toBe(2);
  });

  it("runs the worker from the TypeScript sources under tsx (no bundle) with the same results, and with --jobs 1", async () => {
    const args = ["check", fx("no-55aa.img"), empty, GEN2_VHDX, "--gen", "2", "--target", "hyperv", "--secure-boot", "uefi-ca", "--max-instructions", "100", "--json", "-"];
    const [bundle, sources] = await Promise.all([
      cli([...args, "--jobs", "1"]),
      cli(args, { env: { BOOTGATE_NO_BUNDLE: "1" } }),
    ]);
    expect(sources.stderr).toBe("");
    expect(sources.status).toBe(1);
    expect(bundle.status).toBe(1);
    const s = JSON.parse(sources.stdout.toString()), b = JSON.parse(bundle.stdout.toString());
    expect({ ...s, results: s.results.map(untimed) }).toEqual({ ...b, results: b.results.map(untimed) });
    expect(s.results.map((x: Doc) => x.exitCode)).toEqual([1, 1, 3]);
  });

  it("shows progress on stderr when it is a terminal", () => {
    // `script` gives the command a pseudo-terminal (stdout and stderr both on it).
    const cmd = [process.execPath, path.join(ROOT, "emu/bin.mjs"), "check", fx("no-55aa.img"), empty, "--gen", "2", "--quiet"]
      .map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    let out = "";
    try {
      out = execFileSync("script", ["-qefc", cmd, "/dev/null"], { encoding: "utf8", timeout: 60_000 });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? "");   // exit code 1 (the images fail)
    }
    const lines = out.split(/\r?\n/).filter((l) => /^\[\d\/2\]/.test(l));
    expect(lines.map((l) => l.slice(0, 5)).sort()).toEqual(["[1/2]", "[2/2]"]);
    for (const l of lines) expect(l).toMatch(/^\[[12]\/2\] (no-55aa\.img|empty\.vhd): fails$/);
  });

  it("--jobs 0 is a usage error; one image keeps the single-image document", async () => {
    const r = await cli(["check", fx("no-55aa.img"), empty, "--jobs", "0"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^bootgate: --jobs must be at least 1/);
    const one = await cli(["check", empty, "--json", "-", "--jobs", "4"]);
    expect(JSON.parse(one.stdout.toString()).schema).toBe("bootgate.verdict/1");
  });
});
