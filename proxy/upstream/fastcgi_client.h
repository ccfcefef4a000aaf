#pragma once
// The FastCGI UpstreamClient (kind = "fastcgi"): the proxy is the FastCGI client of a
// Responder application listening on the worker slot's socket. For each request it
//   1. parses the canonical HTTP/1.1 request head (UpstreamRequest::head) back with
//      common/http1 and maps the path onto a script (common/cgi: `root`, where a folder
//      path runs its `index` file, or one program);
//      no script → 404 (400 for an undecodable path) without contacting the app, and the
//      reason logged (common/cgi/script_path.h describe_miss; once per file per minute);
//   2. sends BEGIN_REQUEST (RESPONDER, KEEP_CONN), PARAMS (the CGI meta-variables plus
//      SCRIPT_FILENAME), STDIN (records of at most 32 KiB: from memory without copying, or
//      read from the body's temp file into one fixed buffer; a streamed body as it arrives);
//      a request whose body is complete and in memory (or empty) is one sendmsg;
//   3. reads STDOUT through the CGI response-head parser into on_upstream_head/body,
//      logs STDERR line by line with the app's name, and ends at END_REQUEST.
// A malformed record, an END_REQUEST with a protocol status other than REQUEST_COMPLETE,
// STDOUT without a valid header block, or a body that disagrees with its Content-Length →
// on_upstream_error (502 before the head) and the connection is closed. A clean
// END_REQUEST with nothing after it keeps the connection for the slot's next request
// (KEEP_CONN), on whichever loop thread that request runs (see SharedIdleConns in pool.h:
// a FastCGI responder serves one connection at a time).
// One client per frontend connection, reused for each of its requests. Loop-affine.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/cgi/response_head.h"
#include "common/http1/parser.h"
#include "proxy/upstream/fastcgi_codec.h"
#include "proxy/upstream/connection_client.h"

namespace corral::proxy {

class FastcgiClient final : public ConnectionClient {
 public:
  FastcgiClient(UpstreamPool& pool, UpstreamHandler& handler);
  ~FastcgiClient() override;

  /// See UpstreamClient::start. req.script_app must be set. A pooled connection that fails
  /// before any response byte is retried once on a fresh one for idempotent methods.
  void start(const UpstreamRequest& req) override;
  void abort() override;
  void pause_reading() override;
  void resume_reading() override;
  void release_idle_buffers() override {
    if (state_ == State::Idle) file_buf_.reset();
  }

  void on_upstream_io(bool readable, bool writable) noexcept override;

  /// Builds BEGIN_REQUEST and PARAMS into `wire`, and `pieces` to send them. A body that is
  /// complete and in memory (or none) goes in too: its STDIN records' headers into `wire`,
  /// its bytes as views, then the empty STDIN record (`whole_body` = true), so the whole
  /// request is one sendmsg. Otherwise (`whole_body` = false) STDIN records are made while
  /// sending: the body is in a temp file, or still arriving. Returns 0 when the request maps
  /// onto a script, else the status to answer (404, 400). Public for tests.
  static int encode_request(const UpstreamRequest& req, std::string& wire, std::vector<iovec>& pieces,
                            bool& whole_body);

  /// Kept connections waiting for their slot's next request, all loops together. Thread-safe.
  static size_t idle_connections();

 private:
  enum class State { Idle, Writing, Reading };
  std::unique_ptr<UpstreamConn> take_idle();  // a kept connection to the slot, or null
  void send_request() override;
  void become_idle() override { state_ = State::Idle; }
  bool waiting_for_body() const override { return state_ == State::Writing && body_wait_; }
  /// Writes what it can. 1: all out; 0: the socket is full; 2: waiting for streamed body
  /// bytes; -1: write error; -2: the temp file could not be read; -3: the client's body
  /// was cut short.
  int write_request();
  void read_response();
  bool process();  // false: stop (done, error, or aborted)
  bool on_stdout(std::string_view data);
  bool deliver_head();
  bool deliver_body(std::string_view data);
  void on_stderr(std::string_view data);
  void flush_stderr();
  void finish(bool reusable);
  void fail(const char* why);
  void answer_locally(int status);

  State state_ = State::Idle;
  const ScriptApp* app_ = nullptr;
  // The request on the wire: `wire_` holds BEGIN_REQUEST and PARAMS (and, with whole_body_,
  // every STDIN record header); `pieces_` lists what to send in order (views into wire_ and,
  // with whole_body_, into the request body's memory).
  std::string wire_;
  std::vector<iovec> pieces_;
  size_t piece_ = 0, piece_off_ = 0;
  bool whole_body_ = false;       // pieces_ carry the whole STDIN stream
  // The STDIN record being sent.
  uint64_t body_off_ = 0;         // body bytes sent
  std::string rec_hdr_;           // its header
  size_t rec_hdr_sent_ = 0;
  size_t rec_len_ = 0, rec_sent_ = 0;  // its content bytes, and how many are out
  bool rec_from_file_ = false;    // content in file_buf_ (read from the temp file)
  std::unique_ptr<char[]> file_buf_;
  bool stdin_ended_ = false, body_wait_ = false, written_all_ = false;
  fastcgi::Decoder decoder_;
  // STDOUT until the CGI header block is complete, then the body passes straight through.
  std::string head_buf_;
  bool head_done_ = false;
  cgi::ResponseHeadParser head_parser_;
  cgi::ResponseHead cgi_head_;
  http1::ResponseHead resp_;
  bool drop_body_ = false;         // HEAD, 204, 304: the app's body bytes are not forwarded
  bool has_length_ = false;
  uint64_t body_left_ = 0;         // with a Content-Length: bytes still expected
  std::string stderr_line_;
};

}  // namespace corral::proxy
