// Secure Boot: Debian ovmf varstore keys, the Hyper-V / Azure templates, db/dbx encoding and Authenticode verification
// of real signed binaries (shim-signed, grub-efi-amd64-signed, the Debian kernel) and of images signed here.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { tmpdir, sh, prng, ROOT } from "./helpers.ts";
import { parsePe, authenticodeDigest, certificateTable } from "../firmware-stubs/pe.ts";
import {
  loadSecureBootKeys, parseVarstore, parseSignatureLists, parseX509, guidBytes, tbsHash, OVMF_MS_VARSTORES,
  EFI_CERT_X509_GUID, EFI_CERT_SHA256_GUID, EFI_IMAGE_SECURITY_DATABASE_GUID, EFI_GLOBAL_VARIABLE, MICROSOFT_OWNER_GUID,
  type SecureBootKeys, type SignatureEntry,
} from "../firmware-stubs/secureboot-certs.ts";
import {
  secureBootTemplate, signatureListBytes, verifyImage, acceptingModes, secureBootFinding, SCREEN_DENIED, SCREEN_DBX,
  type SecureBootMode,
} from "../firmware-stubs/secureboot.ts";
import { ImageError } from "../images/errors.ts";

const SHIM = "/usr/lib/shim/shimx64.efi.signed";
const GRUB_SIGNED = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
const KERNEL_DEB = path.join(ROOT, ".cache/debs/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb");
const KERNEL_PATH = "./boot/vmlinuz-6.1.0-56-amd64";
const MODES: SecureBootMode[] = ["windows", "uefi-ca", "trusted-launch"];

const keys = () => loadSecureBootKeys(OVMF_MS_VARSTORES[0]);
const withKeys = (k: Partial<SecureBootKeys>): SecureBootKeys => ({ ...keys(), ...k, source: "test" });
const dbCert = (cn: string) => keys().db.find((e) => e.kind === "x509" && e.cert.subject === cn)!;

/** Replace the PE file's bytes at `off` (the certificate table or a section) with `b`. */
function patched(src: Buffer, off: number, b: Buffer | number[]): Buffer {
  const out = Buffer.from(src);
  Buffer.from(b).copy(out, off);
  return out;
}

let dir: string, shim: Buffer, grub: Buffer, unsigned: Buffer, osslSigned: Buffer, sbSigned: Buffer, testCertDer: Buffer;

