// The HTML report's captured screen: VGA text mode 80x25 (IBM VGA Technical Reference: character/attribute cells,
// attribute = background << 4 | foreground) rendered as a console, and a Generation 2 GOP framebuffer as a PNG.
import { esc } from "./report-html-escape.ts";

const COLS = 80, ROWS = 25;
/** Light grey on black: the attribute firmware and boot loaders write text with by default. */
const DEFAULT_ATTR = 0x07;
/** Largest framebuffer PNG embedded (base64 characters). */
const MAX_PNG_BASE64 = 16 * 2 ** 20;

export interface Framebuffer { width: number; height: number; pngBase64: string }

/**
 * Render text rows as the console showed them. `attrs`, when present, holds per row 80 attribute bytes as 160 hex
 * digits; without it every cell has attribute 07h. Rows beyond 25 and columns beyond 80 are cut.
 */
export function renderConsole(screen: string[], attrs?: string[]): string {
  const rows: string[] = [];
  for (let r = 0; r < ROWS; r++) {
    const text = [...(screen[r] ?? "")].slice(0, COLS).join("").padEnd(COLS, " ");
    const a = attrs?.[r];
    const cells = [...text];
    let html = "", run = "", runAttr = -1;
    const flush = () => { if (run) html += `<span class="f${(runAttr & 15).toString(16)} b${((runAttr >> 4) & 7).toString(16)}">${esc(run)}</span>`; run = ""; };
    for (let c = 0; c < COLS; c++) {
      const hex = typeof a === "string" ? a.slice(c * 2, c * 2 + 2) : "";
      const attr = /^[0-9a-fA-F]{2}$/.test(hex) ? parseInt(hex, 16) : DEFAULT_ATTR;
      if (attr !== runAttr) { flush(); runAttr = attr; }
      run += cells[c];
    }
    flush();
    rows.push(`<span class="row">${html}</span>`);
  }
  return `<pre class="console" aria-label="captured console, 80x25 text mode">${rows.join("")}</pre>`;
}

/** A validated framebuffer, or undefined when the value is missing or malformed. */
export function framebufferOf(v: unknown): Framebuffer | undefined {
  if (!v || typeof v !== "object") return undefined;
  const f = v as Partial<Framebuffer>;
  if (!Number.isInteger(f.width) || !Number.isInteger(f.height) || f.width! <= 0 || f.height! <= 0 || f.width! > 16384 || f.height! > 16384) return undefined;
  if (typeof f.pngBase64 !== "string" || f.pngBase64.length > MAX_PNG_BASE64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(f.pngBase64)) return undefined;
  if (!f.pngBase64.startsWith("iVBORw0KGgo")) return undefined;     // the PNG signature 89 50 4E 47 0D 0A 1A 0A
  return { width: f.width!, height: f.height!, pngBase64: f.pngBase64 };
}

export function renderFramebuffer(fb: Framebuffer): string {
  return `<div class="fb"><img alt="GOP framebuffer ${fb.width}x${fb.height}" width="${fb.width}" height="${fb.height}" src="data:image/png;base64,${fb.pngBase64}"></div>`;
}
