// Finding catalogue of the Windows OS stage (emu/os-windows.ts): the failure rows of shared/HYPERV.md
// for Windows (STOP 0x7B, winload 0xc000000e, no boot volume, no removable-path loader) and its limits.
import { defineFindings } from "./findings.ts";

defineFindings([
  {
    code: "WIN_STOP_7B", severity: "error", stage: "kernel",
    title: "Windows boot-start storage driver not ready: STOP 0x7B INACCESSIBLE_BOOT_DEVICE",
    message: "STOP 0x7B INACCESSIBLE_BOOT_DEVICE on {controller}: {problem} ({controlSet} in {hive})",
    remedy: "{fix}",
    explain: "Windows loads only boot-start drivers (Services\\X\\Start = 0) before it mounts the system volume. On Hyper-V "
      + "Generation 2 (and Azure) the disk sits behind VMBus: vmbus, storvsc and the storage filter (storflt/vmstorfl) must be "
      + "boot-start; Generation 1 needs atapi with intelide or pciide; disk, partmgr and volmgr always. A VMware guest often has "
      + "them at Start=3 (demand) or lacks the .sys file: the kernel then stops with 0x7B.",
  },
  {
    code: "WIN_NO_BOOT_VOLUME", severity: "error", stage: "firmware",
    title: "No Windows boot volume the target firmware can start",
    message: "Generation {generation}: {reason}",
    remedy: "{fix}",
    explain: "BIOS (Generation 1) starts the active MBR partition's boot record, which loads \\bootmgr and reads \\Boot\\BCD. "
      + "UEFI (Generation 2) needs a GPT disk with an EFI System Partition holding \\EFI\\Microsoft\\Boot\\bootmgfw.efi and BCD, "
      + "and, on a VM without the old NVRAM boot entries, the removable-media path \\EFI\\BOOT\\BOOTX64.EFI.",
  },
  {
    code: "WIN_LOADER_MISSING", severity: "error", stage: "bootloader",
    title: "The BCD default entry's OS loader is not on its device",
    message: "BCD default entry {guid}: {path} is not on {device}",
    remedy: "boot from Windows installation media, open the command prompt and run `bcdboot C:\\Windows` to rewrite the boot files and the BCD",
    explain: "bootmgr loads the application path (element 0x12000002, normally \\Windows\\system32\\winload.exe or winload.efi) "
      + "from the application device; when the file is missing bootmgr stops with 0xc000000f / 0xc0000428.",
  },
  {
    code: "WIN_GEN2_UNSUPPORTED", severity: "error", stage: "firmware",
    title: "Windows version does not run as a Hyper-V Generation 2 guest",
    message: "{product} (build {build}) is older than Windows Server 2012 / Windows 8 (build 9200): not supported on Generation 2",
    remedy: "deploy this disk as a Generation 1 VM (MBR disk), or upgrade the guest to Windows Server 2012 or later before converting",
    explain: "Hyper-V Generation 2 VMs support 64-bit Windows Server 2012 / Windows 8 and later only: older Windows needs the "
      + "legacy VGA BIOS (INT 10h) and emulated devices that the Generation 2 UEFI does not provide.",
  },
  {
    code: "WIN_PREBOOT_FAILED", severity: "error", stage: "bootloader",
    title: "The Generation 1 boot code did not get Windows Boot Manager going",
    message: "emulated Generation 1 boot: {what} ({stop}){detail}",
    remedy: "from Windows installation media's command prompt: `bootsect /nt60 SYS /mbr` (rewrites the MBR and NTFS boot record), then `bcdboot C:\\Windows /s S: /f BIOS`",
    explain: "The Windows MBR code starts the active partition's NTFS boot record, which reads \\bootmgr. When the emulation "
      + "stops before \\bootmgr's sectors were read, or the screen shows a boot error, Windows is not reached whatever its registry says.",
  },
  {
    code: "WIN_PREBOOT_NOT_VERIFIED", severity: "info", stage: "bootloader",
    title: "Windows pre-boot path not run: verdict held at inconclusive",
    message: "static analysis only: bootmgr not emulated; {reason}",
    remedy: "run `bootgate check` with Generation 1 emulation enabled for this disk (the default), or try the disk on a test VM",
    explain: "bootgate reads the BCD, the registry and the driver files statically; it does not execute bootmgr, winload or the "
      + "kernel. A verdict of 'boots' also needs evidence that the firmware and boot code get to bootmgr: on Generation 1 the "
      + "emulated run must have executed the NTFS boot record and read \\bootmgr without an error message. Without that "
      + "evidence (and on Generation 2 until UEFI emulation exists) a statically clean disk stays inconclusive.",
  },
  {
    code: "WIN_UNREADABLE", severity: "warning", stage: "root",
    title: "Part of the Windows installation cannot be read",
    message: "{what}: {reason}",
    remedy: "check the image with `qemu-img check IMAGE`; in the source VM run `chkdsk C: /f` and shut it down cleanly before converting again",
    explain: "A file the static OS stage needs (BCD, SYSTEM or SOFTWARE hive, the drivers directory) is missing or cannot be "
      + "parsed. Without it the verdict is inconclusive.",
  },
  {
    code: "WIN_MOUNTED_DEVICES_STALE", severity: "info", stage: "root",
    title: "MountedDevices names C: on another disk or partition",
    message: "MountedDevices \\DosDevices\\C: is {recorded}, but the Windows volume here is {actual}",
    remedy: "usually harmless (Windows re-assigns the boot volume's letter); if C: comes up wrong, delete the stale value offline: "
      + "`reg load HKLM\\OFFLINE C:\\Windows\\System32\\config\\SYSTEM` then `reg delete HKLM\\OFFLINE\\MountedDevices /v \\DosDevices\\C: /f` and `reg unload HKLM\\OFFLINE`",
    explain: "MountedDevices maps drive letters to MBR signature + partition offset or GPT partition GUID. A converted disk with "
      + "a new signature leaves a stale entry; Windows boots from the BCD's osdevice regardless and assigns a letter again.",
  },
  {
    code: "WIN_OS_FOUND", severity: "info", stage: "root",
    title: "Windows installation found",
    message: "{product} build {build} on partition {partition}, control set {controlSet}",
    remedy: "none needed",
    explain: "The Windows OS stage found a Windows system volume and read its SOFTWARE and SYSTEM hives.",
  },
]);
