// The Gen2 boot services as a loader sees them (UEFI 2.10 ch. 7): each case sets the argument registers of the
// Microsoft x64 convention in a real 64-bit Unicorn engine and calls the service the way the stub trap does.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCpu, type Cpu } from "../emu/cpu.ts";
import { VirtualClock } from "../emu/clock.ts";
import { Trace } from "../emu/trace.ts";
import { Call, FirmwareCore, type Handler } from "../firmware-stubs/uefi-core.ts";
import { BootServices } from "../firmware-stubs/uefi-boot-services.ts";
import { MemoryMap } from "../firmware-stubs/uefi-memory.ts";
import { EFI, EVT, MemType, MEMORY_DESCRIPTOR_SIZE, TimerDelay, type BootService } from "../firmware-stubs/uefi-layout.ts";
import { GUID, guidToBytes } from "../firmware-stubs/uefi-guid.ts";

const RAM = 64 * 2 ** 20;
const FW = RAM - 8 * 2 ** 20;
const SCRATCH = 0x200000;                       // guest buffers for out-parameters
let cpu: Cpu, fw: FirmwareCore, bs: BootServices, clock: VirtualClock, handlers: Partial<Record<BootService, Handler>>;
let ebs = 0;

beforeEach(() => {
  cpu = createCpu(RAM, {}, "long");
  clock = new VirtualClock();
  const mem = new MemoryMap(RAM, [{ start: 0, pages: 1, type: MemType.BootServicesData }, { start: FW, pages: (RAM - FW) / 4096, type: MemType.BootServicesData }]);
  fw = new FirmwareCore(cpu, mem, clock, new Trace(() => clock.now / 1000), { stubBase: FW, stubBytes: 64 * 1024, arenaBase: FW + 0x100000, arenaBytes: 4 * 2 ** 20 });
  ebs = 0;
  bs = new BootServices(fw, { keyAvailable: () => false, onExitBootServices: () => { ebs++; }, imageServices: {} });
  handlers = bs.handlers();
  cpu.setReg64("RSP", BigInt(FW + 0x80000));
});
afterEach(() => cpu.close());

/** Call a boot service with up to 6 arguments (RCX, RDX, R8, R9, then the stack above the shadow space). */
function call(name: BootService, ...args: (number | bigint)[]): bigint {
  const regs = ["RCX", "RDX", "R8", "R9"] as const;
  const rsp = Number(cpu.reg64("RSP"));
  args.forEach((a, i) => {
    if (i < 4) cpu.setReg64(regs[i], BigInt(a));
    else cpu.ram.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), rsp + 8 * (i + 1));
  });
  const st = handlers[name]!(new Call(fw, name, BigInt(rsp)));
  return st ?? -1n;
}
const u64 = (a: number) => cpu.ram.readBigUInt64LE(a);
const guid = (g: string, at: number) => { cpu.ram.set(guidToBytes(g), at); return at; };

