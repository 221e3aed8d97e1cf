// Secure Boot keys (PK, KEK, db, dbx) read from an EDK2 varstore: PI 1.8 vol 3 3.2.1 EFI_FIRMWARE_VOLUME_HEADER,
// EDK2 MdeModulePkg/Include/Guid/VariableFormat.h (VARIABLE_STORE_HEADER, [AUTHENTICATED_]VARIABLE_HEADER) and
// UEFI 2.10 32.4.1 EFI_SIGNATURE_LIST / EFI_SIGNATURE_DATA.
//
// Provenance. bootgate ships no certificate bytes. The Microsoft Secure Boot certificates are public, and Debian's
// `ovmf` package (bookworm 2022.11-6+deb12u2, `apt-get install ovmf`) enrols them at build time in its
// /usr/share/OVMF/OVMF_VARS_4M.ms.fd and OVMF_VARS.ms.fd varstores (with Debian's own PK). We read that file, so the
// keys are reproducible from a signed distribution package. Present in the bookworm varstore (subject CN, owner):
//   PK : "Debian UEFI Secure Boot (PK/KEK key)" (Debian's; a Hyper-V VM's PK is a Microsoft-held key instead)
//   KEK: "Debian UEFI Secure Boot (PK/KEK key)", "Microsoft Corporation KEK CA 2011" (owner 77fa9abd-...)
//   db : "Microsoft Windows Production PCA 2011", "Microsoft Corporation UEFI CA 2011" (owner 77fa9abd-...)
//   dbx: one SHA-256 entry, e3b0c442...b855 = SHA-256 of zero bytes (a placeholder; no real revocation)
// Missing compared with the real Hyper-V templates as ../shared/HYPERV.md lists them: "Windows UEFI CA 2023"
// (MicrosoftWindows db), "Microsoft UEFI CA 2023" and the Azure Linux kmod PCA (MicrosoftUEFICertificateAuthority
// db), "Microsoft Corporation KEK 2K CA 2023" (KEK), Microsoft's PK, and the several hundred SHA-256 dbx hashes of
// revoked shims, GRUBs and boot managers. secureboot.ts takes a 2023 certificate whenever a varstore holds one, so a
// newer ovmf package upgrades the templates without code changes.
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { ImageError, corrupt, truncated, unsupported, overLimit, hex } from "../images/errors.ts";
import { guidFromBytes as guidAt, guidToBytes as guidBytes } from "./uefi-guid.ts";
import { SB_MAX_VARSTORE_BYTES, SB_MAX_VARSTORE_VARIABLES, SB_MAX_VARIABLE_NAME_BYTES, SB_MAX_SIGNATURE_ENTRIES, SB_MAX_SIGNATURE_LISTS } from "../images/limits.ts";

/** Where Debian's `ovmf` package puts the varstores with Microsoft's keys enrolled (4 MiB layout first). */
export const OVMF_MS_VARSTORES = ["/usr/share/OVMF/OVMF_VARS_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS.ms.fd"];

/** Bounds: OVMF varstores are 128 KiB / 528 KiB; a full Microsoft dbx is ~430 hashes in ~15 KiB. */
export const MAX_VARSTORE_BYTES = SB_MAX_VARSTORE_BYTES;
export const MAX_VARSTORE_VARIABLES = SB_MAX_VARSTORE_VARIABLES;
export const MAX_VARIABLE_NAME_BYTES = SB_MAX_VARIABLE_NAME_BYTES;
export const MAX_SIGNATURE_ENTRIES = SB_MAX_SIGNATURE_ENTRIES;
export const MAX_SIGNATURE_LISTS = SB_MAX_SIGNATURE_LISTS;

