// Registry hives written by the real hivex tools (hivexregedit --merge), read back and compared
// with hivexget / hivexsh; big-data and ri lists added by documented surgery (and re-checked with
// hivexsh); then damaged in named ways.
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { sh, tmpdir } from "./helpers.ts";
import { ImageError } from "../images/errors.ts";
import { baseBlockChecksum, decodeValue, getValue, openHive, openKey } from "../images/regf.ts";

const BASE = 4096;
const NONE = 0xffffffff;

/**
 * The ONLY hand-built hive bytes in the test suite: hivex can edit a hive but cannot create one,
 * and no Debian package ships an empty hive. Per the regf format (base block 4096 bytes, one
 * 4096-byte hbin, a root nk cell and the sk cell hivex needs to inherit security from); every key
 * and value is then added by the real `hivexregedit --merge`.
 */
function emptyHive(): Buffer {
  const b = Buffer.alloc(8192);
  b.write("regf", 0, "latin1");
  b.writeUInt32LE(1, 4); b.writeUInt32LE(1, 8);               // primary / secondary sequence
  b.writeBigUInt64LE(0x01d9000000000000n, 12);                // last written
  b.writeUInt32LE(1, 20); b.writeUInt32LE(5, 24);             // version 1.5
  b.writeUInt32LE(0, 28); b.writeUInt32LE(1, 32);             // primary file, direct memory load
  b.writeUInt32LE(0x20, 36); b.writeUInt32LE(4096, 40); b.writeUInt32LE(1, 44);
  const h = BASE;
  b.write("hbin", h, "latin1"); b.writeUInt32LE(0, h + 4); b.writeUInt32LE(4096, h + 8);
  const nkSize = (4 + 76 + 4 + 7) & ~7;
  const nk = h + 0x20 + 4;
  b.writeInt32LE(-nkSize, nk - 4);
  b.write("nk", nk, "latin1"); b.writeUInt16LE(0x2c, nk + 2); // hive entry | no delete | ASCII name
  for (const o of [16, 28, 32, 40, 48]) b.writeUInt32LE(NONE, nk + o); // parent, lists, class
  const skOff = 0x20 + nkSize;
  b.writeUInt32LE(skOff, nk + 44);
  b.writeUInt16LE(4, nk + 72);
  b.write("ROOT", nk + 76, "latin1");
  const sd = Buffer.from([1, 0, 0x04, 0x80, ...Buffer.alloc(16)]);  // self-relative, no owner/DACL
  const skSize = (4 + 20 + sd.length + 7) & ~7;
  const sk = h + skOff;
  b.writeInt32LE(-skSize, sk);
  b.write("sk", sk + 4, "latin1");
  b.writeUInt32LE(skOff, sk + 8); b.writeUInt32LE(skOff, sk + 12); b.writeUInt32LE(1, sk + 16); b.writeUInt32LE(sd.length, sk + 20);
  sd.copy(b, sk + 24);
  const used = skOff + skSize;
  b.writeInt32LE(4096 - used, h + used);                      // the rest of the bin is one free cell
  b.writeUInt32LE(baseBlockChecksum(b), 508);
  return b;
}

const utf16hex = (s: string) => [...Buffer.from(s, "utf16le")].map((x) => x.toString(16).padStart(2, "0")).join(",");
const bigData = Buffer.from(Array.from({ length: 40000 }, (_, i) => (i * 7 + (i >> 8)) & 255));

