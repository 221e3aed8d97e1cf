// UEFI 2.10 constants and x64 structure layouts the synthetic Gen2 firmware builds in guest memory: EFI_STATUS
// values (Appendix D), table headers, the member order of EFI_BOOT_SERVICES / EFI_RUNTIME_SERVICES (EDK2
// MdePkg/Include/Uefi/UefiSpec.h) and the protocol interfaces it publishes. Offsets are for UINTN = 8.

const ERR = 0x8000000000000000n;
/** EFI_STATUS values by name (UEFI 2.10 Appendix D). */
export const EFI = {
  SUCCESS: 0n,
  LOAD_ERROR: ERR | 1n, INVALID_PARAMETER: ERR | 2n, UNSUPPORTED: ERR | 3n, BAD_BUFFER_SIZE: ERR | 4n,
  BUFFER_TOO_SMALL: ERR | 5n, NOT_READY: ERR | 6n, DEVICE_ERROR: ERR | 7n, WRITE_PROTECTED: ERR | 8n,
  OUT_OF_RESOURCES: ERR | 9n, VOLUME_CORRUPTED: ERR | 10n, VOLUME_FULL: ERR | 11n, NO_MEDIA: ERR | 12n,
  MEDIA_CHANGED: ERR | 13n, NOT_FOUND: ERR | 14n, ACCESS_DENIED: ERR | 15n, NO_RESPONSE: ERR | 16n,
  NO_MAPPING: ERR | 17n, TIMEOUT: ERR | 18n, NOT_STARTED: ERR | 19n, ALREADY_STARTED: ERR | 20n, ABORTED: ERR | 21n,
  SECURITY_VIOLATION: ERR | 26n, CRC_ERROR: ERR | 27n, END_OF_MEDIA: ERR | 28n, END_OF_FILE: ERR | 31n,
  INVALID_LANGUAGE: ERR | 32n, COMPROMISED_DATA: ERR | 33n,
  /** Warnings (high bit clear). */
  WARN_UNKNOWN_GLYPH: 1n,
} as const;
export type EfiStatusName = keyof typeof EFI;

const STATUS_NAMES = new Map<bigint, string>(Object.entries(EFI).map(([k, v]) => [v, `EFI_${k}`]));
export function statusName(s: bigint): string {
  return STATUS_NAMES.get(BigInt.asUintN(64, s)) ?? `0x${BigInt.asUintN(64, s).toString(16)}`;
}
export function isError(s: bigint): boolean { return (BigInt.asUintN(64, s) & ERR) !== 0n; }

/** EFI_MEMORY_TYPE. */
export const MemType = {
  Reserved: 0, LoaderCode: 1, LoaderData: 2, BootServicesCode: 3, BootServicesData: 4, RuntimeServicesCode: 5,
  RuntimeServicesData: 6, Conventional: 7, Unusable: 8, AcpiReclaim: 9, AcpiNvs: 10, Mmio: 11, MmioPortSpace: 12,
  PalCode: 13, Persistent: 14, Unaccepted: 15,
} as const;
export const MEM_TYPE_NAMES = Object.keys(MemType);
/** EFI_MEMORY_DESCRIPTOR is 40 bytes; firmware reports a larger DescriptorSize (EDK2: +8) so callers must use it. */
export const MEMORY_DESCRIPTOR_SIZE = 48;
export const MEMORY_DESCRIPTOR_VERSION = 1;
export const EFI_MEMORY_WB = 0x8n;
export const EFI_MEMORY_RUNTIME = 0x8000000000000000n;
export const PAGE_SIZE = 4096;

export const AllocateType = { AnyPages: 0, MaxAddress: 1, Address: 2 } as const;
export const LocateSearch = { AllHandles: 0, ByRegisterNotify: 1, ByProtocol: 2 } as const;

export const EVT = { TIMER: 0x80000000, RUNTIME: 0x40000000, NOTIFY_WAIT: 0x100, NOTIFY_SIGNAL: 0x200,
  SIGNAL_EXIT_BOOT_SERVICES: 0x201, SIGNAL_VIRTUAL_ADDRESS_CHANGE: 0x60000202 } as const;
export const TimerDelay = { Cancel: 0, Periodic: 1, Relative: 2 } as const;
export const TPL = { APPLICATION: 4, CALLBACK: 8, NOTIFY: 16, HIGH_LEVEL: 31 } as const;