describe("Gen2 boot services", () => {
  it("AllocatePages/FreePages/GetMemoryMap: exact descriptors, BUFFER_TOO_SMALL with the size, and a map key that changes", () => {
    const sizeP = SCRATCH, mapP = SCRATCH + 0x1000, keyP = SCRATCH + 0x10, dsP = SCRATCH + 0x18, verP = SCRATCH + 0x20, outP = SCRATCH + 0x28;
    cpu.ram.writeBigUInt64LE(0n, sizeP);
    expect(call("GetMemoryMap", sizeP, 0, keyP, dsP, verP)).toBe(EFI.BUFFER_TOO_SMALL);
    const need = Number(u64(sizeP));
    expect(need % MEMORY_DESCRIPTOR_SIZE).toBe(0);
    expect(u64(dsP)).toBe(BigInt(MEMORY_DESCRIPTOR_SIZE));
    cpu.ram.writeBigUInt64LE(BigInt(need), sizeP);
    expect(call("GetMemoryMap", sizeP, mapP, keyP, dsP, verP)).toBe(EFI.SUCCESS);
    const key1 = u64(keyP);
    // AllocateAddress of free memory succeeds; of the same pages again fails; the map now lists LoaderData there.
    cpu.ram.writeBigUInt64LE(0x1000000n, outP);
    expect(call("AllocatePages", 2, MemType.LoaderData, 16, outP)).toBe(EFI.SUCCESS);
    expect(call("AllocatePages", 2, MemType.LoaderData, 1, outP)).toBe(EFI.NOT_FOUND);
    cpu.ram.writeBigUInt64LE(4096n * 64n, sizeP);
    expect(call("GetMemoryMap", sizeP, mapP, keyP, dsP, verP)).toBe(EFI.SUCCESS);
    expect(u64(keyP)).not.toBe(key1);
    const n = Number(u64(sizeP)) / MEMORY_DESCRIPTOR_SIZE;
    const entries = Array.from({ length: n }, (_, i) => ({ type: cpu.ram.readUInt32LE(mapP + i * 48), start: u64(mapP + i * 48 + 8), pages: u64(mapP + i * 48 + 24) }));
    expect(entries).toContainEqual({ type: MemType.LoaderData, start: 0x1000000n, pages: 16n });
    expect(entries.reduce((s, e) => s + e.pages, 0n)).toBe(BigInt(RAM / 4096));   // the map covers RAM exactly once
    // AnyPages comes top-down below the firmware; FreePages of memory never allocated is NOT_FOUND.
    expect(call("AllocatePages", 0, MemType.BootServicesData, 1, outP)).toBe(EFI.SUCCESS);
    expect(Number(u64(outP))).toBe(FW - 4096);
    expect(call("FreePages", 0x2000000, 1)).toBe(EFI.NOT_FOUND);
    expect(call("FreePages", 0x1000000, 16)).toBe(EFI.SUCCESS);
  });

  it("ExitBootServices refuses a stale map key and accepts the current one", () => {
    const sizeP = SCRATCH, mapP = SCRATCH + 0x1000, keyP = SCRATCH + 0x10;
    cpu.ram.writeBigUInt64LE(4096n * 64n, sizeP);
    call("GetMemoryMap", sizeP, mapP, keyP, SCRATCH + 0x18, SCRATCH + 0x20);
    const key = u64(keyP);
    call("AllocatePool", MemType.LoaderData, 100, SCRATCH + 0x28);              // changes the map
    expect(call("ExitBootServices", 0x1234, key)).toBe(EFI.INVALID_PARAMETER);
    expect(ebs).toBe(0);
    cpu.ram.writeBigUInt64LE(4096n * 64n, sizeP);
    expect(call("GetMemoryMap", sizeP, mapP, keyP, SCRATCH + 0x18, SCRATCH + 0x20)).toBe(EFI.SUCCESS);
    expect(call("ExitBootServices", 0x1234, u64(keyP))).toBe(EFI.SUCCESS);
    expect(ebs).toBe(1);
  });

  it("timer events run on virtual time: CheckEvent NOT_READY until due, WaitForEvent jumps the clock to the timer", () => {
    const evP = SCRATCH;
    expect(call("CreateEvent", EVT.TIMER, 0, 0, 0, evP)).toBe(EFI.SUCCESS);
    const ev = Number(u64(evP));
    expect(call("SetTimer", ev, TimerDelay.Relative, 10_000_000)).toBe(EFI.SUCCESS);    // 1 s in 100 ns units
    expect(call("CheckEvent", ev)).toBe(EFI.NOT_READY);
    const before = clock.now;
    cpu.ram.writeBigUInt64LE(BigInt(ev), SCRATCH + 0x100);
    expect(call("WaitForEvent", 1, SCRATCH + 0x100, SCRATCH + 0x108)).toBe(EFI.SUCCESS);
    expect(u64(SCRATCH + 0x108)).toBe(0n);
    expect(clock.now - before).toBeGreaterThanOrEqual(1e9);
    expect(call("CheckEvent", ev)).toBe(EFI.NOT_READY);                              // a relative timer fires once
    expect(call("CloseEvent", ev)).toBe(EFI.SUCCESS);
    expect(call("CloseEvent", ev)).toBe(EFI.INVALID_PARAMETER);
    expect(call("CreateEvent", EVT.NOTIFY_SIGNAL, 4, 0x1234, 0, evP)).toBe(EFI.INVALID_PARAMETER);   // TPL_APPLICATION notify
  });

  it("the protocol database: install on a new handle, HandleProtocol/OpenProtocol, LocateHandle(Buffer), LocateProtocol, uninstall", () => {
    const hP = SCRATCH, g = guid(GUID.SHIM_LOCK, SCRATCH + 0x40), out = SCRATCH + 0x80;
    cpu.ram.writeBigUInt64LE(0n, hP);
    expect(call("InstallProtocolInterface", hP, g, 0, 0xabc000)).toBe(EFI.SUCCESS);
    const h = Number(u64(hP));
    expect(call("InstallProtocolInterface", hP, g, 0, 0xabc000)).toBe(EFI.INVALID_PARAMETER);   // already there
    expect(call("HandleProtocol", h, g, out)).toBe(EFI.SUCCESS);
    expect(u64(out)).toBe(0xabc000n);
    expect(call("OpenProtocol", h, g, out, 0, 0, 4)).toBe(EFI.SUCCESS);                          // TEST_PROTOCOL
    expect(call("LocateProtocol", g, 0, out)).toBe(EFI.SUCCESS);
    expect(u64(out)).toBe(0xabc000n);
    cpu.ram.writeBigUInt64LE(0n, SCRATCH + 0x100);
    expect(call("LocateHandle", 2, g, 0, SCRATCH + 0x100, SCRATCH + 0x200)).toBe(EFI.BUFFER_TOO_SMALL);
    expect(u64(SCRATCH + 0x100)).toBe(8n);
    expect(call("LocateHandle", 2, g, 0, SCRATCH + 0x100, SCRATCH + 0x200)).toBe(EFI.SUCCESS);
    expect(Number(u64(SCRATCH + 0x200))).toBe(h);
    expect(call("LocateHandleBuffer", 2, g, 0, SCRATCH + 0x300, SCRATCH + 0x308)).toBe(EFI.SUCCESS);
    expect(u64(SCRATCH + 0x300)).toBe(1n);
    expect(call("UninstallProtocolInterface", h, g, 0xdead)).toBe(EFI.NOT_FOUND);                // wrong interface
    expect(call("UninstallProtocolInterface", h, g, 0xabc000)).toBe(EFI.SUCCESS);
    expect(call("LocateProtocol", g, 0, out)).toBe(EFI.NOT_FOUND);
  });

  it("LocateDevicePath finds the handle with the longest device-path prefix and advances the caller's pointer", () => {
    const dp = (nodes: number[][]) => Buffer.concat([...nodes.map((n) => Buffer.from(n)), Buffer.from([0x7f, 0xff, 4, 0])]);
    const pci = [1, 1, 6, 0, 0, 0], scsi = [3, 2, 8, 0, 0, 0, 0, 0], file = [4, 4, 8, 0, 0x41, 0, 0, 0];
    const disk = fw.newHandle(), part = fw.newHandle();
    const put = (b: Buffer, at: number) => { cpu.ram.set(b, at); return at; };
    fw.install(disk, GUID.DEVICE_PATH, put(dp([pci]), SCRATCH + 0x400));
    fw.install(disk, GUID.BLOCK_IO, 0x1000);
    fw.install(part, GUID.DEVICE_PATH, put(dp([pci, scsi]), SCRATCH + 0x440));
    fw.install(part, GUID.BLOCK_IO, 0x2000);
    const want = put(dp([pci, scsi, file]), SCRATCH + 0x480);
    cpu.ram.writeBigUInt64LE(BigInt(want), SCRATCH + 0x500);
    expect(call("LocateDevicePath", guid(GUID.BLOCK_IO, SCRATCH + 0x40), SCRATCH + 0x500, SCRATCH + 0x508)).toBe(EFI.SUCCESS);
    expect(Number(u64(SCRATCH + 0x508))).toBe(part);
    expect(Number(u64(SCRATCH + 0x500))).toBe(want + pci.length + scsi.length);                 // now at the file node
    expect(call("LocateDevicePath", guid(GUID.SIMPLE_FILE_SYSTEM, SCRATCH + 0x40), SCRATCH + 0x500, SCRATCH + 0x508)).toBe(EFI.NOT_FOUND);
  });

  it("CalculateCrc32, CopyMem (overlapping) and SetMem", () => {
    cpu.ram.write("123456789", SCRATCH, "latin1");
    expect(call("CalculateCrc32", SCRATCH, 9, SCRATCH + 0x20)).toBe(EFI.SUCCESS);
    expect(cpu.ram.readUInt32LE(SCRATCH + 0x20)).toBe(0xcbf43926);                             // the CRC-32 check value
    call("CopyMem", SCRATCH + 2, SCRATCH, 7);
    expect(cpu.ram.toString("latin1", SCRATCH, SCRATCH + 9)).toBe("121234567");
    call("SetMem", SCRATCH, 4, 0x41);
    expect(cpu.ram.toString("latin1", SCRATCH, SCRATCH + 9)).toBe("AAAA34567");
  });
});
