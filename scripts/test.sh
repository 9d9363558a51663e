#!/usr/bin/env bash
# The project's test command (README, CI): start a real Docker Engine, build the
# test images and the log-capturer image, check the alert rules and the dashboard,
# check formatting and lints, then run the whole test suite against the engine: the unit
# tests, tests/offline.rs, and tests/docker.rs (the `docker-tests` feature builds it).
# Extra arguments go to `cargo test`, e.g. scripts/test.sh -- --test-threads=4
# Never skips the Docker-backed tests: exits non-zero when Docker cannot be started.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# rustfmt/clippy: use them if present; otherwise try rustup (needs network).
ensure_cargo_tool() { # $1 = rustup component, $2 = cargo subcommand
    cargo "$2" --version >/dev/null 2>&1 && return 0
    if command -v rustup >/dev/null 2>&1; then
        step "installing rustup component $1"
        rustup component add "$1" || die "cargo $2 is missing and 'rustup component add $1' failed"
        cargo "$2" --version >/dev/null 2>&1 && return 0
    fi
    die "cargo $2 is not available (install the $1 component: rustup component add $1)"
}

step "Docker Engine"
scripts/docker-up.sh || die "could not start a Docker Engine; the integration tests need one"

export LOG_CAPTURER_TEST_IMAGE="${LOG_CAPTURER_TEST_IMAGE:-log-capturer-test/busybox:latest}"
step "test images ($LOG_CAPTURER_TEST_IMAGE)"
scripts/build-test-images.sh || die "could not build the test images"

# The log-capturer image itself (tests/image.rs): a static release build on the host,
# then the Dockerfile's final stage (no registry needed). The cold build is the slow
# part of this script; later runs only rebuild what changed.
export LOG_CAPTURER_IMAGE="${LOG_CAPTURER_IMAGE:-log-capturer:local}"
step "container image ($LOG_CAPTURER_IMAGE)"
scripts/build-image.sh || die "could not build the container image"

# promtool (Debian's prometheus package) checks the /metrics exposition in the tests.
if ! command -v promtool >/dev/null 2>&1; then
    step "installing promtool (Debian package prometheus)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        || die "could not install promtool (apt-get install prometheus)"
fi

# openssl (Debian package openssl) makes the RSA and SEC1 client keys of tests/tls.rs.
if ! command -v openssl >/dev/null 2>&1; then
    step "installing openssl (Debian package openssl)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null \
        || die "could not install openssl (apt-get install openssl)"
fi

step "promtool check rules config/alerts.yml; promtool test rules config/alerts.test.yml"
promtool check rules config/alerts.yml || die "config/alerts.yml does not pass promtool check rules"
promtool test rules config/alerts.test.yml || die "the alert unit tests (config/alerts.test.yml) fail"

step "config/grafana-dashboard.json is valid JSON"
if command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool config/grafana-dashboard.json >/dev/null
elif command -v jq >/dev/null 2>&1; then
    jq empty config/grafana-dashboard.json
else
    die "neither python3 nor jq is available to validate config/grafana-dashboard.json"
fi || die "config/grafana-dashboard.json is not valid JSON"

ensure_cargo_tool rustfmt fmt
ensure_cargo_tool clippy clippy

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

# Both ways the crate is built: without the feature (a plain `cargo test`) and with it
# (the Docker-backed test binary exists only then).
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo clippy --all-targets --features docker-tests -- -D warnings"
cargo clippy --all-targets --features docker-tests -- -D warnings

# One cargo run for all three binaries: unit tests, tests/offline.rs, tests/docker.rs;
# every binary runs even when an earlier one failed, so the summary counts them all.
step "cargo test --no-fail-fast --features docker-tests $*"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --no-fail-fast --features docker-tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary).
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log")
echo "$summary"
[ "$status" -eq 0 ] || exit "$status"
grep -q 'Running tests/docker.rs' "$log" || die "the Docker-backed test binary (tests/docker.rs) did not run"

# The short leak soak (scripts/soak.sh): container churn for 2 minutes, FD/thread slopes,
# end state against the baseline, connection reuse, every line exactly once.
step "scripts/soak.sh --minutes 2"
LOG_CAPTURER_BIN="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/log-capturer" \
    scripts/soak.sh --minutes 2 || die "the leak soak failed"
echo "$summary"
