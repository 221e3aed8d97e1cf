// EFI_RUNTIME_SERVICES of the Gen2 firmware (UEFI 2.10 ch. 8): variables on the NVRAM store (uefi-nvram.ts),
// time from the virtual clock, and ResetSystem — which ends this boot so the run can power the VM on again with the
// same NVRAM (shim's fallback creates a Boot#### entry and resets).
import { Call, FirmwareCore } from "./uefi-core.ts";
import { EFI, RESET_TYPES, type RuntimeService } from "./uefi-layout.ts";
import type { Handler } from "./uefi-core.ts";
import { guidToBytes } from "./uefi-guid.ts";
import type { VariableStore } from "./uefi-nvram.ts";
import { NVRAM_MAX_NAME_CHARS } from "../images/limits.ts";

/** Largest variable name the firmware reads (characters). */
const MAX_NAME_CHARS = NVRAM_MAX_NAME_CHARS;

export interface ResetRequest { type: string; status: bigint; data?: string }

export class RuntimeServices {
  reset?: ResetRequest;
  /** Variables the guest read, for reports (name@guid -> found?). */
  reads = new Map<string, boolean>();

  constructor(private fw: FirmwareCore, private store: VariableStore) {}

  handlers(): Partial<Record<RuntimeService, Handler>> {
    const fw = this.fw;
    return {
      GetTime: (c) => {
        if (!c.ptr(0)) return EFI.INVALID_PARAMETER;
        const t = fw.clock.rtc();
        const a = c.ptr(0);
        fw.bytes(a, 16).fill(0);
        fw.w16(a, t.year); fw.w8(a + 2, t.month); fw.w8(a + 3, t.day);
        fw.w8(a + 4, t.hour); fw.w8(a + 5, t.minute); fw.w8(a + 6, t.second);
        fw.w32(a + 8, Math.floor((fw.clock.now % 1e9)));
        fw.w16(a + 12, 0x07ff);                      // EFI_UNSPECIFIED_TIMEZONE
        if (c.ptr(1)) { fw.w32(c.ptr(1), 1); fw.w32(c.ptr(1) + 4, 1e9); fw.w8(c.ptr(1) + 8, 0); }
        return EFI.SUCCESS;
      },
      SetTime: () => EFI.SUCCESS,
      GetWakeupTime: () => EFI.UNSUPPORTED,
      SetWakeupTime: () => EFI.UNSUPPORTED,
      SetVirtualAddressMap: () => EFI.UNSUPPORTED,
      ConvertPointer: () => EFI.UNSUPPORTED,
      GetVariable: (c) => this.getVariable(c),
      GetNextVariableName: (c) => this.nextName(c),
      SetVariable: (c) => this.setVariable(c),
      GetNextHighMonotonicCount: (c) => { if (!c.ptr(0)) return EFI.INVALID_PARAMETER; fw.w32(c.ptr(0), 1); return EFI.SUCCESS; },
      ResetSystem: (c) => {
        const type = RESET_TYPES[c.u32(0)] ?? `reset type ${c.u32(0)}`;
        const data = c.ptr(3) && c.num(2) ? fw.utf16(c.ptr(3), 256) : undefined;
        this.reset = { type, status: c.arg(1), data };
        fw.trace.add("stage", `ResetSystem(${type})`, data ? { data } : undefined);
        fw.requestStop("reset", `the loader called ResetSystem(${type})`);
        return undefined;
      },
      UpdateCapsule: () => EFI.UNSUPPORTED,
      QueryCapsuleCapabilities: () => EFI.UNSUPPORTED,
      QueryVariableInfo: (c) => {
        const [maxP, remP, varP] = [c.ptr(1), c.ptr(2), c.ptr(3)];
        if (!maxP || !remP || !varP) return EFI.INVALID_PARAMETER;
        const q = this.store.query();
        fw.w64(maxP, q.maxStorage); fw.w64(remP, q.remaining); fw.w64(varP, q.maxVariable);
        return EFI.SUCCESS;
      },
    };
  }

  private getVariable(c: Call): bigint {
    const fw = this.fw;
    const name = fw.utf16(c.ptr(0), MAX_NAME_CHARS);
    if (!c.ptr(0) || !c.ptr(1) || !c.ptr(3) || name === "") return EFI.INVALID_PARAMETER;
    const guid = fw.guid(c.ptr(1));
    const v = this.store.get(name, guid);
    this.reads.set(`${name}@${guid}`, v !== undefined);
    if (!v) return EFI.NOT_FOUND;
    if (c.ptr(2)) fw.w32(c.ptr(2), v.attributes);
    const have = fw.u64(c.ptr(3));
    fw.w64(c.ptr(3), v.data.length);
    if (have < BigInt(v.data.length)) return EFI.BUFFER_TOO_SMALL;
    if (v.data.length) {
      if (!c.ptr(4)) return EFI.INVALID_PARAMETER;
      fw.put(c.ptr(4), v.data);
    }
    return EFI.SUCCESS;
  }

  private nextName(c: Call): bigint {
    const fw = this.fw;
    const sizeP = c.ptr(0), nameP = c.ptr(1), guidP = c.ptr(2);
    if (!sizeP || !nameP || !guidP) return EFI.INVALID_PARAMETER;
    const prev = fw.utf16(nameP, MAX_NAME_CHARS);
    const r = this.store.nextName(prev, prev === "" ? "" : fw.guid(guidP));
    if (r.status !== "SUCCESS" || r.name === undefined || r.guid === undefined) return EFI[r.status];
    const bytes = Buffer.from(r.name + "\0", "utf16le");
    const have = fw.u64(sizeP);
    fw.w64(sizeP, bytes.length);
    if (have < BigInt(bytes.length)) return EFI.BUFFER_TOO_SMALL;
    fw.put(nameP, bytes);
    fw.put(guidP, guidToBytes(r.guid));
    return EFI.SUCCESS;
  }

  private setVariable(c: Call): bigint {
    const fw = this.fw;
    const name = fw.utf16(c.ptr(0), MAX_NAME_CHARS);
    if (!c.ptr(0) || !c.ptr(1) || name === "") return EFI.INVALID_PARAMETER;
    const guid = fw.guid(c.ptr(1));
    const size = c.num(3);
    if (size > 0x100000) return EFI.OUT_OF_RESOURCES;
    const data = size ? Buffer.from(fw.bytes(c.ptr(4), size)) : Buffer.alloc(0);
    const st = this.store.set(name, guid, c.u32(2), data);
    fw.trace.add("efi", `SetVariable ${name} (${size} bytes) -> ${st}`, { guid, attributes: c.u32(2) });
    return EFI[st];
  }
}
