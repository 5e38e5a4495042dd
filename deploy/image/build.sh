#!/usr/bin/env bash
# Builds driftloop's image with podman, without any image registry:
#   1. the base: a Debian rootfs made by mmdebstrap from Debian's apt mirror, cached as a
#      tarball in $STATE/image/ under a key of everything that goes into it, and imported
#      as localhost/driftloop-base:<key> (skipped when that image is already there);
#   2. deploy/image/Containerfile on top of it (no layer cache: see below).
# Usage: deploy/image/build.sh IMAGE VERSION   (run from the repository root; `make image`)
# Environment: STATE (default .driftloop), UV_VERSION, CONTAINERFILE, PODMAN_RUN_FLAGS.
set -euo pipefail

image=${1:?usage: build.sh IMAGE VERSION}
version=${2:?usage: build.sh IMAGE VERSION}
state=${STATE:-.driftloop}
uv_version=${UV_VERSION:-0.13.8}
containerfile=${CONTAINERFILE:-deploy/image/Containerfile}
# crun refuses this machine's hybrid cgroups, and podman's default rlimits fail on setrlimit
# in some VMs: runc and explicit limits work everywhere we have tried.
read -r -a run_flags <<<"${PODMAN_RUN_FLAGS:---runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024}"

# ---- the base ------------------------------------------------------------------------------
suite=bookworm
mirrors=(
  "deb http://deb.debian.org/debian $suite main"
  "deb http://deb.debian.org/debian $suite-updates main"
  "deb http://deb.debian.org/debian-security $suite-security main"
)
# python3: the interpreter the virtualenv links to; git: the promote step and the sync
# service; wget: KubeRay's default probes; ca-certificates: TLS to S3, GitHub, Argo.
include=python3,ca-certificates,git,wget
mmdebstrap_args=(
  --variant=minbase --include="$include" --format=tar
  --aptopt='Apt::Install-Recommends "false"'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
)
key=$(printf '%s\n' "$suite" "${mirrors[@]}" "${mmdebstrap_args[@]}" "$(mmdebstrap --version)" \
  | sha256sum | cut -c1-16)
base=localhost/driftloop-base:$key
tarball=$state/image/base-$key.tar

started=$(date +%s)
if podman image exists "$base"; then
  echo "base: $base (present)"
else
  if [ ! -s "$tarball" ]; then
    echo "base: mmdebstrap $suite ($include) → $tarball"
    mkdir -p "$state/image"
    mmdebstrap --quiet "${mmdebstrap_args[@]}" "$suite" "$tarball.part" "${mirrors[@]}"
    mv "$tarball.part" "$tarball"
  fi
  echo "base: podman import $tarball → $base"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$base" >/dev/null
fi

# ---- the image -----------------------------------------------------------------------------
revision=$(git rev-parse HEAD)
# The context is the working tree: say so when its inputs differ from the commit.
if [ -n "$(git status --porcelain -- uv.lock pyproject.toml libs services features workflows \
      deploy/apps deploy/image .containerignore)" ]; then
  revision=$revision-dirty
fi
# The builder stage downloads from PyPI: let it trust what this machine trusts (a
# TLS-inspecting proxy's CA, for one). Mounted for the build's RUN steps only.
ca_args=()
host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$host_ca" ]; then
  ca_args=(--volume "$(realpath "$host_ca"):/run/build-ca.crt:ro" --build-arg CA_BUNDLE=/run/build-ca.crt)
fi
echo "image: $image (version $version, revision $revision)"
# No layer cache: buildah 1.28 (Debian bookworm) cannot bind-mount from a stage it took from
# its cache ("couldn't find .../opt/uv/bin/uv on host to bind"), so a second build after any
# change failed. uv's download cache (a cache mount) still makes a rebuild a local install.
podman build --layers=false "${run_flags[@]}" "${ca_args[@]}" \
  --file "$containerfile" \
  --build-arg BASE="$base" \
  --build-arg UV_VERSION="$uv_version" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" \
  --tag "$image" \
  .
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image: $image, $((size / 1000000)) MB, built in $(($(date +%s) - started)) s"