/** GUIDs in their registry (text) form. */
export const EFI_SYSTEM_NV_DATA_FV_GUID = "fff12b8d-7696-4c8b-a985-2747075b4f50";      // MdeModulePkg SystemNvDataGuid.h
export const EFI_VARIABLE_GUID = "ddcf3616-3275-4164-98b6-fe85707ffe7d";               // VariableFormat.h
export const EFI_AUTHENTICATED_VARIABLE_GUID = "aaf32c78-947b-439a-a180-2e144ec37792"; // VariableFormat.h
export const EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c";             // UEFI 2.10 3.3 (PK, KEK)
export const EFI_IMAGE_SECURITY_DATABASE_GUID = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"; // UEFI 2.10 32.6.1 (db, dbx)
/** EFI_SIGNATURE_LIST SignatureType values (UEFI 2.10 32.4.1). */
export const EFI_CERT_SHA256_GUID = "c1c41626-504c-4092-aca9-41f936934328";
export const EFI_CERT_SHA1_GUID = "826ca512-cf10-4ac9-b187-be01496631bd";
export const EFI_CERT_SHA384_GUID = "ff3e5307-9fd0-48c9-85f1-8ad56c701e01";
export const EFI_CERT_SHA512_GUID = "093e0fae-a6c4-4f50-9f1b-d41e2b89c19a";
export const EFI_CERT_X509_GUID = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
export const EFI_CERT_X509_SHA256_GUID = "3bd2a492-96c0-4079-b420-fcf98ef103ed";
export const EFI_CERT_X509_SHA384_GUID = "7076876e-80c2-4ee6-aad2-28b349a6865b";
export const EFI_CERT_X509_SHA512_GUID = "446dbf63-2502-4cda-bcfa-2465d2b0fe9d";
/** Microsoft's SignatureOwner for its own entries (the owner the Hyper-V templates use). */
export const MICROSOFT_OWNER_GUID = "77fa9abd-0359-4d32-bd60-28f4e78f784b";

/** PI 1.8 vol 3 3.2.1: "_FVH"; VariableFormat.h: VARIABLE_STORE_FORMATTED / _HEALTHY, VARIABLE_DATA, states. */
const EFI_FVH_SIGNATURE = 0x4856465f;
const VARIABLE_STORE_FORMATTED = 0x5a;
const VARIABLE_STORE_HEALTHY = 0xfe;
const VARIABLE_DATA = 0x55aa;
const VAR_ADDED = 0x3f;
const VAR_IN_DELETED_TRANSITION = 0xfe;
const VARIABLE_STORE_HEADER_SIZE = 28;
const AUTH_VARIABLE_HEADER_SIZE = 60; // StartId..VendorGuid with MonotonicCount, TimeStamp, PubKeyIndex
const VARIABLE_HEADER_SIZE = 32;
const SIGNATURE_LIST_HEADER_SIZE = 28; // SignatureType(16) + ListSize + HeaderSize + SignatureSize
const SIGNATURE_OWNER_SIZE = 16;

/** Hash algorithms a hash-type signature list may name, with their digest sizes. */
export type HashAlg = "sha1" | "sha256" | "sha384" | "sha512";
const HASH_TYPES: Record<string, { alg: HashAlg; size: number }> = {
  [EFI_CERT_SHA1_GUID]: { alg: "sha1", size: 20 }, [EFI_CERT_SHA256_GUID]: { alg: "sha256", size: 32 },
  [EFI_CERT_SHA384_GUID]: { alg: "sha384", size: 48 }, [EFI_CERT_SHA512_GUID]: { alg: "sha512", size: 64 },
};
/** EFI_CERT_X509_SHAxxx: a TBSCertificate hash followed by a 16-byte EFI_TIME TimeOfRevocation. */
const TBS_TYPES: Record<string, { alg: HashAlg; size: number }> = {
  [EFI_CERT_X509_SHA256_GUID]: { alg: "sha256", size: 32 }, [EFI_CERT_X509_SHA384_GUID]: { alg: "sha384", size: 48 },
  [EFI_CERT_X509_SHA512_GUID]: { alg: "sha512", size: 64 },
};

