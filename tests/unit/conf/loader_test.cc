#include "conf/loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <cstdlib>
#include <unistd.h>

#include "conf/cores.h"

namespace corral::conf {
namespace {

constexpr const char* kMinimal = R"(
[[listener]]
address = "127.0.0.1:8080"

[[route]]
app = "shop"

[app.shop]
command = ["/bin/server"]
)";

Config load_ok(std::string_view text, const std::string& file = "/etc/corral/corral.toml") {
  auto c = load_string(text, file);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().to_string());
  return c ? *c : Config{};
}

std::string load_err(std::string_view text, const std::string& file = "t.toml") {
  auto c = load_string(text, file);
  EXPECT_FALSE(c.has_value());
  return c ? "" : c.error().to_string();
}

TEST(Loader, MinimalConfigGetsDefaults) {
  Config c = load_ok(kMinimal);
  EXPECT_EQ(c.file, "/etc/corral/corral.toml");
  EXPECT_EQ(c.supervisor, SupervisorSettings{});
  EXPECT_EQ(c.proxy, ProxySettings{});
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1:8080");
  EXPECT_EQ(c.listeners[0].host, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 8080);
  EXPECT_FALSE(c.listeners[0].ipv6);
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].path, "/");
  EXPECT_EQ(c.routes[0].host, "");
  ASSERT_EQ(c.apps.size(), 1u);
  const App* shop = c.find_app("shop");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(shop->command, std::vector<std::string>{"/bin/server"});
  EXPECT_EQ(shop->workers, 1);
  EXPECT_EQ(shop->cwd, "/etc/corral");  // defaults to the config's folder
  EXPECT_EQ(c.find_app("nope"), nullptr);
}

