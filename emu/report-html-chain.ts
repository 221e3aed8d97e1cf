// The HTML report's boot chain diagram: firmware -> MBR code -> VBR/core -> loader -> kernel/initrd -> root (the
// Generation 1 path of HYPERV.md; Generation 2: UEFI firmware -> loader -> kernel/initrd -> root), each box holding
// the chain steps (verdict.ts ChainStep) assigned to it with their evidence.
import type { ChainStep, GenerationResult } from "./verdict.ts";
import { esc, jsonText, shortValue, token } from "./report-html-escape.ts";

interface Column { id: string; title: string; steps: ChainStep[] }

/** The column a chain step belongs to. */
function columnOf(gen: 1 | 2, s: ChainStep): string {
  const what = s.what;
  switch (s.stage) {
    case "image": return "image";
    case "firmware": return "firmware";
    case "kernel": return "kernel";
    case "root": return "root";
    case "bootloader":
      if (gen === 1 && /^MBR boot code\b/.test(what)) return "mbr";
      if (gen === 1 && /core\.img|boot record at 0000:7C00|\bVBR\b|volume boot record|NTFS boot record/i.test(what)) return "vbr";
      return "loader";
    default: return "loader";
  }
}

function columns(g: GenerationResult): Column[] {
  const cols: Column[] = g.generation === 1
    ? [{ id: "image", title: "disk image", steps: [] }, { id: "firmware", title: "firmware (BIOS)", steps: [] }, { id: "mbr", title: "MBR code", steps: [] },
      { id: "vbr", title: "VBR / core", steps: [] }, { id: "loader", title: "loader", steps: [] }, { id: "kernel", title: "kernel / initrd", steps: [] },
      { id: "root", title: "root", steps: [] }]
    : [{ id: "image", title: "disk image", steps: [] }, { id: "firmware", title: "firmware (UEFI)", steps: [] }, { id: "loader", title: "loader", steps: [] },
      { id: "kernel", title: "kernel / initrd", steps: [] }, { id: "root", title: "root", steps: [] }];
  for (const s of g.chain) (cols.find((c) => c.id === columnOf(g.generation, s)) ?? cols[cols.length - 1]).steps.push(s);
  return cols;
}

function evidenceHtml(ev: Record<string, unknown>): string {
  const keys = Object.keys(ev ?? {});
  if (!keys.length) return "";
  const brief = keys.slice(0, 2).map((k) => `${k}: ${shortValue(ev[k], 40)}`).join("; ");
  return `<details><summary>evidence <span class="muted">${esc(brief)}</span></summary><pre>${esc(jsonText(ev, 3000))}</pre></details>`;
}

/** The diagram for one generation. */
export function renderChain(g: GenerationResult): string {
  const cols = columns(g);
  const last = cols.reduce((n, c, i) => (c.steps.length ? i : n), -1);
  const boxes = cols.map((c, i) => {
    let status: string, label: string;
    if (i > last) { status = "unreached"; label = "not reached"; }
    else if (!c.steps.length) { status = "skipped"; label = "no separate step"; }
    else if (i === last && g.verdict === "fails") { status = "stopped"; label = "stopped here"; }
    else if (i === last && g.verdict === "inconclusive") { status = "inconclusive"; label = "last evidence"; }
    else { status = "ok"; label = "ok"; }
    const steps = c.steps.map((s) => `<li>${esc(s.what)}${evidenceHtml(s.evidence)}</li>`).join("");
    return `<div class="step ${token(status)}" data-col="${c.id}"><h4>${esc(c.title)}</h4><span class="badge ${token(status)}">${esc(label)}</span>`
      + (steps ? `<ul>${steps}</ul>` : "") + `</div>`;
  });
  return `<div class="chain" role="list">${boxes.join("")}</div>`;
}
