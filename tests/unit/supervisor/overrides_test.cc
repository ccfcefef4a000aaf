// supervisor/overrides: runtime values (scale, tune) across reloads, key by key.
#include "supervisor/overrides.h"

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

conf::App wsgi(const std::string& name, int workers, int concurrency, const std::string& cls) {
  conf::App a;
  a.name = name;
  a.kind = conf::AppKind::Wsgi;
  a.module = "app:app";
  a.workers = workers;
  a.concurrency = concurrency;
  a.worker_class = cls;
  return a;
}

conf::Config config(std::vector<conf::App> apps) {
  conf::Config c;
  c.apps = std::move(apps);
  return c;
}

TEST(Tuning, ParsesAndValidates) {
  auto t = parse_tuning(nlohmann::json::parse(R"({"workers": 3, "concurrency": 16, "worker_class": "gthread"})"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->workers, 3);
  EXPECT_EQ(t->concurrency, 16);
  EXPECT_EQ(t->worker_class, "gthread");
  EXPECT_FALSE(parse_tuning(nlohmann::json::parse("{}")));
  EXPECT_FALSE(parse_tuning(nlohmann::json::parse("[]")));
  EXPECT_FALSE(parse_tuning(nlohmann::json::parse(R"({"workers": 0})")));
  EXPECT_FALSE(parse_tuning(nlohmann::json::parse(R"({"workers": 5000})")));
  EXPECT_FALSE(parse_tuning(nlohmann::json::parse(R"({"workers": "3"})")));
  EXPECT_FALSE(parse_tuning(nlohmann::json::parse(R"({"worker_class": "eventlet"})")));
  EXPECT_FALSE(parse_tuning(nlohmann::json::parse(R"({"wokers": 3})")));

  const conf::App running = wsgi("a", 1, 1, "sync");
  auto threads = tuned_app(running, AppTuning{std::nullopt, 8, "gthread"});
  ASSERT_TRUE(threads);
  EXPECT_EQ(threads->concurrency, 8);
  EXPECT_EQ(threads->workers, 1);
  // "sync" serves one request at a time, as the loader insists.
  auto bad = tuned_app(running, AppTuning{std::nullopt, 8, std::nullopt});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().context.find("sync"), std::string::npos);
  conf::App http = running;
  http.kind = conf::AppKind::Http;
  http.worker_class.clear();
  EXPECT_FALSE(tuned_app(http, AppTuning{std::nullopt, std::nullopt, "gevent"}));
  EXPECT_TRUE(tuned_app(http, AppTuning{4, 2, std::nullopt}));
}

TEST(RuntimeOverrides, StayAcrossReloadsUntilTheFileChangesThatKey) {
  RuntimeOverrides o;
  const conf::App file = wsgi("a", 1, 1, "sync");
  o.record(file, wsgi("a", 3, 16, "gthread"));
  EXPECT_EQ(o.describe("a"), nlohmann::json::parse(R"({"workers":3,"concurrency":16,"worker_class":"gthread"})"));

  // The file did not change: the runtime values apply to what it says.
  conf::Config same = config({file});
  EXPECT_TRUE(o.apply_to(same).empty());
  EXPECT_EQ(same.apps[0].workers, 3);
  EXPECT_EQ(same.apps[0].concurrency, 16);
  EXPECT_EQ(same.apps[0].worker_class, "gthread");

  // Another key of the app changed: the runtime values still apply.
  conf::App timeout = file;
  timeout.timeout = Millis(5000);
  conf::Config other = config({timeout});
  EXPECT_TRUE(o.apply_to(other).empty());
  EXPECT_EQ(other.apps[0].workers, 3);

  // The file changes workers: the file wins for workers only, and says so.
  conf::Config more = config({wsgi("a", 5, 1, "sync")});
  auto notes = o.apply_to(more);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("workers (1 -> 5)"), std::string::npos) << notes[0];
  EXPECT_EQ(more.apps[0].workers, 5);
  EXPECT_EQ(more.apps[0].concurrency, 16);
  EXPECT_EQ(o.describe("a"), nlohmann::json::parse(R"({"concurrency":16,"worker_class":"gthread"})"));

  // The file now says what was set at run time: nothing left to keep.
  conf::Config permanent = config({wsgi("a", 5, 16, "gthread")});
  notes = o.apply_to(permanent);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("now in the file"), std::string::npos) << notes[0];
  EXPECT_EQ(o.describe("a"), nlohmann::json::object());
}

TEST(RuntimeOverrides, APairThatNoLongerFitsFallsBackToTheFile) {
  RuntimeOverrides o;
  o.record(wsgi("a", 1, 8, "gthread"), wsgi("a", 1, 1, "sync"));  // tuned down to one at a time
  // The file raises concurrency to 16: it wins there, and "sync" with 16 cannot run.
  conf::Config c = config({wsgi("a", 1, 16, "gthread")});
  auto notes = o.apply_to(c);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[1].find("do not fit together"), std::string::npos) << notes[1];
  EXPECT_EQ(c.apps[0].concurrency, 16);  // the file's own pair
  EXPECT_EQ(c.apps[0].worker_class, "gthread");
  EXPECT_EQ(o.describe("a"), nlohmann::json::object());
}

TEST(RuntimeOverrides, SettingBackTheFileValueForgetsIt) {
  RuntimeOverrides o;
  const conf::App file = wsgi("a", 2, 1, "sync");
  o.record(file, wsgi("a", 4, 1, "sync"));   // scale 2 -> 4
  o.record(wsgi("a", 4, 1, "sync"), wsgi("a", 6, 1, "sync"));  // then 6: the file's value is still 2
  conf::Config c = config({file});
  o.apply_to(c);
  EXPECT_EQ(c.apps[0].workers, 6);
  o.record(wsgi("a", 6, 1, "sync"), file);  // back to 2
  EXPECT_EQ(o.describe("a"), nlohmann::json::object());
}

TEST(RuntimeOverrides, RemovedOrChangedKindDropsThem) {
  RuntimeOverrides o;
  o.record(wsgi("a", 1, 1, "sync"), wsgi("a", 2, 8, "gthread"));
  conf::Config none = config({});
  auto notes = o.apply_to(none);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("no longer in the file"), std::string::npos);
  EXPECT_EQ(o.describe("a"), nlohmann::json::object());

  o.record(wsgi("a", 1, 1, "sync"), wsgi("a", 2, 8, "gthread"));
  conf::App http = wsgi("a", 1, 1, "");
  http.kind = conf::AppKind::Http;
  conf::Config c = config({http});
  notes = o.apply_to(c);
  EXPECT_EQ(c.apps[0].workers, 2);
  EXPECT_EQ(c.apps[0].concurrency, 8);
  EXPECT_EQ(c.apps[0].worker_class, "");
  EXPECT_NE(notes.at(0).find("no longer a wsgi app"), std::string::npos);
}

}  // namespace
}  // namespace corral::supervisor
