#include "proxy/tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>

#include "common/base/log.h"

namespace corral::proxy {
namespace {

// Never prompt on the terminal for an encrypted key's passphrase.
int no_password(char*, int, int, void*) { return -1; }

// Mozilla's server-side TLS recommendations (version 5.7): "intermediate" for TLS 1.2
// clients, TLS 1.3 suites are OpenSSL's defaults (all three are on Mozilla's list).
constexpr const char* kIntermediateCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  char buf[256];
  if (!e) return "unknown error";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  // "error:0A00018F:SSL routines::ee key too small" → keep the readable part.
  std::string s = buf;
  size_t p = s.rfind(':');
  return p == std::string::npos ? s : s.substr(p + 1);
}

Error tls_error(const std::string& what) { return make_error(Errc::Config, what); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::vector<std::string> cert_names(X509* x) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type != GEN_DNS) continue;
      const unsigned char* d = ASN1_STRING_get0_data(g->d.dNSName);
      names.push_back(lower(std::string_view(reinterpret_cast<const char*>(d),
                                             static_cast<size_t>(ASN1_STRING_length(g->d.dNSName)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0)
      names.push_back(lower(cn));
  }
  return names;
}

bool name_matches(std::string_view pattern, std::string_view name) {
  if (pattern == name) return true;
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    size_t dot = name.find('.');
    return dot != std::string_view::npos && dot > 0 && name.substr(dot) == pattern.substr(1);
  }
  return false;
}

int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen, void* arg) {
  bool h2 = arg != nullptr;
  // Server preference: h2, then http/1.1.
  for (std::string_view want : {std::string_view("\x02h2"), std::string_view("\x08http/1.1")}) {
    if (!h2 && want[1] == 'h' && want.size() == 3) continue;
    for (unsigned i = 0; i < inlen;) {
      unsigned len = in[i];
      if (i + 1 + len > inlen) break;
      if (len == want.size() - 1 && std::memcmp(in + i + 1, want.data() + 1, len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  // No common protocol: continue without ALPN (HTTP/1.1), as nginx does.
  return SSL_TLSEXT_ERR_NOACK;
}

int on_servername(SSL* ssl, int*, void* arg) {
  const auto* tc = static_cast<const TlsContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* ctx = tc->select(name);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

// AES-256-CBC fetched once: EVP_aes_256_cbc() makes EVP_EncryptInit_ex look the
// implementation up by name for every ticket.
const EVP_CIPHER* ticket_cipher() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher ? cipher : EVP_aes_256_cbc();
}

int on_ticket(SSL* ssl, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx, int enc) {
  auto* keys = static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0));
  if (!keys) return 0;
  return keys->on_ticket(key_name, iv, cctx, hctx, enc);
}

}  // namespace

std::shared_ptr<TicketKeys> process_ticket_keys() {
  static const auto keys = std::make_shared<TicketKeys>();
  return keys;
}

TicketKeys::TicketKeys(int rotate_seconds, size_t keep) : rotate_seconds_(rotate_seconds), keep_(keep) {}

void TicketKeys::rotate_if_due(long now) {
  if (!keys_.empty() && now - keys_.front().created < rotate_seconds_) return;
  Key k;
  if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
      RAND_bytes(k.hmac, sizeof k.hmac) != 1)
    return;  // keep the old key; a failing RNG is not a reason to drop connections
  k.created = now;
  keys_.insert(keys_.begin(), k);
  if (keys_.size() > keep_) keys_.resize(keep_);
}

int TicketKeys::on_ticket(unsigned char* key_name, unsigned char* iv, void* cipher_ctx, void* mac_ctx, int enc) {
  auto* cctx = static_cast<EVP_CIPHER_CTX*>(cipher_ctx);
  auto* hctx = static_cast<EVP_MAC_CTX*>(mac_ctx);
  std::lock_guard<std::mutex> g(mu_);
  rotate_if_due(static_cast<long>(::time(nullptr)));
  if (keys_.empty()) return enc ? -1 : 0;
  const Key* k = nullptr;
  bool newest = true;
  if (enc) {
    k = &keys_.front();
    if (RAND_bytes(iv, 16) != 1) return -1;
    std::memcpy(key_name, k->name, 16);
  } else {
    for (size_t i = 0; i < keys_.size(); ++i)
      if (std::memcmp(keys_[i].name, key_name, 16) == 0) {
        k = &keys_[i];
        newest = i == 0;
        break;
      }
    if (!k) return 0;  // unknown or expired key: full handshake
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k->hmac), sizeof k->hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
  if (enc) {
    if (EVP_EncryptInit_ex(cctx, ticket_cipher(), nullptr, k->aes, iv) != 1) return -1;
    return 1;
  }
  if (EVP_DecryptInit_ex(cctx, ticket_cipher(), nullptr, k->aes, iv) != 1) return -1;
  return newest ? 1 : 2;  // 2: valid, but issue a ticket under the current key
}

