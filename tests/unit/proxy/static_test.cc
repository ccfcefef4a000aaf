// proxy/static/: path mapping and its refusals, mime.types parsing, the request-field
// parsers, and opening below a folder (openat2 and the component walk) with the cache.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "proxy/static/mime_types.h"
#include "proxy/static/open_file.h"
#include "proxy/static/static_path.h"
#include "proxy/static/static_site.h"

namespace corral::proxy::statics {
namespace {

namespace fs = std::filesystem;

std::string mapped(std::string_view target, std::string_view prefix = "/static") {
  StaticPath p;
  if (!map_static_path(target, prefix, p)) return "REFUSED";
  return p.rel + (p.slash ? "|/" : "");
}

TEST(StaticPathTest, StripsThePrefixLikeAlias) {
  EXPECT_EQ(mapped("/static/css/a.css"), "css/a.css");
  EXPECT_EQ(mapped("/static/css/a.css?v=3"), "css/a.css");
  EXPECT_EQ(mapped("/static/"), "|/");
  EXPECT_EQ(mapped("/static"), "");
  EXPECT_EQ(mapped("/static/sub/"), "sub|/");
  EXPECT_EQ(mapped("/static/a//b"), "a/b");
  EXPECT_EQ(mapped("/x/y.txt", "/"), "x/y.txt");
  EXPECT_EQ(mapped("/static/x", "/static/"), "x");
  EXPECT_EQ(mapped("http://h/static/a.css"), "a.css");
  EXPECT_EQ(mapped("/static/a%20b.txt"), "a b.txt");
  EXPECT_EQ(mapped("/static/caf%C3%A9"), "caf\xC3\xA9");
  EXPECT_EQ(mapped("/static/.well-known/x"), ".well-known/x");
  EXPECT_EQ(mapped("/static/a.b.c"), "a.b.c");
  EXPECT_EQ(mapped("/static/100%25.txt"), "100%.txt");
}

TEST(StaticPathTest, RefusesEveryWayOut) {
  // Each of these must be refused (the caller answers 404).
  const char* hostile[] = {
      "/static/../etc/passwd",
      "/static/a/../../etc/passwd",
      "/static/..",
      "/static/.",
      "/static/./a.css",
      "/static/%2e%2e/etc/passwd",
      "/static/%2E%2E/etc/passwd",
      "/static/.%2e/x",
      "/static/%2e./x",
      "/static/%2e",
      "/static/a%2f..%2f..%2fetc%2fpasswd",
      "/static/..%2fetc",
      "/static/%2F",
      "/static/..%5c..%5cetc",
      "/static/a%5cb",
      "/static/a\\b",
      "/static/..\\..\\etc",
      "/static/a%00.css",
      "/static/a%00",
      "/static/%252e%252e/etc",
      "/static/%252E%252E/x",
      "/static/%252f",
      "/static/%255c",
      "/static/%2500",
      "/static/%25252e",
      "/static/%",
      "/static/%2",
      "/static/%zz",
      "/static/%0a",
      "/static/a%0d%0ab",
      "/static/\x01",
      "/static/%7f",
      "/static/.git/config",
      "/static/.env",
      "/static/sub/.htpasswd",
      "*",
      "",
      "/other/a.css",
  };
  for (const char* t : hostile) EXPECT_EQ(mapped(t), "REFUSED") << t;
  EXPECT_EQ(mapped("/static/" + std::string(5000, 'a')), "REFUSED");
}

TEST(MimeTypesTest, ParsesDebianFormat) {
  auto m = MimeTypes::parse(
      "# comment\n"
      "text/html\t\t\t\thtml htm shtml\n"
      "text/css css\n"
      "application/json json # trailing comment\n"
      "image/png png\n"
      "application/x-nothing\n"
      "bogus-line-without-slash abc\n");
  EXPECT_EQ(m.content_type("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(m.content_type("a/b/INDEX.HTM"), "text/html; charset=utf-8");
  EXPECT_EQ(m.content_type("x.css"), "text/css; charset=utf-8");
  EXPECT_EQ(m.content_type("x.json"), "application/json");
  EXPECT_EQ(m.content_type("x.PNG"), "image/png");
  EXPECT_EQ(m.content_type("x.abc"), "application/octet-stream");
  EXPECT_EQ(m.content_type("noext"), "application/octet-stream");
  EXPECT_EQ(m.content_type("dir.d/noext"), "application/octet-stream");
  EXPECT_EQ(m.content_type("x."), "application/octet-stream");
}

TEST(MimeTypesTest, SystemFileAndBuiltin) {
  auto b = MimeTypes::builtin();
  EXPECT_EQ(b.content_type("a.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(b.content_type("a.woff2"), "font/woff2");
  EXPECT_EQ(b.content_type("a.svg"), "image/svg+xml");
  auto missing = MimeTypes::load("/nonexistent/mime.types");
  EXPECT_EQ(missing->content_type("a.css"), "text/css; charset=utf-8");
  if (fs::exists("/etc/mime.types")) {
    auto sys = MimeTypes::load();
    EXPECT_GT(sys->size(), 500u);
    EXPECT_EQ(sys->content_type("a.html"), "text/html; charset=utf-8");
    EXPECT_EQ(sys->content_type("a.png"), "image/png");
  }
}

TEST(StaticHeadersTest, AcceptEncodingQValues) {
  // Static routes read Accept-Encoding with the compressor's parser.
  auto ae = [](std::string_view v) {
    compress::AcceptEncoding a;
    a.add(v);
    return a;
  };
  EXPECT_EQ(ae("gzip, deflate, br").q(compress::Coding::Br), 1000);
  EXPECT_EQ(ae("gzip;q=0.5, br;q=0.8").q(compress::Coding::Gzip), 500);
  EXPECT_EQ(ae("gzip;q=0.5, br;q=0").q(compress::Coding::Br), 0);
  EXPECT_EQ(ae("gzip").br, -1);
  EXPECT_EQ(ae("*;q=0.3").q(compress::Coding::Br), 300);
  EXPECT_EQ(ae("*;q=0.3, br;q=0.9").q(compress::Coding::Br), 900);
  EXPECT_EQ(ae("GZIP ; Q=1.0").q(compress::Coding::Gzip), 1000);
  EXPECT_EQ(ae("identity").gzip, -1);
  // The sibling: br wins a tie, a q=0 coding is never sent, none accepted means the file.
  const compress::Coding both[] = {compress::Coding::Br, compress::Coding::Gzip};
  EXPECT_EQ(compress::choose_coding(ae("gzip, br"), both), compress::Coding::Br);
  EXPECT_EQ(compress::choose_coding(ae("gzip, br;q=0"), both), compress::Coding::Gzip);
  EXPECT_EQ(compress::choose_coding(ae("gzip;q=0.5, br;q=0.4"), both), compress::Coding::Gzip);
  EXPECT_EQ(compress::choose_coding(ae("deflate"), both), compress::Coding::Identity);
}

TEST(StaticHeadersTest, Ranges) {
  uint64_t f = 0, l = 0;
  EXPECT_EQ(parse_range("bytes=0-99", 1000, f, l), 1);
  EXPECT_EQ(f, 0u);
  EXPECT_EQ(l, 99u);
  EXPECT_EQ(parse_range("bytes=990-", 1000, f, l), 1);
  EXPECT_EQ(l, 999u);
  EXPECT_EQ(parse_range("bytes=-10", 1000, f, l), 1);
  EXPECT_EQ(f, 990u);
  EXPECT_EQ(parse_range("bytes=-5000", 1000, f, l), 1);
  EXPECT_EQ(f, 0u);
  EXPECT_EQ(parse_range("bytes=500-5000", 1000, f, l), 1);
  EXPECT_EQ(l, 999u);
  EXPECT_EQ(parse_range("bytes=1000-", 1000, f, l), -1);
  EXPECT_EQ(parse_range("bytes=-0", 1000, f, l), -1);
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 1000, f, l), 0);
  EXPECT_EQ(parse_range("items=0-1", 1000, f, l), 0);
  EXPECT_EQ(parse_range("bytes=5-1", 1000, f, l), 0);
  EXPECT_EQ(parse_range("bytes=a-b", 1000, f, l), 0);
  EXPECT_EQ(parse_range("bytes=99999999999999999999-", 1000, f, l), 0);
}

TEST(StaticHeadersTest, DatesAndEtags) {
  int64_t t = 0;
  EXPECT_TRUE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", t));
  EXPECT_EQ(t, 784111777);
  EXPECT_FALSE(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", t));
  EXPECT_FALSE(parse_http_date("garbage", t));
  EXPECT_TRUE(etag_matches("\"a-1\"", "\"a-1\""));
  EXPECT_TRUE(etag_matches("\"x\", W/\"a-1\"", "\"a-1\""));
  EXPECT_TRUE(etag_matches("*", "\"a-1\""));
  EXPECT_FALSE(etag_matches("\"a-2\"", "\"a-1\""));
}

class OpenBeneathTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    force_component_walk(GetParam());
    char tmpl[] = "/tmp/corral-static-XXXXXX";
    base_ = ::mkdtemp(tmpl);
    fs::create_directories(base_ + "/root/sub");
    write(base_ + "/root/a.txt", "inside");
    write(base_ + "/root/sub/b.txt", "sub");
    write(base_ + "/secret.txt", "SECRET");
    ASSERT_EQ(::mkfifo((base_ + "/root/fifo").c_str(), 0600), 0);
    ASSERT_EQ(::mkfifo((base_ + "/outside-fifo").c_str(), 0600), 0);
    fs::create_symlink("a.txt", base_ + "/root/link-inside");
    fs::create_symlink("../a.txt", base_ + "/root/sub/link-up-inside");
    fs::create_symlink("../secret.txt", base_ + "/root/link-out");
    fs::create_symlink(base_ + "/root/a.txt", base_ + "/root/link-absolute");
    fs::create_symlink("../outside-fifo", base_ + "/root/link-fifo");
    fs::create_symlink("/proc/self/root/etc/passwd", base_ + "/root/link-magic");
    fs::create_symlink("..", base_ + "/root/link-dir-up");
    fs::create_symlink("sub", base_ + "/root/link-dir");
    root_ = ::open((base_ + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_, 0);
  }
  void TearDown() override {
    force_component_walk(false);
    ::close(root_);
    fs::remove_all(base_);
  }
  static void write(const std::string& p, const std::string& s) { std::ofstream(p) << s; }
  FileKind open(const std::string& rel, bool no_symlinks, std::string* content = nullptr) {
    OpenFile f;
    FileKind k = open_beneath(root_, rel, no_symlinks, f);
    if (k == FileKind::File && content) {
      content->resize(f.size);
      EXPECT_EQ(::pread(f.fd.get(), content->data(), f.size, 0), static_cast<ssize_t>(f.size));
    }
    return k;
  }
  std::string base_;
  int root_ = -1;
};

TEST_P(OpenBeneathTest, OpensOnlyRegularFilesInside) {
  std::string c;
  EXPECT_EQ(open("a.txt", false, &c), FileKind::File);
  EXPECT_EQ(c, "inside");
  EXPECT_EQ(open("sub/b.txt", false), FileKind::File);
  EXPECT_EQ(open("", false), FileKind::Directory);
  EXPECT_EQ(open("sub", false), FileKind::Directory);
  EXPECT_EQ(open("missing", false), FileKind::NotFound);
  // Special files: never opened for reading (a FIFO would block an open without O_NONBLOCK).
  EXPECT_EQ(open("fifo", false), FileKind::NotFound);
  // Ways out, whatever the symlink mode.
  for (bool off : {false, true}) {
    EXPECT_EQ(open("link-out", off), FileKind::NotFound);
    EXPECT_EQ(open("link-fifo", off), FileKind::NotFound);
    EXPECT_EQ(open("link-magic", off), FileKind::NotFound);
    EXPECT_EQ(open("link-absolute", off), FileKind::NotFound);
    EXPECT_EQ(open("link-dir-up/secret.txt", off), FileKind::NotFound);
    EXPECT_EQ(open("../secret.txt", off), FileKind::NotFound);
  }
  // Symlinks that stay inside: followed unless off (the walk refuses every symlink).
  const bool walk = GetParam();
  EXPECT_EQ(open("link-inside", false, &c), walk ? FileKind::NotFound : FileKind::File);
  if (!walk) {
    EXPECT_EQ(c, "inside");
  }
  EXPECT_EQ(open("sub/link-up-inside", false), walk ? FileKind::NotFound : FileKind::File);
  EXPECT_EQ(open("link-dir/b.txt", false), walk ? FileKind::NotFound : FileKind::File);
  EXPECT_EQ(open("link-inside", true), FileKind::NotFound);
  EXPECT_EQ(open("link-dir/b.txt", true), FileKind::NotFound);
}

TEST_P(OpenBeneathTest, CacheSeesReplacedAndRewrittenFiles) {
  FileCache cache;
  auto t0 = std::chrono::steady_clock::now();
  const auto& e1 = cache.get("one", root_, false, "a.txt", t0);
  ASSERT_EQ(e1.kind, FileKind::File);
  auto first = e1.file;
  EXPECT_EQ(first->size, 6u);
  EXPECT_FALSE(e1.br);
  // Within a second: the same entry.
  write(base_ + "/root/a.txt.tmp", "replaced!");
  fs::rename(base_ + "/root/a.txt.tmp", base_ + "/root/a.txt");
  EXPECT_EQ(cache.get("one", root_, false, "a.txt", t0 + std::chrono::milliseconds(500)).file, first);
  // Later: looked up again, the new file.
  auto t1 = t0 + std::chrono::milliseconds(1500);
  auto second = cache.get("one", root_, false, "a.txt", t1).file;
  ASSERT_TRUE(second);
  EXPECT_EQ(second->size, 9u);
  EXPECT_NE(second->ino, first->ino);
  EXPECT_NE(second->etag, first->etag);
  // The old file stays readable for a response still sending it.
  char buf[6];
  EXPECT_EQ(::pread(first->fd.get(), buf, 6, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "inside");
  // Rewritten in place (same inode), with a sibling appearing.
  write(base_ + "/root/a.txt", "rewritten in place");
  write(base_ + "/root/a.txt.gz", "gz");
  auto t2 = t1 + std::chrono::milliseconds(1500);
  const auto& e3 = cache.get("one", root_, false, "a.txt", t2);
  EXPECT_EQ(e3.file->size, 18u);
  EXPECT_TRUE(e3.gz);
  EXPECT_FALSE(e3.br);
  // Another site: another entry.
  EXPECT_EQ(cache.get("two", root_, false, "missing", t2).kind, FileKind::NotFound);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(FileCacheTest, Bounded) {
  FileCache cache;
  auto t = std::chrono::steady_clock::now();
  for (size_t i = 0; i < FileCache::kMaxEntries + 50; ++i) cache.get("seven", -1, false, "f" + std::to_string(i), t);
  EXPECT_EQ(cache.size(), FileCache::kMaxEntries);
}

TEST_P(OpenBeneathTest, CacheClosesEntriesNotAskedForDuringTheInactivePeriod) {
  FileCache cache(std::chrono::milliseconds(5000));
  auto t0 = std::chrono::steady_clock::now();
  const auto& e = cache.get("one", root_, false, "a.txt", t0);
  ASSERT_EQ(e.kind, FileKind::File);
  std::weak_ptr<const OpenFile> held = e.file;
  const int fd = e.file->fd.get();
  ASSERT_GE(::fcntl(fd, F_GETFD), 0);
  // The file is deleted (a hashed asset name replaced by a new one): nobody asks for it again.
  fs::remove(base_ + "/root/a.txt");
  // Asked for within the period: kept (and looked up again, since older than kValid).
  cache.get("one", root_, false, "sub/b.txt", t0 + std::chrono::milliseconds(4000));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(held.expired());
  // Past the period: gone and closed, the deleted file's space freed; the entry used since stays.
  cache.expire(t0 + std::chrono::milliseconds(5000));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(held.expired());
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
  // get() expires too: the other entry goes when another path is asked for later.
  cache.get("two", root_, false, "missing", t0 + std::chrono::milliseconds(9000));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.get("two", root_, false, "missing", t0 + std::chrono::milliseconds(9000)).kind, FileKind::NotFound);
}

TEST(FileCacheTest, SameFilesSameKeyAcrossSnapshots) {
  // Two snapshots' sites for the same folder share entries; another folder, or the other
  // symlink setting, does not.
  char tmpl[] = "/tmp/corral-static-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string base = tmpl;
  fs::create_directories(base + "/a");
  fs::create_directories(base + "/b");
  auto mime = MimeTypes::load();
  conf::Route r;
  r.path = "/";
  r.static_root = base + "/a";
  StaticSite first(r, mime), second(r, mime);
  EXPECT_EQ(first.cache_key(), second.cache_key());
  r.follow_symlinks = conf::FollowSymlinks::Off;
  EXPECT_NE(StaticSite(r, mime).cache_key(), first.cache_key());
  r.follow_symlinks = conf::FollowSymlinks::Inside;
  r.static_root = base + "/b";
  EXPECT_NE(StaticSite(r, mime).cache_key(), first.cache_key());
  // The folder replaced under the same path (a deploy that swaps folders): another key.
  fs::rename(base + "/a", base + "/old");
  fs::rename(base + "/b", base + "/a");
  r.static_root = base + "/a";
  EXPECT_NE(StaticSite(r, mime).cache_key(), first.cache_key());
  fs::remove_all(base);
}

INSTANTIATE_TEST_SUITE_P(Modes, OpenBeneathTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "ComponentWalk" : "Openat2"; });

}  // namespace
}  // namespace corral::proxy::statics
