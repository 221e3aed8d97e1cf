// Raw disk images: the file is the disk. Sparse files read as zeros through the host's holes.
import type { ContainerDriver } from "./registry.ts";
import type { VirtualDisk } from "./block.ts";
import type { ByteSource } from "./source.ts";

export const rawDriver: ContainerDriver = {
  format: "raw",
  extensions: ["img", "raw", "bin", "dd"],
  probe: () => 1,
  open(src: ByteSource): VirtualDisk {
    return {
      info: { format: "raw", path: src.path, fileSize: src.size, virtualSize: src.size, sectorSize: 512, findings: [] },
      readInto(dst, offset) {
        const n = src.readInto(dst, offset);
        if (n < dst.length) dst.fill(0, n);
      },
      close: () => src.close(),
    };
  },
};
