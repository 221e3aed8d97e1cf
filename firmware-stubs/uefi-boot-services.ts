// EFI_BOOT_SERVICES of the synthetic Hyper-V Gen2 firmware (UEFI 2.10 ch. 7): task priority, memory, events and
// timers on virtual time, the protocol handler services, and the miscellaneous services. Image services are in
// uefi-image.ts; ExitBootServices is decided by the run (emu/gen2.ts) through `onExitBootServices`.
import crc32 from "crc-32";
import { Call, FirmwareCore, GuestFault, type Handler } from "./uefi-core.ts";
import { EFI, EVT, LocateSearch, MEMORY_DESCRIPTOR_SIZE, MEMORY_DESCRIPTOR_VERSION, OPEN_PROTOCOL, PAGE_SIZE,
  TimerDelay, TPL, EFI_MEMORY_RUNTIME, EFI_MEMORY_WB, MemType, type BootService } from "./uefi-layout.ts";
import { GUID, guidName, guidToBytes } from "./uefi-guid.ts";

/** A GUID for trace lines: its constant name when we name it. */
const guidLabel = (g: string): string => guidName(g) ?? g;
import { UEFI_MAX_VARIADIC_PAIRS, UEFI_MAX_DEVICE_PATH_BYTES } from "../images/limits.ts";

/** Virtual cost of one firmware call (entry, work, return). */
export const NS_PER_EFI_CALL = 2_000;
/** A WaitForEvent on key events alone (nothing else can signal) ends the run after this much virtual time. */
export const KEY_WAIT_GIVE_UP_NS = 60e9;
const MAX_VARIADIC_PAIRS = UEFI_MAX_VARIADIC_PAIRS;
const MAX_DEVICE_PATH = UEFI_MAX_DEVICE_PATH_BYTES;

interface EfiEvent {
  type: number;
  tpl: number;
  notifyFn: number;
  notifyCtx: bigint;
  group?: string;
  signaled: boolean;
  timer?: { dueNs: number; periodNs: number };
  /** The console's key event: signaled while a key is queued. */
  key?: boolean;
}

export interface BootServicesHost {
  /** A key is waiting in the console input (scripted keys). */
  keyAvailable(): boolean;
  /** ExitBootServices(ImageHandle, MapKey) after the map key matched. */
  onExitBootServices(c: Call, imageHandle: number): void;
  /** Image services (uefi-image.ts). */
  imageServices: Partial<Record<BootService, Handler>>;
}

export class BootServices {
  tpl: number = TPL.APPLICATION;
  private events = new Map<number, EfiEvent>();
  private notifyRegs: { guid: string; event: number; seen: number }[] = [];
  private monotonic = 0n;
  watchdog: { seconds: number; code: number } | undefined;
  exited = false;
  configTables: { guid: string; table: number }[] = [];
  /** Called when the configuration table array changes (the system table points at it). */
  onConfigChange: () => void = () => {};

  constructor(private fw: FirmwareCore, private host: BootServicesHost) {}

