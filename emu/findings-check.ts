// Catalogue entries for the check pipeline itself (what was and was not evaluated).
import { defineFindings } from "./findings.ts";

defineFindings([
  {
    code: "BOOT_NOT_EMULATED", severity: "info", stage: "firmware",
    title: "This generation's boot is not emulated yet",
    message: "Generation {generation} boot emulation is not available in this version of bootgate: the image passed the image stage, but no boot verdict can be given",
    remedy: "treat the result as inconclusive; boot the image once in a test VM before relying on it",
    explain: "bootgate only says 'boots' when it has run the image's own boot code to the point where the OS finds its root disk. Where a firmware model is not available the verdict stays inconclusive rather than guessed.",
  },
]);
