// Gen2 boots of the Debian-built UEFI fixtures (scripts/build-fixtures-gen2.sh): the real shim, GRUB and kernel EFI
// stub run in the synthetic Hyper-V UEFI; each case asserts the stage, the stop reason, the console text and, for
// images that reach Linux, the exact kernel command line the manifest recorded.
import { describe, expect, it } from "vitest";
import { readLayout } from "../images/layout.ts";
import { runGen2, type Gen2Result } from "../emu/gen2.ts";
import { checkImage } from "../emu/check.ts";
import { VariableStore } from "../firmware-stubs/uefi-nvram.ts";
import { GUID } from "../firmware-stubs/uefi-guid.ts";
import { gen2Manifest, openGen2, gen2Fixture as gen2Path } from "./gen2-fixtures.ts";
import type { SecureBootMode } from "../firmware-stubs/secureboot.ts";

const manifest = gen2Manifest();

function boot(name: string, secureBoot: SecureBootMode, extra: { nvram?: VariableStore } = {}): Gen2Result {
  const dev = openGen2(name as never);
  try {
    return runGen2(dev, readLayout(dev), { secureBoot, maxWallMs: 90_000, ...extra });
  } finally {
    dev.close();
  }
}

const codes = (r: Gen2Result) => r.findings.map((f) => f.code);
const cmdlineOf = (name: string) => (manifest.fixtures as Record<string, { cmdline?: string }>)[name].cmdline;

