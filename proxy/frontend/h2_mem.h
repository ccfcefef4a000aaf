#pragma once
// The allocator an HTTP/2 session hands to nghttp2 (nghttp2_mem). nghttp2 allocates a few
// small blocks per stream (the stream, outbound items, header copies) and frees them when
// the stream closes; on a busy connection the same sizes come back every request. Freed
// small blocks are kept in per-size-class free lists (bounded) and handed out again, so a
// stream costs nghttp2 no malloc/free once the connection is warm. Larger blocks go to
// malloc. trim() gives every cached block back (an idle connection pins nothing).
//
// Loop-affine: one per Http2Session, used only by its nghttp2 session; must outlive it.
#include <cstddef>
#include <cstdint>

namespace corral::proxy {

class H2Mem {
 public:
  H2Mem() = default;
  ~H2Mem() { trim(); }
  H2Mem(const H2Mem&) = delete;
  H2Mem& operator=(const H2Mem&) = delete;

  void* allocate(size_t n);
  void release(void* p);
  void* reallocate(void* p, size_t n);
  void* allocate_zeroed(size_t count, size_t size);
  /// Frees every cached block (blocks in use are unaffected).
  void trim();
  /// Cached (free) blocks, all classes (for tests).
  size_t cached() const;

  /// An nghttp2_mem (filled by the caller's nghttp2 glue) points its callbacks here.
  static void* on_malloc(size_t n, void* self) { return static_cast<H2Mem*>(self)->allocate(n); }
  static void on_free(void* p, void* self) { static_cast<H2Mem*>(self)->release(p); }
  static void* on_calloc(size_t c, size_t n, void* self) { return static_cast<H2Mem*>(self)->allocate_zeroed(c, n); }
  static void* on_realloc(void* p, size_t n, void* self) { return static_cast<H2Mem*>(self)->reallocate(p, n); }

  static constexpr size_t kClasses = 6;          // 64, 128, ... 2048 bytes (header included)
  static constexpr size_t kMaxCachedPerClass = 16;

 private:
  struct Node {
    Node* next;
  };
  Node* free_[kClasses] = {};
  uint32_t count_[kClasses] = {};
};

}  // namespace corral::proxy
