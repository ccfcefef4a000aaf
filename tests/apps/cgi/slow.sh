#!/bin/sh
# Streams: a first line at once, the second after a pause (QUERY_STRING = pause in seconds).
printf 'Content-Type: text/plain\r\n\r\n'
echo first
sleep "${QUERY_STRING:-1}"
echo second
