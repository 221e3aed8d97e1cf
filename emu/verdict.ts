// The verdict document (`check --json`, schema bootgate.verdict/1) and the exit code it implies.
import type { Finding, Stage } from "./findings.ts";

export type Verdict = "boots" | "fails" | "inconclusive";

export interface ChainStep { stage: string; what: string; evidence: Record<string, unknown> }

export interface GenerationResult {
  generation: 1 | 2;
  verdict: Verdict;
  /** The furthest stage on which the boot is still on track. */
  reached: Stage;
  findings: Finding[];
  chain: ChainStep[];
  handoff: Record<string, unknown> | null;
  screen: string[];
  stats: Record<string, number>;
  /** Why the emulation stopped (absent when no boot code ran). */
  stop?: { reason: string; detail: string; cs?: number; ip?: number };
  /** Disassembled instructions around the stop (debugging aid). */
  traceWindow?: unknown;
  /** Generation 2: images loaded and their Secure Boot verdicts, ESP files read, NVRAM writes, console transcript, vTPM. */
  uefi?: { images: unknown[]; filesRead: unknown[]; nvramWrites: unknown[]; transcript: string; secureBoot: { mode: string; template: string }; tpm?: unknown };
  /** The last basic blocks executed (check --trace-blocks N). */
  traceBlocks?: { address: string; size: number }[];
  /** Sectors the boot path read, in order (lba, count). */
  readLog?: { lba: number; count: number }[];
}

export interface ImageSummary {
  path: string;
  format: string;
  subformat: string | null;
  fileSize: number;
  virtualSize: number;
  sectorSize: number;
  partitioning: string;
}

export interface VerdictDoc {
  schema: "bootgate.verdict/1";
  tool: { name: "bootgate"; version: string };
  target: string;
  image: ImageSummary;
  imageFindings: Finding[];
  generations: GenerationResult[];
  /** Exit code a CI gate gets for this document. */
  exitCode: number;
}

/** 0 boots, 1 fails (a generation fails or an image rule is broken), 3 inconclusive. */
export function exitCodeFor(imageFindings: Finding[], gens: GenerationResult[]): number {
  if (gens.some((g) => g.verdict === "fails")) return 1;
  if (imageFindings.some((f) => f.severity === "error")) return 1;
  if (gens.some((g) => g.verdict === "inconclusive")) return 3;
  return 0;
}

export const EXIT = { BOOTS: 0, FAILS: 1, USAGE: 2, INCONCLUSIVE: 3 } as const;
