#!/usr/bin/env bash
# Runs every fuzz target of chartd for a bounded time on the stable toolchain.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Installs cargo-fuzz if it is missing. Sanitizer "none" (`-s none`) is what lets cargo-fuzz
# work on stable Rust: the address sanitizer needs nightly's -Zsanitizer, while coverage
# instrumentation (-Cpasses=sancov-module) is a stable flag. chartd is safe Rust, so ASan
# would add little; debug assertions (hence overflow checks) stay on in the fuzz build.
#
# New interesting inputs are kept in fuzz/corpus/<target>/ (git-ignored; the hand-written
# seeds there are committed). Exits 1 if any target found a crash (a panic, an abort, a run
# over 10 s or over 2 GiB), after running them all and printing each crash file, its
# content and the command that reproduces it.
set -euo pipefail

cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config_yaml units request)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

here=$PWD
failed=()
for t in "${targets[@]}"; do
    echo "== $t: ${seconds}s"
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | sort)
    dict=()
    if [ -f "dict/$t.dict" ]; then dict=("-dict=$here/dict/$t.dict"); fi
    if cargo fuzz run -s none "$t" "$here/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${dict[@]}" 2>"artifacts/$t.log"; then
        grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^Done' \
            "artifacts/$t.log" || true
    else
        failed+=("$t")
        tail -n 40 "artifacts/$t.log"
        grep -m 3 -E "panicked at|^ERROR: libFuzzer|^==[0-9]+== ERROR" "artifacts/$t.log" || true
        for f in $(comm -13 <(echo "$before") <(find "artifacts/$t" -type f | sort)); do
            echo "-- crash file: fuzz/$f"
            head -c 2000 "$f" | od -c | head -n 40
            echo "-- reproduce (from the repository root): cargo fuzz run -s none $t fuzz/$f"
        done
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (logs in fuzz/artifacts/<target>.log)" >&2
    exit 1
fi
echo "all targets ran ${seconds}s without a crash: ${targets[*]}"
