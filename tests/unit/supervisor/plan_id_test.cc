#include "supervisor/plan_id.h"

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Fed in pieces that straddle the 64-byte blocks: the same digest.
  Sha256 h;
  const std::string text(200, 'x');
  for (size_t i = 0; i < text.size(); i += 7) h.update(std::string_view(text).substr(i, 7));
  auto d = h.finish();
  char hex[65];
  for (size_t i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", d[i]);
  EXPECT_EQ(std::string(hex), sha256_hex(text));
}

conf::Config config(const std::string& file) {
  conf::Config c;
  c.file = file;
  c.supervisor.runtime_dir = "/run/corral";
  conf::Listener l;
  l.address = "127.0.0.1:8443";
  l.tls = {{"/etc/corral/c.pem", "/etc/corral/k.pem", "CERT", "KEY"}};
  c.listeners = {l};
  conf::App a;
  a.name = "a";
  a.command = {"/srv/a"};
  c.apps = {a};
  return c;
}

struct Ids {
  conf::Config running = config("/etc/corral/corral.toml");
  conf::Config candidate = config("/etc/corral/corral.toml");
  std::string text = "[app.a]\ncommand = [\"/srv/a\"]\n";
  uint64_t generation = 3;

  std::string id() {
    ReloadPlan plan = plan_reload(running, candidate);
    return make_plan_id({generation, &running, text, &candidate, &plan});
  }
};

TEST(PlanId, NamesGenerationRunningConfigCandidateAndItsFiles) {
  Ids base;
  const std::string id = base.id();
  EXPECT_EQ(id.rfind("g3-", 0), 0u) << id;
  EXPECT_EQ(id.size(), 3u + 24u);
  EXPECT_EQ(base.id(), id) << "the same inputs give the same id";

  Ids other;
  other.generation = 4;  // another reload happened since
  EXPECT_NE(other.id(), id);

  other = Ids{};
  other.text += "# a comment\n";  // the candidate file's bytes, even where they mean nothing
  EXPECT_NE(other.id(), id);

  other = Ids{};
  other.candidate.listeners[0].tls[0].cert_pem = "RENEWED";  // a file it pulls in, same path
  EXPECT_NE(other.id(), id);
  other = Ids{};
  other.candidate.listeners[0].tls[0].key_pem = "KEY2";
  EXPECT_NE(other.id(), id);

  other = Ids{};
  other.running.apps[0].workers = 4;  // scaled at run time: another plan, another id
  EXPECT_NE(other.id(), id);

  other = Ids{};
  other.candidate.file = "/tmp/candidate.toml";  // planned elsewhere, copied into place unchanged
  other.running.file = "/etc/corral/other.toml";
  EXPECT_EQ(other.id(), id);
}

TEST(PlanId, ThePlanItselfCounts) {
  Ids base;
  ReloadPlan plan = plan_reload(base.running, base.candidate);
  const std::string a = make_plan_id({3, &base.running, base.text, &base.candidate, &plan});
  plan.on_restart.push_back("proxy.threads changed");
  EXPECT_NE(make_plan_id({3, &base.running, base.text, &base.candidate, &plan}), a);
}

TEST(PlanId, GenerationIsReadBack) {
  Ids base;
  EXPECT_EQ(plan_id_generation(base.id()), 3u);
  EXPECT_EQ(plan_id_generation("g12-0123456789abcdef01234567"), 12u);
  EXPECT_EQ(plan_id_generation("g12-0123456789abcdef0123456"), std::nullopt);   // too short
  EXPECT_EQ(plan_id_generation("g12-0123456789abcdef0123456X"), std::nullopt);  // not hex
  EXPECT_EQ(plan_id_generation("12-0123456789abcdef01234567"), std::nullopt);
  EXPECT_EQ(plan_id_generation("g-0123456789abcdef01234567"), std::nullopt);
  EXPECT_EQ(plan_id_generation(""), std::nullopt);
}

}  // namespace
}  // namespace corral::supervisor
