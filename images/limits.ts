// Safety bounds for untrusted images, in one place (issue 7 adds the emulation limits here).

/** Largest virtual disk we accept: 64 TiB (the VHDX maximum). Keeps byte offsets < 2^53. */
export const MAX_VIRTUAL_SIZE = 64 * 2 ** 40;
/** Differencing / backing-file chains deeper than this are refused (a loop or an attack). */
export const MAX_PARENT_DEPTH = 16;
/** Largest block-allocation table we load into memory, in entries. */
export const MAX_TABLE_ENTRIES = 64 * 1024 * 1024;
/** Largest single read a caller may ask a BlockDevice for, in sectors (16 MiB at 512 B). */
export const MAX_READ_SECTORS = 32768;
/** Largest text descriptor (VMDK) or metadata item we read. */
export const MAX_DESCRIPTOR_BYTES = 1024 * 1024;
/** Extended-partition (EBR) chain length limit. */
export const MAX_EBR_CHAIN = 128;
/** GPT partition entry array limits (UEFI 2.10 5.3.2: at least 16 KiB; real tools use 128). */
export const MAX_GPT_ENTRIES = 1024;
export const MAX_GPT_ENTRY_SIZE = 4096;
/** Decompressed grain/cluster cache in bytes. */
export const GRAIN_CACHE_BYTES = 32 * 1024 * 1024;
/** Metadata tables (VMDK grain tables, qcow2 L2 tables) cached for all open images together, in bytes. */
export const TABLE_CACHE_BYTES = 16 * 1024 * 1024;
/** qcow2 L1 table entries (QEMU's QCOW_MAX_L1_SIZE is 32 MiB = 4 Mi entries). */
export const MAX_QCOW2_L1_ENTRIES = 4 * 1024 * 1024;
/** VMDK extents in one descriptor (16384 x 2 GB = 32 TiB, the largest Azure disk). */
export const MAX_VMDK_EXTENTS = 16384;
/** VMDK extent files kept open at once; more are reopened on demand. */
export const MAX_OPEN_EXTENT_FILES = 64;
/** Largest VMDK grain (QEMU's vmdk.c refuses grains over 1 GiB; real tools write 64 KiB). */
export const MAX_VMDK_GRAIN_BYTES = 2 * 1024 * 1024;
/** Largest VMDK grain table, in entries (the spec fixes 512; QEMU refuses more). */
export const MAX_VMDK_GTES_PER_GT = 4096;
/** Guest filesystem readers (issue 4): metadata blocks cached per open filesystem, in bytes. */
export const FS_METADATA_CACHE_BYTES = 8 * 1024 * 1024;
/** Largest ext2/3/4 directory we read, in bytes (a 64 MiB directory holds ~1M entries). */
export const MAX_EXT4_DIR_BYTES = 64 * 1024 * 1024;
/** Block runs one ext2/3/4 file may map to (extents, or merged indirect-block pointers). */
export const MAX_EXT4_FILE_RUNS = 256 * 1024;
/** Extent-tree depth limit (the kernel's own trees stay <= 5) and tree nodes visited per file. */
export const MAX_EXT4_EXTENT_DEPTH = 8;
export const MAX_EXT4_EXTENT_NODES = 64 * 1024;
/** Block groups in one ext filesystem (2^22 groups of 128 MiB = 512 TiB, beyond the 64 TiB disk limit). */
export const MAX_EXT4_GROUPS = 4 * 1024 * 1024;
/** Largest FAT directory: the FAT spec caps a directory at 65536 32-byte entries. */
export const MAX_FAT_DIR_BYTES = 65536 * 32;
/** Largest registry hive we load whole (real SYSTEM hives are 10-100 MiB; COMPONENTS can reach 200). */
export const MAX_HIVE_BYTES = 512 * 1024 * 1024;
/** Subkeys / values we list under one registry key. */
export const MAX_REGF_SUBKEYS = 256 * 1024;
export const MAX_REGF_VALUES = 64 * 1024;
/** Largest registry value data we assemble (big-data values included). */
export const MAX_REGF_VALUE_BYTES = 16 * 1024 * 1024;
/** Registry key path depth for lookups (Windows allows 512 levels). */
export const MAX_REGF_DEPTH = 512;
/** NTFS: extension MFT records one file may spread over through $ATTRIBUTE_LIST. */
export const MAX_NTFS_EXTENSION_RECORDS = 4096;
/** NTFS: largest $ATTRIBUTE_LIST value (Windows keeps it under 256 KiB). */
export const MAX_NTFS_ATTR_LIST_BYTES = 1024 * 1024;
/** NTFS: data runs in one attribute (a heavily fragmented multi-GiB file). */
export const MAX_NTFS_RUNS = 1024 * 1024;
/** NTFS: entries in one directory index (WinSxS holds ~100k). */
export const MAX_NTFS_DIR_ENTRIES = 1024 * 1024;
/** NTFS: bytes of $INDEX_ALLOCATION read for one directory. */
export const MAX_NTFS_INDEX_BYTES = 256 * 1024 * 1024;
/** NTFS: MFT records kept in the per-volume cache. */
export const NTFS_RECORD_CACHE = 4096;
/** Initramfs (issue 4): decompressed bytes of all segments together (real ones are 20-200 MiB). */
export const MAX_INITRAMFS_BYTES = 512 * 1024 * 1024;
/** Compressed or uncompressed segments in one initramfs (early microcode + main + a few appended). */
export const MAX_INITRAMFS_SEGMENTS = 64;
/** cpio entries across one initramfs (a full dracut image holds ~3000). */
export const MAX_CPIO_ENTRIES = 1024 * 1024;
/** cpio name size including the NUL (the kernel's init/initramfs.c refuses names over PATH_MAX = 4096). */
export const MAX_CPIO_NAME = 4096;
/** zstd window we accept (zstd's own decoder default limit, ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27). */
export const MAX_ZSTD_WINDOW = 128 * 1024 * 1024;
/** LZMA / xz dictionary we accept (xz -9 uses 64 MiB; the kernel's xz decoder caps its own lower). */
export const MAX_LZMA_DICT = 256 * 1024 * 1024;
/** Largest modules.dep / modules.alias / config text we parse. */
export const MAX_MODULES_TEXT_BYTES = 64 * 1024 * 1024;
/** Guest boot configuration (issue 4): largest grub.cfg we evaluate (real ones are < 100 KiB; 16 MiB leaves room). */
export const MAX_GRUB_CFG_BYTES = 16 * 1024 * 1024;
/** Commands evaluated in one grub.cfg (function calls included), nesting depth, entries per menu, value length. */
export const MAX_GRUB_STEPS = 2_000_000;
export const MAX_GRUB_NESTING = 64;
export const MAX_GRUB_ENTRIES = 4096;
export const MAX_GRUB_VALUE_BYTES = 64 * 1024;
/** Largest text config file (BLS snippet, fstab, crypttab, /etc/default/grub, kernel command line) we parse. */
export const MAX_BOOT_TEXT_BYTES = 1024 * 1024;
/** BLS snippets read from /boot/loader/entries. */
export const MAX_BLS_ENTRIES = 1024;

