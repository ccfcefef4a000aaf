#include "proxy/request_body.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/base/log.h"
#include "common/base/log_throttle.h"
#include "proxy/runtime.h"

namespace corral::proxy {
namespace {
// Every upload fails alike when temp_dir's disk is full: one line a second, not one per request.
LogThrottle g_temp_error_log;
}  // namespace

void RequestBody::temp_error() {
  if (counters_) counters_->body_temp_errors.add();
  uint64_t held = 0;
  if (!g_temp_error_log.allow(&held)) return;
  CORRAL_LOG(Error, "body") << "request body temp file in " << temp_dir_ << ": " << std::strerror(errno_)
                            << "; the request is answered 500"
                            << (held ? " (" + std::to_string(held) + " more since the last line)" : std::string());
}

int open_unlinked_temp(std::string_view dir) {
  std::string d(dir);
  int fd = ::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  // Kernels or file systems without O_TMPFILE (EOPNOTSUPP, EISDIR, EINVAL): a named file
  // that is unlinked at once, so nothing is left behind whatever happens next.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -1;
  std::string tmpl = d + "/corral-body-XXXXXX";
  fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return -1;
  ::unlink(tmpl.c_str());
  return fd;
}

RequestBody::Settings RequestBody::settings(const Runtime& rt, metrics::LoopCounters* counters, bool streaming) {
  Settings s;
  s.max_size = rt.proxy.max_body_size;
  s.memory = rt.proxy.client_body_buffer_size;
  s.temp_dir = rt.proxy.temp_dir;
  s.streaming = streaming;
  s.counters = counters;
  return s;
}

void RequestBody::reset(const Settings& s) {
  close();
  data_.clear();
  base_ = size_ = 0;
  max_size_ = s.max_size;
  memory_ = s.memory ? s.memory : 1;
  temp_dir_ = s.temp_dir;
  streaming_ = s.streaming;
  counters_ = s.counters;
  complete_ = failed_ = closed_ = false;
  errno_ = 0;
  reader_ = nullptr;
  writer_ = nullptr;
}

bool RequestBody::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      errno_ = errno;
      return false;
    }
    if (n == 0) {
      errno_ = ENOSPC;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

RequestBody::Status RequestBody::spill(std::string_view more) {
  int fd = open_unlinked_temp(temp_dir_);
  if (fd < 0) {
    errno_ = errno;
    temp_error();
    return Status::TempFileError;
  }
  fd_.reset(fd);
  if (counters_) counters_->bodies_spilled.add();
  if (!write_all(data_) || !write_all(more)) {
    fd_.reset();
    temp_error();
    return Status::TempFileError;
  }
  if (counters_) counters_->body_spilled_bytes.add(data_.size() + more.size());
  // The memory part is on disk now; its capacity goes too (bounded memory per upload).
  std::string().swap(data_);
  return Status::Ok;
}

RequestBody::Status RequestBody::append(std::string_view bytes) {
  if (bytes.empty()) return Status::Ok;
  if (closed_) {
    // The request is over (the worker answered early): the rest is read and dropped, however
    // much of it comes (the answer is out; no limit applies to discarded bytes).
    size_ += bytes.size();
    base_ = size_;
    return Status::Ok;
  }
  if (bytes.size() > max_size_ || size_ > max_size_ - bytes.size()) return Status::TooLarge;
  if (streaming_) {
    data_.append(bytes);
    size_ += bytes.size();
    if (reader_) reader_->on_body_more();
    return Status::Ok;
  }
  if (fd_.get() >= 0) {
    if (!write_all(bytes)) {
      fd_.reset();
      temp_error();
      return Status::TempFileError;
    }
    if (counters_) counters_->body_spilled_bytes.add(bytes.size());
    size_ += bytes.size();
    return Status::Ok;
  }
  if (data_.size() + bytes.size() > memory_) {
    Status st = spill(bytes);
    if (st != Status::Ok) return st;
    size_ += bytes.size();
    return Status::Ok;
  }
  data_.append(bytes);
  size_ += bytes.size();
  return Status::Ok;
}

void RequestBody::finish() {
  complete_ = true;
  if (reader_) reader_->on_body_more();
}

void RequestBody::fail() {
  if (complete_) return;
  failed_ = true;
  if (reader_) reader_->on_body_more();
}

RequestBody::Piece RequestBody::peek(uint64_t at, size_t max) const {
  Piece p;
  if (at >= size_ || max == 0) return p;
  uint64_t left = size_ - at;
  size_t n = left < max ? static_cast<size_t>(left) : max;
  if (fd_.get() >= 0) {
    p.fd = fd_.get();
    p.offset = at;
    p.len = n;
    return p;
  }
  if (at < base_) return p;  // released already (a caller bug; reads as nothing)
  p.data = data_.data() + (at - base_);
  p.len = n;
  return p;
}

void RequestBody::release(uint64_t upto) {
  if (!streaming_ || closed_ || upto <= base_) return;
  uint64_t drop = upto - base_;
  if (drop >= data_.size()) {
    base_ += data_.size();
    data_.clear();
  } else {
    data_.erase(0, static_cast<size_t>(drop));
    base_ = upto;
  }
  if (writer_) writer_->on_body_drained();
}

void RequestBody::close() {
  closed_ = true;
  fd_.reset();
  base_ = size_;  // nothing is readable any more
  data_.clear();
  if (data_.capacity() > kKeepCapacity) std::string().swap(data_);
  reader_ = nullptr;
  writer_ = nullptr;
}

void RequestBody::shrink() {
  if (data_.empty()) std::string().swap(data_);
}

}  // namespace corral::proxy
