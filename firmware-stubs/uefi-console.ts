// Console protocols of the Gen2 firmware: EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL on a captured 80x25 text screen (UEFI
// 2.10 12.4), EFI_SIMPLE_TEXT_INPUT(_EX)_PROTOCOL with optional scripted keys (12.2/12.3), and a
// EFI_GRAPHICS_OUTPUT_PROTOCOL with one 1024x768 BGRX mode and a framebuffer in guest RAM (12.9), like Hyper-V's
// synthetic video at its default resolution.
import { Call, FirmwareCore } from "./uefi-core.ts";
import { EFI, GOP_INFO, GOP_MODE, PIXEL_BGRX, PROTOCOL_MEMBERS, TEXT_MODE } from "./uefi-layout.ts";
import { UEFI_KEY_POLL_GIVE_UP, UEFI_KEY_POLL_AT_PROMPT, UEFI_MAX_TRANSCRIPT_CHARS } from "../images/limits.ts";

export const COLS = 80;
export const ROWS = 25;
export const GOP_WIDTH = 1024;
export const GOP_HEIGHT = 768;
export const FRAMEBUFFER_BYTES = GOP_WIDTH * GOP_HEIGHT * 4;
/** ReadKeyStroke polls with an empty queue and no other firmware call in between before the run gives up. */
export const KEY_POLL_GIVE_UP = UEFI_KEY_POLL_GIVE_UP;
/** The same with a known prompt at the cursor: GRUB's own countdowns poll far fewer times between redraws. */
export const KEY_POLL_AT_PROMPT = UEFI_KEY_POLL_AT_PROMPT;
const PROMPTS = /(grub>|grub rescue>|press any key[^\n]*|shell>)\s*$/i;
/** Console text kept for reports (everything printed, in order), bounded. */
const MAX_TRANSCRIPT = UEFI_MAX_TRANSCRIPT_CHARS;

export interface Key { scan: number; char: number }

/** Parse scripted keys: text, with {enter} {esc} {up} {down} {left} {right} {f1}..{f12} {tab} {bs}. */
export function parseEfiKeys(spec: string): Key[] {
  const named: Record<string, Key> = { enter: { scan: 0, char: 13 }, esc: { scan: 0x17, char: 0 }, up: { scan: 1, char: 0 },
    down: { scan: 2, char: 0 }, right: { scan: 3, char: 0 }, left: { scan: 4, char: 0 }, tab: { scan: 0, char: 9 }, bs: { scan: 0, char: 8 } };
  for (let i = 1; i <= 10; i++) named[`f${i}`] = { scan: 0x0a + i, char: 0 };
  named.f11 = { scan: 0x15, char: 0 }; named.f12 = { scan: 0x16, char: 0 };
  const out: Key[] = [];
  const re = /\{([a-z0-9]+)\}|([\s\S])/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(spec)) && out.length < 4096) {
    if (m[1]) { const k = named[m[1].toLowerCase()]; if (!k) throw new RangeError(`unknown key {${m[1]}}`); out.push(k); }
    else out.push({ scan: 0, char: m[2].charCodeAt(0) });
  }
  return out;
}

export class Console {
  readonly grid: string[][] = Array.from({ length: ROWS }, () => Array(COLS).fill(" "));
  col = 0;
  row = 0;
  attribute = 0x07;
  transcript = "";
  keys: Key[] = [];
  /** Consecutive empty ReadKeyStroke polls. */
  emptyPolls = 0;
  conOut = 0;
  conIn = 0;
  conInEx = 0;
  gop = 0;
  private modePtr = 0;
  framebuffer = 0;
  /** Any pixels written through Blt or by the guest (checked at the end). */
  gopUsed = false;

  constructor(private fw: FirmwareCore, private waitForKeyEvent: number) {}

