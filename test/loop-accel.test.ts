// The host copy/fill helpers behind the loop accelerator (emu/loop-accel.ts) against plain memmove/memset semantics.
import { describe, expect, it } from "vitest";
import { memmoveSparse, fillZeroSparse } from "../emu/loop-accel.ts";
import { prng } from "./helpers.ts";

const K = 64 * 1024;

/** A buffer of 40 chunks, some random, some zero, some zero but for one byte at an edge. */
function patterned(seed: number): Buffer {
  const b = Buffer.alloc(40 * K);
  const r = prng(seed, 40 * K);
  for (let c = 0; c < 40; c++) {
    const kind = (seed + c * 7) % 4;
    if (kind === 1) r.copy(b, c * K, c * K, (c + 1) * K);
    else if (kind === 2) b[c * K] = 1 + (c & 0x7f);
    else if (kind === 3) b[(c + 1) * K - 1] = 0x80 | c;
  }
  return b;
}

describe("sparse memmove and zero fill", () => {
  it("gives memmove's bytes for disjoint and overlapping ranges in both directions", () => {
    const cases: [number, number, number][] = [
      [20 * K, 0, 10 * K + 123],        // disjoint, forward
      [K + 5, 3 * K + 1, 25 * K],       // overlapping, destination below the source
      [3 * K + 1, K + 5, 25 * K],       // overlapping, destination above the source
      [7, 0, 30 * K],                   // a few bytes apart
      [0, 9 * K, 2 * K - 1],            // below the chunked size
    ];
    for (const [i, [dst, src, len]] of cases.entries()) {
      const a = patterned(i + 1), b = Buffer.from(a);
      a.copyWithin(dst, src, src + len);
      memmoveSparse(b, dst, src, len);
      expect(b.equals(a), `case ${i}`).toBe(true);
    }
  });

  it("zeroes exactly the range asked, whatever was there", () => {
    const a = patterned(9), b = Buffer.from(a);
    a.fill(0, K + 3, 33 * K + 17);
    fillZeroSparse(b, K + 3, 32 * K + 14);
    expect(b.equals(a)).toBe(true);
  });
});
