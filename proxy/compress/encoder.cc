#include "proxy/compress/encoder.h"

#include <brotli/encode.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace corral::proxy::compress {

// ---- the per-thread pool ------------------------------------------------------------------

namespace {

constexpr size_t kGzipIdleMax = 32;                // idle z_streams kept (69 KiB each)
constexpr size_t kBrotliCacheLimit = 8u << 20;     // brotli blocks kept for the next encoder
constexpr size_t kHeader = 16;                     // size prefix of a brotli block (keeps alignment)

struct Pool {
  std::vector<GzipState*> gzip_idle;
  size_t gzip_created = 0;
  size_t gzip_out = 0;  // taken and not given back yet
  int brotli_live = 0;
  struct Block {
    size_t size;
    void* p;
  };
  std::vector<Block> cache;
  size_t cached = 0;
  size_t allocated = 0;
  /// The thread has exited: state released later is freed, not kept.
  bool dead = false;
};

void destroy_gzip(GzipState* g);

// The thread's pool lives as long as anything may give state back to it: a holder frees
// what it keeps when the thread exits and marks it dead; the small Pool itself goes then, or
// with the last state given back to it after that (release_if_done).
struct PoolHolder {
  Pool* pool = new Pool;
  ~PoolHolder() {
    for (GzipState* g : pool->gzip_idle) destroy_gzip(g);
    pool->gzip_idle.clear();
    for (auto& b : pool->cache) std::free(b.p);
    pool->cache.clear();
    pool->cached = 0;
    pool->dead = true;
    if (pool->gzip_out == 0 && pool->brotli_live == 0) delete pool;
    pool = nullptr;
  }
};

/// A dead pool (its thread exited) that nothing uses any more is freed.
void release_if_done(Pool* pool) {
  if (pool->dead && pool->gzip_out == 0 && pool->brotli_live == 0) delete pool;
}

Pool& this_pool() {
  thread_local PoolHolder holder;
  return *holder.pool;
}

unsigned char* out_buffer() {
  thread_local unsigned char buf[kOutputChunk];
  return buf;
}

void* brotli_alloc(void* opaque, size_t n) {
  Pool* pool = static_cast<Pool*>(opaque);
  const size_t total = n + kHeader;
  void* block = nullptr;
  if (!pool->dead) {
    for (size_t i = 0; i < pool->cache.size(); ++i) {
      if (pool->cache[i].size != total) continue;
      block = pool->cache[i].p;
      pool->cached -= total;
      pool->cache[i] = pool->cache.back();
      pool->cache.pop_back();
      break;
    }
  }
  if (!block) block = std::malloc(total);
  if (!block) return nullptr;
  std::memcpy(block, &total, sizeof total);
  pool->allocated += total;
  return static_cast<char*>(block) + kHeader;
}

void brotli_free(void* opaque, void* p) {
  if (!p) return;
  Pool* pool = static_cast<Pool*>(opaque);
  void* block = static_cast<char*>(p) - kHeader;
  size_t total = 0;
  std::memcpy(&total, block, sizeof total);
  pool->allocated -= total;
  if (!pool->dead && pool->cached + total <= kBrotliCacheLimit) {
    pool->cache.push_back({total, block});
    pool->cached += total;
    return;
  }
  std::free(block);
}

}  // namespace

struct GzipState {
  z_stream z{};
  int level = 0;
  Pool* pool = nullptr;
};

struct BrotliState {
  BrotliEncoderState* enc = nullptr;
  Pool* pool = nullptr;
};

namespace {

void destroy_gzip(GzipState* g) {
  deflateEnd(&g->z);
  delete g;
}

GzipState* take_gzip(int level) {
  Pool& pool = this_pool();
  if (!pool.gzip_idle.empty()) {
    GzipState* g = pool.gzip_idle.back();
    pool.gzip_idle.pop_back();
    ++pool.gzip_out;
    if (g->level != level) {
      // Right after deflateReset nothing is buffered: this only changes the parameters.
      if (deflateParams(&g->z, level, Z_DEFAULT_STRATEGY) != Z_OK) {
        destroy_gzip(g);
        --pool.gzip_out;
        return nullptr;
      }
      g->level = level;
    }
    return g;
  }
  auto* g = new GzipState;
  g->pool = &pool;
  g->level = level;
  // windowBits + 16: a gzip wrapper (header and CRC-32 trailer), not raw zlib.
  if (deflateInit2(&g->z, level, Z_DEFLATED, kGzipWindowBits + 16, kGzipMemLevel, Z_DEFAULT_STRATEGY) != Z_OK) {
    delete g;
    return nullptr;
  }
  ++pool.gzip_created;
  ++pool.gzip_out;
  return g;
}

void give_gzip(GzipState* g) {
  Pool& pool = *g->pool;
  --pool.gzip_out;
  if (pool.dead || pool.gzip_idle.size() >= kGzipIdleMax || deflateReset(&g->z) != Z_OK) {
    destroy_gzip(g);
    release_if_done(&pool);
    return;
  }
  pool.gzip_idle.push_back(g);
}

BrotliState* take_brotli(int quality) {
  Pool& pool = this_pool();
  if (pool.brotli_live >= kMaxBrotliPerThread) return nullptr;
  BrotliEncoderState* enc = BrotliEncoderCreateInstance(brotli_alloc, brotli_free, &pool);
  if (!enc) return nullptr;
  BrotliEncoderSetParameter(enc, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(quality));
  BrotliEncoderSetParameter(enc, BROTLI_PARAM_LGWIN, kBrotliLgwin);
  ++pool.brotli_live;
  return new BrotliState{enc, &pool};
}

void give_brotli(BrotliState* b) {
  BrotliEncoderDestroyInstance(b->enc);  // its blocks go to the pool's cache
  Pool* pool = b->pool;
  --pool->brotli_live;
  delete b;
  release_if_done(pool);
}

}  // namespace

