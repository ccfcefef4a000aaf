# corral %posttrans (runs last, from the new package). When the running supervisor's binary
# was replaced by this transaction (an upgrade, or a reinstall), the service is upgraded in
# place: `corralctl upgrade` re-executes the new supervisor with the same pid and replaces the
# proxy make-before-break; workers, listeners and connections stay, so no request fails.
# When that is refused, a restart as before. A fresh install (just started from the new
# files) and a stopped service are left as they are.
if [ -d /run/systemd/system ]; then
	pid=$(systemctl show -p MainPID --value corral.service 2>/dev/null || :)
	if [ -n "$pid" ] && [ "$pid" != 0 ] && readlink "/proc/$pid/exe" 2>/dev/null | grep -q ' (deleted)$'; then
		corralctl -c /etc/corral/corral.toml upgrade >/dev/null 2>&1 ||
			systemctl try-restart corral.service >/dev/null 2>&1 || :
	fi
fi
