#include "proxy/frontend/h2_mem.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace corral::proxy {
namespace {

// Every block starts with this header (16 bytes keep malloc's alignment for the caller).
struct alignas(16) Header {
  uint64_t size;  // usable bytes after the header
  uint32_t cls;   // size class, or kBig
};
static_assert(sizeof(Header) == 16);
constexpr uint32_t kBig = 0xffffffff;
constexpr size_t kSmallest = 64;

// The class whose blocks (header included) hold `total` bytes, or kBig.
uint32_t class_of(size_t total) {
  size_t cap = kSmallest;
  for (uint32_t c = 0; c < H2Mem::kClasses; ++c, cap <<= 1)
    if (total <= cap) return c;
  return kBig;
}

size_t class_bytes(uint32_t c) { return kSmallest << c; }

Header* header_of(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - sizeof(Header)); }

}  // namespace

void* H2Mem::allocate(size_t n) {
  if (n > (SIZE_MAX >> 1)) return nullptr;
  size_t total = n + sizeof(Header);
  uint32_t c = class_of(total);
  Header* h;
  if (c != kBig && free_[c]) {
    Node* node = free_[c];  // lives in the block's user bytes: the header stays intact
    free_[c] = node->next;
    --count_[c];
    h = header_of(node);
  } else {
    size_t bytes = c == kBig ? total : class_bytes(c);
    h = static_cast<Header*>(std::malloc(bytes));
    if (!h) return nullptr;
    h->size = bytes - sizeof(Header);
  }
  h->cls = c;
  return h + 1;
}

void H2Mem::release(void* p) {
  if (!p) return;
  Header* h = header_of(p);
  uint32_t c = h->cls;
  if (c == kBig || count_[c] >= kMaxCachedPerClass) {
    std::free(h);
    return;
  }
  Node* node = static_cast<Node*>(p);
  node->next = free_[c];
  free_[c] = node;
  ++count_[c];
}

void* H2Mem::reallocate(void* p, size_t n) {
  if (!p) return allocate(n);
  if (n == 0) {
    release(p);
    return nullptr;
  }
  Header* h = header_of(p);
  if (n <= h->size) return p;
  void* q = allocate(n);
  if (!q) return nullptr;
  std::memcpy(q, p, h->size);
  release(p);
  return q;
}

void* H2Mem::allocate_zeroed(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return nullptr;
  void* p = allocate(count * size);
  if (p) std::memset(p, 0, count * size);
  return p;
}

void H2Mem::trim() {
  for (size_t c = 0; c < kClasses; ++c) {
    while (Node* node = free_[c]) {
      free_[c] = node->next;
      std::free(header_of(node));
    }
    count_[c] = 0;
  }
}

size_t H2Mem::cached() const {
  size_t n = 0;
  for (size_t c = 0; c < kClasses; ++c) n += count_[c];
  return n;
}

}  // namespace corral::proxy
