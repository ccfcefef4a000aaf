// corral-placeholder: the app the packaged /etc/corral/corral.toml starts until an operator
// configures theirs. It answers every request with a short page explaining where the config
// is. No dependencies beyond libc, so a fresh install needs no interpreter.
//
//   LISTEN_FDS=1 LISTEN_PID=<pid>  accept on fd 3 (how corral hands over a worker socket)
//
// One thread, poll() over the listening socket and the open connections, keep-alive for
// requests without a body. SIGTERM/SIGINT: exit 0.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kListenFd = 3;
constexpr size_t kMaxHead = 16384;
constexpr size_t kMaxConnections = 256;
constexpr const char* kPage =
    "<!DOCTYPE html>\n<html><head><title>corral is running</title></head><body>\n"
    "<h1>corral is running</h1>\n"
    "<p>This page comes from the placeholder app of the default configuration.\n"
    "Put your app in <code>/etc/corral/corral.toml</code>, check it with\n"
    "<code>corral-supervisor --check -c /etc/corral/corral.toml</code> and apply it with\n"
    "<code>systemctl reload corral</code>. See corral.toml(5).</p>\n</body></html>\n";

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Conn {
  int fd;
  std::string in;
};

bool has_token(const std::string& head, const char* name) {
  std::string lower(head);
  for (auto& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return lower.find(name) != std::string::npos;
}

// Answers one request head; returns false when the connection must close afterwards.
bool respond(int fd, const std::string& head) {
  bool is_head = head.rfind("HEAD ", 0) == 0;
  bool is_get = head.rfind("GET ", 0) == 0;
  // A body is never read: answer, then close so its bytes are not taken for a request.
  bool keep = (is_get || is_head) && !has_token(head, "\ncontent-length:") &&
              !has_token(head, "\ntransfer-encoding:") && !has_token(head, "\nconnection: close") &&
              head.find(" HTTP/1.1\r\n") != std::string::npos;
  std::string body = (is_get || is_head) ? kPage : "only GET and HEAD are served here\n";
  std::string status = (is_get || is_head) ? "200 OK" : "405 Method Not Allowed";
  std::string out = "HTTP/1.1 " + status + "\r\nContent-Type: text/html; charset=utf-8\r\n" +
                    ((is_get || is_head) ? "" : "Allow: GET, HEAD\r\n") +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n" +
                    (keep ? "" : "Connection: close\r\n") + "\r\n";
  if (!is_head) out += body;
  for (size_t off = 0; off < out.size();) {
    ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return keep;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) return std::printf("corral-placeholder %s\n", CORRAL_VERSION) < 0;
  const char* fds = std::getenv("LISTEN_FDS");
  const char* pid = std::getenv("LISTEN_PID");
  if (!fds || std::strcmp(fds, "1") != 0 || !pid || std::atol(pid) != static_cast<long>(::getpid())) {
    std::fprintf(stderr, "corral-placeholder: expects its listening socket as fd 3 (LISTEN_FDS=1); corral starts it\n");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  std::vector<Conn> conns;
  while (!g_stop) {
    std::vector<pollfd> pfds;
    pfds.push_back({kListenFd, static_cast<short>(conns.size() < kMaxConnections ? POLLIN : 0), 0});
    for (auto& c : conns) pfds.push_back({c.fd, POLLIN, 0});
    if (::poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("corral-placeholder: poll");
      return 1;
    }
    std::vector<Conn> next;
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      bool open = true;
      if (pfds[i + 1].revents) {
        char buf[4096];
        ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) open = n < 0 && errno == EINTR;
        else c.in.append(buf, static_cast<size_t>(n));
        for (size_t end; open && (end = c.in.find("\r\n\r\n")) != std::string::npos;) {
          open = respond(c.fd, c.in.substr(0, end + 2));
          c.in.erase(0, end + 4);
        }
        if (c.in.size() > kMaxHead) open = false;
      }
      if (open) next.push_back(std::move(c));
      else ::close(c.fd);
    }
    conns = std::move(next);
    if (pfds[0].revents & POLLIN) {
      int fd = ::accept4(kListenFd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) conns.push_back({fd, {}});
    }
  }
  for (auto& c : conns) ::close(c.fd);
  return 0;
}
