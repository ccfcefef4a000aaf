// HEAD through every app kind (http: the testapp; fastcgi and cgi: the libfcgi program;
// wsgi: Flask) over HTTP/1.1 and h2c (curl), and pipelined on a raw HTTP/1.1 connection.
// RFC 9110 §9.3.2: the Content-Length the worker sent for HEAD (the GET's) reaches the client
// unchanged, a worker that sent none (chunked or until-close GET) gets none invented, and no
// body follows the head.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

const std::string kApps = std::string(CORRAL_SOURCE_DIR) + "/tests/apps";

struct Resource {
  std::string kind, host, path;
  std::string length;  ///< the GET's Content-Length; "" = the worker sends none
};

// One app per kind, each behind its own host name.
const std::vector<Resource> kResources = {
    {"http", "http.test", "/", "19"},  // "hello from testapp\n"
    {"http", "http.test", "/big?bytes=100&chunked=1", ""},
    {"fastcgi", "fcgi.test", "/hello", "16"},  // "hello from fcgi\n"
    {"fastcgi", "fcgi.test", "/hello?env", ""},
    {"cgi", "cgi.test", "/hello", "16"},
    {"cgi", "cgi.test", "/hello?env", ""},
    {"wsgi", "wsgi.test", "/", "17"},  // "hello from flask\n"
    {"wsgi", "wsgi.test", "/stream", ""},
};

class ProxyHeadTest : public IntegrationTest {
 protected:
  void SetUp() override {
    config_.app("demo");
    config_.route("demo", "/", "http.test");
    AppSpec& f = config_.app("fcgi");
    f.kind = "fastcgi";
    f.command = {bin_path("corral-fcgi-hello")};
    config_.route("fcgi", "/", "fcgi.test");
    AppSpec& c = config_.app("cgi");
    c.kind = "cgi";
    c.command = {bin_path("corral-fcgi-hello")};
    config_.route("cgi", "/", "cgi.test");
    AppSpec& w = config_.app("site");
    w.kind = "wsgi";
    w.command.clear();
    w.env.erase("TESTAPP_LOG");
    w.set("module", quote("flask_app:app"));
    w.set("python_path", "[" + quote(kApps + "/wsgi_flask") + "]");
    config_.route("site", "/", "wsgi.test");
  }
  HttpResponse get(const Resource& r, bool h2) {
    std::vector<std::string> args = {"-H", "Host: " + r.host};
    if (h2) args.push_back("--http2-prior-knowledge");
    args.push_back("http://127.0.0.1:" + std::to_string(port()) + r.path);
    return curl(args);
  }
  // `curl -I`: the head only (the harness's curl() would print it twice with -I).
  HttpResponse head(const Resource& r, bool h2) {
    std::vector<std::string> argv = {"curl", "-sS", "-I", "--max-time", "10", "-H", "Host: " + r.host};
    if (h2) argv.push_back("--http2-prior-knowledge");
    argv.push_back("http://127.0.0.1:" + std::to_string(port()) + r.path);
    ProcessResult p = run_process(argv, 15s);
    HttpResponse resp;
    if (p.exit_code != 0) resp.error = "curl exit " + std::to_string(p.exit_code) + ": " + p.err;
    std::string_view out = p.out;
    for (size_t line = 0; line < out.size();) {
      size_t eol = out.find("\r\n", line);
      if (eol == std::string_view::npos || eol == line) break;
      std::string_view l = out.substr(line, eol - line);
      line = eol + 2;
      if (resp.status == 0) {
        size_t sp = l.find(' ');
        if (sp != std::string_view::npos) resp.status = std::atoi(std::string(l.substr(sp + 1, 3)).c_str());
        continue;
      }
      size_t colon = l.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view v = l.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      resp.headers.emplace_back(std::string(l.substr(0, colon)), std::string(v));
    }
    return resp;
  }
};

TEST_F(ProxyHeadTest, HeadKeepsTheWorkersContentLengthAndInventsNone) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (const Resource& res : kResources) {
    for (bool h2 : {false, true}) {
      std::string what = res.kind + " " + res.path + (h2 ? " h2c" : " h1");
      HttpResponse got = get(res, h2);
      ASSERT_EQ(got.status, 200) << what << ": " << got.error << got.body;
      if (!res.length.empty()) {
        EXPECT_EQ(got.header("Content-Length"), res.length) << what << " GET";
      }
      HttpResponse hd = head(res, h2);
      ASSERT_EQ(hd.status, 200) << what << ": " << hd.error;
      if (res.length.empty()) {
        EXPECT_FALSE(has_header(hd.headers, "Content-Length"))
            << what << ": HEAD got Content-Length " << hd.header("Content-Length") << " the worker never sent";
      } else {
        EXPECT_EQ(header_count(hd.headers, "Content-Length"), 1) << what;
        EXPECT_EQ(hd.header("Content-Length"), res.length) << what << ": HEAD must carry the GET's length";
      }
      EXPECT_FALSE(has_header(hd.headers, "Transfer-Encoding")) << what;
    }
  }
}

TEST_F(ProxyHeadTest, NoBodyFollowsAHeadResponse) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (const Resource& res : kResources) {
    // HEAD then GET pipelined: the second status line must follow the first head at once.
    RawClient c;
    ASSERT_TRUE(c.connect_tcp(port()));
    std::string host = "Host: " + res.host + "\r\n";
    ASSERT_TRUE(c.send("HEAD " + res.path + " HTTP/1.1\r\n" + host + "\r\nGET " + res.path + " HTTP/1.1\r\n" + host +
                       "Connection: close\r\n\r\n"));
    std::string got = c.read_until_close(10s);
    size_t end = got.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << res.kind << " " << res.path << ": " << got;
    EXPECT_EQ(got.compare(0, 13, "HTTP/1.1 200 "), 0) << got;
    EXPECT_EQ(got.compare(end + 4, 13, "HTTP/1.1 200 "), 0)
        << res.kind << " " << res.path << ": bytes after the HEAD response's head:\n" << got;
  }
}

}  // namespace
}  // namespace corral::itest