beforeAll(() => {
  dir = tmpdir("bootgate-sb-");
  shim = fs.readFileSync(SHIM);
  grub = fs.readFileSync(GRUB_SIGNED);
  // A small unsigned GRUB, as a user would build it without grub-efi-amd64-signed.
  const u = path.join(dir, "unsigned.efi");
  sh("grub-mkimage", ["-O", "x86_64-efi", "-p", "/boot/grub", "-o", u, "normal", "part_gpt", "fat"]);
  unsigned = fs.readFileSync(u);
  // Our own db key: a self-signed certificate, then Authenticode signatures made by osslsigncode and by sbsign.
  sh("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path.join(dir, "db.key"), "-out", path.join(dir, "db.crt"),
    "-days", "30", "-subj", "/CN=bootgate test db key"]);
  sh("openssl", ["x509", "-in", path.join(dir, "db.crt"), "-outform", "der", "-out", path.join(dir, "db.der")]);
  testCertDer = fs.readFileSync(path.join(dir, "db.der"));
  sh("osslsigncode", ["sign", "-certs", path.join(dir, "db.crt"), "-key", path.join(dir, "db.key"), "-h", "sha256", "-in", u, "-out", path.join(dir, "ossl.efi")]);
  osslSigned = fs.readFileSync(path.join(dir, "ossl.efi"));
  sh("sbsign", ["--key", path.join(dir, "db.key"), "--cert", path.join(dir, "db.crt"), "--output", path.join(dir, "sb.efi"), u]);
  sbSigned = fs.readFileSync(path.join(dir, "sb.efi"));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("OVMF varstore keys (Debian ovmf)", () => {
  it("reads PK, KEK, db and dbx from OVMF_VARS_4M.ms.fd with Microsoft's 2011 certificates", () => {
    const k = keys();
    const subjects = (l: SignatureEntry[]) => l.map((e) => (e.kind === "x509" ? e.cert.subject : e.kind));
    expect(subjects(k.PK)).toEqual(["Debian UEFI Secure Boot (PK/KEK key)"]);
    expect(subjects(k.KEK)).toContain("Microsoft Corporation KEK CA 2011");
    expect(subjects(k.db)).toEqual(["Microsoft Windows Production PCA 2011", "Microsoft Corporation UEFI CA 2011"]);
    expect(k.db.every((e) => e.owner === MICROSOFT_OWNER_GUID)).toBe(true);
    expect(k.dbx.length).toBeGreaterThan(0);
    expect(k.dbx.every((e) => e.kind === "hash" && e.hash.length === 32)).toBe(true);
    // The 128 KiB layout enrols the same keys.
    const small = loadSecureBootKeys(OVMF_MS_VARSTORES[1]);
    expect(small.db.map((e) => e.kind === "x509" && e.cert.der.toString("hex"))).toEqual(k.db.map((e) => e.kind === "x509" && e.cert.der.toString("hex")));
  });

  it("agrees with openssl on the certificate subjects", () => {
    const e = dbCert("Microsoft Corporation UEFI CA 2011");
    if (e.kind !== "x509") throw new Error("not x509");
    fs.writeFileSync(path.join(dir, "ca.der"), e.cert.der);
    const subj = sh("openssl", ["x509", "-inform", "der", "-in", path.join(dir, "ca.der"), "-noout", "-subject", "-serial"]);
    expect(subj).toContain("CN = Microsoft Corporation UEFI CA 2011");
    expect(subj.toLowerCase()).toContain(`serial=${e.cert.serial}`);
  });

  it("names apt-get install ovmf when the varstore is absent", () => {
    try {
      loadSecureBootKeys(path.join(dir, "no-such-OVMF_VARS.ms.fd"));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ImageError);
      expect((e as ImageError).code).toBe("E_VARSTORE_MISSING");
      expect((e as ImageError).message).toContain("apt-get install ovmf");
    }
  });

  const store = () => Buffer.from(fs.readFileSync(OVMF_MS_VARSTORES[0]));
  const varOffset = (b: Buffer, name: string) => {
    const needle = Buffer.from(name + "\0", "utf16le");
    for (let p = b.indexOf(needle); p >= 0; p = b.indexOf(needle, p + 1)) if (b.readUInt16LE(p - 60) === 0x55aa) return p - 60;
    throw new Error(`${name} not found`);
  };
  const code = (f: () => unknown) => { try { f(); } catch (e) { return (e as ImageError).code; } return "none"; };

  it("refuses a varstore whose firmware volume signature is not _FVH", () => {
    const b = store(); b.write("XXXX", 40, "latin1");
    expect(code(() => parseVarstore(b))).toBe("E_VARSTORE_FV_SIGNATURE");
  });
  it("refuses a varstore whose firmware volume header checksum is wrong", () => {
    const b = store(); b[54] ^= 1;
    expect(code(() => parseVarstore(b))).toBe("E_VARSTORE_FV_CHECKSUM");
  });
  it("refuses a varstore cut off in its firmware volume header", () => {
    expect(code(() => parseVarstore(store().subarray(0, 40)))).toBe("E_VARSTORE_TRUNCATED");
  });
  it("refuses a varstore whose db DataSize is 2^32-1", () => {
    const b = store(); b.writeUInt32LE(0xffffffff, varOffset(b, "db") + 40);
    expect(code(() => parseVarstore(b))).toBe("E_VARSTORE_VARIABLE");
  });
  it("drops a db variable whose state is VAR_DELETED (and then reports no keys)", () => {
    const b = store(); b[varOffset(b, "db") + 2] = 0x3c;
    const vars = parseVarstore(b);
    expect(vars.find((v) => v.name === "db")).toBeUndefined();
    expect(vars.find((v) => v.name === "PK")).toBeDefined();
    const f = path.join(dir, "deleted-db.fd"); fs.writeFileSync(f, b);
    expect(code(() => loadSecureBootKeys(f))).toBe("E_VARSTORE_NO_KEYS");
  });
  it("refuses an EFI_SIGNATURE_LIST whose SignatureSize is 0", () => {
    const l = Buffer.alloc(28 + 48); guidBytes(EFI_CERT_SHA256_GUID).copy(l, 0);
    l.writeUInt32LE(l.length, 16); l.writeUInt32LE(0, 24);
    expect(code(() => parseSignatureLists(l))).toBe("E_VARSTORE_SIGLIST");
  });
  it("refuses an EFI_SIGNATURE_LIST whose SignatureListSize is smaller than its header", () => {
    const l = Buffer.alloc(28 + 48); guidBytes(EFI_CERT_SHA256_GUID).copy(l, 0);
    l.writeUInt32LE(20, 16); l.writeUInt32LE(48, 24);
    expect(code(() => parseSignatureLists(l))).toBe("E_VARSTORE_SIGLIST");
  });
  it("refuses a SHA-256 signature list with 40-byte entries", () => {
    const l = Buffer.alloc(28 + 40); guidBytes(EFI_CERT_SHA256_GUID).copy(l, 0);
    l.writeUInt32LE(l.length, 16); l.writeUInt32LE(40, 24);
    expect(code(() => parseSignatureLists(l))).toBe("E_VARSTORE_SIGLIST");
  });
  it("refuses an X.509 signature entry that is not a certificate", () => {
    const l = Buffer.alloc(28 + 16 + 64); guidBytes(EFI_CERT_X509_GUID).copy(l, 0);
    l.writeUInt32LE(l.length, 16); l.writeUInt32LE(80, 24); prng(5, 64).copy(l, 44);
    expect(code(() => parseSignatureLists(l))).toBe("E_VARSTORE_X509");
  });
});

