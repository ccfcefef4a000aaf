#pragma once
// A contiguous byte buffer for socket reads: readable bytes [begin, end), room after end.
// Compacts (moves the readable bytes to the front) before growing, so views into the
// readable bytes are invalidated by prepare(). Loop-affine; no allocation once grown.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace corral::proxy {

class IoBuffer {
 public:
  std::string_view readable() const { return std::string_view(data_.get() + begin_, end_ - begin_); }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Makes room for at least `min` bytes after the readable ones; returns the write area.
  char* prepare(size_t min, size_t* room) {
    if (cap_ - end_ < min) {
      if (begin_ > 0) {
        std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (cap_ - end_ < min) {
        size_t ncap = cap_ ? cap_ : min;
        while (ncap - end_ < min) ncap *= 2;
        std::unique_ptr<char[]> n(new char[ncap]);
        if (end_) std::memcpy(n.get(), data_.get(), end_);
        data_ = std::move(n);
        cap_ = ncap;
      }
    }
    *room = cap_ - end_;
    return data_.get() + end_;
  }
  void commit(size_t n) { end_ += n; }
  size_t capacity() const { return cap_; }
  /// Grows the storage to at least `cap` bytes (keeps the readable ones).
  void reserve(size_t cap) {
    if (cap_ >= cap) return;
    std::unique_ptr<char[]> n(new char[cap]);
    if (end_ > begin_) std::memcpy(n.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    data_ = std::move(n);
    cap_ = cap;
  }
  void clear() { begin_ = end_ = 0; }
  /// Frees the storage when empty (idle connections should not pin memory).
  void release_if_empty() {
    if (empty()) {
      data_.reset();
      cap_ = 0;
    }
  }

 private:
  std::unique_ptr<char[]> data_;
  size_t cap_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace corral::proxy
