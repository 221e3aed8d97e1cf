// Bounded parser of the LVM2 text metadata format (lvm2 lib/format_text, doc "LVM2 metadata format":
// `name = value`, `name { ... }`, values are "strings", integers or [lists], `#` comments).
import { corrupt, overLimit } from "./errors.ts";
import { MAX_DESCRIPTOR_BYTES, MAX_LVM_META_DEPTH as MAX_DEPTH, MAX_LVM_META_ITEMS as MAX_ITEMS, MAX_LVM_META_LIST as MAX_LIST } from "./limits.ts";

export type LvmScalar = number | string;
export type LvmValue = LvmScalar | LvmScalar[] | LvmSection;

export interface LvmSection { readonly kind: "section"; readonly items: Map<string, LvmValue> }

const isWord = (c: string): boolean => /[A-Za-z0-9_.+\-]/.test(c);

/** Parse metadata text into nested sections. Throws E_LVM_METADATA for anything malformed. */
export function parseLvmText(text: string): LvmSection {
  if (text.length > MAX_DESCRIPTOR_BYTES) throw overLimit("E_LVM_METADATA", `LVM metadata text of ${text.length} bytes exceeds ${MAX_DESCRIPTOR_BYTES}`);
  let p = 0, items = 0;
  const fail = (msg: string) => {
    const line = text.slice(0, p).split("\n").length;
    return corrupt("E_LVM_METADATA", `LVM metadata line ${line}: ${msg}`);
  };
  const skip = () => {
    while (p < text.length) {
      const c = text[p];
      if (c === "#") { while (p < text.length && text[p] !== "\n") p++; continue; }
      if (c === " " || c === "\t" || c === "\n" || c === "\r") { p++; continue; }
      break;
    }
  };
  const word = (): string => {
    const s = p;
    while (p < text.length && isWord(text[p])) p++;
    if (p === s) throw fail(`expected a name, found ${JSON.stringify(text.slice(p, p + 10))}`);
    return text.slice(s, p);
  };
  const str = (): string => {
    p++; // opening quote
    let out = "";
    while (true) {
      if (p >= text.length) throw fail("unterminated string");
      const c = text[p++];
      if (c === "\"") return out;
      if (c === "\\") {
        if (p >= text.length) throw fail("unterminated string");
        out += text[p++];
      } else out += c;
    }
  };
  const scalar = (): LvmScalar => {
    if (text[p] === "\"") return str();
    const w = word();
    if (!/^[-+]?\d+(\.\d+)?$/.test(w)) throw fail(`bad value ${JSON.stringify(w)}`);
    const n = Number(w);
    if (!Number.isFinite(n) || (Number.isInteger(n) && !Number.isSafeInteger(n))) throw fail(`number ${w} out of range`);
    return n;
  };
  const section = (depth: number, top: boolean): LvmSection => {
    if (depth > MAX_DEPTH) throw overLimit("E_LVM_METADATA", `LVM metadata nested deeper than ${MAX_DEPTH} sections`);
    const sec: LvmSection = { kind: "section", items: new Map() };
    while (true) {
      skip();
      if (p >= text.length) {
        if (top) return sec;
        throw fail("unexpected end of text inside a section");
      }
      if (text[p] === "}") {
        if (top) throw fail("unbalanced '}'");
        p++;
        return sec;
      }
      if (text[p] === "\0") { // the on-disk copy ends in a NUL
        if (top) return sec;
        throw fail("NUL inside a section");
      }
      if (++items > MAX_ITEMS) throw overLimit("E_LVM_METADATA", `LVM metadata holds more than ${MAX_ITEMS} items`);
      const key = word();
      skip();
      if (text[p] === "{") {
        p++;
        sec.items.set(key, section(depth + 1, false));
        continue;
      }
      if (text[p] !== "=") throw fail(`expected '=' or '{' after ${key}`);
      p++;
      skip();
      if (text[p] === "[") {
        p++;
        const list: LvmScalar[] = [];
        skip();
        if (text[p] === "]") { p++; } else {
          while (true) {
            skip();
            if (list.length >= MAX_LIST) throw overLimit("E_LVM_METADATA", `LVM metadata list ${key} longer than ${MAX_LIST}`);
            list.push(scalar());
            skip();
            if (text[p] === ",") { p++; continue; }
            if (text[p] === "]") { p++; break; }
            throw fail(`expected ',' or ']' in list ${key}`);
          }
        }
        sec.items.set(key, list);
      } else {
        sec.items.set(key, scalar());
      }
    }
  };
  return section(0, true);
}

/** Typed accessors that turn a missing or mistyped field into E_LVM_METADATA. */
export function sub(s: LvmSection, key: string, where: string): LvmSection {
  const v = s.items.get(key);
  if (!v || typeof v !== "object" || Array.isArray(v)) throw corrupt("E_LVM_METADATA", `${where}: missing section ${key}`);
  return v;
}

export function optSub(s: LvmSection, key: string): LvmSection | undefined {
  const v = s.items.get(key);
  return v && typeof v === "object" && !Array.isArray(v) ? v : undefined;
}

export function num(s: LvmSection, key: string, where: string, dflt?: number): number {
  const v = s.items.get(key);
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw corrupt("E_LVM_METADATA", `${where}: ${key} is ${JSON.stringify(v)}, expected a non-negative integer`);
  }
  return v;
}

export function str(s: LvmSection, key: string, where: string, dflt?: string): string {
  const v = s.items.get(key);
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "string") throw corrupt("E_LVM_METADATA", `${where}: ${key} is ${JSON.stringify(v)}, expected a string`);
  return v;
}

export function list(s: LvmSection, key: string): LvmScalar[] {
  const v = s.items.get(key);
  return Array.isArray(v) ? v : [];
}

/** Child sections in text order. */
export function sections(s: LvmSection): [string, LvmSection][] {
  const out: [string, LvmSection][] = [];
  for (const [k, v] of s.items) if (typeof v === "object" && !Array.isArray(v)) out.push([k, v]);
  return out;
}
