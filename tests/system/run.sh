#!/usr/bin/env bash
# tests/system/run.sh - system test of the chartd packages under a real systemd.
#
# Usage (root):  tests/system/run.sh [CHARTD.deb CHARTD.rpm]
#
# Builds the packages with packaging/build.sh (unless both are given), checks the unit with
# systemd-analyze (verify: no output at all; security --offline: exposure <= 2.0) and the
# .deb with lintian, then boots a real systemd as PID 1 of a systemd-nspawn container on a
# cached Debian rootfs (mmdebstrap, host's apt sources) and checks, as a user would: install,
# service active, `chartd status` for root / group chartd / others, eviction of files written
# by an application user, journal, reload (good and broken config), a second root governed
# through a drop-in, fd limit under the syscall filter, watchdog, stop, upgrade,
# remove (keeps data + config), purge (keeps data). The metrics endpoint: chartd-metrics.socket
# (disabled by default) enabled, GET /metrics over the socket passed in by LISTEN_FDS with the
# sandbox unchanged (PrivateNetwork=yes, AF_UNIX only), and Debian's prometheus scraping it
# with the shipped rules (promtool check rules; target up, a chartd_ series queryable, rules
# loaded). Then the same cycle with the .rpm in a fresh container. Prints `N passed, M failed`;
# exits 1 if anything failed.
#
# Not root, or no systemd-nspawn possible here: prints a SKIP line and exits 0. Then nothing,
# not even the exposure check or the Prometheus scrape, has been checked.
#
# Environment (all optional):
#   CHARTD_SYSTEST_DIR=/var/tmp/chartd-systest   rootfs cache (cache/) and per-run state (run/)
#   REBUILD_ROOTFS=1   rebuild the cached rootfs        KEEP_RUN=1   keep the overlays + journals
#   VERBOSE=1          print every in-container command's output
# Shell code in single quotes runs inside the container, expanded there:
# shellcheck disable=SC2016
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BASE=${CHARTD_SYSTEST_DIR:-/var/tmp/chartd-systest}
SUITE=bookworm
# Baked into the cached rootfs: systemd as PID 1, rpm for the .rpm cycle, acl to inspect the
# default root, man-db (systemd-analyze verify checks Documentation=man:chartd(1)), Debian's
# prometheus (scrapes chartd-metrics.socket; disabled in the image, started by the deb cycle).
ROOTFS_PKGS=systemd,systemd-sysv,dbus,libpam-systemd,rpm,acl,man-db,procps,less,prometheus
ROOTFS_VERSION=2
BOOT_TIMEOUT=90
SHARE=/run/chartd-test       # packages inside the container (read-only bind)

PASS=0 FAIL=0
FAILED=()
T0=$SECONDS

