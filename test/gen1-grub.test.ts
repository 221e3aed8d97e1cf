// GRUB 2 (Debian boot.img + core.img in the MBR gap, ext4 /boot) booting a real Debian kernel to the hand-off, and a
// grub.cfg menu whose 5 s timeout expires through virtual time. The times are printed (about a second each here).
import { beforeAll, describe, expect, it } from "vitest";
import { runGen1 } from "../emu/gen1.ts";
import { ensureGen1Fixtures, fixture } from "./gen1-fixtures.ts";

let manifest: ReturnType<typeof ensureGen1Fixtures>;
beforeAll(() => { manifest = ensureGen1Fixtures(); }, 900_000);

describe("Gen1 GRUB", () => {
  it("boots GRUB on MBR to the Linux 32-bit hand-off with the exact command line and kernel version", () => {
    const r = runGen1(fixture("grub-mbr.img"), { maxWallMs: 120_000 });
    console.log(`GRUB/MBR to hand-off: ${r.stats.wallMs} ms wall, ${r.stats.events} events, ${r.stats.diskReads} INT 13h reads`);
    expect(r.reached).toBe("kernel");
    expect(r.verdict).toBe("inconclusive");
    expect(r.stop.reason).toBe("handoff");
    expect(r.handoff?.protocol).toBe("linux32");
    expect(r.handoff?.cmdline).toBe(manifest.fixtures["grub-mbr.img"].cmdline);
    expect(r.handoff?.kernelVersion?.split(" ")[0]).toBe(manifest.kernelVersion);
    expect(r.handoff?.loaderType).toMatch(/^GRUB/);
    expect(r.handoff?.initrd?.size).toBeGreaterThan(100_000);
    expect(r.chain[1].evidence).toMatchObject({ kind: "grub-boot.img", coreLba: 1 });
    expect(r.screen[0]).toBe("GRUB loading.");
    expect(r.findings.map((f) => f.code)).toEqual(["GEN1_LINUX_HANDOFF"]);
  }, 180_000);

  it("lets a grub.cfg menu with timeout=5 expire through virtual time and boots the default entry", () => {
    const r = runGen1(fixture("grub-menu-timeout.img"), { maxWallMs: 120_000 });
    console.log(`GRUB menu to hand-off: ${r.stats.wallMs} ms wall, ${r.stats.virtualMs} ms virtual`);
    expect(r.stop.reason).toBe("handoff");
    expect(r.stats.virtualMs).toBeGreaterThanOrEqual(5000);
    expect(r.handoff?.cmdline).toBe(manifest.fixtures["grub-menu-timeout.img"].cmdline);
    expect(r.screen.join("\n")).toContain("Booting `Debian GNU/Linux, with Linux");
  }, 180_000);
});
