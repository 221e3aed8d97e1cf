// PE/COFF reader, loader and Authenticode digest against Debian's signed shim and GRUB and an unsigned
// grub-mkimage image; digests cross-checked with pesign, osslsigncode and the PKCS#7 messageDigest.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { ImageError } from "../images/errors.ts";
import {
  authenticodeDigest, certificateTable, loadPe, parsePe, IMAGE_DIRECTORY_ENTRY_BASERELOC,
  WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_PKCS_SIGNED_DATA,
} from "../firmware-stubs/pe.ts";
import { sh, tmpdir } from "./helpers.ts";

const SHIM = "/usr/lib/shim/shimx64.efi.signed";
const GRUB = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
let shim: Buffer, grub: Buffer, plain: Buffer, plainFile: string;

beforeAll(() => {
  shim = fs.readFileSync(SHIM);
  grub = fs.readFileSync(GRUB);
  plainFile = path.join(tmpdir("bootgate-pe-"), "x.efi");
  sh("grub-mkimage", ["-O", "x86_64-efi", "-p", "/boot/grub", "-o", plainFile, "normal"]);
  plain = fs.readFileSync(plainFile);
});

/** The Authenticode hash as pesign prints it ("hash: <hex>"). */
function pesignHash(file: string): string {
  const m = /hash:\s*([0-9a-f]{64})/i.exec(sh("pesign", ["-h", "-i", file]));
  if (!m) throw new Error(`pesign printed no hash for ${file}`);
  return m[1].toLowerCase();
}

/** The digest in SpcIndirectDataContent: sha256 OID, NULL parameters, then OCTET STRING of 32 bytes. */
function spcDigest(pkcs7: Buffer): Buffer {
  const pat = Buffer.from("0609608648016503040201050004" + "20", "hex");
  const at = pkcs7.indexOf(pat);
  if (at < 0) throw new Error("no sha256 DigestInfo in the PKCS#7 blob");
  return pkcs7.subarray(at + pat.length, at + pat.length + 32);
}

function code(fn: () => unknown): string {
  try { fn(); } catch (e) { if (e instanceof ImageError) return e.code; throw e; }
  return "no error";
}

/** File offset of a field in the image, found from the parsed headers. */
const peOff = (b: Buffer) => b.readUInt32LE(0x3c);
const rvaToFile = (b: Buffer, rva: number) => {
  const s = parsePe(b).sections.find((x) => rva >= x.virtualAddress && rva < x.virtualAddress + x.sizeOfRawData)!;
  return s.pointerToRawData + rva - s.virtualAddress;
};

describe("PE/COFF headers of real UEFI images", () => {
  it("reads Debian's signed shim: x64 PE32+ EFI application with .sbat shim and sbat records", () => {
    const i = parsePe(shim, SHIM);
    expect(i.machine).toBe("x64");
    expect(i.machineValue).toBe(0x8664);
    expect(i.format).toBe("pe32+");
    expect(i.subsystem).toBe(10);
    expect(i.sectionAlignment).toBe(4096);
    expect(i.sizeOfImage).toBeGreaterThan(i.sizeOfHeaders);
    const names = i.sections.map((s) => s.name);
    for (const n of [".text", ".data", ".reloc", ".sbat"]) expect(names).toContain(n);
    expect(i.sbat![0]).toMatch(/^sbat,1,/);
    expect(i.sbat!.some((l) => l.startsWith("shim,"))).toBe(true);
    expect(i.findings).toEqual([]);
    expect(i.security.size).toBeGreaterThan(0);
    expect(i.security.offset + i.security.size).toBe(shim.length);
  });

  it("reads Debian's signed GRUB: mods section and grub SBAT records", () => {
    const i = parsePe(grub, GRUB);
    expect(i.machine).toBe("x64");
    expect(i.subsystem).toBe(10);
    expect(i.sections.map((s) => s.name)).toEqual([".text", ".data", "mods", ".sbat", ".reloc"]);
    expect(i.sbat!.some((l) => l.startsWith("grub,"))).toBe(true);
    expect(i.sbat!.some((l) => l.startsWith("grub.debian,"))).toBe(true);
  });

  it("reads an unsigned grub-mkimage image: no certificate table, no .sbat", () => {
    const i = parsePe(plain);
    expect(i.machine).toBe("x64");
    expect(i.format).toBe("pe32+");
    expect(i.security).toEqual({ offset: 0, size: 0 });
    expect(i.sbat).toBeUndefined();
    expect(certificateTable(plain)).toEqual([]);
    expect(i.sections.map((s) => s.name)).toContain(".reloc");
  });

  it("records a finding for an ARM64 image and for a boot service driver", () => {
    const b = Buffer.from(plain);
    b.writeUInt16LE(0xaa64, peOff(b) + 4);
    b.writeUInt16LE(11, peOff(b) + 24 + 68);
    const i = parsePe(b, "BOOTAA64.EFI");
    expect(i.machine).toBe("arm64");
    expect(i.findings.map((f) => f.code)).toEqual(["PE_MACHINE_NOT_X64", "PE_NOT_EFI_APPLICATION"]);
    expect(i.findings[0].message).toContain("arm64");
  });
});