TEST(Loader, EveryKeySet) {
  Config c = load_ok(R"(
[supervisor]
runtime_dir = "/tmp/crl-x/"
log_level = "debug"
graceful_timeout = 5
drain_delay = "2500ms"

[proxy]
threads = 3
access_log = "/var/log/corral/access.log"
access_log_format = "json"
max_body_size = "1MiB"
max_header_size = 8192
max_header_count = 50
client_header_timeout = "2s"
client_body_timeout = "250ms"
client_body_min_rate = "2KiB"
keepalive_timeout = "1m"

[[listener]]
address = "[::1]:0"

[[listener]]
address = "0.0.0.0:80"

[[route]]
host = "Shop.Example.com"
path = "/api/"
app = "api"

[[route]]
app = "web"

[app.web]
command = ["bin/web", "--unix", "{socket}"]
cwd = "../srv"
env = { B = "2", A = "1" }

[app.api]
kind = "http"
command = ["python3", "-m", "api"]
workers = "auto"
concurrency = 8
timeout = "1h"
queue_size = 0
queue_timeout = "1.5s"
max_tunnels = 50
tunnel_idle_timeout = "5m"
cwd = "/opt/api"
)", "/etc/corral/sub/corral.toml");
  EXPECT_EQ(c.supervisor.runtime_dir, "/tmp/crl-x");
  EXPECT_EQ(c.supervisor.log_level, log::Level::Debug);
  EXPECT_EQ(c.supervisor.graceful_timeout, Millis(5000));
  EXPECT_EQ(c.supervisor.drain_delay, Millis(2500));
  EXPECT_EQ(c.proxy.threads, 3);
  EXPECT_EQ(c.proxy.access_log, "/var/log/corral/access.log");
  EXPECT_EQ(c.proxy.access_log_format, AccessLogFormat::Json);
  EXPECT_EQ(c.proxy.max_body_size, 1u << 20);
  EXPECT_EQ(c.proxy.max_header_size, 8192u);
  EXPECT_EQ(c.proxy.max_header_count, 50);
  EXPECT_EQ(c.proxy.client_header_timeout, Millis(2000));
  EXPECT_EQ(c.proxy.client_body_timeout, Millis(250));
  EXPECT_EQ(c.proxy.client_body_min_rate, 2048u);
  EXPECT_EQ(c.proxy.keepalive_timeout, Millis(60000));
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_TRUE(c.listeners[0].ipv6);
  EXPECT_EQ(c.listeners[0].host, "::1");
  EXPECT_EQ(c.listeners[0].port, 0);
  EXPECT_EQ(c.listeners[1].port, 80);
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0].host, "shop.example.com");
  EXPECT_EQ(c.routes[0].path, "/api/");
  EXPECT_EQ(c.routes[0].app, "api");
  EXPECT_EQ(c.routes[1].app, "web");
  ASSERT_EQ(c.apps.size(), 2u);
  EXPECT_EQ(c.apps[0].name, "api");  // sorted by name
  EXPECT_EQ(c.apps[1].name, "web");
  const App& api = c.apps[0];
  EXPECT_TRUE(api.workers_auto);
  EXPECT_EQ(api.workers, auto_workers(usable_cores()));
  EXPECT_EQ(api.concurrency, 8);
  EXPECT_EQ(api.timeout, Millis(3'600'000));
  EXPECT_EQ(api.queue_size, 0u);
  EXPECT_EQ(api.queue_timeout, Millis(1500));
  EXPECT_EQ(api.max_tunnels, 50u);
  EXPECT_EQ(api.tunnel_idle_timeout, Millis(300'000));
  EXPECT_EQ(api.command[0], "python3");  // no '/': left for PATH lookup
  EXPECT_EQ(api.cwd, "/opt/api");
  const App& web = c.apps[1];
  EXPECT_EQ(web.command[0], "/etc/corral/sub/bin/web");
  EXPECT_EQ(web.command[2], "{socket}");
  EXPECT_EQ(web.cwd, "/etc/corral/srv");
  std::vector<std::pair<std::string, std::string>> env = {{"A", "1"}, {"B", "2"}};
  EXPECT_EQ(web.env, env);
}

// One rule for every key that names a file or folder: relative to the config file's folder.
TEST(Loader, EveryPathIsRelativeToTheConfigFolder) {
  auto dir = std::filesystem::temp_directory_path() / ("conf_paths_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "tls");
  auto write = [](const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; };
  // The TLS files are read by the loader, so they must exist.
  std::string openssl = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=a"
                        " -keyout " + (dir / "tls/k.pem").string() + " -out " + (dir / "tls/c.pem").string() + " 2>/dev/null";
  ASSERT_EQ(std::system(openssl.c_str()), 0);
  write(dir / "c.toml", R"(
[supervisor]
runtime_dir = "run"

[proxy]
access_log = "log/access.log"

[[listener]]
address = "127.0.0.1:0"
tls = { cert = "tls/c.pem", key = "./tls/k.pem" }

[app.cgi]
kind = "cgi"
root = "cgi-bin/"
cwd = "."

[app.php]
kind = "fastcgi"
command = ["bin/php-cgi"]
script_filename = "www/index.php"

[app.py]
kind = "wsgi"
module = "site.wsgi"
python_path = ["src"]
virtualenv = "../venv"
)");
  auto c = load_file((dir / "c.toml").string());
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  std::string d = dir.string();
  EXPECT_EQ(c->supervisor.runtime_dir, d + "/run");
  EXPECT_EQ(c->proxy.access_log, d + "/log/access.log");
  EXPECT_EQ(c->listeners.at(0).tls.at(0).cert, d + "/tls/c.pem");
  EXPECT_EQ(c->listeners.at(0).tls.at(0).key, d + "/tls/k.pem");
  EXPECT_EQ(c->find_app("cgi")->root, d + "/cgi-bin/");
  EXPECT_EQ(c->find_app("cgi")->cwd, d + "/");
  EXPECT_EQ(c->find_app("php")->command.at(0), d + "/bin/php-cgi");
  EXPECT_EQ(c->find_app("php")->script_filename, d + "/www/index.php");
  EXPECT_EQ(c->find_app("php")->cwd, d);
  EXPECT_EQ(c->find_app("py")->python_path, std::vector<std::string>{d + "/src"});
  EXPECT_EQ(c->find_app("py")->virtualenv, dir.parent_path().string() + "/venv");
  std::filesystem::remove_all(dir);
}

TEST(Loader, AccessLogStderrAndOffAreNotPaths) {
  EXPECT_EQ(load_ok(std::string("[proxy]\naccess_log = \"-\"\n") + kMinimal).proxy.access_log, "-");
  EXPECT_EQ(load_ok(std::string("[proxy]\naccess_log = \"off\"\n") + kMinimal).proxy.access_log, "off");
  EXPECT_EQ(load_ok(std::string("[proxy]\naccess_log = \"/var/log/a\"\n") + kMinimal).proxy.access_log, "/var/log/a");
}

// The readiness probe asks where the app is mounted: the first route to it, in file order.
TEST(Loader, HealthPathDefaultsToTheFirstRoutesPath) {
  Config c = load_ok(R"(
[[listener]]
address = "127.0.0.1:0"

[[route]]
host = "a.example"
app = "hosted"

[[route]]
path = "/g/"
app = "mounted"

[[route]]
path = "/h"
app = "mounted"

[[route]]
path = "/x"
app = "explicit"

[app.mounted]
command = ["/bin/m"]

[app.hosted]
command = ["/bin/h"]

[app.unrouted]
command = ["/bin/u"]

[app.explicit]
command = ["/bin/e"]
health_path = "/healthz"

[app.off]
command = ["/bin/o"]
health_path = ""
)");
  EXPECT_EQ(c.find_app("mounted")->health_path, "/g/");
  EXPECT_EQ(c.find_app("hosted")->health_path, "/");  // a route without path matches "/"
  EXPECT_EQ(c.find_app("unrouted")->health_path, "/");
  EXPECT_EQ(c.find_app("explicit")->health_path, "/healthz");
  EXPECT_EQ(c.find_app("off")->health_path, "");
}

// Problems of the machine (supervisor/check.h) come back at the line of their key, or of
// the key's table when the key is left to its default.
TEST(Loader, HostCheckProblemsCiteTheirKey) {
  std::vector<std::string> seen;
  HostCheck check = [&](const Config& c) {
    for (auto& a : c.apps) seen.push_back(a.command.at(0));
    return std::vector<KeyProblem>{{"app.shop.cwd", "/etc/corral does not exist", ""},
                                   {"app.shop.command", "/etc/corral/bin/server does not exist", "install it"}};
  };
  auto c = load_string("[[listener]]\naddress = \"127.0.0.1:0\"\n\n[app.shop]\ncommand = [\"bin/server\"]\n",
                       "/etc/corral/corral.toml", check);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().to_string(),
            "/etc/corral/corral.toml:4:1: app.shop.cwd: /etc/corral does not exist\n"
            "/etc/corral/corral.toml:5:1: app.shop.command: /etc/corral/bin/server does not exist; install it\n");
  EXPECT_EQ(seen, std::vector<std::string>{"/etc/corral/bin/server"}) << "the check sees resolved paths";
  EXPECT_TRUE(load_string(kMinimal, "/etc/corral/corral.toml", [](const Config&) { return std::vector<KeyProblem>{}; }));
}

// corralctl -c FILE needs runtime_dir alone, and most when FILE has errors.
TEST(ReadRuntimeDir, ToleratesErrorsElsewhere) {
  auto dir = std::filesystem::temp_directory_path() / ("conf_rd_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto lookup = [&](const std::string& text) {
    std::ofstream((dir / "c.toml").string(), std::ios::binary) << text;
    return read_runtime_dir((dir / "c.toml").string());
  };
  std::string d = dir.string();
  // Valid, or invalid only in meaning: the value as the loader resolves it.
  EXPECT_EQ(lookup("[supervisor]\nruntime_dir = \"/run/x/\"\n[app.a]\nwokers = 1\n").dir, "/run/x");
  EXPECT_EQ(lookup("[supervisor]\nruntime_dir = \"run\"\n").dir, d + "/run");
  // A syntax error after [supervisor]: the table alone still parses.
  RuntimeDirLookup r = lookup("[supervisor]\r\nruntime_dir = \"/run/y\"\r\n\r\n[app.a]\r\ncommand = [\"x\",\r\n");
  EXPECT_EQ(r.dir, "/run/y");
  EXPECT_EQ(r.warning, "");
  // A syntax error inside [supervisor]: the runtime_dir line alone.
  EXPECT_EQ(lookup("[proxy]\nthreads = \n[supervisor]\nuser = \"u\nruntime_dir = \"/run/z\" # here\n").dir, "/run/z");
  // Not set: the default, which is right.
  r = lookup("[proxy\n");
  EXPECT_EQ(r.dir, "/run/corral");
  EXPECT_EQ(r.warning, "");
  // Set but unreadable: the default, with a warning.
  r = lookup("[supervisor]\nruntime_dir = \"/run/w\n");
  EXPECT_EQ(r.dir, "/run/corral");
  EXPECT_EQ(r.warning, d + "/c.toml: cannot read [supervisor] runtime_dir; using /run/corral");
  r = lookup("[supervisor]\nruntime_dir = 5\n");
  EXPECT_EQ(r.dir, "/run/corral");
  EXPECT_NE(r.warning, "");
  std::filesystem::remove_all(dir);
  r = read_runtime_dir((dir / "c.toml").string());
  EXPECT_EQ(r.dir, "/run/corral");
  EXPECT_EQ(r.warning, "cannot read " + d + "/c.toml: No such file or directory; using runtime_dir /run/corral");
}

TEST(Loader, ThreadsAuto) {
  Config c = load_ok(std::string("[proxy]\nthreads = \"auto\"\n") + kMinimal);
  EXPECT_EQ(c.proxy.threads, 0);
}

TEST(Loader, NoRoutesIsAllowed) {
  Config c = load_ok("[[listener]]\naddress = \"127.0.0.1:0\"\n");
  EXPECT_TRUE(c.routes.empty());
  EXPECT_TRUE(c.apps.empty());
}

TEST(Loader, UnreferencedAppIsFine) {
  Config c = load_ok(std::string(kMinimal) + "[app.spare]\ncommand = [\"x\"]\n");
  EXPECT_EQ(c.apps.size(), 2u);
}

TEST(Loader, PortZeroListenersMayRepeat) {
  Config c = load_ok("[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n");
  EXPECT_EQ(c.listeners.size(), 2u);
}

TEST(Loader, DuplicateListenerIsComparedNormalized) {
  std::string err = load_err("[[listener]]\naddress = \"[::0]:80\"\n[[listener]]\naddress = \"[::]:80\"\n");
  EXPECT_EQ(err, "t.toml:4:1: listener[1].address: duplicate listener '[::]:80' (already at line 2); remove one of them\n");
}

TEST(Loader, CollectsAllErrorsInFileOrder) {
  std::string err = load_err(R"([app.b]
command = []
concurrency = 0

[app.a]
workers = 0
)");
  EXPECT_EQ(err,
            "t.toml:2:1: app.b.command: command must not be empty; for example "
            "[\"/opt/app/bin/server\", \"--port\", \"{socket}\"]\n"
            "t.toml:3:1: app.b.concurrency: concurrency must be at least 1\n"
            "t.toml:5:1: app.a: missing required key 'command' in [app.a]; for example "
            "command = [\"/opt/shop/bin/server\", \"--unix\", \"{socket}\"]\n"
            "t.toml:6:1: app.a.workers: workers must be at least 1; or \"auto\" for 2 × usable cores + 1\n"
            "t.toml: no [[listener]]: nothing would accept connections; "
            "add [[listener]] with address = \"127.0.0.1:8080\"\n");
}

TEST(Loader, SyntaxErrorStopsAtOnce) {
  std::string err = load_err("[proxy]\nthreads = \n[app.x]\nwokers = 1\n");
  EXPECT_NE(err.find("t.toml:2:"), std::string::npos) << err;
  EXPECT_EQ(err.find("wokers"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);
}

TEST(Loader, MissingFile) {
  auto c = load_file("/nonexistent/corral.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().to_string(), "/nonexistent/corral.toml: cannot read the config file: No such file or directory\n");
}

TEST(Loader, LoadFileResolvesAgainstItsFolder) {
  auto dir = std::filesystem::temp_directory_path() / ("conf_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "etc");
  std::string path = (dir / "etc" / "c.toml").string();
  {
    std::ofstream out(path);
    out << "[[listener]]\naddress = \"127.0.0.1:0\"\n[app.x]\ncommand = [\"./bin/../bin/x\"]\ncwd = \"data\"\n";
  }
  auto c = load_file(path);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  EXPECT_EQ(c->apps[0].command[0], (dir / "etc" / "bin" / "x").string());
  EXPECT_EQ(c->apps[0].cwd, (dir / "etc" / "data").string());
}

}  // namespace
}  // namespace corral::conf

namespace corral::conf {
namespace {

TEST(Loader, WsgiAppDefaultsAndPaths) {
  Config c = load_ok(R"(
[[listener]]
address = "127.0.0.1:8080"

[app.one]
kind = "wsgi"
module = "site.wsgi:app"
python_path = ["src", "/abs"]
virtualenv = "venv"

[app.many]
kind = "wsgi"
module = "site.wsgi"
concurrency = 8
)",
                     "/srv/corral.toml");
  const App* one = c.find_app("one");
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->kind, AppKind::Wsgi);
  EXPECT_TRUE(one->command.empty());
  EXPECT_EQ(one->worker_class, "sync") << "concurrency 1 → sync, as gunicorn";
  EXPECT_EQ(one->python_path, (std::vector<std::string>{"/srv/src", "/abs"}));
  EXPECT_EQ(one->virtualenv, "/srv/venv");
  const App* many = c.find_app("many");
  ASSERT_NE(many, nullptr);
  EXPECT_EQ(many->worker_class, "gthread") << "concurrency > 1 → gthread";
  // Other kinds carry no wsgi settings.
  EXPECT_TRUE(load_ok(kMinimal).apps.at(0).worker_class.empty());
}

}  // namespace
}  // namespace corral::conf

