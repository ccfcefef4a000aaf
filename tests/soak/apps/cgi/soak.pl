#!/usr/bin/perl
# The soak driver's endpoint for CGI (tests/soak): reads the body, sleeps ?ms=N, answers
# "$WHOAMI HEX BYTES\n" (the body's SHA-256 and length) and ?pad=P bytes of padding.
use strict;
use warnings;
use Digest::SHA;
binmode STDIN;
binmode STDOUT;
my %q = map { my ($k, $v) = split /=/, $_, 2; ($k, $v // '') } split /&/, ($ENV{QUERY_STRING} // '');
my $left = $ENV{CONTENT_LENGTH} || 0;
my ($sha, $n, $buf) = (Digest::SHA->new(256), 0, '');
while ($left > 0) {
  my $got = read(STDIN, $buf, $left > 65536 ? 65536 : $left);
  last unless $got;
  $sha->add($buf);
  $n += $got;
  $left -= $got;
}
select(undef, undef, undef, ($q{ms} || 0) / 1000);
my $body = ($ENV{WHOAMI} // '') . ' ' . $sha->hexdigest . " $n\n" . ('p' x ($q{pad} || 0));
print "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\n\r\n";
print $body;
