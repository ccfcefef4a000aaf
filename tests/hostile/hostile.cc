#include "tests/hostile/hostile.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/base/strings.h"
#include "common/http1/parser.h"
#include "tests/integration/harness/audits.h"

namespace corral::hostile {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kAnswerTimeout{3000};
constexpr const char* kProbe = "/hostile-probe";
constexpr const char* kKept = "/hostile-kept";
constexpr const char* kReady = "/hostile-ready";  // the supervisor's readiness probe

struct State {
  itest::TempRuntime rt;
  itest::ConfigBuilder cfg{rt.path()};
  std::unique_ptr<itest::CorralProcess> corral;
  int port = 0;
  std::string capture_dir;
};
std::unique_ptr<State> g_state;

// ---- a blocking client with deadlines --------------------------------------------------

class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  bool ok() const { return fd_ >= 0; }
  bool send(std::string_view b) {
    while (!b.empty()) {
      ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      b.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  /// One poll + read until `deadline`; false on timeout. Sets eof on EOF or reset.
  bool read_once(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) return true;
      eof = true;
      reset = n < 0;
      return true;
    }
    data.append(buf, static_cast<size_t>(n));
    return true;
  }
  std::string data;
  bool eof = false;
  bool reset = false;

 private:
  int fd_ = -1;
};

bool bodyless_status(int s) { return (s >= 100 && s < 200) || s == 204 || s == 304; }

// Parses the answer at data[pos]; nullopt while incomplete. A body without framing runs to
// the end (complete only at EOF).
std::optional<Answer> parse_answer(const std::string& data, size_t& pos, bool head, bool eof) {
  size_t end = data.find("\r\n\r\n", pos);
  if (end == std::string::npos) return std::nullopt;
  Answer a;
  std::string_view head_text(data.data() + pos, end - pos);
  size_t eol = head_text.find("\r\n");
  a.status_line = std::string(head_text.substr(0, eol));
  if (a.status_line.size() >= 12) a.status = std::atoi(a.status_line.c_str() + 9);
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head_text.substr(eol + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view line = rest.substr(0, e);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos)
      a.headers.emplace_back(std::string(line.substr(0, colon)), std::string(trim_ows(line.substr(colon + 1))));
    if (e == std::string_view::npos) break;
    rest.remove_prefix(e + 2);
  }
  size_t body = end + 4;
  if (head || bodyless_status(a.status)) {
    pos = body;
    return a;
  }
  if (iequals(a.header("Transfer-Encoding"), "chunked")) {
    size_t p = body;
    for (;;) {
      size_t e = data.find("\r\n", p);
      if (e == std::string::npos) return std::nullopt;
      size_t size = std::strtoul(data.substr(p, e - p).c_str(), nullptr, 16);
      p = e + 2;
      if (size == 0) {
        for (;;) {
          size_t t = data.find("\r\n", p);
          if (t == std::string::npos) return std::nullopt;
          bool blank = t == p;
          p = t + 2;
          if (blank) break;
        }
        pos = p;
        return a;
      }
      if (p + size + 2 > data.size()) return std::nullopt;
      a.body.append(data, p, size);
      p += size + 2;
    }
  }
  if (itest::has_header(a.headers, "Content-Length")) {
    size_t len = std::strtoul(a.header("Content-Length").c_str(), nullptr, 10);
    if (body + len > data.size()) return std::nullopt;
    a.body = data.substr(body, len);
    pos = body + len;
    return a;
  }
  if (!eof) return std::nullopt;
  a.body = data.substr(body);
  pos = data.size();
  return a;
}

// Reads until `out` holds `n` answers (or EOF / deadline), parsing from data[pos].
void read_answers(Conn& c, size_t n, const std::vector<bool>& head, size_t& pos, std::vector<Answer>& out) {
  auto deadline = Clock::now() + kAnswerTimeout;
  for (;;) {
    while (out.size() < n) {
      // Interim answers do not use up a request: the HEAD flag is by final answer.
      size_t final_index = 0;
      for (auto& a : out)
        if (a.status >= 200) ++final_index;
      bool is_head = final_index < head.size() && head[final_index];
      auto a = parse_answer(c.data, pos, is_head, c.eof);
      if (!a) break;
      out.push_back(std::move(*a));
    }
    if (out.size() >= n || c.eof) return;
    if (!c.read_once(deadline)) return;
  }
}

