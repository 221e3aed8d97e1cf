// Identifies the boot code loaded at 0000:7C00 (MBR code area, partition boot records): exact matches against the
// boot code files installed on this host (GRUB boot.img, SYSLINUX mbr/gptmbr/altmbr), then structural signatures
// (GRUB boot.img fields per grub-core/boot/i386/pc/boot.S, Windows and other MBR message tables, FAT/NTFS BPBs).
import * as fs from "node:fs";
import { createHash } from "node:crypto";

export interface BootCodeId {
  /** Stable id: grub-boot.img, syslinux-mbr, syslinux-gptmbr, syslinux-altmbr, windows-mbr, empty, ... */
  kind: string;
  /** A human description. */
  name: string;
  /** Whether bytes matched an installed reference file exactly. */
  exact: boolean;
  sha256: string;
  details?: Record<string, unknown>;
}

/** Installed reference boot code: (id, name, path, bytes that matter). */
const REFERENCES: { kind: string; name: string; path: string; len: number }[] = [
  { kind: "grub-boot.img", name: "GRUB 2 boot.img (i386-pc)", path: "/usr/lib/grub/i386-pc/boot.img", len: 440 },
  { kind: "syslinux-mbr", name: "SYSLINUX mbr.bin", path: "/usr/lib/syslinux/mbr/mbr.bin", len: 440 },
  { kind: "syslinux-gptmbr", name: "SYSLINUX gptmbr.bin", path: "/usr/lib/syslinux/mbr/gptmbr.bin", len: 440 },
  { kind: "syslinux-altmbr", name: "SYSLINUX altmbr.bin", path: "/usr/lib/syslinux/mbr/altmbr.bin", len: 439 },
];

/** GRUB boot.img writes these fields at install time (boot.S: GRUB_BOOT_MACHINE_KERNEL_SECTOR 5Ch, BOOT_DRIVE 64h). */
const GRUB_FIELDS = { kernelSector: 0x5c, bootDrive: 0x64, driveCheck: 0x66 };

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let refHashes: { kind: string; name: string; len: number; hash: string }[] | undefined;

/** Hashes of the reference code areas with the install-time fields neutralised. */
function references(): typeof refHashes & object {
  if (refHashes) return refHashes;
  refHashes = [];
  for (const r of REFERENCES) {
    let b: Buffer;
    try { b = fs.readFileSync(r.path); } catch { continue; }
    if (b.length < r.len) continue;
    refHashes.push({ kind: r.kind, name: r.name, len: r.len, hash: sha(normalise(r.kind, b.subarray(0, r.len))) });
  }
  return refHashes;
}

/** Zero the bytes an installer patches (GRUB's core LBA/drive and drive-check NOPs; altmbr's partition byte). */
function normalise(kind: string, code: Uint8Array): Uint8Array {
  const b = Buffer.from(code);
  if (kind === "grub-boot.img") { b.fill(0, GRUB_FIELDS.kernelSector, GRUB_FIELDS.bootDrive + 1); b.fill(0, 0x66, 0x68); }
  return b;
}

const has = (b: Buffer, s: string) => b.includes(Buffer.from(s, "latin1"));

function grubDetails(b: Buffer): Record<string, unknown> {
  return {
    coreLba: Number(b.readBigUInt64LE(GRUB_FIELDS.kernelSector)),
    bootDrive: "0x" + b[GRUB_FIELDS.bootDrive].toString(16).padStart(2, "0"),
    driveCheckPatched: b[GRUB_FIELDS.driveCheck] === 0x90 && b[GRUB_FIELDS.driveCheck + 1] === 0x90,
  };
}

/** Identify a 512-byte boot sector. `role` tells whether it is a disk's MBR or a partition's boot record. */
export function identifyBootCode(sector: Uint8Array, role: "mbr" | "vbr" = "mbr"): BootCodeId {
  const b = Buffer.from(sector.buffer, sector.byteOffset, Math.min(sector.length, 512));
  const code = b.subarray(0, role === "mbr" ? 440 : 510);
  const hash = sha(code);
  const out = (kind: string, name: string, exact = false, details?: Record<string, unknown>): BootCodeId =>
    ({ kind, name, exact, sha256: hash, ...(details ? { details } : {}) });
  if (code.every((x) => x === code[0])) {
    return out("empty", `empty boot code (all ${code[0].toString(16).padStart(2, "0")}h)`, false,
      role === "mbr" && b.length >= 512 ? { protectiveGpt: [0, 1, 2, 3].some((i) => b[0x1be + i * 16 + 4] === 0xee) } : undefined);
  }
  for (const r of references()) {
    if (b.length >= r.len && sha(normalise(r.kind, b.subarray(0, r.len))) === r.hash) {
      return out(r.kind, r.name + " (matches the installed file)", true, r.kind === "grub-boot.img" ? grubDetails(b) : undefined);
    }
  }
  if (has(code, "GRUB ") && has(code, "Geom") && has(code, "Read")) return out("grub-boot.img", "GRUB 2 boot.img (other version)", false, grubDetails(b));
  if (has(code, "GRUB ") && has(code, "Geom")) return out("grub-legacy-stage1", "GRUB Legacy stage1");
  if (has(code, "Multiple active partitions")) {
    return has(code, "!GPT") ? out("syslinux-gptmbr", "SYSLINUX gptmbr (other version)") : out("syslinux-mbr", "SYSLINUX mbr (other version)");
  }
  if (has(code, "Missing operating system.") && has(code, "Operating system load error.")) return out("syslinux-altmbr", "SYSLINUX altmbr (other version)");
  if (has(code, "Invalid partition table") && has(code, "Error loading operating system")) {
    return has(code, "TCPA") ? out("windows-mbr-nt6", "Windows Vista/7+ MBR") : out("windows-mbr-nt5", "Windows 2000/XP MBR");
  }
  if (role === "vbr") {
    const oem = b.toString("latin1", 3, 11);
    if (oem === "NTFS    ") return out("ntfs-vbr", has(b, "BOOTMGR") ? "NTFS boot record (BOOTMGR)" : "NTFS boot record (NTLDR)");
    if (has(b, "SYSLINUX") || has(b, "Boot error")) return out("syslinux-vbr", `SYSLINUX boot record (OEM '${oem.trim()}')`);
    if (b.toString("latin1", 0x52, 0x5a) === "FAT32   " || b.toString("latin1", 0x36, 0x3e).startsWith("FAT")) {
      return out("fat-vbr", `FAT boot record (OEM '${oem.trim()}')`);
    }
  }
  if (has(code, "LILO")) return out("lilo", "LILO");
  return out("unknown", "unrecognised boot code");
}
