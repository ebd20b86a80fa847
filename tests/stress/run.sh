#!/usr/bin/env bash
# The long versions of the hostile-conditions tests (tests/stress_*.rs), one at a time, release
# build. Needs root for the sysctl, mount-namespace and ptrace cases (they skip otherwise).
# Figures are printed by each test (eprintln) and summarised in the README (Reliability).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CHARTD_STRESS=full
tests=(stress_races stress_overflow stress_root stress_crash stress_writers stress_socket)
for t in "${tests[@]}"; do
  echo "== $t"
  cargo test --release --test "$t" -- --test-threads=1 --nocapture 2>&1 \
    | grep -Ev '^\s+(Compiling|Finished|Running)'
done
