#!/usr/bin/env bash
# Prepares the Linux guest that tools/qemu/qemu_interop.py boots behind QEMU's emulated Intel
# IOMMU: a Debian cloud kernel and an initramfs of busybox, the virtio-net modules of that kernel
# and tools/qemu/init.sh as /init. Nothing is installed: the packages are downloaded with
# `apt-get download` and unpacked into a cache outside the source tree.
#
#   usage: tools/qemu/prepare_guest.sh [CACHE_DIR]
#   default CACHE_DIR: ${VHOSTLAB_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vhostlab/qemu-guest}
#
# Cache layout and invariants (so a second run only checks, and an edit rebuilds what it affects):
#   kernel-<kver>/vmlinuz            the kernel, <kver> from `apt-cache depends
#                                    linux-image-cloud-amd64` (Debian's current cloud ABI)
#   kernel-<kver>/modules/*.ko       the virtio-net modules and their dependencies, decompressed
#                                    (busybox insmod loads plain ELF only)
#   kernel-<kver>/modules/load-order one module per line, dependencies first
#   busybox/busybox                  the static busybox binary (any version will do: fetched once)
#   initramfs-<kver>-<hash>.cpio.gz  <hash>: sha256 of init.sh, of this script and of busybox,
#                                    so editing either script rebuilds the initramfs
#   guest.env                        VL_GUEST_KERNEL=... and VL_GUEST_INITRD=... (shell syntax)
# Every artefact is built in a temporary directory and renamed into place, so an interrupted run
# leaves no half-written file behind; a lock serialises concurrent runs on one cache.
# The last two lines printed are the contents of guest.env.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
init_script="$here/init.sh"
cache="${1:-${VHOSTLAB_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vhostlab/qemu-guest}}"
apt_opts=(-o DPkg::Lock::Timeout=600)
# As root, download as root: the _apt sandbox user cannot write into a private cache directory.
[ "$(id -u)" -ne 0 ] || apt_opts+=(-o APT::Sandbox::User=root)
# The modules /init loads; their dependencies are added from each module's .modinfo.
wanted_modules=(virtio_pci virtio_net)

log() { echo "prepare_guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
exec 9>"$cache/.lock"
flock 9

work="$(mktemp -d "$cache/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Debian's current cloud kernel ABI, e.g. linux-image-6.1.0-57-cloud-amd64.
cloud_kernel() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1
}
kernel_pkg="$(cloud_kernel)"
if [ -z "$kernel_pkg" ]; then
  # A machine whose package lists were never fetched (every package preinstalled): fetch them.
  log "apt knows no cloud kernel yet: apt-get update"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
  kernel_pkg="$(cloud_kernel)"
fi
[ -n "$kernel_pkg" ] ||
  die "apt-cache depends linux-image-cloud-amd64 names no kernel, even after apt-get update"
kver="${kernel_pkg#linux-image-}"

# Downloads package $1 into $work and unpacks it into $2 (a fresh directory).
fetch_and_unpack() {
  local pkg="$1" dest="$2"
  (cd "$work" && apt-get "${apt_opts[@]}" -q download "$pkg" >&2) ||
    die "apt-get download $pkg failed"
  mkdir -p "$dest"
  dpkg-deb -x "$work/${pkg}"_*.deb "$dest"
  rm -f "$work/${pkg}"_*.deb
}

# --- kernel: vmlinuz + the needed modules, decompressed, in load order ----------------------------
kdir="$cache/kernel-$kver"
if [ ! -f "$kdir/modules/load-order" ]; then
  log "downloading $kernel_pkg"
  fetch_and_unpack "$kernel_pkg" "$work/kpkg"
  moddir="$work/kpkg/lib/modules/$kver"
  [ -d "$moddir" ] || die "$kernel_pkg has no lib/modules/$kver"
  staged="$work/kernel"
  mkdir -p "$staged/modules"
  cp "$work/kpkg/boot/vmlinuz-$kver" "$staged/vmlinuz"

  declare -A seen=()
  order=()
  # Depth-first: dependencies are appended before the module that needs them.
  add_module() {
    local name="${1//-/_}" file dep
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    if grep -qE "/${name}\.ko(\.(xz|zst|gz))?$" "$moddir/modules.builtin" 2>/dev/null; then
      log "$name is built into $kver"
      return 0
    fi
    file="$(find "$moddir/kernel" -regextype posix-extended \
              -regex ".*/(${name}|${name//_/-})\.ko(\.(xz|zst|gz))?" -print -quit)"
    [ -n "$file" ] || die "module $name not found in $kernel_pkg"
    case "$file" in
      *.ko.xz) xz -dc "$file" >"$staged/modules/$name.ko" ;;
      *.ko.zst) zstd -qdc "$file" >"$staged/modules/$name.ko" ||
                  die "$file: needs zstd to decompress" ;;
      *.ko.gz) gzip -dc "$file" >"$staged/modules/$name.ko" ;;
      *) cp "$file" "$staged/modules/$name.ko" ;;
    esac
    # .modinfo holds NUL-terminated key=value strings; depends= lists modules by name.
    for dep in $(tr '\0' '\n' <"$staged/modules/$name.ko" | sed -n 's/^depends=//p' |
                 tr ',' ' '); do
      add_module "$dep"
    done
    order+=("$name")
  }
  for m in "${wanted_modules[@]}"; do add_module "$m"; done
  printf '%s\n' "${order[@]}" >"$staged/modules/load-order"
  rm -rf "$kdir"
  mv "$staged" "$kdir"
  log "kernel $kver: modules ${order[*]}"
fi

# --- busybox --------------------------------------------------------------------------------------
bdir="$cache/busybox"
if [ ! -x "$bdir/busybox" ]; then
  log "downloading busybox-static"
  fetch_and_unpack busybox-static "$work/bpkg"
  mkdir -p "$work/busybox"
  cp "$work/bpkg/bin/busybox" "$work/busybox/busybox"
  rm -rf "$bdir"
  mv "$work/busybox" "$bdir"
fi

# --- initramfs ------------------------------------------------------------------------------------
hash="$(sha256sum "$init_script" "${BASH_SOURCE[0]}" "$bdir/busybox" | cut -d' ' -f1 |
        sha256sum | cut -c1-16)"
initrd="$cache/initramfs-$kver-$hash.cpio.gz"
if [ ! -f "$initrd" ]; then
  root="$work/root"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
  cp "$bdir/busybox" "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  cp "$kdir"/modules/*.ko "$kdir/modules/load-order" "$root/lib/modules/"
  cp "$init_script" "$root/init"
  chmod 755 "$root/init" "$root/bin/busybox"
  (cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) |
    gzip -9n >"$work/initrd"
  mv "$work/initrd" "$initrd"
  # Older initramfs images of this kernel are stale now.
  find "$cache" -maxdepth 1 -name "initramfs-$kver-*.cpio.gz" ! -name "${initrd##*/}" -delete
  log "built ${initrd##*/}"
fi

printf 'VL_GUEST_KERNEL=%s\nVL_GUEST_INITRD=%s\n' "$kdir/vmlinuz" "$initrd" >"$work/env"
mv "$work/env" "$cache/guest.env"
cat "$cache/guest.env"
