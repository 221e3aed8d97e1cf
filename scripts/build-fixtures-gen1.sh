#!/usr/bin/env bash
# Builds the Hyper-V Gen1 (BIOS) boot fixtures of issue 3 and the README demo images from Debian packages (shared/FIXTURES.md).
# needs: grub-pc-bin grub-common syslinux syslinux-common mtools dosfstools e2fsprogs fdisk util-linux cpio gzip kmod qemu-utils dpkg apt coreutils findutils
# downloaded with `apt-get download`, never installed (cached in .cache/debs/): linux-image-6.1.*-amd64 (the package
# linux-image-amd64 depends on) and busybox-static.
# Output: .cache/fixtures/gen1/*.img (raw disks), manifest.json, SHA256SUMS; .cache/fixtures/demo/*.vhd.
# No loop devices, no mounts. Rebuilds are skipped while .cache/fixtures/gen1/.stamp holds the hash of this script and
# scripts/fixture-lib.sh; `--force` rebuilds anyway. Every id, time and seed is pinned so rebuilds are byte-identical.
# EXTLINUX on ext4 is NOT built: `extlinux --install` takes a mounted directory (it maps ldlinux.sys's blocks through the
# mounted filesystem), which this builder must not need.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/fixture-lib.sh
. "$HERE/fixture-lib.sh"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

export SOURCE_DATE_EPOCH=1700000000 TZ=UTC LC_ALL=C
umask 022

CACHE=.cache/fixtures
OUT=$CACHE/gen1
DEMO=$CACHE/demo
DEBS=.cache/debs
STAMP_HASH=$(fx_hash_files "$HERE/build-fixtures-gen1.sh" "$HERE/fixture-lib.sh")

# Pinned identities (the tests and the emulator's expectations use these through manifest.json).
ROOT_UUID=b007ea7e-0000-4000-8000-000000000001   # ext4 root filesystem of every fixture
MBR_ID=0xb007ea7e                                 # NT disk signature at 0x1B8
GPT_DISK_GUID=B007EA7E-0000-4000-8000-0000000000D0
GPT_PART1_GUID=B007EA7E-0000-4000-8000-0000000000B1
GPT_PART2_GUID=B007EA7E-0000-4000-8000-0000000000B2
FAT_VOLID=B007EA7E                                # FAT serial, blkid shows B007-EA7E
BIOS_BOOT_TYPE=21686148-6449-6E6F-744E-656564454649
LINUX_FS_TYPE=0FC63DAF-8483-4772-8E79-3D69D8477DE4
DISK_MIB=64
GRUB_DIR=/usr/lib/grub/i386-pc
SYSLINUX_MBR=/usr/lib/syslinux/mbr/mbr.bin

mkdir -p "$CACHE"
exec 9>"$CACHE/.gen1.lock"
flock 9 # concurrent test workers wait for one build instead of racing it

if ((!FORCE)) && [[ -f "$OUT/.stamp" && "$(head -n1 "$OUT/.stamp")" == "$STAMP_HASH" ]]; then
  fx_log "gen1 fixtures up to date ($OUT)"
  exit 0
fi

fx_need_tools sfdisk:fdisk mkfs.ext4:e2fsprogs debugfs:e2fsprogs truncate:coreutils mkfs.fat:dosfstools mcopy:mtools mattrib:mtools syslinux:syslinux \
  grub-mkimage:grub-common cpio:cpio gzip:gzip depmod:kmod modprobe:kmod qemu-img:qemu-utils dpkg-deb:dpkg \
  apt-get:apt apt-cache:apt flock:util-linux sha256sum:coreutils od:coreutils find:findutils awk:mawk
fx_need_file "$GRUB_DIR/boot.img" grub-pc-bin
fx_need_file "$GRUB_DIR/normal.mod" grub-pc-bin
fx_need_file "$SYSLINUX_MBR" syslinux-common

