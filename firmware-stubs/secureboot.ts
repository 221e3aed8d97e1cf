// Secure Boot for the synthetic Hyper-V Gen2 firmware: the Hyper-V / Azure key templates, the db/dbx variables
// (UEFI 2.10 32.4.1 EFI_SIGNATURE_LIST, 32.6 image verification) and image verification the way EDK2's
// DxeImageVerificationLib does it (any signature chaining to db allows; an image hash or chain certificate in dbx denies).
import { authenticodeDigest, certificateTable, WIN_CERT_TYPE_PKCS_SIGNED_DATA, WIN_CERT_TYPE_EFI_GUID } from "./pe.ts";
import { ImageError } from "../images/errors.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import {
  loadSecureBootKeys, guidBytes, guidAt, tbsHash, EFI_CERT_X509_GUID, EFI_CERT_SHA1_GUID, EFI_CERT_SHA256_GUID,
  EFI_CERT_SHA384_GUID, EFI_CERT_SHA512_GUID, EFI_CERT_X509_SHA256_GUID, EFI_CERT_X509_SHA384_GUID,
  EFI_CERT_X509_SHA512_GUID, type HashAlg, type SecureBootKeys, type SignatureEntry, type X509Cert,
} from "./secureboot-certs.ts";
import { parseAuthenticode, signerSignatureValid, carriedChain, issuedBy, type AuthenticodeSignature } from "./secureboot-authenticode.ts";

/** The firmware's refusal lines (mu_msvm boot manager failure screen), quoted in findings. */
export const SCREEN_DENIED = "Image execution was denied by Secure Boot policy.";
export const SCREEN_DBX = "The image's hash was denied (DBX).";

const SB_OFF_REMEDY = "Set-VMFirmware -VMName <vm> -EnableSecureBoot Off (Azure: deploy without Trusted Launch secure boot, az vm create --security-type TrustedLaunch --enable-secure-boot false)";

defineFindings([
  { code: "SECUREBOOT_DENIED", severity: "error", stage: "firmware", title: "Secure Boot refused the boot loader",
    message: "{file}: \"" + SCREEN_DENIED + "\" under the {template} template: {why}",
    remedy: "{fix}",
    explain: "With Secure Boot on, Hyper-V Gen2 firmware (like EDK2's DxeImageVerificationLib) starts an image only when one of its Authenticode signatures verifies and chains to a certificate in db, or when its hash is in db. The MicrosoftWindows template trusts only the Windows Production PCA 2011 (and Windows UEFI CA 2023), so Linux shims, signed by the Microsoft UEFI CA, are denied there; the MicrosoftUEFICertificateAuthority template and Azure Trusted Launch trust the UEFI CA. Loaders signed by a distribution's own key (GRUB, the kernel) are only trusted by shim, never by the firmware." },
  { code: "SECUREBOOT_DBX", severity: "error", stage: "firmware", title: "Boot loader revoked by the Secure Boot dbx",
    message: "{file}: \"{screen}\" under the {template} template: {what} is listed in dbx",
    remedy: "Install a current, non-revoked loader chain: apt-get install --reinstall shim-signed grub-efi-amd64-signed, then copy /usr/lib/shim/shimx64.efi.signed to \\EFI\\BOOT\\BOOTX64.EFI (or " + SB_OFF_REMEDY + ")",
    explain: "dbx, the forbidden signature database, lists SHA-256 hashes of revoked images (old shims, GRUBs and boot managers with known bypasses) and revoked certificates. Firmware checks it before db: a listed image never runs, whatever its signature." },
  { code: "SECUREBOOT_UNSIGNED", severity: "error", stage: "firmware", title: "Unsigned boot loader under Secure Boot",
    message: "{file} carries no Authenticode signature and its hash is not in db; under the {template} template the firmware shows \"" + SCREEN_DENIED + "\"",
    remedy: "Boot a signed chain (apt-get install shim-signed grub-efi-amd64-signed; copy shimx64.efi.signed to \\EFI\\BOOT\\BOOTX64.EFI and grubx64.efi.signed beside it as grubx64.efi), sign the loader with a key enrolled in db (sbsign --key db.key --cert db.crt), or turn Secure Boot off: " + SB_OFF_REMEDY,
    explain: "An unsigned UEFI application (for example a grub-mkimage build) starts only with Secure Boot off or when its Authenticode SHA-256 is enrolled in db." },
]);

export type SecureBootMode = "off" | "windows" | "uefi-ca" | "trusted-launch";
export const SECURE_BOOT_MODES: SecureBootMode[] = ["off", "windows", "uefi-ca", "trusted-launch"];
const ENFORCING: Exclude<SecureBootMode, "off">[] = ["windows", "uefi-ca", "trusted-launch"];

