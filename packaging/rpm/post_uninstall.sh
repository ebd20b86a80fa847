# %postun of chartd ($1: 0 = erase, 1 = upgrade). Chart data (/var/lib/chartd and any other
# root) and the chartd user are never deleted; rpm keeps a modified /etc/chartd/chartd.yaml
# as chartd.yaml.rpmsave.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart chartd.service >/dev/null 2>&1 || :
    fi
fi
