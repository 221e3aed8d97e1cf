// The Gen2 firmware's physical memory map and page/pool allocator (UEFI 2.10 7.2: AllocatePages, FreePages,
// GetMemoryMap, AllocatePool, FreePool). Allocation is top-down below the firmware's own region, as EDK2's
// CoreAllocatePages does; every change bumps the map key that ExitBootServices checks.
import { AllocateType, MemType, PAGE_SIZE } from "./uefi-layout.ts";
import { UEFI_MAX_MAP_ENTRIES, UEFI_MAX_POOL_ALLOCATIONS } from "../images/limits.ts";

export interface MemRange { start: number; pages: number; type: number }

export type AllocResult = { ok: true; address: number } | { ok: false; status: "OUT_OF_RESOURCES" | "NOT_FOUND" | "INVALID_PARAMETER" };

/** At most this many descriptors: a guest that fragments memory further gets OUT_OF_RESOURCES. */
export const MAX_MAP_ENTRIES = UEFI_MAX_MAP_ENTRIES;
/** Pool allocations tracked at once (each is whole pages here). */
export const MAX_POOL_ALLOCATIONS = UEFI_MAX_POOL_ALLOCATIONS;

const ALLOCATABLE = new Set<number>([MemType.LoaderCode, MemType.LoaderData, MemType.BootServicesCode,
  MemType.BootServicesData, MemType.RuntimeServicesCode, MemType.RuntimeServicesData, MemType.AcpiReclaim,
  MemType.AcpiNvs, MemType.Reserved, MemType.Unusable, MemType.PalCode, MemType.Persistent]);

export class MemoryMap {
  /** Sorted, non-overlapping, adjacent ranges of one type merged. */
  private ranges: MemRange[];
  private pool = new Map<number, { pages: number; type: number; size: number }>();
  /** Bumped on every change (the MapKey of GetMemoryMap). */
  key = 1;
  /** Pages handed out by AllocatePages/AllocatePool and not freed (for reports). */
  allocatedPages = 0;

  constructor(readonly ramBytes: number, fixed: MemRange[]) {
    this.ranges = [{ start: 0, pages: Math.floor(ramBytes / PAGE_SIZE), type: MemType.Conventional }];
    for (const r of fixed) this.setType(r.start, r.pages, r.type);
  }

  /** Descriptors, in address order. */
  entries(): readonly MemRange[] { return this.ranges; }

  typeAt(addr: number): number | undefined {
    const r = this.ranges.find((x) => addr >= x.start && addr < x.start + x.pages * PAGE_SIZE);
    return r?.type;
  }

  /** Mark [start, start+pages) as `type`, splitting ranges as needed. */
  setType(start: number, pages: number, type: number): void {
    const end = start + pages * PAGE_SIZE;
    const out: MemRange[] = [];
    for (const r of this.ranges) {
      const rEnd = r.start + r.pages * PAGE_SIZE;
      if (rEnd <= start || r.start >= end) { out.push(r); continue; }
      if (r.start < start) out.push({ start: r.start, pages: (start - r.start) / PAGE_SIZE, type: r.type });
      if (rEnd > end) out.push({ start: end, pages: (rEnd - end) / PAGE_SIZE, type: r.type });
    }
    out.push({ start, pages, type });
    out.sort((a, b) => a.start - b.start);
    const merged: MemRange[] = [];
    for (const r of out) {
      const last = merged[merged.length - 1];
      if (last && last.type === r.type && last.start + last.pages * PAGE_SIZE === r.start) last.pages += r.pages;
      else merged.push({ ...r });
    }
    this.ranges = merged;
    this.key++;
  }