  build(framebufferAddr: number): void {
    const fw = this.fw;
    this.modePtr = fw.alloc(TEXT_MODE.SIZE);
    fw.w32(this.modePtr + TEXT_MODE.MaxMode, 1);
    fw.w32(this.modePtr + TEXT_MODE.Attribute, this.attribute);
    fw.w8(this.modePtr + TEXT_MODE.CursorVisible, 1);
    this.conOut = fw.buildInterface(PROTOCOL_MEMBERS.SimpleTextOutput, "ConOut", {
      Reset: () => { this.clear(); return EFI.SUCCESS; },
      OutputString: (c) => { this.print(fw.utf16(c.ptr(1), 8192)); return EFI.SUCCESS; },
      TestString: () => EFI.SUCCESS,
      QueryMode: (c) => {
        if (c.num(1) !== 0) return EFI.UNSUPPORTED;
        if (c.ptr(2)) fw.w64(c.ptr(2), COLS);
        if (c.ptr(3)) fw.w64(c.ptr(3), ROWS);
        return EFI.SUCCESS;
      },
      SetMode: (c) => { if (c.num(1) !== 0) return EFI.UNSUPPORTED; this.clear(); return EFI.SUCCESS; },
      SetAttribute: (c) => { this.attribute = c.u32(1) & 0x7f; this.sync(); return EFI.SUCCESS; },
      ClearScreen: () => { this.clear(); return EFI.SUCCESS; },
      SetCursorPosition: (c) => {
        const col = c.num(1), row = c.num(2);
        if (col >= COLS || row >= ROWS) return EFI.UNSUPPORTED;
        this.col = col; this.row = row; this.sync();
        return EFI.SUCCESS;
      },
      EnableCursor: (c) => { fw.w8(this.modePtr + TEXT_MODE.CursorVisible, c.arg(1) ? 1 : 0); return EFI.SUCCESS; },
    }, { Mode: this.modePtr });
    const read = (c: Call, ex: boolean): bigint => {
      const out = c.ptr(1);
      if (!out) return EFI.INVALID_PARAMETER;
      const k = this.keys.shift();
      if (!k) {
        this.emptyPolls++;
        fw.clock.advance(1_000_000);
        // A prompt on the screen's last line (GRUB's "grub>"/"grub rescue>", "Press any key") settles it sooner.
        const limit = this.atPrompt() ? KEY_POLL_AT_PROMPT : KEY_POLL_GIVE_UP;
        if (this.emptyPolls >= limit) fw.requestStop("waiting-for-key", `the loader polled the keyboard ${limit} times in a row with nothing else to do`);
        return EFI.NOT_READY;
      }
      fw.w16(out, k.scan); fw.w16(out + 2, k.char);
      if (ex) { fw.w32(out + 4, 0); fw.w8(out + 8, 0); }
      return EFI.SUCCESS;
    };
    this.conIn = fw.buildInterface(PROTOCOL_MEMBERS.SimpleTextInput, "ConIn", {
      Reset: () => EFI.SUCCESS,
      ReadKeyStroke: (c) => read(c, false),
    }, { WaitForKey: this.waitForKeyEvent });
    this.conInEx = fw.buildInterface(PROTOCOL_MEMBERS.SimpleTextInputEx, "ConInEx", {
      Reset: () => EFI.SUCCESS,
      ReadKeyStrokeEx: (c) => read(c, true),
      SetState: () => EFI.SUCCESS,
      RegisterKeyNotify: (c) => { if (c.ptr(3)) fw.w64(c.ptr(3), fw.alloc(16)); return EFI.SUCCESS; },
      UnregisterKeyNotify: () => EFI.SUCCESS,
    }, { WaitForKeyEx: this.waitForKeyEvent });
    this.buildGop(framebufferAddr);
  }

  private buildGop(fb: number): void {
    const fw = this.fw;
    this.framebuffer = fb;
    const info = fw.alloc(GOP_INFO.SIZE);
    fw.w32(info + GOP_INFO.HorizontalResolution, GOP_WIDTH);
    fw.w32(info + GOP_INFO.VerticalResolution, GOP_HEIGHT);
    fw.w32(info + GOP_INFO.PixelFormat, PIXEL_BGRX);
    fw.w32(info + GOP_INFO.PixelsPerScanLine, GOP_WIDTH);
    const mode = fw.alloc(GOP_MODE.SIZE);
    fw.w32(mode + GOP_MODE.MaxMode, 1);
    fw.w64(mode + GOP_MODE.Info, info);
    fw.w64(mode + GOP_MODE.SizeOfInfo, GOP_INFO.SIZE);
    fw.w64(mode + GOP_MODE.FrameBufferBase, fb);
    fw.w64(mode + GOP_MODE.FrameBufferSize, FRAMEBUFFER_BYTES);
    this.gop = fw.buildInterface(PROTOCOL_MEMBERS.GraphicsOutput, "GOP", {
      QueryMode: (c) => {
        if (c.num(1) !== 0 || !c.ptr(2) || !c.ptr(3)) return EFI.INVALID_PARAMETER;
        const r = fw.mem.allocatePool(4, GOP_INFO.SIZE);
        if (!r.ok) return EFI.OUT_OF_RESOURCES;
        fw.put(r.address, fw.bytes(info, GOP_INFO.SIZE));
        fw.w64(c.ptr(2), GOP_INFO.SIZE);
        fw.w64(c.ptr(3), r.address);
        return EFI.SUCCESS;
      },
      SetMode: (c) => { if (c.num(1) !== 0) return EFI.UNSUPPORTED; fw.ram.fill(0, fb, fb + FRAMEBUFFER_BYTES); return EFI.SUCCESS; },
      Blt: (c) => this.blt(c),
    }, { Mode: mode });
  }

