// The smaller BIOS services (IBM PC/AT TRM; Ralf Brown's Interrupt List): INT 11h equipment, 12h memory size,
// 16h keyboard (no keys unless scripted; a prompt waiting for a key is a stop), 1Ah clock/RTC with PCI BIOS and TCG
// consistently absent, 18h/19h (boot code gives control back to the firmware), and the quiet hardware vectors.
import type { Gen1Bios, ServiceDef } from "./gen1-bios.ts";
import { MEM } from "../emu/machine.ts";
import { NS_IDLE_SKIP } from "../emu/clock.ts";

/** How long (virtual) a prompt may poll an empty keyboard with nothing else happening before we call it waiting. */
export const KEY_WAIT_GIVE_UP_NS = 120e9;

const SCAN: Record<string, number> = {
  "{enter}": 0x1c0d, "{esc}": 0x011b, "{tab}": 0x0f09, "{backspace}": 0x0e08, "{up}": 0x4800, "{down}": 0x5000,
  "{left}": 0x4b00, "{right}": 0x4d00, "{home}": 0x4700, "{end}": 0x4f00, "{pgup}": 0x4900, "{pgdn}": 0x5100,
  "{f1}": 0x3b00, "{f2}": 0x3c00, "{f8}": 0x4200, "{f10}": 0x4400, "{f12}": 0x8600, "{space}": 0x3920,
};
const ROWS = ["1234567890-=", "qwertyuiop[]", "asdfghjkl;'`", "\\zxcvbnm,./"];
const ROW_START = [0x02, 0x10, 0x1e, 0x2b];

/** Script text to keystrokes: plain characters, `\n` for Enter, and {enter} {esc} {up} {down} ... tokens. */
export function parseKeys(script: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < script.length && out.length < 4096; i++) {
    if (script[i] === "{") {
      const j = script.indexOf("}", i);
      const tok = j > i ? script.slice(i, j + 1).toLowerCase() : "";
      if (SCAN[tok] !== undefined) { out.push(SCAN[tok]); i = j; continue; }
    }
    const ch = script[i];
    if (ch === "\n") { out.push(SCAN["{enter}"]); continue; }
    const low = ch.toLowerCase();
    let scan = ch === " " ? 0x39 : 0;
    ROWS.forEach((r, k) => { const p = r.indexOf(low); if (p >= 0) scan = ROW_START[k] + p; });
    out.push((scan << 8) | (ch.charCodeAt(0) & 0xff));
  }
  return out;
}

/** INT 11h: equipment list word. */
function int11(b: Gen1Bios): void { b.cpu.setReg("AX", b.m.u16(MEM.BDA + 0x10)); }
/** INT 12h: conventional memory size in KiB. */
function int12(b: Gen1Bios): void { b.cpu.setReg("AX", b.m.u16(MEM.BDA + 0x13)); }

function waitingForKey(b: Gen1Bios, how: string): void {
  b.requestStop({ reason: "waiting-for-key", detail: `keyboard input awaited (${how}) and no scripted key is left`,
    cs: b.cpu.reg("CS"), ip: b.cpu.reg("EIP") });
}
/** INT 16h AH=00h/10h: read keystroke (blocks: with no key left the run stops as waiting-for-key). */
function int16_00(b: Gen1Bios): void {
  const k = b.keys.shift();
  if (k === undefined) { waitingForKey(b, `INT 16h AH=${b.cpu.reg("AH").toString(16).padStart(2, "0")}h read keystroke`); return; }
  b.lastProgressNs = b.m.clock.now;
  b.cpu.setReg("AX", k);
}
/** INT 16h AH=01h/11h: check for keystroke (ZF=1 none); an empty poll lets one timer tick pass. */
function int16_01(b: Gen1Bios): void {
  const k = b.keys[0];
  if (k !== undefined) { b.cpu.setReg("AX", k); b.setZF(false); return; }
  b.setZF(true);
  b.m.clock.advance(NS_IDLE_SKIP);
  b.syncTicks();
  if (b.m.clock.now - b.lastProgressNs > KEY_WAIT_GIVE_UP_NS) {
    waitingForKey(b, `INT 16h polled with no output or disk activity for ${KEY_WAIT_GIVE_UP_NS / 1e9} virtual seconds`);
  }
}
/** INT 16h AH=02h/12h: shift flags (none pressed). */
function int16_02(b: Gen1Bios): void { b.cpu.setReg(b.cpu.reg("AH") === 0x12 ? "AX" : "AL", 0); }
/** INT 16h AH=03h: set typematic rate. */
function int16_03(_b: Gen1Bios): void {}
/** INT 16h AH=05h: store keystroke CX in the buffer (AL=0 success). */
function int16_05(b: Gen1Bios): void { b.keys.push(b.cpu.reg("CX")); b.cpu.setReg("AL", 0); }

