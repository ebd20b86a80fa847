#!/usr/bin/env bash
# Where chartd's time goes, with perf (software cpu-clock: this VM has no hardware counters).
#
#   benches/profile.sh crawl  [N]   # initial crawl of the cached N-file tree (default 1000000)
#   benches/profile.sh events [S]   # event processing: files created as fast as one writer can,
#                                   # for S seconds (default 10), on a tmpfs root, observe-only
#
# Needs root, perf (apt-get install linux-perf) and the cached trees
# (cargo bench --bench chartd_bench -- --prepare --sizes 1m). Prints the top functions by self
# time (user and kernel), and leaves perf.data in target/bench/profile-<what>/.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: benches/profile.sh crawl|events [N|seconds]}
base=${CHARTD_BENCH_DIR:-/var/tmp/chartd-bench}
bin=${CHARTD_BIN:-target/release/chartd}
[ -x "$bin" ] || cargo build --release
out=target/bench/profile-$what
rm -rf "$out"; mkdir -p "$out"
out=$(realpath "$out")

case "$what" in
  crawl)  root="$base/trees/${2:-1000000}/root"; [ -d "$root" ] || { echo "no tree at $root" >&2; exit 1; } ;;
  events) root=/dev/shm/chartd-profile-events; rm -rf "$root"; mkdir -p "$root" ;;
  *) echo "crawl or events" >&2; exit 2 ;;
esac

watches=$(cat /proc/sys/fs/inotify/max_user_watches)
restore() { echo "$watches" > /proc/sys/fs/inotify/max_user_watches; [ "$what" = events ] && rm -rf "$root"; true; }
trap restore EXIT
[ "$watches" -lt 600000 ] && echo 600000 > /proc/sys/fs/inotify/max_user_watches

cat > "$out/chartd.yaml" <<EOF
socket: $out/chartd.sock
log: { level: info, format: text }
cleanup_enabled: false
resync_interval: 24h
roots:
  - path: $root
    max_age: 0
    max_size: 0
EOF

env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u ENVIRONMENT \
  perf record -e cpu-clock -F 1999 -o "$out/perf.data" -- "$bin" run --config "$out/chartd.yaml" \
  2> "$out/chartd.log" &
perf_pid=$!
until grep -q "ready:" "$out/chartd.log" 2>/dev/null; do sleep 0.2; done
chartd_pid=$(pgrep -P "$perf_pid" -x chartd || pgrep -P "$perf_pid")

if [ "$what" = events ]; then
  python3 - "$root" "${2:-10}" <<'EOF'
import os, sys, time
root, secs = sys.argv[1], float(sys.argv[2])
for k in range(1000):
    os.makedirs(f"{root}/d{k:04}", exist_ok=True)
time.sleep(0.5)
n, t0 = 0, time.time()
while time.time() - t0 < secs:
    for _ in range(1000):
        fd = os.open(f"{root}/d{(n // 4) % 1000:04}/f{n:08}.png", os.O_CREAT | os.O_WRONLY, 0o644)
        os.ftruncate(fd, 300 * 1024 + n % 500000)
        os.close(fd)
        n += 1
print(f"wrote {n} files in {time.time() - t0:.1f} s ({n / (time.time() - t0):.0f}/s)", file=sys.stderr)
EOF
  sleep 2
fi

kill -TERM "$chartd_pid"
wait "$perf_pid" || true
grep -E "ready:|indexed" "$out/chartd.log" | head -3
perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
  | grep -E '^ +[0-9]' | head -30 | tee "$out/top.txt"
