// The UEFI variable store (SetVariable semantics table-driven from UEFI 2.10 8.2 and EDK2's Variable.c order of
// checks, GetNextVariableName, ExitBootServices, limits, JSON) and EFI_LOAD_OPTION parsing against a Boot0001
// laid out by hand from UEFI 2.10 3.1.3 the way Debian's grub-install has efibootmgr write it.
import { describe, expect, it } from "vitest";
import { ImageError } from "../images/errors.ts";
import { GUID } from "../firmware-stubs/uefi-guid.ts";
import { devicePathToText, filePath, hdGpt, hyperVScsiDisk, vendorMedia } from "../firmware-stubs/uefi-devpath.ts";
import {
  ATTR, LOAD_OPTION, MAX_VARIABLES, VariableStore, bootVarName, buildBootOrder, buildLoadOption, parseBootOrder,
  parseBootVarName, parseLoadOption, type Status,
} from "../firmware-stubs/uefi-nvram.ts";

const G = GUID.EFI_GLOBAL_VARIABLE, DB = GUID.IMAGE_SECURITY_DATABASE;
const VENDOR = "3a7b1d2e-5c4f-4e6a-9b8c-0d1e2f3a4b5c";
const hx = (s: string) => Buffer.from(s, "hex");

function code(fn: () => unknown): string {
  try { fn(); } catch (e) {
    if (e instanceof ImageError) return `${e.code}/${e.kind}: ${e.message}`;
    throw e;
  }
  return "no error";
}

/** A store as the firmware leaves it before the loader runs. */
function seeded(): VariableStore {
  const s = new VariableStore();
  s.put("Existing", VENDOR, 0x07, hx("01"));
  s.put("BsNv", VENDOR, 0x03, hx("02"));
  s.put("Volatile", VENDOR, 0x06, hx("03"));
  s.put("db", DB, 0x27, hx("a1a2"));
  s.put("SecureBoot", G, 0x06, hx("01"));
  s.setReadOnly("SecureBoot", G);
  return s;
}