describe("Authenticode digest", () => {
  it("matches pesign for signed shim, signed GRUB and an unsigned image", () => {
    expect(authenticodeDigest(shim, "sha256").toString("hex")).toBe(pesignHash(SHIM));
    expect(authenticodeDigest(grub, "sha256").toString("hex")).toBe(pesignHash(GRUB));
    expect(authenticodeDigest(plain, "sha256").toString("hex")).toBe(pesignHash(plainFile));
  });

  it("matches osslsigncode's calculated digest for signed GRUB", () => {
    let out: string;
    try { out = sh("osslsigncode", ["verify", "-in", GRUB]); } catch (e) { out = String((e as { stdout?: string }).stdout ?? ""); }
    const m = /Calculated message digest\s*:\s*([0-9A-F]{64})/i.exec(out);
    expect(m).not.toBeNull();
    expect(authenticodeDigest(grub).toString("hex")).toBe(m![1].toLowerCase());
  });

  it("equals the messageDigest signed inside each image's PKCS#7 SpcIndirectDataContent", () => {
    for (const b of [shim, grub]) {
      const certs = certificateTable(b);
      expect(certs.length).toBeGreaterThan(0);
      for (const c of certs) {
        expect(c.revision).toBe(WIN_CERT_REVISION_2_0);
        expect(c.type).toBe(WIN_CERT_TYPE_PKCS_SIGNED_DATA);
        expect(c.data[0]).toBe(0x30); // DER SEQUENCE (ContentInfo)
      }
      expect(spcDigest(certs[0].data).equals(authenticodeDigest(b))).toBe(true);
    }
  });

  it("changes when a section byte changes but not when CheckSum changes", () => {
    const d = authenticodeDigest(plain).toString("hex");
    const b = Buffer.from(plain);
    b.writeUInt32LE(0xdeadbeef, parsePe(b).checkSumOffset);
    expect(authenticodeDigest(b).toString("hex")).toBe(d);
    b[0x1000] ^= 1;
    expect(authenticodeDigest(b).toString("hex")).not.toBe(d);
  });
});

describe("loader", () => {
  it("relocates signed GRUB at two load addresses: images differ only at relocated DIR64 slots", () => {
    const a = loadPe(grub, 0x10_0000n), b = loadPe(grub, 0x7f00_0000n);
    expect(a.image.length).toBe(a.info.sizeOfImage);
    expect(a.entry).toBe(0x10_0000n + BigInt(a.info.addressOfEntryPoint));
    expect(a.relocated.length).toBeGreaterThan(100);
    const slots = new Set<number>();
    for (const r of a.relocated) for (let k = 0; k < 8; k++) slots.add(r + k);
    let diffs = 0;
    for (let i = 0; i < a.image.length; i++) {
      if (a.image[i] !== b.image[i]) { diffs++; expect(slots.has(i)).toBe(true); }
    }
    expect(diffs).toBeGreaterThan(0);
    for (const r of a.relocated.slice(0, 50)) {
      expect(b.image.readBigUInt64LE(r) - a.image.readBigUInt64LE(r)).toBe(0x7f00_0000n - 0x10_0000n);
    }
    // Sections sit at their RVAs: .text bytes in the image equal the file's raw bytes outside relocated slots.
    const text = a.info.sections[0];
    expect(a.image.subarray(0, 64).equals(grub.subarray(0, 64))).toBe(true);
    expect(a.image[text.virtualAddress + 1]).toBe(grub[text.pointerToRawData + 1]);
  });

  it("loads at ImageBase without changing relocated slots, and adds the delta one page higher", () => {
    const i = parsePe(plain);
    const a = loadPe(plain, i.imageBase), c = loadPe(plain, i.imageBase + 0x1000n);
    expect(a.relocated.length).toBeGreaterThan(100);
    for (const r of a.relocated) expect(a.image.readBigUInt64LE(r)).toBe(plain.readBigUInt64LE(rvaToFile(plain, r)));
    for (const r of a.relocated) expect(c.image.readBigUInt64LE(r) - a.image.readBigUInt64LE(r)).toBe(0x1000n);
    const s = i.sections.find((x) => x.name === ".data")!;
    expect(a.image.subarray(s.virtualAddress, s.virtualAddress + s.sizeOfRawData)
      .equals(plain.subarray(s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData))).toBe(true);
  });
});

