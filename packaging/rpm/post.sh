# corral %post ($1: 1 = install, 2 = upgrade): system user, enable per preset, start.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers /usr/lib/sysusers.d/corral.conf || :
elif ! getent passwd corral >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/corral --no-create-home \
		--shell /usr/sbin/nologin --comment "corral web app front door" corral || :
fi
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -eq 1 ]; then
		systemctl --no-reload preset corral.service >/dev/null 2>&1 || :
		if systemctl --quiet is-enabled corral.service 2>/dev/null; then
			systemctl start corral.service >/dev/null 2>&1 || :
		fi
	fi
	# An upgrade is applied in place by %posttrans, once the old package's files are gone.
fi