describe("SetVariable", () => {
  // [what, name, guid, attributes, data, status, data afterwards (undefined = absent), attributes afterwards]
  const rows: [string, string, string, number, string, Status, string | undefined, number?][] = [
    ["creates a NV+BS+RT variable", "NewVar", VENDOR, 0x07, "aa", "SUCCESS", "aa", 0x07],
    ["refuses RT without BS", "NewVar", VENDOR, 0x05, "aa", "INVALID_PARAMETER", undefined],
    ["refuses NV alone", "NewVar", VENDOR, 0x01, "aa", "INVALID_PARAMETER", undefined],
    ["refuses a reserved attribute bit", "NewVar", VENDOR, 0x107, "aa", "INVALID_PARAMETER", undefined],
    ["refuses the deprecated AUTHENTICATED_WRITE_ACCESS", "NewVar", VENDOR, 0x17, "aa", "UNSUPPORTED", undefined],
    ["refuses a signed db update (no keys to check it)", "db", DB, 0x27, "b1b2", "SECURITY_VIOLATION", "a1a2"],
    ["refuses a signed dbx append", "dbx", DB, 0x67, "b1b2", "SECURITY_VIOLATION", undefined],
    ["refuses an unsigned delete of db", "db", DB, 0x00, "", "SECURITY_VIOLATION", "a1a2"],
    ["refuses rewriting db with other attributes", "db", DB, 0x07, "b1", "INVALID_PARAMETER", "a1a2"],
    ["refuses changing an existing variable's attributes", "Existing", VENDOR, 0x03, "02", "INVALID_PARAMETER", "01", 0x07],
    ["overwrites with the same attributes", "Existing", VENDOR, 0x07, "0203", "SUCCESS", "0203", 0x07],
    ["appends with APPEND_WRITE", "Existing", VENDOR, 0x47, "03", "SUCCESS", "0103", 0x07],
    ["appends nothing with APPEND_WRITE and size 0", "Existing", VENDOR, 0x47, "", "SUCCESS", "01", 0x07],
    ["deletes with size 0", "Existing", VENDOR, 0x07, "", "SUCCESS", undefined],
    ["deletes with no access attributes", "Existing", VENDOR, 0x00, "ff", "SUCCESS", undefined],
    ["deleting a missing variable is NOT_FOUND", "Missing", VENDOR, 0x07, "", "NOT_FOUND", undefined],
    ["APPEND_WRITE of nothing to a missing variable is a no-op", "Missing", VENDOR, 0x47, "", "SUCCESS", undefined],
    ["APPEND_WRITE creates a missing variable without the APPEND bit", "Missing", VENDOR, 0x47, "05", "SUCCESS", "05", 0x07],
    ["refuses SecureBoot (read-only)", "SecureBoot", G, 0x06, "00", "WRITE_PROTECTED", "01", 0x06],
    ["refuses deleting SecureBoot", "SecureBoot", G, 0x00, "", "WRITE_PROTECTED", "01", 0x06],
    ["refuses an empty name", "", VENDOR, 0x07, "aa", "INVALID_PARAMETER", undefined],
    ["accepts HwErrRec#### in the hardware error GUID", "HwErrRec0001", GUID.HARDWARE_ERROR_VARIABLE, 0x0f, "aa", "SUCCESS", "aa", 0x0f],
    ["refuses HARDWARE_ERROR_RECORD on another name", "Boot0001", G, 0x0f, "aa", "INVALID_PARAMETER", undefined],
    ["refuses a 64 KiB variable", "Big", VENDOR, 0x07, "00".repeat(65536), "INVALID_PARAMETER", undefined],
  ];
  for (const [what, name, guid, attrs, data, status, after, afterAttrs] of rows) {
    it(what, () => {
      const s = seeded();
      expect(s.set(name, guid, attrs, hx(data))).toBe(status);
      const v = name ? s.get(name, guid) : undefined;
      expect(v?.data.toString("hex")).toBe(after);
      if (afterAttrs !== undefined) expect(v?.attributes).toBe(afterAttrs);
      expect(s.writes.at(-1)).toMatchObject({ name, attributes: attrs, bytes: data.length / 2, status });
    });
  }

  it("records a finding when a signed update is refused, once per variable", () => {
    const s = seeded();
    s.set("dbx", DB, 0x67, hx("00"));
    s.set("dbx", DB, 0x67, hx("00"));
    expect(s.findings.map((f) => f.code)).toEqual(["NVRAM_AUTHENTICATED_WRITE_REFUSED"]);
    expect(s.findings[0].evidence).toMatchObject({ name: "dbx", guid: DB });
    expect(s.writes.map((w) => w.status)).toEqual(["SECURITY_VIOLATION", "SECURITY_VIOLATION"]);
  });

  it("normalises GUID case so 8BE4DF61-... and 8be4df61-... are one variable", () => {
    const s = new VariableStore();
    expect(s.set("Timeout", G.toUpperCase(), 0x07, hx("0500"))).toBe("SUCCESS");
    expect(s.get("Timeout", G)?.data.toString("hex")).toBe("0500");
    expect(s.set("Timeout", G, 0x07, hx("0000"))).toBe("SUCCESS");
    expect(s.list().length).toBe(1);
  });
});

