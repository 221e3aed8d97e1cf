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