  handlers(): Partial<Record<BootService, Handler>> {
    const fw = this.fw;
    const S = EFI;
    return {
      RaiseTPL: (c) => { const old = this.tpl; this.tpl = c.u32(0) & 0x1f; return BigInt(old); },
      RestoreTPL: (c) => { this.tpl = c.u32(0) & 0x1f; return 0n; },
      AllocatePages: (c) => {
        const out = c.ptr(3);
        if (!out) return S.INVALID_PARAMETER;
        const r = fw.mem.allocatePages(c.u32(0), c.u32(1), c.num(2), Number(fw.u64(out) > BigInt(fw.ram.length) ? BigInt(fw.ram.length) : fw.u64(out)));
        if (!r.ok) return fw.note(`AllocatePages(${c.num(2)} pages)`, S[r.status]);
        fw.w64(out, r.address);
        return S.SUCCESS;
      },
      FreePages: (c) => S[fw.mem.freePages(c.ptr(0), c.num(1), (a) => fw.isFirmware(a))],
      GetMemoryMap: (c) => this.getMemoryMap(c),
      AllocatePool: (c) => {
        const out = c.ptr(2);
        if (!out) return S.INVALID_PARAMETER;
        const r = fw.mem.allocatePool(c.u32(0), c.num(1));
        if (!r.ok) return fw.note(`AllocatePool(${c.num(1)})`, S[r.status]);
        fw.w64(out, r.address);
        return S.SUCCESS;
      },
      FreePool: (c) => S[fw.mem.freePool(c.ptr(0))],
      CreateEvent: (c) => this.createEvent(c.u32(0), c.u32(1), c.ptr(2), c.arg(3), undefined, c.ptr(4)),
      CreateEventEx: (c) => this.createEvent(c.u32(0), c.u32(1), c.ptr(2), c.arg(3), c.ptr(4) ? fw.guid(c.ptr(4)) : undefined, c.ptr(5)),
      SetTimer: (c) => this.setTimer(c.ptr(0), c.u32(1), c.arg(2)),
      WaitForEvent: (c) => this.waitForEvent(c),
      SignalEvent: (c) => this.signal(c, c.ptr(0)),
      CloseEvent: (c) => (this.events.delete(c.ptr(0)) ? S.SUCCESS : S.INVALID_PARAMETER),
      CheckEvent: (c) => {
        const ev = this.events.get(c.ptr(0));
        if (!ev) return S.INVALID_PARAMETER;
        if (ev.type & EVT.NOTIFY_SIGNAL) return S.INVALID_PARAMETER;
        if (this.poll(ev)) { ev.signaled = false; return S.SUCCESS; }
        return S.NOT_READY;
      },
      InstallProtocolInterface: (c) => this.installOne(c.ptr(0), c.ptr(1), c.arg(2), c.ptr(3)),
      ReinstallProtocolInterface: (c) => {
        const h = c.ptr(0); const g = this.guidArg(c.ptr(1));
        if (fw.iface(h, g) === undefined || BigInt(fw.iface(h, g)!) !== c.arg(2)) return S.NOT_FOUND;
        fw.uninstall(h, g); fw.install(h, g, c.ptr(3));
        this.fireNotifies(g);
        return S.SUCCESS;
      },
      UninstallProtocolInterface: (c) => {
        const h = c.ptr(0); const g = this.guidArg(c.ptr(1));
        if (fw.iface(h, g) === undefined || BigInt(fw.iface(h, g)!) !== c.arg(2)) return S.NOT_FOUND;
        fw.uninstall(h, g);
        return S.SUCCESS;
      },
      HandleProtocol: (c) => this.openProtocol(c.ptr(0), c.ptr(1), c.ptr(2), OPEN_PROTOCOL.BY_HANDLE_PROTOCOL),
      Reserved: (c) => fw.unsupported("BootServices.Reserved", c),
      RegisterProtocolNotify: (c) => {
        const g = this.guidArg(c.ptr(0));
        const ev = c.ptr(1);
        if (!this.events.has(ev) || !c.ptr(2)) return S.INVALID_PARAMETER;
        const token = fw.alloc(16);
        this.notifyRegs.push({ guid: g, event: ev, seen: fw.handles(g).length });
        fw.w64(c.ptr(2), token);
        return S.SUCCESS;
      },
      LocateHandle: (c) => this.locateHandle(c),
      LocateDevicePath: (c) => this.locateDevicePath(c),
      InstallConfigurationTable: (c) => this.installConfigTable(this.guidArg(c.ptr(0)), c.ptr(1)),
      GetNextMonotonicCount: (c) => { if (!c.ptr(0)) return S.INVALID_PARAMETER; fw.w64(c.ptr(0), ++this.monotonic); return S.SUCCESS; },
      Stall: (c) => { fw.clock.advance(Math.min(c.num(0), 3_600e6) * 1000); return S.SUCCESS; },
      SetWatchdogTimer: (c) => {
        this.watchdog = c.num(0) ? { seconds: c.num(0), code: Number(c.arg(1) & 0xffffn) } : undefined;
        return S.SUCCESS;
      },
      ConnectController: (c) => (fw.isHandle(c.ptr(0)) ? S.SUCCESS : S.INVALID_PARAMETER),
      DisconnectController: (c) => (fw.isHandle(c.ptr(0)) ? S.SUCCESS : S.INVALID_PARAMETER),
      OpenProtocol: (c) => this.openProtocol(c.ptr(0), c.ptr(1), c.ptr(2), c.u32(5)),
      CloseProtocol: (c) => (fw.iface(c.ptr(0), this.guidArg(c.ptr(1))) !== undefined ? S.SUCCESS : S.NOT_FOUND),
      OpenProtocolInformation: (c) => {
        if (fw.iface(c.ptr(0), this.guidArg(c.ptr(1))) === undefined) return S.NOT_FOUND;
        const r = fw.mem.allocatePool(MemType.BootServicesData, 0);
        if (!r.ok) return S.OUT_OF_RESOURCES;
        fw.w64(c.ptr(2), r.address);
        fw.w64(c.ptr(3), 0);
        return S.SUCCESS;
      },
      ProtocolsPerHandle: (c) => {
        const h = c.ptr(0);
        if (!fw.isHandle(h) || !c.ptr(1) || !c.ptr(2)) return S.INVALID_PARAMETER;
        const guids = fw.protocolsOf(h);
        const r = fw.mem.allocatePool(MemType.BootServicesData, guids.length * 24);
        if (!r.ok) return S.OUT_OF_RESOURCES;
        guids.forEach((g, i) => {
          const at = r.address + guids.length * 8 + 16 * i;
          fw.put(at, guidToBytes(g));
          fw.w64(r.address + 8 * i, at);
        });
        fw.w64(c.ptr(1), r.address);
        fw.w64(c.ptr(2), guids.length);
        return S.SUCCESS;
      },
      LocateHandleBuffer: (c) => {
        if (!c.ptr(3) || !c.ptr(4)) return S.INVALID_PARAMETER;
        const hs = this.search(c.u32(0), c.ptr(1), c.ptr(2));
        if (hs === undefined) return S.INVALID_PARAMETER;
        if (!hs.length) return S.NOT_FOUND;
        const r = fw.mem.allocatePool(MemType.BootServicesData, hs.length * 8);
        if (!r.ok) return S.OUT_OF_RESOURCES;
        hs.forEach((h, i) => fw.w64(r.address + 8 * i, h));
        fw.w64(c.ptr(3), hs.length);
        fw.w64(c.ptr(4), r.address);
        return S.SUCCESS;
      },
      LocateProtocol: (c) => {
        const g = this.guidArg(c.ptr(0));
        const out = c.ptr(2);
        if (!out) return S.INVALID_PARAMETER;
        const h = fw.handles(g)[0];
        if (h === undefined) { fw.w64(out, 0); return fw.note(`LocateProtocol(${guidLabel(g)})`, S.NOT_FOUND); }
        fw.w64(out, fw.iface(h, g)!);
        return S.SUCCESS;
      },
      InstallMultipleProtocolInterfaces: (c) => {
        const hp = c.ptr(0);
        if (!hp) return S.INVALID_PARAMETER;
        const pairs = this.variadicPairs(c);
        let h = Number(fw.u64(hp));
        if (h === 0) { h = fw.newHandle(); }
        else if (!fw.isHandle(h)) return S.INVALID_PARAMETER;
        for (const [g] of pairs) if (fw.iface(h, g) !== undefined) return S.ALREADY_STARTED;
        for (const [g, iface] of pairs) { fw.install(h, g, iface); this.fireNotifies(g); }
        fw.w64(hp, h);
        return S.SUCCESS;
      },
      UninstallMultipleProtocolInterfaces: (c) => {
        const h = c.ptr(0);
        const pairs = this.variadicPairs(c);
        for (const [g, iface] of pairs) if (fw.iface(h, g) !== iface) return S.INVALID_PARAMETER;
        for (const [g] of pairs) fw.uninstall(h, g);
        return S.SUCCESS;
      },
      CalculateCrc32: (c) => {
        if (!c.ptr(0) || !c.ptr(2) || c.num(1) === 0) return S.INVALID_PARAMETER;
        fw.w32(c.ptr(2), crc32.buf(fw.bytes(c.ptr(0), c.num(1))) >>> 0);
        return S.SUCCESS;
      },
      CopyMem: (c) => {
        const len = c.num(2);
        if (len === 0) return 0n;
        const src = Buffer.from(fw.bytes(c.ptr(1), len));
        fw.put(c.ptr(0), src);
        return 0n;
      },
      SetMem: (c) => {
        const len = c.num(1);
        if (len === 0) return 0n;
        fw.check(c.ptr(0), len);
        fw.ram.fill(Number(c.arg(2) & 0xffn), c.ptr(0), c.ptr(0) + len);
        fw.cpu.invalidate(c.ptr(0), c.ptr(0) + len);
        return 0n;
      },
      ExitBootServices: (c) => {
        if (this.exited) return S.INVALID_PARAMETER;
        if (c.arg(1) !== BigInt(fw.mem.key)) return fw.note(`ExitBootServices(stale map key ${c.arg(1)}, current ${fw.mem.key})`, S.INVALID_PARAMETER);
        this.exited = true;
        this.host.onExitBootServices(c, c.ptr(0));
        return S.SUCCESS;
      },
      ...this.host.imageServices,
    };
  }

