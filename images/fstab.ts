// /etc/fstab (fstab(5), getmntent(3) octal escapes) and /etc/crypttab (crypttab(5)) of a Linux guest.
import { overLimit } from "./errors.ts";
import { MAX_BOOT_TEXT_BYTES } from "./limits.ts";

export interface FstabEntry {
  /** 1-based line number in the file. */
  line: number;
  /** fs_spec: UUID=..., LABEL=..., PARTUUID=..., PARTLABEL=..., /dev/..., server:/path, tmpfs... */
  spec: string;
  /** fs_file (mount point), "none"/"swap" for swap. */
  file: string;
  vfstype: string;
  options: string[];
  freq: number;
  passno: number;
  /** A failure to mount does not stop the boot. */
  nofail: boolean;
  /** Not mounted at boot at all. */
  noauto: boolean;
  /** x-systemd.device-timeout= etc. kept in options; fields missing from a short line get defaults. */
  shortLine: boolean;
}

export interface CrypttabEntry { line: number; name: string; device: string; keyFile?: string; options: string[] }

/** getmntent's decoding: \040 space, \011 tab, \012 newline, \134 backslash (any 3-digit octal accepted). */
export function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8) & 0xff));
}

function lines(text: string | Buffer, what: string): string[] {
  if (text.length > MAX_BOOT_TEXT_BYTES) throw overLimit("E_FSTAB_SIZE", `${what} is ${text.length} bytes, more than ${MAX_BOOT_TEXT_BYTES}`);
  return (typeof text === "string" ? text : text.toString("utf8")).split("\n");
}

export function parseFstab(text: string | Buffer): FstabEntry[] {
  const out: FstabEntry[] = [];
  lines(text, "fstab").forEach((raw, i) => {
    const l = raw.replace(/\r$/, "").trim();
    if (l === "" || l.startsWith("#")) return;
    const f = l.split(/[ \t]+/);
    if (f.length < 2) return;                      // getmntent skips lines without a mount point
    const options = (f[3] ?? "defaults").split(",").filter(Boolean).map(unescapeMount);
    out.push({
      line: i + 1, spec: unescapeMount(f[0]), file: unescapeMount(f[1]), vfstype: f[2] ?? "auto", options,
      freq: Number.parseInt(f[4] ?? "0", 10) || 0, passno: Number.parseInt(f[5] ?? "0", 10) || 0,
      nofail: options.includes("nofail"), noauto: options.includes("noauto"), shortLine: f.length < 4,
    });
  });
  return out;
}

/** The entry mounted at `mountPoint` ("/", "/boot", "/boot/efi"), the last one winning like mount -a. */
export function fstabFor(entries: FstabEntry[], mountPoint: string): FstabEntry | undefined {
  return entries.filter((e) => e.file === mountPoint).pop();
}

/** crypttab: name, device (UUID=/PARTUUID=/path), key file ("none", "-" = ask), options. */
export function parseCrypttab(text: string | Buffer): CrypttabEntry[] {
  const out: CrypttabEntry[] = [];
  lines(text, "crypttab").forEach((raw, i) => {
    const l = raw.replace(/\r$/, "").trim();
    if (l === "" || l.startsWith("#")) return;
    const f = l.split(/[ \t]+/);
    if (f.length < 2) return;
    const key = f[2] && f[2] !== "none" && f[2] !== "-" ? unescapeMount(f[2]) : undefined;
    out.push({ line: i + 1, name: unescapeMount(f[0]), device: unescapeMount(f[1]), ...(key ? { keyFile: key } : {}), options: (f[3] ?? "").split(",").filter(Boolean) });
  });
  return out;
}
