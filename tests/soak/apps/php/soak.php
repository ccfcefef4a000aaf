<?php
// The soak driver's endpoint for FastCGI (tests/soak): reads the body, sleeps ?ms=N, answers
// "$WHOAMI HEX BYTES\n" (the body's SHA-256 and length) and ?pad=P bytes of padding.
header('Content-Type: text/plain');
$body = file_get_contents('php://input');
usleep(1000 * intval($_GET['ms'] ?? 0));
echo getenv('WHOAMI') . ' ' . hash('sha256', $body) . ' ' . strlen($body) . "\n";
echo str_repeat('p', intval($_GET['pad'] ?? 0));
