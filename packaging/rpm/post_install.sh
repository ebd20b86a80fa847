# %post of chartd ($1: 1 = install, 2 = upgrade). Creates the user, the default root and the
# sysctl, then enables and starts the service on a first install (an upgrade is restarted by
# %postun, after the old files are gone).
/usr/libexec/chartd/chartd-setup || echo "chartd: warning: /usr/libexec/chartd/chartd-setup failed" >&2
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now chartd.service ||
            echo "chartd: warning: could not start chartd.service; see: journalctl -u chartd" >&2
    fi
elif [ "$1" -eq 1 ]; then
    systemctl enable chartd.service >/dev/null 2>&1 || :
fi
