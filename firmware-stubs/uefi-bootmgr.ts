// The Gen2 boot manager, modelled on mu_msvm's BDS: BootOrder/Boot#### from NVRAM first, then the default boot of
// a VM without usable boot entries — the SCSI disk's removable-media path \EFI\BOOT\BOOTX64.EFI on each of its
// UEFI file systems — then the network (no adapter here), and the Hyper-V boot summary screen when all fail.
import { FirmwareCore } from "./uefi-core.ts";
import { EFI, statusName } from "./uefi-layout.ts";
import type { ImageServices, LoadedImageInfo } from "./uefi-image.ts";
import type { Storage } from "./uefi-storage.ts";
import type { FileSystems, Volume } from "./uefi-sfs.ts";
import type { Console } from "./uefi-console.ts";
import { GUID } from "./uefi-guid.ts";
import { parseBootOrder, parseLoadOption, bootVarName, type VariableStore } from "./uefi-nvram.ts";
import { devicePathToText, filePath, serializeDevicePath, matchShortForm, splitAtMedia, filePathOf,
  type DevNode } from "./uefi-devpath.ts";
import { ImageError } from "../images/errors.ts";
import { MAX_LOAD_IMAGE_BYTES } from "./uefi-image.ts";
import { UEFI_MAX_BOOT_OPTIONS } from "../images/limits.ts";

export const REMOVABLE_PATH = "\\EFI\\BOOT\\BOOTX64.EFI";
/** The Hyper-V boot failure lines (HYPERV.md), reproduced verbatim on the console as evidence. */
export const MSG = {
  noFs: "No UEFI-compatible file system was found.",
  noLoader: "No x64-based UEFI boot loader was found.",
  returned: "The boot loader did not load an operating system.",
  denied: "Image execution was denied by Secure Boot policy.",
  dbx: "The image's hash was denied (DBX).",
  noPxe: "A boot image was not found.",
  none: "No operating system was loaded. Your virtual machine may be configured incorrectly. Exit and re-configure your VM or click restart to retry the current boot sequence again.",
} as const;
const LOAD_OPTION_ACTIVE = 1;
const MAX_BOOT_OPTIONS = UEFI_MAX_BOOT_OPTIONS;

export interface BootAttempt {
  device: string;
  /** Boot#### or "default" (removable media path) or "network". */
  option: string;
  file?: string;
  outcome: "not-found" | "no-filesystem" | "load-error" | "denied" | "returned" | "started";
  message: string;
  status?: string;
  /** Why the image could not be loaded (load-error). */
  why?: string;
}

export interface BootManagerHost {
  /** Secure Boot refusal of the last LoadImage, if that was the reason (set by the image policy). */
  lastDenial(): { dbx: boolean } | undefined;
}

type Candidate = { kind: "option"; num: number } | { kind: "default" } | { kind: "network" };

export class BootManager {
  attempts: BootAttempt[] = [];
  private queue: Candidate[] = [];
  private stubAddr = 0;
  firmwareImage = 0;
  done = false;

  constructor(private fw: FirmwareCore, private images: ImageServices, private storage: Storage, private sfs: FileSystems,
    private con: Console, private nvram: VariableStore, private host: BootManagerHost) {}

  /** The stub the CPU starts at: each visit runs the next boot candidate. */
  install(): number {
    this.stubAddr = this.fw.stub("(boot manager)", () => { this.step(); return undefined; });
    return this.stubAddr;
  }

  /** Candidates in order: BootOrder entries, then the disk's removable media path, then the network. */
  plan(): Candidate[] {
    const order = this.nvram.get("BootOrder", GUID.EFI_GLOBAL_VARIABLE);
    const nums = order ? parseBootOrder(order.data).slice(0, MAX_BOOT_OPTIONS) : [];
    this.queue = [...nums.map((num) => ({ kind: "option" as const, num })), { kind: "default" }, { kind: "network" }];
    return this.queue;
  }

  private diskName(): string {
    return this.storage.controller === "nvme" ? "NVMe Disk (namespace 1)" : "SCSI Disk (0,0)";
  }

  private step(): void {
    for (;;) {
      const c = this.queue.shift();
      if (!c) { this.summary(); return; }
      const img = c.kind === "option" ? this.tryOption(c.num) : c.kind === "default" ? this.tryDefault() : this.tryNetwork();
      if (!img) continue;
      const attempt = this.attempts[this.attempts.length - 1];
      this.setBootCurrent(c);
      this.images.start(img, (status) => {
        attempt.outcome = "returned";
        attempt.status = statusName(status);
        attempt.message = MSG.returned;
        this.fw.cpu.setReg64("RIP", BigInt(this.stubAddr));   // back to the boot manager for the next candidate
      });
      return;
    }
  }

  private setBootCurrent(c: Candidate): void {
    if (c.kind !== "option") return;
    const b = Buffer.alloc(2);
    b.writeUInt16LE(c.num);
    this.nvram.put("BootCurrent", GUID.EFI_GLOBAL_VARIABLE, 0x6, b);
  }

