// The findings catalogue of the Gen1 (BIOS) boot run: image attachability, firmware boot device selection, and the
// bootloader dead ends the emulator recognises (HYPERV.md "Failure modes").
import { defineFindings } from "./findings.ts";

defineFindings([
  {
    code: "GEN1_DISK_NOT_ATTACHABLE", severity: "error", stage: "image",
    title: "The disk cannot be attached to a Generation 1 IDE controller",
    message: "The disk ({size}) cannot be the IDE boot disk of a Generation 1 VM: {why}",
    remedy: "Shrink the OS disk below 2040 GiB ('qemu-img resize --shrink' after shrinking the partitions), or convert the VM to Generation 2",
    explain: "Hyper-V Generation 1 VMs boot only from IDE disks, and the emulated IDE controller attaches virtual disks of at most 2040 GiB with 512-byte logical sectors.",
  },
  {
    code: "GEN1_NO_BOOT_DEVICE", severity: "error", stage: "firmware",
    title: "No bootable device",
    message: "The Gen1 BIOS found no bootable device: sector 0 of the IDE disk ends with {signature}, not 55 AA",
    remedy: "Write a boot sector: 'grub-install --target=i386-pc /dev/sdX' (Linux) or 'bootsect /nt60 C: /mbr' (Windows); for a UEFI-only image use a Generation 2 VM",
    explain: "A BIOS boots a disk only when its first sector ends with the signature 55h AAh. Without it the firmware tries the next device (legacy network adapter, floppy) and then shows a boot failure screen.",
  },
  {
    code: "GEN1_EMPTY_BOOT_CODE", severity: "error", stage: "bootloader",
    title: "The MBR has no boot code",
    message: "The MBR's code area is empty ({what}){gpt}; a BIOS has nothing to run",
    remedy: "For a UEFI-only (GPT/ESP) image use a Generation 2 VM; for BIOS boot run 'grub-install --target=i386-pc /dev/sdX' (GPT needs a BIOS boot partition)",
    explain: "A protective MBR written by partitioning tools has a valid 55AA signature but zero boot code. Hyper-V's BIOS jumps into it and the VM hangs on a black screen.",
  },
  {
    code: "GEN1_BOOT_CODE_GAVE_UP", severity: "error", stage: "bootloader",
    title: "The boot code gave up and returned to the firmware",
    message: "The boot code {how}{text}",
    remedy: "Make the boot partition findable: mark it active ('sfdisk --activate /dev/sdX 1') or reinstall the boot loader ('grub-install --target=i386-pc /dev/sdX')",
    explain: "MBR code that finds no active partition or cannot read the next stage prints a message and calls INT 18h (boot failure) or INT 19h; Hyper-V then moves to the next boot device and finally shows a boot failure.",
  },
  {
    code: "GEN1_HALTED", severity: "error", stage: "bootloader",
    title: "The boot code stopped the CPU",
    message: "Boot stopped: {detail}{text}",
    remedy: "Reinstall the boot loader ('grub-install --target=i386-pc /dev/sdX' or 'syslinux --install') and check the screen text for its error",
    explain: "Boot code that hits an error it cannot recover from often prints a message and halts with interrupts disabled, or spins in a loop. The VM shows the message (or a black screen) forever.",
  },
  {
    code: "GEN1_WAITING_FOR_KEY", severity: "error", stage: "bootloader",
    title: "The boot loader waits at a prompt",
    message: "The boot loader waits for keyboard input at: {prompt}",
    remedy: "Fix the boot loader configuration so it boots unattended (GRUB: 'update-grub' with GRUB_TIMEOUT set; SYSLINUX: a DEFAULT label and a TIMEOUT); see the screen text",
    explain: "A converted VM boots unattended. A boot loader prompt (grub rescue>, grub>, boot:) or a menu without a timeout waits forever on Azure and usually means it could not find its configuration or kernel.",
  },
  {
    code: "GEN1_GRUB_ERROR", severity: "error", stage: "bootloader",
    title: "GRUB reported an error",
    message: "GRUB: {error}",
    remedy: "Reinstall GRUB from the guest ('grub-install --target=i386-pc /dev/sdX && update-grub'); 'no such device' / 'unknown filesystem' usually means core.img names a disk or UUID that changed",
    explain: "GRUB's boot.img loads core.img from the sector recorded at install time; core.img then looks for its prefix (the /boot/grub directory) by partition or UUID. After conversion either may point at something that no longer exists.",
  },
  {
    code: "GEN1_GRUB_RESCUE", severity: "error", stage: "bootloader",
    title: "GRUB dropped to its rescue shell",
    message: "GRUB could not load its normal module or configuration and shows 'grub rescue>'",
    remedy: "Boot a rescue system and run 'grub-install --target=i386-pc /dev/sdX && update-grub' inside the guest's root",
    explain: "grub rescue> means core.img ran but could not read its prefix directory (modules and grub.cfg).",
  },
  {
    code: "GEN1_BOOT_MESSAGE", severity: "error", stage: "bootloader",
    title: "The boot code printed a failure message",
    message: "The boot code printed: {message}",
    remedy: "Check the partition table and boot loader: 'sfdisk -d /dev/sdX', then reinstall with 'grub-install --target=i386-pc /dev/sdX' or 'syslinux --install'",
    explain: "Standard MBR and boot record code prints fixed messages (Missing operating system, Invalid partition table, Boot error, ...) before giving up.",
  },
  {
    code: "GEN1_CPU_EXCEPTION", severity: "error", stage: "bootloader",
    title: "The boot code crashed",
    message: "The boot code crashed: {detail}",
    remedy: "Reinstall the boot loader ('grub-install --target=i386-pc /dev/sdX'); the code on disk does not match what it loads",
    explain: "A CPU exception during BIOS boot (invalid opcode, general protection, a jump into nowhere) means the boot code executed garbage — typically a stale core.img or a partially overwritten boot record.",
  },
  {
    code: "GEN1_BUDGET_EXHAUSTED", severity: "warning", stage: "bootloader",
    title: "The boot did not finish within the emulation budget",
    message: "Emulation stopped ({detail}) before the boot code reached a kernel or failed",
    remedy: "Run again with a larger budget ('bootgate check --max-instructions N'); report the image if it keeps spinning",
    explain: "Each run has an instruction and a wall-time budget so that no image can hang bootgate. Hitting it says nothing about the image either way.",
  },
  {
    code: "GEN1_LINUX_HANDOFF", severity: "info", stage: "kernel",
    title: "The boot loader started a Linux kernel",
    message: "{loader} started Linux {version} ({protocol}) with command line: {cmdline}",
    remedy: "No action needed for the boot loader stage",
    explain: "The boot loader loaded a Linux kernel per the x86 boot protocol and jumped into it; what happens next (drivers, root device) is checked in the kernel/root stages.",
  },
]);
