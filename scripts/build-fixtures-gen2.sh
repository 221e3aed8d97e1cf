#!/usr/bin/env bash
# Builds the Hyper-V Gen2 (UEFI) boot fixtures of issue 5 from Debian packages (shared/FIXTURES.md): GPT disks with an ESP.
# needs: shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed grub-efi-amd64-bin grub-common mtools dosfstools
#        e2fsprogs fdisk util-linux cpio gzip kmod qemu-utils dpkg coreutils findutils — and the Gen1 set, which this script
#        builds first (scripts/build-fixtures-gen1.sh, cached): its Debian kernel (.cache/debs/x/), busybox, the Hyper-V
#        initramfs initrd-hv.cpio.gz (hv_vmbus + hv_storvsc + ...) and grub-mbr.img are reused unchanged.
# Output: .cache/fixtures/gen2/*.img (raw 80 MiB sparse disks), gen2-shim-removable.vhdx, manifest.json, SHA256SUMS.
# No loop devices, no mounts. Rebuilds are skipped while .cache/fixtures/gen2/.stamp holds the hash of this script,
# scripts/fixture-lib.sh, the Gen1 stamp and the Debian EFI binaries; `--force` rebuilds anyway. Ids, times and seeds are
# pinned, so the raw images are byte-identical between builds (the .vhdx is not: qemu-img writes random VHDX GUIDs).
#
# Facts about Debian's signed grubx64.efi (grub-efi-amd64-signed 2.06, read with `strings`): a monolithic image whose
# prefix is "/EFI/debian" (on the device it was loaded from) and whose memdisk config is
#   if [ -z "$prefix" -o ! -e "$prefix" ]; then search --file --set=root /.disk/info ...; set prefix=($root)/boot/grub; fi
#   if [ -e $prefix/x86_64-efi/grub.cfg ]; then source ...; elif [ -e $prefix/grub.cfg ]; then source $prefix/grub.cfg;
#   else source $cmdpath/grub.cfg; fi
# so started from \EFI\BOOT it still reads \EFI\debian\grub.cfg when \EFI\debian exists, else \EFI\BOOT\grub.cfg
# ($cmdpath). Its built-in modules include part_gpt fat ext2 search_fs_uuid configfile linux gzio, so the root's grub.cfg
# may `insmod` those (a no-op); under Secure Boot it cannot load any other module from disk.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/fixture-lib.sh
. "$HERE/fixture-lib.sh"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

export SOURCE_DATE_EPOCH=1700000000 TZ=UTC LC_ALL=C MTOOLS_SKIP_CHECK=1
umask 022

CACHE=.cache/fixtures
OUT=$CACHE/gen2
GEN1=$CACHE/gen1
DEBS=.cache/debs

# Debian files that go onto the ESPs as they are.
SHIM=/usr/lib/shim/shimx64.efi.signed            # shim-signed: Microsoft UEFI CA signed shim
FBX64=/usr/lib/shim/fbx64.efi.signed             # shim-helpers-amd64-signed: shim's fallback, Debian signed
CSV_DEBIAN=/usr/lib/shim/BOOTX64.CSV             # shim-unsigned: the vendor CSV fallback reads (UTF-16LE, no BOM)
GRUB_SIGNED=/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed   # grub-efi-amd64-signed: monolithic, Debian signed
GRUB_EFI_DIR=/usr/lib/grub/x86_64-efi            # grub-efi-amd64-bin: modules for grub-mkimage and /boot/grub

# Pinned identities (tests and the Gen2 emulator read them from manifest.json).
ROOT_UUID=b007ea7e-0000-4000-8000-000000000002   # ext4 root of every GPT fixture (Gen1 uses ...0001)
MISSING_UUID=b007ea7e-0000-4000-8000-00000000dead # searched by gen2-missing-uuid.img's stub; on no filesystem
GPT_DISK_GUID=B007EA7E-0000-4000-8000-0000000000E0
ESP_PART_GUID=B007EA7E-0000-4000-8000-0000000000E1
ROOT_PART_GUID=B007EA7E-0000-4000-8000-0000000000E2
ESP_VOLID=B007EF15                                # FAT serial, blkid shows B007-EF15
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B     # EFI System Partition [UEFI 2.10 Table 5-7]
LINUX_FS_TYPE=0FC63DAF-8483-4772-8E79-3D69D8477DE4
DISK_MIB=80
ESP_START=2048
ESP_MIB=34        # FAT32 needs >= 65525 clusters: 34 MiB of 512-byte clusters is just above the minimum
ROOT_START=$((ESP_START + ESP_MIB * 2048))
ROOT_SECTORS=$((DISK_MIB * 2048 - ROOT_START - 2048)) # 1 MiB kept free at the end (GPT backup)