/** One X.509 certificate from a signature list (or from a PKCS#7 blob), with the names used for chaining. */
export interface X509Cert {
  der: Buffer;
  /** Subject common name (the full DN when it has no CN). */
  subject: string;
  issuer: string;
  /** Serial number in hex. */
  serial: string;
  subjectDer: Buffer;
  issuerDer: Buffer;
  /** DER of the TBSCertificate (what its issuer signed, and what dbx EFI_CERT_X509_SHA* entries hash). */
  tbs: Buffer;
  sigAlgOid: string;
  signature: Buffer;
  /** DER SubjectPublicKeyInfo. */
  spki: Buffer;
  /** subjectKeyIdentifier extension value, when present. */
  ski?: Buffer;
}

/** One EFI_SIGNATURE_DATA entry, classified by its list's SignatureType. */
export type SignatureEntry =
  | { kind: "x509"; owner: string; cert: X509Cert }
  | { kind: "hash"; owner: string; alg: HashAlg; hash: Buffer }
  | { kind: "x509-hash"; owner: string; alg: HashAlg; tbsHash: Buffer; revocationTime: Buffer }
  | { kind: "other"; owner: string; type: string; data: Buffer };

export interface Variable { name: string; guid: string; attributes: number; data: Buffer }

export interface SecureBootKeys {
  /** The varstore file the keys came from. */
  source: string;
  PK: SignatureEntry[];
  KEK: SignatureEntry[];
  db: SignatureEntry[];
  dbx: SignatureEntry[];
}

/** EFI_GUID text at `off` and back (uefi-guid.ts), under the names this module and secureboot.ts use. */
export { guidAt, guidBytes };

function need(b: Uint8Array, off: number, len: number, what: string): void {
  if (off + len > b.length) throw truncated("E_VARSTORE_TRUNCATED", `${what} at ${hex(off)} (${len} bytes) runs past the end of the ${b.length}-byte varstore`);
}

/**
 * The live variables of an EDK2 non-volatile variable firmware volume, in store order. A variable whose State is
 * VAR_ADDED wins; one caught in VAR_IN_DELETED_TRANSITION counts only when no VAR_ADDED copy follows (EDK2 Variable.c).
 */
