// Benchmark: power-on to Linux hand-off on the Gen1 GRUB/MBR and SYSLINUX fixtures (scripts/build-fixtures-gen1.sh).
// Prints wall time, guest events (BIOS calls + port accesses) and disk reads. Usage: npx tsx scripts/bench-gen1.ts [image...]
import * as path from "node:path";
import { Disk } from "../images/block.ts";
import { rawDriver } from "../images/raw.ts";
import { FileSource } from "../images/source.ts";
import { runGen1 } from "../emu/gen1.ts";

const dir = path.resolve(import.meta.dirname, "../.cache/fixtures/gen1");
const images = process.argv.slice(2).length ? process.argv.slice(2) : [path.join(dir, "grub-mbr.img"), path.join(dir, "syslinux-fat.img")];
for (const img of images) {
  const dev = new Disk(rawDriver.open(new FileSource(img), {} as never));
  const r = runGen1(dev, { maxWallMs: 180_000 });
  console.log(`${path.basename(img)}: ${r.stop.reason} (${r.reached}) in ${r.stats.wallMs} ms wall; ` +
    `${r.stats.events} events, ` +
    `${r.stats.diskReads} INT 13h reads (${r.stats.sectorsRead} sectors), ${r.stats.modeSwitches} mode switches` +
    (r.handoff ? `; Linux ${r.handoff.kernelVersion?.split(" ")[0]} cmdline "${r.handoff.cmdline}"` : ""));
  dev.close();
}
