// PE/COFF image reader, UEFI loader (layout + base relocations) and Authenticode digest (Microsoft "PE Format"
// spec: 2 MS-DOS stub, 3 section table, 4 COFF header, 3.4 optional header, 5.6 .reloc, 5.7 certificate table;
// Microsoft "Windows Authenticode Portable Executable Signature Format" 1.0, "Calculating the PE Image Hash").
import { createHash } from "node:crypto";
import { corrupt, truncated, unsupported, overLimit, hex } from "../images/errors.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { MAX_PE_SECTIONS, MAX_PE_IMAGE_BYTES, MAX_PE_DATA_DIRECTORIES, MAX_PE_CERTIFICATES, MAX_SBAT_BYTES } from "../images/limits.ts";
export { MAX_PE_SECTIONS, MAX_PE_IMAGE_BYTES, MAX_PE_DATA_DIRECTORIES, MAX_PE_CERTIFICATES, MAX_SBAT_BYTES } from "../images/limits.ts";

defineFindings([
  { code: "PE_MACHINE_NOT_X64", severity: "error", stage: "firmware", title: "UEFI image is not built for x64",
    message: "{file} is a {machine} image (Machine {machineHex}); Hyper-V Gen2 firmware runs only x64 (AMD64) images",
    remedy: "Install the x64 loader, e.g. 'apt-get install shim-signed grub-efi-amd64-signed' then 'grub-install --target=x86_64-efi --removable'",
    explain: "Hyper-V Generation 2 firmware (mu_msvm) is built for x64 and refuses to start UEFI images for IA32 or ARM64 with EFI_UNSUPPORTED. The boot manager treats such a file as if no loader were present." },
  { code: "PE_NOT_EFI_APPLICATION", severity: "warning", stage: "firmware", title: "UEFI image is not an EFI application",
    message: "{file} has Subsystem {subsystem} ({subsystemName}); the boot manager starts only EFI applications (10)",
    remedy: "Point the boot entry at a loader such as \\EFI\\BOOT\\BOOTX64.EFI; reinstall it with 'grub-install --target=x86_64-efi --removable'",
    explain: "Boot#### entries and the removable-media path must name an EFI application (Subsystem 10). Boot service and runtime drivers (11, 12) are loaded from Driver#### entries instead." },
]);

/** COFF Machine values ("PE Format" 3.3.1). */
export const IMAGE_FILE_MACHINE_I386 = 0x014c;
export const IMAGE_FILE_MACHINE_AMD64 = 0x8664;
export const IMAGE_FILE_MACHINE_ARM64 = 0xaa64;
const MACHINES: Record<number, PeMachine> = {
  [IMAGE_FILE_MACHINE_I386]: "i386", [IMAGE_FILE_MACHINE_AMD64]: "x64", [IMAGE_FILE_MACHINE_ARM64]: "arm64",
};
export type PeMachine = "i386" | "x64" | "arm64";

/** Optional-header magic ("PE Format" 3.4.1). */
const PE32_MAGIC = 0x10b;
const PE32PLUS_MAGIC = 0x20b;
/** Windows subsystems used by UEFI ("PE Format" 3.4.2). */
export const IMAGE_SUBSYSTEM_EFI_APPLICATION = 10;
export const IMAGE_SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER = 11;
export const IMAGE_SUBSYSTEM_EFI_RUNTIME_DRIVER = 12;
export const IMAGE_SUBSYSTEM_EFI_ROM = 13;
const SUBSYSTEM_NAMES: Record<number, string> = {
  10: "EFI application", 11: "EFI boot service driver", 12: "EFI runtime driver", 13: "EFI ROM",
};
/** COFF Characteristics: IMAGE_FILE_RELOCS_STRIPPED ("PE Format" 3.3.2). */
const IMAGE_FILE_RELOCS_STRIPPED = 0x0001;
/** Data directory indexes ("PE Format" 3.4.3). */
export const IMAGE_DIRECTORY_ENTRY_SECURITY = 4;
export const IMAGE_DIRECTORY_ENTRY_BASERELOC = 5;
/** Base relocation types ("PE Format" 5.6.2). */
const IMAGE_REL_BASED_ABSOLUTE = 0;
const IMAGE_REL_BASED_HIGHLOW = 3;
const IMAGE_REL_BASED_DIR64 = 10;
/** WIN_CERTIFICATE revisions and types ("PE Format" 5.7; UEFI 2.10 32.2.4 adds the EFI types). */
export const WIN_CERT_REVISION_1_0 = 0x0100;
export const WIN_CERT_REVISION_2_0 = 0x0200;
export const WIN_CERT_TYPE_X509 = 0x0001;
export const WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002;
export const WIN_CERT_TYPE_EFI_PKCS115 = 0x0ef0;
export const WIN_CERT_TYPE_EFI_GUID = 0x0ef1;