export function parseVarstore(bytes: Uint8Array): Variable[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length > MAX_VARSTORE_BYTES) throw overLimit("E_VARSTORE_SIZE", `varstore is ${b.length} bytes, over the limit of ${MAX_VARSTORE_BYTES}`);
  need(b, 0, 64, "firmware volume header");
  if (b.readUInt32LE(40) !== EFI_FVH_SIGNATURE) {
    throw corrupt("E_VARSTORE_FV_SIGNATURE", `firmware volume signature is ${hex(b.readUInt32LE(40))}, expected ${hex(EFI_FVH_SIGNATURE)} ("_FVH")`);
  }
  const fsGuid = guidAt(b, 16);
  if (fsGuid !== EFI_SYSTEM_NV_DATA_FV_GUID) throw unsupported("E_VARSTORE_FV_GUID", `firmware volume FileSystemGuid ${fsGuid} is not the NV variable volume ${EFI_SYSTEM_NV_DATA_FV_GUID}`);
  const fvLength = b.readBigUInt64LE(32), headerLength = b.readUInt16LE(48);
  if (fvLength > BigInt(b.length)) throw truncated("E_VARSTORE_TRUNCATED", `FvLength ${hex(fvLength, 16)} exceeds the ${hex(b.length)}-byte file`);
  if (headerLength < 64 || headerLength % 8 !== 0 || headerLength > Number(fvLength)) {
    throw corrupt("E_VARSTORE_FV_HEADER", `firmware volume HeaderLength ${headerLength} is not a multiple of 8 between 64 and FvLength ${fvLength}`);
  }
  let sum = 0;
  for (let i = 0; i < headerLength; i += 2) sum = (sum + b.readUInt16LE(i)) & 0xffff;
  if (sum !== 0) throw corrupt("E_VARSTORE_FV_CHECKSUM", `firmware volume header checksum sums to ${hex(sum, 4)}, expected 0x0000`);

  const store = headerLength;
  need(b, store, VARIABLE_STORE_HEADER_SIZE, "variable store header");
  const sig = guidAt(b, store);
  const auth = sig === EFI_AUTHENTICATED_VARIABLE_GUID;
  if (!auth && sig !== EFI_VARIABLE_GUID) throw corrupt("E_VARSTORE_SIGNATURE", `variable store signature ${sig} is neither ${EFI_AUTHENTICATED_VARIABLE_GUID} nor ${EFI_VARIABLE_GUID}`);
  const size = b.readUInt32LE(store + 16), format = b[store + 20], state = b[store + 21];
  if (format !== VARIABLE_STORE_FORMATTED || state !== VARIABLE_STORE_HEALTHY) {
    throw corrupt("E_VARSTORE_STATE", `variable store Format ${hex(format, 2)} / State ${hex(state, 2)}, expected 0x5a / 0xfe`);
  }
  if (size < VARIABLE_STORE_HEADER_SIZE || store + size > Number(fvLength)) {
    throw corrupt("E_VARSTORE_SIZE", `variable store Size ${hex(size)} at ${hex(store)} runs past FvLength ${hex(fvLength, 16)}`);
  }
  const end = store + size, hdr = auth ? AUTH_VARIABLE_HEADER_SIZE : VARIABLE_HEADER_SIZE;
  const sizesAt = auth ? 36 : 8; // NameSize, DataSize, VendorGuid
  const found: { v: Variable; state: number }[] = [];
  let p = (store + VARIABLE_STORE_HEADER_SIZE + 3) & ~3;
  // Each header is >= 32 bytes and p only grows, so the walk ends within size/32 steps (and the count bound).
  while (p + hdr <= end && b.readUInt16LE(p) === VARIABLE_DATA) {
    if (found.length >= MAX_VARSTORE_VARIABLES) throw overLimit("E_VARSTORE_VARIABLE_COUNT", `variable store holds more than ${MAX_VARSTORE_VARIABLES} variable headers`);
    const vstate = b[p + 2], attributes = b.readUInt32LE(p + 4);
    const nameSize = b.readUInt32LE(p + sizesAt), dataSize = b.readUInt32LE(p + sizesAt + 4);
    const guid = guidAt(b, p + sizesAt + 8);
    if (nameSize > MAX_VARIABLE_NAME_BYTES || nameSize % 2 !== 0 || p + hdr + nameSize + dataSize > end) {
      throw corrupt("E_VARSTORE_VARIABLE", `variable header at ${hex(p)} has NameSize ${nameSize} / DataSize ${dataSize}, odd, over ${MAX_VARIABLE_NAME_BYTES} or past the store end ${hex(end)}`);
    }
    let name = b.toString("utf16le", p + hdr, p + hdr + nameSize);
    const nul = name.indexOf("\0");
    if (nul >= 0) name = name.slice(0, nul);
    const data = b.subarray(p + hdr + nameSize, p + hdr + nameSize + dataSize);
    found.push({ v: { name, guid, attributes, data }, state: vstate });
    p = (p + hdr + nameSize + dataSize + 3) & ~3;
  }
  const key = (v: Variable) => `${v.guid}:${v.name}`;
  const added = new Set(found.filter((f) => f.state === VAR_ADDED).map((f) => key(f.v)));
  return found.filter((f) => f.state === VAR_ADDED ||
    (f.state === (VAR_ADDED & VAR_IN_DELETED_TRANSITION) && !added.has(key(f.v)))).map((f) => f.v);
}

