// Http1Session::send_file(): the body of a static file response, after its head. Plaintext:
// sendfile(2) from the file straight to the socket. TLS: pread into one buffer per thread
// and SSL_write from it (kernel TLS, which would let sendfile work under TLS too, needs the
// kernel's "tls" module and an OpenSSL built with it). Either way only what the socket takes
// now is read: a client that stops reading costs no memory, and its stall is timed from the
// last byte it took.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "proxy/frontend/http1_session.h"

namespace corral::proxy {
namespace {

constexpr size_t kTlsChunk = 64 * 1024;  // four TLS records per SSL_write
constexpr uint64_t kSendfileChunk = 1u << 30;

char* tls_buffer() {
  static thread_local std::unique_ptr<char[]> buf(new char[kTlsChunk]);
  return buf.get();
}

}  // namespace

bool Http1Session::send_file() {
  bool progress = false;
  const int fd = file_->fd.get();
  while (file_left_ > 0) {
    if (!conn_->tls()) {
      off_t off = static_cast<off_t>(file_off_);
      ssize_t n = conn_->send_file(fd, off, static_cast<size_t>(std::min(file_left_, kSendfileChunk)));
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {  // an error, or the file shrank under us: the response cannot be completed
        close();
        return false;
      }
      file_off_ += static_cast<uint64_t>(n);
      file_left_ -= static_cast<uint64_t>(n);
      progress = true;
      continue;
    }
    // A TLS write that returned EAGAIN must be repeated with the same bytes: the same range
    // is read again (the buffer is shared by the thread's connections).
    size_t want = tls_retry_ ? tls_retry_ : static_cast<size_t>(std::min<uint64_t>(file_left_, kTlsChunk));
    char* buf = tls_buffer();
    ssize_t r;
    do {
      r = ::pread(fd, buf, want, static_cast<off_t>(file_off_));
    } while (r < 0 && errno == EINTR);
    if (r != static_cast<ssize_t>(want)) {
      close();
      return false;
    }
    ssize_t n = conn_->write(buf, want);
    if (n < 0 && errno == EAGAIN) {
      tls_retry_ = want;
      break;
    }
    if (n <= 0) {
      close();
      return false;
    }
    tls_retry_ = 0;
    file_off_ += static_cast<uint64_t>(n);
    file_left_ -= static_cast<uint64_t>(n);
    progress = true;
  }
  if (file_left_ == 0) file_.reset();
  // The send-stall deadline runs from the last progress.
  if (progress && file_left_ > 0 && ex_.runtime) arm_send_stall();
  return true;
}

}  // namespace corral::proxy