describe("GetNextVariableName and ExitBootServices", () => {
  it("walks in insertion order, NOT_FOUND at the end, INVALID_PARAMETER for an unknown name", () => {
    const s = seeded();
    const names: string[] = [];
    let r = s.nextName("", "");
    while (r.status === "SUCCESS") { names.push(r.name!); r = s.nextName(r.name!, r.guid!); }
    expect(r.status).toBe("NOT_FOUND");
    expect(names).toEqual(["Existing", "BsNv", "Volatile", "db", "SecureBoot"]);
    expect(s.nextName("Nope", VENDOR).status).toBe("INVALID_PARAMETER");
    expect(s.nextName("Existing", G).status).toBe("INVALID_PARAMETER");   // right name, wrong GUID
    s.set("Existing", VENDOR, 0x07, hx("09"));                            // an update keeps the place
    s.set("BsNv", VENDOR, 0x03, hx(""));                                  // delete + re-create moves to the end
    s.set("BsNv", VENDOR, 0x03, hx("02"));
    expect(s.list().map((v) => v.name)).toEqual(["Existing", "Volatile", "db", "SecureBoot", "BsNv"]);
  });

  it("hides boot-service variables and refuses non-runtime writes after ExitBootServices", () => {
    const s = seeded();
    s.exitBootServices();
    expect(s.get("BsNv", VENDOR)).toBeUndefined();
    expect(s.get("Existing", VENDOR)?.data.toString("hex")).toBe("01");
    expect(s.set("BsNv", VENDOR, 0x03, hx("00"))).toBe("WRITE_PROTECTED");
    expect(s.set("Volatile", VENDOR, 0x06, hx("00"))).toBe("WRITE_PROTECTED");
    expect(s.set("NewRt", VENDOR, 0x06, hx("00"))).toBe("INVALID_PARAMETER");   // volatile cannot be created
    expect(s.set("NewBs", VENDOR, 0x03, hx("00"))).toBe("INVALID_PARAMETER");
    expect(s.set("NewNvRt", VENDOR, 0x07, hx("00"))).toBe("SUCCESS");
    expect(s.set("Existing", VENDOR, 0x07, hx("0a"))).toBe("SUCCESS");
    expect(s.nextName("BsNv", VENDOR).status).toBe("INVALID_PARAMETER");
    const seen: string[] = [];
    for (let r = s.nextName("", ""); r.status === "SUCCESS"; r = s.nextName(r.name!, r.guid!)) seen.push(r.name!);
    expect(seen).toEqual(["Existing", "Volatile", "db", "SecureBoot", "NewNvRt"]);
    s.reset();
    expect(s.runtime).toBe(false);
    expect(s.get("Volatile", VENDOR)).toBeUndefined();
    expect(s.get("BsNv", VENDOR)?.data.toString("hex")).toBe("02");
  });
});

describe("store limits", () => {
  it("refuses the 1025th variable with OUT_OF_RESOURCES", () => {
    const s = new VariableStore();
    for (let i = 0; i < MAX_VARIABLES; i++) expect(s.set(`V${i}`, VENDOR, 0x07, hx("00"))).toBe("SUCCESS");
    expect(s.set("OneMore", VENDOR, 0x07, hx("00"))).toBe("OUT_OF_RESOURCES");
    expect(s.set("V0", VENDOR, 0x07, hx("0102"))).toBe("SUCCESS");         // updates still work
  });

  it("refuses growing the store past 1 MiB and a variable past 64 KiB by appends", () => {
    const s = new VariableStore();
    const chunk = Buffer.alloc(65000);
    for (let i = 0; i < 16; i++) expect(s.set(`Big${i}`, VENDOR, 0x07, chunk)).toBe("SUCCESS");
    expect(s.set("Big16", VENDOR, 0x07, chunk)).toBe("OUT_OF_RESOURCES");
    expect(s.query().remaining).toBe(1024 * 1024 - 16 * 65000 - 10 * 10 - 6 * 12);   // names "Big0".."Big15" in UTF-16 with NUL
    expect(s.set("Big0", VENDOR, 0x47, Buffer.alloc(600))).toBe("INVALID_PARAMETER");
    expect(s.get("Big0", VENDOR)?.data.length).toBe(65000);
  });
});

