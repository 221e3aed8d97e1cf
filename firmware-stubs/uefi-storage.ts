// Storage for the Gen2 firmware: the OS disk on Hyper-V's synthetic SCSI controller (or an Azure NVMe namespace)
// with EFI_BLOCK_IO_PROTOCOL, EFI_DISK_IO_PROTOCOL and EFI_DEVICE_PATH_PROTOCOL on the disk and on a child handle
// per partition (UEFI 2.10 13.9 partition driver behaviour: HD() nodes for GPT and MBR partitions). Guest writes go
// to an in-memory overlay; the image is never written.
import type { BlockDevice } from "../images/block.ts";
import type { Layout, Partition } from "../images/layout.ts";
import { Call, FirmwareCore } from "./uefi-core.ts";
import { BLOCK_IO_REVISION3, BLOCK_MEDIA, EFI, PROTOCOL_MEMBERS } from "./uefi-layout.ts";
import { GUID } from "./uefi-guid.ts";
import { devicePathToText, hdGpt, hdMbr, hyperVScsiDisk, nvme, serializeDevicePath, vmbusRoot, type DevNode } from "./uefi-devpath.ts";
import { UEFI_MAX_TRANSFER_BYTES, UEFI_MAX_OVERLAY_SECTORS } from "../images/limits.ts";

/** Largest single ReadBlocks/ReadDisk transfer (GRUB reads kernels in pieces of at most a few MiB). */
export const MAX_TRANSFER_BYTES = UEFI_MAX_TRANSFER_BYTES;
/** Overlay sectors kept for guest writes before WriteBlocks fails with EFI_OUT_OF_RESOURCES. */
export const MAX_OVERLAY_SECTORS = UEFI_MAX_OVERLAY_SECTORS;
/** The SCSI controller's VMBus instance GUID (fixed: runs are deterministic). */
export const SCSI_INSTANCE_GUID = "7bd9f68b-0e13-4c1d-9e8b-b3d5b2a7c001";

export interface BlockHandle {
  handle: number;
  /** Partition (undefined: the whole disk). */
  partition?: Partition;
  startLba: number;
  sectors: number;
  nodes: DevNode[];
  text: string;
}

export class Storage {
  handles: BlockHandle[] = [];
  private byIface = new Map<number, BlockHandle>();
  private overlay = new Map<number, Buffer>();
  readLog: { lba: number; count: number }[] = [];
  sectorsRead = 0;
  reads = 0;
  writes = 0;
  /** Observers of every guest read (kernel recognition, file attribution). */
  onRead: ((lba: number, data: Buffer) => void)[] = [];

  constructor(private fw: FirmwareCore, readonly dev: BlockDevice, readonly layout: Layout, readonly controller: "scsi" | "nvme") {}

  build(): void {
    const fw = this.fw;
    const ss = this.dev.sectorSize;
    const blockVt = fw.vtable(PROTOCOL_MEMBERS.BlockIo, "BlockIo", {
      Reset: () => EFI.SUCCESS,
      ReadBlocks: (c) => this.readBlocks(c),
      WriteBlocks: (c) => this.writeBlocks(c),
      FlushBlocks: () => EFI.SUCCESS,
    });
    const diskVt = fw.vtable(PROTOCOL_MEMBERS.DiskIo, "DiskIo", {
      ReadDisk: (c) => this.readDisk(c),
      WriteDisk: (c) => fw.note("DiskIo.WriteDisk", EFI.WRITE_PROTECTED),
    });
    const diskNodes = this.controller === "nvme"
      ? [vmbusRoot(), nvme(1, Buffer.from("0000000000000001", "hex"))]
      : hyperVScsiDisk({ instanceGuid: SCSI_INSTANCE_GUID, target: 0, lun: 0 });
    const add = (p: Partition | undefined, startLba: number, sectors: number, nodes: DevNode[]) => {
      const handle = fw.newHandle();
      const media = fw.alloc(BLOCK_MEDIA.SIZE);
      fw.w8(media + BLOCK_MEDIA.MediaPresent, 1);
      fw.w8(media + BLOCK_MEDIA.LogicalPartition, p ? 1 : 0);
      fw.w32(media + BLOCK_MEDIA.BlockSize, ss);
      fw.w32(media + BLOCK_MEDIA.IoAlign, 0);
      fw.w64(media + BLOCK_MEDIA.LastBlock, sectors - 1);
      fw.w32(media + BLOCK_MEDIA.LogicalBlocksPerPhysicalBlock, 1);
      const bio = fw.instantiate(PROTOCOL_MEMBERS.BlockIo, blockVt, { Revision: BLOCK_IO_REVISION3, Media: media });
      const dio = fw.instantiate(PROTOCOL_MEMBERS.DiskIo, diskVt, { Revision: 0x00010000 });
      const dp = serializeDevicePath(nodes);
      const dpAddr = fw.alloc(dp.length);
      fw.put(dpAddr, dp);
      fw.install(handle, GUID.DEVICE_PATH, dpAddr);
      fw.install(handle, GUID.BLOCK_IO, bio);
      fw.install(handle, GUID.DISK_IO, dio);
      const h: BlockHandle = { handle, partition: p, startLba, sectors, nodes, text: devicePathToText(nodes) };
      this.byIface.set(bio, h);
      this.byIface.set(dio, h);
      this.handles.push(h);
      return h;
    };
    add(undefined, 0, this.dev.sectorCount, diskNodes);
    const sig = this.layout.mbr?.signature ?? 0;
    for (const p of this.layout.partitions) {
      if (p.extended || p.sectorCount === 0 || p.startLba + p.sectorCount > this.dev.sectorCount) continue;
      const hd = p.scheme === "gpt" ? hdGpt(p.index, p.startLba, p.sectorCount, p.guid ?? "00000000-0000-0000-0000-000000000000")
        : hdMbr(p.index, p.startLba, p.sectorCount, sig);
      add(p, p.startLba, p.sectorCount, [...diskNodes, hd]);
    }
  }

