#include "conf/snapshot.h"

#include <gtest/gtest.h>

#include "conf/loader.h"

namespace corral::conf {
namespace {

Config full_config() {
  Config c;
  c.file = "/etc/corral/corral.toml";
  c.supervisor.runtime_dir = "/tmp/crl-abc";
  c.supervisor.log_level = log::Level::Warn;
  c.supervisor.graceful_timeout = Millis(1234);
  c.supervisor.drain_delay = Millis(5678);
  c.supervisor.user = "corral";
  c.proxy.threads = 7;
  c.proxy.access_log = "off";
  c.proxy.access_log_format = AccessLogFormat::Json;
  c.proxy.max_body_size = 5ull << 30;
  c.proxy.max_header_size = 4096;
  c.proxy.max_header_count = 33;
  c.proxy.client_header_timeout = Millis(11);
  c.proxy.tls_handshake_timeout = Millis(14);
  c.proxy.client_body_timeout = Millis(12);
  c.proxy.client_body_min_rate = 13;
  c.proxy.keepalive_timeout = Millis(0);
  c.proxy.h2_max_concurrent_streams = 7;
  c.proxy.h2_reset_rate = 8;
  c.proxy.h2_flood_rate = 9;
  Listener tls;
  tls.address = "[::]:8443";
  tls.host = "::";
  tls.port = 8443;
  tls.ipv6 = true;
  tls.tls.push_back(TlsCert{"/etc/a.pem", "/etc/a.key", "-----BEGIN CERTIFICATE-----\nAA\n", "-----BEGIN PRIVATE KEY-----\n"});
  tls.tls.push_back(TlsCert{"/etc/b.pem", "/etc/b.key", "B", "K"});
  tls.tls_profile = TlsProfile::Modern;
  tls.h2 = false;
  tls.hsts = "max-age=60";
  tls.max_connections = 5000;
  tls.max_connections_per_client = 50;
  c.listeners.push_back(tls);
  Listener plain;
  plain.address = "127.0.0.1:0";
  plain.host = "127.0.0.1";
  plain.redirect_https = true;
  c.listeners.push_back(plain);
  c.routes.push_back(Route{"shop.example.com", "/api/", "api"});
  c.routes.push_back(Route{"", "/", "web"});
  c.routes.back().compress = {"gzip", "br"};
  c.routes.back().compress_min_size = 200;
  c.routes.back().compress_types = {"application/json"};
  c.routes.back().gzip_level = 9;
  c.routes.back().brotli_level = 0;
  Route files;
  files.path = "/static";
  files.static_root = "/srv/site/static";
  files.index = "";
  files.cache_control = "public, max-age=60";
  files.fallback = "web";
  files.follow_symlinks = FollowSymlinks::Off;
  c.routes.push_back(files);
  App api;
  api.name = "api";
  api.command = {"/opt/api", "--unix", "{socket}", "quote \" and ünïcode"};
  api.workers = 9;
  api.workers_auto = true;
  api.concurrency = 4;
  api.timeout = Millis(99);
  api.queue_size = 0;
  api.queue_timeout = Millis(77);
  api.max_tunnels = 12;
  api.tunnel_idle_timeout = Millis(4444);
  api.cwd = "/opt";
  api.env = {{"A", "1"}, {"PATH", "/bin:/usr/bin"}};
  api.graceful_timeout = Millis(4321);
  api.kill_timeout = Millis(222);
  api.max_requests = 1000;
  api.max_requests_jitter = 50;
  api.max_rss = 256ull << 20;
  api.health_path = "";
  api.boot_timeout = Millis(333);
  api.user = "www";
  api.group = "www-data";
  api.rlimits = {{"as", "4GiB"}, {"nofile", "65536"}};
  api.umask = 027;
  c.apps.push_back(api);
  App web;
  web.name = "web";
  web.command = {"python3"};
  web.cwd = "/srv";
  c.apps.push_back(web);
  App cgi;
  cgi.name = "cgi";
  cgi.kind = AppKind::Cgi;
  cgi.root = "/usr/lib/cgi-bin";
  cgi.index = "index.cgi";
  c.apps.push_back(cgi);
  App php;
  php.name = "php";
  php.kind = AppKind::Fastcgi;
  php.command = {"/usr/bin/php-cgi"};
  php.script_filename = "/srv/app/index.php";
  c.apps.push_back(php);
  App site;
  site.name = "site";
  site.kind = AppKind::Wsgi;
  site.module = "myproject.wsgi:app";
  site.python_path = {"/srv/site", "/srv/lib"};
  site.virtualenv = "/srv/site/.venv";
  site.worker_class = "gevent";
  site.concurrency = 50;
  c.apps.push_back(site);
  return c;
}

TEST(Snapshot, RoundTripIsEqual) {
  Config c = full_config();
  std::string bytes = to_snapshot(c);
  auto back = from_snapshot(bytes);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, c);
  EXPECT_EQ(to_snapshot(*back), bytes);  // canonical
}

TEST(Snapshot, DefaultConfigRoundTrips) {
  Config c;
  auto back = from_snapshot(to_snapshot(c));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, c);
}

TEST(Snapshot, LoadedConfigRoundTrips) {
  auto c = load_string(R"(
[proxy]
threads = "auto"
[[listener]]
address = "0.0.0.0:8080"
[[route]]
app = "x"
[app.x]
command = ["/bin/x"]
workers = "auto"
env = { K = "v" }
)", "/etc/x.toml");
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  auto back = from_snapshot(to_snapshot(*c));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, *c);
}

TEST(Snapshot, ChangedFieldIsNotEqual) {
  Config c = full_config();
  Config d = c;
  d.apps[1].env.emplace_back("X", "y");
  EXPECT_NE(*from_snapshot(to_snapshot(d)), c);
}

TEST(Snapshot, RejectsGarbage) {
  EXPECT_FALSE(from_snapshot("").has_value());
  EXPECT_FALSE(from_snapshot("{not json").has_value());
  EXPECT_FALSE(from_snapshot("[]").has_value());
  EXPECT_FALSE(from_snapshot("{}").has_value());
}

TEST(Snapshot, RejectsWrongVersionAndTypes) {
  std::string bytes = to_snapshot(full_config());
  std::string v2 = bytes;
  v2.replace(v2.find("\"version\":1"), 11, "\"version\":2");
  auto r = from_snapshot(v2);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().context.find("unsupported version 2"), std::string::npos);

  std::string bad = bytes;
  bad.replace(bad.find("\"concurrency\":4"), 15, "\"concurrency\":\"4\"");
  r = from_snapshot(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().context.find("concurrency"), std::string::npos) << r.error().context;
}

}  // namespace
}  // namespace corral::conf
