// /etc/fstab of the root filesystem checked against the target (fstab(5); systemd.mount(5): an entry without nofail
// or noauto is required by local-fs.target, and a device that never appears ends in emergency mode).
import { ImageError } from "../images/errors.ts";
import { readFileAt, type FileSystem } from "../images/fs.ts";
import type { Volumes } from "../images/fs-open.ts";
import { parseFstab, type FstabEntry } from "../images/fstab.ts";
import { MAX_BOOT_TEXT_BYTES } from "../images/limits.ts";
import { resolveDeviceSpec, type TargetController, type Volume } from "../images/root-spec.ts";
import type { Finding } from "./findings.ts";

export interface FstabSink {
  add(code: string, params: Record<string, unknown>, evidence?: Record<string, unknown>): Finding;
  missing: string[];
  facts: Record<string, unknown>;
  chain: { stage: string; what: string; evidence: Record<string, unknown> }[];
}

/** Filesystem types that name no block device (virtual, network, bind). */
/** Kernel names no Hyper-V/Azure guest has: virtio-blk, Xen blkfront, the pre-libata IDE driver. */
const FOREIGN_NAME = /^\/dev\/(x?vd[a-z]+|hd[a-z])[0-9]*$/;
const NO_DEVICE = /^(proc|sysfs|tmpfs|devtmpfs|devpts|cgroup2?|securityfs|debugfs|efivarfs|hugetlbfs|mqueue|tracefs|configfs|fusectl|pstore|bpf|nfs4?|cifs|smb3|9p|fuse\..*|sshfs|glusterfs|ceph|none|overlay|autofs|rpc_pipefs|binfmt_misc)$/;

/** Escape a string for a basic regular expression in `sed 's|...|...|'`. */
const sedRe = (s: string) => s.replace(/[.[\]*^$\\|]/g, (c) => `\\${c}`);

export function checkFstab(run: FstabSink, fs: FileSystem, specVols: Volume[], vols: Volumes, target: TargetController): void {
  let text: Buffer | undefined;
  try {
    text = readFileAt(fs, "/etc/fstab", MAX_BOOT_TEXT_BYTES);
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    run.missing.push(`/etc/fstab (${e.message})`);
    return;
  }
  if (!text) {
    run.facts.fstab = "absent";
    return;
  }
  const entries = parseFstab(text);
  const checked: Record<string, unknown>[] = [];
  for (const e of entries) {
    if (e.noauto || NO_DEVICE.test(e.vfstype) || e.options.includes("bind")) continue;
    const r = resolveDeviceSpec(e.spec, specVols, target);
    if (r.kind === "virtual" || r.kind === "network") continue;
    const hit = vols.entryFor(r.resolvesTo);
    const swap = e.vfstype === "swap" || e.file === "swap" || e.file === "none";
    const mount = swap ? "swap" : e.file;
    const critical = !e.nofail && !swap && e.file !== "/";
    const fix = hit?.uuid ? `UUID=${hit.uuid}` : "UUID=<uuid from blkid>";
    const params = { line: e.line, spec: e.spec, mount, specRe: sedRe(e.spec), fix };
    const ev = { fstabLine: describe(e), nofail: e.nofail, resolvesTo: hit?.id };
    checked.push({ line: e.line, spec: e.spec, mount, kind: r.kind, resolvesTo: hit?.id, problem: r.problem });
    if (r.problem && (!r.problem.includes("probe order") || FOREIGN_NAME.test(e.spec)) && (r.kind === "dev-name" || r.kind === "by-path" || r.kind === "by-id")) {
      // A name the target never creates: fatal for a required mount, a warning for /, swap and nofail entries.
      const f = run.add(critical ? "LINUX_FSTAB_DEVICE_MISSING" : "LINUX_FSTAB_KERNEL_NAME",
        { ...params, problem: r.problem, note: r.problem }, ev);
      if (!critical) f.evidence.required = false;
    } else if (!r.resolvesTo && r.problem) {
      run.add("LINUX_FSTAB_NOT_ON_DISK", { ...params, problem: r.problem }, ev);
      if (critical) run.missing.push(`the device of /etc/fstab line ${e.line} (${e.spec} on ${mount})`);
    } else if (r.kind === "dev-name" || (r.problem && r.problem.includes("probe order"))) {
      run.add("LINUX_FSTAB_KERNEL_NAME", { ...params, note: r.note ?? r.problem ?? "kernel name" }, ev);
    }
  }
  run.facts.fstab = checked;
  run.chain.push({ stage: "root", what: `/etc/fstab: ${checked.length} device entr${checked.length === 1 ? "y" : "ies"} checked`, evidence: { entries: checked } });
}

function describe(e: FstabEntry): string {
  return `${e.spec} ${e.file} ${e.vfstype} ${e.options.join(",")} ${e.freq} ${e.passno}`;
}
