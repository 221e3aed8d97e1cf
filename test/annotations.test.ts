// GitHub Actions annotations (GITHUB_ACTIONS=true): the workflow-command escaping rules, and the lines `check`
// prints for a failing fixture (on stdout, or on stderr when stdout carries --json -).
import { beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { cli, tmpdir } from "./helpers.ts";
import { GEN1_DIR } from "./gen1-fixtures.ts";
import { annotation, escapeData, escapeProperty } from "../emu/annotations.ts";

const GHA = { GITHUB_ACTIONS: "true" };
const commands = (s: string) => s.split("\n").filter((l) => l.startsWith("::"));

describe("workflow-command escaping", () => {
  it("data escapes %, CR and LF; properties also : and ,", () => {
    expect(escapeData("100% done\r\nnext: a,b")).toBe("100%25 done%0D%0Anext: a,b");
    expect(escapeProperty("C:\\disks\\a,b%.vhd\n")).toBe("C%3A\\disks\\a%2Cb%25.vhd%0A");
  });
  it("a message from the image that tries to forge a second command stays on one line", () => {
    const line = annotation("error", { file: "x.vhd", title: "GEN1_BOOT_MESSAGE" }, "text\n::add-mask::secret\r\n::error::forged");
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toBe("::error file=x.vhd,title=GEN1_BOOT_MESSAGE::text%0A::add-mask::secret%0D%0A::error::forged");
  });
});

describe("check under GitHub Actions", () => {
  let dir: string, img: string;
  beforeAll(() => {
    dir = tmpdir("bootgate-gha-");
    // A path with the property delimiters ',' and ':' in it.
    img = path.join(dir, "disk,1:a.img");
    fs.symlinkSync(path.join(GEN1_DIR, "no-55aa.img"), img);
  });
  it("prints ::error and ::warning lines per finding, with file and title escaped, after the summary", async () => {
    const r = await cli(["check", img, "--gen", "1"], { env: GHA });
    expect(r.status).toBe(1);
    const out = r.stdout.toString();
    expect(out).toMatch(/^disk,1:a\.img: raw, 64.0 MiB/);   // the human summary is still there
    const cmds = commands(out);
    const file = `file=${dir.replace(/:/g, "%3A").replace(/,/g, "%2C")}/disk%2C1%3Aa.img`;
    expect(cmds).toContain(`::error ${file},title=AZURE_NOT_FIXED_VHD::Azure needs a fixed VHD; this image is raw%0AFix: qemu-img convert -O vpc -o subformat=fixed,force_size=on disk,1:a.img disk-fixed.vhd (or in PowerShell: Convert-VHD -Path disk,1:a.img -DestinationPath disk-fixed.vhd -VHDType Fixed)`);
    expect(cmds.find((l) => l.startsWith(`::warning ${file},title=PART_NONE::`))).toBeDefined();
    const boot = cmds.find((l) => l.startsWith(`::error ${file},title=GEN1_NO_BOOT_DEVICE::Generation 1: The Gen1 BIOS found no bootable device`));
    expect(boot).toMatch(/%0AFix: Write a boot sector/);
    // Each finding once; info findings are not annotated.
    expect(new Set(cmds).size).toBe(cmds.length);
    expect(cmds).toHaveLength(3);
  });
  it("with --json - the annotations go to stderr and stdout stays pure JSON", async () => {
    const r = await cli(["check", img, "--gen", "1", "--json", "-"], { env: GHA });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout.toString()).exitCode).toBe(1);
    expect(commands(r.stderr)).toHaveLength(3);
  });
  it("prints nothing of the kind without GITHUB_ACTIONS=true", async () => {
    const r = await cli(["check", img, "--gen", "1"], { env: { GITHUB_ACTIONS: "" } });
    expect(commands(r.stdout.toString())).toEqual([]);
    expect(commands(r.stderr)).toEqual([]);
  });
});
