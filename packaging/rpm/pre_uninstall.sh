# %preun of chartd ($1: 0 = erase, 1 = upgrade): stop and disable the service on erase, as
# %systemd_preun does.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now chartd.service chartd-metrics.socket >/dev/null 2>&1 || :
fi
