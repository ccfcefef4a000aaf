// TlsContext (certificate checks, SNI selection) and the HTTP/2 token bucket.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "proxy/frontend/http2_session.h"
#include "proxy/tls_context.h"

namespace corral::proxy {
namespace {

using namespace std::chrono_literals;

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-tlsctxXXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    a_ = make("a", "a.test");
    b_ = make("b", "*.b.test");
  }
  void TearDown() override { (void)std::system(("rm -rf " + dir_).c_str()); }
  TlsContext::Cert make(const std::string& name, const std::string& dns) {
    std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=" + name +
                      " -addext subjectAltName=DNS:" + dns + " -keyout " + dir_ + "/" + name + ".key -out " + dir_ +
                      "/" + name + ".pem 2>/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    return {slurp(dir_ + "/" + name + ".pem"), slurp(dir_ + "/" + name + ".key"), dir_ + "/" + name + ".pem"};
  }
  std::string dir_;
  TlsContext::Cert a_, b_;
};

TEST_F(TlsContextTest, SniPicksByNameAndWildcardWithTheFirstAsDefault) {
  auto ctx = TlsContext::create({a_, b_}, TlsContext::Profile::Intermediate, true, process_ticket_keys());
  ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
  SSL_CTX* first = (*ctx)->select("a.test");
  SSL_CTX* second = (*ctx)->select("x.b.test");
  EXPECT_NE(first, second);
  EXPECT_EQ((*ctx)->select("A.TEST"), first);
  EXPECT_EQ((*ctx)->select("b.test"), first) << "a wildcard does not match the bare domain";
  EXPECT_EQ((*ctx)->select("y.x.b.test"), first) << "a wildcard matches one label only";
  EXPECT_EQ((*ctx)->select("other.example"), first);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(first), TLS1_2_VERSION);
}

TEST_F(TlsContextTest, ModernIsTls13OnlyAndAMismatchedKeyNamesTheFile) {
  auto ctx = TlsContext::create({a_}, TlsContext::Profile::Modern, true, nullptr);
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(SSL_CTX_get_min_proto_version((*ctx)->select("a.test")), TLS1_3_VERSION);
  TlsContext::Cert bad = a_;
  bad.key_pem = b_.key_pem;
  auto err = TlsContext::create({bad}, TlsContext::Profile::Intermediate, true, nullptr);
  ASSERT_FALSE(err.has_value());
  EXPECT_NE(err.error().message().find(a_.name), std::string::npos) << err.error().message();
  bad.cert_pem = "garbage";
  err = TlsContext::create({bad}, TlsContext::Profile::Intermediate, true, nullptr);
  ASSERT_FALSE(err.has_value());
  EXPECT_NE(err.error().message().find("not a PEM certificate"), std::string::npos) << err.error().message();
}

TEST(RateLimitTest, BurstThenRate) {
  RateLimit r(10, 100);
  auto t = std::chrono::steady_clock::time_point{} + 1h;
  int ok = 0;
  for (int i = 0; i < 150; ++i) ok += r.take(t);
  EXPECT_EQ(ok, 100) << "the burst";
  EXPECT_FALSE(r.take(t));
  t += 500ms;  // 5 tokens back
  ok = 0;
  for (int i = 0; i < 10; ++i) ok += r.take(t);
  EXPECT_EQ(ok, 5);
  t += 1h;  // never more than the burst
  ok = 0;
  for (int i = 0; i < 200; ++i) ok += r.take(t);
  EXPECT_EQ(ok, 100);
}

}  // namespace
}  // namespace corral::proxy
