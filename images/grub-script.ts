// The GRUB 2 script parser (grub-core/script/yylex.l for quoting, parser.y for structure), bounded:
// turns grub.cfg text into commands; evaluation lives in grub-cfg.ts. Nothing is executed on the host.
import { MAX_GRUB_NESTING } from "./limits.ts";

export interface Word { raw: string; line: number }
export type Cmd =
  | { t: "simple"; words: Word[]; line: number }
  | { t: "if"; branches: { cond?: Cmd[]; body: Cmd[] }[]; line: number }
  | { t: "loop"; keyword: string; line: number }
  | { t: "function"; name: string; body: Cmd[]; line: number }
  | { t: "block"; keyword: "menuentry" | "submenu"; words: Word[]; body: Cmd[]; line: number };

export type Tok = { k: "word"; raw: string; plain: boolean; line: number } | { k: "sep" | "{" | "}" | "eof"; line: number };
class ParseErr extends Error { constructor(msg: string, readonly line: number, readonly limit = false) { super(msg); } }

export function lex(src: string): { toks: Tok[]; error?: ParseErr } {
  const toks: Tok[] = [];
  let i = 0, line = 1;
  const n = src.length;
  try {
    while (i < n) {
      const c = src[i];
      if (c === " " || c === "\t" || c === "\r") { i++; continue; }
      if (c === "\\" && src[i + 1] === "\n") { i += 2; line++; continue; }
      if (c === "\n" || c === ";") { toks.push({ k: "sep", line }); if (c === "\n") line++; i++; continue; }
      if (c === "#") { while (i < n && src[i] !== "\n") i++; continue; }
      if (c === "{" || c === "}") { toks.push({ k: c, line }); i++; continue; }
      const start = i, startLine = line;
      let plain = true;
      while (i < n) {
        const ch = src[i];
        if (ch === " " || ch === "\t" || ch === "\r" || ch === "\n" || ch === ";" || ch === "{" || ch === "}") break;
        if (ch === "'" || ch === "\"") {
          plain = false;
          const q = ch, qLine = line;
          i++;
          while (i < n && src[i] !== q) {
            if (src[i] === "\n") line++;
            if (q === "\"" && src[i] === "\\" && i + 1 < n) { if (src[i + 1] === "\n") line++; i++; }
            i++;
          }
          if (i >= n) throw new ParseErr(`unterminated ${q === "'" ? "single" : "double"} quote opened at line ${qLine}`, qLine);
          i++;
          continue;
        }
        if (ch === "\\") { plain = false; if (src[i + 1] === "\n") line++; i += 2; continue; }
        if (ch === "$") {
          plain = false;
          if (src[i + 1] === "{") {
            const e = src.indexOf("}", i + 2);
            if (e < 0 || src.slice(i, e).includes("\n")) throw new ParseErr("unterminated ${", line);
            i = e + 1;
            continue;
          }
        }
        i++;
      }
      toks.push({ k: "word", raw: src.slice(start, i), plain, line: startLine });
    }
  } catch (e) {
    if (e instanceof ParseErr) return { toks, error: e };
    throw e;
  }
  toks.push({ k: "eof", line });
  return { toks };
}

/** Parse a whole script; on an error the commands completed before it are kept (GRUB reads command by command). */
export function parseScript(src: string): { commands: Cmd[]; error?: { message: string; line: number; limit: boolean } } {
  const { toks, error: lexErr } = lex(src);
  if (lexErr) toks.push({ k: "eof", line: lexErr.line });
  const p = new Parser(toks);
  const commands: Cmd[] = [];
  let error: ParseErr | undefined;
  try {
    for (;;) {
      p.skipSeps();
      if (p.peek().k === "eof") break;
      const c = p.command(0);
      if (c) commands.push(c);
    }
  } catch (e) {
    if (!(e instanceof ParseErr)) throw e;
    error = e;
  }
  // A lexer error lies after everything the parser could complete; the command it cut short is dropped.
  if (lexErr && (!error || error.line >= lexErr.line)) {
    if (!error && commands.length && commands[commands.length - 1].line >= lexErr.line) commands.pop();
    error = lexErr;
  }
  return { commands, ...(error ? { error: { message: error.message, line: error.line, limit: error.limit } } : {}) };
}