/** Hyper-V's Set-VMFirmware -SecureBootTemplate names, and Azure's. */
const TEMPLATE_NAMES: Record<SecureBootMode, string> = {
  "off": "Off", "windows": "MicrosoftWindows", "uefi-ca": "MicrosoftUEFICertificateAuthority", "trusted-launch": "Trusted Launch",
};
/**
 * db certificates per template, by subject CN. The 2011 ones must be in the varstore; the 2023 ones are taken when
 * present. Debian bookworm's ovmf varstore holds only the 2011 pair, so compared with real Hyper-V our templates lack
 * Windows UEFI CA 2023 (windows), Microsoft UEFI CA 2023 and the Azure Linux kmod PCA (uefi-ca), KEK 2K CA 2023, and
 * Microsoft's dbx (several hundred revoked-image hashes; Debian's dbx holds one placeholder hash).
 */
const WINDOWS_DB = { required: ["Microsoft Windows Production PCA 2011"], optional: ["Windows UEFI CA 2023"] };
const UEFI_CA_DB = { required: ["Microsoft Corporation UEFI CA 2011"], optional: ["Microsoft UEFI CA 2023"] };

export interface SecureBootTemplate {
  mode: SecureBootMode;
  name: string;
  /** Where the keys came from (the ovmf varstore path), for reports. */
  source: string;
  PK: SignatureEntry[];
  KEK: SignatureEntry[];
  db: SignatureEntry[];
  dbx: SignatureEntry[];
}

const templateCache = new Map<string, SecureBootTemplate>();

/**
 * The key set of a Hyper-V / Azure Secure Boot setting. "off" has empty databases (nothing is enforced). PK, KEK and
 * dbx come from the varstore for every enforcing mode; db is the varstore's db without the Microsoft CAs of the
 * other template, in varstore order.
 */
export function secureBootTemplate(mode: SecureBootMode, keys?: SecureBootKeys): SecureBootTemplate {
  const k = keys ?? loadSecureBootKeys();
  const cacheKey = `${k.source}:${mode}`;
  const hit = keys ? undefined : templateCache.get(cacheKey);
  if (hit) return hit;
  const base = { mode, name: TEMPLATE_NAMES[mode], source: k.source };
  if (mode === "off") return { ...base, PK: [], KEK: [], db: [], dbx: [] };
  const sets = mode === "windows" ? [WINDOWS_DB] : mode === "uefi-ca" ? [UEFI_CA_DB] : [WINDOWS_DB, UEFI_CA_DB];
  const want = new Set<string>();
  for (const s of sets) {
    for (const cn of s.required) {
      if (!k.db.some((e) => e.kind === "x509" && e.cert.subject === cn)) {
        throw new ImageError("E_VARSTORE_NO_KEYS", "corrupt", `${k.source} db lacks "${cn}", needed by the ${TEMPLATE_NAMES[mode]} template; reinstall Debian's ovmf package: apt-get install --reinstall ovmf`);
      }
      want.add(cn);
    }
    for (const cn of s.optional) want.add(cn);
  }
  // The other templates' Microsoft CAs are left out; anything else the varstore's owner enrolled in db (their own
  // certificates, image hashes) applies under every template.
  const others = new Set([WINDOWS_DB, UEFI_CA_DB].flatMap((s) => [...s.required, ...s.optional]).filter((cn) => !want.has(cn)));
  const db = k.db.filter((e) => e.kind !== "x509" || !others.has(e.cert.subject));
  const t = { ...base, PK: k.PK, KEK: k.KEK, db, dbx: k.dbx };
  if (!keys) templateCache.set(cacheKey, t);
  return t;
}

const HASH_LIST_TYPES: Record<HashAlg, string> = {
  sha1: EFI_CERT_SHA1_GUID, sha256: EFI_CERT_SHA256_GUID, sha384: EFI_CERT_SHA384_GUID, sha512: EFI_CERT_SHA512_GUID,
};
const TBS_LIST_TYPES: Partial<Record<HashAlg, string>> = {
  sha256: EFI_CERT_X509_SHA256_GUID, sha384: EFI_CERT_X509_SHA384_GUID, sha512: EFI_CERT_X509_SHA512_GUID,
};

/** SignatureType and SignatureData of one entry. */
function entryParts(e: SignatureEntry): { type: string; data: Buffer } {
  switch (e.kind) {
    case "x509": return { type: EFI_CERT_X509_GUID, data: e.cert.der };
    case "hash": return { type: HASH_LIST_TYPES[e.alg], data: e.hash };
    case "x509-hash": return { type: TBS_LIST_TYPES[e.alg]!, data: Buffer.concat([e.tbsHash, e.revocationTime]) };
    case "other": return { type: e.type, data: e.data };
  }
}

