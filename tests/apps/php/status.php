<?php
// Status and Location through php-cgi: ?notfound, ?redirect (absolute), ?created, ?local.
$q = $_SERVER["QUERY_STRING"] ?? "";
if ($q === "notfound") { http_response_code(404); echo "missing\n"; }
elseif ($q === "redirect") { header("Location: https://example.com/elsewhere"); }
elseif ($q === "created") { http_response_code(201); header("Location: /items/7"); echo "made\n"; }
elseif ($q === "local") { header("Location: /php/index.php"); }
else { echo "ok\n"; }
