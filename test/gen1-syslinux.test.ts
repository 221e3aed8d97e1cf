// SYSLINUX on FAT (mbr.bin -> FAT boot record -> ldlinux.sys -> Linux) booted to the kernel hand-off, twice, to
// check that runs are deterministic.
import { beforeAll, describe, expect, it } from "vitest";
import { runGen1 } from "../emu/gen1.ts";
import { ensureGen1Fixtures, fixture } from "./gen1-fixtures.ts";

let manifest: ReturnType<typeof ensureGen1Fixtures>;
beforeAll(() => { manifest = ensureGen1Fixtures(); }, 900_000);

describe("Gen1 SYSLINUX", () => {
  it("boots SYSLINUX on FAT with mbr.bin to the Linux hand-off, deterministically", () => {
    const r = runGen1(fixture("syslinux-fat.img"));
    console.log(`SYSLINUX to hand-off: ${r.stats.wallMs} ms wall, ${r.stats.events} events, ${r.stats.sectorsRead} sectors read`);
    expect(r.reached).toBe("kernel");
    expect(r.verdict).toBe("inconclusive");
    expect(r.stop.reason).toBe("handoff");
    const want = manifest.fixtures["syslinux-fat.img"];
    expect(r.handoff?.cmdline).toBe(want.cmdline);
    expect(r.handoff?.kernelVersion?.split(" ")[0]).toBe(manifest.kernelVersion);
    expect(r.handoff?.loaderType).toMatch(/^SYSLINUX/);
    expect(r.handoff?.initrd?.size).toBeGreaterThan(100_000);
    expect(r.chain.map((c) => c.evidence.kind)).toEqual(expect.arrayContaining(["syslinux-mbr", "syslinux-vbr"]));
    expect(r.screen.filter(Boolean)[0]).toMatch(/^SYSLINUX 6\.\d+/);
    const again = runGen1(fixture("syslinux-fat.img"));
    const strip = (x: typeof r) => JSON.stringify({ ...x, stats: { ...x.stats, wallMs: 0 } });
    expect(strip(again)).toBe(strip(r));
  }, 120_000);
});
