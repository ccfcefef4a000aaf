<?php
// Used by the cgi and fastcgi integration tests (php-cgi as a CGI program and as a FastCGI pool).
header("Content-Type: text/plain");
if (($_GET["status"] ?? "") === "teapot") { http_response_code(418); }
if ($_SERVER["REQUEST_METHOD"] === "POST") {
  header("X-Body-Length: " . strlen(file_get_contents("php://input")));
}
echo "hello " . ($_GET["name"] ?? "world") . "\n";
echo "path_info=" . ($_SERVER["PATH_INFO"] ?? "<unset>") . "\n";
echo "http_proxy=" . (getenv("HTTP_PROXY") === false ? "<unset>" : getenv("HTTP_PROXY")) . "\n";
echo "remote_addr=" . ($_SERVER["REMOTE_ADDR"] ?? "<unset>") . "\n";