describe("NVRAM JSON", () => {
  it("round-trips the non-volatile variables and clones independently", () => {
    const s = seeded();
    const json = JSON.parse(JSON.stringify(s));
    expect(json.variables.map((v: { name: string }) => v.name)).toEqual(["Existing", "BsNv", "db"]);
    expect(json.variables[2]).toEqual({ name: "db", guid: DB, attributes: 0x27, data: "a1a2" });
    const t = VariableStore.fromJSON(json);
    expect(t.get("db", DB)).toEqual({ attributes: 0x27, data: hx("a1a2") });
    const c = t.clone();
    c.set("Existing", VENDOR, 0x07, hx("ff"));
    expect(t.get("Existing", VENDOR)?.data.toString("hex")).toBe("01");
    expect(c.writes.length).toBe(1);
    expect(t.writes.length).toBe(0);
  });

  it("names the bad entry in its errors", () => {
    const ok = { name: "Boot0000", guid: G, attributes: 7, data: "0100" };
    expect(code(() => VariableStore.fromJSON([ok]))).toMatch(/^E_NVRAM_JSON\/usage: NVRAM JSON root/);
    expect(code(() => VariableStore.fromJSON({ variables: [ok, { ...ok, guid: "8be4df61" }] }))).toMatch(/variables\[1\]\.guid/);
    expect(code(() => VariableStore.fromJSON({ variables: [{ ...ok, attributes: 5 }] }))).toMatch(/variables\[0\]\.attributes: 0x5 for Boot0000/);
    expect(code(() => VariableStore.fromJSON({ variables: [{ ...ok, data: "abc" }] }))).toMatch(/variables\[0\]\.data/);
    expect(code(() => VariableStore.fromJSON({ variables: [{ ...ok, data: "" }] }))).toMatch(/variables\[0\]\.data/);
    expect(code(() => VariableStore.fromJSON({ variables: [{ ...ok, name: "" }] }))).toMatch(/variables\[0\]\.name/);
    expect(code(() => VariableStore.fromJSON({ variables: [ok, { ...ok, guid: G.toUpperCase() }] }))).toMatch(/appears twice/);
    expect(code(() => VariableStore.fromJSON({ variables: [{ ...ok, data: "00".repeat(70000) }] }))).toMatch(/at most 65536/);
  });
});

