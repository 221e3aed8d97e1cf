# Shared helpers for the fixture builders: tool checks, cached Debian packages, raw-disk byte patching, ext4/VHD pinning.
# Sourced (not executed) by scripts/build-fixtures-*.sh; everything works on plain image files (no loop devices, no mounts).
# Formats touched here: MBR boot code area (bytes 0..439), GRUB 2 i386-pc boot.img fields (grub/include/grub/i386/pc/boot.h),
# VHD footer (Microsoft "Virtual Hard Disk Image Format Specification" v1.0, footer fields and one's-complement checksum).

fx_die() { echo "fixtures: error: $*" >&2; exit 1; }
FX_T0=${EPOCHREALTIME/,/.}
fx_log() { echo "fixtures: [$(awk -v a="$FX_T0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%5.1fs", b - a }')] $*" >&2; }

# fx_need_tools "tool:package" ... — fail with one clear message listing every missing tool and the Debian package that has it.
fx_need_tools() {
  local spec missing=() pkgs=()
  for spec in "$@"; do
    if ! command -v "${spec%%:*}" >/dev/null 2>&1; then
      missing+=("${spec%%:*}")
      pkgs+=("${spec#*:}")
    fi
  done
  if ((${#missing[@]})); then
    fx_die "missing tools: ${missing[*]} — install with: apt-get install -y --no-install-recommends $(printf '%s\n' "${pkgs[@]}" | sort -u | tr '\n' ' ')"
  fi
}

# fx_need_file PATH PACKAGE — a data file shipped by a Debian package (boot code, GRUB modules).
fx_need_file() {
  [[ -e "$1" ]] || fx_die "missing $1 — install with: apt-get install -y --no-install-recommends $2"
}

# fx_hash_files FILE... — sha256 over the given files (the stamp that decides whether a cached fixture set is current).
fx_hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }

# fx_deb_fetch DEBDIR PACKAGE — print the path of PACKAGE's .deb under DEBDIR, downloading it with apt-get download if
# absent. A cached .deb is used as is (offline rebuilds stay possible and byte-stable).
fx_deb_fetch() {
  local dir="$1" pkg="$2" f
  mkdir -p "$dir"
  f=$(ls -1 "$dir/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
  if [[ -z "$f" ]]; then
    fx_log "downloading $pkg (apt-get download)"
    (cd "$dir" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2) \
      || fx_die "apt-get download $pkg failed (run 'apt-get update' first?)"
    f=$(ls -1 "$dir/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
    [[ -n "$f" ]] || fx_die "apt-get download $pkg produced no .deb in $dir"
  fi
  printf '%s\n' "$f"
}

# fx_deb_extract DEB DEST — dpkg-deb -x into DEST once (a .done marker makes later calls free).
fx_deb_extract() {
  local deb="$1" dest="$2"
  if [[ ! -e "$dest/.done" ]]; then
    rm -rf "$dest"
    mkdir -p "$dest"
    dpkg-deb -x "$deb" "$dest" || fx_die "dpkg-deb -x $deb failed"
    : >"$dest/.done"
  fi
}

# fx_write_at FILE BYTE_OFFSET SRC [COUNT] — copy SRC (or its first COUNT bytes) into FILE at BYTE_OFFSET, in place.
fx_write_at() {
  local file="$1" off="$2" src="$3" count="${4:-}"
  if [[ -n "$count" ]]; then
    head -c "$count" "$src" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
  else
    dd if="$src" of="$file" bs=1 seek="$off" conv=notrunc status=none
  fi
}

# fx_put_hex FILE BYTE_OFFSET HEXBYTES — e.g. fx_put_hex disk.img 0x66 9090.
fx_put_hex() {
  local file="$1" off=$(($2)) hex="$3" esc="" i
  for ((i = 0; i < ${#hex}; i += 2)); do esc+="\\x${hex:i:2}"; done
  printf "$esc" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

# fx_le HEXWIDTH_BYTES VALUE — little-endian hex of VALUE over WIDTH bytes (fx_le 8 2048 -> 0008000000000000).
fx_le() {
  local width="$1" v=$(($2)) out="" i
  for ((i = 0; i < width; i++)); do out+=$(printf '%02x' $(((v >> (8 * i)) & 0xff))); done
  printf '%s' "$out"
}

# fx_be WIDTH VALUE — big-endian hex (VHD fields are big-endian).
fx_be() {
  local width="$1" v=$(($2)) out="" i
  for ((i = width - 1; i >= 0; i--)); do out+=$(printf '%02x' $(((v >> (8 * i)) & 0xff))); done
  printf '%s' "$out"
}

# fx_place DISK PARTIMG START_LBA — dd a filesystem image into a disk at a 512-byte LBA, keeping holes sparse.
fx_place() {
  dd if="$2" of="$1" bs=1M seek=$(($3 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
}

# fx_zero DISK BYTE_OFFSET COUNT — overwrite COUNT bytes with zeros.
fx_zero() {
  head -c "$3" /dev/zero | dd of="$1" bs=1 seek="$(($2))" conv=notrunc status=none
}

# fx_grub_bios_setup DISK BOOT_IMG CORE_IMG CORE_LBA — what grub-bios-setup does, without needing a block device:
# boot.img bytes 0..439 into sector 0 (the NT disk signature at 0x1B8 and the partition table stay), the 64-bit core
# LBA at GRUB_BOOT_MACHINE_KERNEL_SECTOR (0x5C), the drive-check jump at GRUB_BOOT_MACHINE_DRIVE_CHECK (0x66) NOPed
# (so the BIOS-supplied DL is trusted), and core.img written at CORE_LBA with the first blocklist entry of its
# diskboot sector (GRUB_BOOT_MACHINE_LIST_SIZE = 12 bytes before the end of sector 1 of core.img: start LBA u64, count
# u16, segment u16) pointed at CORE_LBA + 1. grub-mkimage leaves start = 2, right only for a core at LBA 1 (MBR gap);
# a core in a GPT BIOS boot partition needs the patch. CORE_IMG "-" writes no core at all.
fx_grub_bios_setup() {
  local disk="$1" boot="$2" core="$3" lba="$4"
  fx_write_at "$disk" 0 "$boot" 440
  fx_put_hex "$disk" 0x5C "$(fx_le 8 "$lba")"
  fx_put_hex "$disk" 0x66 9090
  if [[ "$core" != "-" ]]; then
    dd if="$core" of="$disk" bs=512 seek="$lba" conv=notrunc status=none
    fx_put_hex "$disk" $((lba * 512 + 0x1F4)) "$(fx_le 8 $((lba + 1)))"
  fi
}

# fx_mkext4 SRCDIR OUT SIZE_MIB LABEL UUID — ext4 populated from a directory, with every id and time pinned:
# fixed UUID and htree hash seed, root-owned files, and E2FSPROGS_FAKE_TIME (e2fsprogs' own clock override) so the
# superblock times do not change between builds. Inode times come from the source files (callers touch them).
fx_mkext4() {
  local src="$1" out="$2" size="$3" label="$4" uuid="$5"
  rm -f "$out"
  E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" mkfs.ext4 -q -F -b 4096 -L "$label" -U "$uuid" \
    -E "root_owner=0:0,hash_seed=$uuid,lazy_itable_init=0,nodiscard" -d "$src" "$out" "${size}M" >/dev/null \
    || fx_die "mkfs.ext4 -d $src failed"
  # mke2fs -d copies each source file's ctime, which is "now" (touch sets it); pin it with debugfs (no mount needed).
  local stamp
  stamp=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S)
  (cd "$src" && find . -mindepth 1 | sort | sed "s|^\.\(.*\)|sif \"\1\" ctime $stamp|"; echo "sif / ctime $stamp") \
    | E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" debugfs -w -f - "$out" >/dev/null 2>"$out.debugfs.log" \
    || fx_die "debugfs (pinning ctimes) on $out failed: $(cat "$out.debugfs.log")"
  if grep -v '^debugfs ' "$out.debugfs.log" | grep -q .; then
    fx_die "debugfs (pinning ctimes) on $out complained: $(head -n3 "$out.debugfs.log")"
  fi
  rm -f "$out.debugfs.log"
}

# fx_touch_tree DIR — set every mtime/atime under DIR to SOURCE_DATE_EPOCH (cpio, mke2fs -d and mcopy -m copy them;
# mkfs.fat and the mtools inside `syslinux --install` read SOURCE_DATE_EPOCH themselves).
fx_touch_tree() {
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# fx_vhd_checksum FILE BYTE_OFFSET — one's complement of the byte sum of the 512-byte footer at BYTE_OFFSET, with the
# checksum field (footer offset 64, 4 bytes) counted as zero (VHD spec, "Checksum").
fx_vhd_checksum() {
  local sum
  sum=$(od -An -v -tu1 -j "$(($2))" -N 512 "$1" | tr -s ' ' '\n' | awk 'NF { n++; if (n < 65 || n > 68) s += $1 } END { print s }')
  printf '%s' "$(fx_be 4 $(((~sum) & 0xffffffff)))"
}

# fx_vhd_pin FILE UUIDHEX32 — replace the creation time stamp (footer offset 24) and unique id (offset 68) that
# qemu-img writes from the clock and a random generator, then recompute the checksum; for dynamic VHDs the copy of the
# footer at offset 0 gets the same treatment. The time stamp is SOURCE_DATE_EPOCH in seconds since 2000-01-01 UTC.
fx_vhd_pin() {
  local file="$1" uuid="$2" size off ts
  size=$(stat -c %s "$file")
  ts=$((SOURCE_DATE_EPOCH - 946684800))
  for off in $((size - 512)) 0; do
    [[ "$(dd if="$file" bs=1 skip="$off" count=8 status=none | tr -d '\0')" == "conectix" ]] || continue
    fx_put_hex "$file" $((off + 24)) "$(fx_be 4 "$ts")"
    fx_put_hex "$file" $((off + 68)) "$uuid"
    fx_put_hex "$file" $((off + 64)) 00000000
    fx_put_hex "$file" $((off + 64)) "$(fx_vhd_checksum "$file" "$off")"
  done
}

# fx_vmdk_pin FILE CIDHEX8 — replace the random content id that qemu-img writes into the embedded descriptor (VMware
# "Virtual Disk Format 1.1": descriptorOffset/descriptorSize in sectors at sparse-header offsets 28/36; "CID=%x" is
# not zero-padded, so the text is rewritten and re-padded with NULs over the whole descriptor area).
fx_vmdk_pin() {
  local file="$1" cid="$2" doff dsize tmp
  doff=$((0x$(od -An -v -tx8 -j 28 -N 8 "$file" | tr -d ' ')))
  dsize=$((0x$(od -An -v -tx8 -j 36 -N 8 "$file" | tr -d ' ')))
  ((doff > 0 && dsize > 0 && dsize < 128)) || fx_die "$file has no embedded VMDK descriptor (offset $doff, size $dsize)"
  tmp=$(mktemp)
  dd if="$file" bs=512 skip="$doff" count="$dsize" status=none | tr -d '\0' | sed "s/^CID=[0-9a-fA-F]*$/CID=$cid/" >"$tmp"
  grep -q "^CID=$cid$" "$tmp" || fx_die "no CID= line in the descriptor of $file"
  head -c $((dsize * 512)) /dev/zero | dd of="$file" bs=512 seek="$doff" conv=notrunc status=none
  dd if="$tmp" of="$file" bs=512 seek="$doff" conv=notrunc status=none
  rm -f "$tmp"
}
