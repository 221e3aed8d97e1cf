// The volumes of a disk as an OS sees them (partitions by readLayout, LVM2 logical volumes by scanLvm), each
// identified like blkid (fs-identify.ts) and openable as a FileSystem by its content kind; cached per disk.
import type { BlockDevice } from "./block.ts";
import { ImageError } from "./errors.ts";
import { PartitionView, type FileSystem } from "./fs.ts";
import { identifyContent, type ContentKind } from "./fs-identify.ts";
import type { Layout } from "./layout.ts";
import { LogicalVolume, scanLvm, type LvmScan } from "./lvm.ts";
import { openExt4 } from "./ext4.ts";
import { openFat } from "./fat.ts";
import { openXfs } from "./xfs.ts";
import { openNtfs } from "./ntfs.ts";
import type { Volume } from "./root-spec.ts";
import type { Finding } from "../emu/findings.ts";

/** One filesystem-bearing volume of the disk. */
export interface VolumeEntry {
  /** "p1" for partition 1, "disk" for a whole-disk filesystem, "lv:VG/LV" for a logical volume. */
  id: string;
  partitionIndex?: number;
  /** "VG/LV" for logical volumes. */
  lvName?: string;
  kind: ContentKind;
  uuid?: string;
  label?: string;
  /** GPT partition GUID / name. */
  partUuid?: string;
  partLabel?: string;
  /** NT disk signature of an MBR disk. */
  mbrSignature?: number;
  /** First whole-disk LBA (partitions; LVs map through their segments). */
  startLba?: number;
  sectorCount: number;
  device: BlockDevice;
  /** The same volume in root-spec.ts's form (for root= / fstab resolution). */
  spec: Volume;
  /** Open the filesystem (cached); undefined for kinds without a reader (swap, btrfs, LUKS...). Throws ImageError. */
  open(): FileSystem | undefined;
  /** Why the last open() failed, if it did. */
  openError?: string;
}

/** Kinds with a reader in images/ (the rest are identified only). */
const OPENERS: Partial<Record<ContentKind, (dev: BlockDevice) => FileSystem>> = {
  ext2: openExt4, ext3: openExt4, ext4: openExt4, xfs: openXfs, fat12: openFat, fat16: openFat, fat32: openFat, ntfs: openNtfs,
};

export const canOpen = (kind: ContentKind): boolean => kind in OPENERS;

export class Volumes {
  readonly list: VolumeEntry[] = [];
  lvm?: LvmScan;
  /** Findings from scanning LVM (metadata problems), stage "image". */
  readonly findings: Finding[] = [];

  constructor(readonly dev: BlockDevice, readonly layout: Layout) {
    const sig = layout.partitioning === "mbr" ? layout.mbr?.signature : undefined;
    for (const p of layout.partitions) {
      if (p.extended || p.sectorCount === 0) continue;
      const c = p.content;
      this.add({
        id: `p${p.index}`, partitionIndex: p.index, kind: c.kind, uuid: c.uuid, label: c.label, partUuid: p.guid,
        partLabel: p.name, mbrSignature: sig, startLba: p.startLba, sectorCount: p.sectorCount,
        device: new PartitionView(dev, p.startLba, p.sectorCount),
      });
    }
    if (layout.partitioning === "none" && layout.wholeDisk && layout.wholeDisk.kind !== "lvm2") {
      const c = layout.wholeDisk;
      this.add({ id: "disk", kind: c.kind, uuid: c.uuid, label: c.label, startLba: 0, sectorCount: dev.sectorCount, device: dev });
    }
    const hasPv = layout.partitions.some((p) => p.content.kind === "lvm2") || layout.wholeDisk?.kind === "lvm2";
    if (hasPv) this.addLvs();
  }

  private addLvs(): void {
    try {
      this.lvm = scanLvm(this.dev);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      return;
    }
    this.findings.push(...this.lvm.findings);
    for (const vg of this.lvm.vgs) {
      for (const lv of vg.lvs) {
        let device: LogicalVolume;
        try {
          device = new LogicalVolume(this.dev, vg, lv);
        } catch (e) {
          if (!(e instanceof ImageError)) throw e;
          continue;                                 // missing PV or unsupported segment: not a volume we can read
        }
        const c = identifyContent(device, 0, device.sectorCount);
        this.add({ id: `lv:${vg.name}/${lv.name}`, lvName: `${vg.name}/${lv.name}`, kind: c.kind, uuid: c.uuid, label: c.label,
          sectorCount: device.sectorCount, device });
      }
    }
  }

  private add(v: Omit<VolumeEntry, "spec" | "open">): void {
    const luks = v.kind === "luks";
    const spec: Volume = {
      fsKind: v.kind,
      ...(v.partitionIndex !== undefined ? { partitionIndex: v.partitionIndex } : {}),
      ...(v.uuid && !luks ? { fsUuid: v.uuid } : {}), ...(v.uuid && luks ? { luksUuid: v.uuid } : {}),
      ...(v.label !== undefined ? { fsLabel: v.label } : {}), ...(v.partUuid ? { partUuid: v.partUuid } : {}),
      ...(v.partLabel ? { partLabel: v.partLabel } : {}), ...(v.mbrSignature !== undefined ? { mbrSignature: v.mbrSignature } : {}),
      ...(v.lvName ? { lvName: v.lvName } : {}),
    };
    let cached: FileSystem | undefined, tried = false;
    const entry: VolumeEntry = {
      ...v, spec,
      open: () => {
        if (tried) {
          if (entry.openError) throw new ImageError("E_FS_OPEN", "corrupt", entry.openError);
          return cached;
        }
        tried = true;
        const opener = OPENERS[v.kind];
        if (!opener) return undefined;
        try {
          cached = opener(v.device);
        } catch (e) {
          if (e instanceof ImageError) entry.openError = `${e.code}: ${e.message}`;
          throw e;
        }
        return cached;
      },
    };
    this.list.push(entry);
  }

  /** The volumes in root-spec.ts's form. */
  specVolumes(): Volume[] { return this.list.map((v) => v.spec); }

  /** The entry a root-spec Volume (from resolveDeviceSpec) stands for. */
  entryFor(v: Volume | undefined): VolumeEntry | undefined {
    return v ? this.list.find((e) => e.spec === v) : undefined;
  }

  /** The partition holding whole-disk `lba`, if any. */
  partitionAt(lba: number): VolumeEntry | undefined {
    return this.list.find((e) => e.startLba !== undefined && e.id !== "disk" && lba >= e.startLba && lba < e.startLba + e.sectorCount);
  }

  /** Open a volume's filesystem; undefined (with the reason in openError) instead of throwing for unreadable ones. */
  tryOpen(v: VolumeEntry): FileSystem | undefined {
    try {
      return v.open();
    } catch (e) {
      if (e instanceof ImageError) return undefined;
      throw e;
    }
  }
}

const cache = new WeakMap<BlockDevice, { layout: Layout; vols: Volumes }>();

/** The volumes of `dev` (cached per device and layout). */
export function openVolumes(dev: BlockDevice, layout: Layout): Volumes {
  const c = cache.get(dev);
  if (c && c.layout === layout) return c.vols;
  const vols = new Volumes(dev, layout);
  cache.set(dev, { layout, vols });
  return vols;
}
