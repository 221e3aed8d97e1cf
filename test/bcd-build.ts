// Builders for BCD device elements in the byte layout bcdedit writes (shared by the BCD and Windows suites).

/** EFI_GUID bytes (Data1-3 little-endian) from text. */
export function guidBytes(g: string): Buffer {
  const h = g.replace(/[{}-]/g, "");
  const b = Buffer.from(h, "hex");
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

/** A partition device element as bcdedit stores it: options GUID, descriptor header (type 6, size 0x48), payload. */
export function partitionElement(p: { mbr: number; offset: number } | { disk: string; part: string }): Buffer {
  const b = Buffer.alloc(0x58);
  b.writeUInt32LE(6, 0x10); b.writeUInt32LE(0x48, 0x18);
  if ("mbr" in p) { b.writeBigUInt64LE(BigInt(p.offset), 0x20); b.writeUInt32LE(1, 0x34); b.writeUInt32LE(p.mbr, 0x38); }
  else { guidBytes(p.part).copy(b, 0x20); b.writeUInt32LE(0, 0x34); guidBytes(p.disk).copy(b, 0x38); }
  return b;
}
