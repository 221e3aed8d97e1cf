// Hostile boot loaders on an ESP: the Gen2 firmware must end every run with a stated reason and a finding — never a
// stack trace, a hang or a write to the image. The loaders are Debian's fbx64.efi with bytes changed on purpose.
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../images/registry.ts";
import { readLayout } from "../images/layout.ts";
import { runGen2, type Gen2Result } from "../emu/gen2.ts";
import { parsePe } from "../firmware-stubs/pe.ts";
import { loadDisassembler } from "../emu/disasm.ts";
import { sh, sha256, tmpdir } from "./helpers.ts";

const FBX64 = "/usr/lib/shim/fbx64.efi.signed";
let dir: string;

/** A 40 MiB GPT disk whose ESP holds `loader` at \EFI\BOOT\BOOTX64.EFI (sgdisk, mkfs.fat, mtools). */
function espDisk(name: string, loader: Buffer): string {
  const disk = path.join(dir, `${name}.img`), esp = path.join(dir, `${name}.fat`), file = path.join(dir, `${name}.efi`);
  fs.writeFileSync(file, loader);
  sh("truncate", ["-s", "40M", disk]);
  sh("sgdisk", ["-o", "-n", "1:2048:+36M", "-t", "1:EF00", disk]);
  sh("mkfs.fat", ["-F", "32", "-s", "1", "-i", "B0071E55", "-C", esp, String(36 * 1024)]);
  sh("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT"]);
  sh("mcopy", ["-i", esp, file, "::/EFI/BOOT/BOOTX64.EFI"]);
  sh("dd", [`if=${esp}`, `of=${disk}`, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]);
  return disk;
}

/** fbx64.efi with the bytes at its entry point replaced by `code`. */
function patchedEntry(code: number[]): Buffer {
  const b = Buffer.from(fs.readFileSync(FBX64));
  const pe = parsePe(b);
  const rva = pe.addressOfEntryPoint;
  const s = pe.sections.find((x) => rva >= x.virtualAddress && rva < x.virtualAddress + Math.max(x.virtualSize, x.sizeOfRawData))!;
  Buffer.from(code).copy(b, s.pointerToRawData + (rva - s.virtualAddress));
  return b;
}

function boot(disk: string, maxWallMs = 20_000): Gen2Result {
  const before = sha256(disk);
  const dev = openImage(disk);
  try {
    return runGen2(dev, readLayout(dev), { secureBoot: "off", maxWallMs });
  } finally {
    dev.close();
    expect(sha256(disk)).toBe(before);
  }
}

beforeAll(async () => {
  dir = tmpdir("bootgate-gen2-hostile-");
  await loadDisassembler();
});

describe("Gen2 firmware against hostile loaders", () => {
  it("refuses a loader truncated to its first 4 KiB (LoadImage fails; GEN2_LOADER_INVALID at the firmware stage)", () => {
    const r = boot(espDisk("truncated", fs.readFileSync(FBX64).subarray(0, 4096)));
    expect(r.reached).toBe("firmware");
    expect(r.verdict).toBe("fails");
    const f = r.findings.find((x) => x.code === "GEN2_LOADER_INVALID");
    expect(f?.message).toMatch(/cannot be loaded/);
    expect(r.screen.join("\n")).toContain("No x64-based UEFI boot loader was found.");
  });

  it("refuses a loader whose SizeOfImage claims 4 GiB", () => {
    const b = Buffer.from(fs.readFileSync(FBX64));
    const pe = b.readUInt32LE(0x3c);
    b.writeUInt32LE(0xfffff000, pe + 24 + 56);                     // OptionalHeader.SizeOfImage (PE32+)
    const r = boot(espDisk("huge", b));
    expect(r.reached).toBe("firmware");
    expect(r.findings.map((x) => x.code)).toContain("GEN2_LOADER_INVALID");
  });

  it("a loader that executes an invalid opcode stops as a CPU exception with the instruction disassembled", () => {
    const r = boot(espDisk("ud2", patchedEntry([0x0f, 0x0b])));
    expect(r.reached).toBe("bootloader");
    expect(r.stop.reason).toBe("cpu-exception");
    expect(r.findings.map((x) => x.code)).toContain("GEN2_CPU_EXCEPTION");
    expect(r.trace.window?.lines[0].text).toMatch(/ud2/);
  });

  it("a loader that halts stops as halted, not as a budget", () => {
    const r = boot(espDisk("hlt", patchedEntry([0xfa, 0xf4])));
    expect(r.stop.reason).toBe("halted");
    expect(r.verdict).toBe("fails");
  });

  it("a loader spinning forever ends at the wall-time budget with an inconclusive verdict, within the bound", () => {
    const t = Date.now();
    const r = boot(espDisk("spin", patchedEntry([0xeb, 0xfe])), 1500);
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(r.stop.reason).toBe("budget-time");
    expect(r.verdict).toBe("inconclusive");
    expect(r.findings.map((x) => x.code)).toContain("GEN2_BUDGET_EXHAUSTED");
  });

  it("a loader that passes a wild pointer to the firmware faults cleanly", () => {
    // mov rax, [rdx+0x60] (SystemTable->BootServices); AllocatePool(EfiReservedMemoryType, 16, 1 << 40): xor ecx,ecx;
    // mov edx,16; mov r8, 1<<40 (an out-parameter far outside RAM); call [rax+0x40] (AllocatePool); hlt.
    const code = [0x48, 0x8b, 0x42, 0x60, 0x31, 0xc9, 0xba, 0x10, 0, 0, 0, 0x49, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0x50, 0x40, 0xf4];
    const r = boot(espDisk("wild", patchedEntry(code)));
    expect(r.stop.reason).toBe("cpu-exception");
    expect(r.stop.detail).toMatch(/AllocatePool/);
    expect(r.findings.map((x) => x.code)).toContain("GEN2_CPU_EXCEPTION");
  });
});
