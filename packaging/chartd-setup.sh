#!/bin/sh
# /usr/libexec/chartd/chartd-setup - system setup shared by the .deb and .rpm install scripts:
# the chartd user and group, /var/lib/chartd and the default root (setgid + default ACLs for
# group chartd), and the inotify sysctl. Idempotent; never deletes or changes chart files.
# An admin may re-run it, e.g. after restoring /var/lib/chartd from a backup.
set -e

SYSUSERS=/usr/lib/sysusers.d/chartd.conf
TMPFILES=/usr/lib/tmpfiles.d/chartd.conf
SYSCTL=/usr/lib/sysctl.d/60-chartd.conf

warn() { echo "chartd-setup: $*" >&2; }

# The user: systemd-sysusers where available, shadow's tools otherwise.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$SYSUSERS" || warn "systemd-sysusers failed; falling back to useradd"
fi
if ! getent group chartd >/dev/null; then
    groupadd --system chartd
fi
if ! getent passwd chartd >/dev/null; then
    useradd --system --gid chartd --home-dir /var/lib/chartd --no-create-home \
        --shell /usr/sbin/nologin --comment "chartd chart janitor" chartd
fi

# The directories (systemd-tmpfiles also re-applies them at every boot).
if ! { command -v systemd-tmpfiles >/dev/null 2>&1 && systemd-tmpfiles --create "$TMPFILES"; }; then
    install -d -o chartd -g chartd -m 0750 /var/lib/chartd
    install -d -o chartd -g chartd -m 2775 /var/lib/chartd/charts
    if command -v setfacl >/dev/null 2>&1; then
        setfacl -m g:chartd:rwx,d:u::rwx,d:g::rwx,d:g:chartd:rwx,d:o::rx,d:m::rwx \
            /var/lib/chartd/charts ||
            warn "could not set ACLs on /var/lib/chartd/charts (file system without ACLs?)"
    else
        warn "setfacl not found: install the acl package so that files written with any umask stay removable"
    fi
fi

# The sysctl, now (systemd-sysctl applies it at every boot). A read-only /proc/sys, as in
# containers, is not an error.
for s in /usr/lib/systemd/systemd-sysctl /lib/systemd/systemd-sysctl; do
    if [ -x "$s" ]; then
        "$s" "$SYSCTL" >/dev/null 2>&1 && exit 0
        break
    fi
done
sysctl -q -p "$SYSCTL" >/dev/null 2>&1 ||
    warn "note: could not apply $SYSCTL now (read-only /proc/sys?); it applies at next boot"
exit 0
