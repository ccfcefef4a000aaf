<?php
// $WHOAMI from the php-cgi process's environment (the app's env: which app and generation).
header('Content-Type: text/plain');
echo getenv('WHOAMI');