Forwarded parse_capture(const std::string& text) {
  Forwarded f;
  size_t nl = text.find('\n');
  std::string first = text.substr(0, nl);
  auto field = [&](const std::string& key) {
    size_t at = first.find(" " + key + "=");
    if (at == std::string::npos) return std::string();
    at += key.size() + 2;
    return first.substr(at, first.find(' ', at) - at);
  };
  f.app = field("app");
  f.read = field("read");
  size_t body_len = std::strtoul(field("body").c_str(), nullptr, 10);
  std::string rest = nl == std::string::npos ? std::string() : text.substr(nl + 1);
  if (rest.size() < body_len) body_len = rest.size();
  f.raw_head = rest.substr(0, rest.size() - body_len);
  f.body = rest.substr(rest.size() - body_len);
  std::string_view h = f.raw_head;
  size_t eol = h.find("\r\n");
  std::string_view line = h.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 != std::string_view::npos) {
    f.method = std::string(line.substr(0, sp1));
    f.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    f.version = std::string(line.substr(sp2 + 1));
  }
  if (eol == std::string_view::npos) return f;
  h.remove_prefix(eol + 2);
  while (!h.empty()) {
    size_t e = h.find("\r\n");
    std::string_view l = h.substr(0, e);
    if (l.empty()) break;
    size_t colon = l.find(':');
    if (colon != std::string_view::npos)
      f.headers.emplace_back(std::string(l.substr(0, colon)), std::string(trim_ows(l.substr(colon + 1))));
    if (e == std::string_view::npos) break;
    h.remove_prefix(e + 2);
  }
  return f;
}

std::string show(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 600)) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n\n";
    else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  if (s.size() > 600) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

}  // namespace

std::optional<std::string> Forwarded::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return std::nullopt;
}

std::vector<std::string> Forwarded::all(std::string_view name) const {
  std::vector<std::string> out;
  for (auto& [k, v] : headers)
    if (iequals(k, name)) out.push_back(v);
  return out;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " (" << c.rule << ")"; }

std::string req(std::string_view method, std::string_view target, std::string_view extra, std::string_view body,
                std::string_view version, std::string_view host) {
  std::string r;
  r.append(method).append(" ").append(target).append(" ").append(version).append("\r\n");
  if (!host.empty()) r.append("Host: ").append(host).append("\r\n");
  r.append(extra);
  r.append("\r\n");
  r.append(body);
  return r;
}

void Daemons::start(const std::function<void(itest::ConfigBuilder&)>& configure) {
  g_state = std::make_unique<State>();
  State& s = *g_state;
  s.capture_dir = s.rt.file("cap");
  ASSERT_EQ(::mkdir(s.capture_dir.c_str(), 0755), 0) << std::strerror(errno);
  for (const char* name : {"main", "other"}) {
    auto& a = s.cfg.app(name);
    a.env["TESTAPP_CAPTURE"] = s.capture_dir;
    a.env["WHOAMI"] = name;
    a.workers(1);
    a.set("health_path", itest::quote(kReady));
  }
  s.cfg.route("other", "/", "other.example");
  s.cfg.route("main", "/");
  if (configure) configure(s.cfg);
  std::string cfg = s.rt.write_file("corral.toml", s.cfg.render());
  ASSERT_FALSE(cfg.empty());
  s.corral = std::make_unique<itest::CorralProcess>(s.rt, cfg);
  std::string error;
  ASSERT_TRUE(s.corral->start(std::chrono::seconds(15), &error)) << error;
  s.port = s.corral->port(0);
  ASSERT_GT(s.port, 0);
}

void Daemons::stop() {
  if (!g_state) return;
  State& s = *g_state;
  bool failed = ::testing::UnitTest::GetInstance()->failed_test_count() > 0;
  if (s.corral) {
    std::optional<int> code = s.corral->stop(std::chrono::seconds(10));
    if (!code || *code != 0) {
      std::fprintf(stderr, "corral-supervisor did not exit 0 after SIGTERM\n");
      failed = true;
      ADD_FAILURE() << "corral-supervisor did not exit 0 after SIGTERM";
    }
    std::vector<std::string> errors = itest::error_lines(s.corral->log(), {});
    for (auto& e : errors) ADD_FAILURE() << "error line in the log: " << e;
    if (!errors.empty()) failed = true;
  }
  if (failed) {
    s.rt.keep();
    if (s.corral) std::fprintf(stderr, "----- log tail -----\n%s\n-----\n", itest::tail_lines(s.corral->log(), 200).c_str());
  }
  if (s.corral) s.corral->kill_all();
  g_state.reset();
}

int Daemons::port() { return g_state ? g_state->port : 0; }

void Daemons::clear_captures() {
  if (!g_state) return;
  DIR* d = ::opendir(g_state->capture_dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    ::unlink((g_state->capture_dir + "/" + e->d_name).c_str());
  }
  ::closedir(d);
}