  private record(a: BootAttempt): void {
    this.attempts.push(a);
    this.fw.trace.add("stage", `boot manager: ${a.device}: ${a.message}`, { option: a.option, file: a.file, outcome: a.outcome });
  }

  private load(data: Buffer, vol: Volume | undefined, devicePath: Buffer, device: string, option: string, file: string): LoadedImageInfo | undefined {
    this.images.lastError = undefined;
    const r = this.images.load(data, { parent: this.firmwareImage, source: device, filePath: file, deviceHandle: vol?.handle ?? 0, devicePath });
    if (typeof r !== "bigint") {
      this.record({ device, option, file, outcome: "started", message: `starting ${file}` });
      return r;
    }
    const denial = this.host.lastDenial();
    if (denial) this.record({ device, option, file, outcome: "denied", message: denial.dbx ? MSG.dbx : MSG.denied, status: statusName(r) });
    else this.record({ device, option, file, outcome: "load-error", message: MSG.noLoader, status: statusName(r), why: this.images.lastError });
    return undefined;
  }

  private tryOption(num: number): LoadedImageInfo | undefined {
    const name = bootVarName(num);
    const v = this.nvram.get(name, GUID.EFI_GLOBAL_VARIABLE);
    if (!v) { this.record({ device: name, option: name, outcome: "not-found", message: `${name} is listed in BootOrder but does not exist` }); return undefined; }
    let opt;
    try { opt = parseLoadOption(v.data); } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      this.record({ device: name, option: name, outcome: "load-error", message: `${name} is malformed: ${e.message}` });
      return undefined;
    }
    if (!(opt.attributes & LOAD_OPTION_ACTIVE)) return undefined;
    const nodes: DevNode[] = opt.filePathList;
    const device = `${name} "${opt.description}"`;
    const full = this.storage.handles.map((h) => h.nodes);
    const { device: devNodes, file } = splitAtMedia(nodes);
    let idx = devNodes.length ? full.findIndex((f) => serializeDevicePath(f).equals(serializeDevicePath(devNodes))) : -1;
    if (idx < 0) idx = matchShortForm(nodes, full);
    const filePath = filePathOf(file);
    if (idx < 0 || !filePath) {
      this.record({ device, option: name, file: filePath, outcome: "not-found", message: `${devicePathToText(nodes)} is not on this VM (the entry came from another machine's NVRAM)` });
      return undefined;
    }
    const bh = this.storage.handles[idx];
    const vol = this.sfs.volumeOf(bh.handle);
    if (!vol) { this.record({ device, option: name, file: filePath, outcome: "no-filesystem", message: MSG.noFs }); return undefined; }
    const data = this.sfs.readFile(vol, filePath, MAX_LOAD_IMAGE_BYTES);
    if (!data) { this.record({ device, option: name, file: filePath, outcome: "not-found", message: `${filePath} was not found on ${bh.text}` }); return undefined; }
    return this.load(data, vol, serializeDevicePath([...bh.nodes, ...file]).subarray(0, -4), device, name, filePath);
  }

  private tryDefault(): LoadedImageInfo | undefined {
    const device = this.diskName();
    const vols = this.sfs.volumes;
    if (!vols.length) { this.record({ device, option: "default", outcome: "no-filesystem", message: MSG.noFs }); return undefined; }
    for (const vol of vols) {
      const data = this.sfs.readFile(vol, REMOVABLE_PATH, MAX_LOAD_IMAGE_BYTES);
      if (!data) continue;
      const bh = this.storage.handleOf(vol.handle)!;
      return this.load(data, vol, serializeDevicePath([...bh.nodes, filePath(REMOVABLE_PATH)]).subarray(0, -4), device, "default", REMOVABLE_PATH);
    }
    this.record({ device, option: "default", outcome: "not-found", message: MSG.noLoader });
    return undefined;
  }

  private tryNetwork(): undefined {
    this.record({ device: "Network Adapter", option: "network", outcome: "not-found", message: `${MSG.noPxe} (no network boot: bootgate attaches no network adapter)` });
    return undefined;
  }

  /** All candidates failed: the Hyper-V boot summary, then the run ends. */
  private summary(): void {
    this.done = true;
    const con = this.con;
    con.clear();
    con.print("Virtual Machine Boot Summary\r\n\r\n");
    const byDevice: BootAttempt[] = [];
    for (const a of this.attempts) {
      const prev = byDevice.findIndex((b) => b.device === a.device);
      if (prev >= 0) byDevice[prev] = a; else byDevice.push(a);
    }
    byDevice.forEach((a, i) => con.print(`${i + 1}. ${a.device}\r\n    ${a.message}\r\n\r\n`));
    con.print(`${MSG.none}\r\n`);
    this.fw.requestStop("no-boot-device", "every boot option failed; the firmware shows the boot summary");
  }
}
