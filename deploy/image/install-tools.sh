#!/usr/bin/env bash
# Installs what `make image` needs from Debian (or Ubuntu) packages: podman (build and run),
# buildah (podman's build engine), mmdebstrap (the base rootfs) and runc (the OCI runtime
# used here: crun refuses hybrid cgroup hierarchies). Needs root, or sudo without a password.
set -euo pipefail
packages=(podman buildah mmdebstrap runc uidmap)
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
