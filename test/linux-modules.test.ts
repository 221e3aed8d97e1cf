// Kernel module metadata: the real Debian 6.1 kernel's modules.dep (written by depmod), modules.builtin,
// modules.builtin.modinfo, modules.alias and /boot/config-*, cross-checked against kmod's modprobe.
import { describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  aliasMatches, configValue, emptyModprobeConfig, moduleClosure, moduleKernelVersion, modulesForAlias, normalizeModuleName,
  parseKernelConfig, parseModprobeConf, parseModulesAlias, parseModulesBuiltin, parseModulesBuiltinModinfo, parseModulesDep,
} from "../images/linux-modules.ts";
import { ImageError } from "../images/errors.ts";
import { ROOT, sh, tmpdir } from "./helpers.ts";

/** The linux-image package the fixture builder (scripts/build-fixtures-gen1.sh) extracted and ran depmod on. */
function debianKernel(): { root: string; ver: string; mods: string } | undefined {
  const x = path.join(ROOT, ".cache/debs/x");
  if (!fs.existsSync(x)) return undefined;
  for (const d of fs.readdirSync(x).filter((n) => n.startsWith("linux-image-")).sort().reverse()) {
    const root = path.join(x, d);
    const modsDir = path.join(root, "lib/modules");
    if (!fs.existsSync(modsDir)) continue;
    for (const ver of fs.readdirSync(modsDir)) {
      const mods = path.join(modsDir, ver);
      if (["modules.dep", "modules.builtin", "modules.alias"].every((f) => fs.existsSync(path.join(mods, f)))
        && fs.existsSync(path.join(root, "boot", `config-${ver}`))) return { root, ver, mods };
    }
  }
  return undefined;
}

const K = debianKernel();
const NO_KERNEL = "no extracted linux-image-6.1.*-amd64 with modules.dep under .cache/debs/x (scripts/build-fixtures-gen1.sh builds it)";

/** modprobe's own answer: the module files `modprobe --show-depends` would insmod, as names, in order. */
function showDepends(mod: string): string[] {
  const out = sh("modprobe", ["-d", K!.root, "-S", K!.ver, "--show-depends", mod]);
  return out.split("\n").filter((l) => l.startsWith("insmod ")).map((l) => normalizeModuleName(l.split(/\s+/)[1]));
}

