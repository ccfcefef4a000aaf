#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nnested %s\n' "$PATH_INFO"
