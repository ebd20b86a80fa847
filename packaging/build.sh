#!/usr/bin/env bash
# packaging/build.sh - build the chartd .deb and .rpm from a clean checkout, in one command.
#
#   packaging/build.sh            -> target/packages/chartd_<ver>-1_<arch>.deb
#                                    target/packages/chartd-<ver>-1.<arch>.rpm
#
# Installs cargo-deb and cargo-generate-rpm (cargo install --locked) when missing, builds the
# release binary, generates the man page and the shell completions with the binary's hidden
# `chartd generate-assets`, then packages. Prints the package paths (one per line, on stdout).
# Environment: OUT_DIR (default target/packages), CARGO (default cargo).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
TARGET_DIR=$("$CARGO" metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
OUT_DIR=${OUT_DIR:-$TARGET_DIR/packages}
# cargo-deb / cargo-generate-rpm read assets relative to the crate with a literal target/
# prefix (cargo-deb maps target/release/ to the real target dir, but not other paths).
ASSETS=$ROOT/target/assets

log() { printf '[build.sh] %s\n' "$*" >&2; }

need_tool() {   # need_tool SUBCOMMAND CRATE
    if ! "$CARGO" "$1" --version >/dev/null 2>&1; then
        log "installing $2 (cargo install --locked $2)"
        "$CARGO" install --locked "$2" >&2
    fi
}
need_tool deb cargo-deb
need_tool generate-rpm cargo-generate-rpm

log "building release binary"
"$CARGO" build --release --locked >&2
BIN=$TARGET_DIR/release/chartd

log "generating man page and completions into $ASSETS"
rm -rf "$ASSETS"
mkdir -p "$ASSETS"
"$BIN" generate-assets --out "$ASSETS" >&2
for f in chartd.1 chartd.bash _chartd chartd.fish; do
    [ -s "$ASSETS/$f" ] || { log "ERROR: chartd generate-assets did not write $f"; exit 1; }
done
gzip -9n -f "$ASSETS/chartd.1"    # man pages ship compressed (Debian policy 12.1)

mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/chartd_*.deb "$OUT_DIR"/chartd-*.rpm

log "building .deb"
# The binary is already built; --strip: the package gets a stripped copy (debug info stays
# in target/release/chartd).
"$CARGO" deb --no-build --strip --output "$OUT_DIR" >&2
# cargo-deb writes no md5sums control file; add it (where dpkg-deb is at hand) so that
# `dpkg --verify chartd` works.
if command -v dpkg-deb >/dev/null; then
    deb=$(ls "$OUT_DIR"/chartd_*.deb)
    tree=$(mktemp -d)
    dpkg-deb -R "$deb" "$tree/pkg"
    (cd "$tree/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
        xargs -0 md5sum >DEBIAN/md5sums)
    chmod 644 "$tree/pkg/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz -b "$tree/pkg" "$deb" >/dev/null
    rm -rf "$tree"
fi

log "building .rpm"
# cargo-generate-rpm does not strip: it packages a stripped copy (target/assets/chartd).
strip --strip-unneeded -o "$ASSETS/chartd" "$BIN"
"$CARGO" generate-rpm --output "$OUT_DIR" >&2

ls -1 "$OUT_DIR"/chartd_*.deb "$OUT_DIR"/chartd-*.rpm
