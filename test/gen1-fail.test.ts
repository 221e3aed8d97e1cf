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
    expect(r.stats.instructions).toBe(-1);
    // Counting (a benchmark aid): mbr.bin relocates itself (rep movsw), scans 4 entries, prints 25 characters.
    const counted = runGen1(fixture("no-active.img"), { countInstructions: true });
    expect(counted.stop).toEqual(r.stop);
    expect(counted.stats.instructions).toBeGreaterThan(100);
    expect(counted.stats.instructions).toBeLessThan(2000);
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
    // boot.img jumps to 0000:8000, where the sector it loaded holds only zeros: stopped before running them.
    expect(r.stop).toMatchObject({ reason: "cpu-exception", cs: 0, ip: 0x8000 });
    expect(r.stop.detail).toMatch(/jumped into empty memory at 0000:8000/);
    expect(r.stats.wallMs).toBeLessThan(5000);
  });

  it("stops at once at an idle loop (a jump to itself after an error message), with the message as evidence", () => {
    // A synthetic MBR in the style of DOS-era boot code: print a message with INT 10h teletype, then `jmp $`.
    // (Unit test of the idle-loop detector: the real MBRs in the fixtures end with INT 18h or HLT instead.)
    const msg = Buffer.from("Invalid partition table\0", "latin1");
    const code = Buffer.from([0xbe, 0x10, 0x7c, 0xb4, 0x0e, 0xac, 0x84, 0xc0, 0x74, 0x04, 0xcd, 0x10, 0xeb, 0xf7,
      0xeb, 0xfe]);   // mov si,7C10h (msg) ; mov ah,0Eh ; l: lodsb ; test al,al ; jz hang ; int 10h ; jmp l ; hang: jmp $
    expect(code.length).toBe(0x10);
    const mbr = Buffer.alloc(512);
    code.copy(mbr, 0); msg.copy(mbr, 0x10); mbr.writeUInt16LE(0xaa55, 510);
    const f = path.join(tmpdir(), "jmp-self.img");
    fs.writeFileSync(f, Buffer.concat([mbr, Buffer.alloc(2047 * 512)]));
    const r = runGen1(openRaw(f), { maxWallMs: 20_000 });
    expect(r.reached).toBe("bootloader");
    expect(r.verdict).toBe("fails");
    expect(r.stop).toMatchObject({ reason: "halted", cs: 0, ip: 0x7c0e });
    expect(r.stop.detail).toMatch(/idle loop: a jump to itself/);
    expect(r.screen.join("\n")).toContain("Invalid partition table");
    expect(r.stats.wallMs).toBeLessThan(5000);
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
  it("records the last N blocks executed, the last one in boot.img jumping to the empty memory where it stopped", () => {
    const r = runGen1(fixture("gpt-no-biosboot.img"), { traceBlocks: 8 });
    expect(r.stop.reason).toBe("cpu-exception");
    const blocks = r.trace.blocks ?? [];
    expect(blocks).toHaveLength(8);
    const last = blocks[blocks.length - 1];
    expect(parseInt(last.address, 16)).toBeGreaterThanOrEqual(0x7c00);
    expect(parseInt(last.address, 16) + last.size).toBeLessThanOrEqual(0x7e00);
    expect((r.stop.cs ?? 0) * 16 + (r.stop.ip ?? 0)).toBe(0x8000);
  });
  it("is off by default", () => {
    expect(runGen1(fixture("zeroed-bootcode.img")).trace.blocks).toBeUndefined();
  });
});