  /** Blt (12.9.2.3): VideoFill, VideoToBltBuffer, BltBufferToVideo, VideoToVideo. */
  private blt(c: Call): bigint {
    const fw = this.fw;
    const buf = c.ptr(1), op = c.u32(2);
    const sx = c.num(3), sy = c.num(4), dx = c.num(5), dy = c.num(6), w = c.num(7), h = c.num(8);
    const delta = c.num(9) || w * 4;
    if (w === 0 || h === 0) return EFI.INVALID_PARAMETER;
    const fits = (x: number, y: number) => x + w <= GOP_WIDTH && y + h <= GOP_HEIGHT;
    const fb = this.framebuffer;
    this.gopUsed = true;
    switch (op) {
      case 0: { // EfiBltVideoFill: one pixel from the buffer
        if (!fits(dx, dy) || !buf) return EFI.INVALID_PARAMETER;
        const px = fw.bytes(buf, 4);
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.copy(fw.ram, fb + ((dy + y) * GOP_WIDTH + dx + x) * 4);
        return EFI.SUCCESS;
      }
      case 1: // EfiBltVideoToBltBuffer
        if (!fits(sx, sy) || !buf) return EFI.INVALID_PARAMETER;
        for (let y = 0; y < h; y++) fw.put(buf + (dy * delta) + y * delta + dx * 4, Buffer.from(fw.bytes(fb + ((sy + y) * GOP_WIDTH + sx) * 4, w * 4)));
        return EFI.SUCCESS;
      case 2: // EfiBltBufferToVideo
        if (!fits(dx, dy) || !buf) return EFI.INVALID_PARAMETER;
        for (let y = 0; y < h; y++) fw.bytes(buf + (sy + y) * delta + sx * 4, w * 4).copy(fw.ram, fb + ((dy + y) * GOP_WIDTH + dx) * 4);
        return EFI.SUCCESS;
      case 3: // EfiBltVideoToVideo
        if (!fits(sx, sy) || !fits(dx, dy)) return EFI.INVALID_PARAMETER;
        for (let y = 0; y < h; y++) {
          const row = Buffer.from(fw.bytes(fb + ((sy + y) * GOP_WIDTH + sx) * 4, w * 4));
          row.copy(fw.ram, fb + ((dy + y) * GOP_WIDTH + dx) * 4);
        }
        return EFI.SUCCESS;
      default:
        return EFI.INVALID_PARAMETER;
    }
  }

  keyAvailable(): boolean { return this.keys.length > 0; }

  private atPrompt(): boolean {
    return PROMPTS.test(this.grid[this.row].join("").slice(0, Math.max(this.col, 1)));
  }

  /** Any firmware call other than a key poll means the loader is doing something. */
  activity(name: string): void {
    if (!name.includes("ReadKeyStroke") && name !== "WaitForEvent" && name !== "CheckEvent" && name !== "Stall") this.emptyPolls = 0;
  }

  clear(): void {
    for (const r of this.grid) r.fill(" ");
    this.col = 0; this.row = 0;
    this.transcript += "\f";
    this.sync();
  }

  print(s: string): void {
    if (this.transcript.length < MAX_TRANSCRIPT) this.transcript += s.slice(0, MAX_TRANSCRIPT - this.transcript.length);
    for (const ch of s) {
      if (ch === "\r") this.col = 0;
      else if (ch === "\n") this.lineFeed();
      else if (ch === "\b") this.col = Math.max(0, this.col - 1);
      else {
        if (this.col >= COLS) { this.col = 0; this.lineFeed(); }
        this.grid[this.row][this.col++] = ch < " " ? " " : ch;
      }
    }
    this.sync();
  }

  private lineFeed(): void {
    if (this.row < ROWS - 1) { this.row++; return; }
    this.grid.shift();
    this.grid.push(Array(COLS).fill(" "));
  }

  private sync(): void {
    const fw = this.fw;
    fw.w32(this.modePtr + TEXT_MODE.CursorColumn, this.col);
    fw.w32(this.modePtr + TEXT_MODE.CursorRow, this.row);
    fw.w32(this.modePtr + TEXT_MODE.Attribute, this.attribute);
  }

  lines(): string[] { return this.grid.map((r) => r.join("").replace(/\s+$/, "")); }
}
