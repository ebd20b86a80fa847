# %post of chartd ($1: 1 = install, 2 = upgrade). Creates the user, the default root and the
# sysctl. On a first install the service is enabled or not as the system's presets say (what
# %systemd_post does: `systemctl preset`; Fedora and RHEL disable new services unless a preset
# enables them), and started only when the preset enabled it. An upgrade is restarted by
# %postun, after the old files are gone.
/usr/libexec/chartd/chartd-setup || echo "chartd: warning: /usr/libexec/chartd/chartd-setup failed" >&2
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset chartd.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        if systemctl is-enabled --quiet chartd.service 2>/dev/null; then
            systemctl start chartd.service ||
                echo "chartd: warning: could not start chartd.service; see: journalctl -u chartd" >&2
        else
            echo "chartd: the presets leave chartd.service disabled; start it with: systemctl enable --now chartd" >&2
        fi
    fi
fi