// ---- Issue 7: the remaining bounds, gathered here from the modules that enforce them ----

/** Gen1 emulation work budget: BIOS calls plus port accesses per generation (`--max-instructions` / 100 overrides it). */
export const GEN1_DEFAULT_MAX_EVENTS = 5_000_000;
/** `--max-instructions N` becomes an event budget of N / INSTRUCTIONS_PER_EVENT. */
export const INSTRUCTIONS_PER_EVENT = 100;
/** Host wall-time budget per generation, in ms (`--max-seconds`). */
export const GEN1_DEFAULT_MAX_WALL_MS = 60_000;
/** Guest RAM in MiB: Hyper-V's default startup memory, and the range `--memory` accepts. */
export const GUEST_RAM_MIB_DEFAULT = 1024;
export const GUEST_RAM_MIB_MIN = 64;
export const GUEST_RAM_MIB_MAX = 3584;
/** Symbolic links followed while resolving one guest path (Linux's MAXSYMLINKS is 40). */
export const MAX_SYMLINK_HOPS = 40;
/** Directory depth of one guest path (components below the root). */
export const MAX_PATH_DEPTH = 256;
/** LVM2: data/metadata areas in one PV label, PVs and LVs per VG, segments per LV, stripes per segment. */
export const MAX_LVM_DISK_AREAS = 16;
export const MAX_LVM_PVS = 1024;
export const MAX_LVM_LVS = 4096;
export const MAX_LVM_SEGMENTS = 65536;
export const MAX_LVM_STRIPES = 128;
/** LVM2: largest read an LV serves in one piece, in bytes. */
export const MAX_LVM_READ_CHUNK = 4 * 2 ** 20;
/** LVM2 metadata text: section nesting (VG > logical_volumes > LV > segment is 4), items in one text, elements in one list. */
export const MAX_LVM_META_DEPTH = 16;
export const MAX_LVM_META_ITEMS = 200_000;
export const MAX_LVM_META_LIST = 65_536;
/** XFS: allocation groups, directory blocks (256 MiB at 4 KiB) and entries read for one directory, largest single read. */
export const MAX_XFS_AGCOUNT = 1 << 20;
export const MAX_XFS_DIR_BLOCKS = 65536;
export const MAX_XFS_DIR_ENTRIES = 1 << 20;
export const MAX_XFS_READ_BYTES = 1024 * 2 ** 20;
/** XFS: deepest bmap B+tree walked (XFS itself stays below 10 levels), extents accepted for one fork. */
export const XFS_MAX_BMBT_DEPTH = 8;
export const XFS_MAX_FILE_EXTENTS = 1 << 20;
/** VHDX region and metadata table entries (VHDX 1.0 2.2.3.1 / 2.6.1.1 EntryCount <= 2047), largest metadata item (2.6.1.2). */
export const MAX_VHDX_REGION_ENTRIES = 2047;
export const MAX_VHDX_METADATA_ENTRIES = 2047;
export const MAX_VHDX_METADATA_ITEM = 1024 * 1024;
/** Windows SYSTEM hive: CriticalDeviceDatabase keys examined. */
export const MAX_CDDB_ENTRIES = 8192;
/** Windows OS stage: volumes examined, System32\drivers entries listed. */
export const MAX_WINDOWS_VOLUMES = 32;
export const MAX_DRIVER_FILES = 16384;
/** Linux: softdep chains longer than this are refused (a hostile modules.softdep). */
export const MAX_MODULE_CHAIN = 4096;
/** Linux OS stage: names listed per directory when mapping an LBA back to a file. */
export const MAX_SCAN_NAMES = 4096;
/** PE/COFF: sections (the Windows loader refuses more than 96), SizeOfImage laid out, data directories (the spec's 16),
 *  certificate-table entries, .sbat bytes read as text. */
