#!/usr/bin/env bash
# Installs Debian packages, only those missing: the ones named, or by default
# what the host tests need (podman, runc and debootstrap run the systemd
# target hosts, docs/DESIGN.md §5).
set -euo pipefail
if [ $# -gt 0 ]; then packages=("$@"); else packages=(podman runc debootstrap); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
