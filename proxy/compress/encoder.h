#pragma once
// Streaming gzip (zlib) and brotli encoders with bounded memory, their state pooled per
// thread. An Encoder takes the response body piece by piece and hands compressed bytes to
// an Output in pieces of at most kOutputChunk bytes, as soon as the codec produces them:
// write() (buffered by the codec), flush() (everything so far, decodable by the client:
// Z_SYNC_FLUSH / BROTLI_OPERATION_FLUSH), finish() (the trailer).
//
// Memory per response: gzip uses windowBits 13 and memLevel 6 (deflate's state is about
// 69 KiB, against 261 KiB for zlib's defaults; the 8 KiB window costs about one percent of
// ratio on JSON and text). Brotli uses lgwin 16; its hash tables make it 0.15 MiB at
// quality 0-1, 0.9-1.8 MiB at 2-8 and 2.5 MiB at 9, so at most kMaxBrotliPerThread brotli
// encoders are live per thread (beyond that a response gets gzip when the client takes it,
// else goes out as is). Released state goes back to the thread's pool: a z_stream is reset and kept
// (deflateReset, deflateParams for another level), brotli's blocks are cached by size.
// Loop-affine: an Encoder is used, and released, on one thread.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/compress/accept_encoding.h"

namespace corral::proxy::compress {

inline constexpr size_t kOutputChunk = 16 << 10;
inline constexpr int kGzipWindowBits = 13;
inline constexpr int kGzipMemLevel = 6;
inline constexpr int kBrotliLgwin = 16;
inline constexpr int kMaxBrotliPerThread = 16;

/// Where compressed bytes go (the response sink). Pieces are valid during the call only.
class Output {
 public:
  virtual ~Output() = default;
  virtual void write(std::string_view piece) = 0;
};

struct GzipState;
struct BrotliState;

class Encoder {
 public:
  Encoder() = default;
  ~Encoder() { release(); }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  /// Takes pooled state for `coding` at `level`. False when it cannot (brotli over the
  /// thread's limit, out of memory): the caller sends the body as is.
  bool start(Coding coding, int level);
  bool active() const { return coding_ != Coding::Identity; }
  Coding coding() const { return coding_; }
  /// False on a codec error (the response cannot be completed).
  bool write(std::string_view in, Output& out);
  bool flush(Output& out);
  bool finish(Output& out);
  /// Gives the state back to the thread's pool (also after finish()). Safe when idle.
  void release();

  uint64_t bytes_in() const { return in_; }
  uint64_t bytes_out() const { return out_; }

 private:
  enum class Op { Process, Flush, Finish };
  bool run(const unsigned char* data, size_t size, Op op, Output& out);
  Coding coding_ = Coding::Identity;
  GzipState* gzip_ = nullptr;
  BrotliState* brotli_ = nullptr;
  uint64_t in_ = 0, out_ = 0;
  uint64_t unflushed_ = 0;  // bytes written since the last flush: flush() has nothing to do at 0
};

/// This thread's pool, for tests and metrics: idle z_streams, live brotli encoders, cached
/// brotli bytes.
struct PoolStats {
  size_t gzip_idle = 0;
  size_t gzip_created = 0;
  int brotli_live = 0;
  size_t brotli_cached_bytes = 0;
  size_t brotli_allocated_bytes = 0;  ///< held by live brotli encoders
};
PoolStats pool_stats();

}  // namespace corral::proxy::compress
