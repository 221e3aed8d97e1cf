// Inputs found by the mutation fuzzer (scripts/fuzz.ts), kept as seeded mutation recipes over the seeds
// the harness builds with the real tools (scripts/fuzz-seeds.ts), not as binary files. A crash found by
// `npm run fuzz` goes into CRASHES under a name describing the bad input; the long run of seed 20251124
// (29,540 cases) found none, so the table holds the slowest input it met per target, which must stay a
// result or an ImageError well inside the hang bound.
import { beforeAll, describe, expect, it } from "vitest";
import { performance } from "node:perf_hooks";
import { ImageError } from "../images/errors.ts";
import { applyRecipe } from "../scripts/fuzz-mutate.ts";
import { targetByName } from "../scripts/fuzz-targets.ts";
import { buildSeeds } from "../scripts/fuzz-seeds.ts";

interface Kept { name: string; target: string; seed: string; recipe: string[] }

/** Crashes found by the fuzzer (none so far): name, target, seed file, recipe. */
const CRASHES: Kept[] = [];

/** The slowest case per target of the long run (`npm run fuzz -- --seed 20251124`), as recipes. */
const SLOWEST: Kept[] = [
  { name: "a BCD hive with bits flipped at bytes 8035 and 12256", target: "bcd", seed: "BCD", recipe: ["bitflip@8035^4", "bitflip@12256^1"] },
  { name: "a BLS snippet with a duplicated line piece, a flipped bit and 64 KiB of NULs appended", target: "bls", seed: "bls-0.conf", recipe: ["dup 16@275->230", "bitflip@15^2", "extend +65536 00", "int16=0xff00@224"] },
  { name: "a crc-format cpio archive with NUL and 0xFF7F written into entry headers", target: "cpio", seed: "crc.cpio", recipe: ["set0@34808", "bitflip@36482^1", "int16=0xff7f@32992"] },
  { name: "an ext2 volume with 2^64-129 written at byte 176496", target: "ext4", seed: "ext2.img", recipe: ["int64=0xffffffffffffff7f@176496"] },
  { name: "a FAT16 volume with 4 KiB of a FAT32 volume spliced in at byte 139470", target: "fat", seed: "fat16.img", recipe: ["splice fat32.img:575578+4096->139470"] },
  { name: "a grub.cfg with 64 KiB of 0xFF bytes appended and binary words written into it", target: "grub-cfg", seed: "grub-menu-timeout.cfg", recipe: ["extend +65536 ff", "int32=0x00000100@496", "int32=0x29020100@44", "set80@6"] },
  { name: "a grubenv block with byte 224 set to 0x80", target: "grubenv", seed: "grubenv", recipe: ["set80@224"] },
  { name: "an MBR with 0x2000 written as a 64-bit value over its disk signature (byte 440)", target: "layout", seed: "ebr.img", recipe: ["int64=0x0000000000002000@440"] },
  { name: "an NTFS volume with one bit flipped at byte 6287557", target: "ntfs", seed: "ntfs.img", recipe: ["bitflip@6287557^6"] },
  { name: "a signed grubx64.efi with a zeroed byte inside its certificate table", target: "pkcs7", seed: "grubx64.efi", recipe: ["set0@4182405"] },
  { name: "a qcow2 with big-endian 1 written at byte 12308", target: "qcow2", seed: "disk.qcow2", recipe: ["int32be=0x00000001@12308"] },
  { name: "a hive whose base block is overwritten from byte 439 by 4 KiB of its own hbin", target: "regf", seed: "empty.hive", recipe: ["dup 4096@7357->439"] },
  { name: "a VHDX with one random byte at 12582445 and a zeroed byte at 24504727", target: "vhdx", seed: "grub-mbr.vhdx", recipe: ["rand 0xd8@12582445", "set0@24504727"] },
  { name: "a streamOptimized VMDK with one bit flipped at byte 13887493", target: "vmdk", seed: "grub-mbr.vmdk", recipe: ["bitflip@13887493^6"] },
  { name: "a SYSTEM hive with 0xFFFFFFFF written at byte 26728", target: "windows-system", seed: "SYSTEM", recipe: ["int32=0xffffffff@26728"] },
  { name: "an XFS volume with 0xFFFFFFFF written at byte 5695384", target: "xfs", seed: "xfs.img", recipe: ["int32=0xffffffff@5695384"] },
];

beforeAll(() => { buildSeeds(); }, 120_000);

describe.each([["crash found by the fuzzer", CRASHES], ["slowest input of the long run", SLOWEST]] as const)("%s", (_kind, list) => {
  it.skipIf(list.length > 0)("(none recorded)", () => { expect(list).toEqual([]); });
  it.each(list.map((k) => [k.name, k] as const))("%s ends in a result or an ImageError", async (_name, k) => {
    const t = targetByName(k.target)!;
    const seeds = t.seeds();
    const seed = seeds.find((s) => s.name === k.seed)!;
    expect(seed, `seed ${k.seed} of ${k.target}`).toBeDefined();
    const m = applyRecipe(seed, k.recipe, seeds);
    expect(m.recipe).toEqual(k.recipe);
    const t0 = performance.now();
    try { await t.run(m); } catch (e) { if (!(e instanceof ImageError)) throw e; }
    expect(performance.now() - t0).toBeLessThan(t.hangMs / 2);
  }, 30_000);
});
