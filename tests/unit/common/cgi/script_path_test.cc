// Mapping request paths onto CGI scripts: percent-decoding, mounts, and root mode that never
// escapes its folder (dot segments, encoded ones, symlinks out, non-executables).
#include "common/cgi/script_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace corral::cgi {
namespace {

TEST(ScriptPath, SplitTarget) {
  EXPECT_EQ(split_target("/a/b?x=1&y").path, "/a/b");
  EXPECT_EQ(split_target("/a/b?x=1&y").query, "x=1&y");
  EXPECT_EQ(split_target("/a").query, "");
  EXPECT_EQ(split_target("/a?").query, "");
}

TEST(ScriptPath, PercentDecode) {
  std::string out;
  EXPECT_TRUE(percent_decode("/a%20b%2Fc", out));
  EXPECT_EQ(out, "/a b/c");
  for (const char* bad : {"%", "%2", "%zz", "a%0", "%00"}) {
    out.clear();
    EXPECT_FALSE(percent_decode(bad, out)) << bad;
  }
}

TEST(ScriptPath, MatchMountIsSegmentWise) {
  std::vector<std::string> mounts = {"/", "/cgi-bin", "/cgi-bin/admin/"};
  EXPECT_EQ(match_mount("/cgi-bin/x", mounts), "/cgi-bin");
  EXPECT_EQ(match_mount("/cgi-bin", mounts), "/cgi-bin");
  EXPECT_EQ(match_mount("/cgi-binx", mounts), "");
  EXPECT_EQ(match_mount("/cgi-bin/admin/y", mounts), "/cgi-bin/admin");
  EXPECT_EQ(match_mount("/other", mounts), "");
}

TEST(ScriptPath, UnsafeSegments) {
  for (const char* bad : {"/../etc/passwd", "/a/../b", "/%2e%2e/x", "/%2E%2e/x", "/.%2e/x", "/a/./b", "/a%2fb",
                          "/a%2F..%2Fb", "/a//b", "/a%00b", "/%2e"})
    EXPECT_TRUE(has_unsafe_segment(bad)) << bad;
  for (const char* ok : {"/a/b", "/a/b/", "/a.b/c..d", "/%41"}) EXPECT_FALSE(has_unsafe_segment(ok)) << ok;
}

class RootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-cgiroot-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ + "/root";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/sub").c_str(), 0755), 0);
    write(root_ + "/run.sh", 0755);
    write(root_ + "/sub/deep.sh", 0755);
    write(root_ + "/data.txt", 0644);
    write(root_ + "/.hidden", 0755);
    write(base_ + "/outside.sh", 0755);
    ASSERT_EQ(::symlink((base_ + "/outside.sh").c_str(), (root_ + "/escape.sh").c_str()), 0);
    ASSERT_EQ(::symlink((root_ + "/run.sh").c_str(), (root_ + "/alias.sh").c_str()), 0);
    ASSERT_EQ(::symlink("/etc", (root_ + "/etc").c_str()), 0);
  }
  void TearDown() override { std::system(("rm -rf " + base_).c_str()); }
  static void write(const std::string& p, mode_t mode) {
    std::ofstream(p) << "#!/bin/sh\n";
    ::chmod(p.c_str(), mode);
  }
  std::string base_, root_;
};

TEST_F(RootTest, FirstFileIsTheScriptAndTheRestIsPathInfo) {
  auto r = resolve_in_root(root_, "/cgi-bin", "/run.sh/extra/x%20y", true);
  ASSERT_TRUE(r.script);
  EXPECT_EQ(r.script->filename, root_ + "/run.sh");
  EXPECT_EQ(r.script->script_name, "/cgi-bin/run.sh");
  EXPECT_EQ(r.script->path_info, "/extra/x y");

  r = resolve_in_root(root_, "", "/sub/deep.sh", true);
  ASSERT_TRUE(r.script);
  EXPECT_EQ(r.script->script_name, "/sub/deep.sh");
  EXPECT_EQ(r.script->path_info, "");
}

TEST_F(RootTest, SymlinkInsideRootIsFollowed) {
  auto r = resolve_in_root(root_, "", "/alias.sh", true);
  ASSERT_TRUE(r.script);
  EXPECT_EQ(r.script->filename, root_ + "/run.sh");
}

TEST_F(RootTest, NothingOutsideRootOrNotRunnable) {
  for (const char* bad : {"/../outside.sh", "/%2e%2e/outside.sh", "/sub/..%2f..%2foutside.sh", "/escape.sh",
                          "/etc/passwd", "/data.txt", "/.hidden", "/sub", "/sub/", "/", "", "/missing.sh",
                          "/run.sh%00.txt", "//run.sh"}) {
    auto r = resolve_in_root(root_, "/cgi-bin", bad, true);
    EXPECT_FALSE(r.script) << bad << " → " << (r.script ? r.script->filename : "");
  }
  // Without the executable requirement (FastCGI scripts), a plain file is a script.
  EXPECT_TRUE(resolve_in_root(root_, "", "/data.txt", false).script);
}

