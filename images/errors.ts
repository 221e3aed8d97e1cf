// One error type for every parser of untrusted image bytes (STYLE.md: keep corrupt,
// unsupported and truncated apart, carry the offending values in the message).

/** What went wrong, in the sense QEMU's block layer separates EINVAL / ENOTSUP / EFBIG. */
export type ImageErrorKind =
  | "corrupt"      // structures are invalid (bad checksum, bad cookie, inconsistent fields)
  | "unsupported"  // valid, but a feature we do not read (encryption, unknown subformat)
  | "truncated"    // the file ends before a structure it must hold
  | "limit"        // a value beyond a safety bound (table size, chain depth)
  | "io"           // the host could not read a file
  | "usage";       // the caller asked for something impossible (LBA past the end)

export class ImageError extends Error {
  readonly code: string;
  readonly kind: ImageErrorKind;
  constructor(code: string, kind: ImageErrorKind, message: string) {
    super(message);
    this.name = "ImageError";
    this.code = code;
    this.kind = kind;
  }
}

export const corrupt = (code: string, msg: string) => new ImageError(code, "corrupt", msg);
export const unsupported = (code: string, msg: string) => new ImageError(code, "unsupported", msg);
export const truncated = (code: string, msg: string) => new ImageError(code, "truncated", msg);
export const overLimit = (code: string, msg: string) => new ImageError(code, "limit", msg);

export const hex = (n: number | bigint, width = 8): string =>
  "0x" + n.toString(16).padStart(width, "0");
