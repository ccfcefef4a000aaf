#include "proxy/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "common/base/cached_utc.h"
#include "common/base/log.h"
#include "proxy/forwarding_headers.h"

namespace corral::proxy {
namespace {

// Seconds with millisecond precision: "0.002".
void append_seconds(std::string& out, double s) {
  if (s < 0) s = 0;
  uint64_t ms = static_cast<uint64_t>(s * 1000.0 + 0.5);
  append_decimal(out, ms / 1000);
  out.push_back('.');
  char frac[3] = {static_cast<char>('0' + (ms % 1000) / 100), static_cast<char>('0' + (ms % 100) / 10),
                  static_cast<char>('0' + ms % 10)};
  out.append(frac, 3);
}

// Bytes a client controls are escaped as nginx does: '"', '\\' and non-printables → \xHH.
void append_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  if (s.empty()) {
    out.push_back('-');
    return;
  }
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
      char e[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
      out.append(e, 4);
    } else {
      out.push_back(ch);
    }
  }
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c >= 0x7f) {
      // Non-ASCII bytes from clients are not guaranteed UTF-8: escape them byte-wise.
      char e[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(e, 6);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

constexpr char kClfFormat[] = "%d/%b/%Y:%H:%M:%S +0000";  // "25/Nov/2026:17:18:01 +0000"
constexpr char kIsoFormat[] = "%Y-%m-%dT%H:%M:%SZ";

std::string_view clf_time(time_t t) { return cached_utc<kClfFormat>(t); }
std::string_view iso_time(time_t t) { return cached_utc<kIsoFormat>(t); }

void append_worker(std::string& out, const AccessRecord& r) {
  if (r.app.empty()) {
    out.push_back('-');
    return;
  }
  if (r.slot < 0) {  // answered by the proxy itself ("static")
    out.append(r.app);
    return;
  }
  out.append(r.app);
  out.push_back('#');
  append_decimal(out, static_cast<uint64_t>(r.slot));
}

}  // namespace

void format_combined(const AccessRecord& r, std::string& out) {
  out.append(r.client_ip.empty() ? std::string_view("-") : r.client_ip);
  out.append(" - - [", 6);
  out.append(clf_time(r.time));
  out.append("] \"", 3);
  append_escaped(out, r.method);
  out.push_back(' ');
  append_escaped(out, r.target);
  out.append(r.version_major == 2 ? " HTTP/2.0\" " : r.version_minor == 0 ? " HTTP/1.0\" " : " HTTP/1.1\" ");
  append_decimal(out, static_cast<uint64_t>(r.status));
  out.push_back(' ');
  append_decimal(out, r.bytes_sent);
  out.append(" \"", 2);
  append_escaped(out, r.referer);
  out.append("\" \"", 3);
  append_escaped(out, r.user_agent);
  out.append("\" rid=", 6);
  out.append(r.request_id.empty() ? std::string_view("-") : r.request_id);
  out.append(" trace=", 7);
  out.append(r.trace_id.empty() ? std::string_view("-") : r.trace_id);
  out.append(" worker=", 8);
  append_worker(out, r);
  out.append(" queue=", 7);
  append_seconds(out, r.queue_s);
  out.append(" upstream=", 10);
  append_seconds(out, r.upstream_s);
  out.append(" rt=", 4);
  append_seconds(out, r.rt_s);
  out.push_back('\n');
}

void format_json(const AccessRecord& r, std::string& out) {
  out.append("{\"time\":\"");
  out.append(iso_time(r.time));
  out.append("\",\"remote_addr\":");
  append_json_string(out, r.client_ip);
  out.append(",\"method\":");
  append_json_string(out, r.method);
  out.append(",\"target\":");
  append_json_string(out, r.target);
  out.append(r.version_major == 2   ? ",\"protocol\":\"HTTP/2.0\""
             : r.version_minor == 0 ? ",\"protocol\":\"HTTP/1.0\""
                                    : ",\"protocol\":\"HTTP/1.1\"");
  out.append(",\"status\":");
  append_decimal(out, static_cast<uint64_t>(r.status));
  out.append(",\"bytes\":");
  append_decimal(out, r.bytes_sent);
  out.append(",\"referer\":");
  append_json_string(out, r.referer);
  out.append(",\"user_agent\":");
  append_json_string(out, r.user_agent);
  out.append(",\"rid\":");
  append_json_string(out, r.request_id);
  out.append(",\"trace_id\":");
  append_json_string(out, r.trace_id);
  out.append(",\"worker\":");
  if (r.app.empty()) {
    out.append("null");
  } else {
    out.push_back('"');
    append_worker(out, r);
    out.push_back('"');
  }
  out.append(",\"queue\":");
  append_seconds(out, r.queue_s);
  out.append(",\"upstream\":");
  append_seconds(out, r.upstream_s);
  out.append(",\"rt\":");
  append_seconds(out, r.rt_s);
  out.append("}\n");
}

Result<std::shared_ptr<AccessLog>> AccessLog::open(const std::string& spec, conf::AccessLogFormat format) {
  std::shared_ptr<AccessLog> log(new AccessLog());
  log->format_ = format;
  if (spec == "off") return log;
  if (spec == "-" || spec.empty()) {
    log->fd_ = 2;
    log->name_ = "stderr";
    return log;
  }
  int fd = ::open(spec.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return fail_sys("open access log " + spec);
  log->fd_ = fd;
  log->name_ = spec;
  log->owned_ = true;
  return log;
}

std::shared_ptr<AccessLog> AccessLog::adopt(UniqueFd fd, const std::string& path, conf::AccessLogFormat format) {
  std::shared_ptr<AccessLog> log(new AccessLog());
  log->format_ = format;
  log->fd_ = fd.release();
  log->name_ = path;
  log->owned_ = true;
  return log;
}

AccessLog::~AccessLog() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void AccessLog::format(const AccessRecord& r, std::string& line) const {
  if (format_ == conf::AccessLogFormat::Json)
    format_json(r, line);
  else
    format_combined(r, line);
}

bool AccessLog::write(std::string_view lines) const {
  if (fd_ < 0 || lines.empty()) return true;
  if (torn_.load(std::memory_order_relaxed)) {
    // The last failure cut a line short: end it, so this one starts on a line of its own.
    ssize_t w;
    while ((w = ::write(fd_, "\n", 1)) < 0 && errno == EINTR) {
    }
    if (w != 1) {
      on_write_failed(w < 0 ? errno : ENOSPC, false, lines);
      return false;
    }
    torn_.store(false, std::memory_order_relaxed);
  }
  std::string_view rest = lines;
  while (!rest.empty()) {
    ssize_t w = ::write(fd_, rest.data(), rest.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      // A full disk (or a file over RLIMIT_FSIZE: SIGXFSZ is ignored, see proxy/main.cc)
      // must not stop the proxy: the line is dropped, counted and the failure logged.
      on_write_failed(w < 0 ? errno : ENOSPC, rest.size() != lines.size(), lines);
      return false;
    }
    rest.remove_prefix(static_cast<size_t>(w));
  }
  if (failing_.load(std::memory_order_relaxed)) on_write_ok();
  return true;
}

void AccessLog::on_write_failed(int err, bool torn, std::string_view lines) const {
  if (torn) torn_.store(true, std::memory_order_relaxed);
  failing_.store(true, std::memory_order_relaxed);
  // Counted only here: a write that works never needs to know how many lines it held.
  const auto n = std::max<uint64_t>(1, static_cast<uint64_t>(std::count(lines.begin(), lines.end(), '\n')));
  const uint64_t dropped = dropped_.fetch_add(n, std::memory_order_relaxed) + n;
  if (!limit_.allow()) return;
  CORRAL_LOG(Error, "access_log") << "cannot write to " << name_ << ": " << std::strerror(err) << "; " << dropped
                                  << " line(s) dropped so far (requests are still served; "
                                     "corral_access_log_dropped_lines_total counts them)";
}

void AccessLog::on_write_ok() const {
  if (!failing_.exchange(false, std::memory_order_relaxed)) return;
  const uint64_t dropped = dropped_.exchange(0, std::memory_order_relaxed);
  limit_.reset();
  CORRAL_LOG(Warn, "access_log") << "writing to " << name_ << " again; " << dropped
                                 << " line(s) were dropped while it failed";
}

}  // namespace corral::proxy