TEST_F(RootTest, AFolderPathRunsItsIndex) {
  write(root_ + "/index.php", 0644);
  write(root_ + "/sub/index.php", 0644);
  ASSERT_EQ(::mkdir((root_ + "/sub/dir.php").c_str(), 0755), 0);
  auto r = resolve_in_root(root_, "/php", "/", false, "index.php");
  ASSERT_TRUE(r.script);
  EXPECT_EQ(r.script->filename, root_ + "/index.php");
  EXPECT_EQ(r.script->script_name, "/php/index.php");
  EXPECT_EQ(r.script->path_info, "");
  r = resolve_in_root(root_, "/php", "/sub/", false, "index.php");
  ASSERT_TRUE(r.script);
  EXPECT_EQ(r.script->filename, root_ + "/sub/index.php");
  EXPECT_EQ(r.script->script_name, "/php/sub/index.php");
  EXPECT_EQ(r.script->path_info, "");
  // A folder named without its '/', or without an index: no script, and the log says why.
  r = resolve_in_root(root_, "/php", "/sub", false, "index.php");
  EXPECT_FALSE(r.script);
  EXPECT_EQ(r.miss, Miss::Folder);
  r = resolve_in_root(root_, "/php", "/sub/", false, "");
  EXPECT_FALSE(r.script);
  EXPECT_EQ(r.miss, Miss::Folder);
  r = resolve_in_root(root_, "/php", "/sub/", false, "default.php");
  EXPECT_FALSE(r.script);
  EXPECT_EQ(r.miss, Miss::NotFound);
  EXPECT_EQ(r.path, root_ + "/sub/default.php");
  r = resolve_in_root(root_, "/php", "/sub/", false, "dir.php");  // an index that is a folder
  EXPECT_FALSE(r.script);
  EXPECT_EQ(r.miss, Miss::Folder);
  // CGI: the index must be executable like any script.
  r = resolve_in_root(root_, "/cgi-bin", "/", true, "index.php");
  EXPECT_FALSE(r.script);
  EXPECT_EQ(r.miss, Miss::NotExecutable);
  r = resolve_in_root(root_, "/cgi-bin", "/", true, "run.sh");
  ASSERT_TRUE(r.script);
  EXPECT_EQ(r.script->script_name, "/cgi-bin/run.sh");
}

TEST_F(RootTest, AMissSaysWhyAndAboutWhichFile) {
  struct Case {
    const char* rest;
    Miss miss;
    std::string path;
    const char* text;  // in describe_miss()
    bool server_side;
  };
  ASSERT_EQ(::mkfifo((root_ + "/pipe.sh").c_str(), 0755), 0);
  const Case cases[] = {
      {"/data.txt", Miss::NotExecutable, root_ + "/data.txt", "is not executable (mode 0644)", true},
      {"/escape.sh", Miss::OutsideRoot, root_ + "/escape.sh", "outside root", true},
      {"/pipe.sh", Miss::NotRegular, root_ + "/pipe.sh", "not a regular file (a FIFO)", true},
      {"/missing.sh", Miss::NotFound, root_ + "/missing.sh", "no script at", false},
      {"/run.sh%00x", Miss::Unsafe, "", "refused path", false},
      {"/../outside.sh", Miss::Unsafe, "", "refused path", false},
      {"/.hidden", Miss::Unsafe, "", "refused path", false},
      {"/sub", Miss::Folder, root_ + "/sub", "is a folder", false},
      {"/sub/", Miss::Folder, root_ + "/sub", "is a folder", false},
  };
  for (const Case& c : cases) {
    auto r = resolve_in_root(root_, "/cgi-bin", c.rest, true);
    ASSERT_FALSE(r.script) << c.rest;
    EXPECT_EQ(r.miss, c.miss) << c.rest;
    EXPECT_EQ(r.path, c.path) << c.rest;
    std::string text = describe_miss(r, std::string("/cgi-bin") + c.rest);
    EXPECT_NE(text.find(c.text), std::string::npos) << c.rest << ": " << text;
    if (!c.path.empty()) {
      EXPECT_NE(text.find(c.path), std::string::npos) << c.rest << ": " << text;
    }
    EXPECT_EQ(miss_is_server_side(r.miss), c.server_side) << c.rest;
  }
}

TEST(ScriptPath, FixedScript) {
  auto s = fixed_script("/opt/prog", "/app", "/a%2Fb");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->script_name, "/app");
  EXPECT_EQ(s->path_info, "/a/b");
  EXPECT_FALSE(fixed_script("/opt/prog", "", "/%zz"));
}

}  // namespace
}  // namespace corral::cgi
