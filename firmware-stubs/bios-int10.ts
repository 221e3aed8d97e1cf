// INT 10h video services on an 80x25 colour text screen kept in VGA memory at B8000h (IBM VGA Technical Reference,
// "Video BIOS"; Ralf Brown's Interrupt List INT 10h). The captured screen is read back from that memory.
import type { Gen1Bios, ServiceDef } from "./gen1-bios.ts";
import { MEM } from "../emu/machine.ts";

const COLS = 80, ROWS = 25;
const CURSOR = MEM.BDA + 0x50;           // cursor positions of pages 0-7 (col, row)
const TTY_MAX = 16384;

function cursor(b: Gen1Bios): { row: number; col: number } {
  return { col: b.m.u8(CURSOR), row: b.m.u8(CURSOR + 1) };
}
function setCursor(b: Gen1Bios, row: number, col: number): void {
  b.m.w8(CURSOR, Math.min(col, COLS - 1)); b.m.w8(CURSOR + 1, Math.min(row, ROWS - 1));
}
function cell(row: number, col: number): number { return MEM.VGA_TEXT + (row * COLS + col) * 2; }

/** Scroll rows [top, bottom] x [left, right] up by n lines (n = 0 clears), filling with attr. */
function scroll(b: Gen1Bios, n: number, top: number, left: number, bottom: number, right: number, attr: number, down = false): void {
  bottom = Math.min(bottom, ROWS - 1); right = Math.min(right, COLS - 1);
  if (top > bottom || left > right) return;
  const height = bottom - top + 1;
  if (n === 0 || n > height) n = height;
  const ram = b.m.ram;
  const rows = down ? [...Array(height).keys()].reverse() : [...Array(height).keys()];
  for (const i of rows) {
    const r = top + i;
    const src = down ? r - n : r + n;
    for (let c = left; c <= right; c++) {
      const v = src >= top && src <= bottom ? ram.readUInt16LE(cell(src, c)) : (attr << 8) | 0x20;
      ram.writeUInt16LE(v, cell(r, c));
    }
  }
}

function record(b: Gen1Bios, ch: number): void {
  if (b.tty.length < TTY_MAX) b.tty += String.fromCharCode(ch);
  b.lastProgressNs = b.m.clock.now;
}

/** Teletype output of one character, as AH=0Eh: BEL/BS/CR/LF handled, scroll at the bottom. */
export function teletype(b: Gen1Bios, ch: number, attr?: number): void {
  record(b, ch);
  let { row, col } = cursor(b);
  if (ch === 0x0d) col = 0;
  else if (ch === 0x0a) row++;
  else if (ch === 0x08) { if (col > 0) col--; }
  else if (ch === 0x07) { /* bell */ }
  else {
    const a = cell(row, col);
    b.m.w8(a, ch);
    if (attr !== undefined) b.m.w8(a + 1, attr);
    col++;
    if (col >= COLS) { col = 0; row++; }
  }
  if (row >= ROWS) { scroll(b, 1, 0, 0, ROWS - 1, COLS - 1, 0x07); row = ROWS - 1; }
  setCursor(b, row, col);
}

/** The 25 text lines, trailing blanks trimmed. */
export function screenLines(b: Gen1Bios): string[] {
  const out: string[] = [];
  for (let r = 0; r < ROWS; r++) {
    let s = "";
    for (let c = 0; c < COLS; c++) {
      const ch = b.m.u8(cell(r, c));
      s += ch >= 0x20 && ch < 0x7f ? String.fromCharCode(ch) : ch === 0 ? " " : ".";
    }
    out.push(s.trimEnd());
  }
  return out;
}

