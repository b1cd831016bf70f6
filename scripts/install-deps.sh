#!/usr/bin/env bash
# System packages the tests need beyond a Rust toolchain: a Vulkan loader and Mesa's software
# Vulkan driver (lavapipe), so that mllib's GPU tests run the WGSL shaders for real on a
# machine without a GPU (flint-mllib `device` tests; see ARCHITECTURE.md, "Machine learning").
# Idempotent: installs only what `dpkg -s` reports missing. Debian/Ubuntu (apt) only; elsewhere
# it says what to install and leaves the machine alone (the GPU tests then fail with that reason
# unless FLINT_SKIP_GPU_TESTS=1).
set -euo pipefail

PACKAGES=(libvulkan1 mesa-vulkan-drivers)

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: no dpkg/apt-get here; install a Vulkan loader and driver (e.g. Mesa's lavapipe) by hand" >&2
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg -s "$p" >/dev/null 2>&1; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: ${PACKAGES[*]} already installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