function regFile(): string {
  const L = ["Windows Registry Editor Version 5.00", ""];
  L.push("[\\Select]", '"Current"=dword:00000001', '"Default"=dword:00000001', "");
  L.push("[\\ControlSet001]", "", "[\\ControlSet001\\Services]", "");
  L.push("[\\ControlSet001\\Services\\storvsc]", '"Start"=dword:00000000', '"Type"=dword:00000001',
    `"ImagePath"=hex(2):${utf16hex("System32\\drivers\\storvsc.sys\0")}`, '"Group"="SCSI miniport"',
    `"Owners"=hex(7):${utf16hex("storvsc.inf\0wstorvsc.inf\0\0")}`, '"Q"=hex(b):88,77,66,55,44,33,22,11',
    '"Bin"=hex:de,ad,be,ef,01', '@="default"', "");
  L.push("[\\ControlSet001\\Services\\vmbus]", '"Start"=dword:00000003', "");
  L.push("[\\ControlSet001\\Services\\Grüße日本]", `"Wert"=hex(1):${utf16hex("ä\0")}`, "");
  L.push("[\\ControlSet001\\Services\\Many]", `"Big"=hex:${[...bigData].map((x) => x.toString(16).padStart(2, "0")).join(",")}`, "");
  for (let i = 0; i < 300; i++) L.push(`[\\ControlSet001\\Services\\Many\\Sub${String(i).padStart(4, "0")}]`, `"N"=dword:${i.toString(16).padStart(8, "0")}`, "");
  return L.join("\r\n");
}

let dir: string;
let hivePath: string;
let hiveBytes: Buffer;

beforeAll(() => {
  dir = tmpdir("bootgate-regf-");
  hivePath = path.join(dir, "SYSTEM");
  fs.writeFileSync(hivePath, emptyHive());
  fs.writeFileSync(path.join(dir, "system.reg"), regFile());
  sh("hivexregedit", ["--merge", hivePath, path.join(dir, "system.reg")]);
  hiveBytes = fs.readFileSync(hivePath);
});

const codeOf = (f: () => unknown): string => {
  try { f(); } catch (e) { if (e instanceof ImageError) return e.code; throw e; }
  return "no error";
};
const cellData = (h: Buffer, off: number) => BASE + off + 4;
const withChecksum = (b: Buffer) => { b.writeUInt32LE(baseBlockChecksum(b), 508); return b; };

/** Parse hivexget's regedit-style listing of one key into name -> text. */
function hivexget(file: string, key: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of sh("hivexget", [file, key]).split("\n")) {
    const r = /^"((?:[^"\\]|\\.)*)"=(.*)$/.exec(line);
    if (r) m.set(r[1] === "@" ? "" : r[1], r[2]);
  }
  return m;
}

/** Append one hbin holding `cells` (data without size fields) and return their offsets. */
function appendHbin(h: Buffer, cells: Buffer[]): { hive: Buffer; offs: number[] } {
  const binOff = h.readUInt32LE(40);
  const need = 32 + cells.reduce((s, c) => s + ((c.length + 4 + 7) & ~7), 0);
  const size = Math.ceil((need + 8) / 4096) * 4096;
  const bin = Buffer.alloc(size);
  bin.write("hbin", 0, "latin1"); bin.writeUInt32LE(binOff, 4); bin.writeUInt32LE(size, 8);
  let p = 32;
  const offs: number[] = [];
  for (const c of cells) {
    const cs = (c.length + 4 + 7) & ~7;
    bin.writeInt32LE(-cs, p); c.copy(bin, p + 4); offs.push(binOff + p); p += cs;
  }
  bin.writeInt32LE(size - p, p);
  const out = Buffer.concat([h.subarray(0, BASE + binOff), bin]);
  out.writeUInt32LE(binOff + size, 40);
  return { hive: withChecksum(out), offs };
}

