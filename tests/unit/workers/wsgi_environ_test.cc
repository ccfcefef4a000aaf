// The CGI part of the WSGI environ (workers/wsgi/environ.h) and the gevent class's response
// framing (workers/response_encoder.h), without Python; and the wsgi options round trip.
#include "workers/wsgi/environ.h"

#include <gtest/gtest.h>

#include <map>

#include "workers/options.h"
#include "workers/response_encoder.h"

namespace corral::worker::wsgi {
namespace {

std::map<std::string, std::string> environ_of(const std::string& raw, size_t body = 0, bool has_body = false,
                                              EnvironSettings s = {}) {
  http1::RequestParser p;
  http1::RequestHead head;
  auto r = p.parse(raw, head);
  EXPECT_EQ(r.status, http1::ParseStatus::Done) << raw;
  CgiEnviron env = build_cgi_environ(head, body, has_body, s);
  std::map<std::string, std::string> out(env.vars.begin(), env.vars.end());
  EXPECT_EQ(out.size(), env.vars.size()) << "a variable appears twice";
  out["wsgi.url_scheme"] = env.url_scheme;
  return out;
}

TEST(WsgiEnviron, CgiVariables) {
  auto e = environ_of(
      "POST /a%20b/c%2Fd?x=1%202&y HTTP/1.1\r\nHost: example.com:8443\r\nContent-Type: text/plain\r\n"
      "Content-Length: 4\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Remote-Port: 5555\r\n"
      "Accept: a\r\nAccept: b\r\nCookie: c=1\r\nCookie: d=2\r\nX_Forwarded_For: evil\r\n\r\n",
      4, true);
  EXPECT_EQ(e["REQUEST_METHOD"], "POST");
  EXPECT_EQ(e["SCRIPT_NAME"], "");
  EXPECT_EQ(e["PATH_INFO"], "/a b/c/d");  // decoded, like every WSGI server
  EXPECT_EQ(e["QUERY_STRING"], "x=1%202&y");  // raw
  EXPECT_EQ(e["RAW_URI"], "/a%20b/c%2Fd?x=1%202&y");
  EXPECT_EQ(e["CONTENT_TYPE"], "text/plain");
  EXPECT_EQ(e["CONTENT_LENGTH"], "4");
  EXPECT_EQ(e.count("HTTP_CONTENT_TYPE"), 0u);
  EXPECT_EQ(e.count("HTTP_CONTENT_LENGTH"), 0u);
  EXPECT_EQ(e["SERVER_NAME"], "example.com");
  EXPECT_EQ(e["SERVER_PORT"], "8443");
  EXPECT_EQ(e["SERVER_PROTOCOL"], "HTTP/1.1");
  EXPECT_EQ(e["REMOTE_ADDR"], "203.0.113.9");
  EXPECT_EQ(e["REMOTE_PORT"], "5555");
  EXPECT_EQ(e["wsgi.url_scheme"], "https");
  EXPECT_EQ(e["HTTP_ACCEPT"], "a, b");
  EXPECT_EQ(e["HTTP_COOKIE"], "c=1; d=2");
  EXPECT_EQ(e["HTTP_X_FORWARDED_FOR"], "203.0.113.9") << "an underscore header must not override the proxy's";
}

TEST(WsgiEnviron, RemoteAddrFromXRealIpThenTheLastForwardedFor) {
  // A trusted proxy's chain: the proxy names the client in X-Real-IP.
  auto e = environ_of("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.7, 10.0.0.1\r\n"
                      "X-Real-IP: 203.0.113.9\r\n\r\n", 0, false);
  EXPECT_EQ(e["REMOTE_ADDR"], "203.0.113.9");
  e = environ_of("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n\r\n", 0, false);
  EXPECT_EQ(e["REMOTE_ADDR"], "10.0.0.1");
}

TEST(WsgiEnviron, DefaultsAndMountPoint) {
  EnvironSettings s;
  s.script_name = "/app";
  auto e = environ_of("GET /app/x HTTP/1.1\r\nHost: [::1]\r\n\r\n", 0, false, s);
  EXPECT_EQ(e["SCRIPT_NAME"], "/app");
  EXPECT_EQ(e["PATH_INFO"], "/x");
  EXPECT_EQ(e["SERVER_NAME"], "[::1]");
  EXPECT_EQ(e["SERVER_PORT"], "80");
  EXPECT_EQ(e.count("CONTENT_LENGTH"), 0u);
  EXPECT_EQ(e.count("REMOTE_ADDR"), 0u);
  EXPECT_EQ(e["wsgi.url_scheme"], "http");
  e = environ_of("GET /application HTTP/1.1\r\nHost: h\r\nX-Forwarded-Port: 9000\r\n\r\n", 0, false, s);
  EXPECT_EQ(e["PATH_INFO"], "/application") << "only whole path segments match the mount point";
  EXPECT_EQ(e["SERVER_PORT"], "9000");
  e = environ_of("GET /app HTTP/1.1\r\nHost: h\r\n\r\n", 0, false, s);
  EXPECT_EQ(e["PATH_INFO"], "");
}

TEST(WsgiEnviron, PercentDecode) {
  EXPECT_EQ(percent_decode("%41%62%zz%4"), "Ab%zz%4");
  EXPECT_EQ(percent_decode("%C3%A9"), "\xc3\xa9");
  EXPECT_EQ(percent_decode(""), "");
}

TEST(WsgiResponseEncoder, LengthChunkedHeadAndShortBody) {
  using H = std::pair<std::string, std::string>;
  std::vector<H> headers = {{"Content-Type", "text/plain"}, {"Connection", "keep-alive"}};
  {
    ResponseEncoder enc(false, true);
    std::string out;
    enc.head(out, 200, "OK", headers, 5);
    enc.body(out, "hello world");  // past the length: dropped
    EXPECT_TRUE(enc.finish(out));
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
  }
  {
    ResponseEncoder enc(false, false);
    std::string out;
    enc.head(out, 201, "Created", headers, std::nullopt);
    enc.body(out, "abc");
    EXPECT_TRUE(enc.finish(out));
    EXPECT_NE(out.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos) << out;
    EXPECT_EQ(out.substr(out.find("\r\n\r\n") + 4), "3\r\nabc\r\n0\r\n\r\n");
  }
  {
    ResponseEncoder enc(true, true);  // HEAD without a length: no body, no framing field invented
    std::string out;
    enc.head(out, 200, "OK", headers, std::nullopt);
    enc.body(out, "abc");
    EXPECT_TRUE(enc.finish(out));
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
  }
  {
    ResponseEncoder enc(true, true);  // HEAD with the app's length: the GET's length, no body
    std::string out;
    enc.head(out, 200, "OK", headers, 744);
    enc.body(out, "abc");
    EXPECT_TRUE(enc.finish(out));
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 744\r\n\r\n");
    EXPECT_TRUE(enc.keep_alive());
  }
  {
    ResponseEncoder enc(false, true);
    std::string out;
    enc.head(out, 200, "OK", headers, 10);
    enc.body(out, "short");
    EXPECT_FALSE(enc.finish(out)) << "a body shorter than its Content-Length must close the connection";
    EXPECT_FALSE(enc.keep_alive());
  }
}

TEST(WsgiOptions, RoundTrip) {
  Options o;
  o.app = "site";
  o.slot = 2;
  o.kind = "wsgi";
  o.concurrency = 8;
  o.module = "pkg.wsgi:app";
  o.python_path = {"/srv/a", "/srv/b"};
  o.virtualenv = "/srv/venv";
  o.worker_class = "gevent";
  auto back = parse_options(to_args(o));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->kind, "wsgi");
  EXPECT_EQ(back->module, o.module);
  EXPECT_EQ(back->python_path, o.python_path);
  EXPECT_EQ(back->virtualenv, o.virtualenv);
  EXPECT_EQ(back->worker_class, "gevent");
  EXPECT_EQ(back->concurrency, 8);
  EXPECT_FALSE(parse_options({"w", "--kind", "wsgi"}).has_value()) << "--module is required";
  EXPECT_FALSE(parse_options({"w", "--kind", "wsgi", "--module", "m", "--worker-class", "eventlet"}).has_value());
  EXPECT_FALSE(parse_options({"w", "--kind", "wsgi", "--module", "m", "--", "/bin/true"}).has_value());
}

}  // namespace
}  // namespace corral::worker::wsgi
