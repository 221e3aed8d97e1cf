// EFI_GUID binary/text conversion and the GUIDs the synthetic Gen2 firmware names (UEFI 2.10 Appendix A;
// values checked against tianocore/edk2 MdePkg.dec / MdeModulePkg.dec, rhboot/shim, linux include/linux/efi.h,
// microsoft/mu_msvm MsvmPkg/VmbusDxe).
import { ImageError } from "../images/errors.ts";

const GUID_RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** True when `text` is an 8-4-4-4-12 GUID (braces optional). */
export function isGuidText(text: string): boolean {
  return typeof text === "string" && GUID_RE.test(text);
}

/**
 * EFI_GUID bytes (UEFI 2.10 Appendix A: Data1 UINT32 LE, Data2 UINT16 LE, Data3 UINT16 LE, Data4[8] in order)
 * from the canonical text form.
 */
export function guidToBytes(text: string): Buffer {
  const m = GUID_RE.exec(text);
  if (!m) throw new ImageError("E_GUID_TEXT", "usage", `not a GUID: ${JSON.stringify(String(text).slice(0, 64))}`);
  const b = Buffer.alloc(16);
  b.writeUInt32LE(parseInt(m[1], 16), 0);
  b.writeUInt16LE(parseInt(m[2], 16), 4);
  b.writeUInt16LE(parseInt(m[3], 16), 6);
  Buffer.from(m[4] + m[5], "hex").copy(b, 8);
  return b;
}

/** Canonical lower-case text of the EFI_GUID at `off` (what EDK2's %g prints). */
export function guidFromBytes(buf: Uint8Array, off = 0): string {
  if (off < 0 || off + 16 > buf.length) {
    throw new ImageError("E_GUID_TRUNCATED", "truncated", `GUID at offset ${off} needs 16 bytes, buffer has ${buf.length}`);
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset + off, 16);
  const h = (n: number, w: number) => n.toString(16).padStart(w, "0");
  const d4 = b.subarray(8, 16).toString("hex");
  return `${h(b.readUInt32LE(0), 8)}-${h(b.readUInt16LE(4), 4)}-${h(b.readUInt16LE(6), 4)}-${d4.slice(0, 4)}-${d4.slice(4)}`;
}

/** Lower-case canonical form of a GUID text (throws on malformed text). */
export const normGuid = (text: string): string => guidFromBytes(guidToBytes(text));

/** Byte-equality of two GUIDs given as text. */
export const guidEquals = (a: string, b: string): boolean => normGuid(a) === normGuid(b);

