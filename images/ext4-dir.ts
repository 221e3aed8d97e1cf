// ext2/3/4 directory entries (ext4 disk layout, "Directory Entries", "Linear (Classic) Directories",
// "Hash Tree Directories", "Inline Data"): linear scan of every directory block. An htree's root
// and interior blocks look like empty entries to a linear scan, so its leaves yield every name.
import { corrupt } from "./errors.ts";

export interface DirEntry { name: string; ino: number; fileType: number }

/** ext4_dir_entry_2.file_type values ("Directory Entries"). */
export const EXT4_FT_DIR = 2;
export const EXT4_FT_SYMLINK = 7;

/** Decode rec_len: 65536-byte blocks store a full-block record as 65535 or 0 (ext4_rec_len_from_disk). */
function recLen(v: number, blockSize: number): number {
  if (blockSize >= 65536 && (v === 65535 || v === 0)) return 65536;
  return v;
}

/**
 * Parse the entries of one directory area (a block, or one part of an inline directory).
 * `hasFileType`: INCOMPAT_FILETYPE (name_len is 8 bits followed by the type; else 16 bits).
 */
export function parseDirEntries(buf: Buffer, blockSize: number, hasFileType: boolean, inodesCount: number,
                                where: string, out: DirEntry[]): void {
  let p = 0;
  while (p < buf.length) {
    if (p + 8 > buf.length) throw corrupt("E_EXT4_DIRENT", `${where}: directory entry at offset ${p} is cut off by the end of the block (${buf.length} bytes)`);
    const ino = buf.readUInt32LE(p);
    const rec = recLen(buf.readUInt16LE(p + 4), blockSize);
    const nameLen = hasFileType ? buf[p + 6] : buf.readUInt16LE(p + 6);
    const fileType = hasFileType ? buf[p + 7] : 0;
    if (rec < 8 || rec % 4 !== 0 || p + rec > buf.length) {
      throw corrupt("E_EXT4_DIRENT", `${where}: directory entry at offset ${p} has rec_len ${rec} (block of ${buf.length} bytes)`);
    }
    if (ino !== 0) {
      if (8 + nameLen > rec) throw corrupt("E_EXT4_DIRENT", `${where}: entry at offset ${p} has name_len ${nameLen} beyond its rec_len ${rec}`);
      if (ino > inodesCount) throw corrupt("E_EXT4_DIRENT", `${where}: entry at offset ${p} names inode ${ino}; the filesystem has ${inodesCount}`);
      if (nameLen > 0) {
        const name = buf.subarray(p + 8, p + 8 + nameLen).toString("utf8");
        if (name !== "." && name !== "..") out.push({ name, ino, fileType });
      }
    }
    p += rec;
  }
}
