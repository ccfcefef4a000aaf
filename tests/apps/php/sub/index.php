<?php
// A folder's index script: with index = "index.php", /php/sub/ runs this file.
header("Content-Type: text/plain");
echo "sub index\n";
echo "script_name=" . $_SERVER["SCRIPT_NAME"] . "\n";
echo "path_info=" . ($_SERVER["PATH_INFO"] ?? "<unset>") . "\n";