  guidArg(p: number): string {
    if (!p) throw new GuestFault("a NULL protocol GUID pointer");
    return this.fw.guid(p);
  }

  // ---- memory map ----
  private getMemoryMap(c: Call): bigint {
    const fw = this.fw;
    const sizeP = c.ptr(0), mapP = c.ptr(1), keyP = c.ptr(2), descSizeP = c.ptr(3), verP = c.ptr(4);
    if (!sizeP) return EFI.INVALID_PARAMETER;
    const entries = fw.mem.entries();
    const need = entries.length * MEMORY_DESCRIPTOR_SIZE;
    if (descSizeP) fw.w64(descSizeP, MEMORY_DESCRIPTOR_SIZE);
    if (verP) fw.w32(verP, MEMORY_DESCRIPTOR_VERSION);
    const have = fw.u64(sizeP);
    fw.w64(sizeP, need);
    if (have < BigInt(need)) return EFI.BUFFER_TOO_SMALL;
    if (!mapP) return EFI.INVALID_PARAMETER;
    fw.check(mapP, need, "memory map buffer");
    entries.forEach((r, i) => {
      const at = mapP + i * MEMORY_DESCRIPTOR_SIZE;
      fw.ram.fill(0, at, at + MEMORY_DESCRIPTOR_SIZE);
      fw.w32(at, r.type);
      fw.w64(at + 8, r.start);
      fw.w64(at + 16, 0);
      fw.w64(at + 24, r.pages);
      const rt = r.type === MemType.RuntimeServicesCode || r.type === MemType.RuntimeServicesData;
      fw.w64(at + 32, EFI_MEMORY_WB | 0x1n | 0x2n | 0x4n | (rt ? EFI_MEMORY_RUNTIME : 0n));
    });
    if (keyP) fw.w64(keyP, fw.mem.key);
    return EFI.SUCCESS;
  }