namespace corral::conf {
namespace {

TEST(Loader, StaticRoutes) {
  auto dir = std::filesystem::temp_directory_path() / ("conf_static_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "site");
  std::string path = (dir / "c.toml").string();
  {
    std::ofstream out(path);
    out << "[[listener]]\naddress = \"127.0.0.1:0\"\n"
           "[[route]]\npath = \"/static\"\nstatic = \"site\"\ncache_control = \"max-age=60\"\nindex = \"\"\n"
           "follow_symlinks = \"off\"\n"
           "[[route]]\nstatic = \"site\"\nfallback = \"x\"\n"
           "[app.x]\ncommand = [\"/bin/x\"]\n";
  }
  auto c = load_file(path);
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  ASSERT_EQ(c->routes.size(), 2u);
  EXPECT_EQ(c->routes[0].static_root, (dir / "site").string());
  EXPECT_EQ(c->routes[0].app, "");
  EXPECT_EQ(c->routes[0].index, "");
  EXPECT_EQ(c->routes[0].cache_control, "max-age=60");
  EXPECT_EQ(c->routes[0].follow_symlinks, FollowSymlinks::Off);
  EXPECT_EQ(c->routes[1].index, "index.html");
  EXPECT_EQ(c->routes[1].fallback, "x");
  EXPECT_EQ(c->routes[1].follow_symlinks, FollowSymlinks::Inside);
  // The fallback app's readiness probe is not taken from a static route's path.
  EXPECT_EQ(c->apps[0].health_path, "/");

  {
    std::ofstream out(path);
    out << "[[listener]]\naddress = \"127.0.0.1:0\"\n"
           "[[route]]\nstatic = \"missing\"\n"
           "[[route]]\npath = \"/a\"\nstatic = \"c.toml\"\napp = \"x\"\nindex = \"a/b\"\n"
           "[[route]]\npath = \"/b\"\napp = \"x\"\ncache_control = \"x\"\n"
           "[[route]]\npath = \"/c\"\n"
           "[app.x]\ncommand = [\"/bin/x\"]\n";
  }
  auto bad = load_file(path);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(bad.has_value());
  std::string e = bad.error().to_string();
  EXPECT_NE(e.find(":4:1: route[0].static: static folder " + (dir / "missing").string() + " does not exist"),
            std::string::npos) << e;
  EXPECT_NE(e.find("route[1].static: static " + (dir / "c.toml").string() + " is not a folder"), std::string::npos) << e;
  EXPECT_NE(e.find("route[1].app: a route has either app or static, not both"), std::string::npos) << e;
  EXPECT_NE(e.find("route[1].index: index 'a/b' must be a file name"), std::string::npos) << e;
  EXPECT_NE(e.find("route[2].cache_control: cache_control applies only to a static route"), std::string::npos) << e;
  EXPECT_NE(e.find("route[3]: missing required key 'app' in [[route]]; for example app = \"shop\", or static = "),
            std::string::npos) << e;
}

// Found by fuzz_config: toml++ 3.3.0 reached __builtin_unreachable() (undefined behaviour)
// when it asked whether a non-ASCII character was whitespace (conf/toml.h); UBSan builds
// (make test-asan, make fuzz) stopped here. Now these are ordinary syntax errors, and the
// same characters in strings, comments, quoted keys and continued lines still load.
TEST(Loader, NonAsciiCharactersWhereTomlAsksForWhitespace) {
  EXPECT_NE(load_err("[proxy]\nthreads = 2 \xc2\xa1\n").find("t.toml:2:13: proxy.threads: syntax error"),
            std::string::npos);
  EXPECT_NE(load_err("[proxy] \xe3\x80\x81\n").find("syntax error"), std::string::npos);
  Config c = load_ok(std::string(kMinimal) +
                     "env = { \"CAF\xc3\x89\" = \"\"\"caf\xc3\xa9 \\\n  \xc3\xa9t\xc3\xa9\"\"\" }  # \xc2\xa1\n");
  ASSERT_EQ(c.apps.size(), 1u);
  ASSERT_EQ(c.apps[0].env.size(), 1u);
  EXPECT_EQ(c.apps[0].env[0].second, "caf\xc3\xa9 \xc3\xa9t\xc3\xa9");
}

}  // namespace
}  // namespace corral::conf