Result<std::shared_ptr<const TlsContext>> TlsContext::create(const std::vector<Cert>& certs, Profile profile,
                                                             bool alpn_h2, std::shared_ptr<TicketKeys> tickets) {
  if (certs.empty()) return tl::unexpected(tls_error("no certificate"));
  std::shared_ptr<TlsContext> tc(new TlsContext());
  tc->tickets_ = std::move(tickets);
  tc->alpn_h2_ = alpn_h2;
  ERR_clear_error();
  for (const auto& c : certs) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return tl::unexpected(tls_error("SSL_CTX_new: " + ssl_error()));
    tc->entries_.push_back(Entry{ctx, {}});
    SSL_CTX_set_min_proto_version(ctx, profile == Profile::Modern ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    if (profile == Profile::Intermediate) {
      if (SSL_CTX_set_cipher_list(ctx, kIntermediateCiphers) != 1)
        return tl::unexpected(tls_error("cipher list: " + ssl_error()));
      SSL_CTX_set_dh_auto(ctx, 1);
    }
    SSL_CTX_set1_groups_list(ctx, kGroups);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // Read what the socket has, not a record header and then its body: one read() per
    // flight instead of two per record. What OpenSSL then holds unprocessed is seen with
    // SSL_has_pending (ClientConnection).
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, alpn_h2 ? tc.get() : nullptr);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, tc.get());
    static const unsigned char kSidCtx[] = "corral";
    SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
    // Stateless resumption only: tickets under in-memory keys, no server-side cache.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (tc->tickets_) {
      SSL_CTX_set_ex_data(ctx, 0, tc->tickets_.get());
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
      SSL_CTX_set_num_tickets(ctx, 1);
    } else {
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(ctx, 0);
    }

    BIO* bio = BIO_new_mem_buf(c.cert_pem.data(), static_cast<int>(c.cert_pem.size()));
    X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (!leaf) {
      BIO_free(bio);
      return tl::unexpected(tls_error(c.name + ": not a PEM certificate (" + ssl_error() + ")"));
    }
    int rc = SSL_CTX_use_certificate(ctx, leaf);
    tc->entries_.back().names = cert_names(leaf);
    X509_free(leaf);
    if (rc != 1) {
      BIO_free(bio);
      return tl::unexpected(tls_error(c.name + ": " + ssl_error()));
    }
    while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        BIO_free(bio);
        return tl::unexpected(tls_error(c.name + ": chain certificate: " + ssl_error()));
      }
    }
    ERR_clear_error();  // the loop ends on "no start line"
    BIO_free(bio);

    bio = BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, no_password, nullptr);
    BIO_free(bio);
    if (!key) return tl::unexpected(tls_error("key for " + c.name + ": not a PEM private key (" + ssl_error() + ")"));
    rc = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (rc != 1) return tl::unexpected(tls_error("key for " + c.name + ": " + ssl_error()));
    if (SSL_CTX_check_private_key(ctx) != 1)
      return tl::unexpected(tls_error("key for " + c.name + " does not match the certificate"));
  }
  return std::shared_ptr<const TlsContext>(std::move(tc));
}

TlsContext::~TlsContext() {
  for (auto& e : entries_) SSL_CTX_free(e.ctx);
}

SSL_CTX* TlsContext::select(std::string_view server_name) const {
  std::string name = lower(server_name);
  for (const auto& e : entries_)
    for (const auto& n : e.names)
      if (name_matches(n, name)) return e.ctx;
  return entries_.front().ctx;
}

SSL* TlsContext::new_ssl(int fd) const {
  SSL* ssl = SSL_new(entries_.front().ctx);
  if (!ssl) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

}  // namespace corral::proxy
