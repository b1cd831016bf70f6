#!/usr/bin/env bash
# The project's test command (README, `.ci/run`): format, lint and doc checks, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== system packages (Vulkan loader + Mesa lavapipe for the GPU tests)"
bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# flint-mllib without wgpu (its `gpu` feature) must build and lint too.
cargo clippy -p flint-mllib --no-default-features --all-targets --locked -- -D warnings

echo "== cargo doc (warnings are errors: broken links rot silently)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

echo "== cargo test"
cargo test --workspace --locked

echo "== integration tests again, every task shipped through its byte encoding (FLINT_SHIP_TASKS=1)"
FLINT_SHIP_TASKS=1 cargo test -p flint-integration-tests --test it --locked