mkdir -p "$CACHE"
exec 9>"$CACHE/.gen2.lock"
flock 9 # concurrent test workers wait for one build instead of racing it

# The Gen1 set first (a no-op when current): its kernel, busybox, initramfs and grub-mbr.img are inputs here.
bash "$HERE/build-fixtures-gen1.sh" || fx_die "building the Gen1 fixtures (scripts/build-fixtures-gen1.sh) failed"
[[ -f "$GEN1/.stamp" && -f "$GEN1/manifest.json" ]] || fx_die "the Gen1 fixture set in $GEN1 is incomplete"

fx_need_file "$SHIM" shim-signed
fx_need_file "$FBX64" shim-helpers-amd64-signed
fx_need_file "$CSV_DEBIAN" shim-unsigned
fx_need_file "$GRUB_SIGNED" grub-efi-amd64-signed
fx_need_file "$GRUB_EFI_DIR/kernel.img" grub-efi-amd64-bin
fx_need_file "$GRUB_EFI_DIR/normal.mod" grub-efi-amd64-bin
STAMP_HASH=$(fx_hash_files "$HERE/build-fixtures-gen2.sh" "$HERE/fixture-lib.sh" "$GEN1/.stamp" "$SHIM" "$FBX64" "$CSV_DEBIAN" \
  "$GRUB_SIGNED" "$GRUB_EFI_DIR/kernel.img" "$GRUB_EFI_DIR/moddep.lst")

if ((!FORCE)) && [[ -f "$OUT/.stamp" && "$(head -n1 "$OUT/.stamp")" == "$STAMP_HASH" ]]; then
  fx_log "gen2 fixtures up to date ($OUT)"
  exit 0
fi

fx_need_tools sfdisk:fdisk mkfs.ext4:e2fsprogs debugfs:e2fsprogs truncate:coreutils mkfs.fat:dosfstools mcopy:mtools mmd:mtools \
  grub-mkimage:grub-common cpio:cpio gzip:gzip depmod:kmod qemu-img:qemu-utils dpkg-deb:dpkg dpkg-query:dpkg \
  flock:util-linux sha256sum:coreutils find:findutils awk:mawk