describe("templates and EFI_SIGNATURE_LIST encoding", () => {
  it("builds the Hyper-V and Azure templates", () => {
    const cn = (m: SecureBootMode) => secureBootTemplate(m).db.map((e) => (e.kind === "x509" ? e.cert.subject : "?"));
    expect(secureBootTemplate("windows").name).toBe("MicrosoftWindows");
    expect(secureBootTemplate("uefi-ca").name).toBe("MicrosoftUEFICertificateAuthority");
    expect(secureBootTemplate("trusted-launch").name).toBe("Trusted Launch");
    expect(cn("windows")).toEqual(["Microsoft Windows Production PCA 2011"]);
    expect(cn("uefi-ca")).toEqual(["Microsoft Corporation UEFI CA 2011"]);
    expect(cn("trusted-launch")).toEqual(["Microsoft Windows Production PCA 2011", "Microsoft Corporation UEFI CA 2011"]);
    for (const m of MODES) expect(secureBootTemplate(m).KEK).toBe(keys().KEK);
    expect(secureBootTemplate("off").db).toEqual([]);
  });

  it("round-trips every variable through signatureListBytes and the varstore parser", () => {
    for (const m of MODES) {
      const t = secureBootTemplate(m);
      for (const v of ["PK", "KEK", "db", "dbx"] as const) {
        const again = parseSignatureLists(signatureListBytes(t, v));
        const key = (e: SignatureEntry) => e.owner + (e.kind === "x509" ? e.cert.der.toString("hex") : e.kind === "hash" ? e.hash.toString("hex") : e.kind);
        expect(again.map(key)).toEqual(t[v].map(key));
      }
    }
    expect(signatureListBytes(secureBootTemplate("off"), "db").length).toBe(0);
  });

  it("reproduces the varstore's own db, dbx, KEK and PK bytes exactly", () => {
    const vars = parseVarstore(fs.readFileSync(OVMF_MS_VARSTORES[0]));
    const raw = (name: string, guid: string) => vars.find((v) => v.name === name && v.guid === guid)!.data;
    const t = secureBootTemplate("trusted-launch");
    expect(signatureListBytes(t, "db").equals(raw("db", EFI_IMAGE_SECURITY_DATABASE_GUID))).toBe(true);
    expect(signatureListBytes(t, "dbx").equals(raw("dbx", EFI_IMAGE_SECURITY_DATABASE_GUID))).toBe(true);
    expect(signatureListBytes(t, "KEK").equals(raw("KEK", EFI_GLOBAL_VARIABLE))).toBe(true);
    expect(signatureListBytes(t, "PK").equals(raw("PK", EFI_GLOBAL_VARIABLE))).toBe(true);
  });

  it("lays out EFI_SIGNATURE_LIST fields per UEFI 2.10 32.4.1", () => {
    const t = secureBootTemplate("uefi-ca");
    const b = signatureListBytes(t, "db"), e = t.db[0];
    if (e.kind !== "x509") throw new Error("not x509");
    expect(b.subarray(0, 16).toString("hex")).toBe("a159c0a5e494a74a87b5ab155c2bf072"); // EFI_CERT_X509_GUID
    expect(b.readUInt32LE(16)).toBe(28 + 16 + e.cert.der.length);                   // SignatureListSize
    expect(b.readUInt32LE(20)).toBe(0);                                               // SignatureHeaderSize
    expect(b.readUInt32LE(24)).toBe(16 + e.cert.der.length);                         // SignatureSize
    expect(b.subarray(28, 44).toString("hex")).toBe("bd9afa775903324dbd6028f4e78f784b"); // owner 77fa9abd-...
    expect(b.subarray(44).equals(e.cert.der)).toBe(true);
    // Hashes of one type share one list of 48-byte entries.
    const dbx = [...keys().dbx, { kind: "hash" as const, owner: MICROSOFT_OWNER_GUID, alg: "sha256" as const, hash: Buffer.alloc(32, 7) }];
    const x = signatureListBytes(secureBootTemplate("uefi-ca", withKeys({ dbx })), "dbx");
    expect(x.subarray(0, 16).toString("hex")).toBe("2616c4c14c509240aca941f936934328"); // EFI_CERT_SHA256_GUID
    expect([x.length, x.readUInt32LE(16), x.readUInt32LE(24)]).toEqual([28 + 2 * 48, 28 + 2 * 48, 48]);
  });
});

