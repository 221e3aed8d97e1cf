// How a Gen2 run ended, in findings: the boot manager's attempts (HYPERV.md failure lines), the loaders' dead ends,
// the hand-off, and which Secure Boot settings accept the chain. Sets the stage reached and the verdict.
import { finding, type Finding } from "./findings.ts";
import type { Stop } from "./stop.ts";
import type { Handoff } from "./linux-handoff.ts";
import type { Layout } from "../images/layout.ts";
import type { Gen2Firmware } from "../firmware-stubs/gen2-firmware.ts";
import { REMOVABLE_PATH } from "../firmware-stubs/uefi-bootmgr.ts";
import type { SbVerdict, SecureBootMode, SecureBootTemplate } from "../firmware-stubs/secureboot.ts";
import type { Gen2ChainEntry, Gen2Image, Gen2Stage } from "./gen2.ts";

export interface ClassifyInput {
  fw: Gen2Firmware;
  stop: Stop;
  handoff: Handoff | undefined;
  findings: Finding[];
  chain: Gen2ChainEntry[];
  screen: string[];
  layout: Layout;
  verdicts: Map<string, SbVerdict>;
  mode: SecureBootMode;
  template: SecureBootTemplate;
  images: Gen2Image[];
}

const MODE_TEXT: Record<SecureBootMode, string> = { "off": "Secure Boot off", "windows": "the Microsoft Windows template",
  "uefi-ca": "the Microsoft UEFI Certificate Authority template", "trusted-launch": "Azure Trusted Launch" };

/** Loaders under \EFI\<vendor>\ on the ESPs (what the old VM's NVRAM pointed at). */
function otherLoaders(fw: Gen2Firmware): string[] {
  const out: string[] = [];
  for (const v of fw.sfs.volumes) {
    const efi = v.fs.lookup(v.fs.root(), "EFI");
    if (!efi) continue;
    for (const dir of v.fs.readdir(efi).slice(0, 32)) {
      if (dir === "." || dir === ".." || dir.toUpperCase() === "BOOT") continue;
      const d = v.fs.lookup(efi, dir);
      if (!d || v.fs.stat(d).type !== "dir") continue;
      for (const f of v.fs.readdir(d).slice(0, 64)) if (/\.efi$/i.test(f)) out.push(`\\EFI\\${dir}\\${f}`);
    }
  }
  return out.slice(0, 16);
}