/** The EFI_SIGNATURE_LIST sequence of a PK/KEK/db/dbx variable (UEFI 2.10 32.4.1), entries in order. */
export function parseSignatureLists(bytes: Uint8Array, what = "signature database"): SignatureEntry[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SignatureEntry[] = [];
  let p = 0, lists = 0;
  while (p < b.length) {
    if (++lists > MAX_SIGNATURE_LISTS) throw overLimit("E_VARSTORE_SIGLIST_COUNT", `${what} holds more than ${MAX_SIGNATURE_LISTS} signature lists`);
    if (p + SIGNATURE_LIST_HEADER_SIZE > b.length) throw truncated("E_VARSTORE_SIGLIST", `${what}: EFI_SIGNATURE_LIST header at ${p} needs 28 bytes, ${b.length - p} left`);
    const type = guidAt(b, p);
    const listSize = b.readUInt32LE(p + 16), headerSize = b.readUInt32LE(p + 20), sigSize = b.readUInt32LE(p + 24);
    const body = listSize - SIGNATURE_LIST_HEADER_SIZE - headerSize;
    if (listSize > b.length - p || body < 0 || sigSize <= SIGNATURE_OWNER_SIZE || body % sigSize !== 0) {
      throw corrupt("E_VARSTORE_SIGLIST", `${what}: EFI_SIGNATURE_LIST at ${p} (type ${type}) has SignatureListSize ${listSize}, SignatureHeaderSize ${headerSize}, SignatureSize ${sigSize}: not a whole number of entries within the ${b.length - p} bytes left`);
    }
    const count = body / sigSize;
    if (out.length + count > MAX_SIGNATURE_ENTRIES) throw overLimit("E_VARSTORE_SIGLIST_COUNT", `${what} holds more than ${MAX_SIGNATURE_ENTRIES} signatures`);
    const hashT = HASH_TYPES[type], tbsT = TBS_TYPES[type];
    const dataSize = sigSize - SIGNATURE_OWNER_SIZE;
    if ((hashT && dataSize !== hashT.size) || (tbsT && dataSize !== tbsT.size + 16)) {
      throw corrupt("E_VARSTORE_SIGLIST", `${what}: EFI_SIGNATURE_LIST at ${p} of type ${type} has SignatureSize ${sigSize}, expected ${16 + (hashT ? hashT.size : tbsT!.size + 16)}`);
    }
    for (let i = 0, e = p + SIGNATURE_LIST_HEADER_SIZE + headerSize; i < count; i++, e += sigSize) {
      const owner = guidAt(b, e);
      const data = Buffer.from(b.subarray(e + SIGNATURE_OWNER_SIZE, e + sigSize));
      if (type === EFI_CERT_X509_GUID) out.push({ kind: "x509", owner, cert: parseX509(data, `${what} entry ${out.length}`) });
      else if (hashT) out.push({ kind: "hash", owner, alg: hashT.alg, hash: data });
      else if (tbsT) out.push({ kind: "x509-hash", owner, alg: tbsT.alg, tbsHash: data.subarray(0, tbsT.size), revocationTime: data.subarray(tbsT.size) });
      else out.push({ kind: "other", owner, type, data });
    }
    p += listSize;
  }
  return out;
}

const OID_CN = "2.5.4.3";
const OID_SKI = "2.5.29.14";

/** A DN as "CN" when it has one, else "k=v, ..." (what reports and findings print). */
export function nameText(n: pkijs.RelativeDistinguishedNames): string {
  const cn = n.typesAndValues.find((t) => t.type === OID_CN);
  if (cn) return String(cn.value.valueBlock.value);
  return n.typesAndValues.map((t) => `${t.type}=${String(t.value.valueBlock.value)}`).join(", ");
}

/** Parse one DER X.509 certificate; malformed bytes throw ImageError `code` (never a raw library error). */
export function parseX509(der: Uint8Array, what: string, code = "E_VARSTORE_X509"): X509Cert {
  try {
    return x509Fields(der, what, code);
  } catch (e) {
    throw e instanceof ImageError ? e : corrupt(code, `${what}: not an X.509 certificate: ${(e as Error).message}`);
  }
}

