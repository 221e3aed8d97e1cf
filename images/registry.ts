// Container formats as descriptors in one registry (QEMU's BlockDriver table). Probing asks
// every driver and takes the best score; the file extension decides when content says nothing,
// because Hyper-V and Azure go by the extension.
import * as path from "node:path";
import * as fs from "node:fs";
import { Disk, FileSource, confinePath, parentDepthGuard, type BlockDevice, type OpenContext, type VirtualDisk } from "./block.ts";
import type { ByteSource } from "./source.ts";
import { ImageError } from "./errors.ts";
import { finding } from "../emu/findings.ts";
import "./findings-image.ts";
import { rawDriver } from "./raw.ts";
import { vhdDriver } from "./vhd.ts";
import { vhdxDriver } from "./vhdx.ts";
import { vmdkDriver } from "./vmdk.ts";
import { qcow2Driver } from "./qcow2.ts";

export interface ContainerDriver {
  format: string;
  /** File name extensions that mean this format to Hyper-V/Azure/VMware/KVM tools. */
  extensions: string[];
  /** 0 (not this format) .. 100 (certain), from the first 64 KiB and the file. */
  probe(head: Buffer, size: number, src: ByteSource): number;
  open(src: ByteSource, ctx: OpenContext): VirtualDisk;
}

export const drivers: ContainerDriver[] = [vhdDriver, vhdxDriver, vmdkDriver, qcow2Driver, rawDriver];

export function driverFor(format: string): ContainerDriver | undefined {
  return drivers.find((d) => d.format === format);
}

const PROBE_BYTES = 65536;

export interface OpenOptions {
  /** Force a format instead of probing. */
  format?: string;
  /** Extra folders from which parent images / extents may be opened. */
  allowDirs?: string[];
}

function pickDriver(src: ByteSource, forced?: string): { driver: ContainerDriver; extMismatch?: string } {
  if (forced) {
    const d = driverFor(forced);
    if (!d) throw new ImageError("E_FORMAT_UNKNOWN", "usage", `unknown format '${forced}' (known: ${drivers.map((x) => x.format).join(", ")})`);
    return { driver: d };
  }
  const head = src.readUpTo(0, PROBE_BYTES);
  let best: ContainerDriver = rawDriver;
  let bestScore = 0;
  for (const d of drivers) {
    const s = d.probe(head, src.size, src);
    if (s > bestScore) { best = d; bestScore = s; }
  }
  const ext = path.extname(src.path).slice(1).toLowerCase();
  const byExt = drivers.find((d) => d.format !== "raw" && d.extensions.includes(ext));
  if (byExt && best === rawDriver) return { driver: byExt };       // invalid structures: corrupt, never raw
  if (byExt && best !== byExt) return { driver: best, extMismatch: ext };
  return { driver: best };
}

function makeContext(allowDirs: string[], chain: string[]): OpenContext {
  const ctx: OpenContext = {
    allowDirs,
    chain,
    openParent(from, candidates, expectFormat) {
      for (const c of candidates) {
        if (!c) continue;
        const p = confinePath(from.path, c, allowDirs);
        if (!p) continue;
        parentDepthGuard(chain, p);
        const src = new FileSource(p);
        try {
          const { driver } = pickDriver(src, undefined);
          if (expectFormat && driver.format !== expectFormat && driver.format !== "raw") {
            throw new ImageError("E_PARENT_FORMAT", "corrupt", `parent ${path.basename(p)} is ${driver.format}, expected ${expectFormat}`);
          }
          return driver.open(src, makeContext(allowDirs, [...chain, p]));
        } catch (e) { src.close(); throw e; }
      }
      throw new ImageError("E_PARENT_MISSING", "corrupt",
        `parent image not found: ${candidates.filter(Boolean).join(" or ")} (looked in ${path.dirname(from.path)}` +
        `${allowDirs.length ? " and " + allowDirs.join(", ") : ""}; use --allow-dir to permit another folder)`);
    },
    openRelated(from, name) {
      const p = confinePath(from.path, name, allowDirs);
      if (!p) throw new ImageError("E_EXTENT_MISSING", "corrupt", `extent file '${name}' not found next to ${path.basename(from.path)}`);
      return new FileSource(p);
    },
  };
  return ctx;
}

/** Open an image file as a BlockDevice. Throws ImageError for anything malformed. */
export function openImage(file: string, opts: OpenOptions = {}): BlockDevice {
  const src = new FileSource(file);
  try {
    const { driver, extMismatch } = pickDriver(src, opts.format);
    const real = fs.realpathSync(file);
    const vd = driver.open(src, makeContext(opts.allowDirs ?? [], [real]));
    const disk = new Disk(vd);
    if (extMismatch) {
      disk.info.findings.push(finding("IMAGE_EXTENSION_MISMATCH", { extension: extMismatch, format: driver.format }));
    }
    return disk;
  } catch (e) {
    src.close();
    throw e;
  }
}
