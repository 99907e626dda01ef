#!/bin/bash
# Install what pinrig needs on a Debian 12 host (as root) and a virtualenv with its Python deps.
# Idempotent and quick when everything is already there. Sourced by run-main.sh / run-tests.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PKGS=(qemu-system-x86 qemu-utils debootstrap busybox-static cpio xz-utils zstd e2fsprogs kmod
      gcc make libc6-dev libibverbs-dev librdmacm-dev liburing-dev python3 python3-venv openssh-client
      openssh-server iproute2
      flex bison bc libelf-dev libssl-dev   # source kernel builds (kernels/src-*.yaml)
      debian-archive-keyring ca-certificates
      lava-common lava-dispatcher)   # LAVA's job schema (unit tests) and lava-run (rig lava run)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
        exit 2
    fi
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.pinrig-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating .venv with pinrig and its dependencies" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want" > "$stamp"
fi