std::vector<Forwarded> Daemons::captures() {
  std::vector<Forwarded> out;
  if (!g_state) return out;
  struct Item {
    long pid;
    long seq;
    std::string path;
  };
  std::vector<Item> items;
  DIR* d = ::opendir(g_state->capture_dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() < 5 || n.substr(n.size() - 4) != ".req") continue;
    size_t dash = n.find('-');
    if (dash == std::string::npos) continue;
    items.push_back({std::atol(n.c_str()), std::atol(n.c_str() + dash + 1), g_state->capture_dir + "/" + n});
  }
  ::closedir(d);
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.pid != b.pid ? a.pid < b.pid : a.seq < b.seq; });
  for (auto& i : items) out.push_back(parse_capture(itest::read_file(i.path)));
  return out;
}

std::string Daemons::log_tail(size_t lines) {
  return g_state && g_state->corral ? itest::tail_lines(g_state->corral->log(), lines) : std::string();
}

void run_case(const Case& c) {
  ASSERT_TRUE(g_state && g_state->port > 0) << "daemons not started";
  SCOPED_TRACE(c.rule + " — case " + c.name);
  Daemons::clear_captures();

  Conn conn(Daemons::port());
  ASSERT_TRUE(conn.ok());
  conn.send(c.send);  // the proxy may close early; what it answered is still read below
  if (c.half_close) conn.shutdown_write();

  size_t pos = 0;
  std::vector<Answer> answers;
  if (!c.then_send.empty()) {
    // The rest is sent once the first answer (a 100 Continue, say) is in.
    read_answers(conn, 1, c.head_requests, pos, answers);
    EXPECT_EQ(answers.size(), 1u) << "no first answer before the rest was sent";
    conn.send(c.then_send);
  }
  read_answers(conn, c.statuses.size(), c.head_requests, pos, answers);
  std::vector<int> got;
  for (auto& a : answers) got.push_back(a.status);
  EXPECT_EQ(got, c.statuses) << "received:\n" << show(conn.data);
  for (auto& a : answers) {
    // The exact status line: HTTP/1.1, the code, one SP, a reason phrase.
    EXPECT_EQ(a.status_line.rfind("HTTP/1.1 " + std::to_string(a.status) + " ", 0), 0u) << a.status_line;
  }
  if (answers.size() == c.statuses.size() && c.check_answers) c.check_answers(answers);

  if (c.after == After::Closed) {
    auto deadline = Clock::now() + kAnswerTimeout;
    while (!conn.eof && conn.read_once(deadline)) {
    }
    EXPECT_TRUE(conn.eof) << "the connection was not closed";
    if (c.truncated)
      EXPECT_EQ(conn.data.compare(pos, 9, "HTTP/1.1 "), 0) << "no partial answer; received:\n" << show(conn.data);
    else
      EXPECT_EQ(conn.data.substr(pos), "") << "bytes after the expected answers";
  } else {
    EXPECT_FALSE(conn.eof) << "the connection was closed; received:\n" << show(conn.data);
    EXPECT_EQ(conn.data.substr(pos), "") << "bytes after the expected answers";
    if (!conn.eof) {
      conn.send(req("GET", kKept));
      size_t p2 = conn.data.size();
      std::vector<Answer> kept;
      read_answers(conn, 1, {}, p2, kept);
      ASSERT_EQ(kept.size(), 1u) << "no answer to a second request on the kept connection";
      EXPECT_EQ(kept[0].status, 200);
    }
  }

  // Another client is served at once.
  {
    Conn other(Daemons::port());
    ASSERT_TRUE(other.ok());
    other.send(req("GET", kProbe, "Connection: close\r\n"));
    size_t p = 0;
    std::vector<Answer> a;
    read_answers(other, 1, {}, p, a);
    ASSERT_EQ(a.size(), 1u) << "a fresh client was not answered";
    EXPECT_EQ(a[0].status, 200);
  }

  // What the workers saw (the probes are written before their answers, so any forwarded
  // request of the case is on disk by now).
  std::vector<Forwarded> seen;
  for (auto& f : Daemons::captures())
    if (f.target != kProbe && f.target != kKept && f.target != kReady) seen.push_back(std::move(f));
  std::string listing;
  for (auto& f : seen) listing += "[" + f.app + " " + f.read + "]\n" + show(f.raw_head) + show(f.body) + "\n";
  EXPECT_EQ(seen.size(), c.forwarded) << "requests the worker received:\n" << listing;
  for (auto& f : seen) {
    EXPECT_EQ(f.read, "ok") << "the worker could not read a forwarded request:\n" << show(f.raw_head);
    // Whatever corral forwards, its own strict parser accepts.
    http1::RequestParser parser;
    http1::RequestHead head;
    auto r = parser.parse(f.raw_head, head);
    EXPECT_EQ(r.status, http1::ParseStatus::Done)
        << "corral's parser rejects the forwarded head (" << r.error.reason << "):\n" << show(f.raw_head);
  }
  if (seen.size() == c.forwarded && c.check_worker) c.check_worker(seen);
}

}  // namespace corral::hostile
