// Authenticode signatures of PE images: PKCS#7 SignedData with SpcIndirectDataContent ("Windows Authenticode
// Portable Executable Signature Format" 1.0; RFC 2315 9.1-9.4 SignedData/SignerInfo; RFC 5280 4.1 certificates).
// Parsing uses asn1js/pkijs; digests and RSA/ECDSA verification use node:crypto (synchronous, as firmware hooks are).
import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { ImageError, corrupt, unsupported, overLimit } from "../images/errors.ts";
import { parseX509, type HashAlg, type X509Cert } from "./secureboot-certs.ts";
import { SB_MAX_PKCS7_CERTS, SB_MAX_CHAIN_DEPTH } from "../images/limits.ts";

/** Certificates we accept in one SignedData (real loaders carry 1-3), and chain depth we walk. */
export const MAX_PKCS7_CERTS = SB_MAX_PKCS7_CERTS;
export const MAX_CHAIN_DEPTH = SB_MAX_CHAIN_DEPTH;

/** OIDs: Authenticode ("SPC_INDIRECT_DATA_OBJID"), PKCS#7 / PKCS#9 (RFC 2315, RFC 2985), NIST hashes (RFC 5754). */
const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4";
const OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
const HASH_OIDS: Record<string, HashAlg> = {
  "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512",
};
/** Signature algorithms -> hash (RFC 4055 / RFC 5758); undefined hash = take the SignerInfo digestAlgorithm. */
const SIG_OIDS: Record<string, HashAlg | undefined> = {
  "1.2.840.113549.1.1.1": undefined, "1.2.840.10045.2.1": undefined,                   // rsaEncryption, ecPublicKey
  "1.2.840.113549.1.1.5": "sha1", "1.2.840.113549.1.1.11": "sha256", "1.2.840.113549.1.1.12": "sha384", "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.1": "sha1", "1.2.840.10045.4.3.2": "sha256", "1.2.840.10045.4.3.3": "sha384", "1.2.840.10045.4.3.4": "sha512",
};

/** One parsed Authenticode signature (one WIN_CERTIFICATE of type PKCS_SIGNED_DATA). */
export interface AuthenticodeSignature {
  /** Hash algorithm of the image digest in SpcIndirectDataContent (the one EDK2 re-hashes the image with). */
  digestAlg: HashAlg;
  /** SpcIndirectDataContent.messageDigest.digest: the signed PE image hash. */
  imageDigest: Buffer;
  /** Hash of the SpcIndirectDataContent value octets (Authenticode: without its SEQUENCE tag and length). */
  contentHash: Buffer;
  /** The messageDigest signed attribute, or undefined when the SignerInfo has no signed attributes. */
  messageDigest?: Buffer;
  /** What the signer's key signed: DER SET OF the signed attributes, or the content octets. */
  signedBytes: Buffer;
  signerDigestAlg: HashAlg;
  signatureAlgOid: string;
  signature: Buffer;
  signer: X509Cert;
  certs: X509Cert[];
}

const bad = (msg: string) => corrupt("E_AUTHENTICODE", msg);

const asBuf = (v: ArrayBuffer | Uint8Array) => Buffer.from(v instanceof Uint8Array ? v : new Uint8Array(v));

/**
 * Parse a WIN_CERT_TYPE_PKCS_SIGNED_DATA blob. Throws ImageError E_AUTHENTICODE (corrupt / unsupported / limit) on
 * anything that is not a well-formed single-signer Authenticode SignedData; trailing zero padding is allowed.
 */
export function parseAuthenticode(blob: Uint8Array): AuthenticodeSignature {
  try {
    return parseSignedData(blob);
  } catch (e) {
    // asn1js/pkijs may throw plain errors on shapes their schemas accept loosely; report them as corrupt.
    throw e instanceof ImageError ? e : bad(`malformed PKCS#7: ${(e as Error).message}`);
  }
}

/** One DER TLV: tag byte, where it starts, its header size and where its value ends. */
interface Tlv { tag: number; start: number; hdr: number; end: number }

