#include "tests/integration/harness/clients.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

constexpr std::string_view kStatusMarker = "\nCORRAL-ITEST-STATUS:";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// Parses "HTTP/1.1 200 OK\r\nA: b\r\n..." (no final blank line). False when malformed.
bool parse_head(std::string_view head, int& status, Headers& headers) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  // "HTTP/1.1 200 OK", or curl's "HTTP/2 200 " for HTTP/2.
  size_t sp = line.find(' ');
  if (line.substr(0, 5) != "HTTP/" || sp == std::string_view::npos || line.size() < sp + 4) return false;
  status = std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
  headers.clear();
  size_t start = eol == std::string_view::npos ? head.size() : eol + 2;
  while (start < head.size()) {
    size_t end = head.find("\r\n", start);
    std::string_view h = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    size_t colon = h.find(':');
    if (colon != std::string_view::npos) headers.emplace_back(std::string(h.substr(0, colon)), trim(h.substr(colon + 1)));
    if (end == std::string_view::npos) break;
    start = end + 2;
  }
  return true;
}

bool bodyless(int status) { return status < 200 || status == 204 || status == 304; }

}  // namespace

std::string header_value(const Headers& h, std::string_view name) {
  for (auto& [k, v] : h)
    if (iequals(k, name)) return v;
  return "";
}

bool has_header(const Headers& h, std::string_view name) {
  for (auto& [k, v] : h)
    if (iequals(k, name)) return true;
  return false;
}

int header_count(const Headers& h, std::string_view name) {
  int n = 0;
  for (auto& [k, v] : h)
    if (iequals(k, name)) ++n;
  return n;
}

HttpResponse curl(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {"curl", "-sS", "-D", "-", "-o", "-", "-w", std::string(kStatusMarker) + "%{http_code}",
                                   "--max-time", std::to_string(timeout.count() / 1000.0 - 0.5)};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = run_process(argv, timeout);
  HttpResponse resp;
  size_t mark = r.out.rfind(kStatusMarker);
  if (r.exit_code != 0 || mark == std::string::npos) {
    resp.error = "curl exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") + ": " + r.err;
  }
  if (mark == std::string::npos) return resp;
  std::string_view all(r.out.data(), mark);
  // Skip interim (1xx) header blocks; the last complete head is the final response.
  size_t pos = 0;
  for (;;) {
    size_t end = all.find("\r\n\r\n", pos);
    if (end == std::string_view::npos) break;
    int status = 0;
    Headers h;
    if (!parse_head(all.substr(pos, end - pos), status, h)) break;
    resp.status = status;
    resp.headers = std::move(h);
    pos = end + 4;
    if (status >= 200) break;
  }
  resp.body = std::string(all.substr(pos));
  return resp;
}

HttpResponse http_get(int port, const std::string& path, const std::vector<std::string>& extra) {
  std::vector<std::string> args = extra;
  args.push_back("http://127.0.0.1:" + std::to_string(port) + path);
  return curl(args);
}

HttpResponse unix_get(const std::string& socket_path, const std::string& path) {
  return curl({"--unix-socket", socket_path, "http://localhost" + path});
}

std::vector<HttpResponse> parallel(int n, const std::function<HttpResponse(int)>& fn) {
  std::vector<HttpResponse> out(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { out[static_cast<size_t>(i)] = fn(i); });
  for (auto& t : threads) t.join();
  return out;
}

double metric_sum(const std::string& metrics, std::string_view prefix) {
  double sum = 0;
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) sum += std::atof(line.substr(line.rfind(' ') + 1).c_str());
  return sum;
}

