#!/usr/bin/env bash
# Fuzzes the Segment wire-format decoder (crates/ingest) with cargo-fuzz for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]     default 60
#
# Installs cargo-fuzz if it is missing. The machine has only stable Rust, so the nightly-only
# flags cargo-fuzz passes are allowed with RUSTC_BOOTSTRAP=1. Exits non-zero when the fuzzer
# finds a crash; the input that crashed is kept under fuzz/artifacts/decode_request/.
# Environment: FUZZ_SANITIZER (address, the default, or none).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
    echo "usage: $0 [SECONDS]   (a whole number of seconds, at least 1)" >&2
    exit 2
fi
sanitizer="${FUZZ_SANITIZER:-address}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

# Seeds: the first byte picks the Content-Encoding and the limits (see the target), the rest
# is the body. The corpus folder is ignored by git and grows as the fuzzer learns.
corpus="corpus/decode_request"
mkdir -p "$corpus"
seed() { printf '\000%s' "$2" >"$corpus/seed-$1"; }
seed batch '{"batch":[{"type":"identify","userId":"u1","anonymousId":"anon-1","traits":{"email":"a@b.c"},"context":{"traits":{"plan":"pro"}}},{"type":"track","event":"Order Completed","userId":"u1","properties":{"revenue":12.5,"$set":{"x":1}}},{"type":"page","name":"Intro","category":"Docs","userId":"u1"},{"type":"group","groupId":"g1","userId":"u1","traits":{"name":"Acme"}},{"type":"alias","previousId":"anon-1","userId":"u1"}],"sentAt":"2026-11-23T17:28:39.991324+00:00","writeKey":"K","context":{"library":{"name":"analytics-python"}},"integrations":{"All":true}}'
seed track '{"type":"track","event":"Signed Up","userId":42,"messageId":"m1","originalTimestamp":"2026-11-23T17:28:39.491+00:00","sentAt":"2026-11-23T17:28:40Z","$set_once":{"first":"2026"}}'
seed blocked '{"batch":[{"type":"screen","userId":"null","anonymousId":"a1","name":"Home","timestamp":"2030-01-01T00:00:00Z","channel":"mobile"}]}'

status=0
cargo fuzz run --sanitizer "$sanitizer" decode_request "$corpus" -- \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1 || status=$?

if [[ "$status" -ne 0 ]]; then
    echo "fuzz.sh: decode_request failed (exit $status); see fuzz/artifacts/decode_request/" >&2
    exit "$status"
fi
echo "fuzz.sh: no crash in ${seconds} s"