export const MAX_PE_SECTIONS = 96;
export const MAX_PE_IMAGE_BYTES = 256 * 1024 * 1024;
export const MAX_PE_DATA_DIRECTORIES = 16;
export const MAX_PE_CERTIFICATES = 64;
export const MAX_SBAT_BYTES = 64 * 1024;

// ---- Generation 2 (UEFI model, NVRAM, Secure Boot) ----
/** Protocol/interface pairs read from one (Un)InstallMultipleProtocolInterfaces call before its NULL. */
export const UEFI_MAX_VARIADIC_PAIRS = 32;
/** Longest device path the firmware walks in guest memory (LocateDevicePath, LoadImage). */
export const UEFI_MAX_DEVICE_PATH_BYTES = 4096;
/** BootOrder entries the boot manager tries. */
export const UEFI_MAX_BOOT_OPTIONS = 64;
/** Empty ReadKeyStroke polls in a row (nothing else happening) before a run is "waiting for a key". */
export const UEFI_KEY_POLL_GIVE_UP = 20_000;
/** The same with a known prompt at the cursor (grub>, grub rescue>, "Press any key"). */
export const UEFI_KEY_POLL_AT_PROMPT = 2_000;
/** Console transcript kept for reports. */
export const UEFI_MAX_TRANSCRIPT_CHARS = 64 * 1024;
/** Device path parser bounds (uefi-devpath.ts). */
export const UEFI_MAX_DEVPATH_BYTES = 4096;
export const UEFI_MAX_DEVPATH_NODES = 256;
/** Largest image LoadImage accepts (a kernel with an appended initramfs is tens of MiB). */
export const UEFI_MAX_LOAD_IMAGE_BYTES = 128 * 1024 * 1024;
/** Memory map descriptors and live pool allocations before EFI_OUT_OF_RESOURCES. */
export const UEFI_MAX_MAP_ENTRIES = 16_384;
export const UEFI_MAX_POOL_ALLOCATIONS = 200_000;
/** NVRAM store: one variable, all variables, their count, a name, and the log of guest writes. */
export const NVRAM_MAX_VARIABLE_BYTES = 64 * 1024;
export const NVRAM_MAX_STORE_BYTES = 1024 * 1024;
export const NVRAM_MAX_VARIABLES = 1024;
export const NVRAM_MAX_NAME_CHARS = 1024;
export const NVRAM_MAX_WRITE_LOG = 4096;
/** Device paths read from one EFI_LOAD_OPTION's FilePathList. */
export const UEFI_MAX_LOAD_OPTION_PATHS = 16;
/** Files a loader may hold open at once (SimpleFileSystem). */
export const UEFI_MAX_OPEN_FILES = 4096;
/** Largest single BlockIo/DiskIo transfer, and guest-written sectors kept in the overlay. */
export const UEFI_MAX_TRANSFER_BYTES = 64 * 1024 * 1024;
export const UEFI_MAX_OVERLAY_SECTORS = 65_536;
/** Most data one TCG2 HashLogExtendEvent hashes. */
export const TPM_MAX_MEASURED_BYTES = 256 * 2 ** 20;
/** Authenticode: certificates in one PKCS#7 blob, and the chain length followed to a db certificate. */
export const SB_MAX_PKCS7_CERTS = 32;
export const SB_MAX_CHAIN_DEPTH = 8;
/** OVMF varstore parser bounds (secureboot-certs.ts). */
export const SB_MAX_VARSTORE_BYTES = 64 * 1024 * 1024;
export const SB_MAX_VARSTORE_VARIABLES = 16384;
export const SB_MAX_VARIABLE_NAME_BYTES = 1024;
export const SB_MAX_SIGNATURE_ENTRIES = 65536;
export const SB_MAX_SIGNATURE_LISTS = 4096;
/** Gen2 run budgets and VM memory (emu/gen2.ts). */
export const GEN2_DEFAULT_MAX_EVENTS = 5_000_000;
export const GEN2_DEFAULT_MAX_WALL_MS = 60_000;
export const GEN2_RAM_MIB_MIN = 256;
export const GEN2_RAM_MIB_MAX = 16384;
/** Power-ons after ResetSystem before the run gives up. */
export const GEN2_MAX_RESETS = 3;
