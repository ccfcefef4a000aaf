<?php
// The request body echoed back byte for byte.
header("Content-Type: application/octet-stream");
$body = file_get_contents("php://input");
header("Content-Length: " . strlen($body));
echo $body;
