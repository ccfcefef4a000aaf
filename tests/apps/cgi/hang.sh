#!/bin/sh
# Never answers; its child sleeps in the same process group (both must be killed).
echo "hang.sh: hanging as pid $$" >&2
sleep 1000 &
echo "$!" > "${HANG_PID_FILE:-/dev/null}"
wait