class Parser {
  private pos = 0;
  constructor(private toks: Tok[]) {}
  peek(): Tok { return this.toks[this.pos]; }
  next(): Tok { const t = this.toks[this.pos]; if (t.k !== "eof") this.pos++; return t; }
  skipSeps(): void { while (this.peek().k === "sep") this.pos++; }
  private kw(t: Tok, ...w: string[]): boolean { return t.k === "word" && t.plain && w.includes(t.raw); }

  command(depth: number): Cmd | undefined {
    if (depth > MAX_GRUB_NESTING) throw new ParseErr(`blocks nested deeper than ${MAX_GRUB_NESTING}`, this.peek().line, true);
    const t = this.peek();
    if (t.k !== "word") { this.next(); return undefined; }
    if (this.kw(t, "if")) return this.ifCmd(depth);
    if (this.kw(t, "while", "until", "for")) {
      this.next();
      this.list(depth + 1, ["do"]);
      this.list(depth + 1, ["done"]);
      return { t: "loop", keyword: t.raw, line: t.line };
    }
    if (this.kw(t, "function")) {
      this.next();
      const name = this.next();
      if (name.k !== "word") throw new ParseErr("function without a name", t.line);
      this.skipSeps();
      if (this.next().k !== "{") throw new ParseErr(`function ${name.raw} without a body`, t.line);
      return { t: "function", name: name.raw, body: this.list(depth + 1, ["}"]), line: t.line };
    }
    if (this.kw(t, "menuentry", "submenu")) {
      this.next();
      const words: Word[] = [{ raw: t.raw, line: t.line }];
      for (;;) {
        const w = this.next();
        if (w.k === "word") { if (words.length < 256) words.push({ raw: w.raw, line: w.line }); continue; }
        if (w.k === "{") break;
        throw new ParseErr(`${t.raw} without a { body }`, t.line);
      }
      return { t: "block", keyword: t.raw as "menuentry" | "submenu", words, body: this.list(depth + 1, ["}"]), line: t.line };
    }
    const words: Word[] = [];
    while (this.peek().k === "word" || this.peek().k === "{") {
      const w = this.next();
      if (words.length < 4096) words.push({ raw: w.k === "word" ? w.raw : "{", line: w.line });
    }
    return { t: "simple", words, line: t.line };
  }

  /** Commands up to one of `ends` (a keyword in command position, or "}"); the terminator is consumed. */
  private list(depth: number, ends: string[]): Cmd[] {
    const out: Cmd[] = [];
    for (;;) {
      this.skipSeps();
      const t = this.peek();
      if (t.k === "eof") throw new ParseErr(`missing ${ends.join(" or ")} before the end of the file`, t.line);
      if (t.k === "}") { if (ends.includes("}")) { this.next(); return out; } throw new ParseErr("unexpected }", t.line); }
      if (this.kw(t, ...ends)) { this.next(); return out; }
      const c = this.command(depth);
      if (c) out.push(c);
    }
  }

  private ifCmd(depth: number): Cmd {
    const start = this.next();
    const branches: { cond?: Cmd[]; body: Cmd[] }[] = [];
    let cond = this.list(depth + 1, ["then"]);
    for (;;) {
      const body: Cmd[] = [];
      let end = "";
      for (;;) {
        this.skipSeps();
        const t = this.peek();
        if (t.k === "eof") throw new ParseErr(`if at line ${start.line} has no fi`, start.line);
        if (this.kw(t, "elif", "else", "fi")) { end = (this.next() as { raw: string }).raw; break; }
        if (t.k === "}") throw new ParseErr("unexpected } inside if", t.line);
        const c = this.command(depth + 1);
        if (c) body.push(c);
      }
      branches.push(cond ? { cond, body } : { body });
      if (end === "fi") break;
      if (end === "elif") cond = this.list(depth + 1, ["then"]);
      else { branches.push({ body: this.list(depth + 1, ["fi"]) }); break; }
      if (branches.length > 4096) throw new ParseErr("too many elif branches", start.line, true);
    }
    return { t: "if", branches, line: start.line };
  }
}