  /** AllocatePages (UEFI 7.2). `address` is the Address/MaxAddress argument. */
  allocatePages(allocType: number, memType: number, pages: number, address: number): AllocResult {
    if (!ALLOCATABLE.has(memType) && memType < 0x70000000) return { ok: false, status: "INVALID_PARAMETER" };
    if (!Number.isSafeInteger(pages) || pages <= 0) return pages === 0 ? { ok: false, status: "INVALID_PARAMETER" } : { ok: false, status: "OUT_OF_RESOURCES" };
    const bytes = pages * PAGE_SIZE;
    if (bytes > this.ramBytes) return { ok: false, status: "OUT_OF_RESOURCES" };
    if (this.ranges.length >= MAX_MAP_ENTRIES - 2) return { ok: false, status: "OUT_OF_RESOURCES" };
    let at: number | undefined;
    if (allocType === AllocateType.Address) {
      if (address % PAGE_SIZE !== 0) return { ok: false, status: "NOT_FOUND" };
      const end = address + bytes;
      const free = this.ranges.some((r) => r.type === MemType.Conventional && r.start <= address && end <= r.start + r.pages * PAGE_SIZE);
      if (!free) return { ok: false, status: "NOT_FOUND" };
      at = address;
    } else if (allocType === AllocateType.AnyPages || allocType === AllocateType.MaxAddress) {
      const max = allocType === AllocateType.MaxAddress ? address : Number.MAX_SAFE_INTEGER;
      for (let i = this.ranges.length - 1; i >= 0 && at === undefined; i--) {
        const r = this.ranges[i];
        if (r.type !== MemType.Conventional) continue;
        const top = Math.min(r.start + r.pages * PAGE_SIZE, Math.floor((max + 1) / PAGE_SIZE) * PAGE_SIZE);
        if (top - bytes >= r.start && top - bytes >= PAGE_SIZE) at = top - bytes;
      }
      if (at === undefined) return { ok: false, status: allocType === AllocateType.MaxAddress ? "NOT_FOUND" : "OUT_OF_RESOURCES" };
    } else {
      return { ok: false, status: "INVALID_PARAMETER" };
    }
    this.setType(at, pages, memType);
    this.allocatedPages += pages;
    return { ok: true, address: at };
  }

  /** FreePages: the range must be wholly allocated memory (not free, not the firmware's own). */
  freePages(address: number, pages: number, firmware: (addr: number) => boolean): "SUCCESS" | "NOT_FOUND" | "INVALID_PARAMETER" {
    if (address % PAGE_SIZE !== 0 || !Number.isSafeInteger(pages) || pages <= 0) return "INVALID_PARAMETER";
    const end = address + pages * PAGE_SIZE;
    if (end > this.ramBytes) return "NOT_FOUND";
    for (let a = address; a < end; a += PAGE_SIZE) {
      const t = this.typeAt(a);
      if (t === undefined || t === MemType.Conventional || firmware(a)) return "NOT_FOUND";
    }
    this.setType(address, pages, MemType.Conventional);
    this.allocatedPages = Math.max(0, this.allocatedPages - pages);
    return "SUCCESS";
  }

  /** AllocatePool: whole pages per allocation (8-byte alignment is all the spec promises). */
  allocatePool(memType: number, size: number): AllocResult {
    if (!Number.isSafeInteger(size) || size < 0) return { ok: false, status: "OUT_OF_RESOURCES" };
    if (this.pool.size >= MAX_POOL_ALLOCATIONS) return { ok: false, status: "OUT_OF_RESOURCES" };
    const pages = Math.max(1, Math.ceil(size / PAGE_SIZE));
    const r = this.allocatePages(AllocateType.AnyPages, memType, pages, 0);
    if (r.ok) this.pool.set(r.address, { pages, type: memType, size });
    return r;
  }

  freePool(address: number): "SUCCESS" | "INVALID_PARAMETER" {
    const p = this.pool.get(address);
    if (!p) return "INVALID_PARAMETER";
    this.pool.delete(address);
    this.setType(address, p.pages, MemType.Conventional);
    this.allocatedPages = Math.max(0, this.allocatedPages - p.pages);
    return "SUCCESS";
  }

  /** The allocation (pool or pages range) containing `addr`, for attributing code to a loaded buffer. */
  rangeOf(addr: number): MemRange | undefined {
    return this.ranges.find((x) => addr >= x.start && addr < x.start + x.pages * PAGE_SIZE);
  }
}
