// The findings catalogue of the Gen2 (UEFI) boot run: the firmware's boot manager outcomes (HYPERV.md failure
// screen lines), the loaders' dead ends, and the hand-off.
import { defineFindings } from "./findings.ts";

const EFI_BOOT_REMEDY = "copy the loader to the removable-media path on the ESP (Linux: `grub-install --target=x86_64-efi --removable` or `cp /boot/efi/EFI/<distro>/shimx64.efi /boot/efi/EFI/BOOT/BOOTX64.EFI` with grubx64.efi beside it; Windows: `bcdboot C:\\Windows /s S: /f UEFI`)";

defineFindings([
  {
    code: "GEN2_NO_UEFI_FILESYSTEM", severity: "error", stage: "firmware",
    title: "No UEFI-compatible file system",
    message: "The Gen2 firmware found no FAT file system on the disk (\"No UEFI-compatible file system was found.\"); partitioning: {partitioning}{why}",
    remedy: "Gen2 boots only from an EFI System Partition (FAT): convert the disk to GPT with an ESP and install a UEFI loader (Linux: `sgdisk` + `mkfs.vfat` + `grub-install --target=x86_64-efi`; Windows: `mbr2gpt /convert`), or deploy the image as Generation 1",
    explain: "Hyper-V's Gen2 UEFI reads boot loaders from FAT file systems only. A BIOS/MBR image (made for Generation 1) has none, so the firmware reports \"No UEFI-compatible file system was found.\" and falls back to the network.",
  },
  {
    code: "GEN2_NO_BOOT_LOADER", severity: "error", stage: "firmware",
    title: "No boot loader at the removable-media path",
    message: "No x64-based UEFI boot loader was found: {path} does not exist on {volumes}{others}",
    remedy: EFI_BOOT_REMEDY,
    explain: "A newly created or uploaded VM has an empty NVRAM: the boot entries the old VM's firmware knew (\\EFI\\debian\\shimx64.efi, \\EFI\\Microsoft\\Boot\\bootmgfw.efi) are gone, and the firmware looks only for \\EFI\\BOOT\\BOOTX64.EFI on each ESP.",
  },
  {
    code: "GEN2_BOOT_ENTRY_NOT_FOUND", severity: "warning", stage: "firmware",
    title: "A boot entry in NVRAM points at nothing",
    message: "{option}: {message}",
    remedy: "Recreate the boot entry after the migration (`efibootmgr -c -d /dev/sda -p 1 -l '\\EFI\\<distro>\\shimx64.efi' -L <name>`; Windows: `bcdboot`), or rely on the removable-media path",
    explain: "Boot#### variables hold the device path of the disk and partition they were made for; after a conversion the GUIDs or controller differ and the entry fails.",
  },
  {
    code: "GEN2_LOADER_NOT_X64", severity: "error", stage: "firmware",
    title: "The boot loader is not an x64 EFI application",
    message: "{file} cannot run on an x64 Hyper-V VM: {why}",
    remedy: "install the x64 UEFI loader (grub-efi-amd64 / shim-signed for amd64, or the x64 Windows boot files) at \\EFI\\BOOT\\BOOTX64.EFI",
    explain: "Gen2 VMs run only PE32+ x64 EFI applications; an ia32, ARM64 or BIOS binary at the boot path is skipped.",
  },
  {
    code: "GEN2_LOADER_INVALID", severity: "error", stage: "firmware",
    title: "The boot loader file is not a loadable EFI image",
    message: "{file} cannot be loaded (\"No x64-based UEFI boot loader was found.\"): {why}",
    remedy: "replace the file with the real loader (Linux: reinstall shim-signed/grub-efi and copy it to \\EFI\\BOOT\\BOOTX64.EFI; Windows: `bcdboot C:\\Windows /s S: /f UEFI`)",
    explain: "The firmware's LoadImage parses the PE/COFF headers, sections and relocations; a truncated, zeroed or non-PE file at the boot path is skipped like a missing one.",
  },
  {
    code: "GEN2_LOADER_RETURNED", severity: "error", stage: "bootloader",
    title: "The boot loader returned to the firmware",
    message: "{file} returned {status} to the firmware (\"The boot loader did not load an operating system.\"){text}",
    remedy: "read the console text for the loader's own error; reinstall the loader and its configuration (`grub-install --target=x86_64-efi`, `update-grub`; Windows: `bcdboot C:\\Windows /s S: /f UEFI`)",
    explain: "A UEFI loader that cannot find its next stage (grubx64.efi beside shim, the GRUB configuration, winload.efi) usually prints an error and returns; the firmware then tries the next boot option and finally shows its boot summary.",
  },
  {
    code: "GEN2_GRUB_ERROR", severity: "error", stage: "bootloader",
    title: "GRUB reported an error",
    message: "GRUB printed: error: {error}",
    remedy: "fix the GRUB configuration on the ESP and /boot (the UUID in `search --fs-uuid`, the prefix) and regenerate it with `grub-mkconfig -o /boot/grub/grub.cfg`",
    explain: "GRUB's messages name the device, file or UUID it could not find; on a converted disk that is usually a filesystem UUID that changed or a disk that is now on a different controller.",
  },
  {
    code: "GEN2_WAITING_FOR_KEY", severity: "error", stage: "bootloader",
    title: "The boot loader waits for keyboard input",
    message: "The boot stopped at a prompt waiting for a key: {prompt}",
    remedy: "an unattended VM must not stop at a prompt: fix what the loader's message names, and remove interactive menus without a timeout",
    explain: "A GRUB prompt (grub> / grub rescue>) or a menu without a timeout waits forever on a VM nobody is watching.",
  },
  {
    code: "GEN2_CPU_EXCEPTION", severity: "error", stage: "bootloader",
    title: "A CPU exception or a fault in the loader",
    message: "The loader faulted: {detail}",
    remedy: "check that the loader is complete and not corrupted (reinstall it); if it is a stock loader, report it as a bootgate issue with the trace",
    explain: "A page fault, invalid opcode or a bad pointer passed to the firmware ends the boot; on real hardware the VM resets or hangs.",
  },
  {
    code: "GEN2_BUDGET_EXHAUSTED", severity: "warning", stage: "bootloader",
    title: "The emulation budget ran out",
    message: "Gen2 emulation stopped before a decision: {detail}",
    remedy: "raise the budget (`--max-seconds`, `--max-instructions`) or report the image; the verdict is inconclusive",
    explain: "bootgate bounds every run. A loader that loops without calling the firmware ends at the wall-time budget.",
  },
  {
    code: "GEN2_LINUX_HANDOFF", severity: "info", stage: "kernel",
    title: "Linux kernel reached (ExitBootServices)",
    message: "{loader} started Linux {version} ({protocol}) with command line: {cmdline}",
    remedy: "none needed for this stage",
    explain: "The kernel's EFI stub called ExitBootServices: the firmware stage is over and the kernel has its command line and initrd.",
  },
  {
    code: "GEN2_OS_LOADER_HANDOFF", severity: "info", stage: "kernel",
    title: "An OS loader took over (ExitBootServices)",
    message: "{image} called ExitBootServices: the firmware stage is over",
    remedy: "none needed for this stage",
    explain: "ExitBootServices ends the firmware's part; what follows is the OS's own loading.",
  },
  {
    code: "GEN2_RESET", severity: "info", stage: "firmware",
    title: "The loader reset the VM",
    message: "{image} called ResetSystem({type}) after changing {vars}; bootgate powered the VM on again with that NVRAM",
    remedy: "none needed (shim's fallback creates a boot entry and resets once on the first boot)",
    explain: "shim's fbx64.efi reads BOOTX64.CSV, creates Boot#### entries and resets; the next boot uses the new entry.",
  },
  {
    code: "GEN2_TOO_MANY_RESETS", severity: "error", stage: "firmware",
    title: "The VM keeps resetting",
    message: "The VM reset {count} times without reaching an OS",
    remedy: "check the boot entries and BOOTX64.CSV that the fallback loader reads",
    explain: "A loader that resets on every boot loops forever on a real VM.",
  },
  {
    code: "GEN2_UNSUPPORTED_SERVICE", severity: "warning", stage: "bootloader",
    title: "A loader called a firmware service bootgate does not model",
    message: "{count} call(s) to firmware services answered EFI_UNSUPPORTED: {services}",
    remedy: "none on the image; if the boot failed after this, report it as a bootgate limitation",
    explain: "Every table member exists; services bootgate does not model answer EFI_UNSUPPORTED, as a minimal firmware may. A loader that depends on one may behave differently on Hyper-V.",
  },
  {
    code: "GEN2_SECUREBOOT_CHAIN", severity: "info", stage: "firmware",
    title: "Which Secure Boot settings accept the boot chain",
    message: "{file} ({signer}): accepted by {accepted}; this run used {mode}",
    remedy: "{remedy}",
    explain: "The firmware verifies the first loader against db/dbx; later stages are verified by shim (its own keys, MOK and SBAT). Hyper-V offers the MicrosoftWindows and MicrosoftUEFICertificateAuthority templates; Azure Trusted Launch trusts both Microsoft CAs.",
  },
]);
