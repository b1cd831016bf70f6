#!/usr/bin/env bash
# Builds the flint image (no registry needed): a FROM scratch image holding flint-master,
# flint-worker and flint-submit from this workspace's build, plus the shared libraries they
# load (ldd). Applications are not in the image: flint-submit uploads them to the workers.
#
#   docker/build-image.sh                 # release build, image flint:latest
#   FLINT_PROFILE=debug FLINT_IMAGE=flint:test docker/build-image.sh
#
# Environment: FLINT_PROFILE (release), FLINT_IMAGE (flint:latest), CARGO_TARGET_DIR (target/).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${FLINT_PROFILE:-release}"
image="${FLINT_IMAGE:-flint:latest}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
case "$profile" in
    dev | debug) profile_flag=(--profile dev); out="$target/debug" ;;
    *) profile_flag=(--profile "$profile"); out="$target/$profile" ;;
esac

cargo build --locked "${profile_flag[@]}" -p flint --bin flint-master --bin flint-worker --bin flint-submit

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
root="$context/root"
mkdir -p "$root/bin" "$root/tmp" "$root/work"
chmod 1777 "$root/tmp" "$root/work"
for bin in flint-master flint-worker flint-submit; do
    cp "$out/$bin" "$root/bin/$bin"
    # The loader and every library the binary needs, at the same paths as here.
    for lib in $(ldd "$out/$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
ENV PATH=/bin TMPDIR=/tmp FLINT_LOG=info
WORKDIR /work
DOCKERFILE
# The classic builder: no buildx here, and a COPY into scratch needs nothing more.
DOCKER_BUILDKIT=0 docker build --quiet --tag "$image" "$context" >/dev/null
echo "built $image from $out"