describe("hostile images", () => {
  it("refuses a truncated file (30 bytes, and headers cut at 0x100)", () => {
    expect(code(() => parsePe(shim.subarray(0, 30)))).toBe("E_PE_TRUNCATED");
    expect(code(() => parsePe(shim.subarray(0, 0x100)))).toBe("E_PE_TRUNCATED");
  });

  it("refuses a file without the MZ magic", () => {
    const b = Buffer.from(plain); b[0] = 0;
    expect(code(() => parsePe(b))).toBe("E_PE_DOS_MAGIC");
  });

  it("refuses an e_lfanew past the end of the file", () => {
    const b = Buffer.from(plain); b.writeUInt32LE(0xfffffff0, 0x3c);
    expect(code(() => parsePe(b))).toBe("E_PE_LFANEW");
  });

  it("refuses an unknown Machine and a bad optional-header magic", () => {
    const b = Buffer.from(plain); b.writeUInt16LE(0x1234, peOff(b) + 4);
    expect(code(() => parsePe(b))).toBe("E_PE_MACHINE");
    const c = Buffer.from(plain); c.writeUInt16LE(0x107, peOff(c) + 24);
    expect(code(() => parsePe(c))).toBe("E_PE_OPT_MAGIC");
  });

  it("refuses NumberOfSections 65535", () => {
    const b = Buffer.from(plain); b.writeUInt16LE(65535, peOff(b) + 6);
    expect(code(() => parsePe(b))).toBe("E_PE_SECTION_COUNT");
  });

  it("refuses NumberOfRvaAndSizes 2^32-1", () => {
    const b = Buffer.from(plain); b.writeUInt32LE(0xffffffff, peOff(b) + 24 + 108);
    expect(code(() => parsePe(b))).toBe("E_PE_DIR_COUNT");
  });

  it("refuses SizeOfImage 4 GiB-1 and a non-power-of-two SectionAlignment", () => {
    const b = Buffer.from(plain); b.writeUInt32LE(0xffffffff, peOff(b) + 24 + 56);
    expect(code(() => parsePe(b))).toBe("E_PE_SIZE_OF_IMAGE");
    const c = Buffer.from(plain); c.writeUInt32LE(0x1800, peOff(c) + 24 + 32);
    expect(code(() => parsePe(c))).toBe("E_PE_ALIGNMENT");
  });

  it("refuses section raw data past the end of the file", () => {
    const b = Buffer.from(plain);
    const sec = peOff(b) + 24 + b.readUInt16LE(peOff(b) + 20);
    b.writeUInt32LE(b.length - 0x100, sec + 40 + 20); // second section's PointerToRawData
    expect(code(() => parsePe(b))).toBe("E_PE_SECTION_RAW");
  });

  it("refuses sections whose virtual ranges overlap or leave SizeOfImage", () => {
    const b = Buffer.from(plain);
    const sec = peOff(b) + 24 + b.readUInt16LE(peOff(b) + 20);
    b.writeUInt32LE(0x2000, sec + 40 + 12); // .data moved into .text
    expect(code(() => parsePe(b))).toBe("E_PE_SECTION_OVERLAP");
    const c = Buffer.from(plain);
    c.writeUInt32LE(0x7fff0000, sec + 40 + 12);
    expect(code(() => parsePe(c))).toBe("E_PE_SECTION_VIRTUAL");
  });

  it("refuses a relocation block of size 0 without looping", () => {
    const b = Buffer.from(plain);
    const dir = parsePe(b).dataDirectories[IMAGE_DIRECTORY_ENTRY_BASERELOC];
    b.writeUInt32LE(0, rvaToFile(b, dir.rva) + 4);
    expect(code(() => loadPe(b, 0x100000n))).toBe("E_PE_RELOC_BLOCK");
  });

  it("refuses a relocation block whose size runs past the directory", () => {
    const b = Buffer.from(plain);
    const dir = parsePe(b).dataDirectories[IMAGE_DIRECTORY_ENTRY_BASERELOC];
    b.writeUInt32LE(0x7ffffff0, rvaToFile(b, dir.rva) + 4);
    expect(code(() => loadPe(b, 0x100000n))).toBe("E_PE_RELOC_BLOCK");
  });

  it("refuses a relocation whose page lies past the image", () => {
    const b = Buffer.from(plain);
    const dir = parsePe(b).dataDirectories[IMAGE_DIRECTORY_ENTRY_BASERELOC];
    b.writeUInt32LE(0xfffff000, rvaToFile(b, dir.rva));
    expect(code(() => loadPe(b, 0x100000n))).toBe("E_PE_RELOC_TARGET");
  });

  it("refuses a relocation directory that runs past SizeOfImage", () => {
    const b = Buffer.from(plain);
    b.writeUInt32LE(0x7fffffff, peOff(b) + 24 + 112 + 5 * 8 + 4);
    expect(code(() => parsePe(b))).toBe("E_PE_DIRECTORY");
  });

  it("refuses a security directory pointing past the end of the file", () => {
    const b = Buffer.from(grub);
    b.writeUInt32LE(b.length, peOff(b) + 24 + 144);
    expect(code(() => parsePe(b))).toBe("E_PE_CERT_TABLE");
    expect(code(() => authenticodeDigest(b))).toBe("E_PE_CERT_TABLE");
  });

  it("refuses a WIN_CERTIFICATE with dwLength 0 or a bad revision", () => {
    const off = parsePe(grub).security.offset;
    const b = Buffer.from(grub); b.writeUInt32LE(0, off);
    expect(code(() => certificateTable(b))).toBe("E_PE_CERT_ENTRY");
    const c = Buffer.from(grub); c.writeUInt16LE(0x0300, off + 4);
    expect(code(() => certificateTable(c))).toBe("E_PE_CERT_ENTRY");
  });
});
