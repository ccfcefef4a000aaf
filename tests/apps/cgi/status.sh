#!/bin/sh
# Status, Location and local redirects, chosen by QUERY_STRING.
case "$QUERY_STRING" in
  notfound) printf 'Status: 404 Nope\r\nContent-Type: text/plain\r\n\r\nmissing\n' ;;
  redirect) printf 'Location: https://example.com/elsewhere\r\n\r\n' ;;
  local) printf 'Location: /cgi-bin/env.sh/after-redirect?x=1\r\n\r\n' ;;
  loop) printf 'Location: /cgi-bin/status.sh?loop\r\n\r\n' ;;
  created) printf 'Status: 201\r\nLocation: /items/7\r\nContent-Type: text/plain\r\n\r\ncreated\n' ;;
  bad) printf 'Not a header line\r\n\r\n' ;;
  *) printf 'Content-Type: text/plain\r\n\r\nok\n' ;;
esac
