// Azure / Hyper-V image rules on images made by qemu-img, through `bootgate check --json`.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { cli, sh, shAsync, tmpdir } from "./helpers.ts";
import { uploadRuleFindings, attachFindings } from "../images/upload-rules.ts";
import type { ContainerInfo } from "../images/block.ts";
import { vhdGeometry } from "../firmware-stubs/hyperv.ts";

let dir: string;
const MiB = 2 ** 20;

function mk(name: string, args: string[]): string {
  const out = path.join(dir, name);
  sh("qemu-img", ["convert", "-q", "-f", "raw", ...args, path.join(dir, "base.raw"), out]);
  return out;
}

async function check(file: string, extra: string[] = []) {
  const r = await cli(["check", file, "--json", "-", ...extra]);
  return { status: r.status, doc: JSON.parse(r.stdout.toString("utf8")), stderr: r.stderr };
}

const codes = (fs: { code: string }[]) => fs.map((f) => f.code).sort();

beforeAll(() => {
  dir = tmpdir("bootgate-rules-");
  sh("truncate", ["-s", "32M", path.join(dir, "base.raw")]);
  sh("sfdisk", ["-q", path.join(dir, "base.raw")], { input: "label: dos\nstart=2048, type=83, bootable\n" });
}, 60_000);

describe("Azure upload rules", () => {
  it("accepts a fixed VHD of whole MiB made with force_size (no image findings)", async () => {
    const { status, doc } = await check(mk("ok.vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"]));
    expect(doc.schema).toBe("bootgate.verdict/1");
    expect(doc.image).toMatchObject({ format: "vhd", subformat: "fixed", virtualSize: 32 * MiB, fileSize: 32 * MiB + 512, partitioning: "mbr" });
    expect(doc.imageFindings.filter((f: { severity: string }) => f.severity === "error")).toEqual([]);
    expect(doc.generations.map((g: { generation: number }) => g.generation)).toEqual([1, 2]);
    // Boot emulation decides the verdict; an image-stage-only check never claims "boots".
    for (const g of doc.generations) expect(g.verdict).not.toBe("boots");
    expect([1, 3]).toContain(status);
  });

  it("refuses a dynamic VHD for Azure but leaves the boot verdicts alone", async () => {
    const { status, doc } = await check(mk("dyn.vhd", ["-O", "vpc", "-o", "subformat=dynamic,force_size=on"]));
    expect(status).toBe(1);
    expect(codes(doc.imageFindings)).toContain("AZURE_NOT_FIXED_VHD");
    const f = doc.imageFindings.find((x: { code: string }) => x.code === "AZURE_NOT_FIXED_VHD");
    expect(f.remedy).toContain("qemu-img convert -O vpc -o subformat=fixed,force_size=on");
    // an upload rule is an image finding: each generation's verdict is the one the same disk gets as a fixed VHD
    const fixed = (await check(mk("same-fixed.vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"]))).doc;
    const summary = (d: typeof doc) => d.generations.map((g: { generation: number; verdict: string; reached: string; findings: { code: string }[] }) =>
      ({ generation: g.generation, verdict: g.verdict, reached: g.reached, codes: codes(g.findings) }));
    expect(summary(doc)).toEqual(summary(fixed));
    for (const g of doc.generations) expect(codes(g.findings)).not.toContain("AZURE_NOT_FIXED_VHD");
  });

  it("refuses VHDX for Azure", async () => {
    const { status, doc } = await check(mk("d.vhdx", ["-O", "vhdx"]));
    expect(status).toBe(1);
    expect(codes(doc.imageFindings)).toContain("AZURE_NOT_FIXED_VHD");
  });

  it("flags a VHD whose size qemu-img rounded to CHS (not whole MiB)", async () => {
    const { doc } = await check(mk("chs.vhd", ["-O", "vpc", "-o", "subformat=fixed"]));
    const f = doc.imageFindings.find((x: { code: string }) => x.code === "AZURE_SIZE_NOT_MIB");
    expect(f).toBeDefined();
    expect(doc.image.virtualSize % MiB).not.toBe(0);
    expect(f.evidence.remainder).toBe(doc.image.virtualSize % MiB);
    expect(f.remedy).toMatch(/qemu-img resize -f raw disk\.raw \d+M/);
  });

  it("flags a fixed VHD with trailing bytes after the footer", async () => {
    const file = mk("pad.vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"]);
    // Azure's tools would see the wrong footer; our driver reads the footer at the end, so append a copy of it.
    const footer = Buffer.alloc(512);
    const fd = fs.openSync(file, "r"); fs.readSync(fd, footer, 0, 512, fs.fstatSync(fd).size - 512); fs.closeSync(fd);
    fs.appendFileSync(file, Buffer.concat([Buffer.alloc(512), footer]));
    const { status, doc } = await check(file);
    expect(status).toBe(1);
    expect(codes(doc.imageFindings)).toContain("AZURE_FILE_SIZE");
  });

  it("flags a disk below 20 MiB", async () => {
    sh("truncate", ["-s", "8M", path.join(dir, "tiny.raw")]);
    sh("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", path.join(dir, "tiny.raw"), path.join(dir, "tiny.vhd")]);
    const { doc } = await check(path.join(dir, "tiny.vhd"));
    expect(codes(doc.imageFindings)).toContain("AZURE_SIZE_RANGE");
  });

  it("on-premises Hyper-V: a VHD fails Generation 2 at stage image, VHDX does not", async () => {
    const vhd = await check(mk("hv.vhd", ["-O", "vpc", "-o", "subformat=dynamic,force_size=on"]), ["--target", "hyperv"]);
    expect(codes(vhd.doc.imageFindings)).not.toContain("AZURE_NOT_FIXED_VHD");
    const g2 = vhd.doc.generations.find((g: { generation: number }) => g.generation === 2);
    expect(g2).toMatchObject({ verdict: "fails", reached: "image" });
    expect(codes(g2.findings)).toContain("HYPERV_GEN2_NEEDS_VHDX");
    expect(vhd.status).toBe(1);
    const vhdx = await check(mk("hv.vhdx", ["-O", "vhdx"]), ["--target", "hyperv", "--gen", "2"]);
    expect(vhdx.doc.generations).toHaveLength(1);
    expect(codes(vhdx.doc.generations[0].findings)).not.toContain("HYPERV_GEN2_NEEDS_VHDX");
  });

  it("a 2.5 TiB disk cannot be attached to Gen1 IDE", async () => {
    await shAsync("qemu-img", ["create", "-q", "-f", "vhdx", path.join(dir, "big.vhdx"), "2560G"]);
    const { status, doc } = await check(path.join(dir, "big.vhdx"), ["--target", "hyperv"]);
    const g1 = doc.generations.find((g: { generation: number }) => g.generation === 1);
    expect(g1).toMatchObject({ verdict: "fails", reached: "image" });
    expect(codes(g1.findings)).toContain("HYPERV_IDE_LIMIT");
    expect(status).toBe(1);
  });
});

