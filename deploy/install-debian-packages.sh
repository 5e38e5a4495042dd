#!/usr/bin/env bash
# Installs the Debian (or Ubuntu) packages named as arguments that are missing, with apt.
# Needs root, or sudo without a password. Used by `make image-tools` (podman, buildah,
# mmdebstrap, runc: the image) and `make k8s-deps` (socat, redis-server...: the k8s tier).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
packages=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "no apt-get: install ${missing[*]} by hand" >&2; exit 1; }
sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "installing ${missing[*]} needs root" >&2; exit 1; }
  sudo=(sudo)
fi
echo "installing from apt: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
