// Facts from a Windows SYSTEM hive (Select -> ControlSetNNN, Services\<driver> Start/Type/Group/ImagePath,
// CriticalDeviceDatabase, DriverDatabase\DeviceIds, MountedDevices) and SOFTWARE hive (Windows NT\
// CurrentVersion), per Microsoft's "CurrentControlSet\Services Tree" and "MountedDevices" documentation,
// and which boot-start storage drivers each Hyper-V/Azure controller needs.
import { ImageError } from "./errors.ts";
import { decodeValue, openHive, openKey, type Hive, type RegData, type RegKey } from "./regf.ts";
import { guidText } from "./gpt.ts";
import { defineFindings, finding, type Finding } from "../emu/findings.ts";
import { MAX_CDDB_ENTRIES as MAX_CDDB } from "./limits.ts";

defineFindings([
  {
    code: "WINSYS_NO_CONTROLSET", severity: "error", stage: "root",
    title: "SYSTEM hive has no usable control set",
    message: "SYSTEM hive: {reason}",
    remedy: "restore the SYSTEM hive from C:\\Windows\\System32\\config\\RegBack or a backup of the source VM",
    explain: "Windows loads the control set named by HKLM\\SYSTEM\\Select\\Current (ControlSet00N). Without it the boot-start drivers are unknown and Windows cannot start.",
  },
]);

/** Services whose configuration decides whether Windows finds its boot disk on Hyper-V/Azure. */
export const STORAGE_SERVICES = ["storvsc", "vmbus", "storflt", "vmstorfl", "intelide", "pciide", "pciidex", "atapi", "ataport",
  "msahci", "storahci", "stornvme", "vhdmp", "volmgr", "partmgr", "disk", "mountmgr", "pci", "Ntfs"];

/** Service Start values (Services tree documentation). */
export const START_NAMES = ["boot", "system", "auto", "demand", "disabled"];

export interface ServiceFacts {
  name: string;
  present: boolean;
  start?: number;
  type?: number;
  group?: string;
  imagePath?: string;
  errorControl?: number;
  /** Windows 8+ Services\X\StartOverride values ("0" = 3 ...): overrides of Start for boot configurations. */
  startOverride?: Record<string, number>;
}

export interface MountedDevice {
  name: string;
  kind: "mbr" | "gpt" | "other";
  mbrSignature?: number;
  partitionOffset?: number;
  partitionGuid?: string;
  text?: string;
}

export interface WindowsSystemFacts {
  select: { current?: number; default?: number; lastKnownGood?: number; failed?: number };
  controlSet?: string;
  services: Record<string, ServiceFacts>;
  criticalDevices: { id: string; service?: string; classGuid?: string }[];
  driverDatabase: { present: boolean; deviceIds: Record<string, string[]> };
  mountedDevices: MountedDevice[];
  systemDrive?: MountedDevice;
  /** Lower-case file names present in System32\drivers, when the caller could list them. */
  driverFiles?: string[];
  findings: Finding[];
}

/** Critical device ids of the Hyper-V / Gen1 storage path (CriticalDeviceDatabase key names). */
export const HYPERV_CDDB_IDS = ["vmbus#{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}", "acpi#vmbus", "acpi#msft1000", "pci#ven_8086&dev_7111",
  "primary_ide_channel", "secondary_ide_channel", "pci#cc_0101", "pci#cc_010802"];
/** DriverDatabase\DeviceIds keys: storvsc's VMBus channel type, VMBus itself, PIIX4 IDE, NVMe class. */
export const HYPERV_DRIVERDB_IDS = ["VMBUS\\{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}", "ACPI\\VMBus", "ACPI\\MSFT1000",
  "PCI\\VEN_8086&DEV_7111", "PCI\\CC_010802"];

const num = (v: RegData | undefined) => (typeof v === "number" ? v : undefined);
const str = (v: RegData | undefined) => (typeof v === "string" ? v : undefined);

function val(hive: Hive, k: RegKey, name: string): RegData | undefined {
  const v = hive.value(k, name);
  if (!v) return undefined;
  try { return decodeValue(v); } catch (e) { if (e instanceof ImageError) return undefined; throw e; }
}

