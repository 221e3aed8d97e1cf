// Evidence helpers for Gen1 results: which partition an LBA lies in (MBR primaries, UEFI 2.10 5.3 GPT entries,
// bounded by images/limits.ts), and the fixed failure messages of well-known boot code found in screen text.
import type { BlockDevice } from "../images/block.ts";
import { MAX_GPT_ENTRIES } from "../images/limits.ts";

export interface PartitionRef { index: number; scheme: "mbr" | "gpt"; start: number; sectors: number; type: string; offset: number }

/** The partition holding `lba`, or undefined. Never throws on malformed tables. */
export function partitionOf(dev: BlockDevice, lba: number): PartitionRef | undefined {
  try {
    const s0 = Buffer.from(dev.read(0, 1));
    if (s0.readUInt16LE(510) !== 0xaa55) return undefined;
    const parts: Omit<PartitionRef, "offset">[] = [];
    let gpt = false;
    for (let i = 0; i < 4; i++) {
      const e = 0x1be + i * 16;
      const type = s0[e + 4], start = s0.readUInt32LE(e + 8), sectors = s0.readUInt32LE(e + 12);
      if (type === 0xee) gpt = true;
      else if (type && sectors) parts.push({ index: i + 1, scheme: "mbr", start, sectors, type: "0x" + type.toString(16).padStart(2, "0") });
    }
    if (gpt && dev.sectorCount > 2) {
      const h = Buffer.from(dev.read(1, 1));
      if (h.toString("latin1", 0, 8) === "EFI PART") {
        const first = Number(h.readBigUInt64LE(72)), n = Math.min(h.readUInt32LE(80), MAX_GPT_ENTRIES), size = h.readUInt32LE(84);
        if (size >= 128 && size <= 4096 && first > 0 && first + Math.ceil(n * size / 512) <= dev.sectorCount) {
          const arr = Buffer.from(dev.read(first, Math.ceil(n * size / 512)));
          for (let i = 0; i < n; i++) {
            const e = arr.subarray(i * size, i * size + 128);
            const start = Number(e.readBigUInt64LE(32)), end = Number(e.readBigUInt64LE(40));
            if (e.subarray(0, 16).every((x) => x === 0) || end < start) continue;
            parts.push({ index: i + 1, scheme: "gpt", start, sectors: end - start + 1, type: guid(e.subarray(0, 16)) });
          }
        }
      }
    }
    const p = parts.find((x) => lba >= x.start && lba < x.start + x.sectors);
    return p ? { ...p, offset: lba - p.start } : undefined;
  } catch {
    return undefined;
  }
}

function guid(b: Buffer): string {
  const h = (x: Buffer) => x.toString("hex");
  return [h(Buffer.from(b.subarray(0, 4)).reverse()), h(Buffer.from(b.subarray(4, 6)).reverse()), h(Buffer.from(b.subarray(6, 8)).reverse()),
    h(b.subarray(8, 10)), h(b.subarray(10, 16))].join("-").toUpperCase();
}

/** Fixed messages printed by common MBR / boot record / loader code when it gives up. */
const MESSAGES = [
  "Missing operating system", "Operating system load error", "Multiple active partitions", "Missing OS", "Disk error",
  "Invalid partition table", "Error loading operating system", "Operating System not found", "No bootable device",
  "Reboot and Select proper Boot device", "BOOTMGR is missing", "NTLDR is missing", "A disk read error occurred",
  "Boot error", "Could not find kernel image", "No DEFAULT or UI configuration directive found", "Non-system disk or disk error",
  "Invalid system disk", "No boot sector on hard disk",
];

export function failureMessages(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = MESSAGES.find((x) => line.includes(x));
    if (m && !out.includes(line.trim()) && out.length < 4) out.push(line.trim());
  }
  return out;
}
