// Catalogue entries for the image stage: upload rules of Azure and Hyper-V, and attachment limits.
import { defineFindings } from "../emu/findings.ts";

const CONVERT_FIXED = "qemu-img convert -O vpc -o subformat=fixed,force_size=on {path} disk-fixed.vhd (or in PowerShell: Convert-VHD -Path {path} -DestinationPath disk-fixed.vhd -VHDType Fixed)";

defineFindings([
  {
    code: "IMAGE_EXTENSION_MISMATCH", severity: "error", stage: "image",
    title: "File extension does not match the container format",
    message: "the file is named .{extension} but holds a {format} image; Hyper-V and Azure go by the extension and will refuse it",
    remedy: "convert it to the format its name claims, e.g. " + CONVERT_FIXED,
    explain: "Hyper-V and Azure decide how to open a disk from its file name extension. A qcow2 or VMDK image renamed to .vhd is not converted: the upload succeeds but the VM cannot attach the disk.",
  },
  {
    code: "AZURE_NOT_FIXED_VHD", severity: "error", stage: "image",
    title: "Azure accepts only fixed-size VHD files",
    message: "Azure needs a fixed VHD; this image is {format}{subformatText}",
    remedy: CONVERT_FIXED,
    explain: "Azure page blobs hold fixed-format VHD files only (a raw disk followed by a 512-byte VHD footer). Dynamic and differencing VHDs, VHDX, VMDK, qcow2 and raw images must be converted before upload; Add-AzVhd converts dynamic VHDs on the fly but az/AzCopy uploads do not.",
  },
  {
    code: "AZURE_SIZE_NOT_MIB", severity: "error", stage: "image",
    title: "Virtual size is not a whole number of MiB",
    message: "virtual size {virtualSize} bytes is not a multiple of 1 MiB (remainder {remainder} bytes)",
    remedy: "round the disk up to {roundedMiB} MiB: qemu-img convert -O raw {path} disk.raw && qemu-img resize -f raw disk.raw {roundedMiB}M && qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on disk.raw disk.vhd (or Resize-VHD -SizeBytes {roundedBytes})",
    explain: "Azure requires the virtual size of an uploaded VHD to be aligned to 1 MiB. qemu-img without force_size=on rounds VHD sizes to a CHS geometry and produces sizes that are not whole MiB.",
  },
  {
    code: "AZURE_FILE_SIZE", severity: "error", stage: "image",
    title: "File size is not virtual size + 512",
    message: "file size {fileSize} bytes should be virtual size {virtualSize} + 512 = {expected} bytes for a fixed VHD",
    remedy: "rewrite the file as a clean fixed VHD: " + CONVERT_FIXED,
    explain: "A fixed VHD is exactly the disk's bytes followed by one 512-byte footer. Extra or missing bytes (a truncated upload, a second footer, trailing padding) make Azure reject the blob or read the wrong footer.",
  },
  {
    code: "AZURE_SIZE_RANGE", severity: "error", stage: "image",
    title: "Virtual size outside Azure's 20 MiB .. 32 TiB range",
    message: "virtual size {virtualSize} bytes is outside Azure's range of {min} .. {max} bytes",
    remedy: "resize the disk into the range: qemu-img resize -f raw disk.raw <size> (shrinking needs the partitions shrunk first)",
    explain: "Azure managed disks created from an uploaded VHD must be at least 20 MiB and at most 32 TiB.",
  },
  {
    code: "OS_DISK_TOO_LARGE_GEN2", severity: "error", stage: "image",
    title: "OS disk larger than Azure's 4 TiB Generation 2 limit",
    message: "virtual size {virtualSize} bytes exceeds Azure's 4 TiB limit for an OS disk",
    remedy: "move data to a data disk and shrink the OS disk below 4 TiB",
    explain: "Azure OS disks are limited to 4 TiB.",
  },
  {
    code: "HYPERV_IDE_LIMIT", severity: "error", stage: "image",
    title: "Disk larger than the Hyper-V IDE limit",
    message: "virtual size {virtualSize} bytes exceeds the {limit}-byte (2040 GB) limit of a Hyper-V IDE disk; a Generation 1 VM cannot attach it",
    remedy: "shrink the disk below 2040 GB, or boot it as Generation 2 (SCSI)",
    explain: "Generation 1 VMs boot only from IDE disks, and Hyper-V's emulated IDE controller attaches disks of at most 2040 GB.",
  },
  {
    code: "HYPERV_GEN2_NEEDS_VHDX", severity: "error", stage: "image",
    title: "Hyper-V Generation 2 boots only from VHDX",
    message: "a Generation 2 VM on Hyper-V attaches VHDX boot disks only; this image is {format}",
    remedy: "qemu-img convert -O vhdx -o subformat=dynamic {path} disk.vhdx (or Convert-VHD -Path {path} -DestinationPath disk.vhdx)",
    explain: "On-premises Hyper-V Generation 2 VMs cannot use .vhd files for their boot disk; Azure is the exception (it uses fixed VHD for every generation).",
  },
  {
    code: "CONTAINER_UNREADABLE", severity: "error", stage: "image",
    title: "The container cannot be opened",
    message: "{message}",
    remedy: "repair or re-export the image: qemu-img check -r all {path}, or convert it again from the source VM",
    explain: "The image's container structures are corrupt, truncated or unsupported, so no hypervisor can attach it.",
  },
]);
