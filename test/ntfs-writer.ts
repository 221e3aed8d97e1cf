// A thin writer over libntfs-3g (ntfs-3g's own library: the real on-disk producer, called via koffi
// because ntfsprogs has no mkdir/ln and FUSE mounts are not allowed): NTFS test volumes made by mkntfs
// are populated through it (test/ntfs.test.ts, test/os-windows.test.ts).
import * as path from "node:path";
import koffi from "koffi";

const S_IFDIR = 0o040000, S_IFREG = 0o100000;
const AT_DATA = 0x80;
const u16 = (s: string) => Buffer.from(s, "utf16le");

export class NtfsWriter {
  private static lib: ReturnType<typeof NtfsWriter.load> | undefined;
  private static load() {
    const l = koffi.load("libntfs-3g.so.89");
    return {
      mount: l.func("void *ntfs_mount(const char *name, int flags)"),
      umount: l.func("int ntfs_umount(void *vol, int force)"),
      lookup: l.func("void *ntfs_pathname_to_inode(void *vol, void *parent, const char *path)"),
      create: l.func("void *ntfs_create(void *dir, uint32_t securid, const uint8_t *name, uint8_t len, uint32_t type)"),
      symlink: l.func("void *ntfs_create_symlink(void *dir, uint32_t securid, const uint8_t *name, uint8_t len, const uint8_t *target, int tlen)"),
      link: l.func("int ntfs_link(void *ni, void *dir, const uint8_t *name, uint8_t len)"),
      close: l.func("int ntfs_inode_close(void *ni)"),
      aopen: l.func("void *ntfs_attr_open(void *ni, uint32_t type, const uint8_t *name, uint32_t len)"),
      pwrite: l.func("int64_t ntfs_attr_pwrite(void *na, int64_t pos, int64_t count, const uint8_t *b)"),
      aclose: l.func("void ntfs_attr_close(void *na)"),
      reparse: l.func("int ntfs_set_ntfs_reparse_data(void *ni, const uint8_t *value, size_t size, int flags)"),
      attrib: l.func("int ntfs_set_ntfs_attrib(void *ni, const uint8_t *value, size_t size, int flags)"),
      del: l.func("int ntfs_delete(void *vol, const char *path, void *ni, void *dir, const uint8_t *name, uint8_t len)"),
      dosName: l.func("int ntfs_set_ntfs_dos_name(void *ni, void *dir, const char *value, size_t size, int flags)"),
    };
  }
  private readonly f: ReturnType<typeof NtfsWriter.load>;
  private readonly vol: unknown;
  constructor(image: string) {
    this.f = NtfsWriter.lib ??= NtfsWriter.load();
    this.vol = this.f.mount(image, 0);
    if (!this.vol) throw new Error(`ntfs_mount ${image} failed`);
  }
  private open(p: string): unknown {
    const ni = this.f.lookup(this.vol, null, p);
    if (!ni) throw new Error(`no ${p}`);
    return ni;
  }
  private make(p: string, type: number, fn?: (dir: unknown, name: Buffer, len: number) => unknown): unknown {
    const dir = this.open(path.posix.dirname(p));
    const base = path.posix.basename(p);
    const ni = fn ? fn(dir, u16(base), base.length) : this.f.create(dir, 0, u16(base), base.length, type);
    this.f.close(dir);
    if (!ni) throw new Error(`create ${p} failed`);
    return ni;
  }
  mkdir(p: string): void { this.f.close(this.make(p, S_IFDIR)); }
  /** Write `parts` ([offset, bytes]) into a new file (or append to an existing one). */
  write(p: string, parts: [number, Buffer][], create = true): void {
    const ni = create ? this.make(p, S_IFREG) : this.open(p);
    const na = this.f.aopen(ni, AT_DATA, Buffer.alloc(2), 0);
    for (const [off, b] of parts) if (b.length && Number(this.f.pwrite(na, BigInt(off), BigInt(b.length), b)) !== b.length) throw new Error(`write ${p}`);
    this.f.aclose(na);
    this.f.close(ni);
  }
  link(existing: string, p: string): void {
    const ni = this.open(existing);
    const dir = this.open(path.posix.dirname(p));
    const base = path.posix.basename(p);
    if (this.f.link(ni, dir, u16(base), base.length) !== 0) throw new Error(`link ${p}`);
    this.f.close(dir); this.f.close(ni);
  }
  /** ntfs-3g's own symlink flavour (Interix "IntxLNK"). */
  interix(p: string, target: string): void {
    this.f.close(this.make(p, 0, (dir, name, len) => this.f.symlink(dir, 0, name, len, u16(target), target.length)));
  }
  /** A Windows symlink / junction: the reparse buffer mklink would store ([MS-FSCC] 2.1.2.4/2.1.2.5). */
  reparse(p: string, kind: "symlink" | "junction", sub: string, print: string, relative = false, dir = false): void {
    const ni = this.make(p, dir ? S_IFDIR : S_IFREG);
    const s = u16(sub), pr = u16(print);
    const hdr = kind === "symlink" ? 12 : 8;
    const b = Buffer.alloc(8 + hdr + s.length + pr.length + (kind === "junction" ? 4 : 0));
    b.writeUInt32LE(kind === "symlink" ? 0xa000000c : 0xa0000003, 0);
    b.writeUInt16LE(b.length - 8, 4);
    b.writeUInt16LE(0, 8); b.writeUInt16LE(s.length, 10);
    b.writeUInt16LE(s.length + (kind === "junction" ? 2 : 0), 12); b.writeUInt16LE(pr.length, 14);
    if (kind === "symlink") b.writeUInt32LE(relative ? 1 : 0, 16);
    s.copy(b, 8 + hdr);
    pr.copy(b, 8 + hdr + s.length + (kind === "junction" ? 2 : 0));
    if (this.f.reparse(ni, b, b.length, 0) !== 0) throw new Error(`reparse ${p}`);
    this.f.close(ni);
  }
  compressDir(p: string): void {
    const ni = this.open(p);
    const v = Buffer.alloc(4); v.writeUInt32LE(0x800);      // FILE_ATTRIBUTE_COMPRESSED
    if (this.f.attrib(ni, v, 4, 0) !== 0) throw new Error(`compress ${p}`);
    this.f.close(ni);
  }
  /** Give a file a DOS 8.3 name (its long name moves to the Win32 namespace); closes both inodes. */
  dosName(p: string, dos: string): void {
    const ni = this.open(p), dir = this.open(path.posix.dirname(p));
    if (this.f.dosName(ni, dir, dos, dos.length, 0) !== 0) throw new Error(`dos name ${p}`);
  }
  /** Fill free space with files, then delete every other one: the next large file must fragment. */
  fragmentFreeSpace(dir: string, chunk: number): number {
    const made: string[] = [];
    for (let i = 0; i < 10000; i++) {
      const p = `${dir}/pad-${i}`;
      const ni = this.make(p, S_IFREG);
      const na = this.f.aopen(ni, AT_DATA, Buffer.alloc(2), 0);
      const ok = Number(this.f.pwrite(na, 0n, BigInt(chunk), Buffer.alloc(chunk, 0xee))) === chunk;
      this.f.aclose(na); this.f.close(ni);
      made.push(p);
      if (!ok) break;
    }
    for (let i = 0; i < made.length; i += 2) {
      const ni = this.open(made[i]), d = this.open(dir);
      const base = path.posix.basename(made[i]);
      if (this.f.del(this.vol, made[i], ni, d, u16(base), base.length) !== 0) throw new Error(`delete ${made[i]}`);
    }
    return made.length;
  }
  close(): void { if (this.f.umount(this.vol, 0) !== 0) throw new Error("umount failed"); }
}
