#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, Rust tests, and the black-box tests
# against the real binary (real SDKs, crash and fault injection).
# 运行全部测试：格式、lint、Rust 测试，以及针对真实二进制的端到端测试。
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies (pip, fiu-utils)"
./scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "building the binary for the end-to-end tests"
cargo build --locked -p lodestar
export LODESTAR_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/lodestar"

step "end-to-end tests (real SDKs, bad input, crash, faults)"
python3 -m pytest tests/e2e -q -p no:cacheprovider