  get disk(): BlockHandle { return this.handles[0]; }

  private target(c: Call): BlockHandle | undefined { return this.byIface.get(c.ptr(0)); }

  /** Sectors of the whole disk with the write overlay applied. */
  read(lba: number, count: number): Buffer {
    const data = Buffer.from(this.dev.read(lba, count));
    if (this.overlay.size) {
      for (let i = 0; i < count; i++) {
        const o = this.overlay.get(lba + i);
        if (o) o.copy(data, i * this.dev.sectorSize);
      }
    }
    return data;
  }

  private logRead(lba: number, count: number, data: Buffer): void {
    this.fw.trace.add("disk", `read ${this.controller === "nvme" ? "NVMe" : "SCSI"} disk LBA ${lba} +${count}`, { lba, count });
    this.reads++;
    this.sectorsRead += count;
    const last = this.readLog[this.readLog.length - 1];
    if (last && last.lba + last.count === lba) last.count += count;
    else if (this.readLog.length < 4096) this.readLog.push({ lba, count });
    for (const f of this.onRead) f(lba, data);
  }

  private readBlocks(c: Call): bigint {
    const h = this.target(c);
    if (!h) return EFI.INVALID_PARAMETER;
    if (c.u32(1) !== 0) return EFI.MEDIA_CHANGED;
    const lba = c.num(2), size = c.num(3), buf = c.ptr(4);
    const ss = this.dev.sectorSize;
    if (size === 0) return EFI.SUCCESS;
    if (size % ss !== 0) return EFI.BAD_BUFFER_SIZE;
    if (!buf) return EFI.INVALID_PARAMETER;
    const count = size / ss;
    if (lba + count > h.sectors || size > MAX_TRANSFER_BYTES) return EFI.INVALID_PARAMETER;
    const abs = h.startLba + lba;
    const data = this.read(abs, count);
    this.fw.put(buf, data);
    this.fw.clock.advance(20_000 + size);          // a synthetic SCSI request: ~20 us + 1 ns a byte
    this.logRead(abs, count, data);
    return EFI.SUCCESS;
  }

  private writeBlocks(c: Call): bigint {
    const h = this.target(c);
    if (!h) return EFI.INVALID_PARAMETER;
    if (c.u32(1) !== 0) return EFI.MEDIA_CHANGED;
    const lba = c.num(2), size = c.num(3), buf = c.ptr(4);
    const ss = this.dev.sectorSize;
    if (size % ss !== 0) return EFI.BAD_BUFFER_SIZE;
    const count = size / ss;
    if (lba + count > h.sectors || !buf) return EFI.INVALID_PARAMETER;
    if (this.overlay.size + count > MAX_OVERLAY_SECTORS) return this.fw.note("WriteBlocks(overlay full)", EFI.OUT_OF_RESOURCES);
    const data = this.fw.bytes(buf, size);
    for (let i = 0; i < count; i++) this.overlay.set(h.startLba + lba + i, Buffer.from(data.subarray(i * ss, (i + 1) * ss)));
    this.writes++;
    this.fw.trace.add("disk", `write LBA ${h.startLba + lba} +${count} (kept in the overlay)`, { lba: h.startLba + lba, count, write: true });
    return EFI.SUCCESS;
  }

  private readDisk(c: Call): bigint {
    const h = this.target(c);
    if (!h) return EFI.INVALID_PARAMETER;
    if (c.u32(1) !== 0) return EFI.MEDIA_CHANGED;
    const off = c.num(2), size = c.num(3), buf = c.ptr(4);
    const ss = this.dev.sectorSize;
    if (size === 0) return EFI.SUCCESS;
    if (!buf || size > MAX_TRANSFER_BYTES || off + size > h.sectors * ss) return EFI.INVALID_PARAMETER;
    const first = Math.floor(off / ss), last = Math.floor((off + size - 1) / ss);
    const abs = h.startLba + first;
    const data = this.read(abs, last - first + 1);
    this.fw.put(buf, data.subarray(off - first * ss, off - first * ss + size));
    this.fw.clock.advance(20_000 + size);
    this.logRead(abs, last - first + 1, data);
    return EFI.SUCCESS;
  }

  handleOf(handle: number): BlockHandle | undefined { return this.handles.find((h) => h.handle === handle); }
}