std::vector<RawResponse> parse_responses(std::string_view bytes) {
  std::vector<RawResponse> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t end = bytes.find("\r\n\r\n", pos);
    if (end == std::string_view::npos) break;
    RawResponse r;
    if (!parse_head(bytes.substr(pos, end - pos), r.status, r.headers)) break;
    size_t body = end + 4;
    if (bodyless(r.status)) {
      pos = body;
    } else if (iequals(header_value(r.headers, "Transfer-Encoding"), "chunked")) {
      size_t p = body;
      bool done = false, bad = false;
      while (!done && !bad) {
        size_t eol = bytes.find("\r\n", p);
        if (eol == std::string_view::npos) {
          bad = true;
          break;
        }
        size_t size = std::strtoul(std::string(bytes.substr(p, eol - p)).c_str(), nullptr, 16);
        p = eol + 2;
        if (size == 0) {
          // Trailers, then the blank line.
          for (;;) {
            size_t t = bytes.find("\r\n", p);
            if (t == std::string_view::npos) {
              bad = true;
              break;
            }
            bool blank = t == p;
            p = t + 2;
            if (blank) break;
          }
          done = !bad;
        } else {
          if (p + size + 2 > bytes.size()) {
            bad = true;
            break;
          }
          r.body.append(bytes.substr(p, size));
          p += size + 2;
        }
      }
      if (bad) break;
      pos = p;
    } else if (has_header(r.headers, "Content-Length")) {
      size_t len = std::strtoul(header_value(r.headers, "Content-Length").c_str(), nullptr, 10);
      if (body + len > bytes.size()) break;
      r.body = std::string(bytes.substr(body, len));
      pos = body + len;
    } else {
      r.body = std::string(bytes.substr(body));
      pos = bytes.size();
    }
    out.push_back(std::move(r));
  }
  return out;
}

nlohmann::json parse_echo(const std::string& body) { return nlohmann::json::parse(body, nullptr, false); }

std::vector<std::string> echo_headers(const nlohmann::json& echo, std::string_view name) {
  std::vector<std::string> out;
  if (!echo.is_object() || !echo.contains("headers") || !echo["headers"].is_array()) return out;
  for (auto& h : echo["headers"])
    if (h.is_array() && h.size() == 2 && h[0].is_string() && iequals(h[0].get<std::string>(), name))
      out.push_back(h[1].get<std::string>());
  return out;
}

RawClient::~RawClient() { close(); }

bool RawClient::connect_tcp(int port, int rcvbuf) {
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  // Before connect, so the window advertised in the handshake already reflects it.
  if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    close();
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  closed_ = false;
  received_.clear();
  return true;
}

bool RawClient::connect_from(int port, const std::string& src, const std::string& dst) {
  close();
  const bool v6 = dst.find(':') != std::string::npos;
  auto fill = [v6](sockaddr_storage& ss, const std::string& ip, int p) -> socklen_t {
    if (v6) {
      auto& a = reinterpret_cast<sockaddr_in6&>(ss);
      a.sin6_family = AF_INET6;
      a.sin6_port = htons(static_cast<uint16_t>(p));
      inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
      return sizeof(sockaddr_in6);
    }
    auto& a = reinterpret_cast<sockaddr_in&>(ss);
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(p));
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    return sizeof(sockaddr_in);
  };
  fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  sockaddr_storage s{}, d{};
  const socklen_t len = fill(s, src, 0);
  fill(d, dst, port);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&s), len) != 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&d), len) != 0) {
    close();
    return false;
  }
  closed_ = false;
  received_.clear();
  return true;
}

bool RawClient::send(std::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void RawClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

size_t RawClient::read_once(std::chrono::milliseconds timeout) {
  if (fd_ < 0 || closed_) return 0;
  pollfd p{fd_, POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (n <= 0) return 0;
  char buf[65536];
  ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
  if (got <= 0) {
    if (got < 0 && errno == EINTR) return 0;
    closed_ = true;
    return 0;
  }
  received_.append(buf, static_cast<size_t>(got));
  return static_cast<size_t>(got);
}

std::string RawClient::read_until_close(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!closed_ && fd_ >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    read_once(left);
  }
  return received_;
}

std::vector<RawResponse> RawClient::read_responses(size_t n, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<RawResponse> got = parse_responses(received_);
    if (got.size() >= n || closed_ || fd_ < 0) return got;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return got;
    read_once(left);
  }
}

std::string RawClient::read_some(std::chrono::milliseconds timeout) {
  size_t before = received_.size();
  read_once(timeout);
  return received_.substr(before);
}

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace corral::itest
