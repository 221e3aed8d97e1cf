// check --html (emu/report-html*.ts): the report of a good and a failing Gen1 fixture opened in real headless
// Chromium (playwright-core): sections, chain, disk map with attributed reads, console text, findings, trace window,
// no network request, a non-blank screenshot; hostile image strings stay text.
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { main } from "../emu/cli.ts";
import { renderHtmlReport, SECTION_IDS } from "../emu/report-html.ts";
import type { VerdictDoc } from "../emu/verdict.ts";
import type { DiskIndex } from "../emu/disk-attribution.ts";
import { ensureGen1Fixtures, GEN1_DIR } from "./gen1-fixtures.ts";
import { GEN2_DIR } from "./gen2-fixtures.ts";
import { ROOT, tmpdir } from "./helpers.ts";

/** Where the README screenshot is written (the lead copies it into the docs). */
const SHOT_DIR = path.join(ROOT, ".cache/report-html");
const ORIGIN = "http://bootgate-report.invalid";

let dir: string;
let userDir: string;
let ctx: BrowserContext;
/** Every request the pages made besides the report document itself. */
const leaks: string[] = [];
const cspViolations: string[] = [];

interface Run { doc: VerdictDoc; html: string }
const runs: Record<string, Run> = {};

async function checkWithHtml(fixture: string, args = ["--gen", "1"], fixtureDir = GEN1_DIR): Promise<Run> {
  const html = path.join(dir, fixture + ".html"), json = path.join(dir, fixture + ".json");
  const code = await main(["check", path.join(fixtureDir, fixture), ...args, "--quiet", "--json", json, "--html", html]);
  const doc = JSON.parse(fs.readFileSync(json, "utf8")) as VerdictDoc;
  expect(code).toBe(doc.exitCode);
  return { doc, html: fs.readFileSync(html, "utf8") };
}

beforeAll(async () => {
  ensureGen1Fixtures();
  dir = tmpdir("bootgate-html-");
  userDir = fs.mkdtempSync(path.join(dir, "chromium-profile-"));
  const launch = chromium.launchPersistentContext(userDir, {
    executablePath: "/usr/bin/chromium", headless: true, viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  runs.good = await checkWithHtml("grub-mbr.img");
  runs.bad = await checkWithHtml("grub-wrong-prefix.img");
  const gen2 = ["--gen", "2", "--secure-boot", "off"];
  runs.gen2good = await checkWithHtml("gen2-unsigned-grub.img", gen2, GEN2_DIR);
  runs.gen2bad = await checkWithHtml("gen2-missing-uuid.img", gen2, GEN2_DIR);
  ctx = await launch;
  // The report is served from a fake origin; anything else the page asks for is a leak and is refused.
  await ctx.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(ORIGIN + "/")) return route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: current });
    leaks.push(url);
    return route.abort();
  });
  ctx.on("request", (r) => { if (!r.url().startsWith(ORIGIN + "/") && !r.url().startsWith("data:")) leaks.push(r.url()); });
}, 600_000);

afterAll(async () => {
  await ctx?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

let current = "";
async function open(html: string): Promise<Page> {
  current = html;
  const page = await ctx.newPage();
  page.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text()); });
  page.on("dialog", (d) => { leaks.push(`dialog: ${d.message()}`); void d.dismiss(); });
  await page.goto(`${ORIGIN}/report.html`);
  return page;
}