export interface DataDirectory { index: number; rva: number; size: number }

export interface PeSection {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  sizeOfRawData: number;
  pointerToRawData: number;
  characteristics: number;
}

export interface PeInfo {
  machine: PeMachine;
  machineValue: number;
  /** "pe32" (magic 0x10b) or "pe32+" (0x20b). */
  format: "pe32" | "pe32+";
  characteristics: number;
  subsystem: number;
  imageBase: bigint;
  sizeOfImage: number;
  sizeOfHeaders: number;
  addressOfEntryPoint: number;
  sectionAlignment: number;
  fileAlignment: number;
  checkSum: number;
  /** File offsets of the CheckSum field and of the security data-directory entry (skipped by Authenticode). */
  checkSumOffset: number;
  securityEntryOffset: number;
  dataDirectories: DataDirectory[];
  /** The attribute certificate table: a FILE offset and size (zero when unsigned). */
  security: { offset: number; size: number };
  sections: PeSection[];
  /** Lines of the .sbat section (CSV records), or undefined when the image has none. */
  sbat?: string[];
  findings: Finding[];
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

function need(b: Uint8Array, off: number, len: number, what: string): void {
  if (off + len > b.length) {
    throw truncated("E_PE_TRUNCATED", `PE ${what} at offset ${hex(off)} (${len} bytes) runs past the end of the ${b.length}-byte file`);
  }
}

/** Parse and validate the headers, directories and section table of a PE/COFF image. */
export function parsePe(bytes: Uint8Array, file = "image"): PeInfo {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  need(b, 0, 64, "DOS header");
  if (b.readUInt16LE(0) !== 0x5a4d) throw corrupt("E_PE_DOS_MAGIC", `DOS header magic is ${hex(b.readUInt16LE(0), 4)}, expected 0x5a4d ("MZ")`);
  const pe = b.readUInt32LE(0x3c);
  if (pe < 64 || pe >= b.length) throw corrupt("E_PE_LFANEW", `e_lfanew ${hex(pe)} does not point past the DOS header inside the ${b.length}-byte file`);
  need(b, pe, 24, "PE signature and COFF header");
  if (b.readUInt32LE(pe) !== 0x00004550) throw corrupt("E_PE_SIGNATURE", `PE signature at ${hex(pe)} is ${hex(b.readUInt32LE(pe))}, expected 0x00004550 ("PE\\0\\0")`);
  const coff = pe + 4;
  const machineValue = b.readUInt16LE(coff);
  const machine = MACHINES[machineValue];
  if (!machine) throw unsupported("E_PE_MACHINE", `COFF Machine ${hex(machineValue, 4)} is not AMD64, I386 or ARM64`);
  const nsec = b.readUInt16LE(coff + 2);
  const optSize = b.readUInt16LE(coff + 16);
  const characteristics = b.readUInt16LE(coff + 18);
  if (nsec > MAX_PE_SECTIONS) throw overLimit("E_PE_SECTION_COUNT", `NumberOfSections ${nsec} exceeds the limit of ${MAX_PE_SECTIONS}`);
  const opt = coff + 20;
  need(b, opt, 2, "optional header");
  const magic = b.readUInt16LE(opt);
  if (magic !== PE32_MAGIC && magic !== PE32PLUS_MAGIC) throw corrupt("E_PE_OPT_MAGIC", `optional header magic ${hex(magic, 4)}, expected 0x010b (PE32) or 0x020b (PE32+)`);
  const plus = magic === PE32PLUS_MAGIC;
  const dirBase = plus ? 112 : 96;
  if (optSize < dirBase) throw corrupt("E_PE_OPT_SIZE", `SizeOfOptionalHeader ${optSize} is smaller than the ${dirBase}-byte ${plus ? "PE32+" : "PE32"} fixed part`);
  need(b, opt, optSize, "optional header");
  const o = (n: number) => b.readUInt32LE(opt + n);
  const addressOfEntryPoint = o(16);
  const imageBase = plus ? b.readBigUInt64LE(opt + 24) : BigInt(o(28));
  const sectionAlignment = o(32), fileAlignment = o(36);
  const sizeOfImage = o(56), sizeOfHeaders = o(60), checkSum = o(64);
  const subsystem = b.readUInt16LE(opt + 68);
  const ndirs = o(dirBase - 4);
  if (!isPow2(sectionAlignment) || !isPow2(fileAlignment) || fileAlignment > 0x10000 || sectionAlignment < fileAlignment) {
    throw corrupt("E_PE_ALIGNMENT", `SectionAlignment ${hex(sectionAlignment)} / FileAlignment ${hex(fileAlignment)} are not powers of two with FileAlignment <= SectionAlignment and <= 0x10000`);
  }
  if (!(subsystem in SUBSYSTEM_NAMES)) throw unsupported("E_PE_SUBSYSTEM", `Subsystem ${subsystem} is not a UEFI subsystem (10 application, 11 boot service driver, 12 runtime driver, 13 ROM)`);
  if (sizeOfImage === 0 || sizeOfImage > MAX_PE_IMAGE_BYTES) throw overLimit("E_PE_SIZE_OF_IMAGE", `SizeOfImage ${hex(sizeOfImage)} is zero or exceeds the limit of ${hex(MAX_PE_IMAGE_BYTES)}`);
  if (ndirs > MAX_PE_DATA_DIRECTORIES) throw corrupt("E_PE_DIR_COUNT", `NumberOfRvaAndSizes ${ndirs} exceeds the ${MAX_PE_DATA_DIRECTORIES} the spec defines`);
  if (dirBase + ndirs * 8 > optSize) throw corrupt("E_PE_DIR_COUNT", `NumberOfRvaAndSizes ${ndirs} does not fit SizeOfOptionalHeader ${optSize}`);
  const secTable = opt + optSize;
  need(b, secTable, nsec * 40, "section table");
  if (sizeOfHeaders < secTable + nsec * 40 || sizeOfHeaders > b.length || sizeOfHeaders > sizeOfImage) {
    throw corrupt("E_PE_SIZE_OF_HEADERS", `SizeOfHeaders ${hex(sizeOfHeaders)} must cover the section table (ends ${hex(secTable + nsec * 40)}) and lie within the file (${hex(b.length)}) and SizeOfImage (${hex(sizeOfImage)})`);
  }
  if (addressOfEntryPoint >= sizeOfImage) throw corrupt("E_PE_ENTRY", `AddressOfEntryPoint ${hex(addressOfEntryPoint)} is outside SizeOfImage ${hex(sizeOfImage)}`);

  const dataDirectories: DataDirectory[] = [];
  for (let i = 0; i < ndirs; i++) {
    const rva = o(dirBase + i * 8), size = o(dirBase + i * 8 + 4);
    dataDirectories.push({ index: i, rva, size });
    if (i === IMAGE_DIRECTORY_ENTRY_SECURITY || size === 0) continue;
    if (rva + size > sizeOfImage) throw corrupt("E_PE_DIRECTORY", `data directory ${i} (RVA ${hex(rva)}, size ${hex(size)}) runs past SizeOfImage ${hex(sizeOfImage)}`);
  }
  const secDir = dataDirectories[IMAGE_DIRECTORY_ENTRY_SECURITY];
  const security = secDir && secDir.size ? { offset: secDir.rva, size: secDir.size } : { offset: 0, size: 0 };
  if (security.size && (security.offset < sizeOfHeaders || security.offset + security.size > b.length)) {
    throw corrupt("E_PE_CERT_TABLE", `security directory (file offset ${hex(security.offset)}, size ${hex(security.size)}) is not inside the ${hex(b.length)}-byte file after the headers`);
  }

  const sections: PeSection[] = [];
  for (let i = 0; i < nsec; i++) {
    const s = secTable + i * 40;
    const raw = b.subarray(s, s + 8);
    const nul = raw.indexOf(0);
    const sec: PeSection = {
      name: raw.subarray(0, nul < 0 ? 8 : nul).toString("latin1"),
      virtualSize: b.readUInt32LE(s + 8), virtualAddress: b.readUInt32LE(s + 12),
      sizeOfRawData: b.readUInt32LE(s + 16), pointerToRawData: b.readUInt32LE(s + 20),
      characteristics: b.readUInt32LE(s + 36),
    };
    if (sec.sizeOfRawData && sec.pointerToRawData + sec.sizeOfRawData > b.length) {
      throw truncated("E_PE_SECTION_RAW", `section ${i} "${sec.name}" raw data ${hex(sec.pointerToRawData)}+${hex(sec.sizeOfRawData)} runs past the end of the ${hex(b.length)}-byte file`);
    }
    const vsize = sec.virtualSize || sec.sizeOfRawData;
    if (sec.virtualAddress < sizeOfHeaders || sec.virtualAddress + vsize > sizeOfImage) {
      throw corrupt("E_PE_SECTION_VIRTUAL", `section ${i} "${sec.name}" virtual range ${hex(sec.virtualAddress)}+${hex(vsize)} is not between SizeOfHeaders ${hex(sizeOfHeaders)} and SizeOfImage ${hex(sizeOfImage)}`);
    }
    sections.push(sec);
  }
  const byVa = [...sections].sort((x, y) => x.virtualAddress - y.virtualAddress);
  for (let i = 1; i < byVa.length; i++) {
    const p = byVa[i - 1], c = byVa[i];
    if (p.virtualAddress + (p.virtualSize || p.sizeOfRawData) > c.virtualAddress) {
      throw corrupt("E_PE_SECTION_OVERLAP", `sections "${p.name}" (${hex(p.virtualAddress)}+${hex(p.virtualSize || p.sizeOfRawData)}) and "${c.name}" (${hex(c.virtualAddress)}) overlap in memory`);
    }
  }

  const info: PeInfo = {
    machine, machineValue, format: plus ? "pe32+" : "pe32", characteristics, subsystem, imageBase,
    sizeOfImage, sizeOfHeaders, addressOfEntryPoint, sectionAlignment, fileAlignment, checkSum,
    checkSumOffset: opt + 64, securityEntryOffset: opt + dirBase + IMAGE_DIRECTORY_ENTRY_SECURITY * 8,
    dataDirectories, security, sections, findings: [],
  };
  const sbat = sections.find((s) => s.name === ".sbat");
  if (sbat) info.sbat = sbatLines(b, sbat);
  if (machine !== "x64") info.findings.push(finding("PE_MACHINE_NOT_X64", { file, machine, machineHex: hex(machineValue, 4) }));
  if (subsystem !== IMAGE_SUBSYSTEM_EFI_APPLICATION) info.findings.push(finding("PE_NOT_EFI_APPLICATION", { file, subsystem, subsystemName: SUBSYSTEM_NAMES[subsystem] }));
  return info;
}

/** The .sbat section's CSV records (shim SBAT.md: "component,generation,vendor,package,version,url" lines). */
function sbatLines(b: Buffer, s: PeSection): string[] {
  const len = Math.min(s.sizeOfRawData, s.virtualSize || s.sizeOfRawData);
  if (len > MAX_SBAT_BYTES) throw overLimit("E_PE_SBAT", `.sbat section is ${len} bytes, over the limit of ${MAX_SBAT_BYTES}`);
  let text = b.subarray(s.pointerToRawData, s.pointerToRawData + len).toString("latin1");
  const nul = text.indexOf("\0");
  if (nul >= 0) text = text.slice(0, nul);
  return text.split(/\r?\n/).filter((l) => l.length > 0);
}

export interface LoadedPe {
  info: PeInfo;
  /** The image as laid out in memory at `loadAddress`, SizeOfImage bytes. */
  image: Buffer;
  entry: bigint;
  /** RVAs of the slots the base relocations patched (ABSOLUTE padding excluded). */
  relocated: number[];
}

/** Lay out headers and sections in a SizeOfImage buffer and apply base relocations for `loadAddress`. */
export function loadPe(bytes: Uint8Array, loadAddress: bigint, file = "image"): LoadedPe {
  const info = parsePe(bytes, file);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const image = Buffer.alloc(info.sizeOfImage);
  b.copy(image, 0, 0, info.sizeOfHeaders);
  for (const s of info.sections) {
    const n = Math.min(s.sizeOfRawData, s.virtualSize || s.sizeOfRawData);
    b.copy(image, s.virtualAddress, s.pointerToRawData, s.pointerToRawData + n);
  }
  const delta = BigInt.asUintN(64, loadAddress - info.imageBase);
  const relocated = applyRelocations(info, image, delta);
  return { info, image, entry: loadAddress + BigInt(info.addressOfEntryPoint), relocated };
}

/** Walk the base relocation blocks ("PE Format" 5.6) and add `delta` at every slot. */
function applyRelocations(info: PeInfo, image: Buffer, delta: bigint): number[] {
  const dir = info.dataDirectories[IMAGE_DIRECTORY_ENTRY_BASERELOC];
  const slots: number[] = [];
  if (!dir || dir.size === 0) {
    if (delta !== 0n && info.characteristics & IMAGE_FILE_RELOCS_STRIPPED) {
      throw unsupported("E_PE_RELOCS_STRIPPED", `image has no relocations (IMAGE_FILE_RELOCS_STRIPPED) and cannot move from ImageBase ${hex(info.imageBase, 16)}`);
    }
    return slots;
  }
  const end = dir.rva + dir.size;
  let p = dir.rva;
  // Each block is at least 8 bytes and the walk never leaves the directory, so it ends within size/8 blocks.
  while (p + 8 <= end) {
    const page = image.readUInt32LE(p), blockSize = image.readUInt32LE(p + 4);
    if (blockSize < 8 || blockSize % 2 !== 0 || p + blockSize > end) {
      throw corrupt("E_PE_RELOC_BLOCK", `relocation block at RVA ${hex(p)} (page ${hex(page)}) has size ${blockSize}, outside 8..${end - p} or odd`);
    }
    for (let q = p + 8; q < p + blockSize; q += 2) {
      const e = image.readUInt16LE(q), type = e >> 12, target = page + (e & 0xfff);
      if (type === IMAGE_REL_BASED_ABSOLUTE) continue;
      const width = type === IMAGE_REL_BASED_DIR64 ? 8 : type === IMAGE_REL_BASED_HIGHLOW ? 4 : 0;
      if (!width) throw unsupported("E_PE_RELOC_TYPE", `relocation type ${type} at RVA ${hex(target)} (block ${hex(p)}) is not ABSOLUTE, HIGHLOW or DIR64`);
      if (target + width > image.length) throw corrupt("E_PE_RELOC_TARGET", `relocation at RVA ${hex(target)} (${width} bytes, block ${hex(p)}) is outside SizeOfImage ${hex(image.length)}`);
      if (width === 8) image.writeBigUInt64LE(BigInt.asUintN(64, image.readBigUInt64LE(target) + delta), target);
      else image.writeUInt32LE(Number(BigInt.asUintN(32, BigInt(image.readUInt32LE(target)) + delta)), target);
      slots.push(target);
    }
    p += blockSize;
  }
  if (p !== end && image.subarray(p, end).some((x) => x !== 0)) {
    throw corrupt("E_PE_RELOC_BLOCK", `relocation directory ends with ${end - p} bytes that are not a whole block at RVA ${hex(p)}`);
  }
  return slots;
}

/**
 * The Authenticode PE image hash: headers without CheckSum and the security directory entry, sections in
 * file order (by PointerToRawData), then the data after them up to the attribute certificate table.
 */
export function authenticodeDigest(bytes: Uint8Array, algorithm: "sha256" | "sha1" | "sha384" | "sha512" = "sha256"): Buffer {
  const info = parsePe(bytes);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = createHash(algorithm);
  h.update(b.subarray(0, info.checkSumOffset));
  if (info.dataDirectories.length > IMAGE_DIRECTORY_ENTRY_SECURITY) {
    h.update(b.subarray(info.checkSumOffset + 4, info.securityEntryOffset));
    h.update(b.subarray(info.securityEntryOffset + 8, info.sizeOfHeaders));
  } else {
    h.update(b.subarray(info.checkSumOffset + 4, info.sizeOfHeaders));
  }
  let hashed = info.sizeOfHeaders;
  const inFile = info.sections.filter((s) => s.sizeOfRawData > 0).sort((x, y) => x.pointerToRawData - y.pointerToRawData);
  for (const s of inFile) {
    h.update(b.subarray(s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData));
    hashed += s.sizeOfRawData;
  }
  const certSize = info.security.size;
  if (certSize && info.security.offset < hashed) {
    throw corrupt("E_PE_CERT_TABLE", `certificate table at ${hex(info.security.offset)} overlaps the ${hex(hashed)} bytes of headers and sections`);
  }
  // Spec step 14: FILE_SIZE - (CertificateTable.Size + SUM_OF_BYTES_HASHED) more bytes, starting at SUM_OF_BYTES_HASHED.
  const tail = b.length - certSize - hashed;
  if (tail > 0) h.update(b.subarray(hashed, hashed + tail));
  return h.digest();
}

export interface WinCertificate {
  /** File offset of the WIN_CERTIFICATE header. */
  offset: number;
  length: number;
  revision: number;
  type: number;
  /** bCertificate: the PKCS#7 SignedData for WIN_CERT_TYPE_PKCS_SIGNED_DATA. */
  data: Buffer;
}

/** The WIN_CERTIFICATE entries of the attribute certificate table ("PE Format" 5.7), each 8-byte aligned. */
export function certificateTable(bytes: Uint8Array): WinCertificate[] {
  const info = parsePe(bytes);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: WinCertificate[] = [];
  const end = info.security.offset + info.security.size;
  let p = info.security.offset;
  while (info.security.size && p + 8 <= end) {
    if (out.length >= MAX_PE_CERTIFICATES) throw overLimit("E_PE_CERT_COUNT", `certificate table holds more than ${MAX_PE_CERTIFICATES} entries`);
    const length = b.readUInt32LE(p), revision = b.readUInt16LE(p + 4), type = b.readUInt16LE(p + 6);
    if (length < 8 || p + length > end) {
      throw corrupt("E_PE_CERT_ENTRY", `WIN_CERTIFICATE at ${hex(p)} has dwLength ${length}, outside 8..${end - p}`);
    }
    if (revision !== WIN_CERT_REVISION_1_0 && revision !== WIN_CERT_REVISION_2_0) {
      throw corrupt("E_PE_CERT_ENTRY", `WIN_CERTIFICATE at ${hex(p)} has wRevision ${hex(revision, 4)}, expected 0x0100 or 0x0200`);
    }
    out.push({ offset: p, length, revision, type, data: b.subarray(p + 8, p + length) });
    p += (length + 7) & ~7;
  }
  return out;
}
