#!/usr/bin/env bash
# Build the log-capturer container image without any registry.
#
# The root Dockerfile's first stage (FROM rust:1-bookworm) needs a registry. This script
# runs that stage's build command on the host instead:
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target x86_64-unknown-linux-gnu
# checks that the binary is statically linked and accepts config/container.toml, then
# builds ONLY the Dockerfile's final stage (from the "# ---- final stage ----" marker to
# the end of the file, with "--from=build " removed) from a temporary context laid out
# like the build stage's output: /out/log-capturer (debug info stripped, symbols kept),
# an empty /out/data, and config/container.toml. Last, a smoke test: the image prints
# its version and its effective configuration, and its data directory is owned by 65534.
#
# Needs a running engine (scripts/docker-up.sh) and a Rust toolchain with the
# x86_64-unknown-linux-gnu target and glibc's static libraries (libc6-dev).
# Environment:
#   LOG_CAPTURER_IMAGE  image tag (default log-capturer:local)
#   CARGO_TARGET_DIR    cargo's target directory (default target)
set -euo pipefail

cd "$(dirname "$0")/.."

IMAGE="${LOG_CAPTURER_IMAGE:-log-capturer:local}"
TARGET=x86_64-unknown-linux-gnu
MARKER='# ---- final stage ----'
LABEL_KEY=org.log-capturer.image

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH (run scripts/docker-up.sh)"
docker version >/dev/null 2>&1 \
    || die "the Docker Engine does not answer (run scripts/docker-up.sh): $(docker version 2>&1 | tail -n 3)"
grep -qxF "$MARKER" Dockerfile || die "marker line '$MARKER' not found in Dockerfile"

say "cargo build --release --locked --target $TARGET (static)"
started=$(date +%s)
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$TARGET" \
    || die "static release build failed"
bin="${CARGO_TARGET_DIR:-target}/$TARGET/release/log-capturer"
[ -x "$bin" ] || die "$bin not found after the build"
is_static "$bin" || die "$bin is not statically linked: $(LC_ALL=C ldd "$bin" 2>&1 | head -n 3)"
say "built $bin in $(( $(date +%s) - started )) s"
# The file alone: the binary refuses unknown LOG_CAPTURER_* variables, and the test
# setup exports some (LOG_CAPTURER_IMAGE, LOG_CAPTURER_TEST_IMAGE).
unset_ours=()
while IFS='=' read -r name _; do
    case "$name" in LOG_CAPTURER_*) unset_ours+=(-u "$name") ;; esac
done < <(env)
env "${unset_ours[@]}" "$bin" --check-config --config config/container.toml >/dev/null \
    || die "config/container.toml is not accepted by the binary"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/log-capturer-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/out/data" "$ctx/config"
chmod 0755 "$ctx/out" "$ctx/out/data"
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$ctx/out/log-capturer" "$bin"
else
    cp "$bin" "$ctx/out/log-capturer"
fi
chmod 0755 "$ctx/out/log-capturer"
cp config/container.toml "$ctx/config/container.toml"
chmod 0644 "$ctx/config/container.toml"
# The final stage, verbatim but for the stage reference: its COPY sources become paths
# of this context.
awk -v m="$MARKER" '$0 == m { on = 1 } on' Dockerfile | sed 's/--from=build //' >"$ctx/Dockerfile"
if grep -q -- '--from=' "$ctx/Dockerfile"; then
    die "the final stage still refers to another stage: $(grep -- '--from=' "$ctx/Dockerfile")"
fi

say "building $IMAGE from the final stage of Dockerfile"
DOCKER_BUILDKIT=0 docker build --network none --label "$LABEL_KEY=1" -t "$IMAGE" "$ctx" >&2 \
    || die "docker build of $IMAGE failed"
# Drop the untagged image a rebuild leaves behind; ignore failures.
docker image prune -f --filter "label=$LABEL_KEY" >/dev/null 2>&1 || true

# Smoke test. The image has no shell: run the binary itself, and list the data
# directory through `docker cp` of a created (never started) container.
version="$(docker run --rm --network none "$IMAGE" --version)" || die "docker run $IMAGE --version failed"
[ "$version" = "log-capturer $(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)" ] \
    || die "unexpected version from $IMAGE: '$version'"
effective="$(docker run --rm --network none "$IMAGE" --check-config)" \
    || die "$IMAGE rejects its own configuration"
grep -qxF 'listen = "0.0.0.0:8401"' <<<"$effective" || die "$IMAGE does not listen on 0.0.0.0:8401"
cid="$(docker create --network none "$IMAGE")"
owner="$(docker cp "$cid:/var/lib/log-capturer" - | tar -tvf - --numeric-owner | awk 'NR == 1 { print $2 }')" || true
docker rm -v "$cid" >/dev/null 2>&1 || true
[ "$owner" = "65534/65534" ] || die "/var/lib/log-capturer in $IMAGE is owned by '$owner', not 65534/65534"
echo "build-image: $IMAGE ok ($version, static, user $(docker image inspect --format '{{.Config.User}}' "$IMAGE"), data dir owned by $owner)"
