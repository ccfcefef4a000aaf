/* A tiny C program built on libfcgi's fcgi_stdio.h: the same binary is a CGI program (run
 * once per request) and a FastCGI responder (started with the listening socket as fd 0).
 *   GET  /...?env   → a few meta-variables, one per line
 *   GET  /...?crash → aborts before writing anything
 *   GET  /...?local-redirect → "Location: /hello" without a Status (RFC 3875 local redirect)
 *   POST           → the body echoed byte for byte
 *   otherwise      → "hello from fcgi" (the benchmark response)                       */
#include <fcgi_stdio.h>
#include <stdlib.h>
#include <string.h>

static const char* env_or(const char* name, const char* fallback) {
  const char* v = getenv(name);
  return v ? v : fallback;
}

int main(void) {
  static char buf[65536];
  while (FCGI_Accept() >= 0) {
    const char* q = env_or("QUERY_STRING", "");
    const char* method = env_or("REQUEST_METHOD", "GET");
    if (strcmp(q, "crash") == 0) abort();
    if (strcmp(method, "POST") == 0) {
      long len = atol(env_or("CONTENT_LENGTH", "0"));
      printf("Content-Type: application/octet-stream\r\nContent-Length: %ld\r\n\r\n", len);
      while (len > 0) {
        size_t want = len > (long)sizeof buf ? sizeof buf : (size_t)len;
        size_t n = fread(buf, 1, want, stdin);
        if (n == 0) break;
        fwrite(buf, 1, n, stdout);
        len -= (long)n;
      }
    } else if (strcmp(q, "local-redirect") == 0) {
      printf("Location: /hello\r\n\r\n");
    } else if (strcmp(q, "env") == 0) {
      static const char* names[] = {"GATEWAY_INTERFACE", "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO",
                                    "QUERY_STRING", "REMOTE_ADDR", "REMOTE_PORT", "HTTPS", "SERVER_PORT", "HTTP_PROXY",
                                    "HTTP_TRACEPARENT", "HTTP_TRACESTATE", NULL};
      printf("Content-Type: text/plain\r\n\r\n");
      for (int i = 0; names[i]; ++i) printf("%s=%s\n", names[i], env_or(names[i], "<unset>"));
    } else {
      printf("Content-Type: text/plain\r\nContent-Length: 16\r\n\r\nhello from fcgi\n");
    }
  }
  return 0;
}