describe("EFI_LOAD_OPTION", () => {
  const ESP_GUID = "1c2a0a3e-5f4d-4b5e-9c1a-2b3c4d5e6f70";
  // Boot0001 as `efibootmgr -c -d /dev/sda -p 1 -L debian -l \EFI\debian\shimx64.efi` writes it (UEFI 2.10 3.1.3):
  // a short-form HD() path to the ESP (2048 + 1048576 sectors) and the loader's file path; no optional data.
  const BOOT0001 = hx([
    "01000000",                                         // Attributes = LOAD_OPTION_ACTIVE
    "6200",                                             // FilePathListLength = 42 + 52 + 4 = 98
    "640065006200690061006e000000",                     // Description L"debian"
    "04012a00",                                         // MEDIA_DEVICE_PATH / MEDIA_HARDDRIVE_DP, length 42
    "01000000",                                         //   PartitionNumber 1
    "0008000000000000", "0000100000000000",             //   PartitionStart 2048, PartitionSize 1048576
    "3e0a2a1c4d5f5e4b9c1a2b3c4d5e6f70",                 //   Signature = partition GUID (EFI_GUID byte order)
    "02", "02",                                         //   MBRType GPT, SignatureType GUID
    "04043400",                                         // MEDIA_DEVICE_PATH / MEDIA_FILEPATH_DP, length 52
    "5c00" + "450046004900" + "5c00" + "640065006200690061006e00" + "5c00"
      + "730068006900" + "6d00780036003400" + "2e00650066006900" + "0000",           // L"\EFI\debian\shimx64.efi"
    "7fff0400",                                         // End Entire
  ].join(""));

  it("parses a hand-laid Boot0001 and builds the same bytes", () => {
    const o = parseLoadOption(BOOT0001);
    expect(o.attributes).toBe(LOAD_OPTION.ACTIVE);
    expect(o.description).toBe("debian");
    expect(devicePathToText(o.filePathList)).toBe(`HD(1,GPT,${ESP_GUID},0x800,0x100000)/\\EFI\\debian\\shimx64.efi`);
    expect(o.optionalData.length).toBe(0);
    const built = buildLoadOption({ description: "debian", filePathList: [hdGpt(1, 2048, 1048576, ESP_GUID), filePath("\\EFI\\debian\\shimx64.efi")] });
    expect(built.toString("hex")).toBe(BOOT0001.toString("hex"));
    // As the guest (efibootmgr, shim's fallback) would store it, and the boot manager would read it back.
    const s = new VariableStore();
    expect(s.set(bootVarName(1), G, ATTR.NON_VOLATILE | ATTR.BOOTSERVICE_ACCESS | ATTR.RUNTIME_ACCESS, built)).toBe("SUCCESS");
    expect(s.set("BootOrder", G, 0x07, buildBootOrder([1, 0x000a]))).toBe("SUCCESS");
    expect(parseBootOrder(s.get("BootOrder", G)!.data).map((n) => bootVarName(n))).toEqual(["Boot0001", "Boot000A"]);
    expect(parseLoadOption(s.get("Boot0001", G)!.data).description).toBe("debian");
  });

  it("keeps further device paths and optional data (a full Hyper-V path plus an initrd path)", () => {
    const disk = hyperVScsiDisk({ instanceGuid: "f8b3781a-1e82-4818-a1c3-63d806ec15bb", target: 0, lun: 0 });
    const first = [...disk, hdGpt(1, 2048, 1048576, ESP_GUID), filePath("\\EFI\\ubuntu\\shimx64.efi")];
    const second = [vendorMedia(GUID.LINUX_EFI_INITRD_MEDIA)];
    const opt = buildLoadOption({ attributes: LOAD_OPTION.ACTIVE | LOAD_OPTION.HIDDEN, description: "ubuntu",
      filePathList: [first, second], optionalData: Buffer.from("\\grubx64.efi\0", "utf16le") });
    const o = parseLoadOption(opt);
    expect(o.filePaths.length).toBe(2);
    expect(o.filePathList).toEqual(first);
    expect(devicePathToText(o.filePaths[1])).toBe("VenMedia(5568e427-68fc-4f3d-ac74-ca555231cc68)");
    expect(o.optionalData.toString("utf16le")).toBe("\\grubx64.efi\0");
  });

  it("names boot variables in upper-case hex and reads BootOrder as EDK2 does", () => {
    expect(bootVarName(10)).toBe("Boot000A");
    expect(bootVarName(0xbeef, "Driver")).toBe("DriverBEEF");
    expect(parseBootVarName("Boot000A")).toBe(10);
    expect(parseBootVarName("Boot000a")).toBeUndefined();
    expect(parseBootVarName("Boot00001")).toBeUndefined();
    expect(parseBootOrder(hx("0100030007"))).toEqual([1, 3]);
  });

  it("refuses a load option whose description has no NUL", () => {
    expect(code(() => parseLoadOption(hx("01000000" + "0400" + "6400650062")))).toMatch(/^E_LOADOPTION_MALFORMED\/truncated/);
  });
  it("refuses a load option whose FilePathListLength runs past its end", () => {
    expect(code(() => parseLoadOption(hx("01000000" + "ff00" + "64000000" + "7fff0400")))).toMatch(/^E_LOADOPTION_MALFORMED\/truncated/);
  });
  it("refuses a load option with FilePathListLength 0", () => {
    expect(code(() => parseLoadOption(hx("01000000" + "0000" + "64000000")))).toMatch(/^E_LOADOPTION_MALFORMED\/corrupt/);
  });
  it("refuses a load option whose device path has a zero-length node", () => {
    expect(code(() => parseLoadOption(hx("01000000" + "0800" + "64000000" + "04040000" + "7fff0400")))).toMatch(/^E_LOADOPTION_MALFORMED\/corrupt.*length 0/);
  });
  it("refuses a load option whose FilePathList ends inside a device path", () => {
    const ok = BOOT0001.subarray(0);
    const cut = Buffer.from(ok); cut.writeUInt16LE(0x60, 4);   // 2 bytes short: the End node is cut
    expect(code(() => parseLoadOption(cut))).toMatch(/^E_LOADOPTION_MALFORMED\/(limit|truncated)/);
  });
  it("refuses a FilePathList of 5000 End nodes", () => {
    const many = Buffer.alloc(5000 * 4);
    for (let i = 0; i < many.length; i += 4) many.writeUInt32LE(0x0004ff7f, i);
    const head = hx("01000000" + "0000" + "0000"); head.writeUInt16LE(many.length, 4);
    expect(code(() => parseLoadOption(Buffer.concat([head, many])))).toMatch(/^E_LOADOPTION_MALFORMED\/limit/);
  });
});
