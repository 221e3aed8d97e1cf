// koffi binding to the Unicorn 2 C API (unicorn/unicorn.h), loaded at run time from Debian's libunicorn2
// (GPL-2.0: never vendored). Only the calls the emulator uses; ids come from the generated emu/uc-consts.ts.
import koffi from "koffi";
import { UC_ERR_OK } from "./uc-consts.ts";

/** Library names tried in order (Debian libunicorn2 ships libunicorn.so.2). */
const LIB_NAMES = ["libunicorn.so.2", "libunicorn.so", "libunicorn.2.dylib", "unicorn.dll"];

export class UnicornMissingError extends Error {
  constructor(detail: string) {
    super(`the Unicorn CPU emulator library (libunicorn.so.2) could not be loaded: ${detail}. ` +
      `Install it with 'apt-get install libunicorn2' (Debian/Ubuntu) and try again.`);
    this.name = "UnicornMissingError";
  }
}

export class UnicornError extends Error {
  readonly err: number;
  constructor(call: string, err: number, message: string) {
    super(`${call} failed: ${message} (uc_err ${err})`);
    this.name = "UnicornError";
    this.err = err;
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface UcApi {
  uc_open(arch: number, mode: number, out: unknown[]): number;
  uc_close(uc: unknown): number;
  uc_strerror(err: number): string;
  uc_version(major: null, minor: null): number;
  uc_reg_read(uc: unknown, regid: number, value: Buffer): number;
  uc_reg_write(uc: unknown, regid: number, value: Buffer): number;
  uc_mem_map(uc: unknown, address: number | bigint, size: number, perms: number): number;
  uc_mem_map_ptr(uc: unknown, address: number | bigint, size: number, perms: number, ptr: Buffer): number;
  uc_mem_read(uc: unknown, address: number | bigint, bytes: Buffer, size: number): number;
  uc_mem_write(uc: unknown, address: number | bigint, bytes: Buffer, size: number): number;
  uc_emu_start(uc: unknown, begin: number | bigint, until: number | bigint, timeout: number, count: number): number;
  uc_emu_stop(uc: unknown): number;
  /** uc_emu_stop of the engine at this address (another thread's engine: emu/batch-watchdog.ts). */
  uc_emu_stop_at(uc: bigint): number;
  uc_hook_add_intr(uc: unknown, hh: unknown[], type: number, cb: unknown, user: null, begin: number, end: number): number;
  uc_hook_add_code(uc: unknown, hh: unknown[], type: number, cb: unknown, user: number, begin: number | bigint, end: number | bigint): number;
  uc_hook_add_insn(uc: unknown, hh: unknown[], type: number, cb: unknown, user: null, begin: number, end: number, ...extra: unknown[]): number;
  uc_hook_add_edge(uc: unknown, hh: unknown[], type: number, cb: unknown, user: null, begin: number | bigint, end: number | bigint): number;
  uc_hook_del(uc: unknown, hh: unknown): number;
  uc_query(uc: unknown, type: number, result: Buffer): number;
  uc_ctl(uc: unknown, control: number, ...args: unknown[]): number;
  /** uc_ctl with two uint64 arguments, bound without varargs (koffi's variadic calls cost microseconds). */
  uc_ctl_2u64(uc: unknown, control: number, a: bigint, b: bigint): number;
  /** Callback prototypes for koffi.register. */
  protos: { intr: any; code: any; insnIn: any; insnOut: any; cpuid: any; edge: any };
  /** struct uc_tb (the translation blocks an UC_HOOK_EDGE_GENERATED callback receives). */
  ucTb: any;
  koffi: typeof koffi;
}

let api: UcApi | undefined;
/** koffi's maximum synchronous stack/heap (16 MiB). */
const KOFFI_STACK = 16 * 1024 * 1024;

/** Load libunicorn once; throws UnicornMissingError naming the Debian package when it is absent. */
export function unicorn(): UcApi {
  if (api) return api;
  // uc_emu_start runs QEMU's TCG on koffi's synchronous call stack and re-enters JS from there for every hook;
  // give it koffi's largest stack. koffi accepts this only before its first library load, so it is best effort.
  if ((koffi.config().sync_stack_size ?? 0) < KOFFI_STACK) {
    try { koffi.config({ ...koffi.config(), sync_stack_size: KOFFI_STACK, sync_heap_size: KOFFI_STACK }); } catch { /* keep defaults */ }
  }
  let lib: ReturnType<typeof koffi.load> | undefined;
  const errors: string[] = [];
  for (const name of LIB_NAMES) {
    try { lib = koffi.load(name); break; } catch (e) { errors.push(`${name}: ${(e as Error).message}`); }
  }
  if (!lib) throw new UnicornMissingError(errors[0] ?? "not found");
  koffi.opaque("uc_engine");
  const intr = koffi.proto("void UcHookIntr(uc_engine *uc, uint32_t intno, void *user)");
  const code = koffi.proto("void UcHookCode(uc_engine *uc, uint64_t address, uint32_t size, void *user)");
  const insnIn = koffi.proto("uint32_t UcHookIn(uc_engine *uc, uint32_t port, int size, void *user)");
  const insnOut = koffi.proto("void UcHookOut(uc_engine *uc, uint32_t port, int size, uint32_t value, void *user)");
  const cpuid = koffi.proto("int UcHookCpuid(uc_engine *uc, void *user)");
  const ucTb = koffi.struct("uc_tb", { pc: "uint64_t", icount: "uint16_t", size: "uint16_t" });
  const edge = koffi.proto("void UcHookEdge(uc_engine *uc, uc_tb *cur, uc_tb *prev, void *user)");
  try {
    api = {
      uc_open: lib.func("int uc_open(int arch, int mode, _Out_ uc_engine **uc)"),
      uc_close: lib.func("int uc_close(uc_engine *uc)"),
      uc_strerror: lib.func("const char *uc_strerror(int code)"),
      uc_version: lib.func("unsigned int uc_version(void *major, void *minor)"),
      uc_reg_read: lib.func("int uc_reg_read(uc_engine *uc, int regid, void *value)"),
      uc_reg_write: lib.func("int uc_reg_write(uc_engine *uc, int regid, const void *value)"),
      uc_mem_map: lib.func("int uc_mem_map(uc_engine *uc, uint64_t address, size_t size, uint32_t perms)"),
      uc_mem_map_ptr: lib.func("int uc_mem_map_ptr(uc_engine *uc, uint64_t address, size_t size, uint32_t perms, void *ptr)"),
      uc_mem_read: lib.func("int uc_mem_read(uc_engine *uc, uint64_t address, void *bytes, size_t size)"),
      uc_mem_write: lib.func("int uc_mem_write(uc_engine *uc, uint64_t address, const void *bytes, size_t size)"),
      uc_emu_start: lib.func("int uc_emu_start(uc_engine *uc, uint64_t begin, uint64_t until, uint64_t timeout, size_t count)"),
      uc_emu_stop: lib.func("int uc_emu_stop(uc_engine *uc)"),
      uc_emu_stop_at: lib.func("uc_emu_stop", "int", ["uintptr_t"]),
      uc_hook_add_intr: lib.func("uc_hook_add", "int", ["uc_engine *", koffi.out(koffi.pointer("size_t")), "int",
        koffi.pointer(intr), "void *", "uint64_t", "uint64_t"]),
      uc_hook_add_code: lib.func("uc_hook_add", "int", ["uc_engine *", koffi.out(koffi.pointer("size_t")), "int",
        koffi.pointer(code), "uintptr_t", "uint64_t", "uint64_t"]),
      uc_hook_add_insn: lib.func("int uc_hook_add(uc_engine *uc, _Out_ size_t *hh, int type, void *cb, void *user, uint64_t begin, uint64_t end, ...)"),
      uc_hook_add_edge: lib.func("uc_hook_add", "int", ["uc_engine *", koffi.out(koffi.pointer("size_t")), "int",
        koffi.pointer(edge), "void *", "uint64_t", "uint64_t"]),
      uc_hook_del: lib.func("int uc_hook_del(uc_engine *uc, size_t hh)"),
      uc_query: lib.func("int uc_query(uc_engine *uc, int type, void *result)"),
      uc_ctl: lib.func("int uc_ctl(uc_engine *uc, int control, ...)"),
      // Same symbol: on x86-64 System V and Win64 integer varargs are passed like fixed arguments.
      uc_ctl_2u64: lib.func("uc_ctl", "int", ["uc_engine *", "int", "uint64_t", "uint64_t"]),
      protos: { intr, code, insnIn, insnOut, cpuid, edge },
      ucTb,
      koffi,
    } as UcApi;
  } catch (e) {
    throw new UnicornMissingError(`the library lacks an expected Unicorn 2 symbol (${(e as Error).message})`);
  }
  return api;
}

/** Throw a UnicornError unless `err` is UC_ERR_OK. */
export function check(a: UcApi, call: string, err: number): void {
  if (err !== UC_ERR_OK) throw new UnicornError(call, err, a.uc_strerror(err));
}