export const OPEN_PROTOCOL = { BY_HANDLE_PROTOCOL: 1, GET_PROTOCOL: 2, TEST_PROTOCOL: 4, BY_CHILD_CONTROLLER: 8,
  BY_DRIVER: 0x10, EXCLUSIVE: 0x20 } as const;

export const SIGNATURE = {
  SYSTEM_TABLE: 0x5453595320494249n,   // "IBI SYST"
  BOOT_SERVICES: 0x56524553544f4f42n,  // "BOOTSERV"
  RUNTIME_SERVICES: 0x56524553544e5552n, // "RUNTSERV"
} as const;
/** UEFI 2.70, the revision mu_msvm reports (EFI_2_70_SYSTEM_TABLE_REVISION). */
export const UEFI_REVISION = (2 << 16) | 70;
export const TABLE_HEADER_SIZE = 24;

/** EFI_SYSTEM_TABLE member offsets. */
export const ST = {
  FirmwareVendor: 24, FirmwareRevision: 32, ConsoleInHandle: 40, ConIn: 48, ConsoleOutHandle: 56, ConOut: 64,
  StandardErrorHandle: 72, StdErr: 80, RuntimeServices: 88, BootServices: 96, NumberOfTableEntries: 104,
  ConfigurationTable: 112, SIZE: 120,
} as const;

/** EFI_BOOT_SERVICES function members in table order (each 8 bytes after the 24-byte header). */
export const BOOT_SERVICES = [
  "RaiseTPL", "RestoreTPL", "AllocatePages", "FreePages", "GetMemoryMap", "AllocatePool", "FreePool", "CreateEvent",
  "SetTimer", "WaitForEvent", "SignalEvent", "CloseEvent", "CheckEvent", "InstallProtocolInterface",
  "ReinstallProtocolInterface", "UninstallProtocolInterface", "HandleProtocol", "Reserved", "RegisterProtocolNotify",
  "LocateHandle", "LocateDevicePath", "InstallConfigurationTable", "LoadImage", "StartImage", "Exit", "UnloadImage",
  "ExitBootServices", "GetNextMonotonicCount", "Stall", "SetWatchdogTimer", "ConnectController",
  "DisconnectController", "OpenProtocol", "CloseProtocol", "OpenProtocolInformation", "ProtocolsPerHandle",
  "LocateHandleBuffer", "LocateProtocol", "InstallMultipleProtocolInterfaces", "UninstallMultipleProtocolInterfaces",
  "CalculateCrc32", "CopyMem", "SetMem", "CreateEventEx",
] as const;
export type BootService = (typeof BOOT_SERVICES)[number];

/** EFI_RUNTIME_SERVICES function members in table order. */
export const RUNTIME_SERVICES = [
  "GetTime", "SetTime", "GetWakeupTime", "SetWakeupTime", "SetVirtualAddressMap", "ConvertPointer", "GetVariable",
  "GetNextVariableName", "SetVariable", "GetNextHighMonotonicCount", "ResetSystem", "UpdateCapsule",
  "QueryCapsuleCapabilities", "QueryVariableInfo",
] as const;
export type RuntimeService = (typeof RUNTIME_SERVICES)[number];

/**
 * Protocol interfaces as lists of 8-byte members: a name is a function (a trapped stub), `@field` is data the
 * firmware fills in (Revision, Mode/Media pointers, events). Offsets follow from the order.
 */
export const PROTOCOL_MEMBERS = {
  SimpleTextOutput: ["Reset", "OutputString", "TestString", "QueryMode", "SetMode", "SetAttribute", "ClearScreen",
    "SetCursorPosition", "EnableCursor", "@Mode"],
  SimpleTextInput: ["Reset", "ReadKeyStroke", "@WaitForKey"],
  SimpleTextInputEx: ["Reset", "ReadKeyStrokeEx", "@WaitForKeyEx", "SetState", "RegisterKeyNotify", "UnregisterKeyNotify"],
  BlockIo: ["@Revision", "@Media", "Reset", "ReadBlocks", "WriteBlocks", "FlushBlocks"],
  DiskIo: ["@Revision", "ReadDisk", "WriteDisk"],
  SimpleFileSystem: ["@Revision", "OpenVolume"],
  File: ["@Revision", "Open", "Close", "Delete", "Read", "Write", "GetPosition", "SetPosition", "GetInfo", "SetInfo",
    "Flush", "OpenEx", "ReadEx", "WriteEx", "FlushEx"],
  GraphicsOutput: ["QueryMode", "SetMode", "Blt", "@Mode"],
  LoadedImage: [], // data only: see LOADED_IMAGE
  Rng: ["GetInfo", "GetRNG"],
  LoadFile2: ["LoadFile"],
} as const;
export type ProtocolKind = keyof typeof PROTOCOL_MEMBERS;

