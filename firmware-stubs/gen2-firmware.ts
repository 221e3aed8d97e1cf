// A synthetic Hyper-V Generation 2 firmware instance: guest memory layout, the firmware core, boot and runtime
// services, consoles, storage, file systems, configuration tables and the boot manager, wired together for one
// power-on (a ResetSystem makes the run build a new instance with the same NVRAM).
import type { Cpu } from "../emu/cpu.ts";
import type { Trace } from "../emu/trace.ts";
import type { VirtualClock } from "../emu/clock.ts";
import type { BlockDevice } from "../images/block.ts";
import type { Layout } from "../images/layout.ts";
import { FirmwareCore, type Call } from "./uefi-core.ts";
import { MemoryMap } from "./uefi-memory.ts";
import { MemType, PAGE_SIZE } from "./uefi-layout.ts";
import { BootServices, NS_PER_EFI_CALL } from "./uefi-boot-services.ts";
import { ImageServices, type ImageHost, type ImagePolicy, type LoadedImageInfo } from "./uefi-image.ts";
import { Console, FRAMEBUFFER_BYTES, type Key } from "./uefi-console.ts";
import { Storage } from "./uefi-storage.ts";
import { FileSystems } from "./uefi-sfs.ts";
import { RuntimeServices } from "./uefi-runtime.ts";
import { buildPlatformTables, buildTables, setConsoles, writeConfigTables } from "./uefi-tables.ts";
import { BootManager } from "./uefi-bootmgr.ts";
import { VirtualTpm } from "./uefi-tpm.ts";
import { GUID } from "./uefi-guid.ts";
import { parseDevicePath, devicePathToText, filePathOf } from "./uefi-devpath.ts";
import { MAX_LOAD_IMAGE_BYTES } from "./uefi-image.ts";
import type { VariableStore } from "./uefi-nvram.ts";

/** Guest memory at the top of RAM that the firmware keeps for itself. */
export const FIRMWARE_REGION = {
  size: 16 * 2 ** 20,
  stack: { off: 0, size: 1 * 2 ** 20 },
  stubs: { off: 1 * 2 ** 20, size: 64 * 1024 },
  arena: { off: 2 * 2 ** 20, size: 4 * 2 ** 20 },
  platform: { off: 6 * 2 ** 20, size: 64 * 1024 },
  framebuffer: { off: 8 * 2 ** 20, size: FRAMEBUFFER_BYTES },
} as const;

export interface Gen2FirmwareOptions {
  dev: BlockDevice;
  layout: Layout;
  controller: "scsi" | "nvme";
  memoryBytes: number;
  nvram: VariableStore;
  policy: ImagePolicy & { lastDenial(): { dbx: boolean } | undefined };
  keys: Key[];
  /** A virtual TPM (EFI_TCG2_PROTOCOL): Azure Trusted Launch has one; on Hyper-V it is a VM setting. */
  vtpm: boolean;
  clock: VirtualClock;
  trace: Trace;
  onExitBootServices(c: Call, imageHandle: number): void;
  onImageStart?(img: LoadedImageInfo): void;
}

export class Gen2Firmware {
  readonly core: FirmwareCore;
  readonly mem: MemoryMap;
  readonly bs: BootServices;
  readonly images: ImageServices;
  readonly console: Console;
  readonly storage: Storage;
  readonly sfs: FileSystems;
  readonly rt: RuntimeServices;
  readonly bootmgr: BootManager;
  readonly tpm?: VirtualTpm;
  readonly systemTable: number;
  readonly entry: number;
  readonly stackTop: number;

