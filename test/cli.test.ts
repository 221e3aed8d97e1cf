// The CLI contract: exit codes, one-line errors on hostile input, the input never written.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { cli, prng, sh, sha256, tmpdir } from "./helpers.ts";

let dir: string;
let good: string;

beforeAll(() => {
  dir = tmpdir("bootgate-cli-");
  const raw = path.join(dir, "base.raw");
  fs.writeFileSync(raw, prng(7, 32 * 2 ** 20));
  sh("sfdisk", ["-q", raw], { input: "label: dos\nstart=2048, type=83, bootable\n" });
  good = path.join(dir, "good.vhd");
  sh("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, good]);
}, 60_000);

/** A one-line error on stderr, exit 2, nothing on stdout, no stack trace. */
function expectCleanError(r: Awaited<ReturnType<typeof cli>>, pattern?: RegExp): void {
  expect(r.status).toBe(2);
  expect(r.stdout.length).toBe(0);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(/^bootgate: /);
  expect(r.stderr).not.toMatch(/\n\s+at |TypeError|RangeError/);
  if (pattern) expect(r.stderr).toMatch(pattern);
}

function hostile(name: string, mutate: (b: Buffer) => Buffer): string {
  const out = path.join(dir, name);
  fs.writeFileSync(out, mutate(fs.readFileSync(good)));
  return out;
}

describe("usage", () => {
  it("no arguments prints help and exits 2", async () => {
    const r = await cli([]);
    expect(r.status).toBe(2);
  });
  it("an unknown option is a usage error (exit 2)", async () => {
    expect((await cli(["check", good, "--frobnicate"])).status).toBe(2);
  });
  it("--gen 3 is refused", async () => {
    expect((await cli(["check", good, "--gen", "3"])).status).toBe(2);
  });
  it("a missing file is exit 2 with a one-line message", async () => {
    expectCleanError(await cli(["inspect", path.join(dir, "nope.vhd")]), /cannot open/);
    expect((await cli(["check", path.join(dir, "nope.vhd")])).status).toBe(2);
  });
  it("a directory is not an image", async () => {
    expectCleanError(await cli(["inspect", dir]), /not a regular file/);
  });
  it("read past the last sector is exit 2", async () => {
    expectCleanError(await cli(["read", good, "--lba", String(32 * 2048)]), /past the end/);
  });
  it("read --lba with garbage is exit 2", async () => {
    expect((await cli(["read", good, "--lba", "12abc"])).status).toBe(2);
  });
  it("--version prints the version and exits 0", async () => {
    const r = await cli(["--version"]);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("explain", () => {
  it("explains a known code with its remedy", async () => {
    const r = await cli(["explain", "AZURE_NOT_FIXED_VHD"]);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toContain("Remedy: qemu-img convert -O vpc -o subformat=fixed,force_size=on");
  });
  it("is case-insensitive and lists every code without an argument", async () => {
    expect((await cli(["explain", "hyperv_ide_limit"])).status).toBe(0);
    const all = (await cli(["explain"])).stdout.toString();
    expect(all).toMatch(/^AZURE_FILE_SIZE\s+error/m);
    expect(all).toMatch(/^HYPERV_GEN2_NEEDS_VHDX/m);
  });
  it("an unknown code is exit 2", async () => {
    expectCleanError(await cli(["explain", "NO_SUCH_CODE"]), /unknown finding code/);
  });
});

describe("inspect", () => {
  it("shows container, geometry and the partition table", async () => {
    const r = await cli(["inspect", good]);
    expect(r.status).toBe(0);
    const t = r.stdout.toString();
    expect(t).toContain("vhd (fixed)");
    expect(t).toContain("partitioning: mbr");
    expect(t).toMatch(/1\*\s+2048\s+63488/);
  });
  it("--json gives the same facts", async () => {
    const d = JSON.parse((await cli(["inspect", good, "--json"])).stdout.toString());
    expect(d.container).toMatchObject({ format: "vhd", subformat: "fixed", virtualSize: 32 * 2 ** 20, sectorSize: 512 });
    expect(d.layout.partitions[0]).toMatchObject({ index: 1, startLba: 2048, sectorCount: 63488, bootable: true });
  });
});

describe("hostile containers", () => {
  const cases: [string, (b: Buffer) => Buffer][] = [
    ["a VHD truncated to 300 bytes", (b) => b.subarray(0, 300)],
    ["an empty .vhd file", () => Buffer.alloc(0)],
    ["a VHD whose footer is zeroed", (b) => { const c = Buffer.from(b); c.fill(0, c.length - 512); return c; }],
    ["a VHD whose footer cookie is bit-flipped", (b) => { const c = Buffer.from(b); c[c.length - 512] ^= 0x01; return c; }],
    ["a VHD whose footer claims 2^63 bytes", (b) => { const c = Buffer.from(b); c.writeBigUInt64BE(1n << 63n, c.length - 512 + 48); return c; }],
  ];
  it.each(cases)("inspect of %s: exit 2, one line, input untouched", async (name, mutate) => {
    const f = hostile(name.replace(/\W+/g, "_") + ".vhd", mutate);
    const before = sha256(f);
    expectCleanError(await cli(["inspect", f]));
    expectCleanError(await cli(["read", f, "--lba", "0"]));
    expect(sha256(f)).toBe(before);
  });
  it.each(cases)("check of %s: verdict JSON with generations failing at stage image, exit 1", async (name, mutate) => {
    const f = hostile("chk_" + name.replace(/\W+/g, "_") + ".vhd", mutate);
    const r = await cli(["check", f, "--json", "-"]);
    expect(r.status).toBe(1);
    const doc = JSON.parse(r.stdout.toString());
    expect(doc.generations).toHaveLength(2);
    for (const g of doc.generations) {
      expect(g).toMatchObject({ verdict: "fails", reached: "image" });
      expect(g.findings.map((x: { code: string }) => x.code)).toContain("CONTAINER_UNREADABLE");
    }
  });
  it("a random-bytes file named .vhdx is a corrupt VHDX, never read as raw", async () => {
    const f = path.join(dir, "random.vhdx");
    fs.writeFileSync(f, prng(99, 1 << 20));
    expectCleanError(await cli(["inspect", f]), /vhdx/i);
    const asRaw = await cli(["inspect", f, "--format", "raw"]);
    expect(asRaw.status).toBe(0);
  });
});

describe("determinism", () => {
  it("two checks of the same image give identical JSON", async () => {
    const a = (await cli(["check", good, "--json", "-"])).stdout.toString();
    const b = (await cli(["check", good, "--json", "-"])).stdout.toString();
    const strip = (s: string) => JSON.stringify({ ...JSON.parse(s), generations: JSON.parse(s).generations.map((g: { stats: object }) => ({ ...g, stats: {} })) });
    expect(strip(a)).toBe(strip(b));
  });
});

describe("hostile partition tables", () => {
  function withTable(name: string, script: string, patch?: (b: Buffer) => Buffer): string {
    const f = path.join(dir, name);
    fs.writeFileSync(f, Buffer.alloc(8 * 2 ** 20));
    sh("sfdisk", ["-q", f], { input: script });
    if (patch) fs.writeFileSync(f, patch(fs.readFileSync(f)));
    return f;
  }
  it("an EBR chain that loops back to itself: inspect exit 2 one line, check exit 1, input untouched", async () => {
    const f = withTable("ebr-loop.img", "label: dos\nstart=2048, size=8192, type=5\nstart=4096, size=2048, type=83\n", (b) => {
      const ebr = 2048 * 512;                   // the first EBR sits at the extended partition's start
      b[ebr + 0x1ce + 4] = 0x05;                // second entry: a link of type 05 ...
      b.writeUInt32LE(0, ebr + 0x1ce + 8);      // ... relative start 0 = this same EBR
      b.writeUInt32LE(2048, ebr + 0x1ce + 12);
      return b;
    });
    const before = sha256(f);
    const r = await cli(["inspect", f]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^bootgate: malformed partition table: .*\[MBR_EBR_LOOP\]/);
    const c = await cli(["check", f, "--json", "-"]);
    expect(c.status).toBe(1);
    expect(JSON.parse(c.stdout.toString()).imageFindings.map((x: { code: string }) => x.code)).toContain("MBR_EBR_LOOP");
    expect(sha256(f)).toBe(before);
  });
  it("a partition that runs past the end of the disk: inspect exit 2 naming the sectors", async () => {
    const f = withTable("past-end.img", "label: dos\nstart=2048, size=14336, type=83\n", (b) => b.subarray(0, 4 * 2 ** 20));
    const r = await cli(["inspect", f]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/\[PART_PAST_END\]/);
    expect(r.stderr).toMatch(/ends at LBA 16383, past the disk.s last LBA 8191/);
  });
});
