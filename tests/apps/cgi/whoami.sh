#!/bin/sh
# $WHOAMI (the app's env, which tests set per app and generation).
printf 'Content-Type: text/plain\r\n\r\n%s' "$WHOAMI"
