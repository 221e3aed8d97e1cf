// The README's first command ends in `bootgate demo`; the gate's exit codes on the demo disks.
import { describe, expect, it } from "vitest";
import * as path from "node:path";
import { cli, ROOT } from "./helpers.ts";

const demo = (f: string) => path.join(ROOT, ".cache/fixtures/demo", f);

describe("bootgate demo", () => {
  it("shows a good and a broken boot side by side", async () => {
    const r = await cli(["demo"]);
    expect(r.status).toBe(0);
    const out = r.stdout.toString();
    const sections = new Map(out.split("\n== ").slice(1).map((t) => [t.slice(0, t.indexOf(":")), t] as const));
    const section = (name: string) => sections.get(name) ?? "";
    expect(section("demo-good.vhd")).toMatch(/Generation 1: BOOTS \(reached root\)/);
    expect(section("demo-good.vhd")).toContain("root=UUID=b007ea7e-0000-4000-8000-000000000001 is partition 1 (ext4)");
    expect(section("demo-broken.vhd")).toMatch(/Generation 1: FAILS \(reached bootloader\)/);
    expect(section("demo-broken.vhd")).toContain("GEN1_GRUB_RESCUE");
    expect(section("demo-dynamic.vhd")).toContain("AZURE_NOT_FIXED_VHD");
    const gen2 = out.split("\n== ").filter((t) => t.startsWith("gen2-shim-removable.vhdx"));
    expect(gen2[0]).toMatch(/Generation 2: BOOTS \(reached root\)/);
    expect(gen2[1]).toMatch(/Generation 2: FAILS \(reached firmware\)/);
    expect(gen2[1]).toContain("SECUREBOOT_DENIED");
    expect(section("gen2-debian-only.img")).toContain("GEN2_NO_BOOT_LOADER");
  });

  it("gates: exit 0 for a disk that boots, 1 for one that fails (a BIOS-only disk fails Generation 2), 3 when inconclusive", async () => {
    expect((await cli(["check", demo("demo-good.vhd"), "--gen", "1", "--quiet"])).status).toBe(0);
    expect((await cli(["check", demo("demo-broken.vhd"), "--gen", "1", "--quiet"])).status).toBe(1);
    const both = await cli(["check", demo("demo-good.vhd"), "--json", "-"]);
    expect(both.status).toBe(1);
    const doc = JSON.parse(both.stdout.toString());
    expect(doc.generations.map((g: { verdict: string }) => g.verdict)).toEqual(["boots", "fails"]);
    expect(doc.generations[0].handoff.cmdline).toBe("BOOT_IMAGE=/boot/vmlinuz-6.1.0-56-amd64 root=UUID=b007ea7e-0000-4000-8000-000000000001 ro console=ttyS0 quiet");
    expect(doc.exitCode).toBe(1);
    // A budget of one firmware call cannot decide a shim chain: inconclusive, exit 3.
    const tiny = await cli(["check", path.join(ROOT, ".cache/fixtures/gen2/gen2-shim-removable.vhdx"), "--gen", "2", "--target", "hyperv",
      "--secure-boot", "uefi-ca", "--max-instructions", "100", "--quiet"]);
    expect(tiny.status).toBe(3);
  });
});