/**
 * The variable data GetVariable returns for PK / KEK (EFI_GLOBAL_VARIABLE) or db / dbx
 * (EFI_IMAGE_SECURITY_DATABASE_GUID): EFI_SIGNATURE_LISTs with SignatureHeaderSize 0. Each X.509 certificate gets
 * its own list (sizes differ); consecutive entries of one fixed-size type (hashes) share one list, as EDK2 and
 * Hyper-V store them.
 */
export function signatureListBytes(template: SecureBootTemplate, variable: "PK" | "KEK" | "db" | "dbx"): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  const entries = template[variable];
  while (i < entries.length) {
    const first = entryParts(entries[i]);
    const group = [entries[i++]];
    if (entries[i - 1].kind !== "x509") {
      while (i < entries.length) {
        const p = entryParts(entries[i]);
        if (p.type !== first.type || p.data.length !== first.data.length || entries[i].kind === "x509") break;
        group.push(entries[i++]);
      }
    }
    const sigSize = 16 + first.data.length;
    const head = Buffer.alloc(28);
    guidBytes(first.type).copy(head, 0);
    head.writeUInt32LE(28 + group.length * sigSize, 16); // SignatureListSize
    head.writeUInt32LE(0, 20);                           // SignatureHeaderSize
    head.writeUInt32LE(sigSize, 24);                     // SignatureSize
    out.push(head);
    for (const e of group) out.push(guidBytes(e.owner), entryParts(e).data);
  }
  return Buffer.concat(out);
}

export type SbReason = "signed-by-db" | "hash-in-db" | "unsigned" | "signer-not-trusted" | "hash-in-dbx" | "cert-in-dbx"
  | "bad-signature" | "digest-mismatch" | "malformed-signature";

export interface SbSigner { subject: string; issuer: string; serial: string }

export interface SbVerdict {
  /** Would the firmware start the image? Always true under "off" (the reason still describes the signature). */
  allowed: boolean;
  reason: SbReason;
  /** Authenticode SHA-256 of the image, hex ("" when the PE headers are unreadable). */
  digest: string;
  signers: SbSigner[];
  /** Subject of the db certificate that anchored the chain (reason signed-by-db). */
  trustedBy?: string;
  /** Which enforcing settings would start this image (windows / uefi-ca / trusted-launch, with the ovmf varstore's keys). */
  acceptedBy: SecureBootMode[];
  /** Why a signature was malformed, or which dbx entry matched. */
  detail?: string;
}

/** gEfiCertPkcs7Guid: WIN_CERTIFICATE_UEFI_GUID entries carrying a PKCS#7 (UEFI 2.10 32.2.4). */
const EFI_CERT_TYPE_PKCS7_GUID = "4aafd29d-68df-49ee-8aa9-347d375665a7";

type SigCheck =
  | { stage: "malformed"; detail: string }
  | { stage: "digest-mismatch" | "bad-signature" | "verified"; sig: AuthenticodeSignature; chain: X509Cert[]; detail?: string };

interface Analysis {
  digests: Map<HashAlg, Buffer>;
  bytes: Uint8Array;
  checks: SigCheck[];
  /** Set when the PE or its certificate table cannot be read at all. */
  broken?: string;
}

function digestOf(a: Analysis, alg: HashAlg): Buffer | undefined {
  if (!a.digests.has(alg) && !a.broken) {
    try {
      a.digests.set(alg, authenticodeDigest(a.bytes, alg));
    } catch (e) {
      a.broken = (e as Error).message;
    }
  }
  return a.digests.get(alg);
}