T0=$(date +%s.%N)
WORK=$CACHE/.gen1-work
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# ---- kernel and busybox from Debian ---------------------------------------------------------------------------------
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-amd64$/ { print $2; exit }' || true)
if [[ -z "$KPKG" ]]; then # no apt lists (offline): fall back to a cached download
  KDEB=$(ls -1 "$DEBS"/linux-image-6.1.*-amd64_*.deb 2>/dev/null | sort -V | tail -n1 || true)
  [[ -n "$KDEB" ]] || fx_die "cannot resolve linux-image-amd64's kernel package (apt-cache depends linux-image-amd64 gave no linux-image-6.1.*-amd64; run apt-get update)"
  KPKG=$(basename "$KDEB" | cut -d_ -f1)
else
  KDEB=$(fx_deb_fetch "$DEBS" "$KPKG")
fi
KVER=${KPKG#linux-image-}
BBDEB=$(fx_deb_fetch "$DEBS" busybox-static)
KX=$ROOT/$DEBS/x/$(basename "$KDEB" .deb)
fx_deb_extract "$KDEB" "$KX"
if [[ ! -e "$KX/lib/modules/$KVER/modules.dep" ]]; then
  depmod -b "$KX" "$KVER" || fx_die "depmod on the extracted $KPKG failed"
fi
BX=$DEBS/x/$(basename "$BBDEB" .deb)
fx_deb_extract "$BBDEB" "$BX"
VMLINUZ=$KX/boot/vmlinuz-$KVER
BUSYBOX=$BX/bin/busybox
[[ -f "$VMLINUZ" ]] || fx_die "$KDEB has no boot/vmlinuz-$KVER"
[[ -x "$BUSYBOX" ]] || fx_die "$BBDEB has no bin/busybox"

# mods_closure MOD... — the modules (paths relative to lib/modules/KVER) in load order, dependencies and softdeps first.
mods_closure() {
  local m
  for m in "$@"; do
    modprobe -d "$KX" -S "$KVER" --show-depends "$m" || fx_die "modprobe --show-depends $m failed"
  done | awk -v p="$KX/lib/modules/$KVER/" '$1 == "insmod" && index($2, p) == 1 { m = substr($2, length(p) + 1); if (!seen[m]++) print m }'
}

# The storage path of a Hyper-V Gen1 guest: hv_vmbus + hv_storvsc (the disk over VMBus), ata_piix (the emulated IDE),
# sd_mod (SCSI disks; a dependency of neither, but without it no /dev/sdX appears) and ext4 with its crc32c softdep.
MODS_HV=(hv_vmbus hv_storvsc ata_piix sd_mod ext4)
MODS_NOHV=(ata_piix sd_mod ext4)
mapfile -t CLOSURE_HV < <(mods_closure "${MODS_HV[@]}")
mapfile -t CLOSURE_NOHV < <(mods_closure "${MODS_NOHV[@]}")
((${#CLOSURE_HV[@]} > 5 && ${#CLOSURE_NOHV[@]} > 3)) || fx_die "module closure came out empty (modprobe --show-depends -d $KX)"

# ---- initramfs: busybox + modules + an /init that loads them, finds root= and switch_roots ----------------------------
make_initrd() { # OUT MODULE_PATH...
  local out="$1" d m
  shift
  d=$WORK/initrd.$$.$RANDOM
  mkdir -p "$d"/{bin,dev,proc,sys,root,run,etc} "$d/lib/modules/$KVER"
  cp "$BUSYBOX" "$d/bin/busybox"
  ln -s busybox "$d/bin/sh"
  for m in "$@"; do
    mkdir -p "$d/lib/modules/$KVER/$(dirname "$m")"
    cp "$KX/lib/modules/$KVER/$m" "$d/lib/modules/$KVER/$m"
    echo "$m"
  done >"$d/etc/bootgate-modules"
  cat >"$d/init" <<EOF
#!/bin/sh
# bootgate fixture initramfs: load the storage modules listed in /etc/bootgate-modules, mount root=, switch_root.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "bootgate-initrd: kernel \$(uname -r), loading modules"
while read -r m; do insmod "/lib/modules/$KVER/\$m" || echo "bootgate-initrd: insmod \$m failed"; done </etc/bootgate-modules
root=
for a in \$(cat /proc/cmdline); do case "\$a" in root=*) root="\${a#root=}" ;; esac; done
i=0
while [ \$i -lt 20 ]; do dev=\$(findfs "\$root" 2>/dev/null) && break; sleep 1; i=\$((i + 1)); done
if [ -n "\$dev" ] && mount -t ext4 -o ro "\$dev" /root; then
  echo "bootgate-initrd: root \$root is \$dev"
  exec switch_root /root /sbin/init
fi
echo "bootgate-initrd: Gave up waiting for root file system device \$root"
exec sh
EOF
  chmod 755 "$d/init"
  fx_touch_tree "$d"
  (cd "$d" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -6n >"$out"
  touch -d "@$SOURCE_DATE_EPOCH" "$out"
}
fx_log "building initramfs images"
make_initrd "$WORK/initrd-hv.img" "${CLOSURE_HV[@]}"
make_initrd "$WORK/initrd-nohv.img" "${CLOSURE_NOHV[@]}"

# ---- root filesystem trees ------------------------------------------------------------------------------------------
CMDLINE="root=UUID=$ROOT_UUID ro console=ttyS0 quiet"
CMDLINE_SYSLINUX="root=UUID=$ROOT_UUID ro console=ttyS0"

grub_cfg_plain() {
  cat <<EOF
# bootgate fixture: boot straight into Linux
set timeout=0
linux /boot/vmlinuz-$KVER $CMDLINE
initrd /boot/initrd.img-$KVER
boot
EOF
}
grub_cfg_menu() {
  cat <<EOF
# bootgate fixture: a two-entry menu with a 5 s timeout, default entry 0
set default=0
set timeout=5
set timeout_style=menu
menuentry 'Debian GNU/Linux, with Linux $KVER' {
	linux /boot/vmlinuz-$KVER $CMDLINE
	initrd /boot/initrd.img-$KVER
}
menuentry 'Debian GNU/Linux, with Linux $KVER (recovery mode)' {
	linux /boot/vmlinuz-$KVER root=UUID=$ROOT_UUID ro single console=ttyS0
	initrd /boot/initrd.img-$KVER
}
EOF
}

# make_root DIR INITRD|- GRUBCFG_FUNC|- — a minimal Debian-like root: busybox as /sbin/init, fstab by UUID, the kernel's
# module tree for the storage path, and (when INITRD is given) /boot with the kernel, initrd and GRUB's i386-pc modules.
make_root() {
  local d="$1" initrd="$2" cfg="$3" m
  mkdir -p "$d"/{bin,sbin,etc,dev,proc,sys,run,tmp,root,boot} "$d/lib/modules/$KVER"
  cp "$BUSYBOX" "$d/bin/busybox"
  ln -s busybox "$d/bin/sh"
  cat >"$d/sbin/init" <<'EOF'
#!/bin/busybox sh
# bootgate fixture root: proves the root filesystem was reached, then powers off.
/bin/busybox mount -t proc proc /proc
echo "bootgate-root: reached /sbin/init on $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
EOF
  chmod 755 "$d/sbin/init"
  printf 'UUID=%s / ext4 defaults 0 1\n' "$ROOT_UUID" >"$d/etc/fstab"
  echo bootgate-fixture >"$d/etc/hostname"
  cp "$KX/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$d/lib/modules/$KVER/"
  for m in "${CLOSURE_HV[@]}"; do
    mkdir -p "$d/lib/modules/$KVER/$(dirname "$m")"
    cp "$KX/lib/modules/$KVER/$m" "$d/lib/modules/$KVER/$m"
  done
  depmod -b "$d" "$KVER" || fx_die "depmod on the fixture root failed"
  if [[ "$initrd" != "-" ]]; then
    cp "$VMLINUZ" "$d/boot/vmlinuz-$KVER"
    cp "$KX/boot/config-$KVER" "$d/boot/config-$KVER" # the OS stage reads CONFIG_HYPERV_STORAGE / RD_GZIP from it
    cp "$initrd" "$d/boot/initrd.img-$KVER"
    mkdir -p "$d/boot/grub/i386-pc"
    cp "$GRUB_DIR"/*.mod "$GRUB_DIR"/*.lst "$d/boot/grub/i386-pc/"
    "$cfg" >"$d/boot/grub/grub.cfg"
  fi
  fx_touch_tree "$d"
}

# ---- GRUB fixtures --------------------------------------------------------------------------------------------------
SECTORS=$((DISK_MIB * 2048))
new_disk() { rm -f "$1"; truncate -s "${DISK_MIB}M" "$1"; }

core_img() { # OUT PREFIX MODULE...
  local out="$1" prefix="$2"
  shift 2
  grub-mkimage -O i386-pc -d "$GRUB_DIR" -p "$prefix" -o "$out" "$@" || fx_die "grub-mkimage ($prefix) failed"
}

# grub_mbr OUT INITRD CFGFUNC PREFIX — MBR, one active ext4 partition at 1 MiB, core.img in the MBR gap at LBA 1.
grub_mbr() {
  local out="$1" initrd="$2" cfg="$3" prefix="$4" tag fs
  tag=$(basename "$out" .img)
  fs=$WORK/mbr-$cfg-$(basename "$initrd" .img) # fixtures that differ only in core.img share one filesystem
  if [[ ! -f "$fs.ext4" ]]; then
    make_root "$fs.root" "$initrd" "$cfg"
    fx_mkext4 "$fs.root" "$fs.ext4" $((DISK_MIB - 1)) root "$ROOT_UUID"
  fi
  core_img "$WORK/$tag.core" "$prefix" biosdisk part_msdos ext2
  new_disk "$out"
  printf 'label: dos\nlabel-id: %s\nunit: sectors\nstart=2048, size=%d, type=83, bootable\n' "$MBR_ID" $((SECTORS - 2048)) |
    sfdisk -q --no-reread --no-tell-kernel "$out" >/dev/null
  fx_place "$out" "$fs.ext4" 2048
  fx_grub_bios_setup "$out" "$GRUB_DIR/boot.img" "$WORK/$tag.core" 1
}

fx_log "building GRUB fixtures (kernel $KVER)"
grub_mbr "$WORK/grub-mbr.img" "$WORK/initrd-hv.img" grub_cfg_plain '(hd0,msdos1)/boot/grub'
fx_log "grub-mbr done"
grub_mbr "$WORK/grub-wrong-prefix.img" "$WORK/initrd-hv.img" grub_cfg_plain '(hd0,msdos2)/boot/grub'
grub_mbr "$WORK/grub-menu-timeout.img" "$WORK/initrd-hv.img" grub_cfg_menu '(hd0,msdos1)/boot/grub'
grub_mbr "$WORK/grub-no-hv-initrd.img" "$WORK/initrd-nohv.img" grub_cfg_plain '(hd0,msdos1)/boot/grub'

# GPT layout shared by the two GPT fixtures: root ext4 at 2 MiB up to 1 MiB before the end.
GPT_ROOT_START=4096
GPT_ROOT_SIZE=$((SECTORS - 4096 - 2048))
make_root "$WORK/gpt.root" "$WORK/initrd-hv.img" grub_cfg_plain
fx_mkext4 "$WORK/gpt.root" "$WORK/gpt.ext4" $((GPT_ROOT_SIZE / 2048)) root "$ROOT_UUID"

fx_log "MBR GRUB fixtures done"
# grub-gpt-biosboot: 1 MiB BIOS boot partition at LBA 2048 holding core.img, ext4 root as partition 2.
core_img "$WORK/gpt.core" '(hd0,gpt2)/boot/grub' biosdisk part_gpt ext2
new_disk "$WORK/grub-gpt-biosboot.img"
cat <<EOF | sfdisk -q --no-reread --no-tell-kernel "$WORK/grub-gpt-biosboot.img" >/dev/null
label: gpt
label-id: $GPT_DISK_GUID
unit: sectors
first-lba: 2048
start=2048, size=2048, type=$BIOS_BOOT_TYPE, uuid=$GPT_PART1_GUID, name="BIOS boot"
start=$GPT_ROOT_START, size=$GPT_ROOT_SIZE, type=$LINUX_FS_TYPE, uuid=$GPT_PART2_GUID, name="root"
EOF
fx_place "$WORK/grub-gpt-biosboot.img" "$WORK/gpt.ext4" "$GPT_ROOT_START"
fx_grub_bios_setup "$WORK/grub-gpt-biosboot.img" "$GRUB_DIR/boot.img" "$WORK/gpt.core" 2048

# gpt-no-biosboot: the same disk after a conversion dropped the BIOS boot partition: boot.img still points at LBA 2048,
# which is now unpartitioned and zero; the ext4 root (with /boot/grub intact) is the only partition.
new_disk "$WORK/gpt-no-biosboot.img"
cat <<EOF | sfdisk -q --no-reread --no-tell-kernel "$WORK/gpt-no-biosboot.img" >/dev/null
label: gpt
label-id: $GPT_DISK_GUID
unit: sectors
first-lba: 2048
start=$GPT_ROOT_START, size=$GPT_ROOT_SIZE, type=$LINUX_FS_TYPE, uuid=$GPT_PART2_GUID, name="root"
EOF
fx_place "$WORK/gpt-no-biosboot.img" "$WORK/gpt.ext4" "$GPT_ROOT_START"
fx_grub_bios_setup "$WORK/gpt-no-biosboot.img" "$GRUB_DIR/boot.img" - 2048

# zeroed-bootcode / no-55aa: grub-mbr.img with the MBR code area, or the boot signature, wiped.
cp --sparse=always "$WORK/grub-mbr.img" "$WORK/zeroed-bootcode.img"
fx_zero "$WORK/zeroed-bootcode.img" 0 440
cp --sparse=always "$WORK/grub-mbr.img" "$WORK/no-55aa.img"
fx_zero "$WORK/no-55aa.img" 0x1FE 2

# ---- SYSLINUX fixtures ----------------------------------------------------------------------------------------------
# syslinux-fat: MBR with SYSLINUX mbr.bin; partition 1 active FAT32 (ldlinux.sys via the mtools installer, kernel,
# initrd, syslinux.cfg); partition 2 the ext4 root that root=UUID= names.
fx_log "building SYSLINUX fixtures"
FAT_MIB=40
FAT_START=2048
EXT_START=$((FAT_START + FAT_MIB * 2048))
EXT_SIZE=$((SECTORS - EXT_START))
cat >"$WORK/syslinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND $CMDLINE_SYSLINUX
  INITRD initrd.img
EOF
cp "$VMLINUZ" "$WORK/vmlinuz"
cp "$WORK/initrd-hv.img" "$WORK/initrd.img.fat"
touch -d "@$SOURCE_DATE_EPOCH" "$WORK/syslinux.cfg" "$WORK/vmlinuz" "$WORK/initrd.img.fat"
rm -f "$WORK/fat.img"
# --invariant pins the volume label entry's time (mkfs.fat ignores SOURCE_DATE_EPOCH there) but also forces the serial
# to 1234-ABCD, so the serial (BS_VolID at 0x43 of the FAT32 boot sector and of its backup in sector 6) is set after.
mkfs.fat -F 32 -s 1 -n BOOTGATE -h "$FAT_START" --invariant -C "$WORK/fat.img" $((FAT_MIB * 1024)) >/dev/null \
  || fx_die "mkfs.fat failed"
fx_put_hex "$WORK/fat.img" 0x43 "$(fx_le 4 "0x$FAT_VOLID")"
fx_put_hex "$WORK/fat.img" $((6 * 512 + 0x43)) "$(fx_le 4 "0x$FAT_VOLID")"
export MTOOLS_SKIP_CHECK=1
mcopy -m -i "$WORK/fat.img" "$WORK/vmlinuz" ::/vmlinuz && mcopy -m -i "$WORK/fat.img" "$WORK/initrd.img.fat" ::/initrd.img &&
  mcopy -m -i "$WORK/fat.img" "$WORK/syslinux.cfg" ::/syslinux.cfg || fx_die "mcopy onto the FAT image failed"
syslinux --install "$WORK/fat.img" || fx_die "syslinux --install failed"
make_root "$WORK/sys.root" - -
fx_mkext4 "$WORK/sys.root" "$WORK/sys.ext4" $((EXT_SIZE / 2048)) root "$ROOT_UUID"

syslinux_disk() { # OUT ACTIVE(0|1)
  local out="$1" boot=""
  ((${2})) && boot=", bootable"
  new_disk "$out"
  printf 'label: dos\nlabel-id: %s\nunit: sectors\nstart=%d, size=%d, type=c%s\nstart=%d, size=%d, type=83\n' \
    "$MBR_ID" "$FAT_START" $((FAT_MIB * 2048)) "$boot" "$EXT_START" "$EXT_SIZE" |
    sfdisk -q --no-reread --no-tell-kernel "$out" >/dev/null
  fx_place "$out" "$WORK/fat.img" "$FAT_START"
  fx_place "$out" "$WORK/sys.ext4" "$EXT_START"
  fx_write_at "$out" 0 "$SYSLINUX_MBR" 440
}
syslinux_disk "$WORK/syslinux-fat.img" 1
syslinux_disk "$WORK/no-active.img" 0 # mbr.bin finds no 0x80 flag: prints "Missing operating system." and INT 18h

# ---- demo images and containers -------------------------------------------------------------------------------------
fx_log "converting demo images"
mkdir -p "$WORK/demo"
to_vhd() { # IN OUT SUBFORMAT UUIDHEX
  rm -f "$2"
  qemu-img convert -q -f raw -O vpc -o "subformat=$3,force_size=on" "$1" "$2" || fx_die "qemu-img convert $1 -> $2 failed"
  fx_vhd_pin "$2" "$4"
}
to_vhd "$WORK/grub-mbr.img" "$WORK/demo/demo-good.vhd" fixed b007ea7e00004000800000000000de01
to_vhd "$WORK/grub-wrong-prefix.img" "$WORK/demo/demo-broken.vhd" fixed b007ea7e00004000800000000000de02
to_vhd "$WORK/grub-mbr.img" "$WORK/demo/demo-dynamic.vhd" dynamic b007ea7e00004000800000000000de03
# The GRUB/MBR disk in every other container (qcow2 is byte-stable, the VMDK's random CID is pinned; VHDX carries random
# GUIDs under CRC-32C checksums from qemu-img, so it is the one file here that differs between builds).
cp --sparse=always "$WORK/demo/demo-good.vhd" "$WORK/grub-mbr.vhd"
qemu-img convert -q -f raw -O vhdx "$WORK/grub-mbr.img" "$WORK/grub-mbr.vhdx"
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$WORK/grub-mbr.img" "$WORK/grub-mbr.vmdk"
fx_vmdk_pin "$WORK/grub-mbr.vmdk" b007ea7e
qemu-img convert -q -f raw -O qcow2 "$WORK/grub-mbr.img" "$WORK/grub-mbr.qcow2"

fx_log "containers done"
# ---- manifest -------------------------------------------------------------------------------------------------------
# "cmdline" and "screen" are what these images did under QEMU 7.2 -machine pc with SeaBIOS 1.16 and the disk on IDE
# (checked by hand when the builder was written; the fixture tests check structure only).
json_list() { local s="" x; for x in "$@"; do s+="${s:+, }\"$x\""; done; printf '[%s]' "$s"; }
cat >"$WORK/manifest.json" <<EOF
{
  "kernelPackage": "$(basename "$KDEB" .deb)",
  "busyboxPackage": "$(basename "$BBDEB" .deb)",
  "kernelVersion": "$KVER",
  "rootUuid": "$ROOT_UUID",
  "mbrDiskId": "$MBR_ID",
  "gptDiskGuid": "$GPT_DISK_GUID",
  "fatVolumeId": "$FAT_VOLID",
  "diskBytes": $((DISK_MIB * 1048576)),
  "initrdModules": $(json_list "${CLOSURE_HV[@]}"),
  "initrdModulesNoHv": $(json_list "${CLOSURE_NOHV[@]}"),
  "fixtures": {
    "grub-mbr.img": { "loader": "grub", "table": "mbr", "coreLba": 1, "prefix": "(hd0,msdos1)/boot/grub", "kernel": "/boot/vmlinuz-$KVER", "append": "$CMDLINE", "cmdline": "BOOT_IMAGE=/boot/vmlinuz-$KVER $CMDLINE", "screen": "GRUB loading.", "expect": "kernel" },
    "grub-gpt-biosboot.img": { "loader": "grub", "table": "gpt", "coreLba": 2048, "prefix": "(hd0,gpt2)/boot/grub", "kernel": "/boot/vmlinuz-$KVER", "append": "$CMDLINE", "cmdline": "BOOT_IMAGE=/boot/vmlinuz-$KVER $CMDLINE", "expect": "kernel" },
    "gpt-no-biosboot.img": { "loader": "grub", "table": "gpt", "coreLba": 2048, "expect": "bootloader", "screen": "GRUB GRUB GRUB", "note": "boot.img points at LBA 2048, which is zero; it runs the zero sector and loops printing GRUB" },
    "syslinux-fat.img": { "loader": "syslinux", "table": "mbr", "kernel": "vmlinuz", "append": "$CMDLINE_SYSLINUX", "cmdline": "BOOT_IMAGE=vmlinuz $CMDLINE_SYSLINUX initrd=initrd.img", "expect": "kernel" },
    "no-active.img": { "loader": "syslinux", "table": "mbr", "expect": "bootloader", "screen": "Missing operating system." },
    "zeroed-bootcode.img": { "loader": "none", "table": "mbr", "expect": "bootloader", "note": "bytes 0..439 zero, 55AA kept; executes zeros" },
    "no-55aa.img": { "loader": "grub", "table": "mbr", "expect": "firmware", "note": "0x1FE..0x1FF zero" },
    "grub-wrong-prefix.img": { "loader": "grub", "table": "mbr", "coreLba": 1, "prefix": "(hd0,msdos2)/boot/grub", "expect": "bootloader", "screen": "error: no such partition.\ngrub rescue> " },
    "grub-menu-timeout.img": { "loader": "grub", "table": "mbr", "coreLba": 1, "prefix": "(hd0,msdos1)/boot/grub", "kernel": "/boot/vmlinuz-$KVER", "append": "$CMDLINE", "cmdline": "BOOT_IMAGE=/boot/vmlinuz-$KVER $CMDLINE", "timeout": 5, "screen": "Booting \`Debian GNU/Linux, with Linux $KVER'", "expect": "kernel" },
    "grub-no-hv-initrd.img": { "loader": "grub", "table": "mbr", "coreLba": 1, "prefix": "(hd0,msdos1)/boot/grub", "kernel": "/boot/vmlinuz-$KVER", "append": "$CMDLINE", "cmdline": "BOOT_IMAGE=/boot/vmlinuz-$KVER $CMDLINE", "expect": "kernel", "note": "initrd lacks hv_vmbus/hv_storvsc" }
  },
  "notBuilt": { "extlinux-ext4.img": "extlinux --install needs a mounted filesystem" }
}
EOF

# ---- publish atomically ---------------------------------------------------------------------------------------------
for f in "$WORK"/*.img "$WORK"/grub-mbr.vhd* "$WORK"/grub-mbr.vmdk "$WORK"/grub-mbr.qcow2; do
  case "$(basename "$f")" in initrd-*|fat.img) continue ;; esac
  echo "$(basename "$f")"
done >"$WORK/.list"
rm -rf "$WORK/pub"
mkdir -p "$WORK/pub"
while read -r f; do mv "$WORK/$f" "$WORK/pub/$f"; done <"$WORK/.list"
mv "$WORK/manifest.json" "$WORK/pub/"
cp "$WORK/initrd-hv.img" "$WORK/pub/initrd-hv.cpio.gz"
cp "$WORK/initrd-nohv.img" "$WORK/pub/initrd-nohv.cpio.gz"
(cd "$WORK/pub" && sha256sum -- * >SHA256SUMS)
(cd "$WORK/demo" && sha256sum -- * >SHA256SUMS)
rm -rf "$OUT" "$DEMO"
mv "$WORK/pub" "$OUT"
mv "$WORK/demo" "$DEMO"
printf '%s\n%s\n' "$STAMP_HASH" "$KPKG" >"$OUT/.stamp"
fx_log "gen1 fixtures built in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s: $OUT, $DEMO"
