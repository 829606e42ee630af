#!/usr/bin/env bash
# Builds a local systemd Debian image for the target-host tests (docs/DESIGN.md §5), once per
# suite: the tag is the suite and a hash of this recipe (this script, the suite and the
# mirror), so an existing image is reused until the recipe changes. Prints the image
# reference on stdout; progress goes to stderr.
#
# Usage: tools/build-host-image.sh [--suite bookworm|trixie] [--print-ref]
#   --suite       Debian 12 (bookworm, the default) or Debian 13 (trixie)
#   --print-ref   print the reference the recipe would produce, build nothing
# Environment:
#   PANZOTO_APT_MIRROR   Debian mirror (default: the machine's apt sources, else deb.debian.org)
#   CONTAINERS_CONF      defaults to tests/hosts/containers.conf
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo_root/tests/hosts/containers.conf}"

image_repo="localhost/panzoto-ops-host"
suite="bookworm"
print_ref=false
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite="${2:-}"; shift 2 ;;
    --suite=*) suite="${1#--suite=}"; shift ;;
    --print-ref) print_ref=true; shift ;;
    *) echo "build-host-image: unknown argument '$1' (usage: [--suite bookworm|trixie] [--print-ref])" >&2; exit 2 ;;
  esac
done
case "$suite" in
  bookworm | trixie) ;;
  *) echo "build-host-image: --suite must be bookworm or trixie, got '$suite'" >&2; exit 2 ;;
esac
# What the guide's servers have: systemd as init, Python (with python3-apt, as on Debian's cloud
# images: Ansible's apt module needs it in check mode) and sudo for Ansible, iproute2 (ss) and
# procps (ps) for Testinfra, CA certificates for HTTPS clients.
packages="systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates"

log() { echo "build-host-image: $*" >&2; }

# The first plain Debian archive in the machine's apt sources (one-line or deb822 format).
machine_mirror() {
  local files=() uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  uri="$(grep -hoE '^(deb[[:space:]]+(\[[^]]*\][[:space:]]+)?|URIs:[[:space:]]*)https?://[^[:space:]]+' "${files[@]}" \
    | grep -oE 'https?://[^[:space:]]+' | sed 's:/*$::' | grep -E '/debian$' | head -n 1 || true)"
  echo "$uri"
}

mirror="${PANZOTO_APT_MIRROR:-$(machine_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"

recipe_hash="$( (cat "${BASH_SOURCE[0]}"; echo "$suite $mirror") | sha256sum | cut -c1-12)"
image_ref="$image_repo:$suite-$recipe_hash"

if [ "$print_ref" = true ]; then
  echo "$image_ref"
  exit 0
fi

if podman image exists "$image_ref"; then
  echo "$image_ref"
  exit 0
fi

# Concurrent test runs wait for one build instead of racing two debootstraps.
lock_dir="$repo_root/.cache"
mkdir -p "$lock_dir"
exec 9>"$lock_dir/build-host-image-$suite.lock"
flock 9
if podman image exists "$image_ref"; then
  echo "$image_ref"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "build-host-image: debootstrap and rootful podman need root" >&2; exit 1; }

rootfs="$(mktemp -d /var/tmp/panzoto-ops-rootfs.XXXXXX)"
trap 'rm -rf --one-file-system "$rootfs"' EXIT

log "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2

# A container gets its hostname and resolver from podman and a fresh machine-id at boot.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
# Nothing in a container can use these; masked so a healthy host reports "running".
for unit in systemd-remount-fs.service getty@tty1.service console-getty.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# The package lists stay, as on an installed server (apt in check mode needs them); the .debs go.
rm -f "$rootfs"/var/cache/apt/archives/*.deb

log "importing as $image_ref"
tar -C "$rootfs" -c . | podman import -q \
  --change 'CMD=["/sbin/init"]' \
  --change 'STOPSIGNAL=SIGRTMIN+3' \
  --change 'ENV=container=podman' \
  --message "panzoto-ops target host: debootstrap $suite minbase ($packages) from $mirror" \
  - "$image_ref" >/dev/null
echo "$image_ref"
