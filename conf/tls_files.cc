#include "conf/tls_files.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace corral::conf {
namespace {

// Never prompt on the terminal for an encrypted key's passphrase.
int no_password(char*, int, int, void*) { return -1; }

std::optional<std::string> read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "cannot read '" + path + "': " + std::strerror(errno);
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  if (out.size() > (1u << 20)) return "'" + path + "' is larger than 1MiB; not a certificate or key";
  return std::nullopt;
}

std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "no PEM data";
  const char* r = ERR_reason_error_string(e);
  return r ? r : "unreadable";
}

}  // namespace

std::optional<std::string> load_tls_cert(TlsCert& c) {
  if (auto p = read_file(c.cert, c.cert_pem)) return p;
  if (auto p = read_file(c.key, c.key_pem)) return p;
  ERR_clear_error();
  BIO* b = BIO_new_mem_buf(c.cert_pem.data(), static_cast<int>(c.cert_pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (!x) return "'" + c.cert + "' is not a PEM certificate (" + openssl_reason() + ")";
  b = BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, no_password, nullptr);
  BIO_free(b);
  if (!k) {
    X509_free(x);
    return "'" + c.key + "' is not a PEM private key (" + openssl_reason() + "; encrypted keys are not supported)";
  }
  bool match = X509_check_private_key(x, k) == 1;
  EVP_PKEY_free(k);
  X509_free(x);
  ERR_clear_error();
  if (!match) return "'" + c.key + "' does not match the certificate '" + c.cert + "'";
  return std::nullopt;
}

}  // namespace corral::conf
