#include "tests/integration/harness/chromium.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::string in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string dir = p.substr(start, end - start);
    if (!dir.empty() && executable(dir + "/" + name)) return dir + "/" + name;
    start = end + 1;
  }
  return "";
}

// The text of a console call's arguments, as DevTools shows them.
std::string console_text(const nlohmann::json& args) {
  std::string out;
  if (!args.is_array()) return out;
  for (const auto& a : args) {
    if (!out.empty()) out += ' ';
    if (a.contains("value")) out += a["value"].is_string() ? a["value"].get<std::string>() : a["value"].dump();
    else out += a.value("description", a.value("type", std::string("?")));
  }
  return out;
}

}  // namespace

std::string base64_decode(const std::string& in) {
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else continue;  // '=', whitespace
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string Chromium::find_binary() {
  if (const char* env = std::getenv("CORRAL_CHROMIUM"); env && *env) return executable(env) ? env : "";
  for (const char* name : {"chromium", "chromium-browser"})
    if (auto p = in_path(name); !p.empty()) return p;
  return "";
}

Chromium::~Chromium() { stop(); }

bool Chromium::start(const std::string& dir, int width, int height, std::string* error) {
  const std::string binary = find_binary();
  if (binary.empty()) {
    *error = "no chromium binary (set CORRAL_CHROMIUM or install chromium)";
    return false;
  }
  const std::string profile = dir + "/profile";
  ::mkdir(profile.c_str(), 0700);
  // One socket serves as both its fd 3 (commands) and fd 4 (answers): our writes use
  // MSG_NOSIGNAL, so a browser that died fails a call instead of killing the test.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    *error = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  const std::string log_path = dir + "/chromium.log";
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  std::vector<std::string> argv = {binary,
                                   "--headless=new",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-dev-shm-usage",
                                   "--user-data-dir=" + profile,
                                   "--remote-debugging-pipe",
                                   "--window-size=" + std::to_string(width) + "," + std::to_string(height),
                                   "--no-first-run",
                                   "--no-default-browser-check",
                                   "--disable-extensions",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--mute-audio",
                                   "--hide-scrollbars",
                                   "--enable-logging=stderr",
                                   "--v=0",
                                   "about:blank"};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (log_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
  }
  posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env = make_env({});
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const int rc = ::posix_spawn(&pid_, binary.c_str(), &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  if (log_fd >= 0) ::close(log_fd);
  if (rc != 0) {
    pid_ = -1;
    ::close(sv[0]);
    *error = "spawn " + binary + ": " + std::strerror(rc);
    return false;
  }
  to_browser_ = from_browser_ = sv[0];
  // The first answer tells the browser is up (a cold profile takes a few seconds).
  nlohmann::json v = call("Browser.getVersion", nlohmann::json::object(), false, std::chrono::seconds(30), error);
  if (v.is_null()) {
    *error = "chromium did not answer: " + *error + " (see " + log_path + ")";
    return false;
  }
  return true;
}

bool Chromium::ignore_certificate_errors(std::string* error) {
  return !call("Security.setIgnoreCertificateErrors", {{"ignore", true}}, false, std::chrono::seconds(10), error)
              .is_null();
}

bool Chromium::open(const std::string& url, std::string* error) {
  nlohmann::json t = call("Target.createTarget", {{"url", "about:blank"}}, false, std::chrono::seconds(10), error);
  if (t.is_null()) return false;
  nlohmann::json s = call("Target.attachToTarget", {{"targetId", t.value("targetId", "")}, {"flatten", true}}, false,
                          std::chrono::seconds(10), error);
  if (s.is_null()) return false;
  session_ = s.value("sessionId", "");
  for (const char* domain : {"Runtime.enable", "Log.enable", "Page.enable"})
    if (call(domain, nlohmann::json::object(), true, std::chrono::seconds(10), error).is_null()) return false;
  loaded_ = false;
  nlohmann::json nav = call("Page.navigate", {{"url", url}}, true, std::chrono::seconds(10), error);
  if (nav.is_null()) return false;
  if (nav.contains("errorText")) {
    *error = "navigation to " + url + " failed: " + nav["errorText"].get<std::string>();
    return false;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  nlohmann::json m;
  while (!loaded_ && Clock::now() < deadline) {
    if (read_message(milliseconds(100), m)) {
      if (m.contains("method")) on_event(m);
    } else if (eof_) {
      *error = "chromium closed the pipe";
      return false;
    }
  }
  if (!loaded_) *error = "no load event for " + url + " within 15 s";
  return loaded_;
}

nlohmann::json Chromium::evaluate(const std::string& expression, std::string* error) {
  std::string e;
  nlohmann::json r = call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}},
                          true, std::chrono::seconds(10), &e);
  if (r.is_null()) {
    if (error) *error = e;
    return nullptr;
  }
  if (r.contains("exceptionDetails")) {
    if (error) *error = "exception: " + r["exceptionDetails"].dump();
    return nullptr;
  }
  return r.contains("result") && r["result"].contains("value") ? r["result"]["value"] : nlohmann::json(nullptr);
}