describe("Authenticode verification of real binaries", () => {
  it("accepts Microsoft-signed shim under uefi-ca and Trusted Launch, denies it under the windows template", () => {
    const t0 = performance.now();
    const v = verifyImage(shim, secureBootTemplate("uefi-ca"));
    const ms = performance.now() - t0;
    console.log(`verifyImage(shimx64.efi.signed, uefi-ca): ${ms.toFixed(1)} ms`);
    expect(v).toMatchObject({ allowed: true, reason: "signed-by-db", trustedBy: "Microsoft Corporation UEFI CA 2011" });
    expect(v.digest).toBe(authenticodeDigest(shim, "sha256").toString("hex"));
    expect(v.signers.map((s) => s.subject)).toContain("Microsoft Windows UEFI Driver Publisher");
    expect(verifyImage(shim, secureBootTemplate("trusted-launch")).allowed).toBe(true);
    const w = verifyImage(shim, secureBootTemplate("windows"));
    expect(w).toMatchObject({ allowed: false, reason: "signer-not-trusted" });
    expect(acceptingModes(shim)).toEqual(["uefi-ca", "trusted-launch"]);
    const f = secureBootFinding(w, secureBootTemplate("windows"), "\\EFI\\BOOT\\BOOTX64.EFI")!;
    expect(f.code).toBe("SECUREBOOT_DENIED");
    expect(f.message).toContain(SCREEN_DENIED);
    expect(f.message).toContain("MicrosoftWindows");
    expect(f.message).toContain("Microsoft Windows UEFI Driver Publisher");
    expect(f.remedy).toContain("select the Microsoft UEFI Certificate Authority template");
    expect(f.remedy).toContain("Set-VMFirmware -VMName <vm> -SecureBootTemplate MicrosoftUEFICertificateAuthority");
    expect(secureBootFinding(v, secureBootTemplate("uefi-ca"), "x")).toBeUndefined();
  });

  it("denies Debian-signed GRUB under every firmware template (shim verifies it, not firmware)", () => {
    for (const m of MODES) {
      const v = verifyImage(grub, secureBootTemplate(m));
      expect(v).toMatchObject({ allowed: false, reason: "signer-not-trusted" });
      expect(v.signers[0].issuer).toBe("Debian Secure Boot CA");
    }
    expect(acceptingModes(grub)).toEqual([]);
    const f = secureBootFinding(verifyImage(grub, secureBootTemplate("uefi-ca")), secureBootTemplate("uefi-ca"), "grubx64.efi")!;
    expect(f.remedy).toContain("Set-VMFirmware -VMName <vm> -EnableSecureBoot Off");
    expect(f.remedy).toContain("shim");
    expect(verifyImage(grub, secureBootTemplate("off")).allowed).toBe(true);
  });

  it("denies the Debian-signed kernel (vmlinuz EFI stub) under every firmware template", () => {
    const kdir = path.join(dir, "kernel");
    fs.mkdirSync(kdir);
    if (fs.existsSync(KERNEL_DEB)) {
      // --occurrence stops tar after the one member (the modules that follow are not unpacked).
      sh("bash", ["-c", `dpkg-deb --fsys-tarfile '${KERNEL_DEB}' | tar -x --occurrence -C '${kdir}' '${KERNEL_PATH}'; test -s '${kdir}/${KERNEL_PATH}'`]);
    } else {
      sh("bash", ["-c", `cd '${kdir}' && apt-get download linux-image-6.1.0-56-amd64 >/dev/null && dpkg-deb -x linux-image-6.1.0-56-amd64_*.deb .`]);
    }
    const k = fs.readFileSync(path.join(kdir, KERNEL_PATH));
    expect(parsePe(k).machine).toBe("x64");
    for (const m of MODES) {
      const v = verifyImage(k, secureBootTemplate(m));
      expect(v).toMatchObject({ allowed: false, reason: "signer-not-trusted" });
      expect(v.signers[0].subject).toMatch(/^Debian Secure Boot Signer/);
    }
  });

  it("denies an unsigned grub-mkimage image unless Secure Boot is off or its hash is in db", () => {
    expect(certificateTable(unsigned)).toEqual([]);
    for (const m of MODES) expect(verifyImage(unsigned, secureBootTemplate(m))).toMatchObject({ allowed: false, reason: "unsigned", signers: [] });
    expect(verifyImage(unsigned, secureBootTemplate("off"))).toMatchObject({ allowed: true, reason: "unsigned" });
    const f = secureBootFinding(verifyImage(unsigned, secureBootTemplate("windows")), secureBootTemplate("windows"), "BOOTX64.EFI")!;
    expect(f.code).toBe("SECUREBOOT_UNSIGNED");
    expect(f.message).toContain(SCREEN_DENIED);
    const hash = authenticodeDigest(unsigned, "sha256");
    const db = [...keys().db, { kind: "hash" as const, owner: MICROSOFT_OWNER_GUID, alg: "sha256" as const, hash }];
    expect(verifyImage(unsigned, secureBootTemplate("uefi-ca", withKeys({ db })))).toMatchObject({ allowed: true, reason: "hash-in-db" });
  });
});

