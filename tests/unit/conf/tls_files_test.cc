// TLS listener keys: certificate and key files are read and checked at load time, and every
// problem names the file.
#include "conf/tls_files.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "conf/loader.h"

namespace corral::conf {
namespace {

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-tlsXXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    make_cert("a", "a.example");
    make_cert("b", "b.example");
  }
  void TearDown() override { (void)std::system(("rm -rf " + dir_).c_str()); }
  void make_cert(const std::string& name, const std::string& cn) {
    std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=" + cn +
                      " -keyout " + dir_ + "/" + name + ".key -out " + dir_ + "/" + name + ".pem 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string config(const std::string& listener) {
    return "[[listener]]\naddress = \"127.0.0.1:0\"\n" + listener +
           "\n[[route]]\napp = \"x\"\n[app.x]\ncommand = [\"/bin/true\"]\n";
  }
  std::string dir_;
};

TEST_F(TlsFilesTest, GoodPairIsLoadedIntoTheConfig) {
  auto c = load_string(config("tls = { cert = \"a.pem\", key = \"a.key\", profile = \"modern\" }\nhsts = \"max-age=60\""),
                       dir_ + "/corral.toml");
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  ASSERT_EQ(c->listeners[0].tls.size(), 1u);
  EXPECT_EQ(c->listeners[0].tls[0].cert, dir_ + "/a.pem");  // relative to the config file
  EXPECT_NE(c->listeners[0].tls[0].cert_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(c->listeners[0].tls[0].key_pem.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(c->listeners[0].tls_profile, TlsProfile::Modern);
  EXPECT_EQ(c->listeners[0].hsts, "max-age=60");
  EXPECT_TRUE(c->listeners[0].h2);
}

TEST_F(TlsFilesTest, SeveralCertificatesForSni) {
  auto c = load_string(config("tls = { certs = [{ cert = \"a.pem\", key = \"a.key\" }, { cert = \"b.pem\", key = \"b.key\" }] }"),
                       dir_ + "/corral.toml");
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  ASSERT_EQ(c->listeners[0].tls.size(), 2u);
  EXPECT_EQ(c->listeners[0].tls[1].key, dir_ + "/b.key");
}

TEST_F(TlsFilesTest, MismatchedKeyNamesBothFiles) {
  auto c = load_string(config("tls = { cert = \"a.pem\", key = \"b.key\" }"), dir_ + "/corral.toml");
  ASSERT_FALSE(c.has_value());
  std::string e = c.error().to_string();
  EXPECT_NE(e.find("b.key' does not match the certificate '" + dir_ + "/a.pem'"), std::string::npos) << e;
  EXPECT_NE(e.find("listener[0].tls"), std::string::npos) << e;
}

TEST_F(TlsFilesTest, MissingAndGarbageFilesAreNamed) {
  auto c = load_string(config("tls = { cert = \"nope.pem\", key = \"a.key\" }"), dir_ + "/corral.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().to_string().find("cannot read '" + dir_ + "/nope.pem'"), std::string::npos) << c.error().to_string();
  std::ofstream(dir_ + "/junk.pem") << "hello\n";
  c = load_string(config("tls = { cert = \"junk.pem\", key = \"a.key\" }"), dir_ + "/corral.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().to_string().find("junk.pem' is not a PEM certificate"), std::string::npos) << c.error().to_string();
  c = load_string(config("tls = { cert = \"a.pem\", key = \"junk.pem\" }"), dir_ + "/corral.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().to_string().find("junk.pem' is not a PEM private key"), std::string::npos) << c.error().to_string();
}

TEST_F(TlsFilesTest, ImpossibleCombinationsAreErrors) {
  auto c = load_string(config("tls = { cert = \"a.pem\", key = \"a.key\" }\nredirect_https = true"), dir_ + "/x.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().to_string().find("redirect_https applies only to a plaintext listener"), std::string::npos);
  c = load_string(config("hsts = \"max-age=1\""), dir_ + "/x.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().to_string().find("hsts applies only to a TLS listener"), std::string::npos);
  c = load_string(config("tls = { cert = \"a.pem\", kee = \"a.key\" }"), dir_ + "/x.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().to_string().find("did you mean 'key'?"), std::string::npos) << c.error().to_string();
  c = load_string(config("tls = { cert = \"a.pem\", key = \"a.key\", profile = \"old\" }"), dir_ + "/x.toml");
  ASSERT_FALSE(c.has_value());
  c = load_string(config("redirect_https = \"yes\""), dir_ + "/x.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().to_string().find("expected true or false"), std::string::npos) << c.error().to_string();
}

}  // namespace
}  // namespace corral::conf