describe("regf reader on hivexregedit-made hives", () => {
  it("reads storvsc's values exactly as hivexget prints them", () => {
    const hive = openHive(hiveBytes, "SYSTEM");
    expect(hive.findings).toEqual([]);
    const k = openKey(hive, "ControlSet001\\Services\\storvsc")!;
    const ref = hivexget(hivePath, "\\ControlSet001\\Services\\storvsc");
    const vals = hive.values(k);
    expect(vals.map((v) => v.name).sort()).toEqual([...ref.keys()].sort());
    const byName = new Map(vals.map((v) => [v.name, decodeValue(v)]));
    expect(ref.get("Start")).toBe("dword:00000000");
    expect(byName.get("Start")).toBe(0);
    expect(byName.get("Type")).toBe(1);
    expect(ref.get("ImagePath")).toBe('str(2):"System32\\\\drivers\\\\storvsc.sys"');
    expect(byName.get("ImagePath")).toBe("System32\\drivers\\storvsc.sys");
    expect(ref.get("Group")).toBe('"SCSI miniport"');
    expect(byName.get("Group")).toBe("SCSI miniport");
    expect(byName.get("Owners")).toEqual(["storvsc.inf", "wstorvsc.inf"]);
    expect(byName.get("Q")).toBe(0x1122334455667788n);
    expect(ref.get("Bin")).toBe("hex(3):de,ad,be,ef,01");
    expect(byName.get("Bin")).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef, 1]));
    expect(byName.get("")).toBe("default");
    expect(hive.values(k).find((v) => v.name === "Q")!.typeName).toBe("REG_QWORD");
  });

  it("looks keys and values up case-insensitively, non-ASCII names included", () => {
    const hive = openHive(hiveBytes);
    expect(getValue(hive, "SELECT", "current")).toBe(1);
    expect(openKey(hive, "controlset001\\SERVICES\\StorVSC")!.name).toBe("storvsc");
    expect(getValue(hive, "ControlSet001\\Services\\vmbus", "Start")).toBe(3);
    expect(getValue(hive, "ControlSet001\\Services\\GRÜSSE日本", "wert")).toBeUndefined(); // ß upcases to SS: no match, like Windows
    expect(getValue(hive, "ControlSet001\\Services\\grüße日本", "WERT")).toBe("ä");
    expect(openKey(hive, "ControlSet001\\Services\\nonesuch")).toBeUndefined();
    expect(openKey(hive, "ControlSet001\\Services\\storvsc\\deeper")).toBeUndefined();
  });

  it("lists 300 subkeys in the order hivexsh shows, and a 40000-byte value intact", () => {
    const hive = openHive(hiveBytes);
    const many = openKey(hive, "ControlSet001\\Services\\Many")!;
    const ls = sh("hivexsh", [hivePath], { input: "cd ControlSet001\\Services\\Many\nls\n" }).trim().split("\n");
    expect(hive.subkeys(many).map((k) => k.name)).toEqual(ls);
    expect(ls.length).toBe(300);
    expect(getValue(hive, "ControlSet001\\Services\\Many\\Sub0299", "N")).toBe(299);
    expect(decodeValue(hive.value(many, "Big")!)).toEqual(bigData);
  });

  it("reads an ri index of two lh lists and a db big-data value (surgery re-checked by hivexsh)", () => {
    const hive = openHive(hiveBytes);
    const many = openKey(hive, "ControlSet001\\Services\\Many")!;
    const nk = cellData(hiveBytes, many.offset);
    const lhOff = hiveBytes.readUInt32LE(nk + 28);
    const lh = hiveBytes.subarray(cellData(hiveBytes, lhOff), cellData(hiveBytes, lhOff) + 4 + 300 * 8);
    expect(lh.toString("latin1", 0, 2)).toBe("lh");
    const half = (a: number, b: number) => {
      const c = Buffer.alloc(4 + (b - a) * 8);
      c.write("lh", 0, "latin1"); c.writeUInt16LE(b - a, 2); lh.copy(c, 4, 4 + a * 8, 4 + b * 8);
      return c;
    };
    const vkOff = hiveBytes.readUInt32LE(cellData(hiveBytes, hiveBytes.readUInt32LE(nk + 40)));
    const segs = [0, 1, 2].map((i) => bigData.subarray(i * 16344, Math.min(bigData.length, (i + 1) * 16344)));
    // first pass: the two lh halves and the three segments, then the lists that point at them
    let r = appendHbin(hiveBytes, [half(0, 150), half(150, 300), ...segs.map((s) => Buffer.from(s))]);
    const [lh1, lh2, s1, s2, s3] = r.offs;
    const ri = Buffer.alloc(12); ri.write("ri", 0, "latin1"); ri.writeUInt16LE(2, 2); ri.writeUInt32LE(lh1, 4); ri.writeUInt32LE(lh2, 8);
    const segList = Buffer.alloc(12); segList.writeUInt32LE(s1, 0); segList.writeUInt32LE(s2, 4); segList.writeUInt32LE(s3, 8);
    r = appendHbin(r.hive, [ri, segList]);
    const [riOff, listOff] = r.offs;
    const db = Buffer.alloc(8); db.write("db", 0, "latin1"); db.writeUInt16LE(3, 2); db.writeUInt32LE(listOff, 4);
    r = appendHbin(r.hive, [db]);
    const h2 = r.hive;
    h2.writeUInt32LE(riOff, nk + 28);
    h2.writeUInt32LE(r.offs[0], cellData(h2, vkOff) + 8);
    withChecksum(h2);
    const f2 = path.join(dir, "SYSTEM.ri-db");
    fs.writeFileSync(f2, h2);

    const hive2 = openHive(h2);
    const many2 = openKey(hive2, "ControlSet001\\Services\\Many")!;
    const names = hive2.subkeys(many2).map((k) => k.name);
    expect(names).toEqual(hive.subkeys(many).map((k) => k.name));
    expect(sh("hivexsh", [f2], { input: "cd ControlSet001\\Services\\Many\nls\n" }).trim().split("\n")).toEqual(names);
    expect(getValue(hive2, "ControlSet001\\Services\\Many\\sub0150", "N")).toBe(150);
    expect(decodeValue(hive2.value(many2, "Big")!)).toEqual(bigData);
    const viaHivex = sh("hivexget", [f2, "\\ControlSet001\\Services\\Many", "Big"]);
    expect(viaHivex.length).toBeGreaterThan(0);

    // hostile twin: the db record claims one segment for 40000 bytes
    const bad = Buffer.from(h2);
    bad.writeUInt16LE(1, cellData(bad, r.offs[0]) + 2);
    const hb = openHive(bad);
    expect(codeOf(() => hb.value(openKey(hb, "ControlSet001\\Services\\Many")!, "Big"))).toBe("E_REGF_DB");
  });

  it("reports a dirty hive (sequence numbers differ) and still reads it", () => {
    const b = Buffer.from(hiveBytes);
    b.writeUInt32LE(b.readUInt32LE(4) + 1, 4);
    const hive = openHive(withChecksum(b), "SYSTEM");
    expect(hive.dirty).toBe(true);
    expect(hive.findings.map((f) => f.code)).toEqual(["REGF_DIRTY"]);
    expect(hive.findings[0].remedy).toMatch(/shutdown/);
    expect(getValue(hive, "ControlSet001\\Services\\storvsc", "Start")).toBe(0);
  });

  it("reports a base block whose checksum is wrong", () => {
    const b = Buffer.from(hiveBytes);
    b.writeUInt32LE(b.readUInt32LE(508) ^ 0x10, 508);
    expect(openHive(b).findings.map((f) => f.code)).toEqual(["REGF_CHECKSUM"]);
  });
});

