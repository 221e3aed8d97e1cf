// Hostile input (issue 7): a short seeded run of the mutation fuzzer over every target must find no
// crash, and a full `check` whose guest writes to its disk (GRUB's save_env through INT 13h) must leave
// the image file byte-identical and never open it for writing.
import { describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { ROOT, sh, sha256, tmpdir } from "./helpers.ts";
import { ensureGen1Fixtures, fixture } from "./fixtures.ts";
import { runFuzz, formatReport } from "../scripts/fuzz.ts";
import { TARGETS } from "../scripts/fuzz-targets.ts";
import { openImage } from "../images/registry.ts";
import { runGen1 } from "../emu/gen1.ts";
import { loadDisassembler } from "../emu/disasm.ts";
import type { TraceEvent } from "../emu/trace.ts";

describe("mutation fuzzing (scripts/fuzz.ts)", () => {
  it("300 seeded cases over every target end in a result or an ImageError, none hangs or blows up memory", async () => {
    const r = await runFuzz({ cases: 300, seed: 7 });
    const report = formatReport(r);
    expect(r.crashes, report).toEqual([]);
    expect(r.stats.map((s) => s.target).sort()).toEqual(TARGETS.map((t) => t.name).sort());
    for (const s of r.stats) {
      expect(s.cases, s.target).toBeGreaterThan(0);
      expect(s.ok + s.errors, s.target).toBe(s.cases);
    }
    // The mutations reach past the first check: some cases of the structured formats still parse.
    expect(r.stats.filter((s) => s.ok > 0).length).toBeGreaterThan(TARGETS.length / 2);
  }, 120_000);

  it("is deterministic: the same seed gives the same outcomes", async () => {
    const a = await runFuzz({ cases: 40, seed: 11, targets: ["qcow2", "regf"], jobs: 2 });
    const b = await runFuzz({ cases: 40, seed: 11, targets: ["qcow2", "regf"], jobs: 1 });
    const pick = (x: typeof a) => x.stats.map((s) => [s.target, s.ok, s.errors, s.errorCodes]);
    expect(pick(a)).toEqual(pick(b));
  }, 60_000);
});

/** Run the CLI as an unprivileged user when we are root (root could open a 0444 file for writing). */
function cliAs(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const root = process.getuid?.() === 0;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "emu/bin.mjs"), ...args], {
      cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], ...(root ? { uid: 65534, gid: 65534 } : {}),
    });
    let out = "", err = "";
    child.stdout.on("data", (b: Buffer) => { out += b; });
    child.stderr.on("data", (b: Buffer) => { err += b; });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code) => { clearTimeout(timer); resolve({ status: code ?? -1, stdout: out, stderr: err }); });
  });
}

describe("the input image is never written", () => {
  it("a check whose GRUB writes grubenv (save_env, INT 13h) leaves a read-only image byte-identical", async () => {
    ensureGen1Fixtures();
    const dir = tmpdir("bootgate-readonly-");
    fs.chmodSync(dir, 0o755);
    const img = path.join(dir, "grub-save-env.img");
    fs.copyFileSync(fixture("grub-mbr.img"), img);
    // The fixture's ext4 root (partition 1) gets a grubenv made by grub-editenv and a grub.cfg that saves into it.
    const start = 2048, count = 129024, part = path.join(dir, "part.img");
    expect(sh("sfdisk", ["-d", img])).toMatch(/start=\s*2048, size=\s*129024/);
    sh("dd", [`if=${img}`, `of=${part}`, "bs=512", `skip=${start}`, `count=${count}`, "status=none"]);
    const cfg = sh("debugfs", ["-R", "cat /boot/grub/grub.cfg", part]);
    expect(cfg).toContain("linux /boot/vmlinuz");
    sh("grub-editenv", [path.join(dir, "grubenv"), "create"]);
    fs.writeFileSync(path.join(dir, "grub.cfg"), `load_env\nset bootgate_written=yes\nsave_env bootgate_written\n${cfg}`);
    sh("debugfs", ["-w", "-f", "-", part], { input: `rm /boot/grub/grub.cfg\nwrite ${dir}/grub.cfg /boot/grub/grub.cfg\nwrite ${dir}/grubenv /boot/grub/grubenv\n` });
    sh("dd", [`if=${part}`, `of=${img}`, "bs=512", `seek=${start}`, "conv=notrunc", "status=none"]);
    fs.rmSync(part);
    fs.chmodSync(img, 0o444);
    const before = sha256(img), mtime = fs.statSync(img).mtimeMs;

    // The guest really writes: GRUB's save_env sends the grubenv block through INT 13h (into the overlay).
    await loadDisassembler();
    const writes: TraceEvent[] = [];
    const dev = openImage(img);
    try {
      const g = runGen1(dev, { traceSink: (e: TraceEvent) => { if (e.kind === "disk" && e.data?.write) writes.push(e); } });
      expect(g.reached).toBe("kernel");
    } finally { dev.close(); }
    expect(writes.length).toBeGreaterThan(0);
    expect(writes[0].what).toMatch(/^write drive 80h LBA \d+ \+2 \(kept in the overlay\)/);
    expect(sha256(img)).toBe(before);

    // The full check, as an unprivileged user who cannot open the 0444 file for writing: a verdict, not an open error.
    const r = await cliAs(["check", "--gen", "1", "--json", "-", "--quiet", img]);
    expect(r.stderr).not.toMatch(/EACCES|cannot open|internal error/);
    expect([0, 1, 3]).toContain(r.status);
    const doc = JSON.parse(r.stdout);
    expect(doc.generations[0].reached).not.toBe("image");
    expect(sha256(img)).toBe(before);
    expect(fs.statSync(img).mtimeMs).toBe(mtime);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 180_000);
});
