// CRC-32C (Castagnoli), as [MS-VHDX] 2.2.2 uses for headers and region tables; from the `crc-32` package.
import { createRequire } from "node:module";

const CRC32C = createRequire(import.meta.url)("crc-32/crc32c") as { buf(data: Uint8Array, seed?: number): number };

/** CRC-32C of `b`, with the 4-byte checksum field at `zeroAt` (if given) taken as zero. */
export function crc32c(b: Uint8Array, zeroAt?: number): number {
  if (zeroAt === undefined) return CRC32C.buf(b) >>> 0;
  const z = Buffer.from(b);
  z.writeUInt32LE(0, zeroAt);
  return CRC32C.buf(z) >>> 0;
}
