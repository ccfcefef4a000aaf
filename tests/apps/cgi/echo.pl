#!/usr/bin/perl
# Echoes the request body byte for byte, with its length and type in headers.
use strict;
use warnings;
binmode STDIN;
binmode STDOUT;
my $len = $ENV{CONTENT_LENGTH} || 0;
my $body = '';
while (length($body) < $len) {
  my $n = read(STDIN, $body, $len - length($body), length($body));
  last unless $n;
}
print "Status: 200 OK\r\n";
print "Content-Type: " . ($ENV{CONTENT_TYPE} || 'application/octet-stream') . "\r\n";
print "X-Body-Length: " . length($body) . "\r\n";
print "X-Method: $ENV{REQUEST_METHOD}\r\n\r\n";
print $body;
