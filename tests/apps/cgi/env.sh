#!/bin/sh
# Prints its environment, one NAME=value per line (sorted): what a CGI program sees.
printf 'Content-Type: text/plain\r\n'
printf 'X-Cgi-Pid: %s\r\n\r\n' "$$"
env | LC_ALL=C sort