/** AH=00h: set video mode (text modes clear the screen unless AL bit 7 is set). */
function int10_00(b: Gen1Bios): void {
  const mode = b.cpu.reg("AL") & 0x7f;
  b.m.w8(MEM.BDA + 0x49, mode);
  if (!(b.cpu.reg("AL") & 0x80)) scroll(b, 0, 0, 0, ROWS - 1, COLS - 1, 0x07);
  setCursor(b, 0, 0);
  b.cpu.setReg("AL", mode <= 7 ? 0x30 : 0x20);
}
/** AH=01h: set cursor shape. */
function int10_01(b: Gen1Bios): void { b.m.w16(MEM.BDA + 0x60, b.cpu.reg("CX")); }
/** AH=02h: set cursor position (page BH, row DH, column DL). */
function int10_02(b: Gen1Bios): void { if (b.cpu.reg("BH") === 0) setCursor(b, b.cpu.reg("DH"), b.cpu.reg("DL")); }
/** AH=03h: get cursor position and shape. */
function int10_03(b: Gen1Bios): void {
  const { row, col } = cursor(b);
  b.cpu.setReg("DX", (row << 8) | col);
  b.cpu.setReg("CX", b.m.u16(MEM.BDA + 0x60) || 0x0607);
}
/** AH=05h: select active display page (only page 0 is kept). */
function int10_05(b: Gen1Bios): void { b.m.w8(MEM.BDA + 0x62, b.cpu.reg("AL") & 7); }
/** AH=06h: scroll window up. */
function int10_06(b: Gen1Bios): void {
  const c = b.cpu;
  scroll(b, c.reg("AL"), c.reg("CH"), c.reg("CL"), c.reg("DH"), c.reg("DL"), c.reg("BH"));
}
/** AH=07h: scroll window down. */
function int10_07(b: Gen1Bios): void {
  const c = b.cpu;
  scroll(b, c.reg("AL"), c.reg("CH"), c.reg("CL"), c.reg("DH"), c.reg("DL"), c.reg("BH"), true);
}
/** AH=08h: read character and attribute at the cursor. */
function int10_08(b: Gen1Bios): void {
  const { row, col } = cursor(b);
  b.cpu.setReg("AX", b.m.u16(cell(row, col)));
}
/** AH=09h / AH=0Ah: write character (and attribute) CX times at the cursor, cursor unmoved. */
function writeRepeat(b: Gen1Bios, withAttr: boolean): void {
  const c = b.cpu;
  const ch = c.reg("AL"), attr = c.reg("BL"), n = Math.min(c.reg("CX"), COLS * ROWS);
  const { row, col } = cursor(b);
  for (let i = 0; i < n; i++) {
    const pos = row * COLS + col + i;
    if (pos >= COLS * ROWS) break;
    b.m.w8(MEM.VGA_TEXT + pos * 2, ch);
    if (withAttr) b.m.w8(MEM.VGA_TEXT + pos * 2 + 1, attr);
  }
  if (n > 0 && ch >= 0x20) record(b, ch);
}
function int10_09(b: Gen1Bios): void { writeRepeat(b, true); }
function int10_0a(b: Gen1Bios): void { writeRepeat(b, false); }
/** AH=0Bh: set colour palette / border (no visible effect in text capture). */
function int10_0b(_b: Gen1Bios): void {}
/** AH=0Eh: teletype output. */
function int10_0e(b: Gen1Bios): void { teletype(b, b.cpu.reg("AL")); }
/** AH=0Fh: get video mode: AL mode, AH columns, BH page. */
function int10_0f(b: Gen1Bios): void {
  b.cpu.setReg("AX", (COLS << 8) | b.m.u8(MEM.BDA + 0x49));
  b.cpu.setReg("BH", b.m.u8(MEM.BDA + 0x62));
}
/** AH=10h: palette registers (accepted, nothing to show in text capture). */
function int10_10(_b: Gen1Bios): void {}
/** AH=11h: character generator (fonts): accepted; AL=30h returns the 8x16 font info. */
function int10_11(b: Gen1Bios): void {
  if (b.cpu.reg("AL") === 0x30) { b.cpu.setReg("CX", 16); b.cpu.setReg("DL", ROWS - 1); b.cpu.setReg("ES", 0xc000); b.cpu.setReg("BP", 0); }
}
/** AH=12h BL=10h: get EGA/VGA information (colour, 256 KiB); other BL sub-functions accepted. */
function int10_12(b: Gen1Bios): void {
  if (b.cpu.reg("BL") === 0x10) { b.cpu.setReg("BX", 0x0003); b.cpu.setReg("CX", 0x0009); }
  else b.cpu.setReg("AL", 0x12);
}
/** AH=13h: write string ES:BP, CX chars, at DH,DL; AL bit 0 moves the cursor, bit 1 means char/attr pairs. */
function int10_13(b: Gen1Bios): void {
  const c = b.cpu;
  const mode = c.reg("AL"), n = Math.min(c.reg("CX"), 4096), attr = c.reg("BL");
  const save = cursor(b);
  setCursor(b, c.reg("DH"), c.reg("DL"));
  let p = c.reg("ES") * 16 + c.reg("BP");
  for (let i = 0; i < n; i++) {
    const ch = b.m.u8(p++);
    const a = mode & 2 ? b.m.u8(p++) : attr;
    teletype(b, ch, ch >= 0x20 ? a : undefined);
  }
  if (!(mode & 1)) setCursor(b, save.row, save.col);
}
/** AH=1Ah AL=00h: read display combination code: VGA with colour display. */
function int10_1a(b: Gen1Bios): void {
  if (b.cpu.reg("AL") === 0) { b.cpu.setReg("AL", 0x1a); b.cpu.setReg("BX", 0x0008); }
}
/** AH=4Fh: VESA BIOS Extensions — absent in this model: AX is returned unchanged (AL != 4Fh means unsupported). */
function int10_4f(_b: Gen1Bios): void {}
/** AH=1Bh: functionality/state information — not provided (AL != 1Bh). */
function int10_1b(_b: Gen1Bios): void {}
/** AH=FEh/FFh: get/update video buffer (TopView/DESQview) — ES:DI unchanged means no shadow buffer. */
function int10_fe(_b: Gen1Bios): void {}

