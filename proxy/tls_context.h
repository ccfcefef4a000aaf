#pragma once
// The TLS side of a listener: an OpenSSL 3 SSL_CTX per certificate, chosen by SNI (the
// first certificate is the default), ALPN offering h2 and http/1.1, TLS 1.2 and 1.3 only,
// Mozilla's "intermediate" (default) or "modern" profile, and session tickets whose keys
// live only in memory and rotate. Built on the control thread from PEM bytes the
// supervisor read and validated (the proxy never opens key files, so it never needs root);
// immutable afterwards and shared by every loop thread (SSL_CTX is thread-safe for
// SSL_new). A new config builds new contexts: open connections keep the one they started
// with, new connections get the new certificates.
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace corral::proxy {

class TicketKeys;

class TlsContext {
 public:
  struct Cert {
    std::string cert_pem;  ///< leaf first, then the chain
    std::string key_pem;
    std::string name;      ///< the certificate file (for messages)
  };
  enum class Profile { Intermediate, Modern };

  /// Builds the contexts. Fails (naming the file) on a certificate or key OpenSSL rejects or
  /// a key that does not match its certificate. `alpn_h2`: offer h2. `tickets` is shared
  /// by every context of the process (null: tickets off). Control thread.
  [[nodiscard]] static Result<std::shared_ptr<const TlsContext>> create(const std::vector<Cert>& certs, Profile profile,
                                                                        bool alpn_h2,
                                                                        std::shared_ptr<TicketKeys> tickets);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  /// A server SSL for an accepted socket (nullptr on allocation failure). Thread-safe.
  SSL* new_ssl(int fd) const;
  /// The context for an SNI name (the default one when nothing matches). Thread-safe.
  SSL_CTX* select(std::string_view server_name) const;

 private:
  TlsContext() = default;
  struct Entry {
    SSL_CTX* ctx = nullptr;
    std::vector<std::string> names;  ///< DNS names (SAN, else CN), lower case; "*.x" wildcards
  };
  std::vector<Entry> entries_;
  std::shared_ptr<TicketKeys> tickets_;
  bool alpn_h2_ = true;
};

/// Session-ticket keys kept only in memory: a new encryption key every `rotate` interval,
/// the previous ones still accepted for decryption (so tickets live about 2× the interval).
/// Thread-safe (a mutex; one lookup per resumed or new session).
class TicketKeys {
 public:
  explicit TicketKeys(int rotate_seconds = 3600, size_t keep = 2);
  /// The ticket callback body for SSL_CTX_set_tlsext_ticket_key_evp_cb.
  int on_ticket(unsigned char* key_name, unsigned char* iv, void* cipher_ctx, void* mac_ctx, int enc);

 private:
  struct Key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    long created = 0;
  };
  void rotate_if_due(long now);
  int rotate_seconds_;
  size_t keep_;
  std::vector<Key> keys_;  // newest first
  std::mutex mu_;
};

/// The process's ticket keys, shared by every TLS context of every config generation, so
/// sessions resume across reloads. Thread-safe.
std::shared_ptr<TicketKeys> process_ticket_keys();

}  // namespace corral::proxy