/** Named GUIDs. Source of each value in the trailing comment. */
export const GUID = {
  // ---- variables and Secure Boot (MdePkg.dec; shim include/guid.h) ----
  EFI_GLOBAL_VARIABLE: "8be4df61-93ca-11d2-aa0d-00e098032b8c",          // gEfiGlobalVariableGuid
  IMAGE_SECURITY_DATABASE: "d719b2cb-3d3a-4596-a3bc-dad00e67656f",      // gEfiImageSecurityDatabaseGuid (db, dbx)
  HARDWARE_ERROR_VARIABLE: "414e6bdd-e47b-47cc-b244-bb61020cf516",      // gEfiHardwareErrorVariableGuid
  SHIM_LOCK: "605dab50-e046-4300-abb6-3dd810dd8b23",                    // shim SHIM_LOCK_GUID (protocol and MOK variables)
  SHIM_IMAGE_LOADER: "1f492041-fadb-4e59-9e57-7cafe73a55ab",            // shim SHIM_IMAGE_LOADER_GUID (shim 16+)
  EFI_CERT_X509: "a5c059a1-94e4-4aa7-87b5-ab155c2bf072",                // gEfiCertX509Guid
  EFI_CERT_SHA256: "c1c41626-504c-4092-aca9-41f936934328",              // gEfiCertSha256Guid
  EFI_CERT_SHA1: "826ca512-cf10-4ac9-b187-be01496631bd",                // gEfiCertSha1Guid
  EFI_CERT_RSA2048: "3c5766e8-269c-4e34-aa14-ed776e85b3b6",             // gEfiCertRsa2048Guid
  EFI_CERT_X509_SHA256: "3bd2a492-96c0-4079-b420-fcf98ef103ed",         // gEfiCertX509Sha256Guid
  EFI_CERT_X509_SHA384: "7076876e-80c2-4ee6-aad2-28b349a6865b",         // gEfiCertX509Sha384Guid
  EFI_CERT_X509_SHA512: "446dbf63-2502-4cda-bcfa-2465d2b0fe9d",         // gEfiCertX509Sha512Guid
  EFI_CERT_PKCS7: "4aafd29d-68df-49ee-8aa9-347d375665a7",               // gEfiCertPkcs7Guid
  EFI_CERT_TYPE_RSA2048_SHA256: "a7717414-c616-4977-9420-844712a735bf", // gEfiCertTypeRsa2048Sha256Guid
  // ---- image and device protocols (MdePkg.dec) ----
  LOADED_IMAGE: "5b1b31a1-9562-11d2-8e3f-00a0c969723b",                 // gEfiLoadedImageProtocolGuid
  LOADED_IMAGE_DEVICE_PATH: "bc62157e-3e33-4fec-9920-2d3b36d750df",     // gEfiLoadedImageDevicePathProtocolGuid
  DEVICE_PATH: "09576e91-6d3f-11d2-8e39-00a0c969723b",                  // gEfiDevicePathProtocolGuid
  DEVICE_PATH_TO_TEXT: "8b843e20-8132-4852-90cc-551a4e4a7f1c",          // gEfiDevicePathToTextProtocolGuid
  DEVICE_PATH_FROM_TEXT: "05c99a21-c70f-4ad2-8a5f-35df3343f51e",        // gEfiDevicePathFromTextProtocolGuid
  DEVICE_PATH_UTILITIES: "0379be4e-d706-437d-b037-edb82fb772a4",        // gEfiDevicePathUtilitiesProtocolGuid
  BLOCK_IO: "964e5b21-6459-11d2-8e39-00a0c969723b",                     // gEfiBlockIoProtocolGuid
  BLOCK_IO2: "a77b2472-e282-4e9f-a245-c2c0e27bbcc1",                    // gEfiBlockIo2ProtocolGuid
  DISK_IO: "ce345171-ba0b-11d2-8e4f-00a0c969723b",                      // gEfiDiskIoProtocolGuid
  DISK_IO2: "151c8eae-7f2c-472c-9e54-9828194f6a88",                     // gEfiDiskIo2ProtocolGuid
  DISK_INFO: "d432a67f-14dc-484b-b3bb-3f0291849327",                    // gEfiDiskInfoProtocolGuid
  EFI_PARTITION_INFO: "8cf2f62c-bc9b-4821-808d-ec9ec421a1a0",           // gEfiPartitionInfoProtocolGuid
  SCSI_IO: "932f47e6-2362-4002-803e-3cd54b138f85",                      // gEfiScsiIoProtocolGuid
  EXT_SCSI_PASS_THRU: "143b7632-b81b-4cb7-abd3-b625a5b9bffe",           // gEfiExtScsiPassThruProtocolGuid
  NVM_EXPRESS_PASS_THRU: "52c78312-8edc-4233-98f2-1a1aa5e388a5",        // gEfiNvmExpressPassThruProtocolGuid
  STORAGE_SECURITY_COMMAND: "c88b0b6d-0dfc-49a7-9cb4-49074b4c3a78",     // gEfiStorageSecurityCommandProtocolGuid
  SIMPLE_FILE_SYSTEM: "964e5b22-6459-11d2-8e39-00a0c969723b",           // gEfiSimpleFileSystemProtocolGuid
  FILE_INFO: "09576e92-6d3f-11d2-8e39-00a0c969723b",                    // gEfiFileInfoGuid
  FILE_SYSTEM_INFO: "09576e93-6d3f-11d2-8e39-00a0c969723b",             // gEfiFileSystemInfoGuid
  FILE_SYSTEM_VOLUME_LABEL: "db47d7d3-fe81-11d3-9a35-0090273fc14d",     // gEfiFileSystemVolumeLabelInfoIdGuid
  LOAD_FILE: "56ec3091-954c-11d2-8e3f-00a0c969723b",                    // gEfiLoadFileProtocolGuid
  LOAD_FILE2: "4006c0c1-fcb3-403e-996d-4a6c8724e06d",                   // gEfiLoadFile2ProtocolGuid
  LINUX_EFI_INITRD_MEDIA: "5568e427-68fc-4f3d-ac74-ca555231cc68",       // gLinuxEfiInitrdMediaGuid (also linux efi.h)
  PCI_IO: "4cf5b200-68b8-4ca5-9eec-b23e3f50029a",                       // gEfiPciIoProtocolGuid
  DRIVER_BINDING: "18a031ab-b443-4d1a-a5c0-0c09261e9f71",               // gEfiDriverBindingProtocolGuid
  COMPONENT_NAME: "107a772c-d5e1-11d4-9a46-0090273fc14d",               // gEfiComponentNameProtocolGuid
  COMPONENT_NAME2: "6a7a5cff-e8d9-4f70-bada-75ab3025ce14",              // gEfiComponentName2ProtocolGuid
  UNICODE_COLLATION: "1d85cd7f-f43d-11d2-9a0c-0090273fc14d",            // EFI_UNICODE_COLLATION_PROTOCOL_GUID (EFI 1.10; gnu-efi)
  UNICODE_COLLATION2: "a4c751fc-23ae-4c3e-92e9-4964cf63f349",           // gEfiUnicodeCollation2ProtocolGuid
  // ---- console ----
  SIMPLE_TEXT_INPUT: "387477c1-69c7-11d2-8e39-00a0c969723b",            // gEfiSimpleTextInProtocolGuid
  SIMPLE_TEXT_INPUT_EX: "dd9e7534-7762-4698-8c14-f58517a625aa",         // gEfiSimpleTextInputExProtocolGuid
  SIMPLE_TEXT_OUTPUT: "387477c2-69c7-11d2-8e39-00a0c969723b",           // gEfiSimpleTextOutProtocolGuid
  SIMPLE_POINTER: "31878c87-0b75-11d5-9a4f-0090273fc14d",               // gEfiSimplePointerProtocolGuid
  ABSOLUTE_POINTER: "8d59d32b-c655-4ae9-9b15-f25904992a43",             // gEfiAbsolutePointerProtocolGuid
  GRAPHICS_OUTPUT: "9042a9de-23dc-4a38-96fb-7aded080516a",              // gEfiGraphicsOutputProtocolGuid
  EDID_ACTIVE: "bd8c1056-9f36-44ec-92a8-a6337f817986",                  // gEfiEdidActiveProtocolGuid
  EDID_DISCOVERED: "1c0c34f6-d380-41fa-a049-8ad06c1a66aa",              // gEfiEdidDiscoveredProtocolGuid
  CONSOLE_CONTROL: "f42f7782-012e-4c12-9956-49f94304f721",              // EFI_CONSOLE_CONTROL_PROTOCOL_GUID (pre-UEFI, gnu-efi)
  SERIAL_IO: "bb25cf6f-f1d4-11d2-9a0c-0090273fc1fd",                    // gEfiSerialIoProtocolGuid
  PC_ANSI: "e0c14753-f9be-11d2-9a0c-0090273fc14d",                      // gEfiPcAnsiGuid
  VT_100: "dfa66065-b419-11d3-9a2d-0090273fc14d",                       // gEfiVT100Guid
  VT_100_PLUS: "7baec70b-57e0-4c76-8e87-2f9e28088343",                  // gEfiVT100PlusGuid
  VT_UTF8: "ad15a0d6-8bec-4acf-a073-d01de77e2d88",                      // gEfiVTUTF8Guid
  // ---- HII ----
  HII_DATABASE: "ef9fc172-a1b2-4693-b327-6d32fc416042",                 // gEfiHiiDatabaseProtocolGuid
  HII_STRING: "0fd96974-23aa-4cdc-b9cb-98d17750322a",                   // gEfiHiiStringProtocolGuid
  HII_FONT: "e9ca4775-8657-47fc-97e7-7ed65a084324",                     // gEfiHiiFontProtocolGuid
  HII_IMAGE: "31a6406a-6bdf-4e46-b2a2-ebaa89c40920",                    // gEfiHiiImageProtocolGuid
  HII_CONFIG_ROUTING: "587e72d7-cc50-4f79-8209-ca291fc1a10f",           // gEfiHiiConfigRoutingProtocolGuid
  // ---- misc protocols loaders look up ----
  RNG: "3152bca5-eade-433d-862e-c01cdc291f44",                          // gEfiRngProtocolGuid
  TCG: "f541796d-a62e-4954-a775-9584f61b9cdd",                          // gEfiTcgProtocolGuid
  TCG2: "607f766c-7455-42be-930b-e4d76db2720f",                         // gEfiTcg2ProtocolGuid
  CC_MEASUREMENT: "96751a3d-72f4-41a6-a794-ed5d0e67ae6b",               // gEfiCcMeasurementProtocolGuid
  SECURITY_ARCH: "a46423e3-4617-49f1-b9ff-d1bfa9115839",                // gEfiSecurityArchProtocolGuid
  SECURITY2_ARCH: "94ab2f58-1438-4ef1-9152-18941a3a0e68",               // gEfiSecurity2ArchProtocolGuid
  MEMORY_ATTRIBUTE: "f4560cf6-40ec-4b4a-a192-bf1d57d0b189",             // gEfiMemoryAttributeProtocolGuid
  HASH: "c5184932-dba5-46db-a5ba-cc0bda9c1435",                         // gEfiHashProtocolGuid
  HASH2: "55b1d734-c5e1-49db-9647-b16afb0e305b",                        // gEfiHash2ProtocolGuid
  TIMESTAMP: "afbfde41-2e6e-4262-ba65-62b9236e5495",                    // gEfiTimestampProtocolGuid
  DECOMPRESS: "d8117cfe-94a6-11d4-9a3a-0090273fc14d",                   // gEfiDecompressProtocolGuid
  EBC: "13ac6dd1-73d0-11d4-b06b-00aa00bd6de7",                          // gEfiEbcProtocolGuid
  SIMPLE_NETWORK: "a19832b9-ac25-11d3-9a2d-0090273fc14d",               // gEfiSimpleNetworkProtocolGuid
  PXE_BASE_CODE: "03c4e603-ac28-11d3-9a2d-0090273fc14d",                // gEfiPxeBaseCodeProtocolGuid
  FIRMWARE_MANAGEMENT: "86c77a67-0b97-4633-a187-49104d0685c7",          // gEfiFirmwareManagementProtocolGuid
  SHELL: "6302d008-7f9b-4f30-87ac-60c9fef5da4e",                        // gEfiShellProtocolGuid
  SHELL_PARAMETERS: "752f3136-4e16-4fdc-a22a-e5f46812f4ca",             // gEfiShellParametersProtocolGuid
  // ---- configuration tables ----
  ACPI_20_TABLE: "8868e871-e4f1-11d3-bc22-0080c73c8881",                // gEfiAcpi20TableGuid (= EDK2's gEfiAcpiTableGuid)
  ACPI_TABLE: "eb9d2d30-2d88-11d3-9a16-0090273fc14d",                   // ACPI_TABLE_GUID, ACPI 1.0 (gEfiAcpi10TableGuid)
  SMBIOS_TABLE: "eb9d2d31-2d88-11d3-9a16-0090273fc14d",                 // gEfiSmbiosTableGuid
  SMBIOS3_TABLE: "f2fd1544-9794-4a2c-992e-e5bbcf20e394",                // gEfiSmbios3TableGuid
  MEMORY_ATTRIBUTES_TABLE: "dcfa911d-26eb-469f-a220-38b7dc461220",      // gEfiMemoryAttributesTableGuid
  RT_PROPERTIES_TABLE: "eb66918a-7eef-402a-842e-931d21c38ae9",          // gEfiRtPropertiesTableGuid
  DEBUG_IMAGE_INFO_TABLE: "49152e77-1ada-4764-b7a2-7afefed95e8b",       // gEfiDebugImageInfoTableGuid
  SYSTEM_RESOURCE_TABLE: "b122a263-3661-4f68-9929-78f8b0d62180",        // gEfiSystemResourceTableGuid (ESRT)
  JSON_CONFIG_DATA_TABLE: "87367f87-1119-41ce-aaec-8be0111f558a",       // gEfiJsonConfigDataTableGuid
  FDT_TABLE: "b1b621d5-f19c-41a5-830b-d9152c69aae0",                    // gFdtTableGuid
  HOB_LIST: "7739f24c-93d7-11d4-9a3a-0090273fc14d",                     // gEfiHobListGuid
  TCG2_FINAL_EVENTS_TABLE: "1e2ed096-30e2-4254-bd89-863bbef82325",      // gEfiTcg2FinalEventsTableGuid (= LINUX_EFI_TPM_FINAL_LOG)
  LINUX_EFI_TPM_EVENT_LOG: "b7799cb0-eca2-4943-9667-1fae07b747fa",      // linux efi.h
  LINUX_EFI_MEMRESERVE_TABLE: "888eb0c6-8ede-4ff5-a8f0-9aee5cb977c2",   // linux efi.h
  LINUX_EFI_MOK_VARIABLE_TABLE: "c451ed2b-9694-45d3-baba-ed9f8988a389", // linux efi.h
  // ---- event groups ----
  EVENT_GROUP_EXIT_BOOT_SERVICES: "27abf055-b1b8-4c26-8048-748f37baa2df",     // gEfiEventExitBootServicesGuid
  EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE: "13fa7698-c831-49c7-87ea-8f43fcc25196", // gEfiEventVirtualAddressChangeGuid
  EVENT_GROUP_READY_TO_BOOT: "7ce88fb3-4bd7-4679-87a8-a8d8dee50d2b",          // gEfiEventReadyToBootGuid
  EVENT_GROUP_MEMORY_MAP_CHANGE: "78bee926-692f-48fd-9edb-01422ef0d7ab",      // gEfiEventMemoryMapChangeGuid
  // ---- Hyper-V (mu_msvm MsvmPkg/VmbusDxe/VmbusP.h and VmbusRoot.c gAllowedGuids; HYPERV.md) ----
  HV_VMBUS: "9b17e5a2-0891-42dd-b653-80b5c22809ba",                     // EFI_VMBUS_CHANNEL_DEVICE_PATH_GUID (VenHw node)
  HV_SCSI_CHANNEL_TYPE: "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f",         // storvsc channel InterfaceType
  HV_NETWORK_CHANNEL_TYPE: "f8615163-df3e-46c5-913f-f2d2f965ed0e",      // netvsc channel InterfaceType
  HV_VPCI_CHANNEL_TYPE: "44c4f61d-4444-4400-9d52-802e27ede19f",         // vpci channel InterfaceType (Azure NVMe sits behind it)
  HV_VIDEO_CHANNEL_TYPE: "da0a7802-e377-4aac-8e77-0558eb1073f8",        // synthetic video channel InterfaceType
  HV_KEYBOARD_CHANNEL_TYPE: "f912ad6d-2b17-48ea-bd65-f927a61c7684",     // synthetic keyboard channel InterfaceType
  HV_VMBFS_CHANNEL_TYPE: "c376c1c3-d276-48d2-90a9-c04748072c60",        // vmbfs (IMC) channel InterfaceType
} as const;

export type GuidName = keyof typeof GUID;

const BY_VALUE = new Map<string, GuidName>();
for (const [k, v] of Object.entries(GUID) as [GuidName, string][]) {
  if (!BY_VALUE.has(v)) BY_VALUE.set(v, k);
}

/** The constant name for a GUID, for reports ("LOADED_IMAGE"), or undefined when it is not one we name. */
export function guidName(text: string): string | undefined {
  return isGuidText(text) ? BY_VALUE.get(normGuid(text)) : undefined;
}