export function memberOffset(kind: ProtocolKind, member: string): number {
  const list = PROTOCOL_MEMBERS[kind] as readonly string[];
  const i = list.findIndex((m) => m === member || m === `@${member}`);
  if (i < 0) throw new Error(`${kind} has no member ${member}`);
  return i * 8;
}

/** EFI_SIMPLE_TEXT_OUTPUT_MODE: MaxMode, Mode, Attribute, CursorColumn, CursorRow (INT32), CursorVisible (BOOLEAN). */
export const TEXT_MODE = { MaxMode: 0, Mode: 4, Attribute: 8, CursorColumn: 12, CursorRow: 16, CursorVisible: 20, SIZE: 24 } as const;

/** EFI_BLOCK_IO_MEDIA (revision 3). */
export const BLOCK_MEDIA = { MediaId: 0, RemovableMedia: 4, MediaPresent: 5, LogicalPartition: 6, ReadOnly: 7,
  WriteCaching: 8, BlockSize: 12, IoAlign: 16, LastBlock: 24, LowestAlignedLba: 32, LogicalBlocksPerPhysicalBlock: 40,
  OptimalTransferLengthGranularity: 44, SIZE: 48 } as const;
export const BLOCK_IO_REVISION3 = 0x0002001fn;

/** EFI_LOADED_IMAGE_PROTOCOL. */
export const LOADED_IMAGE = { Revision: 0, ParentHandle: 8, SystemTable: 16, DeviceHandle: 24, FilePath: 32,
  Reserved: 40, LoadOptionsSize: 48, LoadOptions: 56, ImageBase: 64, ImageSize: 72, ImageCodeType: 80,
  ImageDataType: 84, Unload: 88, SIZE: 96 } as const;
export const LOADED_IMAGE_REVISION = 0x1000;

/** EFI_FILE_INFO header (FileName follows at 80). */
export const FILE_INFO = { Size: 0, FileSize: 8, PhysicalSize: 16, CreateTime: 24, LastAccessTime: 40,
  ModificationTime: 56, Attribute: 72, FileName: 80 } as const;
export const EFI_FILE_READ_ONLY = 0x1n;
export const EFI_FILE_DIRECTORY = 0x10n;
export const EFI_FILE_MODE_READ = 0x1n;
export const EFI_FILE_MODE_WRITE = 0x2n;
export const EFI_FILE_MODE_CREATE = 0x8000000000000000n;
export const FILE_PROTOCOL_REVISION2 = 0x00020000n;
/** EFI_FILE_SYSTEM_INFO: Size, ReadOnly, VolumeSize, FreeSpace, BlockSize, VolumeLabel. */
export const FS_INFO = { Size: 0, ReadOnly: 8, VolumeSize: 16, FreeSpace: 24, BlockSize: 32, VolumeLabel: 36 } as const;

/** EFI_GRAPHICS_OUTPUT_PROTOCOL_MODE and EFI_GRAPHICS_OUTPUT_MODE_INFORMATION. */
export const GOP_MODE = { MaxMode: 0, Mode: 4, Info: 8, SizeOfInfo: 16, FrameBufferBase: 24, FrameBufferSize: 32, SIZE: 40 } as const;
export const GOP_INFO = { Version: 0, HorizontalResolution: 4, VerticalResolution: 8, PixelFormat: 12,
  PixelInformation: 16, PixelsPerScanLine: 32, SIZE: 36 } as const;
/** PixelBlueGreenRedReserved8BitPerColor. */
export const PIXEL_BGRX = 1;

/** EFI_RESET_TYPE. */
export const RESET_TYPES = ["EfiResetCold", "EfiResetWarm", "EfiResetShutdown", "EfiResetPlatformSpecific"];
