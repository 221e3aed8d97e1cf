// HTML escaping for the report (HTML Living Standard §13.1.2.6 text and attribute values): every string that can
// come from an image (screen text, file names, finding messages, evidence) goes through esc() or attr().

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text or attribute-value safe HTML; C0 controls (except tab and newline), DEL and lone surrogates become U+FFFD. */
export function esc(v: unknown): string {
  const s = typeof v === "string" ? v : v === undefined || v === null ? "" : String(v);
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c])
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** A class-name-safe token (for status and severity classes). */
export function token(v: unknown): string {
  return String(v ?? "").toLowerCase().replace(/[^a-z0-9-]/g, "").slice(0, 32) || "x";
}

/** Evidence and other structured values as indented JSON text, bounded (then escaped by the caller). */
export function jsonText(v: unknown, max = 4000): string {
  let s: string;
  try {
    s = JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x), 2) ?? "";
  } catch {
    s = "(not serialisable)";
  }
  return s.length > max ? s.slice(0, max) + `\n… (${s.length - max} more characters)` : s;
}

/** A short one-line rendering of an evidence value. */
export function shortValue(v: unknown, max = 160): string {
  const s = typeof v === "string" ? v : jsonText(v, max * 2).replace(/\s*\n\s*/g, " ");
  return s.length > max ? s.slice(0, max) + "…" : s;
}
