// RFC 3875 meta-variables: the fixed set, HTTP_* mapping, httpoxy, '_' names dropped,
// repeated headers joined, env added without overriding.
#include "common/cgi/meta_variables.h"

#include <gtest/gtest.h>

namespace corral::cgi {
namespace {

std::string get(const Variables& v, const std::string& name) {
  for (auto& [k, val] : v)
    if (k == name) return val;
  return "<unset>";
}

TEST(MetaVariables, FullSet) {
  http1::RequestHead req;
  req.method = "POST";
  req.target = "/cgi-bin/run.sh/x%20y?a=1";
  req.host = "shop.example:8443";
  req.headers = {{"Host", "shop.example:8443"}, {"Content-Type", "text/plain"}, {"Content-Length", "5"},
                 {"Proxy", "http://evil:1"},    {"X_Under", "no"},             {"X-Dash", "yes"},
                 {"Cookie", "a=1"},             {"cookie", "b=2"},             {"Accept", "x"}, {"accept", "y"}};
  Script s{"/srv/cgi/run.sh", "/cgi-bin/run.sh", "/x y"};
  RequestContext ctx;
  ctx.remote_addr = "203.0.113.9";
  ctx.remote_port = "50123";
  ctx.https = true;
  ctx.server_software = "corral/1";
  ctx.document_root = "/srv/cgi";
  std::pair<std::string, std::string> env[] = {{"APP_MODE", "prod"}, {"REMOTE_ADDR", "forged"}};
  Variables v = meta_variables(req, s, ctx, true, 5, env);
  EXPECT_EQ(get(v, "GATEWAY_INTERFACE"), "CGI/1.1");
  EXPECT_EQ(get(v, "SERVER_SOFTWARE"), "corral/1");
  EXPECT_EQ(get(v, "SERVER_NAME"), "shop.example");
  EXPECT_EQ(get(v, "SERVER_PORT"), "8443");
  EXPECT_EQ(get(v, "SERVER_PROTOCOL"), "HTTP/1.1");
  EXPECT_EQ(get(v, "REQUEST_METHOD"), "POST");
  EXPECT_EQ(get(v, "REQUEST_URI"), "/cgi-bin/run.sh/x%20y?a=1");
  EXPECT_EQ(get(v, "QUERY_STRING"), "a=1");
  EXPECT_EQ(get(v, "SCRIPT_NAME"), "/cgi-bin/run.sh");
  EXPECT_EQ(get(v, "SCRIPT_FILENAME"), "/srv/cgi/run.sh");
  EXPECT_EQ(get(v, "PATH_INFO"), "/x y");
  EXPECT_EQ(get(v, "PATH_TRANSLATED"), "/srv/cgi/x y");
  EXPECT_EQ(get(v, "CONTENT_TYPE"), "text/plain");
  EXPECT_EQ(get(v, "CONTENT_LENGTH"), "5");
  EXPECT_EQ(get(v, "REMOTE_ADDR"), "203.0.113.9");
  EXPECT_EQ(get(v, "REMOTE_PORT"), "50123");
  EXPECT_EQ(get(v, "HTTPS"), "on");
  EXPECT_EQ(get(v, "HTTP_X_DASH"), "yes");
  EXPECT_EQ(get(v, "HTTP_COOKIE"), "a=1; b=2");
  EXPECT_EQ(get(v, "HTTP_ACCEPT"), "x, y");
  EXPECT_EQ(get(v, "APP_MODE"), "prod");
  EXPECT_EQ(get(v, "HTTP_PROXY"), "<unset>");     // httpoxy
  EXPECT_EQ(get(v, "HTTP_X_UNDER"), "<unset>");   // '_' in the name
  EXPECT_EQ(get(v, "HTTP_CONTENT_TYPE"), "<unset>");
  EXPECT_EQ(get(v, "HTTP_CONTENT_LENGTH"), "<unset>");
}

TEST(MetaVariables, Defaults) {
  http1::RequestHead req;
  req.method = "GET";
  req.target = "/";
  req.host = "[::1]";
  Script s{"", "", ""};
  Variables v = meta_variables(req, s, RequestContext{}, false, 0);
  EXPECT_EQ(get(v, "SERVER_NAME"), "[::1]");
  EXPECT_EQ(get(v, "SERVER_PORT"), "80");
  EXPECT_EQ(get(v, "QUERY_STRING"), "");
  EXPECT_EQ(get(v, "PATH_INFO"), "<unset>");
  EXPECT_EQ(get(v, "PATH_TRANSLATED"), "<unset>");
  EXPECT_EQ(get(v, "CONTENT_LENGTH"), "<unset>");
  EXPECT_EQ(get(v, "HTTPS"), "<unset>");
  EXPECT_EQ(get(v, "REMOTE_ADDR"), "127.0.0.1");
}

}  // namespace
}  // namespace corral::cgi