  constructor(cpu: Cpu, o: Gen2FirmwareOptions) {
    const top = o.memoryBytes;
    const base = top - FIRMWARE_REGION.size;
    const R = FIRMWARE_REGION;
    const at = (r: { off: number }) => base + r.off;
    const pages = (n: number) => Math.ceil(n / PAGE_SIZE);
    this.mem = new MemoryMap(top, [
      { start: 0, pages: 1, type: MemType.BootServicesData },
      { start: 0xa0000, pages: pages(0x60000), type: MemType.Reserved },
      { start: base, pages: pages(FIRMWARE_REGION.size), type: MemType.BootServicesData },
      { start: at(R.stubs), pages: pages(R.stubs.size), type: MemType.RuntimeServicesCode },
      { start: at(R.platform), pages: pages(R.platform.size), type: MemType.AcpiReclaim },
      { start: at(R.framebuffer), pages: pages(R.framebuffer.size), type: MemType.Reserved },
    ]);
    this.mem.key = 1;
    const fw = this.core = new FirmwareCore(cpu, this.mem, o.clock, o.trace, {
      stubBase: at(R.stubs), stubBytes: R.stubs.size, arenaBase: at(R.arena), arenaBytes: R.arena.size,
    });
    fw.initGuestCalls();
    this.stackTop = at(R.stack) + R.stack.size - 64;

    this.storage = new Storage(fw, o.dev, o.layout, o.controller);
    this.sfs = new FileSystems(fw, this.storage);
    this.images = new ImageServices(fw, {
      readDevicePath: (dp) => this.readDevicePath(dp),
      devicePathBytes: (p) => this.bs.devicePathBytes(p),
      systemTable: () => this.systemTable,
      onStart: o.onImageStart,
    }, o.policy);
    let consoleRef: Console | undefined;
    this.bs = new BootServices(fw, {
      keyAvailable: () => consoleRef?.keyAvailable() ?? false,
      onExitBootServices: o.onExitBootServices,
      imageServices: this.images.handlers(),
    });
    this.rt = new RuntimeServices(fw, o.nvram);
    const tables = buildTables(fw, this.bs.handlers(), this.rt.handlers());
    this.systemTable = tables.st;
    this.bs.onConfigChange = () => writeConfigTables(fw, tables, this.bs.configTables);
    for (const t of buildPlatformTables(fw, at(R.platform))) this.bs.installConfigTable(t.guid, t.table);

    const con = this.console = consoleRef = new Console(fw, this.bs.keyEvent());
    con.keys = [...o.keys];
    con.build(at(R.framebuffer));
    const conHandle = fw.newHandle();
    fw.install(conHandle, GUID.SIMPLE_TEXT_INPUT, con.conIn);
    fw.install(conHandle, GUID.SIMPLE_TEXT_INPUT_EX, con.conInEx);
    fw.install(conHandle, GUID.SIMPLE_TEXT_OUTPUT, con.conOut);
    const gopHandle = fw.newHandle();
    fw.install(gopHandle, GUID.GRAPHICS_OUTPUT, con.gop);
    setConsoles(fw, tables, { inHandle: conHandle, conIn: con.conIn, outHandle: conHandle, conOut: con.conOut });
    fw.onCall = (name) => { con.activity(name); o.clock.advance(NS_PER_EFI_CALL); };

    if (o.vtpm) {
      this.tpm = new VirtualTpm(fw);
      fw.install(fw.newHandle(), GUID.TCG2, this.tpm.build());
    }
    this.storage.build();
    this.sfs.build();

    // The firmware's own image handle: parent of the boot options it starts.
    const fwHandle = fw.newHandle();
    this.images.registerFirmwareImage(fwHandle, { source: "firmware", deviceHandle: 0, parent: 0, base: 0, size: 0, entry: 0,
      sha256: "", bytes: Buffer.alloc(0), pe: undefined as never, linux: false, started: true });
    this.bootmgr = new BootManager(fw, this.images, this.storage, this.sfs, con, o.nvram, { lastDenial: () => o.policy.lastDenial() });
    this.bootmgr.firmwareImage = fwHandle;
    this.entry = this.bootmgr.install();
    this.bootmgr.plan();
  }

  /** LoadImage by device path: the partition (longest device-path prefix, or HD() short form) and the file on it. */
  private readDevicePath(dp: Buffer): ReturnType<ImageHost["readDevicePath"]> {
    let nodes;
    try { nodes = parseDevicePath(Buffer.concat([dp, Buffer.from([0x7f, 0xff, 4, 0])])); } catch { return { status: "NOT_FOUND", why: "malformed device path" }; }
    const text = devicePathToText(nodes);
    const fileStart = nodes.findIndex((n) => n.type === 4 && n.subType === 4);
    const device = fileStart < 0 ? nodes : nodes.slice(0, fileStart);
    const bh = this.storage.handles.find((h) => h.nodes.length === device.length && h.nodes.every((n, i) => n.type === device[i].type && n.subType === device[i].subType && n.data.equals(device[i].data)))
      ?? (device.length === 1 && device[0].type === 4 && device[0].subType === 1
        ? this.storage.handles.find((h) => { const last = h.nodes[h.nodes.length - 1]; return last.type === 4 && last.subType === 1 && last.data.equals(device[0].data); }) : undefined);
    if (!bh) return { status: "NOT_FOUND", why: `no device matches ${text}` };
    const vol = this.sfs.volumeOf(bh.handle);
    if (!vol) return { status: "UNSUPPORTED", why: `${bh.text} has no UEFI file system` };
    const file = filePathOf(nodes) ?? "";
    if (!file) return { status: "NOT_FOUND", why: `${text} names no file` };
    const data = this.sfs.readFile(vol, file, MAX_LOAD_IMAGE_BYTES);
    if (!data) return { status: "NOT_FOUND", why: `${file} not found on ${bh.text}` };
    return { data, deviceHandle: bh.handle, filePath: file.startsWith("\\") ? file : "\\" + file, deviceText: text };
  }
}
