// Conformance matrix (STYLE.md): one raw disk with random content and a real partition table,
// converted by qemu-img to every supported container, must read back byte-identical sectors
// through BlockDevice and through `bootgate read`, including the last sector.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { openImage } from "../images/registry.ts";
import { cli, prng, sh, shAsync, tmpdir } from "./helpers.ts";

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
let dir: string;
let reference: Buffer;

interface Variant { name: string; file: string; make: (raw: string, out: string) => unknown; format: string; subformat?: string; ref?: () => Buffer }

const convert = (args: string[]) => (raw: string, out: string) => shAsync("qemu-img", ["convert", "-f", "raw", ...args, raw, out]);

const variants: Variant[] = [
  { name: "raw", file: "disk.img", format: "raw", make: (raw, out) => fs.copyFileSync(raw, out) },
  { name: "vhd fixed", file: "fixed.vhd", format: "vhd", subformat: "fixed", make: convert(["-O", "vpc", "-o", "subformat=fixed,force_size=on"]) },
  { name: "vhd dynamic", file: "dynamic.vhd", format: "vhd", subformat: "dynamic", make: convert(["-O", "vpc", "-o", "subformat=dynamic,force_size=on"]) },
  { name: "vhdx dynamic", file: "dynamic.vhdx", format: "vhdx", subformat: "dynamic", make: convert(["-O", "vhdx", "-o", "subformat=dynamic"]) },
  { name: "vhdx fixed", file: "fixed.vhdx", format: "vhdx", subformat: "fixed", make: convert(["-O", "vhdx", "-o", "subformat=fixed"]) },
  { name: "vhdx 1 MiB blocks", file: "small-blocks.vhdx", format: "vhdx", make: convert(["-O", "vhdx", "-o", "block_size=1M"]) },
  { name: "vmdk monolithicSparse", file: "sparse.vmdk", format: "vmdk", subformat: "monolithicSparse", make: convert(["-O", "vmdk", "-o", "subformat=monolithicSparse"]) },
  { name: "vmdk streamOptimized", file: "stream.vmdk", format: "vmdk", subformat: "streamOptimized", make: convert(["-O", "vmdk", "-o", "subformat=streamOptimized"]) },
  { name: "vmdk monolithicFlat", file: "flat.vmdk", format: "vmdk", subformat: "monolithicFlat", make: convert(["-O", "vmdk", "-o", "subformat=monolithicFlat"]) },
  { name: "vmdk twoGbMaxExtentSparse", file: "split.vmdk", format: "vmdk", subformat: "twoGbMaxExtentSparse", make: convert(["-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"]) },
  { name: "qcow2", file: "plain.qcow2", format: "qcow2", make: convert(["-O", "qcow2"]) },
  { name: "qcow2 compressed", file: "compressed.qcow2", format: "qcow2", make: convert(["-O", "qcow2", "-c"]) },
  { name: "qcow2 compat=0.10", file: "v2.qcow2", format: "qcow2", make: convert(["-O", "qcow2", "-o", "compat=0.10"]) },
];

/** A backing chain: a qcow2 overlay over a qcow2 base, with writes in the overlay. */
async function makeChain(raw: string, out: string): Promise<void> {
  const base = path.join(path.dirname(out), "base.qcow2");
  await shAsync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, base]);
  await shAsync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", out], { cwd: path.dirname(out) });
  await shAsync("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 1M 192k", "-c", `write -P 0x5c ${SIZE - 65536} 65536`, out]);
}

beforeAll(async () => {
  dir = tmpdir("bootgate-matrix-");
  const raw = path.join(dir, "source.raw");
  const data = prng(0x5eed, SIZE);
  data.fill(0, 4 * MiB, 8 * MiB);          // an unallocated stretch for the sparse formats
  fs.writeFileSync(raw, data);
  sh("sfdisk", ["-q", raw], { input: "label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=16384, type=83, bootable\nstart=18432, type=7\n" });
  reference = fs.readFileSync(raw);
  await Promise.all(variants.map((v) => v.make(raw, path.join(dir, v.file))));
  await makeChain(raw, path.join(dir, "top.qcow2"));
  variants.push({ name: "qcow2 backing chain", file: "top.qcow2", format: "qcow2", make: () => {},
    ref: () => { const r = Buffer.from(reference); r.fill(0xab, MiB, MiB + 192 * 1024); r.fill(0x5c, SIZE - 65536); return r; } });
}, 120_000);

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("every container reads back the raw original", () => {
  it.each(variants.map((v) => [v.name, v] as const))("%s through BlockDevice", async (_n, v) => {
    const expected = v.ref ? v.ref() : reference;
    const dev = openImage(path.join(dir, v.file));
    try {
      expect(dev.format).toBe(v.format);
      if (v.subformat) expect(dev.info.subformat).toBe(v.subformat);
      expect(dev.info.virtualSize).toBe(SIZE);
      expect(dev.sectorCount).toBe(SIZE / 512);
      // whole disk in 1 MiB reads, plus odd-sized reads that straddle blocks/grains/clusters
      for (let lba = 0; lba < dev.sectorCount; lba += 2048) {
        const got = dev.read(lba, 2048);
        const want = expected.subarray(lba * 512, (lba + 2048) * 512);
        if (!Buffer.from(got).equals(want)) expect.fail(`sectors ${lba}..${lba + 2047} differ`);
      }
      for (const [lba, n] of [[0, 1], [4095, 3], [8191, 2], [dev.sectorCount - 1, 1], [dev.sectorCount - 129, 129]]) {
        expect(sha(dev.read(lba, n))).toBe(sha(expected.subarray(lba * 512, (lba + n) * 512)));
      }
      expect(() => dev.read(dev.sectorCount, 1)).toThrow(/past the last sector/);
    } finally { dev.close(); }
  });

  it.each(variants.map((v) => [v.name, v] as const))("%s through `bootgate read`", async (_n, v) => {
    const expected = v.ref ? v.ref() : reference;
    const whole = await cli(["read", path.join(dir, v.file), "--lba", "0", "--count", String(SIZE / 512)]);
    expect(whole.stderr).toBe("");
    expect(whole.status).toBe(0);
    expect(sha(whole.stdout)).toBe(sha(expected));
    const last = await cli(["read", path.join(dir, v.file), "--lba", String(SIZE / 512 - 1)]);
    expect(last.status).toBe(0);
    expect(last.stdout.equals(expected.subarray(SIZE - 512))).toBe(true);
  });
});
