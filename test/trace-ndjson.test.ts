// check --trace (emu/trace-ndjson.ts): the NDJSON event stream of a good and a failing Gen1 fixture — every line
// parses, kinds are known, disk lines add up to the read log and name partitions and files; the size cap.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../emu/cli.ts";
import { NdjsonTrace, TRACE_LINE_KINDS, type TraceLine } from "../emu/trace-ndjson.ts";
import { attribute, indexImage } from "../emu/disk-attribution.ts";
import type { VerdictDoc } from "../emu/verdict.ts";
import { ensureGen1Fixtures, GEN1_DIR } from "./gen1-fixtures.ts";
import { GEN2_DIR } from "./gen2-fixtures.ts";
import { tmpdir } from "./helpers.ts";

let dir: string;
const runs: Record<string, { doc: VerdictDoc; lines: TraceLine[]; text: string }> = {};

async function checkWithTrace(fixture: string, args = ["--gen", "1"], fixtureDir = GEN1_DIR): Promise<{ doc: VerdictDoc; lines: TraceLine[]; text: string }> {
  const trace = path.join(dir, fixture + ".ndjson"), json = path.join(dir, fixture + ".json");
  const code = await main(["check", path.join(fixtureDir, fixture), ...args, "--quiet", "--json", json, "--trace", trace]);
  const doc = JSON.parse(fs.readFileSync(json, "utf8")) as VerdictDoc;
  expect(code).toBe(doc.exitCode);
  const text = fs.readFileSync(trace, "utf8");
  return { doc, text, lines: text.split("\n").filter((l, i, a) => l || i < a.length - 1).map((l) => JSON.parse(l) as TraceLine) };
}

beforeAll(async () => {
  ensureGen1Fixtures();
  dir = tmpdir("bootgate-trace-");
  runs.good = await checkWithTrace("grub-mbr.img");
  runs.bad = await checkWithTrace("no-55aa.img");
  runs.gen2good = await checkWithTrace("gen2-unsigned-grub.img", ["--gen", "2", "--secure-boot", "off"], GEN2_DIR);
  runs.gen2bad = await checkWithTrace("gen2-debian-only.img", ["--gen", "2", "--secure-boot", "off"], GEN2_DIR);
}, 600_000);

afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

function commonShape(run: { doc: VerdictDoc; lines: TraceLine[]; text: string }): void {
  expect(run.text.endsWith("\n")).toBe(true);
  const [head, ...rest] = run.lines;
  expect(head).toMatchObject({ t: 0, kind: "note", what: "bootgate trace", data: { schema: "bootgate.trace/1" } });
  let lastT = 0;
  for (const l of rest) {
    expect(TRACE_LINE_KINDS).toContain(l.kind);
    expect(l.gen).toBe(1);
    expect(Number.isSafeInteger(l.t)).toBe(true);
    expect(l.t).toBeGreaterThanOrEqual(lastT);               // virtual time never goes back
    expect(typeof l.what).toBe("string");
    lastT = l.t;
  }
  const g = run.doc.generations[0];
  const last = run.lines[run.lines.length - 1];
  expect(last).toMatchObject({ kind: "stage", what: `stopped: ${g.stop!.reason}`, data: { verdict: g.verdict, reached: g.reached } });
  // Every sector the boot read appears once in a disk line: the totals match the read log and the stats.
  const reads = run.lines.filter((l) => l.kind === "disk" && !l.data?.write);
  const sum = reads.reduce((s, l) => s + (l.data!.count as number), 0);
  expect(sum).toBe(g.readLog!.reduce((s, r) => s + r.count, 0));
  expect(sum).toBe(g.stats.sectorsRead);
  expect(reads.length).toBe(g.stats.diskReads);
}