describe("images signed here and tampered images", () => {
  it("accepts an osslsigncode- and an sbsign-signed image only when the signing certificate is in db", () => {
    const cert = parseX509(testCertDer, "test cert");
    const db = [...keys().db, { kind: "x509" as const, owner: MICROSOFT_OWNER_GUID, cert }];
    const mine = secureBootTemplate("uefi-ca", withKeys({ db }));
    for (const img of [osslSigned, sbSigned]) {
      expect(verifyImage(img, mine)).toMatchObject({ allowed: true, reason: "signed-by-db", trustedBy: "bootgate test db key" });
      for (const m of MODES) expect(verifyImage(img, secureBootTemplate(m))).toMatchObject({ allowed: false, reason: "signer-not-trusted" });
    }
    // The test key also lands in dbx: revoked by certificate, and by its TBS hash.
    const dbxCert = secureBootTemplate("uefi-ca", withKeys({ db, dbx: [{ kind: "x509", owner: MICROSOFT_OWNER_GUID, cert }] }));
    expect(verifyImage(osslSigned, dbxCert)).toMatchObject({ allowed: false, reason: "cert-in-dbx" });
    const dbxTbs = secureBootTemplate("uefi-ca", withKeys({ db, dbx: [{ kind: "x509-hash", owner: MICROSOFT_OWNER_GUID, alg: "sha256", tbsHash: tbsHash(cert, "sha256"), revocationTime: Buffer.alloc(16) }] }));
    expect(verifyImage(osslSigned, dbxTbs)).toMatchObject({ allowed: false, reason: "cert-in-dbx" });
  });

  it("denies shim when the Microsoft UEFI CA 2011 that issued its signer is listed in dbx", () => {
    const ca = dbCert("Microsoft Corporation UEFI CA 2011");
    const t = secureBootTemplate("uefi-ca", withKeys({ dbx: [...keys().dbx, ca] }));
    const v = verifyImage(shim, t);
    expect(v).toMatchObject({ allowed: false, reason: "cert-in-dbx" });
    const f = secureBootFinding(v, t, "BOOTX64.EFI")!;
    expect(f.code).toBe("SECUREBOOT_DBX");
    expect(f.message).toContain("Microsoft Corporation UEFI CA 2011");
  });

  it("denies shim whose image hash is in dbx, with the DBX screen line", () => {
    const hash = authenticodeDigest(shim, "sha256");
    const t = secureBootTemplate("uefi-ca", withKeys({ dbx: [{ kind: "hash", owner: MICROSOFT_OWNER_GUID, alg: "sha256", hash }] }));
    const v = verifyImage(shim, t);
    expect(v).toMatchObject({ allowed: false, reason: "hash-in-dbx" });
    const f = secureBootFinding(v, t, "BOOTX64.EFI")!;
    expect(f.code).toBe("SECUREBOOT_DBX");
    expect(f.message).toContain(SCREEN_DBX);
    expect(f.message).toContain(hash.toString("hex"));
  });

  it("reports digest-mismatch for a shim with one byte flipped in .text after signing", () => {
    const text = parsePe(shim).sections.find((s) => s.name === ".text")!;
    const off = text.pointerToRawData + (text.sizeOfRawData >> 1);
    const bad = patched(shim, off, [shim[off] ^ 0x01]);
    for (const m of MODES) expect(verifyImage(bad, secureBootTemplate(m))).toMatchObject({ allowed: false, reason: "digest-mismatch" });
    const f = secureBootFinding(verifyImage(bad, secureBootTemplate("uefi-ca")), secureBootTemplate("uefi-ca"), "x")!;
    expect(f.code).toBe("SECUREBOOT_DENIED");
    expect(f.message).toContain("changed after signing");
  });

  it("reports bad-signature for an image whose signed attributes were altered", () => {
    // Flip one byte inside the signer's RSA signature (the last 256 bytes of the osslsigncode blob's SignerInfo).
    const w = certificateTable(osslSigned)[0];
    const sig = w.data.lastIndexOf(Buffer.from([0x04, 0x82, 0x01, 0x00])); // OCTET STRING of 256 bytes: the RSA signature
    expect(sig).toBeGreaterThan(0);
    const bad = patched(osslSigned, w.offset + 8 + sig + 4 + 100, [w.data[sig + 4 + 100] ^ 0x80]);
    const cert = parseX509(testCertDer, "test cert");
    const t = secureBootTemplate("uefi-ca", withKeys({ db: [...keys().db, { kind: "x509", owner: MICROSOFT_OWNER_GUID, cert }] }));
    expect(verifyImage(bad, t)).toMatchObject({ allowed: false, reason: "bad-signature" });
  });

  it("reports malformed-signature for a certificate table whose WIN_CERTIFICATE length runs past the table", () => {
    const w = certificateTable(shim)[0];
    const bad = patched(shim, w.offset, [0xff, 0xff, 0xff, 0x7f]);
    const v = verifyImage(bad, secureBootTemplate("uefi-ca"));
    expect(v).toMatchObject({ allowed: false, reason: "malformed-signature" });
    expect(v.detail).toContain("dwLength");
  });

  it("reports malformed-signature for a PKCS#7 blob overwritten with garbage", () => {
    const w = certificateTable(osslSigned)[0];
    const bad = patched(osslSigned, w.offset + 8, prng(9, w.length - 8));
    const v = verifyImage(bad, secureBootTemplate("uefi-ca"));
    expect(v).toMatchObject({ allowed: false, reason: "malformed-signature", signers: [] });
  });

  it("never throws on 100 random corruptions of a signature blob", () => {
    const w = certificateTable(osslSigned)[0];
    const t = secureBootTemplate("uefi-ca");
    const noise = prng(1234, 100 * 3);
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const pos = w.offset + (noise.readUInt16LE(i * 3) % w.length);
      const bad = patched(osslSigned, pos, [noise[i * 3 + 2]]);
      const v = verifyImage(bad, t);
      expect(v.allowed).toBe(false);
      seen.add(v.reason);
    }
    expect([...seen].every((r) => ["malformed-signature", "bad-signature", "digest-mismatch", "signer-not-trusted", "unsigned"].includes(r))).toBe(true);
    expect(seen.has("malformed-signature")).toBe(true);
    expect(seen.has("bad-signature") || seen.has("digest-mismatch")).toBe(true);
  });
});