export const int10Services: ServiceDef[] = [
  { int: 0x10, ah: 0x00, name: "int10_00", fn: int10_00 },
  { int: 0x10, ah: 0x01, name: "int10_01", fn: int10_01 },
  { int: 0x10, ah: 0x02, name: "int10_02", fn: int10_02 },
  { int: 0x10, ah: 0x03, name: "int10_03", fn: int10_03 },
  { int: 0x10, ah: 0x05, name: "int10_05", fn: int10_05 },
  { int: 0x10, ah: 0x06, name: "int10_06", fn: int10_06 },
  { int: 0x10, ah: 0x07, name: "int10_07", fn: int10_07 },
  { int: 0x10, ah: 0x08, name: "int10_08", fn: int10_08 },
  { int: 0x10, ah: 0x09, name: "int10_09", fn: int10_09 },
  { int: 0x10, ah: 0x0a, name: "int10_0a", fn: int10_0a },
  { int: 0x10, ah: 0x0b, name: "int10_0b", fn: int10_0b },
  { int: 0x10, ah: 0x0e, name: "int10_0e", fn: int10_0e },
  { int: 0x10, ah: 0x0f, name: "int10_0f", fn: int10_0f },
  { int: 0x10, ah: 0x10, name: "int10_10", fn: int10_10 },
  { int: 0x10, ah: 0x11, name: "int10_11", fn: int10_11 },
  { int: 0x10, ah: 0x12, name: "int10_12", fn: int10_12 },
  { int: 0x10, ah: 0x13, name: "int10_13", fn: int10_13 },
  { int: 0x10, ah: 0x1a, name: "int10_1a", fn: int10_1a },
  { int: 0x10, ah: 0x1b, name: "int10_1b", fn: int10_1b },
  { int: 0x10, ah: 0x4f, name: "int10_4f", fn: int10_4f },
  { int: 0x10, ah: 0xfe, name: "int10_fe", fn: int10_fe },
];
