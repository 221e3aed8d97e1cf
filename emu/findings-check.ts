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
  {
    code: "ROOT_NOT_EVALUATED", severity: "info", stage: "kernel",
    title: "The kernel was reached; finding the root disk is not evaluated yet",
    message: "the boot reached the {what} hand-off, but this version of bootgate does not yet check whether the OS finds its root disk (initramfs drivers, root= device, fstab)",
    remedy: "check that the initramfs holds hv_vmbus and hv_storvsc (lsinitramfs /boot/initrd.img-$(uname -r) | grep hv_) and that root= names a UUID, then boot a test VM",
    explain: "Reaching the kernel is not booting: most converted VMs that fail do so afterwards, when the initramfs lacks the Hyper-V storage drivers or the command line names a disk that no longer exists. Until the OS stage is evaluated the verdict stays inconclusive.",
  },
]);
