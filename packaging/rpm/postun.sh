# corral %postun ($1: 0 = erased, 1 = upgraded). An upgrade is applied in place by the new
# package's %posttrans (posttrans.sh); a restart here would cut every connection first.
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || :
fi
