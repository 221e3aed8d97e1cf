// Disassembly of trace windows with Capstone (@alexaltea/capstone-js, wasm). Used only for the few instructions
// around a stop (about 13 us an instruction). The wasm factory is asynchronous and costs ~0.15 s, so callers that
// will emulate start loading it (loadDisassembler) without waiting, emulate (synchronously, while the wasm compiles
// on V8's background threads), then await finishDisassembly(), which fills in the windows disassembled meanwhile.
import { createRequire } from "node:module";

export interface DisasmLine { address: string; bytes: string; text: string }

interface CsInsn { address: bigint | number; mnemonic: string; op_str: string; size: number; bytes?: number[] }
interface CsDecoder { disasm(code: number[] | Uint8Array, addr: number): CsInsn[]; close(): void }
interface CsModule { Capstone: new (arch: number, mode: number) => CsDecoder; ARCH_X86: number; MODE_16: number; MODE_32: number; MODE_64: number }

let cs: CsModule | undefined;
let loadError: string | undefined = "disassembler not loaded (call loadDisassembler first)";
let loading: Promise<void> | undefined;

/** Initialise Capstone once; safe to call many times. Failure is remembered and shown in trace lines. */
export function loadDisassembler(): Promise<void> {
  loading ??= (async () => {
    try {
      const require = createRequire(import.meta.url);
      const factory = require("@alexaltea/capstone-js") as () => Promise<CsModule>;
      cs = await factory();
      loadError = undefined;
    } catch (e) {
      loadError = (e as Error).message;
    }
  })();
  return loading;
}

/** Windows disassembled before Capstone was ready: filled in place by finishDisassembly(). */
const deferred: { lines: DisasmLine[]; code: Uint8Array; address: number; bits: 16 | 32 | 64; max: number }[] = [];

/**
 * Wait for Capstone (started by loadDisassembler) and disassemble, in place, every window produced before it was
 * ready; the arrays disassemble() returned then hold the instructions. Without Capstone they keep the raw bytes and
 * the reason.
 */
export async function finishDisassembly(): Promise<void> {
  await loadDisassembler();
  for (const d of deferred.splice(0)) d.lines.splice(0, d.lines.length, ...disassemble(d.code, d.address, d.bits, d.max));
}

/**
 * Disassemble `code` located at linear `address` in 16-, 32- or 64-bit mode; at most `max` instructions. Without
 * Capstone every line shows the raw bytes and says why; while it is still loading, the returned array is filled in
 * by finishDisassembly().
 */
export function disassemble(code: Uint8Array, address: number, bits: 16 | 32 | 64, max = 32): DisasmLine[] {
  if (!cs) {
    const lines = [{ address: address.toString(16), bytes: Buffer.from(code).toString("hex"), text: `(no disassembler: ${loadError})` }];
    if (loading && loadError && deferred.length < 64) deferred.push({ lines, code: Uint8Array.from(code), address, bits, max });
    return lines;
  }
  const d = new cs.Capstone(cs.ARCH_X86, bits === 16 ? cs.MODE_16 : bits === 64 ? cs.MODE_64 : cs.MODE_32);
  try {
    let insns: CsInsn[];
    try { insns = d.disasm(Array.from(code), address); } catch { insns = []; }   // cs_disasm fails on invalid bytes
    if (!insns.length) return [{ address: address.toString(16), bytes: Buffer.from(code.subarray(0, 16)).toString("hex"), text: "(not decodable)" }];
    return insns.slice(0, max).map((i) => {
      const at = Number(i.address);
      const off = at - address;
      return { address: at.toString(16).padStart(5, "0"), bytes: Buffer.from(code.subarray(off, off + i.size)).toString("hex"),
        text: `${i.mnemonic} ${i.op_str}`.trim() };
    });
  } finally {
    d.close();
  }
}
