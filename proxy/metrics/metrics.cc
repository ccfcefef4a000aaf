#include "proxy/metrics/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace corral::proxy::metrics {

void Histogram::observe(double seconds) noexcept {
  if (!(seconds >= 0)) seconds = 0;  // also NaN
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  buckets_[i].add();
  sum_us_.add(static_cast<uint64_t>(seconds * 1e6 + 0.5));
}

void HistogramTotals::add(const Histogram& h) {
  for (size_t i = 0; i < kBucketCount; ++i) buckets[i] += h.buckets()[i].get();
  sum_us += h.sum_us();
}

uint64_t HistogramTotals::count() const {
  uint64_t n = 0;
  for (auto b : buckets) n += b;
  return n;
}

double HistogramTotals::quantile(double q) const {
  uint64_t total = count();
  if (total == 0) return 0;
  double rank = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    if (buckets[i] == 0) continue;
    if (static_cast<double>(seen + buckets[i]) >= rank) {
      if (i == kBuckets.size()) return kBuckets.back();
      double lo = i == 0 ? 0.0 : kBuckets[i - 1];
      double hi = kBuckets[i];
      double within = (rank - static_cast<double>(seen)) / static_cast<double>(buckets[i]);
      if (within < 0) within = 0;
      return lo + (hi - lo) * within;
    }
    seen += buckets[i];
  }
  return kBuckets.back();
}

HistogramTotals HistogramTotals::minus(const HistogramTotals& earlier) const {
  HistogramTotals d;
  for (size_t i = 0; i < kBucketCount; ++i) d.buckets[i] = buckets[i] >= earlier.buckets[i] ? buckets[i] - earlier.buckets[i] : 0;
  d.sum_us = sum_us >= earlier.sum_us ? sum_us - earlier.sum_us : 0;
  return d;
}

std::string_view protocol_label(Protocol p) { return p == Protocol::Http2 ? "h2" : "http1"; }

size_t status_class(int status) {
  if (status >= 100 && status < 600) return static_cast<size_t>(status / 100 - 1);
  return 5;
}

std::string_view status_class_label(size_t i) {
  static constexpr std::string_view kLabels[kStatusClasses] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};
  return i < kStatusClasses ? kLabels[i] : "none";
}

std::string_view queue_reject_label(QueueReject r) {
  switch (r) {
    case QueueReject::QueueFull: return "queue_full";
    case QueueReject::QueueTimeout: return "queue_timeout";
    case QueueReject::NoWorkers: return "no_workers";
  }
  return "unknown";
}

std::string_view tls_failure_label(TlsFailure f) {
  switch (f) {
    case TlsFailure::Timeout: return "timeout";
    case TlsFailure::ClosedByClient: return "closed_by_client";
    case TlsFailure::Protocol: return "protocol_error";
    case TlsFailure::NoSharedCipher: return "no_shared_cipher";
    case TlsFailure::Version: return "unsupported_version";
    case TlsFailure::Certificate: return "certificate";
    case TlsFailure::Other: return "other";
  }
  return "other";
}

std::string_view conn_protocol_label(ConnProtocol p) {
  switch (p) {
    case ConnProtocol::Pending: return "pending";
    case ConnProtocol::Http1: return "http1";
    case ConnProtocol::Http2: return "h2";
  }
  return "pending";
}

size_t h2_error_index(uint32_t code) { return code <= 0xd ? code : kH2Errors - 1; }

std::string_view h2_error_label(size_t index) {
  static constexpr std::string_view kLabels[kH2Errors] = {
      "NO_ERROR",         "PROTOCOL_ERROR",  "INTERNAL_ERROR",     "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
      "STREAM_CLOSED",    "FRAME_SIZE_ERROR", "REFUSED_STREAM",    "CANCEL",             "COMPRESSION_ERROR",
      "CONNECT_ERROR",    "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED", "UNKNOWN"};
  return index < kH2Errors ? kLabels[index] : "UNKNOWN";
}

void LoopCounters::reject(const char* reason, int status, Protocol p) noexcept {
  size_t used = reject_slots_used.load(std::memory_order_relaxed);  // this thread is the only writer
  for (size_t i = 0; i < used; ++i) {
    RejectSlot& s = rejects[i];
    if (s.reason.load(std::memory_order_relaxed) == reason && s.status.load(std::memory_order_relaxed) == status) {
      s.count[static_cast<size_t>(p)].add();
      return;
    }
  }
  if (used == kRejectSlots) {
    rejects_overflow.add();
    return;
  }
  RejectSlot& s = rejects[used];
  s.status.store(status, std::memory_order_relaxed);
  s.reason.store(reason, std::memory_order_relaxed);
  s.count[static_cast<size_t>(p)].add();
  reject_slots_used.store(used + 1, std::memory_order_release);  // readers see the slot complete
}

std::string reason_label(std::string_view reason) {
  std::string out;
  out.reserve(reason.size());
  bool gap = false;
  for (char c : reason) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
      alnum = true;
    }
    if (!alnum) {
      gap = !out.empty();
      continue;
    }
    if (gap) out.push_back('_');
    gap = false;
    out.push_back(c);
  }
  return out.empty() ? "unknown" : out;
}

void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
}

void append_value(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%.9g", v);
  out.append(buf, static_cast<size_t>(n));
}

}  // namespace corral::proxy::metrics
