<?php
// FastCGI streaming: "first" leaves at once, "second" 600 ms later.
header("Content-Type: text/plain");
while (ob_get_level() > 0) { ob_end_flush(); }
echo "first\n";
flush();
usleep(600000);
echo "second\n";