const bcd = (n: number) => ((Math.floor(n / 10) % 10) << 4) | (n % 10);
/** INT 1Ah AH=00h: read system timer ticks since midnight (CX:DX), AL = midnight rollover flag. */
function int1a_00(b: Gen1Bios): void {
  const t = b.m.clock.biosTicks();
  b.syncTicks();
  b.cpu.setReg("CX", t >>> 16); b.cpu.setReg("DX", t & 0xffff); b.cpu.setReg("AL", 0);
}
/** INT 1Ah AH=01h: set system timer ticks (accepted; the virtual clock stays the source). */
function int1a_01(_b: Gen1Bios): void {}
/** INT 1Ah AH=02h: read RTC time in BCD (CH hour, CL minute, DH second, DL DST flag). */
function int1a_02(b: Gen1Bios): void {
  const t = b.m.clock.rtc();
  b.cpu.setReg("CX", (bcd(t.hour) << 8) | bcd(t.minute)); b.cpu.setReg("DX", bcd(t.second) << 8);
  b.setCF(false);
}
/** INT 1Ah AH=04h: read RTC date in BCD (CH century, CL year, DH month, DL day). */
function int1a_04(b: Gen1Bios): void {
  const t = b.m.clock.rtc();
  b.cpu.setReg("CX", (bcd(Math.floor(t.year / 100)) << 8) | bcd(t.year % 100));
  b.cpu.setReg("DX", (bcd(t.month) << 8) | bcd(t.day));
  b.setCF(false);
}
/** INT 1Ah AH=03h/05h: set RTC time/date (accepted, not kept). */
function int1a_set(b: Gen1Bios): void { b.setCF(false); }
/** INT 1Ah AH=B1h: PCI BIOS — absent (CF=1, AH=81h "function not supported"), consistently for every sub-function. */
function int1a_b1(b: Gen1Bios): void { b.fail(0x81); }
/** INT 1Ah AH=BBh: TCG (TPM) BIOS — absent: CF=1, EAX=86h. */
function int1a_bb(b: Gen1Bios): void { b.cpu.setReg("EAX", 0x86); b.setCF(true); }

/** INT 18h: boot failure / ROM BASIC — the boot code gave up and returned control to the firmware. */
function int18(b: Gen1Bios): void {
  b.requestStop({ reason: "int18-return", detail: "the boot code called INT 18h (boot failure: try the next boot device)",
    cs: b.cpu.reg("CS"), ip: b.cpu.reg("EIP") });
}
/** INT 19h: bootstrap loader — the boot code asked the firmware to boot again. */
function int19(b: Gen1Bios): void {
  b.requestStop({ reason: "int19-return", detail: "the boot code called INT 19h (reboot through the firmware)",
    cs: b.cpu.reg("CS"), ip: b.cpu.reg("EIP") });
}
/** Hardware IRQ vectors, INT 1Bh/1Ch/05h hooks: nothing to do (IRET). */
function quiet(_b: Gen1Bios): void {}

export const miscServices: ServiceDef[] = [
  { int: 0x11, name: "int11", fn: int11 },
  { int: 0x12, name: "int12", fn: int12 },
  { int: 0x16, ah: 0x00, name: "int16_00", fn: int16_00 },
  { int: 0x16, ah: 0x10, name: "int16_10", fn: int16_00 },
  { int: 0x16, ah: 0x01, name: "int16_01", fn: int16_01 },
  { int: 0x16, ah: 0x11, name: "int16_11", fn: int16_01 },
  { int: 0x16, ah: 0x02, name: "int16_02", fn: int16_02 },
  { int: 0x16, ah: 0x12, name: "int16_12", fn: int16_02 },
  { int: 0x16, ah: 0x03, name: "int16_03", fn: int16_03 },
  { int: 0x16, ah: 0x05, name: "int16_05", fn: int16_05 },
  { int: 0x1a, ah: 0x00, name: "int1a_00", fn: int1a_00 },
  { int: 0x1a, ah: 0x01, name: "int1a_01", fn: int1a_01 },
  { int: 0x1a, ah: 0x02, name: "int1a_02", fn: int1a_02 },
  { int: 0x1a, ah: 0x03, name: "int1a_03", fn: int1a_set },
  { int: 0x1a, ah: 0x04, name: "int1a_04", fn: int1a_04 },
  { int: 0x1a, ah: 0x05, name: "int1a_05", fn: int1a_set },
  { int: 0x1a, ah: 0xb1, name: "int1a_b1", fn: int1a_b1 },
  { int: 0x1a, ah: 0xbb, name: "int1a_bb", fn: int1a_bb },
  { int: 0x18, name: "int18", fn: int18 },
  { int: 0x19, name: "int19", fn: int19 },
  ...[0x05, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x1b, 0x1c, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77]
    .map((n) => ({ int: n, name: `int${n.toString(16).padStart(2, "0")}`, fn: quiet })),
];
