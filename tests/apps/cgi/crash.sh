#!/bin/sh
# Dies before writing a header block (an incomplete one, even).
printf 'Content-Type: text/pl'
echo "crash.sh: about to die" >&2
kill -SEGV $$