/** Width, height and the share of pixels that are not the most common colour, decoded from an RGB(A) 8-bit PNG. */
function pngStats(png: Buffer): { width: number; height: number; inked: number } {
  expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
  const width = png.readUInt32BE(16), height = png.readUInt32BE(20), depth = png[24], type = png[25];
  expect(depth).toBe(8);
  const bpp = type === 6 ? 4 : type === 2 ? 3 : 0;
  expect(bpp).toBeGreaterThan(0);
  const idat: Buffer[] = [];
  for (let off = 8; off < png.length;) {
    const len = png.readUInt32BE(off), kind = png.toString("latin1", off + 4, off + 8);
    if (kind === "IDAT") idat.push(png.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const prev = Buffer.alloc(stride), cur = Buffer.alloc(stride);
  const counts = new Map<number, number>();
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      cur[i] = (line[i] + pred) & 0xff;
    }
    for (let x = 0; x < width; x += 4) {          // every 4th pixel is plenty
      const k = cur.readUIntBE(x * bpp, 3);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    cur.copy(prev);
  }
  const total = [...counts.values()].reduce((s, n) => s + n, 0);
  return { width, height, inked: 1 - Math.max(...counts.values()) / total };
}

describe("check --html in headless Chromium", () => {
  it("shows a good Gen1 boot: verdict, chain to root, reads attributed to GRUB's files, console text, trace window", async () => {
    const { doc, html } = runs.good;
    expect(doc.generations[0].verdict).toBe("boots");
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
    const page = await open(html);
    for (const id of SECTION_IDS) await expect(page.locator(`section#${id}`).isVisible()).resolves.toBe(true);
    expect(await page.locator("#verdict .vcard[data-gen='1'] .badge").textContent()).toBe("boots");
    // Chain: every box up to root evidenced and ok; the kernel box names the kernel.
    expect(await page.locator("#chain .step[data-col='root']").getAttribute("class")).toContain("ok");
    expect(await page.locator("#chain .step[data-col='kernel']").textContent()).toContain("Linux 6.");
    expect(await page.locator("#chain .step.stopped").count()).toBe(0);
    // Disk map: one highlighted mark per read on the whole-disk line, plus the zoomed lanes.
    const reads = doc.generations[0].readLog!;
    const marks = page.locator("#diskmap .rd");
    expect(await marks.count()).toBeGreaterThanOrEqual(reads.length);
    expect(await page.locator("#diskmap .part[data-part='p1']").count()).toBe(1);
    // The kernel read: click it and the panel names the file on partition 1 (the style and script run under the CSP).
    const kernelRead = reads.findIndex((r) => r.count > 10_000);
    expect(kernelRead).toBeGreaterThan(0);
    await page.locator(`#diskmap .rd[data-i='${kernelRead}']`).first().dispatchEvent("click");
    const panel = await page.locator("#diskmap .pinfo").textContent();
    expect(panel).toMatch(/p1 ext4 "root"\s+\/boot\/vmlinuz-6\./);
    expect(await page.locator("#diskmap .rd.sel").count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator("#diskmap table.files").textContent()).toContain("/boot/grub/grub.cfg");
    // Screen: what the console showed, in an 80x25 grid with VGA colours.
    const consoleText = (await page.locator("#screen .console").textContent())!;
    for (const line of doc.generations[0].screen.filter((l) => l.trim())) expect(consoleText).toContain(line);
    expect(await page.locator("#screen .console .row").count()).toBe(25);
    expect(await page.locator("#screen .console").evaluate((e) => getComputedStyle(e).backgroundColor)).toBe("rgb(0, 0, 0)");
    expect(await page.locator("#screen .console .f7").first().evaluate((e) => getComputedStyle(e).color)).toBe("rgb(170, 170, 170)");
    // Findings with remedies, trace window with disassembly and registers.
    expect(await page.locator("#findings").textContent()).toContain("GEN1_LINUX_HANDOFF");
    expect(await page.locator("#trace .disasm tr").count()).toBeGreaterThan(3);
    expect(await page.locator("#trace .regs").textContent()).toMatch(/EIP\s+01000000/);
    // The CSP forbids network access even to the page's own script.
    expect(await page.evaluate(() => fetch("http://example.invalid/x").then(() => "fetched", () => "blocked"))).toBe("blocked");
    await page.close();
  });

  it("shows a failing Gen1 boot: where it stopped, the grub rescue console, the findings with remedies; screenshot", async () => {
    const { doc, html } = runs.bad;
    expect(doc.generations[0].verdict).toBe("fails");
    const page = await open(html);
    expect(await page.locator("#verdict .vcard[data-gen='1'] .badge").textContent()).toBe("fails");
    expect(await page.locator("#verdict").textContent()).toContain("waiting-for-key");
    const stopped = page.locator("#chain .step.stopped");
    expect(await stopped.count()).toBe(1);
    expect(await stopped.getAttribute("data-col")).toBe("vbr");
    expect(await page.locator("#chain .step[data-col='kernel']").getAttribute("class")).toContain("unreached");
    const consoleText = (await page.locator("#screen .console").textContent())!;
    expect(consoleText).toContain("error: no such partition.");
    expect(consoleText).toContain("grub rescue>");
    const rescue = page.locator("#findings .finding", { hasText: "GEN1_GRUB_RESCUE" });
    expect(await rescue.count()).toBe(1);
    expect(await rescue.locator(".remedy").textContent()).toContain("grub-install");
    await page.locator("#diskmap .rd").first().dispatchEvent("click");
    expect(await page.locator("#diskmap .pinfo").textContent()).toContain("MBR (boot code and partition table)");
    expect(await page.locator("#trace .disasm tr.at").textContent()).toContain("int 0x16");

    const png = await page.screenshot({ fullPage: true });
    const st = pngStats(png);
    expect(st.width).toBe(1280);
    expect(st.height).toBeGreaterThan(1500);
    expect(st.inked).toBeGreaterThan(0.05);            // text, boxes and the black console: far from a blank page
    fs.mkdirSync(SHOT_DIR, { recursive: true });
    fs.writeFileSync(path.join(SHOT_DIR, "grub-wrong-prefix.png"), png);
    fs.writeFileSync(path.join(SHOT_DIR, "grub-wrong-prefix.html"), html);
    await page.close();
  });

  it("keeps hostile screen text, file names, messages and a bad framebuffer as inert text", async () => {
    const evil = `<script>window.pwned=1</script>`;
    const base = runs.bad.doc;
    const g = structuredClone(base.generations[0]);
    g.screen = [evil, `<img src=x onerror="window.pwned=2">`, "\u0000\u001b[2J"];
    g.findings = [{ ...g.findings[0], message: `</style><script>window.pwned=3</script>`, remedy: `"><svg onload=window.pwned=4>` }];
    g.chain = [...g.chain, { stage: "bootloader", what: `</div><iframe src="http://evil.invalid/">`, evidence: { "<b>": "</pre><script>window.pwned=5</script>" } }];
    g.readLog = [{ lba: 2048, count: 8 }];
    (g as unknown as { framebuffer: unknown }).framebuffer = { width: 8, height: 8, pngBase64: `"><script>window.pwned=6</script>` };
    const doc: VerdictDoc = { ...base, image: { ...base.image, path: `/tmp/<img src=x onerror=window.pwned=9>.img` }, generations: [g] };
    const index: DiskIndex = { sectorCount: 131072, sectorSize: 512, partitioning: "mbr", filesIndexed: 1, complete: true, notes: [],
      partitions: [{ id: "p1", index: 1, startLba: 2048, sectorCount: 129024, typeName: "Linux", kind: "ext4", label: `"><script>window.pwned=7</script>` }],
      files: [{ lba: 2048, count: 8, path: `/boot/"><script>window.pwned=8</script>`, volume: "p1" }] };
    const page = await open(renderHtmlReport(doc, { index }));
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    expect(await page.locator("#screen .console").textContent()).toContain(evil);
    expect(await page.locator("#findings").textContent()).toContain("</style><script>window.pwned=3</script>");
    expect(await page.locator("script").count()).toBe(1);               // only the report's own
    expect(await page.locator("iframe, #screen img, svg[onload]").count()).toBe(0);
    expect(await page.locator("h1").textContent()).toBe("bootgate report: <img src=x onerror=window.pwned=9>.img");
    await page.locator("#diskmap .rd").first().dispatchEvent("click");
    expect(await page.locator("#diskmap .pinfo").textContent()).toContain(`/boot/"><script>window.pwned=8</script>`);
    await page.close();
  });

  it("renders a Generation 2 framebuffer as an image", async () => {
    const png = await (await ctx.newPage()).screenshot({ clip: { x: 0, y: 0, width: 64, height: 48 } });
    const g = { ...structuredClone(runs.bad.doc.generations[0]), generation: 2 as const, readLog: undefined, screen: [],
      framebuffer: { width: 64, height: 48, pngBase64: png.toString("base64") } };
    const page = await open(renderHtmlReport({ ...runs.bad.doc, generations: [g] }));
    const img = page.locator("#screen .fb img");
    expect(await img.count()).toBe(1);
    expect(await img.evaluate((e) => (e as HTMLImageElement).naturalWidth)).toBe(64);
    await page.close();
  });

  it("made no request besides the report and hit no CSP violation of its own", () => {
    expect(leaks).toEqual([]);
    expect(cspViolations.filter((m) => !m.includes("example.invalid"))).toEqual([]);
  });
});

describe("check --html for Generation 2 in headless Chromium", () => {
  it("a UEFI GRUB boot to root: verdict, chain to root, the kernel read on partition 2, GRUB's console", async () => {
    const { doc, html } = runs.gen2good;
    expect(doc.generations[0]).toMatchObject({ generation: 2, verdict: "boots", reached: "root" });
    const page = await open(html);
    expect(await page.locator("#verdict .vcard[data-gen='2'] .badge").textContent()).toBe("boots");
    expect(await page.locator("#chain .step[data-col='kernel']").textContent()).toContain("Linux 6.");
    expect(await page.locator("#chain table.uefi-images").textContent()).toMatch(/\\EFI\\BOOT\\BOOTX64\.EFI.*yes.*unsigned/s);
    expect(await page.locator("#diskmap .part[data-part='p2']").count()).toBe(1);
    expect(await page.locator("#diskmap table.files").textContent()).toContain("/boot/vmlinuz-6.1.0-56-amd64");
    expect(await page.locator("#screen .console").textContent()).toContain("Booting `Debian GNU/Linux");
    expect(leaks).toEqual([]);
    await page.close();
  });

  it("a GRUB EFI stuck at its prompt: fails at the bootloader, the prompt on the console, the finding with its remedy", async () => {
    const { doc, html } = runs.gen2bad;
    expect(doc.generations[0]).toMatchObject({ verdict: "fails", reached: "bootloader", stop: { reason: "waiting-for-key" } });
    const page = await open(html);
    expect(await page.locator("#verdict .vcard[data-gen='2'] .badge").textContent()).toBe("fails");
    expect(await page.locator("#screen .console").textContent()).toContain("grub>");
    expect(await page.locator("#findings").textContent()).toContain("GEN2_WAITING_FOR_KEY");
    expect(await page.locator("#trace").textContent()).toMatch(/[0-9a-f]{6,}/);
    expect(leaks).toEqual([]);
    await page.close();
  });
});