bool Chromium::wait_for(const std::string& expression, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    nlohmann::json v = evaluate(expression);
    if (v.is_boolean() && v.get<bool>()) return true;
    if (Clock::now() >= deadline || eof_) return false;
    // Wait 100 ms while handling the page's events.
    const auto until = Clock::now() + milliseconds(100);
    nlohmann::json m;
    while (Clock::now() < until)
      if (read_message(std::chrono::duration_cast<milliseconds>(until - Clock::now()), m) && m.contains("method"))
        on_event(m);
  }
}

bool Chromium::screenshot(const std::string& path, std::string* error) {
  nlohmann::json r = call("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", true}}, true,
                          std::chrono::seconds(20), error);
  if (r.is_null()) return false;
  std::string png = base64_decode(r.value("data", ""));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(png.data(), static_cast<std::streamsize>(png.size()));
  if (!f || png.size() < 8) {
    *error = "cannot write " + path;
    return false;
  }
  return true;
}

void Chromium::stop() {
  if (pid_ <= 0) return;
  std::string ignored;
  if (!eof_) (void)call("Browser.close", nlohmann::json::object(), false, std::chrono::seconds(2), &ignored);
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  int status = 0;
  bool reaped = false;
  while (!reaped && Clock::now() < deadline) {
    reaped = ::waitpid(pid_, &status, WNOHANG) == pid_;
    if (!reaped) std::this_thread::sleep_for(milliseconds(50));
  }
  // Its helpers (zygote, renderer) share its process group.
  ::kill(-pid_, SIGKILL);
  if (!reaped) ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (to_browser_ >= 0) ::close(to_browser_);
  to_browser_ = from_browser_ = -1;
}

nlohmann::json Chromium::call(const std::string& method, const nlohmann::json& params, bool page,
                              std::chrono::milliseconds timeout, std::string* error) {
  const uint64_t id = ++next_id_;
  nlohmann::json msg = {{"id", id}, {"method", method}, {"params", params}};
  if (page) msg["sessionId"] = session_;
  std::string bytes = msg.dump();
  bytes.push_back('\0');
  for (size_t off = 0; off < bytes.size();) {
    ssize_t n = ::send(to_browser_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = method + ": write to chromium failed: " + std::strerror(errno);
      eof_ = true;
      return nullptr;
    }
    off += static_cast<size_t>(n);
  }
  const auto deadline = Clock::now() + timeout;
  nlohmann::json m;
  while (Clock::now() < deadline) {
    if (!read_message(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()), m)) {
      if (eof_) break;
      continue;
    }
    if (m.contains("method")) {
      on_event(m);
      continue;
    }
    if (m.value("id", uint64_t{0}) != id) continue;
    if (m.contains("error")) {
      *error = method + ": " + m["error"].dump();
      return nullptr;
    }
    return m.contains("result") ? m["result"] : nlohmann::json::object();
  }
  *error = method + (eof_ ? ": chromium closed the pipe" : ": no answer within " + std::to_string(timeout.count()) + " ms");
  return nullptr;
}

bool Chromium::read_message(std::chrono::milliseconds timeout, nlohmann::json& out) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    size_t nul = inbox_.find('\0');
    if (nul != std::string::npos) {
      out = nlohmann::json::parse(inbox_.begin(), inbox_.begin() + static_cast<long>(nul), nullptr, false);
      inbox_.erase(0, nul + 1);
      if (out.is_discarded()) continue;
      return true;
    }
    if (eof_ || from_browser_ < 0) return false;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return false;
    pollfd p{from_browser_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(from_browser_, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    inbox_.append(buf, static_cast<size_t>(n));
  }
}

void Chromium::on_event(const nlohmann::json& m) {
  if (m.value("sessionId", "") != session_ || session_.empty()) return;
  const std::string method = m.value("method", "");
  const nlohmann::json& p = m.contains("params") ? m["params"] : nlohmann::json::object();
  if (method == "Page.loadEventFired") {
    loaded_ = true;
  } else if (method == "Runtime.consoleAPICalled") {
    const std::string type = p.value("type", "log");
    const std::string text = type + ": " + console_text(p.value("args", nlohmann::json::array()));
    messages_.push_back(text);
    if (type == "error" || type == "assert") errors_.push_back("console " + text);
  } else if (method == "Runtime.exceptionThrown") {
    const auto& d = p.contains("exceptionDetails") ? p["exceptionDetails"] : nlohmann::json::object();
    std::string text = d.value("text", std::string("exception"));
    if (d.contains("exception") && d["exception"].contains("description"))
      text += " " + d["exception"].value("description", "");
    messages_.push_back("exception: " + text);
    errors_.push_back("uncaught " + text);
  } else if (method == "Log.entryAdded") {
    const auto& e = p.contains("entry") ? p["entry"] : nlohmann::json::object();
    const std::string level = e.value("level", "info");
    std::string text = level + " (" + e.value("source", std::string("?")) + "): " + e.value("text", std::string());
    if (e.contains("url")) text += " [" + e.value("url", std::string()) + "]";
    messages_.push_back(text);
    if (level == "error") errors_.push_back(text);
  } else if (method == "Inspector.targetCrashed") {
    errors_.push_back("the page crashed");
  }
}

}  // namespace corral::itest
