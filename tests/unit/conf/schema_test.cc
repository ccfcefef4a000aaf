#include "conf/schema.h"

#include <gtest/gtest.h>

#include <set>

#include "conf/loader.h"

namespace corral::conf {
namespace {

TEST(Schema, RowsAreCompleteAndUnique) {
  std::set<std::pair<Section, std::string_view>> seen;
  for (auto& k : schema()) {
    EXPECT_FALSE(k.name.empty());
    EXPECT_FALSE(k.doc.empty()) << k.name;
    EXPECT_FALSE(k.example.empty()) << k.name;
    EXPECT_NE(k.apply, nullptr) << k.name;
    EXPECT_TRUE(seen.emplace(k.section, k.name).second) << "duplicate " << k.name;
    if (k.required) {
      EXPECT_TRUE(k.default_value.empty()) << k.name;
    }
    EXPECT_EQ(find_key(k.section, k.name), &k);
  }
  EXPECT_EQ(find_key(Section::App, "wokers"), nullptr);
  EXPECT_EQ(find_key(Section::Proxy, "workers"), nullptr);
}

TEST(Schema, KeyNamesPerSection) {
  auto names = key_names(Section::Route);
  EXPECT_EQ(names, (std::vector<std::string_view>{"host", "path", "app", "static", "index", "cache_control", "fallback",
                                                  "follow_symlinks", "compress", "compress_min_size", "compress_types",
                                                  "gzip_level", "brotli_level"}));
}

bool static_key(std::string_view name) {
  return name == "index" || name == "cache_control" || name == "fallback" || name == "follow_symlinks";
}

// The documented default of every key, written into a config, must give the struct default:
// the docs generated from the schema never lie.
TEST(Schema, DocumentedDefaultsMatchStructDefaults) {
  for (auto& k : schema()) {
    if (k.default_value.empty()) continue;
    std::string line = std::string(k.name) + " = " + std::string(k.default_value) + "\n";
    std::string text;
    switch (k.section) {
      case Section::Supervisor: text = "[supervisor]\n" + line; break;
      case Section::Proxy: text = "[proxy]\n" + line; break;
      case Section::Listener: text = "[[listener]]\naddress = \"127.0.0.1:1\"\n" + line; break;
      case Section::Route:
        // The static keys belong to a static route (static = "/": a folder that exists).
        text = std::string("[[route]]\n") + (static_key(k.name) ? "static = \"/\"\n" : "app = \"a\"\n") + line;
        break;
      case Section::App: text = "[app.a]\ncommand = [\"/x\"]\n" + line; break;
    }
    if (k.section != Section::Listener) text += "[[listener]]\naddress = \"127.0.0.1:1\"\n";
    if (k.section != Section::App) text += "[app.a]\ncommand = [\"/x\"]\n";
    auto c = load_string(text, "/d.toml");
    ASSERT_TRUE(c.has_value()) << k.name << ": " << c.error().to_string();
    switch (k.section) {
      case Section::Supervisor: EXPECT_EQ(c->supervisor, SupervisorSettings{}) << k.name; break;
      case Section::Proxy: EXPECT_EQ(c->proxy, ProxySettings{}) << k.name; break;
      case Section::Listener: break;
      case Section::Route: {
        Route expected;
        if (static_key(k.name)) expected.static_root = "/";
        else expected.app = "a";
        EXPECT_EQ(c->routes.at(0), expected) << k.name;
        break;
      }
      case Section::App: {
        App expected;
        expected.name = "a";
        expected.command = {"/x"};
        expected.cwd = "/";
        EXPECT_EQ(c->apps.at(0), expected) << k.name;
        break;
      }
    }
  }
}

TEST(Schema, ReferenceListsEveryKeyAndIsAValidConfig) {
  std::string ref = reference_toml();
  for (auto& k : schema()) EXPECT_NE(ref.find(std::string(k.name) + " = "), std::string::npos) << k.name;
  EXPECT_NE(ref.find("[supervisor]\n# "), std::string::npos);
  EXPECT_NE(ref.find("max_body_size = \"16MiB\"\n"), std::string::npos);
  EXPECT_NE(ref.find("# cwd = \"/opt/shop\"\n"), std::string::npos);
  // With NAME filled in and the route pointed at it, the reference itself loads.
  std::string text = ref;
  text.replace(text.find("\n[app.NAME]\n"), 12, "\n[app.shop]\n");
  text.replace(text.find("\n# app = \"shop\"\n"), 16, "\napp = \"shop\"\n");  // app or static: the reference shows both as options
  auto c = load_string(text, "/ref.toml");
  ASSERT_TRUE(c.has_value()) << c.error().to_string() << "\n" << text;
  EXPECT_EQ(c->apps.at(0).name, "shop");
}

TEST(Schema, AppNames) {
  EXPECT_TRUE(is_valid_app_name("shop"));
  EXPECT_TRUE(is_valid_app_name("Shop_2-api"));
  EXPECT_FALSE(is_valid_app_name(""));
  EXPECT_FALSE(is_valid_app_name("my app"));
  EXPECT_FALSE(is_valid_app_name("a.b"));
  EXPECT_FALSE(is_valid_app_name("ü"));
}

TEST(Schema, SectionNames) {
  EXPECT_EQ(section_name(Section::Supervisor), "supervisor");
  EXPECT_EQ(section_name(Section::Listener), "listener");
  EXPECT_EQ(section_name(Section::App), "app");
}

}  // namespace
}  // namespace corral::conf
