# corral %postun ($1: 0 = erased, 1 = upgraded): restart a running service after an upgrade.
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart corral.service >/dev/null 2>&1 || :
	fi
fi
