// The bootgate command line: inspect, read, check, explain. Exit codes: 0 boots, 1 fails,
// 2 usage error or unreadable/malformed image, 3 inconclusive.
import * as fs from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { openImage } from "../images/registry.ts";
import { ImageError } from "../images/errors.ts";
import { malformedLayout, readLayout } from "../images/layout.ts";
import { allFindings, lookupFinding } from "./findings.ts";
import "./findings-check.ts";
import { checkImage, controllerUsageError, type Controller } from "./check.ts";
import { VariableStore } from "../firmware-stubs/uefi-nvram.ts";
import { GEN2_RAM_MIB_MIN, GUEST_RAM_MIB_DEFAULT, GUEST_RAM_MIB_MAX, GUEST_RAM_MIB_MIN } from "../images/limits.ts";
import type { SecureBootMode } from "../firmware-stubs/secureboot.ts";
import { EXIT } from "./verdict.ts";
import { VERSION } from "./version.ts";
import { runDemo } from "./demo.ts";
import { finishDisassembly, loadDisassembler } from "./disasm.ts";
import { formatCheck, formatInspect, inspectDoc, terminalPaint } from "./report-text.ts";
import { writeHtmlReport } from "./report-html.ts";
import { openTrace } from "./trace-ndjson.ts";
import { toJunit } from "./junit.ts";
import { emitAnnotations } from "./annotations.ts";
import { runBatchCli } from "./batch.ts";

class UsageError extends Error {}

/** An NVRAM JSON file for --nvram (a usage error when it cannot be read or is not valid). */
function loadNvram(file: string): VariableStore {
  let text: string;
  try { text = fs.readFileSync(file, "utf8"); } catch (e) { throw new UsageError(`--nvram ${file}: ${(e as Error).message}`); }
  try { return VariableStore.fromJSON(JSON.parse(text)); } catch (e) { throw new UsageError(`--nvram ${file}: ${(e as Error).message}`); }
}
class MalformedError extends Error {}