/** Everything about the image that does not depend on the keys: digests, parsed signatures, carried chains. */
function analyse(bytes: Uint8Array): Analysis {
  const a: Analysis = { digests: new Map(), bytes, checks: [] };
  if (!digestOf(a, "sha256")) return a;
  let table;
  try {
    table = certificateTable(bytes);
  } catch (e) {
    a.broken = (e as Error).message;
    return a;
  }
  for (const w of table) {
    let blob: Buffer | undefined;
    if (w.type === WIN_CERT_TYPE_PKCS_SIGNED_DATA) blob = w.data;
    else if (w.type === WIN_CERT_TYPE_EFI_GUID && w.data.length > 16 && guidAt(w.data, 0) === EFI_CERT_TYPE_PKCS7_GUID) blob = w.data.subarray(16);
    if (!blob) continue; // other WIN_CERTIFICATE types are skipped, as DxeImageVerificationLib does
    let sig: AuthenticodeSignature;
    try {
      sig = parseAuthenticode(blob);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      a.checks.push({ stage: "malformed", detail: `WIN_CERTIFICATE at ${w.offset}: ${e.message}` });
      continue;
    }
    const chain = carriedChain(sig);
    const digest = digestOf(a, sig.digestAlg);
    if (!digest || !digest.equals(sig.imageDigest)) {
      a.checks.push({ stage: "digest-mismatch", sig, chain, detail: `signed ${sig.digestAlg} digest ${sig.imageDigest.toString("hex")}, image ${digest?.toString("hex") ?? "unreadable"}` });
      continue;
    }
    const s = signerSignatureValid(sig);
    a.checks.push(s === "ok" ? { stage: "verified", sig, chain }
      : { stage: "bad-signature", sig, chain, detail: s === "content-digest" ? "messageDigest attribute does not match the SpcIndirectDataContent hash" : "signer's signature does not verify" });
  }
  return a;
}

const certs = (list: SignatureEntry[]) => list.flatMap((e) => (e.kind === "x509" ? [e.cert] : []));

/** The db/dbx certificate that is `c` or issued it, if any. */
const anchorFor = (c: X509Cert, db: X509Cert[]) => db.find((d) => d.der.equals(c.der) || issuedBy(c, d));

/** A chain certificate revoked by dbx, as text, or undefined. */
function revokedCert(chain: X509Cert[], dbx: SignatureEntry[]): string | undefined {
  const dbxCerts = certs(dbx);
  for (const c of chain) {
    const d = anchorFor(c, dbxCerts);
    if (d) return `certificate "${c.subject}" (${d.der.equals(c.der) ? "listed" : `issued by listed "${d.subject}"`})`;
    for (const e of dbx) if (e.kind === "x509-hash" && tbsHash(c, e.alg).equals(e.tbsHash)) return `certificate "${c.subject}" (${e.alg} TBS hash)`;
  }
  return undefined;
}

function hashListed(a: Analysis, list: SignatureEntry[]): HashAlg | undefined {
  for (const e of list) if (e.kind === "hash" && digestOf(a, e.alg)?.equals(e.hash)) return e.alg;
  return undefined;
}

/** Failure precedence: the signature that got furthest through verification explains the refusal best. */
const FAILURE_ORDER: SbReason[] = ["signer-not-trusted", "bad-signature", "digest-mismatch", "malformed-signature"];

function evaluate(a: Analysis, t: SecureBootTemplate): Omit<SbVerdict, "acceptedBy"> {
  const digest = a.digests.get("sha256")?.toString("hex") ?? "";
  const parsed = a.checks.filter((c): c is Exclude<SigCheck, { stage: "malformed" }> => c.stage !== "malformed");
  const signers = parsed.map((c) => ({ subject: c.sig.signer.subject, issuer: c.sig.signer.issuer, serial: c.sig.signer.serial }));
  const enforce = t.mode !== "off";
  const verdict = (allowed: boolean, reason: SbReason, extra: { trustedBy?: string; detail?: string } = {}) =>
    ({ allowed: allowed || !enforce, reason, digest, signers, ...extra });
  if (a.broken) return verdict(false, "malformed-signature", { detail: a.broken });

  const dbxAlg = hashListed(a, t.dbx);
  if (dbxAlg) return verdict(false, "hash-in-dbx", { detail: `image ${dbxAlg} ${digestOf(a, dbxAlg)!.toString("hex")}` });
  for (const c of parsed) {
    const r = revokedCert(c.chain, t.dbx);
    if (r) return verdict(false, "cert-in-dbx", { detail: r });
  }
  const db = certs(t.db);
  for (const c of parsed) {
    if (c.stage !== "verified") continue;
    for (const link of c.chain) {
      const d = anchorFor(link, db);
      if (d) return verdict(true, "signed-by-db", { trustedBy: d.subject });
    }
  }
  if (hashListed(a, t.db)) return verdict(true, "hash-in-db");
  if (!a.checks.length) return verdict(false, "unsigned");
  const reasons = a.checks.map((c): { reason: SbReason; detail?: string } => ({
    reason: c.stage === "verified" ? "signer-not-trusted" : c.stage === "malformed" ? "malformed-signature" : c.stage,
    detail: c.stage === "verified" ? `chain ${c.chain.map((x) => `"${x.subject}"`).join(" <- ")} ends at "${c.chain[c.chain.length - 1].issuer}", not in db` : c.detail,
  }));
  reasons.sort((x, y) => FAILURE_ORDER.indexOf(x.reason) - FAILURE_ORDER.indexOf(y.reason));
  return verdict(false, reasons[0].reason, { detail: reasons[0].detail });
}