function x509Fields(der: Uint8Array, what: string, code: string): X509Cert {
  // asn1js's own bounds (nodes, depth) guard hostile input; OCTET/BIT STRING contents are not speculatively decoded.
  const asn = asn1js.fromBER(der, { parseEmbedded: false, maxDepth: 64, maxNodes: 20000 });
  if (asn.offset === -1 || asn.offset !== der.length) throw corrupt(code, `${what}: not one DER certificate (${asn.result.error || `${der.length - Math.max(asn.offset, 0)} bytes left over`})`);
  const c = new pkijs.Certificate({ schema: asn.result });
  const ski = c.extensions?.find((x) => x.extnID === OID_SKI);
  const skiVal = ski?.parsedValue instanceof asn1js.OctetString ? Buffer.from(ski.parsedValue.valueBlock.valueHexView) : undefined;
  return {
    der: Buffer.from(der),
    subject: nameText(c.subject), issuer: nameText(c.issuer),
    serial: Buffer.from(c.serialNumber.valueBlock.valueHexView).toString("hex"),
    subjectDer: Buffer.from(c.subject.valueBeforeDecode), issuerDer: Buffer.from(c.issuer.valueBeforeDecode),
    tbs: Buffer.from(c.tbsView), sigAlgOid: c.signatureAlgorithm.algorithmId,
    signature: Buffer.from(c.signatureValue.valueBlock.valueHexView),
    spki: Buffer.from(c.subjectPublicKeyInfo.toSchema().toBER()),
    ...(skiVal ? { ski: skiVal } : {}),
  };
}

/** The TBSCertificate hash dbx's EFI_CERT_X509_SHA* entries list. */
export const tbsHash = (c: X509Cert, alg: HashAlg): Buffer => createHash(alg).update(c.tbs).digest();

const keyCache = new Map<string, SecureBootKeys>();

/**
 * PK, KEK, db and dbx from a Debian `ovmf` varstore (default: the first of OVMF_MS_VARSTORES that exists).
 * Results are cached per file.
 */
export function loadSecureBootKeys(file?: string): SecureBootKeys {
  const path = file ?? OVMF_MS_VARSTORES.find((f) => fs.existsSync(f));
  if (!path) {
    throw new ImageError("E_VARSTORE_MISSING", "io", `no Microsoft-enrolled OVMF varstore found (looked for ${OVMF_MS_VARSTORES.join(", ")}); the Secure Boot certificates come from Debian's ovmf package: apt-get install ovmf`);
  }
  const hit = keyCache.get(path);
  if (hit) return hit;
  let bytes: Buffer;
  try {
    const st = fs.statSync(path);
    if (st.size > MAX_VARSTORE_BYTES) throw overLimit("E_VARSTORE_SIZE", `${path} is ${st.size} bytes, over the limit of ${MAX_VARSTORE_BYTES}`);
    bytes = fs.readFileSync(path);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError("E_VARSTORE_MISSING", "io", `cannot read ${path}: ${(e as Error).message}; install Debian's ovmf package: apt-get install ovmf`);
  }
  const vars = parseVarstore(bytes);
  const get = (name: string, guid: string): SignatureEntry[] => {
    const v = vars.find((x) => x.name === name && x.guid === guid);
    return v ? parseSignatureLists(v.data, `${path} ${name}`) : [];
  };
  const keys: SecureBootKeys = {
    source: path,
    PK: get("PK", EFI_GLOBAL_VARIABLE), KEK: get("KEK", EFI_GLOBAL_VARIABLE),
    db: get("db", EFI_IMAGE_SECURITY_DATABASE_GUID), dbx: get("dbx", EFI_IMAGE_SECURITY_DATABASE_GUID),
  };
  if (!keys.PK.length || !keys.db.length) {
    throw corrupt("E_VARSTORE_NO_KEYS", `${path} has no PK or no db variable (setup mode); use the Microsoft-enrolled OVMF_VARS*.ms.fd from: apt-get install ovmf`);
  }
  keyCache.set(path, keys);
  return keys;
}
