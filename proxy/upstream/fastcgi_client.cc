#include "proxy/upstream/fastcgi_client.h"

#include <limits.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>

#include "common/base/log.h"
#include "common/base/strings.h"
#include "proxy/forwarding_headers.h"
#include "common/cgi/log_limiter.h"
#include "common/cgi/meta_variables.h"
#include "common/cgi/script_path.h"

namespace corral::proxy {
namespace {

constexpr uint16_t kRequestId = 1;  // one request per connection at a time: no multiplexing
constexpr size_t kReadSize = 32 * 1024;
constexpr size_t kMaxStderrLine = 4096;
constexpr size_t kMaxIov = 512;
constexpr size_t kStdinRecord = 32 * 1024;  // body bytes per STDIN record

// The canonical head is the proxy's own output; these limits only bound a pathological one.
http1::Limits head_limits() {
  http1::Limits l;
  l.max_head_size = 1024 * 1024;
  l.max_header_count = 4096;
  return l;
}

// Why a path has no script, once per app and file (or path) per minute, every loop thread
// together: warn when the server's files are at fault, else info.
void log_miss(const ScriptApp& app, const cgi::RootResult& r, std::string_view path) {
  static cgi::LogLimiter limiter;
  std::string key = app.name;
  key += ' ';
  key += r.path.empty() ? path : std::string_view(r.path);
  if (!limiter.allow(key)) return;
  int status = r.miss == cgi::Miss::BadRequest ? 400 : 404;
  if (cgi::miss_is_server_side(r.miss)) {
    CORRAL_LOG(Warn, "app=" + app.name) << cgi::describe_miss(r, path) << "; answered " << status << " [" << path << "]";
  } else {
    CORRAL_LOG(Info, "app=" + app.name) << cgi::describe_miss(r, path) << "; answered " << status << " [" << path << "]";
  }
}

// An idle connection the app closed (EOF) or wrote to out of turn is not reusable.
bool still_idle(int fd) {
  char c;
  ssize_t r = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

FastcgiClient::FastcgiClient(UpstreamPool& pool, UpstreamHandler& handler) : ConnectionClient(pool, handler) {}

FastcgiClient::~FastcgiClient() { abort(); }

int FastcgiClient::encode_request(const UpstreamRequest& req, std::string& wire, std::vector<iovec>& pieces,
                                  bool& whole_body) {
  wire.clear();
  pieces.clear();
  whole_body = false;
  http1::RequestParser parser(head_limits());
  http1::RequestHead head;
  auto hr = parser.parse(req.head, head);
  if (hr.status != http1::ParseStatus::Done) return 400;  // not reached: the proxy wrote it
  const ScriptApp& app = *req.script_app;

  cgi::TargetParts parts = cgi::split_target(head.target);
  if (parts.path.empty() || parts.path.front() != '/') return 400;
  std::string_view prefix;
  if (!req.route_prefix.empty()) {
    std::string mount(req.route_prefix);
    prefix = cgi::match_mount(parts.path, std::span<const std::string>(&mount, 1));
  }
  std::string_view rest = parts.path.substr(prefix.size());
  std::optional<cgi::Script> script;
  if (!app.root.empty()) {
    // Scripts are run by the application (php-cgi reads SCRIPT_FILENAME), not executed:
    // they need not be executable, but they must be regular files inside root.
    cgi::RootResult r = cgi::resolve_in_root(app.root, prefix, rest, /*need_exec=*/false, app.index);
    if (!r.script) {
      log_miss(app, r, parts.path);
      return r.miss == cgi::Miss::BadRequest ? 400 : 404;
    }
    script = std::move(r.script);
  } else {
    script = cgi::fixed_script(app.script_filename, prefix, rest);
    if (!script) return 400;
  }

  cgi::RequestContext ctx;
  ctx.remote_addr = req.client_ip;
  ctx.remote_port = header_value(head.headers, "x-remote-port");
  ctx.server_port = header_value(head.headers, "x-forwarded-port");
  // The scheme the proxy forwards (its own, or a trusted proxy's: trusted_proxies), as for
  // CGI and WSGI apps; the connection's when the head has none.
  std::string_view proto = header_value(head.headers, "x-forwarded-proto");
  ctx.https = proto.empty() ? req.tls : iequals(proto, "https");
  ctx.server_software = app.server_software;
  ctx.document_root = app.document_root;
  bool has_body = head.body == http1::BodyKind::ContentLength;
  // The length the head announces (a body streamed to the app is not all here yet).
  uint64_t body_size = has_body ? head.content_length : 0;
  cgi::Variables vars = cgi::meta_variables(head, *script, ctx, has_body, body_size, app.env);

  fastcgi::append_begin_request(wire, kRequestId, /*keep_conn=*/true);
  fastcgi::append_params(wire, kRequestId, vars);
  // A body that is complete and in memory (the usual small POST, and the empty body): every
  // STDIN record goes with BEGIN_REQUEST and PARAMS, one sendmsg for the whole request. Else
  // the records are made as the body is sent (write_request): it is in a temp file, or
  // still arriving.
  const RequestBody* b = req.source;
  const uint64_t size = b ? b->size() : 0;
  RequestBody::Piece p = b ? b->peek(0, SIZE_MAX) : RequestBody::Piece{};
  if (b && !(b->complete() && p.len == size && (size == 0 || p.data))) {
    pieces.push_back({wire.data(), wire.size()});
    return 0;
  }
  whole_body = true;
  const size_t params_end = wire.size();
  const size_t records = static_cast<size_t>(size / kStdinRecord) + 2;
  // Room for every record header first: the views taken below stay valid.
  wire.reserve(params_end + records * fastcgi::kHeaderSize);
  pieces.reserve(2 * records + 1);
  pieces.push_back({wire.data(), params_end});
  fastcgi::plan_stdin(
      wire, kRequestId, static_cast<size_t>(size),
      [&](const fastcgi::StdinRecord& r) {
        pieces.push_back({wire.data() + r.header_offset, fastcgi::kHeaderSize});
        if (r.length) pieces.push_back({const_cast<char*>(p.data + r.body_offset), r.length});
      },
      kStdinRecord);
  return 0;
}

void FastcgiClient::start(const UpstreamRequest& req) {
  begin(req);
  app_ = req.script_app;
  CORRAL_CHECK(app_ != nullptr, "a fastcgi request without its app settings");
  if (int st = encode_request(req, wire_, pieces_, whole_body_)) {
    answer_locally(st);
    return;
  }
  conn_ = take_idle();
  if (!conn_ && !open_connection()) return;
  send_request();
}

size_t FastcgiClient::idle_connections() { return SharedIdleConns::instance().size(); }

std::unique_ptr<UpstreamConn> FastcgiClient::take_idle() {
  while (UniqueFd fd = SharedIdleConns::instance().take(path_, generation_)) {
    if (!still_idle(fd.get())) continue;
    auto c = std::make_unique<UpstreamConn>(pool_.loop(), std::move(fd), path_, generation_);
    c->set_reused();
    return c;
  }
  return nullptr;
}

void FastcgiClient::answer_locally(int status) {
  // No script for this path: answer as the app would, without contacting it.
  static const std::string_view kNotFound = "not found\n", kBad = "bad request\n";
  std::string_view body = status == 404 ? kNotFound : kBad;
  http1::ResponseHead h;
  h.status = status;
  h.body = http1::BodyKind::ContentLength;
  h.content_length = body.size();
  h.headers.push_back({"Content-Type", "text/plain"});
  state_ = State::Idle;
  handler_.on_upstream_head(h);
  if (method_ != "HEAD") handler_.on_upstream_body(body);
  handler_.on_upstream_complete();
}

void FastcgiClient::send_request() {
  conn_->set_handler(this);
  state_ = State::Writing;
  piece_ = piece_off_ = 0;
  body_off_ = 0;
  rec_len_ = rec_sent_ = 0;
  rec_hdr_.clear();
  rec_hdr_sent_ = 0;
  rec_from_file_ = stdin_ended_ = body_wait_ = written_all_ = false;
  received_ = 0;
  in_.clear();
  decoder_.start(kRequestId);
  head_buf_.clear();
  head_done_ = false;
  head_parser_.reset();
  drop_body_ = has_length_ = false;
  body_left_ = 0;
  stderr_line_.clear();
  on_upstream_io(false, true);
}

int FastcgiClient::write_request() {
  body_wait_ = false;
  // BEGIN_REQUEST and PARAMS (with every STDIN record when whole_body_).
  while (piece_ < pieces_.size()) {
    iovec iov[kMaxIov];
    size_t n = 0;
    for (size_t i = piece_; i < pieces_.size() && n < kMaxIov; ++i, ++n) {
      iov[n] = pieces_[i];
      if (i == piece_) {
        iov[n].iov_base = static_cast<char*>(iov[n].iov_base) + piece_off_;
        iov[n].iov_len -= piece_off_;
      }
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t w = ::sendmsg(conn_->fd(), &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -1;
    }
    auto left = static_cast<size_t>(w);
    while (left > 0 && piece_ < pieces_.size()) {
      size_t avail = pieces_[piece_].iov_len - piece_off_;
      if (left >= avail) {
        left -= avail;
        ++piece_;
        piece_off_ = 0;
      } else {
        piece_off_ += left;
        left = 0;
      }
    }
  }
  if (whole_body_) {
    if (source_) body_sent(source_->size());
    return 1;
  }
  // STDIN, one record at a time: a header, then up to kStdinRecord body bytes (from memory,
  // or read from the temp file into file_buf_), then the empty record that ends the stream.
  for (;;) {
    if (rec_hdr_sent_ == rec_hdr_.size() && rec_sent_ == rec_len_) {
      if (stdin_ended_) return 1;
      // The next record.
      RequestBody::Piece p = body_peek(body_off_, kStdinRecord);
      rec_hdr_.clear();
      rec_hdr_sent_ = 0;
      rec_len_ = rec_sent_ = 0;
      rec_from_file_ = false;
      if (p.len) {
        if (p.fd >= 0) {
          if (!file_buf_) file_buf_ = std::make_unique<char[]>(kStdinRecord);
          size_t got = 0;
          while (got < p.len) {
            ssize_t r = ::pread(p.fd, file_buf_.get() + got, p.len - got, static_cast<off_t>(p.offset + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
              CORRAL_LOG(Error, "app=" + app_->name) << "reading the request body's temp file: "
                                                      << (r < 0 ? std::strerror(errno) : "unexpected end");
              return -2;
            }
            got += static_cast<size_t>(r);
          }
          rec_from_file_ = true;
        }
        rec_len_ = p.len;
        fastcgi::append_header(rec_hdr_, fastcgi::RecordType::Stdin, kRequestId, static_cast<uint16_t>(p.len), 0);
      } else if (body_complete()) {
        fastcgi::append_header(rec_hdr_, fastcgi::RecordType::Stdin, kRequestId, 0, 0);
        stdin_ended_ = true;
      } else if (body_failed()) {
        return -3;
      } else {
        body_wait_ = true;  // a streamed body: on_body_more re-arms writing
        return 2;
      }
    }
    iovec iov[2];
    size_t n = 0;
    if (rec_hdr_sent_ < rec_hdr_.size())
      iov[n++] = {rec_hdr_.data() + rec_hdr_sent_, rec_hdr_.size() - rec_hdr_sent_};
    if (rec_sent_ < rec_len_) {
      const char* data = nullptr;
      if (rec_from_file_) {
        data = file_buf_.get() + rec_sent_;
      } else {
        // Looked up again each time: a streamed body's memory may have moved since.
        data = body_peek(body_off_, rec_len_ - rec_sent_).data;
      }
      iov[n++] = {const_cast<char*>(data), rec_len_ - rec_sent_};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t w = ::sendmsg(conn_->fd(), &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -1;
    }
    auto left = static_cast<size_t>(w);
    size_t h = std::min(left, rec_hdr_.size() - rec_hdr_sent_);
    rec_hdr_sent_ += h;
    left -= h;
    rec_sent_ += left;
    body_off_ += left;
    if (left) body_sent(body_off_);
  }
}

void FastcgiClient::on_upstream_io(bool readable, bool writable) noexcept {
  if (!conn_) return;
  if (state_ == State::Writing && writable) {
    int r = write_request();
    if (r == 1) {
      written_all_ = true;
      state_ = State::Reading;
      conn_->want(!paused_, false);
      return;
    }
    if (r == 0) {
      conn_->want(true, true);
    } else if (r == 2) {
      conn_->want(!paused_, false);
    } else {
      if (r == -1 && retry_fresh()) return;
      fail(r == -3 ? "the client's request body was cut short" : r == -2 ? "request body temp file unreadable"
                                                                         : "write to FastCGI worker failed");
      return;
    }
    // Readable while still writing: an early answer (or EOF) from an app that will not read
    // the rest of STDIN.
    if (readable && conn_) read_response();
    return;
  }
  if (readable && state_ != State::Idle) read_response();
}

void FastcgiClient::read_response() {
  for (int rounds = 0; rounds < 4 && conn_ && !paused_; ++rounds) {
    size_t room = 0;
    char* p = in_.prepare(kReadSize, &room);
    ssize_t r = ::recv(conn_->fd(), p, room, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (retry_fresh()) return;
      fail("FastCGI worker connection reset");
      return;
    }
    if (r == 0) {
      if (received_ == 0 && retry_fresh()) return;
      fail(received_ == 0 ? "FastCGI worker closed the connection before responding"
                          : "FastCGI worker closed the connection before END_REQUEST");
      return;
    }
    in_.commit(static_cast<size_t>(r));
    received_ += static_cast<uint64_t>(r);
    if (!process()) return;
    if (static_cast<size_t>(r) < room) break;
  }
  if (conn_) handler_.on_upstream_read_done();
}

bool FastcgiClient::process() {
  while (conn_ && !paused_) {
    fastcgi::Decoder::Event e = decoder_.step(in_.readable());
    switch (e.kind) {
      case fastcgi::Decoder::Kind::NeedMore:
        in_.consume(e.consumed);
        return true;
      case fastcgi::Decoder::Kind::Error:
        fail(e.why);
        return false;
      case fastcgi::Decoder::Kind::Stderr:
        on_stderr(e.data);
        in_.consume(e.consumed);
        break;
      case fastcgi::Decoder::Kind::Stdout: {
        // `data` lives in in_ until consumed: deliver first.
        bool go = on_stdout(e.data);
        if (!conn_) return false;
        in_.consume(e.consumed);
        if (!go) return false;
        break;
      }
      case fastcgi::Decoder::Kind::End: {
        in_.consume(e.consumed);
        flush_stderr();
        if (e.protocol_status != fastcgi::ProtocolStatus::RequestComplete) {
          fail(e.protocol_status == fastcgi::ProtocolStatus::Overloaded ? "FastCGI worker overloaded"
               : e.protocol_status == fastcgi::ProtocolStatus::CantMpxConn
                   ? "FastCGI worker cannot multiplex"
                   : "FastCGI worker refused the request (END_REQUEST status)");
          return false;
        }
        if (!head_done_) {
          fail("FastCGI worker ended without a valid CGI header block");
          return false;
        }
        if (has_length_ && body_left_ > 0 && !drop_body_) {
          fail("FastCGI worker sent less body than its Content-Length");
          return false;
        }
        // An app that answered before reading all of STDIN would take the rest for the next
        // request: such a connection is not reused.
        finish(in_.empty() && written_all_);
        return false;
      }
    }
  }
  return conn_ != nullptr;
}

bool FastcgiClient::on_stdout(std::string_view data) {
  if (head_done_) return deliver_body(data);
  head_buf_.append(data);
  auto st = head_parser_.parse(head_buf_, cgi_head_);
  if (st == cgi::ResponseHeadParser::Status::Incomplete) return true;
  if (st == cgi::ResponseHeadParser::Status::Error) {
    fail(head_parser_.error());
    return false;
  }
  head_done_ = true;
  if (!deliver_head()) return false;
  std::string_view rest = std::string_view(head_buf_).substr(head_parser_.consumed());
  if (rest.empty()) return true;
  // deliver_body may fail (and clear) but never touches head_buf_.
  return deliver_body(rest);
}

bool FastcgiClient::deliver_head() {
  resp_ = http1::ResponseHead{};
  resp_.status = cgi_head_.status;
  resp_.reason = cgi_head_.reason;
  resp_.version_minor = 1;
  resp_.headers.clear();
  resp_.headers.reserve(cgi_head_.headers.size());
  if (cgi_head_.kind == cgi::ResponseKind::LocalRedirect) {
    // RFC 3875 lets a CGI server serve a local path itself; like nginx for FastCGI, corral
    // sends it to the client as a 302 instead of re-entering the app.
    resp_.status = 302;
  }
  // The Location field is among the app's fields (cgi_head_.location is a copy of it).
  for (const auto& [n, v] : cgi_head_.headers) resp_.headers.push_back({n, v});
  bool bodiless = method_ == "HEAD" || resp_.status == 204 || resp_.status == 304 || resp_.status < 200;
  has_length_ = cgi_head_.content_length.has_value();
  body_left_ = cgi_head_.content_length.value_or(0);
  resp_.has_content_length = has_length_;
  resp_.content_length = body_left_;
  if (resp_.status == 204 || resp_.status == 304 || resp_.status < 200) {
    resp_.body = http1::BodyKind::None;
  } else if (has_length_) {
    resp_.body = http1::BodyKind::ContentLength;
    resp_.content_length = body_left_;
  } else {
    resp_.body = method_ == "HEAD" ? http1::BodyKind::None : http1::BodyKind::UntilClose;
  }
  drop_body_ = bodiless;
  handler_.on_upstream_head(resp_);
  return conn_ != nullptr;
}

bool FastcgiClient::deliver_body(std::string_view data) {
  if (drop_body_ || data.empty()) return true;
  if (has_length_) {
    if (data.size() > body_left_) {
      fail("FastCGI worker sent more body than its Content-Length");
      return false;
    }
    body_left_ -= data.size();
  }
  handler_.on_upstream_body(data);
  return conn_ != nullptr;
}

void FastcgiClient::on_stderr(std::string_view data) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    std::string_view part = data.substr(0, nl);
    if (stderr_line_.size() < kMaxStderrLine)
      stderr_line_.append(part.substr(0, kMaxStderrLine - stderr_line_.size()));
    if (nl == std::string_view::npos) return;
    flush_stderr();
    data.remove_prefix(nl + 1);
  }
}

void FastcgiClient::flush_stderr() {
  if (stderr_line_.empty()) return;
  if (stderr_line_.back() == '\r') stderr_line_.pop_back();
  CORRAL_LOG(Warn, "app=" + (app_ ? app_->name : std::string("?"))) << stderr_line_;
  stderr_line_.clear();
}

void FastcgiClient::finish(bool reusable) {
  state_ = State::Idle;
  end_body();
  std::unique_ptr<UpstreamConn> c = std::move(conn_);
  if (reusable) {
    c->set_reused();
    SharedIdleConns::instance().put(c->path(), c->generation(), c->release_fd());
  } else {
    c->want(false, false);
  }
  c.reset();
  in_.clear();
  handler_.on_upstream_complete();
}

void FastcgiClient::fail(const char* why) {
  flush_stderr();
  state_ = State::Idle;
  end_body();
  conn_.reset();
  in_.clear();
  handler_.on_upstream_error(why);
}

void FastcgiClient::abort() {
  state_ = State::Idle;
  end_body();
  conn_.reset();
  in_.clear();
  paused_ = false;
  stderr_line_.clear();
}

void FastcgiClient::pause_reading() {
  paused_ = true;
  if (conn_ && state_ != State::Writing) conn_->want(false, false);
}

void FastcgiClient::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  if (!conn_ || state_ == State::Writing) return;
  conn_->want(true, false);
  if (!in_.empty() && process() && conn_) handler_.on_upstream_read_done();
}

}  // namespace corral::proxy
