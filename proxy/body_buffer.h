#pragma once
// The request body, buffered completely before a worker is chosen (a slow upload never
// holds a worker). In memory up to max_body_size; spilling large bodies to a temp file is a
// later improvement (memory use per connection is currently bounded by max_body_size).
// Loop-affine; reused across the requests of one connection (capacity is kept).
#include <cstdint>
#include <string>
#include <string_view>

namespace corral::proxy {

class BodyBuffer {
 public:
  /// Empties the buffer (keeps capacity) and sets the limit for the next body.
  void reset(uint64_t limit) {
    data_.clear();
    limit_ = limit;
  }
  /// Appends body bytes. Returns false (and appends nothing) when the limit would be passed.
  [[nodiscard]] bool append(std::string_view bytes) {
    if (data_.size() + bytes.size() > limit_) return false;
    data_.append(bytes);
    return true;
  }
  std::string_view data() const { return data_; }
  uint64_t size() const { return data_.size(); }
  /// Drops the capacity (idle connections should not pin large buffers).
  void shrink() {
    if (data_.capacity() > kKeepCapacity) std::string().swap(data_);
  }

  static constexpr size_t kKeepCapacity = 64 * 1024;

 private:
  std::string data_;
  uint64_t limit_ = 0;
};

}  // namespace corral::proxy