/**
 * Verify a PE image against a template as firmware does at LoadImage. Never throws on hostile image bytes: an
 * unreadable PE or certificate table yields reason "malformed-signature" with a detail.
 */
export function verifyImage(peBytes: Uint8Array, template: SecureBootTemplate): SbVerdict {
  const a = analyse(peBytes);
  const v = evaluate(a, template);
  const acceptedBy = ENFORCING.filter((m) => evaluate(a, m === template.mode ? template : secureBootTemplate(m)).allowed);
  return { ...v, acceptedBy };
}

/** Which enforcing settings (windows / uefi-ca / trusted-launch, with the ovmf varstore's keys) start this image. */
export function acceptingModes(peBytes: Uint8Array): SecureBootMode[] {
  const a = analyse(peBytes);
  return ENFORCING.filter((m) => evaluate(a, secureBootTemplate(m)).allowed);
}

const REASON_TEXT: Partial<Record<SbReason, string>> = {
  "digest-mismatch": "its Authenticode digest differs from the signed one (the file changed after signing)",
  "bad-signature": "its signature does not verify",
  "malformed-signature": "its signature or certificate table is malformed",
};

function denialFix(v: SbVerdict, t: SecureBootTemplate, signer: string): string {
  const others = v.acceptedBy.filter((m) => m !== t.mode);
  if (others.includes("uefi-ca")) {
    return "On Hyper-V, select the Microsoft UEFI Certificate Authority template: Set-VMFirmware -VMName <vm> -SecureBootTemplate MicrosoftUEFICertificateAuthority (on Azure, Trusted Launch accepts it too)";
  }
  if (others.includes("windows")) return "On Hyper-V, select the Microsoft Windows template: Set-VMFirmware -VMName <vm> -SecureBootTemplate MicrosoftWindows";
  if (others.includes("trusted-launch")) return "Deploy on Azure with Trusted Launch (its db holds both the Windows PCA and the UEFI CA), or " + SB_OFF_REMEDY;
  if (v.reason === "signer-not-trusted") {
    return `No Hyper-V or Azure template trusts "${signer}": start it through Microsoft-signed shim (apt-get install shim-signed; shimx64.efi.signed as \\EFI\\BOOT\\BOOTX64.EFI, this loader beside it), sign the loader with a key enrolled in db (sbsign --key db.key --cert db.crt), or turn Secure Boot off: ${SB_OFF_REMEDY}`;
  }
  return `Reinstall the loader from its package (apt-get install --reinstall shim-signed grub-efi-amd64-signed), or turn Secure Boot off: ${SB_OFF_REMEDY}`;
}

/** The finding for a refused image (SECUREBOOT_DENIED / _DBX / _UNSIGNED), or undefined when the image may run. */
export function secureBootFinding(verdict: SbVerdict, template: SecureBootTemplate, file: string): Finding | undefined {
  if (verdict.allowed) return undefined;
  const evidence = { digest: verdict.digest, reason: verdict.reason, signers: verdict.signers, acceptedBy: verdict.acceptedBy, detail: verdict.detail };
  const base = { file, template: template.name };
  if (verdict.reason === "hash-in-dbx" || verdict.reason === "cert-in-dbx") {
    const hashDenied = verdict.reason === "hash-in-dbx";
    return finding("SECUREBOOT_DBX", { ...base, screen: hashDenied ? SCREEN_DBX : SCREEN_DENIED,
      what: hashDenied ? `its Authenticode hash ${verdict.digest}` : (verdict.detail ?? "a signing certificate") }, { ...evidence, screen: hashDenied ? SCREEN_DBX : SCREEN_DENIED });
  }
  if (verdict.reason === "unsigned") return finding("SECUREBOOT_UNSIGNED", base, { ...evidence, screen: SCREEN_DENIED });
  const signer = verdict.signers.length ? verdict.signers.map((s) => `${s.subject} (issued by ${s.issuer})`).join("; ") : "no readable signer";
  const why = verdict.reason === "signer-not-trusted"
    ? `signed by ${signer}, which no certificate in its db (${certs(template.db).map((c) => c.subject).join(", ") || "empty"}) trusts`
    : `${REASON_TEXT[verdict.reason] ?? verdict.reason}${verdict.detail ? ` (${verdict.detail})` : ""}`;
  return finding("SECUREBOOT_DENIED", { ...base, why, fix: denialFix(verdict, template, verdict.signers[0]?.subject ?? "its signer") },
    { ...evidence, screen: SCREEN_DENIED });
}