export function readWindowsSystem(file: Buffer | Hive, opts: { services?: string[]; driverFiles?: string[] } = {}): WindowsSystemFacts {
  const hive = Buffer.isBuffer(file) ? openHive(file, "SYSTEM") : file;
  const f: WindowsSystemFacts = {
    select: {}, services: {}, criticalDevices: [], driverDatabase: { present: false, deviceIds: {} }, mountedDevices: [],
    findings: [...hive.findings], ...(opts.driverFiles ? { driverFiles: opts.driverFiles.map((x) => x.toLowerCase()) } : {}),
  };
  const sel = openKey(hive, "Select");
  if (sel) {
    for (const [k, n] of [["current", "Current"], ["default", "Default"], ["lastKnownGood", "LastKnownGood"], ["failed", "Failed"]] as const) {
      const v = num(val(hive, sel, n));
      if (v !== undefined) f.select[k] = v;
    }
  }
  const csNum = f.select.current ?? f.select.default;
  let cs: RegKey | undefined;
  if (csNum === undefined) {
    cs = openKey(hive, "CurrentControlSet");      // a hive exported from a live system may carry the link target
    if (!cs) f.findings.push(finding("WINSYS_NO_CONTROLSET", { reason: "no Select\\Current value" }));
  } else {
    const name = `ControlSet${String(csNum).padStart(3, "0")}`;
    cs = openKey(hive, name);
    if (cs) f.controlSet = name;
    else f.findings.push(finding("WINSYS_NO_CONTROLSET", { reason: `Select\\Current is ${csNum} but ${name} does not exist` }));
  }
  if (cs) {
    const svc = openKey(hive, "Services", cs);
    for (const name of opts.services ?? STORAGE_SERVICES) f.services[name.toLowerCase()] = readService(hive, svc, name);
    const cddb = openKey(hive, "Control\\CriticalDeviceDatabase", cs);
    if (cddb) {
      for (const k of hive.subkeys(cddb).slice(0, MAX_CDDB)) {
        const service = str(val(hive, k, "Service")), classGuid = str(val(hive, k, "ClassGUID"));
        f.criticalDevices.push({ id: k.name.toLowerCase(), ...(service ? { service } : {}), ...(classGuid ? { classGuid } : {}) });
      }
    }
  }
  const ddb = openKey(hive, "DriverDatabase\\DeviceIds");
  if (ddb) {
    f.driverDatabase.present = true;
    for (const id of HYPERV_DRIVERDB_IDS) {
      const k = openKey(hive, id, ddb);
      if (k) f.driverDatabase.deviceIds[id] = hive.values(k).map((v) => v.name).filter((n) => n !== "");
    }
  }
  const md = openKey(hive, "MountedDevices");
  if (md) {
    for (const v of hive.values(md).slice(0, 4096)) f.mountedDevices.push(decodeMountedDevice(v.name, v.data));
    f.systemDrive = f.mountedDevices.find((m) => m.name.toUpperCase() === "\\DOSDEVICES\\C:");
  }
  return f;
}

function readService(hive: Hive, svc: RegKey | undefined, name: string): ServiceFacts {
  const k = svc ? hive.subkey(svc, name) : undefined;
  if (!k) return { name, present: false };
  const s: ServiceFacts = { name: k.name, present: true };
  const start = num(val(hive, k, "Start")), type = num(val(hive, k, "Type")), ec = num(val(hive, k, "ErrorControl"));
  const group = str(val(hive, k, "Group")), image = str(val(hive, k, "ImagePath"));
  if (start !== undefined) s.start = start;
  if (type !== undefined) s.type = type;
  if (ec !== undefined) s.errorControl = ec;
  if (group !== undefined) s.group = group;
  if (image !== undefined) s.imagePath = image;
  const so = hive.subkey(k, "StartOverride");
  if (so) {
    s.startOverride = {};
    for (const v of hive.values(so).slice(0, 64)) { const d = num(val(hive, so, v.name)); if (d !== undefined) s.startOverride[v.name] = d; }
  }
  return s;
}

/** MountedDevices data: 12 bytes = MBR signature + partition byte offset; "DMIO:ID:" + GPT partition GUID; else a device path. */
export function decodeMountedDevice(name: string, d: Buffer): MountedDevice {
  if (d.length === 12) return { name, kind: "mbr", mbrSignature: d.readUInt32LE(0), partitionOffset: Number(d.readBigUInt64LE(4)) };
  if (d.length === 24 && d.toString("latin1", 0, 8) === "DMIO:ID:") return { name, kind: "gpt", partitionGuid: guidText(d, 8) };
  return { name, kind: "other", text: d.toString("utf16le", 0, Math.min(d.length, 1024) & ~1).replace(/\0+$/, "") };
}

export interface WindowsVersion {
  productName?: string;
  editionId?: string;
  installationType?: string;
  currentVersion?: string;
  currentBuild?: string;
  currentBuildNumber?: string;
  displayVersion?: string;
  ubr?: number;
  majorVersion?: number;
  minorVersion?: number;
}

/** SOFTWARE hive: Microsoft\Windows NT\CurrentVersion. */
export function readWindowsVersion(file: Buffer | Hive): WindowsVersion {
  const hive = Buffer.isBuffer(file) ? openHive(file, "SOFTWARE") : file;
  const k = openKey(hive, "Microsoft\\Windows NT\\CurrentVersion");
  if (!k) return {};
  const out: WindowsVersion = {};
  const s = (n: string) => str(val(hive, k, n)), d = (n: string) => num(val(hive, k, n));
  const set = <K extends keyof WindowsVersion>(key: K, v: WindowsVersion[K] | undefined) => { if (v !== undefined) out[key] = v; };
  set("productName", s("ProductName")); set("editionId", s("EditionID")); set("installationType", s("InstallationType"));
  set("currentVersion", s("CurrentVersion")); set("currentBuild", s("CurrentBuild")); set("currentBuildNumber", s("CurrentBuildNumber"));
  set("displayVersion", s("DisplayVersion")); set("ubr", d("UBR"));
  set("majorVersion", d("CurrentMajorVersionNumber")); set("minorVersion", d("CurrentMinorVersionNumber"));
  return out;
}

