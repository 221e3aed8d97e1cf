// Findings: one catalogue (like the TypeScript compiler's diagnostics) with stable codes,
// severity, stage, a templated message and a remedy. Areas register their entries at load time.

export type Severity = "info" | "warning" | "error";
export type Stage = "image" | "firmware" | "bootloader" | "kernel" | "root";

export interface Finding {
  code: string;
  severity: Severity;
  stage: Stage;
  message: string;
  remedy: string;
  evidence: Record<string, unknown>;
}

export interface CatalogueEntry {
  code: string;
  severity: Severity;
  stage: Stage;
  title: string;
  /** Message template; `{name}` is replaced by params[name]. */
  message: string;
  /** Remedy template, same substitution. */
  remedy: string;
  /** Longer text for `bootgate explain CODE`. */
  explain: string;
}

const catalogue = new Map<string, CatalogueEntry>();

export function defineFindings(entries: CatalogueEntry[]): void {
  for (const e of entries) {
    if (catalogue.has(e.code)) throw new Error(`finding code ${e.code} defined twice`);
    if (!/^[A-Z][A-Z0-9_]+$/.test(e.code)) throw new Error(`bad finding code ${e.code}`);
    catalogue.set(e.code, e);
  }
}

export function lookupFinding(code: string): CatalogueEntry | undefined {
  return catalogue.get(code.toUpperCase());
}

export function allFindings(): CatalogueEntry[] {
  return [...catalogue.values()].sort((a, b) => a.code.localeCompare(b.code));
}

function fill(template: string, params: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in params ? String(params[k]) : m));
}

/**
 * Make a finding from the catalogue. `params` fill the templates and are kept as evidence
 * together with `evidence` (sector, file, screen text, register dump...).
 */
export function finding(code: string, params: Record<string, unknown> = {},
                        evidence: Record<string, unknown> = {}): Finding {
  const e = catalogue.get(code);
  if (!e) throw new Error(`finding code ${code} is not in the catalogue`);
  return {
    code: e.code,
    severity: e.severity,
    stage: e.stage,
    message: fill(e.message, params),
    remedy: fill(e.remedy, params),
    evidence: { ...params, ...evidence },
  };
}
