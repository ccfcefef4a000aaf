# corral %posttrans (runs last, from the new package). After an upgrade (%post left the mark),
# a running service is upgraded in place: `corralctl upgrade` re-executes the new supervisor
# with the same pid and replaces the proxy make-before-break; workers, listeners and
# connections stay, so no request fails. When that is refused, a restart as before.
if [ -e /var/lib/rpm-state/corral/upgraded ]; then
	rm -f /var/lib/rpm-state/corral/upgraded
	rmdir /var/lib/rpm-state/corral 2>/dev/null || :
	if [ -d /run/systemd/system ] && systemctl --quiet is-active corral.service 2>/dev/null; then
		corralctl -c /etc/corral/corral.toml upgrade >/dev/null 2>&1 ||
			systemctl try-restart corral.service >/dev/null 2>&1 || :
	fi
fi