describe("regf reader on hostile hives", () => {
  const hive = () => Buffer.from(hiveBytes);
  const storvscNk = (): number => cellData(hiveBytes, openKey(openHive(hiveBytes), "ControlSet001\\Services\\storvsc")!.offset);
  const servicesNk = (): number => cellData(hiveBytes, openKey(openHive(hiveBytes), "ControlSet001\\Services")!.offset);

  it("refuses a file whose signature is not regf", () => {
    const b = hive(); b.write("regx", 0, "latin1");
    expect(codeOf(() => openHive(b))).toBe("E_REGF_SIGNATURE");
  });
  it("refuses a file cut inside its base block", () => {
    expect(codeOf(() => openHive(hiveBytes.subarray(0, 3000)))).toBe("E_REGF_TRUNCATED");
  });
  it("refuses a hive whose root cell offset lies past the hive bins", () => {
    const b = hive(); b.writeUInt32LE(0x7ffffff8, 36);
    expect(codeOf(() => openHive(withChecksum(b)))).toBe("E_REGF_CELL");
  });
  it("reports a hive cut short and refuses the keys that were cut off", () => {
    const b = hive().subarray(0, BASE + 8192);
    const many = openKey(openHive(hiveBytes), "ControlSet001\\Services\\Many")!;
    const h = openHive(b);
    expect(h.findings.map((f) => f.code)).toContain("REGF_TRUNCATED");
    expect(codeOf(() => h.subkeys(many))).toMatch(/^E_REGF_(CELL|NK)$/);
  });
  it("refuses an hbin whose signature is damaged", () => {
    const b = hive(); b.write("xbin", BASE + 4096, "latin1");
    expect(codeOf(() => openHive(b))).toBe("E_REGF_HBIN");
  });
  it("refuses a key whose subkey count is 2^32-1", () => {
    const b = hive(); b.writeUInt32LE(0xffffffff, servicesNk() + 20);
    const h = openHive(b);
    expect(codeOf(() => openKey(h, "ControlSet001\\Services\\storvsc"))).toBe("E_REGF_LIMIT");
  });
  it("refuses a subkey list whose ri entry points back at itself", () => {
    const b = hive();
    const listOff = b.readUInt32LE(servicesNk() + 28);
    const c = cellData(b, listOff);
    b.write("ri", c, "latin1"); b.writeUInt16LE(1, c + 2); b.writeUInt32LE(listOff, c + 4);
    b.writeUInt32LE(1, servicesNk() + 20);
    expect(codeOf(() => openKey(openHive(b), "ControlSet001\\Services\\storvsc"))).toBe("E_REGF_LOOP");
  });
  it("refuses a key that lists itself as its own subkey", () => {
    const b = hive();
    const nk = servicesNk();
    const c = cellData(b, b.readUInt32LE(nk + 28));
    const self = openKey(openHive(hiveBytes), "ControlSet001\\Services")!.offset;
    b.writeUInt32LE(self, c + 4);
    expect(codeOf(() => openKey(openHive(b), "ControlSet001\\Services\\x"))).toBe("E_REGF_LOOP");
  });
  it("refuses a value whose data size is 2^31-1", () => {
    const b = hive();
    const vk0 = b.readUInt32LE(cellData(b, b.readUInt32LE(storvscNk() + 40)));
    b.writeUInt32LE(0x7fffffff, cellData(b, vk0) + 4);
    const h = openHive(b);
    expect(codeOf(() => h.values(openKey(h, "ControlSet001\\Services\\storvsc")!))).toBe("E_REGF_LIMIT");
  });
  it("refuses a value list pointing at a free cell", () => {
    const b = hive();
    const list = cellData(b, b.readUInt32LE(storvscNk() + 40));
    b.writeUInt32LE(b.readUInt32LE(40) - 8, list);     // an offset inside the last bin's free space
    const h = openHive(b);
    expect(codeOf(() => h.values(openKey(h, "ControlSet001\\Services\\storvsc")!))).toMatch(/^E_REGF_(CELL|VK)$/);
  });
  it("refuses a key name length longer than its cell", () => {
    const b = hive(); b.writeUInt16LE(0xffff, storvscNk() + 72);
    expect(codeOf(() => openKey(openHive(b), "ControlSet001\\Services\\storvsc"))).toBe("E_REGF_NK");
  });
});