log() { printf '[systest %(%T)T] %s\n' -1 "$*" >&2; }
skip() { echo "SKIP: chartd system test: $*"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
pass() { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$1"; }
fail() {
    FAIL=$((FAIL + 1)); FAILED+=("$1"); printf 'FAIL - %s\n' "$1"
    [ -z "${2:-}" ] || printf '%s\n' "$2" | head -n 40 | sed 's/^/       | /'
}

# ---------------------------------------------------------------------------- preconditions
[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn, mmdebstrap); run: sudo $0"
[ -d /sys/fs/cgroup ] || skip "no /sys/fs/cgroup on this machine"
if [ -d /proc/1/root ] && [ ! -w /sys/fs/cgroup ] && [ ! -w /sys/fs/cgroup/unified ]; then
    skip "cgroup file system is read-only here (unprivileged container?): cannot run systemd-nspawn"
fi

APT_UPDATED=0
apt_install() {
    [ $APT_UPDATED = 1 ] || DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    APT_UPDATED=1
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v nsenter >/dev/null || need+=(util-linux)
command -v ps >/dev/null || need+=(procps)
if [ ${#need[@]} -gt 0 ] && ! apt_install "${need[@]}"; then
    if ! command -v systemd-nspawn >/dev/null || ! command -v mmdebstrap >/dev/null; then
        skip "cannot install ${need[*]} (no apt?)"
    fi
fi

# ---------------------------------------------------------------------------- packages
if [ $# -ge 2 ]; then
    DEB=$(readlink -f "$1") RPM=$(readlink -f "$2")
else
    log "building packages (packaging/build.sh)"
    out=$("$REPO/packaging/build.sh") || { echo "packaging/build.sh failed"; echo "0 passed, 1 failed"; exit 1; }
    DEB=$(grep '\.deb$' <<<"$out" | tail -n1) RPM=$(grep '\.rpm$' <<<"$out" | tail -n1)
fi
if [ ! -f "$DEB" ] || [ ! -f "$RPM" ]; then
    echo "packages not found: '$DEB' '$RPM'"; echo "0 passed, 1 failed"; exit 1
fi
log "deb: $DEB"
log "rpm: $RPM"

# ---------------------------------------------------------------------------- host-side checks
UNIT=$REPO/systemd/chartd.service
score_line=$(systemd-analyze security --offline=true --no-pager "$UNIT" 2>&1 | grep 'Overall exposure level')
score=$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<<"$score_line")
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    pass "systemd-analyze security --offline=true: exposure $score <= 2.0"
else
    fail "systemd-analyze security --offline=true: exposure '${score:-?}' > 2.0" "$score_line"
fi

lint=$(lintian --fail-on none "$DEB" 2>&1 | grep -v '^running with root privileges')
if grep -q '^E: ' <<<"$lint"; then
    fail "lintian: errors" "$lint"
elif grep -q '^W: ' <<<"$lint"; then
    fail "lintian: warnings not overridden" "$lint"
else
    pass "lintian $(basename "$DEB"): no errors, no warnings${lint:+ (infos: $(grep -c '^[IP]: ' <<<"$lint"))}"
fi

# ---------------------------------------------------------------------------- rootfs cache
if [ -s /etc/apt/sources.list.d/debian.sources ]; then SOURCES=/etc/apt/sources.list.d/debian.sources
elif [ -s /etc/apt/sources.list ]; then SOURCES=/etc/apt/sources.list
else skip "cannot find the host's apt sources for mmdebstrap"; fi
KEY=$({ echo "$ROOTFS_VERSION $SUITE $ROOTFS_PKGS"; cat "$SOURCES"; } | sha256sum | cut -c1-12)
ROOTFS=$BASE/cache/rootfs-$SUITE-$KEY
mkdir -p "$BASE/cache" "$BASE/run"
exec 8>"$BASE/cache/.lock"
flock 8
[ "${REBUILD_ROOTFS:-0}" = 1 ] && rm -rf "$ROOTFS" "$ROOTFS.ok"
if [ ! -f "$ROOTFS.ok" ]; then
    log "building rootfs $ROOTFS with mmdebstrap (once; cached)"
    rm -rf "$ROOTFS" "$ROOTFS.tmp"
    # shellcheck disable=SC2016  # $1 is mmdebstrap's hook argument
    if ! mmdebstrap --quiet --variant=minbase --include="$ROOTFS_PKGS" \
        --customize-hook='echo chartd-systest > "$1/etc/hostname"' \
        --customize-hook='chroot "$1" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer man-db.timer' \
        --customize-hook='chroot "$1" sh -c "systemctl disable --quiet prometheus.service; systemctl disable --quiet prometheus-node-exporter.service 2>/dev/null; true"' \
        "$SUITE" "$ROOTFS.tmp" "$SOURCES" >&2; then
        rm -rf "$ROOTFS.tmp"
        echo "mmdebstrap failed"; echo "$PASS passed, $((FAIL + 1)) failed"; exit 1
    fi
    mv "$ROOTFS.tmp" "$ROOTFS" && touch "$ROOTFS.ok"
fi
exec 8>&-

# Leftovers of runs that were killed (their script's pid, the id's suffix, is gone).
for d in "$BASE"/run/*/ /sys/fs/cgroup/chartd-systest-* /sys/fs/cgroup/{systemd,unified}/chartd-systest-*; do
    [ -d "$d" ] || continue
    owner=${d%/}; owner=${owner##*-}
    case $owner in '' | *[!0-9]*) continue ;; esac
    kill -0 "$owner" 2>/dev/null && continue
    [ -e "$d/.keep" ] && continue
    case $d in
        /sys/*) find "$d" -depth -type d -exec rmdir {} + 2>/dev/null ;;
        *) log "removing stale run dir $d"; rm -rf "$d" ;;
    esac
done

# ---------------------------------------------------------------------------- container control
# The host's PID 1 may not be systemd (CI VMs): then nspawn must --keep-unit in a cgroup we
# make. Commands run in the container with nsenter are not tracked by its systemd; they run in
# our "exec" cgroup so that they can all be killed before the container shuts down (a
# leftover would stall systemd-shutdown).
NSPAWN_PID="" LEADER="" RUN="" CG_DIRS=() EXEC_CGS=()
CT_ENV=(env -i -C /root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 DEBIAN_FRONTEND=noninteractive)

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# ct CMD...: run CMD in the container (stdin passed through), with a 120 s limit.
ct() {
    (
        for d in "${EXEC_CGS[@]}"; do echo "$BASHPID" >"$d/cgroup.procs"; done
        exec setsid -w nsenter --target "$LEADER" --all -- "${CT_ENV[@]}" timeout 120 "$@"
    )
}
# cts 'SHELL CODE': the same through sh -c. Output goes to $OUT; the status is returned.
OUT=""
cts() {
    local rc=0
    OUT=$(ct sh -c "$1" 2>&1 </dev/null) || rc=$?
    [ "${VERBOSE:-0}" = 1 ] && printf '  $ %s\n%s\n  (exit %s)\n' "$1" "$OUT" "$rc" >&2
    return $rc
}
# check NAME 'SHELL CODE': passes when the code exits 0.
check() {
    if cts "$2"; then pass "$1"; else fail "$1" "$OUT"; fi
}
# wait_for SECONDS 'SHELL CONDITION'
wait_for() { cts "for i in \$(seq $(($1 * 5))); do if $2; then exit 0; fi; sleep 0.2; done; $2"; }

kill_exec_cg() {
    [ ${#EXEC_CGS[@]} -gt 0 ] || return 0
    local i pids
    for ((i = 0; i < 50; i++)); do
        pids=$(cat "${EXEC_CGS[0]}/cgroup.procs" 2>/dev/null) || break
        [ -n "$pids" ] || break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null
        sleep 0.05
    done
}

ct_stop() {
    local i
    kill_exec_cg
    if alive "$NSPAWN_PID"; then
        if alive "$LEADER"; then
            timeout 10 nsenter --target "$LEADER" --all -- "${CT_ENV[@]}" systemctl --no-block poweroff \
                >/dev/null 2>&1 || kill -TERM "$NSPAWN_PID"
        else
            kill -TERM "$NSPAWN_PID"
        fi
        for ((i = 0; i < 600; i++)); do alive "$NSPAWN_PID" || break; sleep 0.1; done
        if alive "$NSPAWN_PID"; then
            log "container did not shut down in 60 s; killing it"
            alive "$LEADER" && kill -KILL "$LEADER"
            kill -KILL "$NSPAWN_PID"
        fi
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    for d in "${CG_DIRS[@]}"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    if [ -n "$RUN" ] && [ -d "$RUN" ]; then
        if [ "${KEEP_RUN:-0}" = 1 ]; then touch "$RUN/.keep"; log "kept $RUN (journal: journalctl -D $RUN/upper/var/log/journal)"
        else rm -rf "$RUN"; fi
    fi
    NSPAWN_PID="" LEADER="" RUN="" CG_DIRS=() EXEC_CGS=()
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    case $rc in 130 | 143) log "interrupted; stopping the container" ;; esac
    ct_stop
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ct_boot NAME: boot the cached rootfs on a fresh overlay, with the packages bound in.
ct_boot() {
    local id d state deadline pid comm
    id=$1-$(date +%H%M%S)-$$
    RUN=$BASE/run/$id
    mkdir -p "$RUN/upper" "$RUN/share"
    cp "$DEB" "$RUN/share/chartd.deb"
    cp "$RPM" "$RUN/share/chartd.rpm"
    local nspawn=(systemd-nspawn --quiet --directory="$ROOTFS" --overlay="$ROOTFS:$RUN/upper:/"
        --machine="chartd-systest-$$" --bind-ro="$RUN/share:$SHARE" --console=read-only
        --register=no --link-journal=no --private-network)
    CG_DIRS=() EXEC_CGS=()
    if [ ! -d /run/systemd/system ]; then
        nspawn+=(--keep-unit)
        if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
            CG_DIRS=("/sys/fs/cgroup/chartd-systest-$id")
        else
            for d in systemd unified; do
                [ -d "/sys/fs/cgroup/$d" ] && CG_DIRS+=("/sys/fs/cgroup/$d/chartd-systest-$id")
            done
        fi
        for d in "${CG_DIRS[@]}"; do mkdir -p "$d/exec" && EXEC_CGS+=("$d/exec"); done
    fi
    nspawn+=(-b)
    log "booting container $id"
    (
        for d in "${CG_DIRS[@]}"; do echo "$BASHPID" >"$d/cgroup.procs"; done
        exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 "${nspawn[@]}"
    ) >"$RUN/console.log" 2>&1 </dev/null &
    NSPAWN_PID=$!
    deadline=$((SECONDS + BOOT_TIMEOUT))
    while [ -z "$LEADER" ]; do
        if ! alive "$NSPAWN_PID" || [ $SECONDS -ge $deadline ]; then cat "$RUN/console.log" >&2; return 1; fi
        while read -r pid comm; do [ "$comm" = systemd ] && LEADER=$pid; done \
            < <(ps -o pid=,comm= --ppid "$NSPAWN_PID" 2>/dev/null)
        [ -n "$LEADER" ] || sleep 0.05
    done
    while :; do
        state=$(ct systemctl is-system-running 2>/dev/null </dev/null)
        case $state in running | degraded) break ;; esac
        if ! alive "$NSPAWN_PID" || [ $SECONDS -ge $deadline ]; then cat "$RUN/console.log" >&2; return 1; fi
        sleep 0.1
    done
    log "container up ($state)"
}

# ---------------------------------------------------------------------------- test data
# `systemctl reload chartd`, then wait (10 s max) for the daemon's next journal line about a
# reload: ExecReload only sends SIGHUP, the daemon applies (or refuses) the file afterwards.
RELOAD='n0=$(journalctl --no-pager -o cat _SYSTEMD_UNIT=chartd.service _EXE=/usr/bin/chartd | grep -ci reload)
  systemctl reload chartd || exit 1
  for i in $(seq 50); do
    n=$(journalctl --no-pager -o cat _SYSTEMD_UNIT=chartd.service _EXE=/usr/bin/chartd | grep -ci reload)
    [ "$n" -gt "$n0" ] && break; sleep 0.2; done
  [ "$n" -gt "$n0" ]'
# A config with small limits, to see reload take effect: 1 MiB cap, no grace.
SMALL_CFG='environment: production
cleanup_enabled: true
resync_interval: 1h
socket: /run/chartd/chartd.sock
log:
  level: debug
  format: auto
control:
  group: chartd
roots:
  - path: /var/lib/chartd/charts
    create: true
    max_age: 6h
    max_size: 1MiB
    low_watermark: 50%
    grace: 0s
    include: ["*.png"]
    prune_empty_dirs: true
'
# Debian's Prometheus scraping chartd-metrics.socket every second, with the shipped rules.
PROM_CFG='global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [/usr/share/chartd/prometheus/chartd-alerts.yml]
scrape_configs:
  - job_name: chartd
    static_configs: [{ targets: ["127.0.0.1:9817"] }]
'
# /usr/local/bin/httpget PORT PATH: an HTTP/1.0 GET with bash's /dev/tcp (the image has no curl).
HTTPGET_SH='#!/bin/bash
exec 5<>"/dev/tcp/127.0.0.1/$1" || exit 1
printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$2" >&5
exec cat <&5'
# ... plus a root outside the default, as the README describes it.
OTHER_ROOT='  - path: /srv/charts
    max_age: 1h
    grace: 0s
    include: ["*.png"]
    prune_empty_dirs: true
'

deb_cycle() {
    ct_boot deb || { fail "deb: container boots"; return; }

    # -- install
    check "deb: dpkg -i installs the package" "dpkg -i $SHARE/chartd.deb"
    check "deb: dpkg --verify chartd finds every file intact (md5sums)" \
        'out=$(dpkg --verify chartd 2>&1); echo "$out"; [ -z "$out" ] && test -s /var/lib/dpkg/info/chartd.md5sums'
    check "deb: user and group chartd exist (system user, nologin)" \
        'getent passwd chartd | grep -q ":/var/lib/chartd:/usr/sbin/nologin$" && getent group chartd'
    check "deb: /etc/chartd/chartd.yaml is a conffile" \
        "dpkg-query -W -f='\${Conffiles}' chartd | grep -q '/etc/chartd/chartd.yaml'"
    check "deb: shipped config is valid (chartd check-config)" \
        'chartd check-config --config /etc/chartd/chartd.yaml >/dev/null'
    check "deb: man page and bash/zsh/fish completions installed" \
        'man -w chartd && test -s /usr/share/bash-completion/completions/chartd &&
         test -s /usr/share/zsh/vendor-completions/_chartd && test -s /usr/share/fish/vendor_completions.d/chartd.fish'
    check "deb: sysctl drop-in installed (fs.inotify.max_user_watches)" \
        'grep -q "^fs.inotify.max_user_watches *= *[0-9]" /usr/lib/sysctl.d/60-chartd.conf'
    check "deb: systemd-analyze verify prints nothing" \
        'out=$(systemd-analyze verify /usr/lib/systemd/system/chartd.service 2>&1); echo "$out"; [ -z "$out" ]'
    check "deb: service enabled and active after install" \
        'systemctl is-enabled chartd && systemctl is-active chartd'
    check "deb: default root is 2775 chartd:chartd with default ACL for group chartd" \
        'stat -c "%a %U:%G" /var/lib/chartd/charts | grep -qx "2775 chartd:chartd" &&
         getfacl -p /var/lib/chartd/charts | grep -qx "default:group:chartd:rwx"'
    check "deb: control socket is 0660 group chartd in /run/chartd (0750)" \
        'stat -c "%a %G" /run/chartd | grep -qx "750 chartd" &&
         stat -c "%a %G %F" /run/chartd/chartd.sock | grep -qx "660 chartd socket"'

    # -- metrics: chartd-metrics.socket (socket activation into the PrivateNetwork= sandbox),
    #    scraped by Debian's Prometheus, which also loads the shipped alert rules
    printf '%s\n' "$HTTPGET_SH" | ct sh -c 'cat > /usr/local/bin/httpget && chmod 755 /usr/local/bin/httpget'
    check "deb: chartd-metrics.socket installed, disabled by default; verify prints nothing" \
        '! systemctl is-enabled chartd-metrics.socket && ! systemctl is-active chartd-metrics.socket &&
         out=$(systemd-analyze verify /usr/lib/systemd/system/chartd-metrics.socket 2>&1); echo "$out"; [ -z "$out" ]'
    check "deb: shipped alert rules pass promtool check rules" \
        'promtool check rules /usr/share/chartd/prometheus/chartd-alerts.yml'
    # As the README says: the socket cannot start while the service runs (systemd refuses).
    check "deb: stop chartd, enable --now chartd-metrics.socket, start chartd: GET /metrics over the passed socket" \
        'systemctl stop chartd && systemctl enable --now chartd-metrics.socket && systemctl start chartd &&
         systemctl is-active chartd-metrics.socket chartd &&
         out=$(httpget 9817 /metrics) && echo "$out" | head -n 12 && echo "$out" | head -n1 | grep -q "^HTTP/1.[01] 200" &&
         echo "$out" | grep -qi "^content-type: text/plain; version=0.0.4" &&
         echo "$out" | grep -q "^chartd_managed_files{root=\"/var/lib/chartd/charts\"} "'
    check "deb: the sandbox is unchanged (PrivateNetwork=yes, AF_UNIX only) and the socket came in by LISTEN_FDS" \
        '[ "$(systemctl show -p PrivateNetwork --value chartd)" = yes ] &&
         systemctl show -p RestrictAddressFamilies --value chartd | grep -qx AF_UNIX &&
         pid=$(systemctl show -p MainPID --value chartd) && tr "\0" "\n" < /proc/$pid/environ | grep -qx LISTEN_FDNAMES=metrics'
    printf '%s' "$PROM_CFG" | ct sh -c 'cat > /etc/prometheus/prometheus.yml'
    check "deb: Debian prometheus scrapes chartd: up{job=\"chartd\"} == 1 and a chartd_ series queryable" \
        'systemctl restart prometheus || exit 1
         for i in $(seq 150); do
           up=$(httpget 9090 "/api/v1/query?query=up%7Bjob%3D%22chartd%22%7D%3D%3D1" 2>/dev/null)
           s=$(httpget 9090 "/api/v1/query?query=chartd_managed_files" 2>/dev/null)
           if echo "$up" | grep -q "\"job\":\"chartd\"" && echo "$s" | grep -q "\"root\":\"/var/lib/chartd/charts\""; then
             echo "$up" | tail -n1; echo "$s" | tail -n1; exit 0; fi
           sleep 0.2; done
         echo "up: $up"; echo "series: $s"; journalctl -u prometheus --no-pager | tail -n 15; exit 1'
    check "deb: Prometheus loaded the shipped alert rules (ChartdDown among them)" \
        'httpget 9090 /api/v1/rules | grep -q "\"name\":\"ChartdDown\""'
    cts 'systemctl stop prometheus'

    # -- status: root, a member of group chartd, somebody else
    check "deb: chartd status works as root (shows the default root)" \
        'chartd status | grep /var/lib/chartd/charts'
    check "deb: chartd status --json works as root" \
        'chartd status --json | grep -q "\"/var/lib/chartd/charts\""'
    cts 'useradd -m -G chartd alice && useradd -m bob && useradd -m -G chartd chartapp'
    check "deb: chartd status works as a member of group chartd" \
        'runuser -u alice -- chartd status | grep /var/lib/chartd/charts'
    cts 'runuser -u bob -- chartd status'
    local rc=$?
    if [ $rc = 3 ] && [ -n "$OUT" ]; then pass "deb: chartd status refused to a non-member (exit 3): $(head -n1 <<<"$OUT")"
    else fail "deb: chartd status refused to a non-member with exit 3 and a message (got exit $rc)" "$OUT"; fi

    # -- admin commands: root yes, a mere member of group chartd no
    check "deb: chartd cleanup works as root" 'chartd cleanup'
    cts 'runuser -u alice -- chartd cleanup'
    rc=$?
    if [ $rc != 0 ] && [ $rc != 3 ] && [ -n "$OUT" ]; then pass "deb: chartd cleanup refused to a non-admin member (exit $rc): $(head -n1 <<<"$OUT" | cut -c1-90)"
    else fail "deb: chartd cleanup refused to a non-admin member of group chartd (got exit $rc)" "$OUT"; fi

    # -- permissions: whatever the writer's umask, user chartd can unlink its files and rmdir its
    #    directories (setgid root + default ACLs); checked without the daemon
    check "deb: user chartd can delete files and dirs an app user wrote with umask 077" \
        'runuser -u chartapp -- sh -c "umask 077 && mkdir -p /var/lib/chartd/charts/PERM_1day/sub &&
           echo x > /var/lib/chartd/charts/PERM_1day/sub/x.png" &&
         runuser -u chartd -- rm /var/lib/chartd/charts/PERM_1day/sub/x.png &&
         runuser -u chartd -- rmdir /var/lib/chartd/charts/PERM_1day/sub /var/lib/chartd/charts/PERM_1day'

    # -- eviction of an application user's files, written with umask 077 (age limit 6h)
    check "deb: application user (group chartd, umask 077) writes into the default root" \
        'runuser -u chartapp -- sh -c "umask 077 && cd /var/lib/chartd/charts &&
           mkdir -p OLD_1day NEW_1day && head -c 20000 /dev/urandom > OLD_1day/a.png &&
           head -c 20000 /dev/urandom > OLD_1day/b.png && head -c 20000 /dev/urandom > NEW_1day/c.png &&
           echo notes > NEW_1day/analysis.json &&
           touch -d \"2 days ago\" OLD_1day/a.png OLD_1day/b.png"'
    if wait_for 20 '[ ! -e /var/lib/chartd/charts/OLD_1day/a.png ] && [ ! -e /var/lib/chartd/charts/OLD_1day/b.png ]'; then
        pass "deb: files older than max_age written by the app user are evicted"
    else
        fail "deb: files older than max_age written by the app user are evicted" \
            "$(ct sh -c 'ls -laR /var/lib/chartd/charts; getfacl -R /var/lib/chartd/charts; journalctl -u chartd --no-pager | tail -n 20' 2>&1)"
    fi
    check "deb: emptied group directory pruned, fresh chart and non-image file kept" \
        'for i in $(seq 50); do [ -e /var/lib/chartd/charts/OLD_1day ] || break; sleep 0.2; done
         [ ! -e /var/lib/chartd/charts/OLD_1day ] && [ -e /var/lib/chartd/charts/NEW_1day/c.png ] &&
         [ -e /var/lib/chartd/charts/NEW_1day/analysis.json ]'
    check "deb: journalctl -u chartd shows the deletions" \
        'journalctl -u chartd --no-pager -o cat | grep "deleted .*OLD_1day/a\.png"'

    # -- reload with a changed config takes effect. SIGHUP is asynchronous: each reload waits
    #    for the daemon's journal line about it (taken or refused).
    local pid0
    cts 'systemctl show -p MainPID --value chartd'; pid0=$OUT
    printf '%s' "$SMALL_CFG" | ct sh -c 'cat > /etc/chartd/chartd.yaml'
    check "deb: systemctl reload chartd (1 MiB cap) is taken" "$RELOAD"' && systemctl is-active chartd &&
         journalctl --no-pager -o cat _SYSTEMD_UNIT=chartd.service _EXE=/usr/bin/chartd | grep -i reload | tail -n1 |
         grep -viE "not reloaded|refus|invalid|keeping"'
    check "deb: after reload the 1 MiB cap is enforced on new files" \
        'runuser -u chartapp -- sh -c "mkdir -p /var/lib/chartd/charts/BIG_1day && cd /var/lib/chartd/charts/BIG_1day &&
           for i in 1 2 3 4 5 6; do head -c 400000 /dev/urandom > \$i.png; sleep 0.3; done"
         for i in $(seq 100); do
           total=$(du -sb --apparent-size /var/lib/chartd/charts --exclude="*.json" | cut -f1)
           [ "$total" -le 1100000 ] && break; sleep 0.2; done
         echo "total bytes: $total"; ls -la /var/lib/chartd/charts/BIG_1day; [ "$total" -le 1100000 ]'
    # -- reload with a broken config keeps the daemon running on the old one
    ct sh -c 'printf "roots: [ this is: not valid\n" > /etc/chartd/chartd.yaml' </dev/null
    check "deb: reload with a broken config is refused and logged as an error" "$RELOAD"' &&
         journalctl --no-pager -o cat -p warning _SYSTEMD_UNIT=chartd.service _EXE=/usr/bin/chartd | grep -i reload | tail -n1 | grep .'
    check "deb: after the broken reload: still active, same PID, status answers" \
        "systemctl is-active chartd && chartd status >/dev/null &&
         [ \"\$(systemctl show -p MainPID --value chartd)\" = '$pid0' ]"
    printf '%s' "$SMALL_CFG" | ct sh -c 'cat > /etc/chartd/chartd.yaml'
    cts "$RELOAD"

    # -- governing another root, as the README says: config + drop-in + permissions
    printf '%s%s' "$SMALL_CFG" "$OTHER_ROOT" | ct sh -c 'cat > /etc/chartd/chartd.yaml'
    check "deb: another root (/srv/charts) with the documented drop-in and permissions" \
        'mkdir -p /srv/charts && chgrp -R chartd /srv/charts && chmod 2775 /srv/charts &&
         setfacl -R -m g:chartd:rwx,d:g:chartd:rwx,d:m::rwx /srv/charts &&
         mkdir -p /etc/systemd/system/chartd.service.d &&
         printf "[Service]\nReadWritePaths=/srv/charts\n" > /etc/systemd/system/chartd.service.d/override.conf &&
         systemctl daemon-reload && systemctl restart chartd && systemctl is-active chartd &&
         chartd status | grep /srv/charts'
    cts 'runuser -u chartapp -- sh -c "umask 077 && mkdir -p /srv/charts/G_1day &&
           echo old > /srv/charts/G_1day/old.png && echo new > /srv/charts/G_1day/new.png &&
           touch -d \"3 hours ago\" /srv/charts/G_1day/old.png"'
    if wait_for 20 '[ ! -e /srv/charts/G_1day/old.png ] && [ -e /srv/charts/G_1day/new.png ]'; then
        pass "deb: chartd evicts an app user's expired file in the other root"
    else
        fail "deb: chartd evicts an app user's expired file in the other root" \
            "$(ct sh -c 'ls -laR /srv/charts; journalctl -u chartd --no-pager | tail -n 20' 2>&1)"
    fi

    # -- the sandbox lets the daemon raise its open-files soft limit (prlimit64 allowed)
    check "deb: daemon raised its open-files soft limit above 1024 (syscall filter allows it)" \
        'pid=$(systemctl show -p MainPID --value chartd);
         soft=$(awk "/^Max open files/ {print \$4}" /proc/$pid/limits); echo "soft=$soft"; [ "$soft" -gt 1024 ]'

    # -- watchdog
    check "deb: watchdog armed (WatchdogUSec=30s) and pinged" \
        'systemctl show -p WatchdogUSec --value chartd | grep -qx 30s &&
         ts=$(systemctl show -p WatchdogTimestampMonotonic --value chartd) && [ "${ts:-0}" -gt 0 ]'

    # -- upgrade (re-install of the same version): config kept, service restarted
    cts 'systemctl show -p MainPID --value chartd'; pid0=$OUT
    check "deb: upgrade (dpkg -i again) keeps the changed config and restarts the service" \
        "dpkg -i --force-confold $SHARE/chartd.deb && grep -q 'max_size: 1MiB' /etc/chartd/chartd.yaml &&
         systemctl is-active chartd && [ \"\$(systemctl show -p MainPID --value chartd)\" != '$pid0' ]"

    # -- clean stop
    check "deb: systemctl stop is clean (Result=success, no SIGKILL, no failure)" \
        'systemctl stop chartd && ! systemctl is-failed chartd &&
         [ "$(systemctl show -p Result --value chartd)" = success ] &&
         ! journalctl -u chartd --no-pager -o cat | grep -iE "SIGKILL|timed out|watchdog timeout"'
    check "deb: restart after stop" 'systemctl start chartd && systemctl is-active chartd'
    check "deb: no restarts by systemd during the test (NRestarts=0)" \
        '[ "$(systemctl show -p NRestarts --value chartd)" = 0 ]'

    # -- remove keeps data and config; purge removes config, keeps data
    cts 'find /var/lib/chartd /srv/charts -type f | sort > /root/data.before; grep -c "\.png$" /root/data.before'
    check "deb: apt-get remove: service gone, config and every chart file kept" \
        'apt-get remove -y -q chartd >/dev/null && ! systemctl is-active chartd &&
         [ ! -e /usr/bin/chartd ] && [ -f /etc/chartd/chartd.yaml ] && grep -q "\.png$" /root/data.before &&
         find /var/lib/chartd /srv/charts -type f | sort | diff - /root/data.before'
    check "deb: apt-get purge: config removed, every chart file and the user kept" \
        'apt-get purge -y -q chartd >/dev/null && [ ! -e /etc/chartd/chartd.yaml ] &&
         find /var/lib/chartd /srv/charts -type f | sort | diff - /root/data.before &&
         getent passwd chartd >/dev/null && ! dpkg -s chartd >/dev/null 2>&1'
    ct_stop
}

rpm_cycle() {
    ct_boot rpm || { fail "rpm: container boots"; return; }
    # This install goes through the fallbacks of chartd-setup: no systemd-sysusers (useradd)
    # and no systemd-tmpfiles (install -d + setfacl).
    cts 'mv /usr/bin/systemd-sysusers /usr/bin/systemd-sysusers.off &&
         mv /usr/bin/systemd-tmpfiles /usr/bin/systemd-tmpfiles.off'
    check "rpm: rpm -i installs the package (without systemd-sysusers/-tmpfiles)" \
        "rpm -i --nodeps --dbpath /var/lib/rpm $SHARE/chartd.rpm"
    cts 'mv /usr/bin/systemd-sysusers.off /usr/bin/systemd-sysusers &&
         mv /usr/bin/systemd-tmpfiles.off /usr/bin/systemd-tmpfiles'
    check "rpm: fallback setup: user chartd (useradd), root 2775 with default ACL (setfacl)" \
        'getent passwd chartd | grep -q ":/var/lib/chartd:/usr/sbin/nologin$" &&
         stat -c "%a %U:%G" /var/lib/chartd/charts | grep -qx "2775 chartd:chartd" &&
         getfacl -p /var/lib/chartd/charts | grep -qx "default:group:chartd:rwx"'
    check "rpm: /etc/chartd/chartd.yaml is %config(noreplace)" \
        'rpm -q --dbpath /var/lib/rpm --configfiles chartd | grep -qx /etc/chartd/chartd.yaml'
    check "rpm: user chartd created, service enabled and active" \
        'getent passwd chartd && systemctl is-enabled chartd && systemctl is-active chartd'
    check "rpm: chartd status works as root" 'chartd status | grep /var/lib/chartd/charts'
    check "rpm: chartd-metrics.socket (disabled) and the alert rules are installed" \
        'test -s /usr/lib/systemd/system/chartd-metrics.socket && ! systemctl is-enabled chartd-metrics.socket &&
         test -s /usr/share/chartd/prometheus/chartd-alerts.yml'
    cts 'useradd -m -G chartd alice'
    check "rpm: chartd status works as a member of group chartd" \
        'runuser -u alice -- chartd status | grep /var/lib/chartd/charts'
    check "rpm: systemd-analyze verify prints nothing" \
        'out=$(systemd-analyze verify /usr/lib/systemd/system/chartd.service 2>&1); echo "$out"; [ -z "$out" ]'
    local pid0
    cts 'systemctl show -p MainPID --value chartd'; pid0=$OUT
    check "rpm: upgrade (rpm -U --replacepkgs) restarts the service" \
        "rpm -U --replacepkgs --nodeps --dbpath /var/lib/rpm $SHARE/chartd.rpm && systemctl is-active chartd &&
         [ \"\$(systemctl show -p MainPID --value chartd)\" != '$pid0' ]"
    cts 'runuser -u alice -- sh -c "mkdir -p /var/lib/chartd/charts/X_1day && echo keep > /var/lib/chartd/charts/X_1day/keep.png"'
    check "rpm: rpm -e stops the service, keeps the chart data" \
        'rpm -e --dbpath /var/lib/rpm chartd && ! systemctl is-active chartd &&
         [ ! -e /usr/lib/systemd/system/chartd.service ] && [ -e /var/lib/chartd/charts/X_1day/keep.png ]'
    ct_stop
}

deb_cycle
rpm_cycle

echo
[ $FAIL = 0 ] || { echo "failed:"; printf '  %s\n' "${FAILED[@]}"; }
echo "system test took $((SECONDS - T0)) s"
echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
