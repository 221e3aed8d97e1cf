// Assertions shared by the container-driver suites: sector-exact read-back and clean refusals.
import { expect } from "vitest";
import type { BlockDevice } from "../images/block.ts";
import { ImageError } from "../images/errors.ts";
import { openImage, type OpenOptions } from "../images/registry.ts";
import { sha256 } from "./helpers.ts";

/**
 * Every sector of `disk` equals `original`, the last one included, plus single sectors and a read
 * straddling two blocks. With `pad`, `original` may be shorter than the virtual disk (the rest reads
 * as zeros: CHS-rounded VHD sizes); otherwise the sizes must match exactly.
 */
export function assertSameSectors(disk: BlockDevice, original: Buffer, opts: { pad?: boolean } = {}): void {
  const ss = disk.sectorSize;
  let want = original;
  if (opts.pad) {
    want = Buffer.alloc(disk.sectorCount * ss);
    original.copy(want, 0, 0, Math.min(original.length, want.length));
  } else {
    expect(disk.sectorCount * ss).toBe(original.length);
  }
  const step = Math.max(1, (8 << 20) / ss);
  for (let lba = 0; lba < disk.sectorCount; lba += step) {
    const n = Math.min(step, disk.sectorCount - lba);
    const got = Buffer.from(disk.read(lba, n));
    if (!got.equals(want.subarray(lba * ss, (lba + n) * ss))) {
      let i = 0;
      while (got[i] === want[lba * ss + i]) i++;
      throw new Error(`sector ${lba + Math.floor(i / ss)} (of ${ss} bytes) differs`);
    }
  }
  const last = disk.sectorCount - 1;
  for (const lba of [0, 127, 128, 4097, last].filter((l) => l <= last)) {
    expect(Buffer.from(disk.read(lba, 1)).equals(want.subarray(lba * ss, (lba + 1) * ss))).toBe(true);
  }
  const mid = 64 * 1024 - 100;
  if (want.length >= mid + 300) expect(disk.readBytes(mid, 300).equals(want.subarray(mid, mid + 300))).toBe(true);
}

/**
 * Opening `file` (and with `read`, reading every sector) throws an ImageError with `code`, without
 * hanging, and the file is left untouched.
 */
export function refuses(file: string, code: string, opts: OpenOptions & { read?: boolean } = {}): ImageError {
  const before = sha256(file);
  const t0 = performance.now();
  let err: unknown;
  try {
    const d = openImage(file, opts);
    try { if (opts.read) for (let l = 0; l < d.sectorCount; l += 2048) d.read(l, Math.min(2048, d.sectorCount - l)); } finally { d.close(); }
  } catch (e) { err = e; }
  expect(performance.now() - t0).toBeLessThan(10_000);     // a hang guard, not a benchmark
  expect(sha256(file)).toBe(before);
  expect(err).toBeInstanceOf(ImageError);
  expect((err as ImageError).code).toBe(code);
  return err as ImageError;
}