describe("Gen2 boot of real UEFI loaders", () => {
  it("shim + signed GRUB at the removable path reaches the Linux kernel with Secure Boot off", () => {
    const r = boot("gen2-shim-removable.img", "off");
    expect(r.reached).toBe("kernel");
    expect(r.stop.reason).toBe("handoff");
    expect(r.handoff?.cmdline).toBe(cmdlineOf("gen2-shim-removable.img"));
    expect(r.handoff?.kernelVersion).toMatch(/^6\.1\.0-56-amd64 /);
    expect(r.handoff?.initrd?.size).toBeGreaterThan(100_000);
    expect(r.transcript).toContain("Booting `Debian GNU/Linux");
    expect(r.images[0].file).toBe("\\EFI\\BOOT\\BOOTX64.EFI");
    expect(r.images[0].secureBoot?.acceptedBy).toEqual(["uefi-ca", "trusted-launch"]);
    // shim left its runtime copies of the MOK lists behind, as on a real boot.
    expect(r.nvramWrites.map((w) => w.name)).toEqual(expect.arrayContaining(["MokListRT", "SbatLevelRT"]));
    expect(codes(r)).toEqual(expect.arrayContaining(["GEN2_LINUX_HANDOFF", "GEN2_SECUREBOOT_CHAIN"]));
  });

  it("the same chain under the UEFI CA template: shim verifies GRUB and the kernel, and Linux's EFI stub takes over", () => {
    const r = boot("gen2-shim-removable.img", "uefi-ca");
    expect(r.reached).toBe("kernel");
    expect(r.stop.reason).toBe("handoff");
    expect(r.handoff?.protocol).toBe("efi-handover");
    expect(r.handoff?.cmdline).toBe(cmdlineOf("gen2-shim-removable.img"));
    expect(r.images[0].secureBoot?.allowed).toBe(true);
  });

  it("the same chain under the Windows template is denied by the firmware, with the template that would accept it", () => {
    const r = boot("gen2-shim-removable.img", "windows");
    expect(r.reached).toBe("firmware");
    expect(r.verdict).toBe("fails");
    expect(r.stop.reason).toBe("no-boot-device");
    expect(r.screen.join("\n")).toContain("Image execution was denied by Secure Boot policy.");
    const denied = r.findings.find((f) => f.code === "SECUREBOOT_DENIED");
    expect(denied?.remedy).toMatch(/MicrosoftUEFICertificateAuthority/);
  });

  it("an unsigned grub-mkimage loader boots with Secure Boot off and is denied with Trusted Launch", () => {
    const off = boot("gen2-unsigned-grub.img", "off");
    expect(off.reached).toBe("kernel");
    expect(off.handoff?.cmdline).toBe(cmdlineOf("gen2-unsigned-grub.img"));
    expect(off.handoff?.protocol).toBe("linux64");
    const tl = boot("gen2-unsigned-grub.img", "trusted-launch");
    expect(tl.reached).toBe("firmware");
    expect(codes(tl)).toContain("SECUREBOOT_UNSIGNED");
    expect(tl.screen.join("\n")).toContain("Image execution was denied by Secure Boot policy.");
  });

  it("a loader only under \\EFI\\debian (the old VM's NVRAM knew it) is not found on a new VM", () => {
    const r = boot("gen2-debian-only.img", "off");
    expect(r.reached).toBe("firmware");
    expect(r.stop.reason).toBe("no-boot-device");
    expect(r.screen.join("\n")).toContain("No x64-based UEFI boot loader was found.");
    const f = r.findings.find((x) => x.code === "GEN2_NO_BOOT_LOADER");
    expect(f?.evidence.otherLoaders).toContain("\\EFI\\debian\\shimx64.efi");
  });

  it("the same disk boots when the NVRAM carries a boot entry for \\EFI\\debian\\shimx64.efi (short-form HD path)", () => {
    const dev = openGen2("gen2-debian-only.img");
    const layout = readLayout(dev);
    dev.close();
    const esp = layout.partitions[0];
    const nvram = new VariableStore();
    const hd = Buffer.alloc(42);
    hd[0] = 4; hd[1] = 1; hd.writeUInt16LE(42, 2);
    hd.writeUInt32LE(esp.index, 4);
    hd.writeBigUInt64LE(BigInt(esp.startLba), 8);
    hd.writeBigUInt64LE(BigInt(esp.sectorCount), 16);
    const g = (esp.guid ?? "").replace(/-/g, "");
    const gb = Buffer.alloc(16);
    gb.writeUInt32LE(parseInt(g.slice(0, 8), 16), 0); gb.writeUInt16LE(parseInt(g.slice(8, 12), 16), 4);
    gb.writeUInt16LE(parseInt(g.slice(12, 16), 16), 6); Buffer.from(g.slice(16), "hex").copy(gb, 8);
    gb.copy(hd, 24);
    hd[40] = 2; hd[41] = 2;
    const file = Buffer.from("\\EFI\\debian\\shimx64.efi\0", "utf16le");
    const fp = Buffer.concat([Buffer.from([4, 4, (file.length + 4) & 0xff, (file.length + 4) >> 8]), file]);
    const dp = Buffer.concat([hd, fp, Buffer.from([0x7f, 0xff, 4, 0])]);
    const desc = Buffer.from("debian\0", "utf16le");
    const opt = Buffer.alloc(6);
    opt.writeUInt32LE(1, 0); opt.writeUInt16LE(dp.length, 4);
    nvram.put("Boot0001", GUID.EFI_GLOBAL_VARIABLE, 7, Buffer.concat([opt, desc, dp]));
    nvram.put("BootOrder", GUID.EFI_GLOBAL_VARIABLE, 7, Buffer.from([1, 0]));
    const r = boot("gen2-debian-only.img", "off", { nvram });
    expect(r.reached).toBe("kernel");
    expect(r.images[0].file).toBe("\\EFI\\debian\\shimx64.efi");
    expect(r.handoff?.cmdline).toBe(cmdlineOf("gen2-shim-removable.img"));
  });

  it("a blank ESP has no loader; an MBR BIOS image has no UEFI file system", () => {
    const blank = boot("gen2-blank-esp.img", "off");
    expect(blank.reached).toBe("firmware");
    expect(codes(blank)).toContain("GEN2_NO_BOOT_LOADER");
    const mbr = boot("gen2-mbr-bios.img", "off");
    expect(mbr.reached).toBe("firmware");
    expect(codes(mbr)).toContain("GEN2_NO_UEFI_FILESYSTEM");
    expect(mbr.screen.join("\n")).toContain("No UEFI-compatible file system was found.");
  });

  it("GRUB searching a UUID that is on no filesystem stops at its prompt with the error on screen", () => {
    const r = boot("gen2-missing-uuid.img", "off");
    expect(r.reached).toBe("bootloader");
    expect(r.verdict).toBe("fails");
    expect(r.stop.reason).toBe("waiting-for-key");
    expect(r.transcript).toContain(`error: no such device: ${manifest.missingUuid}`);
    expect(r.screen.map((l) => l.trim()).filter(Boolean).pop()).toBe("grub>");
    expect(codes(r)).toEqual(expect.arrayContaining(["GEN2_GRUB_ERROR", "GEN2_WAITING_FOR_KEY"]));
  });

  it("shim's fallback reads BOOTX64.CSV, creates a boot entry and, with Trusted Launch's vTPM, resets once and boots it", () => {
    const r = boot("gen2-fallback.img", "trusted-launch");
    expect(r.reached).toBe("kernel");
    expect(r.stats.resets).toBe(1);
    expect(codes(r)).toContain("GEN2_RESET");
    expect(r.handoff?.cmdline).toBe(cmdlineOf("gen2-fallback.img"));
    expect(r.images.map((i) => i.file)).toEqual(expect.arrayContaining(["\\EFI\\BOOT\\BOOTX64.EFI", "\\EFI\\debian\\shimx64.efi"]));
    const written = r.nvramWrites.filter((w) => w.status === "SUCCESS").map((w) => w.name);
    expect(written).toEqual(expect.arrayContaining(["BootOrder"]));
    expect(written.some((n) => /^Boot[0-9A-F]{4}$/.test(n))).toBe(true);
    expect(r.tpm?.measurements).toBeGreaterThan(0);
  });

  it("without a TPM the fallback starts the new entry at once (shim's fallback_should_prefer_reset)", () => {
    const r = boot("gen2-fallback.img", "off");
    expect(r.reached).toBe("kernel");
    expect(r.stats.resets).toBe(0);
  });

  it("two runs of the same image give the same result (virtual time, no host clock in the verdict)", () => {
    const a = boot("gen2-debian-only.img", "off");
    const b = boot("gen2-debian-only.img", "off");
    const strip = (r: Gen2Result) => ({ ...r, stats: { ...r.stats, wallMs: 0 } });
    expect(strip(a)).toEqual(strip(b));
  });

  it("check --gen 2 with the target's default Secure Boot: Azure Trusted Launch boots shim's chain to root, Hyper-V's Windows template denies it", () => {
    const az = checkImage(gen2Path("gen2-shim-removable.img"), { gens: [2], target: "azure" });
    const g = az.generations[0];
    expect(g.verdict).toBe("boots");
    expect(g.reached).toBe("root");
    expect(g.findings.map((x) => x.code)).toContain("LINUX_ROOT_FOUND");
    const hv = checkImage(gen2Path("gen2-shim-removable.vhdx"), { gens: [2], target: "hyperv" });
    expect(hv.generations[0].verdict).toBe("fails");
    expect(hv.generations[0].reached).toBe("firmware");
    expect(hv.generations[0].findings.map((f) => f.code)).toContain("SECUREBOOT_DENIED");
  });

  it("the disk on Azure's NVMe controller: the firmware boots it, and the Linux stage wants the nvme driver this initramfs lacks", () => {
    const doc = checkImage(gen2Path("gen2-unsigned-grub.img"), { gens: [2], target: "azure", secureBoot: "off", controller: "nvme" });
    const g = doc.generations[0];
    expect(g.verdict).toBe("fails");
    expect(g.reached).toBe("kernel");
    expect(g.findings.map((f) => f.code)).toContain("LINUX_NVME_DRIVER_MISSING");
    expect(JSON.stringify(g.chain[0].evidence)).toContain("nvme");
  });
});