T0=$(date +%s.%N)
WORK=$CACHE/.gen2-work
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# ---- inputs from the Gen1 set ---------------------------------------------------------------------------------------
manifest_field() { sed -n "s/^  \"$1\": \"\\(.*\\)\",\$/\\1/p" "$GEN1/manifest.json"; }
KPKG_DEB=$(manifest_field kernelPackage)
BB_DEB=$(manifest_field busyboxPackage)
KVER=$(manifest_field kernelVersion)
[[ -n "$KPKG_DEB" && -n "$BB_DEB" && -n "$KVER" ]] || fx_die "cannot read kernelPackage/busyboxPackage/kernelVersion from $GEN1/manifest.json"
KX=$ROOT/$DEBS/x/$KPKG_DEB
BX=$ROOT/$DEBS/x/$BB_DEB
fx_deb_extract "$DEBS/$KPKG_DEB.deb" "$KX"   # already extracted by the Gen1 build unless the cache was pruned
fx_deb_extract "$DEBS/$BB_DEB.deb" "$BX"
VMLINUZ=$KX/boot/vmlinuz-$KVER
BUSYBOX=$BX/bin/busybox
INITRD=$GEN1/initrd-hv.cpio.gz
[[ -f "$VMLINUZ" && -x "$BUSYBOX" && -f "$INITRD" && -f "$GEN1/grub-mbr.img" ]] || fx_die "Gen1 inputs missing (kernel, busybox, initrd-hv.cpio.gz, grub-mbr.img)"
# The initramfs lists its modules (load order) in etc/bootgate-modules; the root gets the same set.
mapfile -t MODS < <(gzip -dc "$INITRD" | (cd "$WORK" && cpio -i --quiet --to-stdout etc/bootgate-modules))
((${#MODS[@]} > 5)) || fx_die "$INITRD has no etc/bootgate-modules list"

# ---- the ext4 root shared by the GPT fixtures -----------------------------------------------------------------------
APPEND="root=UUID=$ROOT_UUID ro console=ttyS0"
CMDLINE="BOOT_IMAGE=/boot/vmlinuz-$KVER $APPEND"
ENTRY="Debian GNU/Linux, with Linux $KVER"
INSMODS=(gzio part_gpt ext2) # built into the signed image; gzio is not in the unsigned one, so it loads from disk there

cat >"$WORK/root-grub.cfg" <<EOF
# bootgate Gen2 fixture: one entry, booted at once
set default=0
set timeout=0
menuentry '$ENTRY' {
	insmod ${INSMODS[0]}
	insmod ${INSMODS[1]}
	insmod ${INSMODS[2]}
	linux /boot/vmlinuz-$KVER $APPEND
	initrd /boot/initrd.img-$KVER
}
EOF

R=$WORK/root
mkdir -p "$R"/{bin,sbin,etc,dev,proc,sys,run,tmp,root,boot/efi,boot/grub/x86_64-efi} "$R/lib/modules/$KVER"
cp "$BUSYBOX" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
cat >"$R/sbin/init" <<'EOF'
#!/bin/busybox sh
# bootgate fixture root: proves the root filesystem was reached, then powers off.
/bin/busybox mount -t proc proc /proc
echo "bootgate-root: reached /sbin/init on $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
EOF
chmod 755 "$R/sbin/init"
printf 'UUID=%s / ext4 defaults 0 1\nUUID=%s-%s /boot/efi vfat umask=0077 0 1\n' "$ROOT_UUID" "${ESP_VOLID:0:4}" "${ESP_VOLID:4:4}" >"$R/etc/fstab"
echo bootgate-gen2 >"$R/etc/hostname"
cp "$KX/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$R/lib/modules/$KVER/"
for m in "${MODS[@]}"; do
  mkdir -p "$R/lib/modules/$KVER/$(dirname "$m")"
  cp "$KX/lib/modules/$KVER/$m" "$R/lib/modules/$KVER/$m"
done
depmod -b "$R" "$KVER" || fx_die "depmod on the fixture root failed"
cp "$VMLINUZ" "$R/boot/vmlinuz-$KVER"
cp "$KX/boot/config-$KVER" "$R/boot/config-$KVER"
cp "$INITRD" "$R/boot/initrd.img-$KVER"
cp "$GRUB_EFI_DIR"/*.mod "$GRUB_EFI_DIR"/*.lst "$R/boot/grub/x86_64-efi/"
cp "$WORK/root-grub.cfg" "$R/boot/grub/grub.cfg"
fx_touch_tree "$R"
fx_log "building the ext4 root (kernel $KVER)"
fx_mkext4 "$R" "$WORK/root.ext4" $((ROOT_SECTORS / 2048)) root "$ROOT_UUID"

# ---- ESP contents ---------------------------------------------------------------------------------------------------
stub_cfg() { # UUID — what Debian's grub-install writes next to the signed grubx64.efi
  printf 'search.fs_uuid %s root\nset prefix=($root)'"'"'/boot/grub'"'"'\nconfigfile $prefix/grub.cfg\n' "$1"
}
stub_cfg "$ROOT_UUID" >"$WORK/stub.cfg"
stub_cfg "$MISSING_UUID" >"$WORK/stub-missing.cfg"
cp "$WORK/stub.cfg" "$WORK/embedded.cfg" # grub-mkimage -c: the same three lines, run before normal mode
# BOOTX64.CSV: Debian's file ("shimx64.efi,debian,,This is the boot entry for debian\n" in UTF-16LE, no BOM) behind a
# UTF-16LE byte-order mark, as issue 5 asks (shim's fallback skips a leading U+FEFF, so both forms work).
{ printf '\xff\xfe'; cat "$CSV_DEBIAN"; } >"$WORK/BOOTX64.CSV"

UNSIGNED_MODS=(part_gpt part_msdos fat ext2 search search_fs_uuid normal configfile linux boot echo test all_video)
grub-mkimage -O x86_64-efi -d "$GRUB_EFI_DIR" -c "$WORK/embedded.cfg" -p /boot/grub -o "$WORK/grub-unsigned.efi" "${UNSIGNED_MODS[@]}" \
  || fx_die "grub-mkimage -O x86_64-efi failed"
for f in stub.cfg stub-missing.cfg embedded.cfg BOOTX64.CSV grub-unsigned.efi; do touch -d "@$SOURCE_DATE_EPOCH" "$WORK/$f"; done

# esp_new OUT — an empty FAT32 ESP (hidden sectors = its LBA, pinned serial, times from SOURCE_DATE_EPOCH).
esp_new() {
  rm -f "$1"
  mkfs.fat -F 32 -s 1 -h "$ESP_START" -i "$ESP_VOLID" -C "$1" $((ESP_MIB * 1024)) >/dev/null || fx_die "mkfs.fat $1 failed"
}
# esp_put ESP SRC \PATH\ON\ESP — copy a host file (its mtime pinned through a staged copy) to a path on the ESP.
esp_put() {
  local esp="$1" src="$2" dst="${3//\\//}" stage
  stage=$WORK/stage.$(basename "$dst")
  cp "$src" "$stage"
  touch -d "@$SOURCE_DATE_EPOCH" "$stage"
  mcopy -m -i "$esp" "$stage" "::$dst" || fx_die "mcopy $src -> $dst failed"
  rm -f "$stage"
}
esp_mkdirs() { local esp="$1" d; shift; for d in "$@"; do mmd -i "$esp" "::${d//\\//}" || fx_die "mmd $d failed"; done; }

ESPLIST=$WORK/esp-files # "fixture<TAB>ESP path<TAB>source" lines for the manifest
esp_file() { # FIXTURE ESP SRC PATH
  esp_put "$2" "$3" "$4"
  printf '%s\t%s\t%s\n' "$1" "$4" "$3" >>"$ESPLIST"
}
: >"$ESPLIST"

fx_log "building ESPs"
E=$WORK/esp-shim-removable.fat
esp_new "$E"; esp_mkdirs "$E" '\EFI' '\EFI\BOOT' '\EFI\debian'
esp_file gen2-shim-removable.img "$E" "$SHIM" '\EFI\BOOT\BOOTX64.EFI'
esp_file gen2-shim-removable.img "$E" "$GRUB_SIGNED" '\EFI\BOOT\grubx64.efi'
esp_file gen2-shim-removable.img "$E" "$WORK/stub.cfg" '\EFI\BOOT\grub.cfg'
esp_file gen2-shim-removable.img "$E" "$SHIM" '\EFI\debian\shimx64.efi'
esp_file gen2-shim-removable.img "$E" "$GRUB_SIGNED" '\EFI\debian\grubx64.efi'
esp_file gen2-shim-removable.img "$E" "$WORK/stub.cfg" '\EFI\debian\grub.cfg'

E=$WORK/esp-debian-only.fat
esp_new "$E"; esp_mkdirs "$E" '\EFI' '\EFI\debian'
esp_file gen2-debian-only.img "$E" "$SHIM" '\EFI\debian\shimx64.efi'
esp_file gen2-debian-only.img "$E" "$GRUB_SIGNED" '\EFI\debian\grubx64.efi'
esp_file gen2-debian-only.img "$E" "$WORK/stub.cfg" '\EFI\debian\grub.cfg'

E=$WORK/esp-fallback.fat
esp_new "$E"; esp_mkdirs "$E" '\EFI' '\EFI\BOOT' '\EFI\debian'
esp_file gen2-fallback.img "$E" "$SHIM" '\EFI\BOOT\BOOTX64.EFI'
esp_file gen2-fallback.img "$E" "$FBX64" '\EFI\BOOT\fbx64.efi'
esp_file gen2-fallback.img "$E" "$SHIM" '\EFI\debian\shimx64.efi'
esp_file gen2-fallback.img "$E" "$GRUB_SIGNED" '\EFI\debian\grubx64.efi'
esp_file gen2-fallback.img "$E" "$WORK/stub.cfg" '\EFI\debian\grub.cfg'
esp_file gen2-fallback.img "$E" "$WORK/BOOTX64.CSV" '\EFI\debian\BOOTX64.CSV'

esp_new "$WORK/esp-blank.fat"

E=$WORK/esp-unsigned-grub.fat
esp_new "$E"; esp_mkdirs "$E" '\EFI' '\EFI\BOOT'
esp_file gen2-unsigned-grub.img "$E" "$WORK/grub-unsigned.efi" '\EFI\BOOT\BOOTX64.EFI'

E=$WORK/esp-missing-uuid.fat
esp_new "$E"; esp_mkdirs "$E" '\EFI' '\EFI\BOOT' '\EFI\debian'
esp_file gen2-missing-uuid.img "$E" "$SHIM" '\EFI\BOOT\BOOTX64.EFI'
esp_file gen2-missing-uuid.img "$E" "$GRUB_SIGNED" '\EFI\BOOT\grubx64.efi'
esp_file gen2-missing-uuid.img "$E" "$WORK/stub-missing.cfg" '\EFI\BOOT\grub.cfg'
esp_file gen2-missing-uuid.img "$E" "$SHIM" '\EFI\debian\shimx64.efi'
esp_file gen2-missing-uuid.img "$E" "$GRUB_SIGNED" '\EFI\debian\grubx64.efi'
esp_file gen2-missing-uuid.img "$E" "$WORK/stub-missing.cfg" '\EFI\debian\grub.cfg'

# ---- disks ----------------------------------------------------------------------------------------------------------
gpt_disk() { # OUT ESPFAT
  local out="$1"
  rm -f "$out"
  truncate -s "${DISK_MIB}M" "$out"
  cat <<EOF | sfdisk -q --no-reread --no-tell-kernel "$out" >/dev/null || fx_die "sfdisk $out failed"
label: gpt
label-id: $GPT_DISK_GUID
unit: sectors
first-lba: 2048
start=$ESP_START, size=$((ESP_MIB * 2048)), type=$ESP_TYPE, uuid=$ESP_PART_GUID, name="EFI System Partition"
start=$ROOT_START, size=$ROOT_SECTORS, type=$LINUX_FS_TYPE, uuid=$ROOT_PART_GUID, name="root"
EOF
  fx_place "$out" "$2" "$ESP_START"
  fx_place "$out" "$WORK/root.ext4" "$ROOT_START"
}
fx_log "assembling disks"
gpt_disk "$WORK/gen2-shim-removable.img" "$WORK/esp-shim-removable.fat"
gpt_disk "$WORK/gen2-debian-only.img" "$WORK/esp-debian-only.fat"
gpt_disk "$WORK/gen2-fallback.img" "$WORK/esp-fallback.fat"
gpt_disk "$WORK/gen2-blank-esp.img" "$WORK/esp-blank.fat"
gpt_disk "$WORK/gen2-unsigned-grub.img" "$WORK/esp-unsigned-grub.fat"
gpt_disk "$WORK/gen2-missing-uuid.img" "$WORK/esp-missing-uuid.fat"
cp --sparse=always "$GEN1/grub-mbr.img" "$WORK/gen2-mbr-bios.img" # MBR + GRUB i386-pc + ext4: no ESP anywhere
qemu-img convert -q -f raw -O vhdx "$WORK/gen2-shim-removable.img" "$WORK/gen2-shim-removable.vhdx" \
  || fx_die "qemu-img convert -O vhdx failed"

# ---- manifest -------------------------------------------------------------------------------------------------------
# "expect" is per Secure Boot setting (bootgate --secure-boot off|windows|uefi-ca|trusted-launch): the stage a real
# Hyper-V Gen2 VM stops in (kernel = the Linux hand-off happened). Firmware screens are mu_msvm's lines (issue 5,
# shared/HYPERV.md). Checked by hand under QEMU 7.2 + OVMF 2022.11 when this builder was written (not by the tests):
# Secure Boot off — shim-removable, fallback and unsigned-grub reach /sbin/init with exactly "cmdline" below;
# missing-uuid prints GRUB's "error: no such device: <uuid>." and stops at "grub> "; debian-only, blank-esp and mbr-bios
# find no boot loader. OVMF_CODE_4M.ms.fd (db = Microsoft UEFI CA 2011 + Windows PCA 2011, like trusted-launch) —
# shim-removable reaches the kernel ("secureboot: Secure boot enabled"); unsigned-grub is "Access Denied".
# fbx64.efi resets only when a TCG/TCG2 protocol exists (shim tpm.c fallback_should_prefer_reset); without one it
# starts the Boot#### it created (under OVMF without a TPM: Boot0004 "debian" = HD(1,GPT,<ESP GUID>)/\EFI\debian\shimx64.efi,
# no reset). Hence "resets": 0 without a vTPM, 1 with Trusted Launch's vTPM.
json_str() { local s="$1"; s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/\\t}; s=${s//$'\n'/\\n}; printf '"%s"' "$s"; }
json_list() { local s="" x; for x in "$@"; do s+="${s:+, }$(json_str "$x")"; done; printf '[%s]' "$s"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
json_file() { local c; c=$(cat "$1"; printf x); json_str "${c%x}"; } # keeps the trailing newline
esp_json() { # FIXTURE — {"\\EFI\\BOOT\\BOOTX64.EFI": {"source": ..., "sha256": ...}, ...}
  local s="" fx path src
  while IFS=$'\t' read -r fx path src; do
    [[ "$fx" == "$1" ]] || continue
    case "$src" in "$WORK"/*) src="(generated) $(basename "$src")" ;; esac
    local real="$src"
    [[ "$src" == "(generated) "* ]] && real=$WORK/${src#(generated) }
    s+="${s:+, }$(json_str "$path"): { \"source\": $(json_str "$src"), \"sha256\": \"$(sha "$real")\", \"bytes\": $(stat -c %s "$real") }"
  done <"$ESPLIST"
  printf '{ %s }' "$s"
}
pkgver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
DENIED='{ "stage": "firmware", "screen": "Image execution was denied by Secure Boot policy." }'
KERNEL='{ "stage": "kernel" }'
NOLOADER='{ "stage": "firmware", "screen": "No x64-based UEFI boot loader was found." }'
NOFS='{ "stage": "firmware", "screen": "No UEFI-compatible file system was found." }'
GRUB_NODEV="{ \"stage\": \"bootloader\", \"screen\": \"error: no such device: $MISSING_UUID.\", \"prompt\": \"grub> \" }"
FB_NOTPM='{ "stage": "kernel", "resets": 0 }'
FB_TPM='{ "stage": "kernel", "resets": 1 }'
per_mode() { printf '{ "off": %s, "windows": %s, "uefi-ca": %s, "trusted-launch": %s }' "$1" "$2" "$3" "$4"; }
boots() { # the shared kernel facts of a fixture that reaches Linux
  printf '"kernel": "/boot/vmlinuz-%s", "initrd": "/boot/initrd.img-%s", "append": %s, "cmdline": %s' \
    "$KVER" "$KVER" "$(json_str "$APPEND")" "$(json_str "$CMDLINE")"
}
gpt_facts='"table": "gpt", "espPartition": 1, "rootPartition": 2'

cat >"$WORK/manifest.json" <<EOF
{
  "kernelPackage": "$KPKG_DEB",
  "busyboxPackage": "$BB_DEB",
  "kernelVersion": "$KVER",
  "vmlinuzSha256": "$(sha "$VMLINUZ")",
  "initrd": "gen1/initrd-hv.cpio.gz",
  "initrdSha256": "$(sha "$INITRD")",
  "initrdModules": $(json_list "${MODS[@]}"),
  "packages": { "shim-signed": "$(pkgver shim-signed)", "shim-helpers-amd64-signed": "$(pkgver shim-helpers-amd64-signed)", "grub-efi-amd64-signed": "$(pkgver grub-efi-amd64-signed)", "grub-efi-amd64-bin": "$(pkgver grub-efi-amd64-bin)" },
  "rootUuid": "$ROOT_UUID",
  "missingUuid": "$MISSING_UUID",
  "gptDiskGuid": "$GPT_DISK_GUID",
  "espPartGuid": "$ESP_PART_GUID",
  "rootPartGuid": "$ROOT_PART_GUID",
  "espVolumeId": "${ESP_VOLID:0:4}-${ESP_VOLID:4:4}",
  "espType": "fat32",
  "espStartLba": $ESP_START,
  "espSectors": $((ESP_MIB * 2048)),
  "rootStartLba": $ROOT_START,
  "rootSectors": $ROOT_SECTORS,
  "diskBytes": $((DISK_MIB * 1048576)),
  "signedGrubPrefix": "/EFI/debian",
  "stubCfg": $(json_file "$WORK/stub.cfg"),
  "rootGrubCfg": $(json_file "$WORK/root-grub.cfg"),
  "menuEntry": $(json_str "$ENTRY"),
  "unsignedGrub": { "embeddedCfg": $(json_file "$WORK/embedded.cfg"), "prefix": "/boot/grub", "modules": $(json_list "${UNSIGNED_MODS[@]}"), "insmodFromDisk": ["gzio"] },
  "secureBootModes": ["off", "windows", "uefi-ca", "trusted-launch"],
  "fixtures": {
    "gen2-shim-removable.img": { "what": "shim + Debian-signed GRUB at the removable path \\\\EFI\\\\BOOT, and the same under \\\\EFI\\\\debian", $gpt_facts, "loader": "\\\\EFI\\\\BOOT\\\\BOOTX64.EFI", "chain": ["shim", "grub-signed", "linux"], $(boots), "esp": $(esp_json gen2-shim-removable.img), "expect": $(per_mode "$KERNEL" "$DENIED" "$KERNEL" "$KERNEL") },
    "gen2-shim-removable.vhdx": { "what": "gen2-shim-removable.img converted with qemu-img convert -O vhdx (not byte-stable: random VHDX GUIDs)", "sameAs": "gen2-shim-removable.img", $gpt_facts, $(boots), "expect": $(per_mode "$KERNEL" "$DENIED" "$KERNEL" "$KERNEL") },
    "gen2-debian-only.img": { "what": "loader only at \\\\EFI\\\\debian (no removable path): needed the old VM's Boot#### entry", $gpt_facts, "esp": $(esp_json gen2-debian-only.img), "expect": $(per_mode "$NOLOADER" "$NOLOADER" "$NOLOADER" "$NOLOADER") },
    "gen2-fallback.img": { "what": "shim + fbx64.efi at \\\\EFI\\\\BOOT, BOOTX64.CSV in \\\\EFI\\\\debian: fallback creates a Boot#### entry, then resets (vTPM) or starts it", $gpt_facts, "loader": "\\\\EFI\\\\BOOT\\\\BOOTX64.EFI", "chain": ["shim", "fbx64", "shim", "grub-signed", "linux"], "bootEntry": { "description": "debian", "device": "HD(1,GPT,$ESP_PART_GUID)", "path": "\\\\EFI\\\\debian\\\\shimx64.efi", "comment": "This is the boot entry for debian" }, $(boots), "esp": $(esp_json gen2-fallback.img), "expect": $(per_mode "$FB_NOTPM" "$DENIED" "$FB_NOTPM" "$FB_TPM") },
    "gen2-blank-esp.img": { "what": "ESP formatted FAT32 but empty; the ext4 root is intact", $gpt_facts, "esp": {}, "expect": $(per_mode "$NOLOADER" "$NOLOADER" "$NOLOADER" "$NOLOADER") },
    "gen2-unsigned-grub.img": { "what": "grub-mkimage -O x86_64-efi (unsigned) at \\\\EFI\\\\BOOT\\\\BOOTX64.EFI with an embedded search + configfile", $gpt_facts, "loader": "\\\\EFI\\\\BOOT\\\\BOOTX64.EFI", "chain": ["grub-unsigned", "linux"], $(boots), "esp": $(esp_json gen2-unsigned-grub.img), "expect": $(per_mode "$KERNEL" "$DENIED" "$DENIED" "$DENIED") },
    "gen2-missing-uuid.img": { "what": "as gen2-shim-removable.img but the stub grub.cfg searches a UUID that is on no filesystem", $gpt_facts, "loader": "\\\\EFI\\\\BOOT\\\\BOOTX64.EFI", "chain": ["shim", "grub-signed"], "searchedUuid": "$MISSING_UUID", "esp": $(esp_json gen2-missing-uuid.img), "expect": $(per_mode "$GRUB_NODEV" "$DENIED" "$GRUB_NODEV" "$GRUB_NODEV") },
    "gen2-mbr-bios.img": { "what": "gen1/grub-mbr.img unchanged: MBR, GRUB i386-pc, one ext4 partition, no FAT anywhere", "table": "mbr", "sameAs": "gen1/grub-mbr.img", "expect": $(per_mode "$NOFS" "$NOFS" "$NOFS" "$NOFS") }
  }
}
EOF
if command -v node >/dev/null; then
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$WORK/manifest.json" || fx_die "manifest.json is not valid JSON"
fi

# ---- publish atomically ---------------------------------------------------------------------------------------------
rm -rf "$WORK/pub"
mkdir -p "$WORK/pub"
mv "$WORK"/gen2-*.img "$WORK"/gen2-*.vhdx "$WORK/manifest.json" "$WORK/pub/"
(cd "$WORK/pub" && sha256sum -- * >SHA256SUMS)
rm -rf "$OUT"
mv "$WORK/pub" "$OUT"
printf '%s\n%s\n' "$STAMP_HASH" "$KPKG_DEB" >"$OUT/.stamp"
fx_log "gen2 fixtures built in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s: $OUT"