describe("real Debian kernel module metadata", () => {
  it.skipIf(!K)(`modules.dep closures match modprobe --show-depends (${K ? K.ver : NO_KERNEL})`, () => {
    const deps = parseModulesDep(fs.readFileSync(path.join(K!.mods, "modules.dep")));
    const lines = fs.readFileSync(path.join(K!.mods, "modules.dep"), "utf8").split("\n").filter(Boolean).length;
    expect(deps.size).toBe(lines);
    const soft = fs.existsSync(path.join(K!.mods, "modules.softdep"))
      ? parseModprobeConf(fs.readFileSync(path.join(K!.mods, "modules.softdep")), "modules.softdep").softdeps : new Map<string, string>();
    expect(deps.get("hv_storvsc")!.path).toBe("kernel/drivers/scsi/hv_storvsc.ko");
    const aliases = parseModulesAlias(fs.readFileSync(path.join(K!.mods, "modules.alias")));
    for (const mod of ["hv_storvsc", "ata_piix", "nvme", "vmw_pvscsi", "ext4", "xfs", "sd_mod"]) {
      const ours = moduleClosure(mod, deps, { softdeps: soft, aliases });
      expect(new Set(ours), mod).toEqual(new Set(showDepends(mod)));
      expect(moduleClosure(mod, deps).at(-1)).toBe(mod);
      // a valid load order: every module's dependencies come before it
      ours.forEach((m, i) => { for (const d of deps.get(m)?.deps ?? []) expect(ours.indexOf(d), `${d} before ${m}`).toBeLessThan(i); });
    }
    expect(moduleClosure("hv_storvsc", deps)).toContain("hv_vmbus");
    expect(moduleClosure("nvme", deps)).toContain("nvme_core"); // file nvme-core.ko
  });

  it.skipIf(!K)("modules.builtin and modules.builtin.modinfo agree", () => {
    const builtin = parseModulesBuiltin(fs.readFileSync(path.join(K!.mods, "modules.builtin")));
    const lines = fs.readFileSync(path.join(K!.mods, "modules.builtin"), "utf8").split("\n").filter(Boolean).length;
    expect(builtin.size).toBe(lines);
    expect(builtin.has("amd_uncore")).toBe(true); // amd-uncore.ko, normalised
    expect(builtin.has("hv_storvsc")).toBe(false);
    const modinfo = parseModulesBuiltinModinfo(fs.readFileSync(path.join(K!.mods, "modules.builtin.modinfo")));
    expect(modinfo.get("amd_uncore")!.get("license")).toEqual(["GPL v2"]);
    for (const m of builtin) expect(modinfo.has(m), m).toBe(true);
  });

  it.skipIf(!K)("modules.alias finds the drivers for Hyper-V and PIIX devices", () => {
    const aliases = parseModulesAlias(fs.readFileSync(path.join(K!.mods, "modules.alias")));
    expect(aliases.length).toBeGreaterThan(10_000);
    // Hyper-V synthetic SCSI controller (VMBus class ba6163d9-04a1-4d29-b605-72e2ffb1dc7f)
    expect(modulesForAlias(aliases, "vmbus:d96361baa104294db60572e2ffb1dc7f")).toEqual(["hv_storvsc"]);
    // Intel 82371AB/EB/MB PIIX4 IDE (the Hyper-V Gen1 IDE controller)
    expect(modulesForAlias(aliases, "pci:v00008086d00007111sv00001414sd00000000bc01sc01i80")).toContain("ata_piix");
    // Microsoft Hyper-V VMBus on ACPI
    expect(modulesForAlias(aliases, "acpi*:VMBUS:*")).toBeDefined();
  });

  it.skipIf(!K)("/boot/config-* reads =y, =m, strings and 'is not set'", () => {
    const cfg = parseKernelConfig(fs.readFileSync(path.join(K!.root, "boot", `config-${K!.ver}`)));
    expect(configValue(cfg, "CONFIG_HYPERV_STORAGE")).toBe("m");
    expect(configValue(cfg, "ATA_PIIX")).toBe("m");
    expect(configValue(cfg, "BLK_DEV_NVME")).toBe("m");
    expect(configValue(cfg, "RD_ZSTD")).toBe("y");
    expect(configValue(cfg, "LOCALVERSION")).toBe("");
    expect(configValue(cfg, "NO_SUCH_SYMBOL_AT_ALL")).toBe("n");
    const notSet = fs.readFileSync(path.join(K!.root, "boot", `config-${K!.ver}`), "utf8").match(/^# CONFIG_(\w+) is not set/m)![1];
    expect(cfg.get(notSet)).toBe("n");
  });
});

describe("modprobe.d", () => {
  const CONF = [
    "# written by a VMware tools installer",
    "blacklist hv-vmbus",
    "install hv_storvsc /bin/false",
    "install floppy /bin/true",
    "install ata_generic /usr/bin/false",
    "install nvme /sbin/modprobe --ignore-install nvme && echo loaded",
    "options ata_piix foo=1 \\",
    " bar=2",
    "alias mydisk hv_storvsc",
    "softdep ext4 pre: crc32c",
    "",
  ].join("\n");

  it("parses blacklist, install /bin/false|true, options with continuation, alias and softdep", () => {
    const c = parseModprobeConf(CONF, "etc/modprobe.d/vmware.conf");
    expect([...c.blacklist]).toEqual(["hv_vmbus"]);
    expect([...c.disabled].sort()).toEqual(["ata_generic", "floppy", "hv_storvsc"]);
    expect(c.install.get("nvme")).toBe("/sbin/modprobe --ignore-install nvme && echo loaded");
    expect(c.options.get("ata_piix")).toEqual(["foo=1", "bar=2"]);
    expect(c.aliases).toEqual([{ pattern: "mydisk", module: "hv_storvsc" }]);
    expect(c.softdeps.get("ext4")).toBe("pre: crc32c");
    expect(c.sources[0]).toBe("etc/modprobe.d/vmware.conf:2 blacklist hv-vmbus");
  });

  it("agrees with modprobe --showconfig on the same file", () => {
    const d = tmpdir("bootgate-modprobe-");
    fs.mkdirSync(path.join(d, "conf"));
    fs.writeFileSync(path.join(d, "conf", "vmware.conf"), CONF);
    fs.mkdirSync(path.join(d, "lib/modules/0.0.0"), { recursive: true });
    const shown = sh("modprobe", ["-d", d, "-S", "0.0.0", "-C", path.join(d, "conf"), "--showconfig"]).split("\n");
    const c = parseModprobeConf(CONF, "vmware.conf");
    for (const m of c.blacklist) expect(shown).toContain(`blacklist ${m}`);
    for (const [m, cmd] of c.install) expect(shown).toContain(`install ${m} ${cmd}`);
    expect(shown.some((l) => /^options ata_piix foo=1\s+bar=2$/.test(l))).toBe(true);
    expect(shown).toContain("alias mydisk hv_storvsc");
  });

  it("a later file's install line overrides an earlier one", () => {
    const c = emptyModprobeConfig();
    parseModprobeConf("install hv_storvsc /bin/false\n", "a.conf", c);
    parseModprobeConf("install hv_storvsc /sbin/modprobe --ignore-install hv_storvsc\n", "b.conf", c);
    expect(c.disabled.has("hv_storvsc")).toBe(false);
  });
});

describe("names and helpers", () => {
  it("normalises module names and paths", () => {
    expect(normalizeModuleName("kernel/drivers/nvme/host/nvme-core.ko.zst")).toBe("nvme_core");
    expect(normalizeModuleName("hv-storvsc")).toBe("hv_storvsc");
    expect(normalizeModuleName("ata_piix.ko.xz")).toBe("ata_piix");
    expect(moduleKernelVersion("usr/lib/modules/5.14.0-427.el9.x86_64/kernel/x.ko")).toBe("5.14.0-427.el9.x86_64");
    expect(moduleKernelVersion("lib/modules/6.1.0-56-amd64/modules.dep")).toBe("6.1.0-56-amd64");
    expect(moduleKernelVersion("etc/modules")).toBeUndefined();
  });

  it("matches fnmatch alias patterns", () => {
    expect(aliasMatches("pci:v00008086d00007111sv*sd*bc*sc*i*", "pci:v00008086d00007111sv00001414sd00000000bc01sc01i80")).toBe(true);
    expect(aliasMatches("pci:v0000808[0-6]d*", "pci:v00008086d1")).toBe(true);
    expect(aliasMatches("pci:v0000808[!6]d*", "pci:v00008086d1")).toBe(false);
    expect(aliasMatches("scsi:t-0x0?*", "scsi:t-0x00")).toBe(true);
    expect(aliasMatches("a.b", "axb")).toBe(false);
  });

  it("moduleClosure survives a dependency cycle in a hostile modules.dep", () => {
    const deps = parseModulesDep("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n");
    expect(moduleClosure("a", deps).sort()).toEqual(["a", "b", "c"]);
  });

  it("refuses a modules.dep larger than the text limit", () => {
    const huge = new Uint8Array(65 * 1024 * 1024);
    expect(() => parseModulesDep(huge)).toThrow(ImageError);
    try { parseModulesDep(huge); } catch (e) { expect((e as ImageError).code).toBe("E_MODULES_TEXT"); }
  });
});