PoolStats pool_stats() {
  Pool& pool = this_pool();
  PoolStats s;
  s.gzip_idle = pool.gzip_idle.size();
  s.gzip_created = pool.gzip_created;
  s.brotli_live = pool.brotli_live;
  s.brotli_cached_bytes = pool.cached;
  s.brotli_allocated_bytes = pool.allocated;
  return s;
}

// ---- Encoder -------------------------------------------------------------------------------

bool Encoder::start(Coding coding, int level) {
  release();
  in_ = out_ = unflushed_ = 0;
  if (coding == Coding::Gzip) gzip_ = take_gzip(level);
  else if (coding == Coding::Br) brotli_ = take_brotli(level);
  if (!gzip_ && !brotli_) return false;
  coding_ = coding;
  return true;
}

void Encoder::release() {
  if (gzip_) give_gzip(gzip_);
  if (brotli_) give_brotli(brotli_);
  gzip_ = nullptr;
  brotli_ = nullptr;
  coding_ = Coding::Identity;
}

bool Encoder::write(std::string_view in, Output& out) {
  if (in.empty()) return true;
  in_ += in.size();
  unflushed_ += in.size();
  return run(reinterpret_cast<const unsigned char*>(in.data()), in.size(), Op::Process, out);
}

bool Encoder::flush(Output& out) {
  if (unflushed_ == 0) return true;
  unflushed_ = 0;
  return run(nullptr, 0, Op::Flush, out);
}

bool Encoder::finish(Output& out) {
  unflushed_ = 0;
  bool ok = run(nullptr, 0, Op::Finish, out);
  release();
  return ok;
}

bool Encoder::run(const unsigned char* data, size_t size, Op op, Output& out) {
  unsigned char* buf = out_buffer();
  if (gzip_) {
    z_stream& z = gzip_->z;
    z.next_in = const_cast<unsigned char*>(data);
    z.avail_in = static_cast<uInt>(size);
    const int mode = op == Op::Process ? Z_NO_FLUSH : op == Op::Flush ? Z_SYNC_FLUSH : Z_FINISH;
    for (;;) {
      z.next_out = buf;
      z.avail_out = static_cast<uInt>(kOutputChunk);
      int rc = deflate(&z, mode);
      if (rc == Z_STREAM_ERROR) return false;
      size_t have = kOutputChunk - z.avail_out;
      if (have) {
        out_ += have;
        out.write(std::string_view(reinterpret_cast<const char*>(buf), have));
      }
      if (op == Op::Finish) {
        if (rc == Z_STREAM_END) return true;
        if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
        continue;
      }
      // Everything taken, and the last call had room to spare: nothing more is pending.
      if (z.avail_in == 0 && z.avail_out != 0) return true;
      if (rc == Z_BUF_ERROR && z.avail_in == 0) return true;
    }
  }
  if (brotli_) {
    size_t avail_in = size;
    const uint8_t* next_in = data;
    const BrotliEncoderOperation mode = op == Op::Process ? BROTLI_OPERATION_PROCESS
                                        : op == Op::Flush ? BROTLI_OPERATION_FLUSH
                                                          : BROTLI_OPERATION_FINISH;
    for (;;) {
      size_t avail_out = kOutputChunk;
      uint8_t* next_out = buf;
      if (!BrotliEncoderCompressStream(brotli_->enc, mode, &avail_in, &next_in, &avail_out, &next_out, nullptr))
        return false;
      size_t have = kOutputChunk - avail_out;
      if (have) {
        out_ += have;
        out.write(std::string_view(reinterpret_cast<const char*>(buf), have));
      }
      if (op == Op::Finish) {
        if (BrotliEncoderIsFinished(brotli_->enc)) return true;
        continue;
      }
      if (avail_in == 0 && !BrotliEncoderHasMoreOutput(brotli_->enc)) return true;
    }
  }
  return false;
}

}  // namespace corral::proxy::compress