describe("check --trace NDJSON", () => {
  it("streams a good GRUB boot: stages, BIOS calls with registers, mode switches, reads attributed to files", () => {
    const run = runs.good;
    commonShape(run);
    const kinds = new Set(run.lines.map((l) => l.kind));
    for (const k of ["stage", "int", "disk", "mode"]) expect(kinds).toContain(k);
    const int13 = run.lines.find((l) => l.kind === "int" && l.what.startsWith("INT 13h"))!;
    expect(int13.data).toMatchObject({ ax: expect.stringMatching(/^[0-9a-f]{4}$/), dx: expect.stringMatching(/^[0-9a-f]{4}$/) });
    expect(run.lines.some((l) => l.kind === "stage" && /Linux hand-off/.test(l.what))).toBe(true);
    const disk = run.lines.filter((l) => l.kind === "disk");
    expect(disk[0].data).toMatchObject({ lba: 0, count: 1, partition: null, region: "MBR (boot code and partition table)" });
    const files = disk.flatMap((l) => (l.data!.files as { file: string }[] | undefined) ?? []).map((f) => f.file);
    expect(files).toContain("p1:/boot/grub/grub.cfg");
    expect(files.some((f) => f.startsWith("p1:/boot/vmlinuz-"))).toBe(true);
    expect(files.some((f) => f.startsWith("p1:/boot/initrd.img-"))).toBe(true);
    expect(disk.filter((l) => (l.data!.lba as number) >= 2048).every((l) => l.data!.partition === "p1")).toBe(true);
  });

  it("streams a disk without 55AA: the one MBR read and the stop", () => {
    const run = runs.bad;
    commonShape(run);
    expect(run.doc.generations[0].stop!.reason).toBe("no-boot-device");
    expect(run.lines.filter((l) => l.kind === "disk").length).toBe(1);
  });

  it("indexes only files touching the sectors asked about, within its budget", () => {
    const img = path.join(GEN1_DIR, "grub-mbr.img");
    const hot = runs.good.doc.generations[0].readLog!;
    const idx = indexImage(img, {}, hot);
    if ("error" in idx) throw new Error(idx.error);
    expect(idx.complete).toBe(true);
    expect(idx.files.every((f) => hot.some((r) => f.lba < r.lba + r.count && r.lba < f.lba + f.count))).toBe(true);
    const tiny = indexImage(img, {}, undefined, { maxFiles: 5 });
    if ("error" in tiny) throw new Error(tiny.error);
    expect(tiny.complete).toBe(false);
    expect(tiny.notes.join()).toContain("file budget of 5 entries");
    const cfg = idx.files.find((f) => f.path === "/boot/grub/grub.cfg")!;
    expect(attribute(idx, cfg.lba, cfg.count)).toEqual([{ lba: cfg.lba, count: cfg.count, partition: "p1", file: "p1:/boot/grub/grub.cfg" }]);
  });

  it("caps a trace flooded with 100000 events at maxBytes and ends it with a truncated line", () => {
    const file = path.join(dir, "flood.ndjson");
    const t = new NdjsonTrace(file, { maxBytes: 8192 });
    const sink = t.sink(1);
    for (let i = 0; i < 100_000; i++) sink({ kind: "int", us: i, what: `INT 10h int10_0e ${"x".repeat(i % 50)}`, data: { ax: "0e41" } });
    expect(t.close()).toBeUndefined();
    const text = fs.readFileSync(file, "utf8");
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(8192);
    const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l) as TraceLine);
    const last = lines[lines.length - 1];
    expect(last).toMatchObject({ kind: "note", what: "truncated", data: { maxBytes: 8192 } });
    expect((last.data!.droppedEvents as number) + lines.length - 2).toBe(100_000);   // minus header and truncated lines
  });
});

describe("check --trace for Generation 2", () => {
  it("a UEFI GRUB boot: firmware calls as efi lines, every BlockIo read as a disk line naming the kernel's file, in virtual time", () => {
    const { doc, lines } = runs.gen2good;
    const g = doc.generations[0];
    expect(g).toMatchObject({ generation: 2, verdict: "boots" });
    const body = lines.slice(1);
    for (const l of body) expect(TRACE_LINE_KINDS).toContain(l.kind);
    expect(body.every((l) => l.gen === 2)).toBe(true);
    expect(body.some((l) => l.kind === "efi" && /LoadImage/.test(l.what))).toBe(true);
    const disk = body.filter((l) => l.kind === "disk");
    expect(disk.length).toBe(g.stats.diskReads);
    expect(disk.reduce((s, l) => s + (l.data as { count: number }).count, 0)).toBe(g.stats.sectorsRead);
    expect(JSON.stringify(disk)).toContain("/boot/vmlinuz-6.1.0-56-amd64");
    expect(lines[lines.length - 1]).toMatchObject({ kind: "stage", what: "stopped: handoff" });
  });

  it("a disk whose loader is only under \\EFI\\debian: the boot manager's attempts, then the stop", () => {
    const { doc, lines } = runs.gen2bad;
    expect(doc.generations[0]).toMatchObject({ verdict: "fails", reached: "firmware" });
    expect(lines.some((l) => l.kind === "stage" && /No x64-based UEFI boot loader was found/.test(l.what))).toBe(true);
    expect(lines[lines.length - 1]).toMatchObject({ kind: "stage", what: "stopped: no-boot-device" });
  });
});