/** Read the TLV at `off` within `limit`; only DER definite lengths up to 4 bytes and single-byte tags. */
function tlvAt(b: Uint8Array, off: number, limit: number): Tlv {
  if (off + 2 > limit) throw bad(`DER element at ${off} is cut off at ${limit}`);
  const tag = b[off];
  if ((tag & 0x1f) === 0x1f) throw bad(`DER element at ${off} uses a multi-byte tag`);
  let len = b[off + 1], hdr = 2;
  if (len >= 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw bad(`DER element at ${off} has ${n === 0 ? "an indefinite" : `a ${n}-byte`} length`);
    if (off + 2 + n > limit) throw bad(`DER length at ${off} is cut off at ${limit}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[off + 2 + i];
    hdr = 2 + n;
  }
  if (off + hdr + len > limit) throw bad(`DER element at ${off} (${len} bytes) runs past ${limit}`);
  return { tag, start: off, hdr, end: off + hdr + len };
}

/** The elements inside a constructed TLV (bounded: each is >= 2 bytes). */
function childrenOf(b: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = t.start + t.hdr; p < t.end;) {
    const c = tlvAt(b, p, t.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

/** DER encoding of a constructed element from already-encoded parts. */
function encode(tag: number, parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts), n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}

/** asn1js options for untrusted input: its node/depth bounds, and no speculative decoding inside OCTET/BIT STRINGs. */
const BER_OPTIONS = { parseEmbedded: false, maxDepth: 64, maxNodes: 20000 };

/** Parsed certificates by DER SHA-256: the same Microsoft / distribution certificates recur in every image. */
const certCache = new Map<string, X509Cert>();
const CERT_CACHE_ENTRIES = 256;

function cachedX509(der: Uint8Array, what: string): X509Cert {
  const key = createHash("sha256").update(der).digest("hex");
  const hit = certCache.get(key);
  if (hit) return hit;
  const c = parseX509(der, what, "E_AUTHENTICODE");
  if (certCache.size >= CERT_CACHE_ENTRIES) certCache.clear();
  certCache.set(key, c);
  return c;
}

/** Parse DER bytes with asn1js and build a pkijs object from them; failures become E_AUTHENTICODE. */
function pkiPart<T>(der: Uint8Array, make: (schema: asn1js.AsnType) => T, what: string): T {
  const asn = asn1js.fromBER(der, BER_OPTIONS);
  if (asn.offset === -1) throw bad(`${what} is not BER: ${asn.result.error}`);
  try {
    return make(asn.result);
  } catch (e) {
    throw bad(`malformed ${what}: ${(e as Error).message}`);
  }
}

function parseSignedData(blob: Uint8Array): AuthenticodeSignature {
  const b = blob;
  const ci = tlvAt(b, 0, b.length);
  if (b.subarray(ci.end).some((x) => x !== 0)) throw bad(`PKCS#7 blob has ${b.length - ci.end} trailing bytes that are not zero padding`);
  const [oid, explicit] = childrenOf(b, ci);
  const ciType = oid && asn1js.fromBER(b.subarray(oid.start, oid.end), BER_OPTIONS).result;
  if (!(ciType instanceof asn1js.ObjectIdentifier) || ciType.valueBlock.toString() !== OID_SIGNED_DATA) throw bad("ContentInfo is not signedData");
  if (!explicit || explicit.tag !== 0xa0) throw bad("ContentInfo has no [0] content");
  const sdTlv = childrenOf(b, explicit)[0];
  if (!sdTlv || sdTlv.tag !== 0x30) throw bad("signedData content is not a SEQUENCE");
  const kids = childrenOf(b, sdTlv);
  const raw = (t: Tlv) => b.subarray(t.start, t.end);
  // Certificates are parsed one by one from their exact DER; the SignerInfo's unsigned attributes (the RFC 3161
  // timestamp, ~6 KiB that firmware ignores) are dropped before the structure goes to pkijs.
  const certSet = kids.find((k) => k.tag === 0xa0);
  const certTlvs = certSet ? childrenOf(b, certSet).filter((c) => c.tag === 0x30) : [];
  if (certTlvs.length > MAX_PKCS7_CERTS) throw overLimit("E_AUTHENTICODE", `SignedData carries ${certTlvs.length} certificates, over the limit of ${MAX_PKCS7_CERTS}`);
  const certs = certTlvs.map((c, i) => cachedX509(raw(c), `PKCS#7 certificate ${i}`));
  const siSet = kids[kids.length - 1];
  if (!siSet || siSet.tag !== 0x31) throw bad("SignedData does not end with the SignerInfos SET");
  const sis = childrenOf(b, siSet);
  if (sis.length !== 1) throw bad(`SignedData has ${sis.length} SignerInfos; Authenticode requires exactly one`);
  // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo SEQUENCE, [0] certs, [1] crls, signerInfos }
  const eciTlv = kids[2];
  if (!eciTlv || eciTlv.tag !== 0x30) throw bad("SignedData has no encapContentInfo SEQUENCE");
  // pkijs's SignedData class rebuilds the schemas of every certificate format on each parse (~15 ms): the SignerInfo
  // goes to pkijs's SignerInfo, the two-field EncapsulatedContentInfo is read with asn1js.
  const eci = pkiPart(raw(eciTlv), (schema) => {
    // EncapsulatedContentInfo ::= SEQUENCE { eContentType OID, eContent [0] EXPLICIT ANY } (Authenticode: not an OCTET STRING)
    const [type, wrapped] = (schema as asn1js.Sequence).valueBlock.value;
    if (!(type instanceof asn1js.ObjectIdentifier)) throw new Error("eContentType is not an OID");
    const inner = wrapped instanceof asn1js.Constructed && wrapped.idBlock.tagClass === 3 ? wrapped.valueBlock.value[0] : undefined;
    return { eContentType: type.valueBlock.toString(), eContent: inner };
  }, "EncapsulatedContentInfo");
  const si = pkiPart(encode(0x30, childrenOf(b, sis[0]).filter((c) => c.tag !== 0xa1).map(raw)),
    (schema) => new pkijs.SignerInfo({ schema }), "SignerInfo");
  if (eci.eContentType !== OID_SPC_INDIRECT_DATA) throw bad(`content type ${eci.eContentType} is not SpcIndirectDataContent`);
  const content = eci.eContent as unknown as asn1js.BaseBlock | undefined;
  if (!(content instanceof asn1js.Sequence)) throw bad("SpcIndirectDataContent is absent or not a SEQUENCE");
  const contentDer = content.valueBeforeDecodeView;
  // SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue, messageDigest DigestInfo }
  const digestInfo = content.valueBlock.value[1];
  if (!(digestInfo instanceof asn1js.Sequence) || digestInfo.valueBlock.value.length !== 2) throw bad("SpcIndirectDataContent.messageDigest is not a DigestInfo");
  const [algId, digestOctets] = digestInfo.valueBlock.value;
  const alg = algId instanceof asn1js.Sequence ? algId.valueBlock.value[0] : undefined;
  if (!(alg instanceof asn1js.ObjectIdentifier) || !(digestOctets instanceof asn1js.OctetString)) throw bad("DigestInfo is not { AlgorithmIdentifier, OCTET STRING }");
  const digestAlg = HASH_OIDS[alg.valueBlock.toString()];
  if (!digestAlg) throw unsupported("E_AUTHENTICODE", `image digest algorithm ${alg.valueBlock.toString()} is not SHA-1/256/384/512`);
  const imageDigest = asBuf(digestOctets.valueBlock.valueHexView);
  const contentOctets = asBuf(contentDer.subarray(tlvAt(contentDer, 0, contentDer.length).hdr));

  const signerDigestAlg = HASH_OIDS[si.digestAlgorithm.algorithmId];
  if (!signerDigestAlg) throw unsupported("E_AUTHENTICODE", `SignerInfo digest algorithm ${si.digestAlgorithm.algorithmId} is not SHA-1/256/384/512`);
  const contentHash = createHash(signerDigestAlg).update(contentOctets).digest();
  let messageDigest: Buffer | undefined, signedBytes = contentOctets;
  if (si.signedAttrs) {
    const md = si.signedAttrs.attributes.filter((a) => a.type === OID_MESSAGE_DIGEST);
    const v = md[0]?.values;
    if (md.length !== 1 || !v || v.length !== 1 || !(v[0] instanceof asn1js.OctetString)) throw bad("signed attributes need exactly one messageDigest OCTET STRING");
    messageDigest = asBuf((v[0] as asn1js.OctetString).valueBlock.valueHexView);
    // RFC 2315 9.3: the signature covers the DER of the attributes as SET OF (tag 0x31), not the [0] IMPLICIT tag.
    signedBytes = asBuf(si.signedAttrs.encodedValue);
    signedBytes[0] = 0x31;
  }

  const signer = findSigner(si, certs);
  return {
    digestAlg, imageDigest, contentHash, messageDigest, signedBytes, signerDigestAlg,
    signatureAlgOid: si.signatureAlgorithm.algorithmId, signature: asBuf(si.signature.valueBlock.valueHexView),
    signer, certs,
  };
}

/** The certificate SignerInfo.sid names: IssuerAndSerialNumber, or [0] SubjectKeyIdentifier (CMS v3). */
function findSigner(si: pkijs.SignerInfo, certs: X509Cert[]): X509Cert {
  let found: X509Cert | undefined;
  if (si.sid instanceof pkijs.IssuerAndSerialNumber) {
    const issuer = Buffer.from(si.sid.issuer.valueBeforeDecode);
    const serial = Buffer.from(si.sid.serialNumber.valueBlock.valueHexView).toString("hex");
    found = certs.find((c) => c.serial === serial && c.issuerDer.equals(issuer));
  } else if (si.sid instanceof asn1js.Primitive || si.sid instanceof asn1js.Constructed) {
    const raw = si.sid instanceof asn1js.Primitive ? si.sid.valueBlock.valueHexView
      : ((si.sid as asn1js.Constructed).valueBlock.value[0] as asn1js.OctetString | undefined)?.valueBlock.valueHexView;
    const ski = raw ? Buffer.from(raw) : undefined;
    found = ski && certs.find((c) => c.ski?.equals(ski));
  }
  if (!found) throw bad("the SignerInfo's signer certificate is not among the SignedData certificates");
  return found;
}

/** Verify `signature` over `data` with a DER SubjectPublicKeyInfo; false (never a throw) on any unusable input. */
export function verifyWithKey(spki: Buffer, sigAlgOid: string, fallbackHash: HashAlg, data: Buffer, signature: Buffer): boolean {
  if (!(sigAlgOid in SIG_OIDS)) return false; // RSASSA-PSS and others: not accepted (EDK2 enrols PKCS#1 v1.5 keys)
  const hashAlg = SIG_OIDS[sigAlgOid] ?? fallbackHash;
  try {
    const key = createPublicKey({ key: spki, format: "der", type: "spki" });
    return cryptoVerify(hashAlg, data, key, signature);
  } catch {
    return false;
  }
}

/** Is `child` signed by `issuer`'s key (names chained and signature valid)? */
export function issuedBy(child: X509Cert, issuer: X509Cert): boolean {
  return child.issuerDer.equals(issuer.subjectDer) && verifyWithKey(issuer.spki, child.sigAlgOid, "sha256", child.tbs, child.signature);
}

/** The signer's own signature checks: messageDigest attribute = content hash, then the RSA/ECDSA signature. */
export function signerSignatureValid(s: AuthenticodeSignature): "ok" | "content-digest" | "signature" {
  if (s.messageDigest && !s.messageDigest.equals(s.contentHash)) return "content-digest";
  return verifyWithKey(s.signer.spki, s.signatureAlgOid, s.signerDigestAlg, s.signedBytes, s.signature) ? "ok" : "signature";
}

/**
 * The chain from the signer upward through the SignedData's own certificates (each link's signature checked),
 * ending where no carried certificate issued the last one. Bounded by MAX_CHAIN_DEPTH; loops are cut.
 */
export function carriedChain(s: AuthenticodeSignature): X509Cert[] {
  const chain = [s.signer];
  for (let cur = s.signer; chain.length < MAX_CHAIN_DEPTH;) {
    if (cur.issuerDer.equals(cur.subjectDer)) break; // self-issued root
    const next = s.certs.find((c) => !chain.includes(c) && issuedBy(cur, c));
    if (!next) break;
    chain.push(next);
    cur = next;
  }
  return chain;
}