export type WindowsTarget = "gen1-ide" | "gen2-scsi" | "azure-nvme";

export interface DriverRequirement {
  service: string;
  /** required: must be boot-start; oneOf: one of the group must be; recommended: Hyper-V integration, not needed to find the disk. */
  role: "required" | "oneOf" | "recommended";
  group?: string;
  present: boolean;
  start?: number;
  startName?: string;
  bootStart: boolean;
  imagePath?: string;
  /** The driver file Windows loads: ImagePath, or the default System32\drivers\<name>.sys. */
  sysPath: string;
  /** True when ImagePath names the file explicitly (otherwise the default is assumed). */
  sysPathKnown: boolean;
  /** Whether the file is in System32\drivers (only when the caller listed that directory). */
  fileFound?: boolean;
  ok: boolean;
  problem?: string;
}

/** Boot-critical storage drivers per controller (HYPERV.md failure table: STOP 0x7B). */
const REQUIREMENTS: Record<WindowsTarget, { service: string; role: DriverRequirement["role"]; group?: string }[]> = {
  "gen1-ide": [
    { service: "atapi", role: "required" },
    { service: "intelide", role: "oneOf", group: "PIIX4 IDE controller" }, { service: "pciide", role: "oneOf", group: "PIIX4 IDE controller" },
    { service: "vmbus", role: "recommended" }, { service: "storflt", role: "recommended" }, { service: "storvsc", role: "recommended" },
  ],
  "gen2-scsi": [
    { service: "vmbus", role: "required" }, { service: "storvsc", role: "required" },
    { service: "storflt", role: "oneOf", group: "Hyper-V storage filter" }, { service: "vmstorfl", role: "oneOf", group: "Hyper-V storage filter" },
  ],
  "azure-nvme": [{ service: "stornvme", role: "required" }, { service: "vmbus", role: "recommended" }],
};
const COMMON: { service: string; role: DriverRequirement["role"] }[] = [
  { service: "disk", role: "required" }, { service: "partmgr", role: "required" }, { service: "volmgr", role: "required" },
];

/** For each boot driver the target needs: Start, whether it is boot-start (Start=0), and its .sys file. */
export function storageDriverReadiness(facts: WindowsSystemFacts, target: WindowsTarget): { items: DriverRequirement[]; ready: boolean } {
  const reqs: { service: string; role: DriverRequirement["role"]; group?: string }[] = [...REQUIREMENTS[target], ...COMMON];
  const items = reqs.map((r): DriverRequirement => {
    const s = facts.services[r.service.toLowerCase()] ?? { name: r.service, present: false };
    const sysPath = s.imagePath ?? `System32\\drivers\\${r.service}.sys`;
    const file = sysPath.replace(/^.*\\/, "").toLowerCase();
    const fileFound = facts.driverFiles ? facts.driverFiles.includes(file) : undefined;
    const bootStart = s.present && s.start === 0;
    const overridden = s.startOverride && Object.values(s.startOverride).some((v) => v !== 0);
    let problem: string | undefined;
    if (!s.present) problem = `service ${r.service} does not exist in ${facts.controlSet ?? "the control set"}`;
    else if (s.start === undefined) problem = `${r.service} has no Start value`;
    else if (!bootStart) problem = `${r.service} Start=${s.start} (${START_NAMES[s.start] ?? "invalid"}), not 0 (boot)`;
    else if (overridden) problem = `${r.service} Start=0 but StartOverride sets ${JSON.stringify(s.startOverride)}`;
    else if (fileFound === false) problem = `${sysPath} is missing from System32\\drivers`;
    return {
      service: r.service, role: r.role, ...(r.group ? { group: r.group } : {}), present: s.present,
      ...(s.start !== undefined ? { start: s.start, startName: START_NAMES[s.start] ?? "invalid" } : {}),
      bootStart, ...(s.imagePath ? { imagePath: s.imagePath } : {}), sysPath, sysPathKnown: s.imagePath !== undefined,
      ...(fileFound !== undefined ? { fileFound } : {}), ok: problem === undefined, ...(problem ? { problem } : {}),
    };
  });
  const groups = new Map<string, boolean>();
  for (const i of items) if (i.role === "oneOf") groups.set(i.group!, (groups.get(i.group!) ?? false) || i.ok);
  const ready = items.every((i) => i.role !== "required" || i.ok) && [...groups.values()].every(Boolean);
  return { items, ready };
}