  // ---- events ----
  private createEvent(type: number, tpl: number, notifyFn: number, ctx: bigint, group: string | undefined, out: number): bigint {
    if (!out) return EFI.INVALID_PARAMETER;
    if ((type & (EVT.NOTIFY_SIGNAL | EVT.NOTIFY_WAIT)) && (!notifyFn || tpl <= TPL.APPLICATION || tpl > TPL.HIGH_LEVEL)) return EFI.INVALID_PARAMETER;
    if (this.events.size > 10_000) return EFI.OUT_OF_RESOURCES;
    const a = this.fw.alloc(16);
    this.events.set(a, { type, tpl, notifyFn, notifyCtx: ctx, group, signaled: false });
    this.fw.w64(out, a);
    return EFI.SUCCESS;
  }

  /** The console input's WaitForKey event. */
  keyEvent(): number {
    const a = this.fw.alloc(16);
    this.events.set(a, { type: EVT.NOTIFY_WAIT, tpl: TPL.NOTIFY, notifyFn: 0, notifyCtx: 0n, signaled: false, key: true });
    return a;
  }

  private setTimer(ev: number, kind: number, trigger100ns: bigint): bigint {
    const e = this.events.get(ev);
    if (!e || !(e.type & EVT.TIMER)) return EFI.INVALID_PARAMETER;
    const ns = Number(trigger100ns > 10n ** 15n ? 10n ** 15n : trigger100ns) * 100;
    if (kind === TimerDelay.Cancel) { e.timer = undefined; return EFI.SUCCESS; }
    if (kind !== TimerDelay.Periodic && kind !== TimerDelay.Relative) return EFI.INVALID_PARAMETER;
    e.timer = { dueNs: this.fw.clock.now + Math.max(ns, kind === TimerDelay.Periodic ? 100_000 : 0), periodNs: kind === TimerDelay.Periodic ? Math.max(ns, 100_000) : 0 };
    return EFI.SUCCESS;
  }