export function classifyGen2(i: ClassifyInput): { reached: Gen2Stage; verdict: "fails" | "inconclusive" } {
  const { fw, stop, handoff, findings, chain, screen } = i;
  const text = fw.console.transcript.replace(/\f/g, "\n");
  const tail = text.trim() ? `; console: ${JSON.stringify(text.trim().slice(-300))}` : "";
  const ev = { screen: screen.filter((l) => l.trim()), stop };
  const grubErrors = () => {
    for (const e of [...new Set(text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.startsWith("error: ")))].slice(0, 4)) {
      findings.push(finding("GEN2_GRUB_ERROR", { error: e.slice(7) }, { line: e }));
    }
  };
  secureBootChain(i);
  const unsupported = [...fw.core.unsupportedCalls.entries()];
  if (unsupported.length) {
    findings.push(finding("GEN2_UNSUPPORTED_SERVICE", { count: unsupported.reduce((s, [, n]) => s + n, 0),
      services: unsupported.slice(0, 8).map(([k, n]) => `${k} (${n})`).join(", ") }, { services: Object.fromEntries(unsupported) }));
  }
  for (const a of fw.bootmgr.attempts) {
    if (a.outcome !== "started") {
      chain.push({ stage: a.outcome === "returned" ? "bootloader" : "firmware", what: `boot manager, ${a.device}${a.file ? ` (${a.file})` : ""}: ${a.message}`,
        evidence: { option: a.option, outcome: a.outcome, ...(a.status ? { status: a.status } : {}), ...(a.why ? { why: a.why } : {}) } });
    }
    if (a.option.startsWith("Boot") && a.outcome !== "started" && a.outcome !== "returned") {
      findings.push(finding("GEN2_BOOT_ENTRY_NOT_FOUND", { option: a.device, message: a.message }, { ...a }));
    }
  }
  switch (stop.reason) {
    case "handoff": {
      const caller = [...fw.images.loadOrder].reverse().find((x) => x.started);
      if (handoff) {
        const loader = fw.images.loadOrder.find((x) => x.started && !x.linux && /grub/i.test(x.filePath ?? ""))?.filePath
          ?? (handoff.protocol === "efi-stub" ? "the firmware" : "the boot loader");
        findings.push(finding("GEN2_LINUX_HANDOFF", { loader, version: handoff.kernelVersion?.split(" ")[0] ?? "(unknown version)",
          protocol: handoff.protocol === "efi-stub" ? "EFI stub via LoadImage/StartImage" : handoff.protocol === "efi-handover" ? "EFI handover protocol"
            : "64-bit boot protocol, after the loader's own ExitBootServices", cmdline: handoff.cmdline ?? "(none)" }, { handoff }));
        chain.push({ stage: "kernel", what: `Linux ${handoff.kernelVersion ?? "(version unknown)"} called ExitBootServices (${handoff.protocol})`,
          evidence: { cmdline: handoff.cmdline, initrd: handoff.initrd, loader: handoff.loaderType, kernelLoadedFrom: handoff.kernelLoadedFrom, initrdLoadedFrom: handoff.initrdLoadedFrom } });
      } else {
        findings.push(finding("GEN2_OS_LOADER_HANDOFF", { image: caller?.filePath ?? "an OS loader" }, { stop }));
        chain.push({ stage: "kernel", what: `${caller?.filePath ?? "an OS loader"} called ExitBootServices`, evidence: {} });
      }
      return { reached: "kernel", verdict: "inconclusive" };
    }
    case "no-boot-device": {
      const att = fw.bootmgr.attempts;
      const returned = att.filter((a) => a.outcome === "returned");
      if (returned.length) {
        grubErrors();
        const a = returned[returned.length - 1];
        findings.push(finding("GEN2_LOADER_RETURNED", { file: a.file ?? a.device, status: a.status ?? "", text: tail }, { ...ev, attempt: a }));
        return { reached: "bootloader", verdict: "fails" };
      }
      if (att.some((a) => a.outcome === "denied")) return { reached: "firmware", verdict: "fails" };
      const def = att.find((a) => a.option === "default");
      if (def?.outcome === "no-filesystem") {
        const why = i.layout.partitioning === "mbr" ? " (an MBR disk made for BIOS boot: no EFI System Partition)"
          : i.layout.partitioning === "none" ? " (no partition table)" : " (no FAT partition on the disk)";
        findings.push(finding("GEN2_NO_UEFI_FILESYSTEM", { partitioning: i.layout.partitioning, why }, { partitions: i.layout.partitions.map((p) => ({ index: p.index, type: p.typeName, content: p.content.kind })) }));
      } else if (def?.outcome === "load-error") {
        findings.push(finding(def.status === "EFI_UNSUPPORTED" ? "GEN2_LOADER_NOT_X64" : "GEN2_LOADER_INVALID",
          { file: def.file ?? REMOVABLE_PATH, why: def.why ?? "not a PE32+ x64 EFI application" }, { attempt: def }));
      } else if (def?.outcome === "not-found") {
        const others = otherLoaders(fw);
        findings.push(finding("GEN2_NO_BOOT_LOADER", { path: REMOVABLE_PATH,
          volumes: fw.sfs.volumes.map((v) => `partition ${v.partitionIndex}${v.label ? ` (${v.label.trim()})` : ""}`).join(", "),
          others: others.length ? `; loaders elsewhere on the ESP (reachable only through the old VM's boot entries): ${others.join(", ")}` : "" }, { otherLoaders: others }));
      }
      return { reached: "firmware", verdict: "fails" };
    }
    case "waiting-for-key": {
      grubErrors();
      const prompt = screen.map((l) => l.trim()).filter(Boolean).pop() ?? "(blank screen)";
      findings.push(finding("GEN2_WAITING_FOR_KEY", { prompt }, ev));
      return { reached: "bootloader", verdict: "fails" };
    }
    case "cpu-exception": case "halted": case "triple-fault": {
      grubErrors();
      findings.push(finding("GEN2_CPU_EXCEPTION", { detail: stop.detail }, ev));
      return { reached: "bootloader", verdict: "fails" };
    }
    default:
      findings.push(finding("GEN2_BUDGET_EXHAUSTED", { detail: stop.detail }, ev));
      return { reached: fw.images.loadOrder.some((x) => x.started) ? "bootloader" : "firmware", verdict: "inconclusive" };
  }
}

/** The firmware-verified first stage: which Secure Boot settings would start it (always reported). */
function secureBootChain(i: ClassifyInput): void {
  const first = i.images.find((x) => x.secureBoot);
  if (!first?.secureBoot) return;
  const sb = first.secureBoot;
  const accepted = sb.acceptedBy.length ? sb.acceptedBy.map((m) => MODE_TEXT[m]).join(", ") : "no Secure Boot template (only Secure Boot off)";
  const remedy = sb.acceptedBy.includes("uefi-ca") && !sb.acceptedBy.includes("windows")
    ? "with Secure Boot on, select the Microsoft UEFI Certificate Authority template: `Set-VMFirmware -VMName <vm> -SecureBootTemplate MicrosoftUEFICertificateAuthority` (Azure: Trusted Launch accepts it)"
    : sb.acceptedBy.length ? "none needed with the listed settings"
      : "boot with Secure Boot off (`Set-VMFirmware -VMName <vm> -EnableSecureBoot Off`), or install a loader signed by Microsoft (shim-signed)";
  i.findings.push(finding("GEN2_SECUREBOOT_CHAIN", { file: first.file, signer: sb.signers[0]?.subject ?? "unsigned", accepted,
    mode: MODE_TEXT[i.mode], remedy }, { file: first.file, sha256: first.sha256, reason: sb.reason, trustedBy: sb.trustedBy, acceptedBy: sb.acceptedBy }));
}
