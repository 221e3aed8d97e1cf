// Gen1 dead ends with real boot code: empty MBR code, no 55AA, no active partition (SYSLINUX mbr.bin), GRUB with a
// wrong prefix (grub rescue>), GPT without a BIOS boot partition, a disk too large for Hyper-V IDE.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { runGen1 } from "../emu/gen1.ts";
import { loadDisassembler } from "../emu/disasm.ts";
import { identifyBootCode } from "../emu/bootcode-id.ts";
import { ensureGen1Fixtures, fixture, openRaw } from "./gen1-fixtures.ts";
import { sh, tmpdir } from "./helpers.ts";

beforeAll(async () => { ensureGen1Fixtures(); await loadDisassembler(); }, 900_000);

describe("Gen1 boot failures", () => {
  it("stops at an empty MBR code area (zeroed boot code, 55AA kept) as a bootloader failure", () => {
    const r = runGen1(fixture("zeroed-bootcode.img"));
    expect(r.reached).toBe("bootloader");
    expect(r.verdict).toBe("fails");
    expect(r.stop.reason).toBe("halted");
    expect(r.findings.map((f) => f.code)).toContain("GEN1_EMPTY_BOOT_CODE");
    expect(r.chain[1].evidence.kind).toBe("empty");
  });

  it("reports no bootable device when sector 0 lacks 55AA", () => {
    const r = runGen1(fixture("no-55aa.img"));
    expect(r.reached).toBe("firmware");
    expect(r.verdict).toBe("fails");
    expect(r.stop.reason).toBe("no-boot-device");
    expect(r.findings[0].code).toBe("GEN1_NO_BOOT_DEVICE");
    expect(r.screen[0]).toContain("Reboot and Select proper Boot device");
    expect(r.readLog).toEqual([{ lba: 0, count: 1 }]);
  });

  it("runs SYSLINUX mbr.bin to 'Missing operating system.' and INT 18h when no partition is active", () => {
    const r = runGen1(fixture("no-active.img"));
    expect(r.reached).toBe("bootloader");
    expect(r.stop.reason).toBe("int18-return");
    expect(r.screen[0]).toBe("Missing operating system.");
    expect(r.chain[1].evidence.kind).toBe("syslinux-mbr");
    const codes = r.findings.map((f) => f.code);
    expect(codes).toContain("GEN1_BOOT_CODE_GAVE_UP");
    expect(codes).toContain("GEN1_BOOT_MESSAGE");
    expect(r.trace.window?.lines[0].text).toMatch(/^int 0x18/);
  });

  it("shows GRUB's error and the rescue prompt waiting for a key when core.img has a wrong prefix", () => {
    const r = runGen1(fixture("grub-wrong-prefix.img"));
    expect(r.reached).toBe("bootloader");
    expect(r.verdict).toBe("fails");
    expect(r.stop.reason).toBe("waiting-for-key");
    expect(r.screen).toContain("error: no such partition.");
    expect(r.screen.some((l) => l.startsWith("grub rescue>"))).toBe(true);
    const codes = r.findings.map((f) => f.code);
    expect(codes).toEqual(expect.arrayContaining(["GEN1_GRUB_ERROR", "GEN1_GRUB_RESCUE", "GEN1_WAITING_FOR_KEY"]));
    expect(r.findings.find((f) => f.code === "GEN1_GRUB_ERROR")?.message).toBe("GRUB: no such partition.");
    expect(r.chain.map((c) => c.what)).toContain("GRUB core.img (diskboot.img) read from LBA 1");
  });

  it("fails when GRUB's boot.img on GPT points at a sector that holds no core.img (no BIOS boot partition)", () => {
    const r = runGen1(fixture("gpt-no-biosboot.img"));
    expect(r.reached).toBe("bootloader");
    expect(r.verdict).toBe("fails");
    expect(r.chain[1].evidence).toMatchObject({ kind: "grub-boot.img", coreLba: 2048 });
    expect(["cpu-exception", "halted", "budget-time"]).toContain(r.stop.reason);
  });

  it("refuses a disk larger than the 2040 GiB Hyper-V IDE limit before running anything", () => {
    const dir = tmpdir();
    const f = path.join(dir, "huge.img");
    sh("truncate", ["-s", "2041G", f]);
    const r = runGen1(openRaw(f));
    expect(r.reached).toBe("image");
    expect(r.verdict).toBe("fails");
    expect(r.stop.reason).toBe("disk-not-attachable");
    expect(r.findings[0].code).toBe("GEN1_DISK_NOT_ATTACHABLE");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("identifies the installed boot code files exactly (hashes taken from the Debian files at run time)", () => {
    for (const [file, kind] of [["/usr/lib/grub/i386-pc/boot.img", "grub-boot.img"], ["/usr/lib/syslinux/mbr/mbr.bin", "syslinux-mbr"],
      ["/usr/lib/syslinux/mbr/gptmbr.bin", "syslinux-gptmbr"], ["/usr/lib/syslinux/mbr/altmbr.bin", "syslinux-altmbr"]] as const) {
      const sector = Buffer.alloc(512);
      fs.readFileSync(file).copy(sector, 0, 0, 440);
      const id = identifyBootCode(sector);
      expect(id.kind, file).toBe(kind);
      expect(id.exact, file).toBe(true);
    }
    expect(identifyBootCode(Buffer.alloc(512)).kind).toBe("empty");
  });
});

describe("Gen1 trace of basic blocks (debugging aid)", () => {
  it("records the last N blocks, the last one holding the faulting instruction", () => {
    const r = runGen1(fixture("gpt-no-biosboot.img"), { traceBlocks: 8 });
    expect(r.stop.reason).toBe("cpu-exception");
    const blocks = r.trace.blocks ?? [];
    expect(blocks).toHaveLength(8);
    const last = blocks[blocks.length - 1];
    const at = (r.stop.cs ?? 0) * 16 + (r.stop.ip ?? 0);
    expect(at).toBeGreaterThanOrEqual(parseInt(last.address, 16));
    expect(at).toBeLessThan(parseInt(last.address, 16) + last.size);
  });
  it("is off by default", () => {
    expect(runGen1(fixture("zeroed-bootcode.img")).trace.blocks).toBeUndefined();
  });
});
