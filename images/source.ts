// Read-only synchronous access to host files holding image data. The image is never opened
// for writing: every handle here is O_RDONLY.
import * as fs from "node:fs";
import * as path from "node:path";
import { ImageError, truncated } from "./errors.ts";

export interface ByteSource {
  readonly path: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset`, or a `truncated` error naming `what`. */
  read(offset: number, length: number, what?: string): Buffer;
  /** Up to `length` bytes; shorter at end of file (for probing). */
  readUpTo(offset: number, length: number): Buffer;
  /** Up to `dst.length` bytes at `offset` straight into `dst`; returns how many (fewer only at end of file). */
  readInto(dst: Uint8Array, offset: number): number;
  close(): void;
}

export class FileSource implements ByteSource {
  readonly path: string;
  readonly size: number;
  private fd: number;

  constructor(file: string) {
    this.path = file;
    let st: fs.Stats;
    try {
      this.fd = fs.openSync(file, fs.constants.O_RDONLY);
      st = fs.fstatSync(this.fd);
    } catch (e) {
      throw new ImageError("E_IO_OPEN", "io", `cannot open ${file}: ${(e as Error).message}`);
    }
    if (!st.isFile() && !st.isBlockDevice()) {
      fs.closeSync(this.fd);
      throw new ImageError("E_IO_OPEN", "io", `${file} is not a regular file`);
    }
    this.size = st.size;
  }

  readUpTo(offset: number, length: number): Buffer {
    if (offset >= this.size || length <= 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(Math.min(length, this.size - offset));
    const done = this.readInto(buf, offset);
    return done === buf.length ? buf : buf.subarray(0, done);
  }

  readInto(dst: Uint8Array, offset: number): number {
    if (offset >= this.size || dst.length === 0) return 0;
    const n = Math.min(dst.length, this.size - offset);
    let done = 0;
    while (done < n) {
      let got: number;
      try {
        got = fs.readSync(this.fd, dst, done, n - done, offset + done);
      } catch (e) {
        throw new ImageError("E_IO_READ", "io", `read error in ${this.path} at ${offset + done}: ${(e as Error).message}`);
      }
      if (got === 0) break;
      done += got;
    }
    return done;
  }

  read(offset: number, length: number, what = "data"): Buffer {
    if (offset < 0 || length < 0 || !Number.isSafeInteger(offset + length) || offset + length > this.size) {
      throw truncated("E_TRUNCATED",
        `${path.basename(this.path)}: ${what} at byte ${offset} (+${length}) lies past the end of the file (${this.size} bytes)`);
    }
    const b = this.readUpTo(offset, length);
    if (b.length !== length) {
      throw truncated("E_TRUNCATED", `${path.basename(this.path)}: short read of ${what} at byte ${offset}`);
    }
    return b;
  }

  close(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}
