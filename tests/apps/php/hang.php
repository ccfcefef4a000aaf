<?php
// Never answers in time: records its pid (the php-cgi worker) and sleeps.
file_put_contents(getenv("HANG_PID_FILE"), (string)getmypid());
sleep(60);
echo "too late\n";