  /** Is the event signaled now (timers fire on virtual time; the key event follows the input queue)? */
  private poll(e: EfiEvent): boolean {
    if (e.key) return this.host.keyAvailable();
    if (e.timer && this.fw.clock.now >= e.timer.dueNs) {
      e.signaled = true;
      if (e.timer.periodNs) e.timer.dueNs += Math.ceil((this.fw.clock.now - e.timer.dueNs + 1) / e.timer.periodNs) * e.timer.periodNs;
      else e.timer = undefined;
    }
    return e.signaled;
  }

  private waitForEvent(c: Call): bigint {
    const fw = this.fw;
    const n = c.num(0), arr = c.ptr(1), idxP = c.ptr(2);
    if (n === 0 || n > 256 || !arr || !idxP) return EFI.INVALID_PARAMETER;
    if (this.tpl !== TPL.APPLICATION) return EFI.UNSUPPORTED;
    const evs: EfiEvent[] = [];
    for (let i = 0; i < n; i++) {
      const e = this.events.get(Number(fw.u64(arr + 8 * i)));
      if (!e || (e.type & EVT.NOTIFY_SIGNAL)) { fw.w64(idxP, i); return EFI.INVALID_PARAMETER; }
      evs.push(e);
    }
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < n; i++) {
        if (this.poll(evs[i])) { if (!evs[i].key) evs[i].signaled = false; fw.w64(idxP, i); return EFI.SUCCESS; }
      }
      // Nothing yet: jump virtual time to the earliest timer among them.
      const due = evs.filter((e) => e.timer).map((e) => e.timer!.dueNs);
      if (!due.length) break;
      fw.clock.advance(Math.max(0, Math.min(...due) - fw.clock.now));
    }
    fw.clock.advance(KEY_WAIT_GIVE_UP_NS);
    fw.requestStop("waiting-for-key", "WaitForEvent on keyboard input that will never come (no timer among the events)");
    return undefined as unknown as bigint;
  }

  private signal(c: Call, ev: number): bigint {
    const e = this.events.get(ev);
    if (!e) return EFI.INVALID_PARAMETER;
    const group = e.group ? [...this.events.values()].filter((x) => x.group === e.group) : [e];
    const toNotify: EfiEvent[] = [];
    for (const x of group) {
      if (x.signaled) continue;
      x.signaled = true;
      if ((x.type & EVT.NOTIFY_SIGNAL) && x.notifyFn) { x.signaled = false; toNotify.push(x); }
    }
    if (!toNotify.length) return EFI.SUCCESS;
    this.runNotifies(c, toNotify, EFI.SUCCESS);
    return undefined as unknown as bigint;
  }

  /** Call notification functions one after the other, then return `status` to the trapped caller. */
  runNotifies(c: Call, list: EfiEvent[], status: bigint): void {
    const stubAddr = Number(this.fw.cpu.reg64("RIP"));
    const next = (i: number): void => {
      if (i >= list.length) { this.fw.returnFromTrap(stubAddr, status); return; }
      const e = list[i];
      const evAddr = [...this.events.entries()].find(([, v]) => v === e)?.[0] ?? 0;
      this.fw.callGuest(e.notifyFn, [BigInt(evAddr), e.notifyCtx], "notify", () => next(i + 1));
    };
    void c;
    next(0);
  }

  /** Exit-boot-services event group members to notify (EVT_SIGNAL_EXIT_BOOT_SERVICES or the group GUID). */
  exitBootServicesEvents(): EfiEvent[] {
    return [...this.events.values()].filter((e) => e.notifyFn && (e.type === EVT.SIGNAL_EXIT_BOOT_SERVICES ||
      e.group === GUID.EVENT_GROUP_EXIT_BOOT_SERVICES));
  }

  // ---- protocols ----
  private installOne(hp: number, gp: number, ifaceType: bigint, iface: number): bigint {
    const fw = this.fw;
    if (!hp || !gp || ifaceType !== 0n) return EFI.INVALID_PARAMETER;
    let h = Number(fw.u64(hp));
    if (h === 0) h = fw.newHandle();
    else if (!fw.isHandle(h)) return EFI.INVALID_PARAMETER;
    const g = fw.guid(gp);
    if (!fw.install(h, g, iface)) return EFI.INVALID_PARAMETER;
    fw.w64(hp, h);
    this.fireNotifies(g);
    fw.trace.add("efi", `InstallProtocolInterface(${guidLabel(g)})`, { handle: h.toString(16), iface: iface.toString(16) });
    return EFI.SUCCESS;
  }

  private fireNotifies(g: string): void {
    for (const r of this.notifyRegs) if (r.guid === g) { const e = this.events.get(r.event); if (e) e.signaled = true; }
  }

  private openProtocol(h: number, gp: number, out: number, attrs: number): bigint {
    const fw = this.fw;
    const g = this.guidArg(gp);
    if (!fw.isHandle(h)) return EFI.INVALID_PARAMETER;
    const iface = fw.iface(h, g);
    if (attrs !== OPEN_PROTOCOL.TEST_PROTOCOL && out) fw.w64(out, iface ?? 0);
    if (iface === undefined) return EFI.UNSUPPORTED;
    if (attrs !== OPEN_PROTOCOL.TEST_PROTOCOL && !out) return EFI.INVALID_PARAMETER;
    return EFI.SUCCESS;
  }

  private search(type: number, gp: number, key: number): number[] | undefined {
    if (type === LocateSearch.AllHandles) return this.fw.handles();
    if (type === LocateSearch.ByProtocol) return gp ? this.fw.handles(this.fw.guid(gp)) : undefined;
    if (type === LocateSearch.ByRegisterNotify) {
      void key;
      const reg = this.notifyRegs[0];
      if (!reg) return [];
      const all = this.fw.handles(reg.guid);
      const fresh = all.slice(reg.seen, reg.seen + 1);
      reg.seen += fresh.length;
      return fresh;
    }
    return undefined;
  }

  private locateHandle(c: Call): bigint {
    const fw = this.fw;
    const sizeP = c.ptr(3), buf = c.ptr(4);
    if (!sizeP) return EFI.INVALID_PARAMETER;
    const hs = this.search(c.u32(0), c.ptr(1), c.ptr(2));
    if (hs === undefined) return EFI.INVALID_PARAMETER;
    if (!hs.length) return EFI.NOT_FOUND;
    const need = hs.length * 8;
    const have = fw.u64(sizeP);
    fw.w64(sizeP, need);
    if (have < BigInt(need)) return EFI.BUFFER_TOO_SMALL;
    if (!buf) return EFI.INVALID_PARAMETER;
    hs.forEach((h, i) => fw.w64(buf + 8 * i, h));
    return EFI.SUCCESS;
  }

  /** Bytes of a device path in guest memory up to (not including) its End Entire node. */
  devicePathBytes(p: number): Buffer {
    const fw = this.fw;
    let off = 0;
    for (let n = 0; n < 512; n++) {
      const type = fw.u8(p + off), sub = fw.u8(p + off + 1), len = fw.u16(p + off + 2);
      if (type === 0x7f && sub === 0xff) return Buffer.from(fw.bytes(p, off));
      if (len < 4 || off + len > MAX_DEVICE_PATH) throw new GuestFault(`malformed device path at 0x${p.toString(16)} (node length ${len})`);
      off += len;
    }
    throw new GuestFault(`device path at 0x${p.toString(16)} has no end node`);
  }

  private locateDevicePath(c: Call): bigint {
    const fw = this.fw;
    const g = this.guidArg(c.ptr(0));
    const dpp = c.ptr(1), devOut = c.ptr(2);
    if (!dpp || !devOut) return EFI.INVALID_PARAMETER;
    const dp = Number(fw.u64(dpp));
    if (!dp) return EFI.INVALID_PARAMETER;
    const want = this.devicePathBytes(dp);
    let best: { h: number; len: number } | undefined;
    for (const h of fw.handles(g)) {
      const hp = fw.iface(h, GUID.DEVICE_PATH);
      if (hp === undefined || hp === 0) continue;
      const have = this.devicePathBytes(hp);
      if (have.length > want.length || !want.subarray(0, have.length).equals(have)) continue;
      if (have.length < want.length && !nodeBoundary(want, have.length)) continue;
      if (!best || have.length > best.len) best = { h, len: have.length };
    }
    if (!best) return fw.note(`LocateDevicePath(${guidLabel(g)})`, EFI.NOT_FOUND);
    fw.w64(devOut, best.h);
    fw.w64(dpp, dp + best.len);
    return EFI.SUCCESS;
  }

  private variadicPairs(c: Call): [string, number][] {
    const pairs: [string, number][] = [];
    for (let i = 0; i < MAX_VARIADIC_PAIRS; i++) {
      const gp = c.ptr(1 + 2 * i);
      if (!gp) return pairs;
      pairs.push([this.fw.guid(gp), c.ptr(2 + 2 * i)]);
    }
    throw new GuestFault(`more than ${MAX_VARIADIC_PAIRS} protocol/interface pairs without a NULL terminator`);
  }

  installConfigTable(g: string, table: number): bigint {
    const i = this.configTables.findIndex((t) => t.guid === g);
    if (table === 0) {
      if (i < 0) return EFI.NOT_FOUND;
      this.configTables.splice(i, 1);
    } else if (i >= 0) this.configTables[i].table = table;
    else {
      if (this.configTables.length >= 64) return EFI.OUT_OF_RESOURCES;
      this.configTables.push({ guid: g, table });
    }
    this.onConfigChange();
    return EFI.SUCCESS;
  }
}

function nodeBoundary(path: Buffer, off: number): boolean {
  let at = 0;
  while (at < off) {
    const len = path.readUInt16LE(at + 2);
    if (len < 4) return false;
    at += len;
  }
  return at === off;
}

export { PAGE_SIZE, EFI_MEMORY_RUNTIME };
