// A virtual TPM 2.0 as loaders see it through EFI_TCG2_PROTOCOL (TCG EFI Protocol Specification 2.0, 6.4-6.7):
// Azure Trusted Launch VMs (and Hyper-V VMs with "Enable Trusted Platform Module") have one. Measurements are
// really extended into SHA-256 PCRs (kept for the report); raw TPM commands are not modelled.
import { createHash } from "node:crypto";
import { FirmwareCore } from "./uefi-core.ts";
import { EFI } from "./uefi-layout.ts";
import { TPM_MAX_MEASURED_BYTES } from "../images/limits.ts";

const MEMBERS = ["GetCapability", "GetEventLog", "HashLogExtendEvent", "SubmitCommand", "GetActivePcrBanks",
  "SetActivePcrBanks", "GetResultOfSetActivePcrBanks"] as const;
/** EFI_TCG2_BOOT_SERVICE_CAPABILITY, 1.1 layout with natural alignment (EDK2 Tcg2Protocol.h): 36 bytes. */
const CAPABILITY_SIZE = 36;
const HASH_SHA256 = 0x2;
const EVENT_LOG_FORMAT_TCG_2 = 0x2;
/** Most data one HashLogExtendEvent hashes (a kernel plus initramfs fits). */
const MAX_MEASURED_BYTES = TPM_MAX_MEASURED_BYTES;

export interface Measurement { pcr: number; bytes: number; sha256: string; description: string }

export class VirtualTpm {
  readonly pcrs = new Map<number, Buffer>();
  readonly log: Measurement[] = [];
  iface = 0;

  constructor(private fw: FirmwareCore) {}

  build(): number {
    const fw = this.fw;
    const eventLog = fw.alloc(64);
    this.iface = fw.buildInterface(MEMBERS, "Tcg2", {
      GetCapability: (c) => {
        const p = c.ptr(1);
        if (!p) return EFI.INVALID_PARAMETER;
        const size = fw.u8(p);
        const cap = Buffer.alloc(CAPABILITY_SIZE);
        cap[0] = CAPABILITY_SIZE; cap[1] = 1; cap[2] = 1; cap[3] = 1; cap[4] = 1;
        cap.writeUInt32LE(HASH_SHA256, 8);            // HashAlgorithmBitmap
        cap.writeUInt32LE(EVENT_LOG_FORMAT_TCG_2, 12); // SupportedEventLogs
        cap[16] = 1;                                  // TPMPresentFlag
        cap.writeUInt16LE(4096, 18); cap.writeUInt16LE(4096, 20);
        cap.writeUInt32LE(0x4d534654, 24);            // ManufacturerID "MSFT"
        cap.writeUInt32LE(1, 28);                     // NumberOfPcrBanks
        cap.writeUInt32LE(HASH_SHA256, 32);           // ActivePcrBanks
        fw.put(p, cap.subarray(0, Math.min(Math.max(size, 1), CAPABILITY_SIZE)));
        return EFI.SUCCESS;
      },
      GetEventLog: (c) => {
        if (c.u32(1) !== EVENT_LOG_FORMAT_TCG_2) return EFI.INVALID_PARAMETER;
        if (c.ptr(2)) fw.w64(c.ptr(2), eventLog);
        if (c.ptr(3)) fw.w64(c.ptr(3), 0);
        if (c.ptr(4)) fw.w8(c.ptr(4), 0);
        return EFI.SUCCESS;
      },
      HashLogExtendEvent: (c) => {
        const data = c.ptr(2), len = c.num(3), ev = c.ptr(4);
        if (!ev || (len > 0 && !data)) return EFI.INVALID_PARAMETER;
        if (len > MAX_MEASURED_BYTES) return EFI.OUT_OF_RESOURCES;
        // EFI_TCG2_EVENT: Size u32, Header { HeaderSize u32, HeaderVersion u16, PCRIndex u32, EventType u32 }, Event[]
        const size = fw.u32(ev), headerSize = fw.u32(ev + 4), pcr = fw.u32(ev + 10);
        if (pcr > 23 || size < 4 + headerSize || headerSize < 14) return EFI.INVALID_PARAMETER;
        const event = fw.bytes(ev + 4 + headerSize, Math.min(size - 4 - headerSize, 512));
        const digest = createHash("sha256").update(len ? fw.bytes(data, len) : Buffer.alloc(0)).digest();
        this.extend(pcr, digest, len, event.toString("latin1").replace(/[^\x20-\x7e]/g, "").slice(0, 120));
        return EFI.SUCCESS;
      },
      SubmitCommand: (c) => fw.note("Tcg2.SubmitCommand (raw TPM commands are not modelled)", EFI.DEVICE_ERROR),
      GetActivePcrBanks: (c) => { if (!c.ptr(1)) return EFI.INVALID_PARAMETER; fw.w32(c.ptr(1), HASH_SHA256); return EFI.SUCCESS; },
      SetActivePcrBanks: () => EFI.UNSUPPORTED,
      GetResultOfSetActivePcrBanks: () => EFI.UNSUPPORTED,
    });
    return this.iface;
  }

  private extend(pcr: number, digest: Buffer, bytes: number, description: string): void {
    const old = this.pcrs.get(pcr) ?? Buffer.alloc(32);
    this.pcrs.set(pcr, createHash("sha256").update(old).update(digest).digest());
    if (this.log.length < 512) this.log.push({ pcr, bytes, sha256: digest.toString("hex"), description });
  }
}