function intArg(name: string) {
  return (v: string): number => {
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} is too large`);
    return n;
  };
}

/** Write all of `data` to stdout synchronously (retrying partial writes and EAGAIN on pipes). */
function writeOut(data: string | Uint8Array): void {
  const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }
}

function writeJson(dest: string, doc: unknown): void {
  const text = JSON.stringify(doc, null, 2) + "\n";
  if (dest === "-") writeOut(text);
  else fs.writeFileSync(dest, text);
}

function collect(v: string, prev: string[]): string[] { return [...prev, v]; }

function build(setExit: (c: number) => void): Command {
  const program = new Command("bootgate")
    .description("Will this converted disk image boot on a Hyper-V Generation 1 or 2 VM?")
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => writeOut(s) });

  const formatOpt = () => new Option("--format <fmt>", "container format instead of probing").choices(["raw", "vhd", "vhdx", "vmdk", "qcow2"]);
  const allowOpt = () => new Option("--allow-dir <dir>", "folder from which parent images and extents may also be opened (repeatable)").argParser(collect).default([]);

  program.command("inspect").argument("<image>")
    .description("container, geometry, partitions, filesystems and image findings")
    .option("--json", "machine-readable output")
    .addOption(formatOpt()).addOption(allowOpt())
    .action((image: string, o: { json?: boolean; format?: string; allowDir: string[] }) => {
      const dev = openImage(image, { format: o.format, allowDirs: o.allowDir });
      try {
        const layout = readLayout(dev);
        const doc = inspectDoc(image, dev, layout);
        writeOut(o.json ? JSON.stringify(doc, null, 2) + "\n" : formatInspect(doc));
        // The layout is shown for debugging, but a malformed table is still a malformed image.
        const bad = malformedLayout(layout);
        if (bad) throw new MalformedError(`malformed partition table: ${bad.message} [${bad.code}]`);
      } finally { dev.close(); }
      setExit(0);
    });

  program.command("read").argument("<image>")
    .description("write virtual-disk sectors, raw, to stdout")
    .requiredOption("--lba <n>", "first sector", intArg("--lba"))
    .option("--count <m>", "number of sectors", intArg("--count"), 1)
    .addOption(formatOpt()).addOption(allowOpt())
    .action((image: string, o: { lba: number; count: number; format?: string; allowDir: string[] }) => {
      const dev = openImage(image, { format: o.format, allowDirs: o.allowDir });
      try {
        if (o.lba + o.count > dev.sectorCount) {
          throw new UsageError(`LBA ${o.lba} (+${o.count}) is past the end of the disk (${dev.sectorCount} sectors of ${dev.sectorSize} bytes)`);
        }
        const chunk = Math.max(1, Math.floor((4 << 20) / dev.sectorSize));
        for (let done = 0; done < o.count; done += chunk) {
          writeOut(dev.read(o.lba + done, Math.min(chunk, o.count - done)));
        }
      } finally { dev.close(); }
      setExit(0);
    });

  program.command("check").argument("<images...>", "one image, or several checked in parallel worker threads (exit code: 2 if any is unreadable, else 1 if any fails, else 3 if any is inconclusive, else 0)")
    .description("run the image-stage rules and each generation's boot; verdict per generation")
    .addOption(new Option("--gen <g>", "generation to check").choices(["1", "2", "both"]).default("both"))
    .addOption(new Option("--target <t>", "where the image goes").choices(["azure", "hyperv"]).default("azure"))
    .option("--json <file>", "write the verdict JSON (bootgate.verdict/1) to FILE, or - for stdout")
    .option("--quiet", "no human summary")
    .option("--junit <file>", "write JUnit XML (a test suite per image, a test case per generation and image rule) to FILE")
    .option("--jobs <n>", "worker threads for several images (default: one per core)", intArg("--jobs"))
    .option("--memory <MiB>", `VM memory in MiB (${GUEST_RAM_MIB_MIN}..${GUEST_RAM_MIB_MAX}; Gen2 uses at least ${GEN2_RAM_MIB_MIN})`, intArg("--memory"), GUEST_RAM_MIB_DEFAULT)
    .option("--max-instructions <n>", "instruction budget per generation", intArg("--max-instructions"))
    .option("--max-seconds <s>", "host time budget per generation", intArg("--max-seconds"))
    .option("--keys <keys>", "keystrokes to type at BIOS prompts, e.g. 'down,enter' or text")
    .option("--html <file>", "write a self-contained HTML report (chain, disk map, screen, findings, trace window) to FILE")
    .option("--trace <file>", "stream every boot event to FILE as NDJSON (bootgate.trace/1, documented in emu/trace-ndjson.ts)")
    .option("--trace-blocks <n>", "record the last N basic blocks of the Gen1 run in the JSON (slow; for debugging)", intArg("--trace-blocks"))
    .addOption(new Option("--ide-slot <slot>", "Gen1 IDE attachment of the disk").choices(["ide0:0", "ide0:1", "ide1:0", "ide1:1"]).default("ide0:0"))
    .addOption(new Option("--controller <c>", "controller of the OS disk (default: Gen1 ide, Gen2 scsi; with --gen both, ide is Gen1's and scsi/nvme Gen2's)")
      .choices(["ide", "scsi", "nvme"]))
    .addOption(new Option("--secure-boot <mode>", "Gen2 Secure Boot: off, windows (Hyper-V MicrosoftWindows template), uefi-ca (MicrosoftUEFICertificateAuthority), trusted-launch (Azure); default: hyperv windows, azure trusted-launch")
      .choices(["off", "windows", "uefi-ca", "trusted-launch"]))
    .option("--nvram <file>", "Gen2 NVRAM variables to start from (JSON: {\"variables\":[{name,guid,attributes,data(hex)}]}); default: empty, like a new VM")
    .addOption(formatOpt()).addOption(allowOpt())
    .action(async (images: string[], o: { secureBoot?: SecureBootMode; nvram?: string; junit?: string; jobs?: number; gen: string; target: "azure" | "hyperv"; json?: string; quiet?: boolean; format?: string; allowDir: string[];
      memory: number; maxInstructions?: number; maxSeconds?: number; keys?: string; ideSlot: string; traceBlocks?: number; controller?: Controller; html?: string; trace?: string }) => {
      const gens: (1 | 2)[] = o.gen === "both" ? [1, 2] : [Number(o.gen) as 1 | 2];
      const misuse = controllerUsageError(gens, o.controller);
      if (misuse) throw new UsageError(misuse);
      if (o.memory < GUEST_RAM_MIB_MIN || o.memory > GUEST_RAM_MIB_MAX) throw new UsageError(`--memory must be between ${GUEST_RAM_MIB_MIN} and ${GUEST_RAM_MIB_MAX} MiB, not ${o.memory}`);
      const gen1 = { memoryMiB: o.memory, maxInstructions: o.maxInstructions, maxWallMs: o.maxSeconds !== undefined ? o.maxSeconds * 1000 : undefined,
        keys: o.keys, ideSlot: o.ideSlot, traceBlocks: o.traceBlocks };
      const gen2 = { memoryMiB: Math.max(GEN2_RAM_MIB_MIN, o.memory), maxWallMs: gen1.maxWallMs, keys: o.keys,
        maxEvents: o.maxInstructions !== undefined ? Math.ceil(o.maxInstructions / 100) : undefined, nvram: o.nvram ? loadNvram(o.nvram) : undefined };
      if (images.length > 1) {
        if (o.html || o.trace) throw new UsageError("--html and --trace write one image's report: check one image at a time with them");
        if (o.jobs === 0) throw new UsageError("--jobs must be at least 1");
        setExit(await runBatchCli(images, { gens, target: o.target, format: o.format, allowDirs: o.allowDir, gen1, controller: o.controller, secureBoot: o.secureBoot,
          gen2: { ...gen2, nvram: undefined }, nvramFile: o.nvram }, o, writeOut, writeJson));
        return;
      }
      const image = images[0];
      // Capstone compiles in the background while the guest runs; the windows are disassembled after the check.
      void loadDisassembler();
      const tracer = o.trace ? openTrace(o.trace, image, { format: o.format, allowDirs: o.allowDir }) : undefined;
      let doc;
      try {
        doc = checkImage(image, { gens, target: o.target, format: o.format, allowDirs: o.allowDir, gen1: { ...gen1, traceSink: tracer?.sink(1) }, controller: o.controller,
          secureBoot: o.secureBoot, gen2: { ...gen2, traceSink: tracer?.sink(2) } });
      } finally {
        for (const g of doc?.generations ?? []) tracer?.endGeneration(g);
        const err = tracer?.close();
        if (err) process.stderr.write(`bootgate: the trace ${o.trace} is incomplete: ${err.message}\n`);
      }
      await finishDisassembly();
      if (o.json) writeJson(o.json, doc);
      if (o.html) writeHtmlReport(o.html, doc, { format: o.format, allowDirs: o.allowDir }, tracer?.index);
      if (!o.quiet && o.json !== "-") writeOut(formatCheck(doc, terminalPaint(process.stdout)));
      if (o.junit) fs.writeFileSync(o.junit, toJunit([doc]));
      emitAnnotations([doc], o.json === "-", writeOut);
      setExit(doc.exitCode);
    });

  program.command("explain").argument("[code]")
    .description("what a finding code means and how to fix it (no code: list all)")
    .action((code?: string) => {
      if (!code) {
        for (const e of allFindings()) writeOut(`${e.code.padEnd(28)} ${e.severity.padEnd(8)} ${e.title}\n`);
        setExit(0);
        return;
      }
      const e = lookupFinding(code);
      if (!e) throw new UsageError(`unknown finding code '${code}' (bootgate explain lists them)`);
      writeOut(`${e.code} (${e.severity}, stage ${e.stage})\n${e.title}\n\n${e.explain}\n\nRemedy: ${e.remedy}\n`);
      setExit(0);
    });
  program.command("demo")
    .description("check the built-in demo disks (a good and a broken boot)")
    .action(async () => { await loadDisassembler(); setExit(runDemo(writeOut)); });
  return program;
}

/** Run the CLI; returns the exit code. Never throws. */
export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.USAGE;
  const program = build((c) => { code = c; });
  try {
    await program.parseAsync(argv, { from: "user" });
    if (argv.length === 0) { program.outputHelp(); return EXIT.USAGE; }
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? 0 : EXIT.USAGE;   // help/version print and exit 0
    }
    if (e instanceof ImageError || e instanceof UsageError || e instanceof MalformedError) {
      process.stderr.write(`bootgate: ${e.message}${e instanceof ImageError ? ` [${e.code}]` : ""}\n`);
      return EXIT.USAGE;
    }
    if ((e as NodeJS.ErrnoException)?.code === "EPIPE") return code;
    process.stderr.write(`bootgate: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    if (process.env.BOOTGATE_DEBUG) process.stderr.write(String((e as Error)?.stack) + "\n");
    return EXIT.USAGE;
  }
}
