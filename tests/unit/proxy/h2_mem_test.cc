// H2Mem, the allocator HTTP/2 sessions give nghttp2: freed small blocks come back for the
// next allocation of their class, the cache is bounded and trimmed, realloc/calloc keep
// the malloc contract.
#include "proxy/frontend/h2_mem.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace corral::proxy {
namespace {

TEST(H2MemTest, FreedSmallBlocksAreReusedForTheSameClass) {
  H2Mem m;
  void* a = m.allocate(100);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 16, 0u);
  m.release(a);
  EXPECT_EQ(m.cached(), 1u);
  EXPECT_EQ(m.allocate(90), a) << "same class (128 bytes with the header)";
  EXPECT_EQ(m.cached(), 0u);
  void* small = m.allocate(10);
  EXPECT_NE(small, a);
  m.release(small);
  m.release(a);
  EXPECT_EQ(m.cached(), 2u);
  void* big = m.allocate(100000);  // beyond the classes: plain malloc, never cached
  ASSERT_NE(big, nullptr);
  std::memset(big, 1, 100000);
  m.release(big);
  EXPECT_EQ(m.cached(), 2u);
  m.trim();
  EXPECT_EQ(m.cached(), 0u);
}

TEST(H2MemTest, TheCacheIsBoundedPerClass) {
  H2Mem m;
  std::vector<void*> blocks;
  for (size_t i = 0; i < 3 * H2Mem::kMaxCachedPerClass; ++i) blocks.push_back(m.allocate(200));
  for (void* p : blocks) m.release(p);
  EXPECT_EQ(m.cached(), H2Mem::kMaxCachedPerClass);
}

TEST(H2MemTest, ReallocKeepsTheBytesAndCallocZeroes) {
  H2Mem m;
  char* p = static_cast<char*>(m.allocate(20));
  std::memcpy(p, "0123456789abcdefghi", 20);
  EXPECT_EQ(m.reallocate(p, 40), p) << "fits the block's class";
  char* q = static_cast<char*>(m.reallocate(p, 5000));
  ASSERT_NE(q, nullptr);
  EXPECT_STREQ(q, "0123456789abcdefghi");
  m.release(q);
  unsigned char* z = static_cast<unsigned char*>(m.allocate_zeroed(10, 30));
  m.release(z);
  z = static_cast<unsigned char*>(m.allocate_zeroed(10, 30));  // a reused block, zeroed again
  for (int i = 0; i < 300; ++i) EXPECT_EQ(z[i], 0) << i;
  m.release(z);
  EXPECT_EQ(m.allocate_zeroed(SIZE_MAX / 2, 4), nullptr) << "overflow";
}

}  // namespace
}  // namespace corral::proxy