describe("rule functions", () => {
  const info = (o: Partial<ContainerInfo>): ContainerInfo => ({ format: "vhd", subformat: "fixed", path: "/x/disk.vhd", fileSize: 0, virtualSize: 0, sectorSize: 512, findings: [], ...o });
  it("the 32 TiB upper bound is inclusive", async () => {
    const max = 32 * 2 ** 40;
    expect(uploadRuleFindings(info({ virtualSize: max, fileSize: max + 512 }), "azure")).toEqual([]);
    expect(codes(uploadRuleFindings(info({ virtualSize: max + MiB, fileSize: max + MiB + 512 }), "azure"))).toEqual(["AZURE_SIZE_RANGE"]);
  });
  it("a container error finding blocks attachment for every generation", async () => {
    const bad = info({ virtualSize: 64 * MiB, findings: [{ code: "X", severity: "error", stage: "image", message: "m", remedy: "r", evidence: {} }] });
    expect(codes(attachFindings(bad, 1, "azure"))).toEqual(["X"]);
    expect(codes(attachFindings(bad, 2, "azure"))).toEqual(["X"]);
  });
  it("computes the VHD specification's CHS geometry", async () => {
    expect(vhdGeometry(32 * 2048)).toEqual({ cylinders: 963, heads: 4, sectorsPerTrack: 17 });
    expect(vhdGeometry(127 * 2 ** 21)).toEqual({ cylinders: 65278, heads: 16, sectorsPerTrack: 255 });
    expect(vhdGeometry(2 ** 30)).toEqual({ cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  });
});
