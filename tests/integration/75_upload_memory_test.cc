// Memory per upload is bounded whatever max_body_size is: N concurrent uploads of M MiB
// through corral running in a memory-limited cgroup of 256 MiB all
// arrive byte-exact, nothing is OOM-killed, and the proxy's own peak RSS stays far below the
// bodies it carried. The cgroup comes from the best means available: a systemd scope
// (systemd-run --scope -p MemoryMax=256M) when systemd is PID 1, else a cgroup v1 memory group
// (memory.limit_in_bytes), else a cgroup v2 group (memory.max); the test skips, saying why,
// when none can be made. temp_dir is put on a disk-backed folder (tmpfs pages would count
// against the limit). `make test` runs 25 x 50 MiB (about 25 s on 2 cores); `make
// test-uploads` runs the full 100 x 50 MiB (about 90 s on a busy 2-core machine).
// CORRAL_UPLOAD_CLIENTS / CORRAL_UPLOAD_MIB set the load.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr uint64_t kLimit = 256ull << 20;

bool write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "key value" lines (memory.oom_control, memory.events): the value of `key`, or -1.
long long field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  long long v;
  while (in >> k >> v)
    if (k == key) return v;
  return -1;
}

/// A memory-limited cgroup the corral processes are started in.
class MemoryCage {
 public:
  ~MemoryCage() {
    leave();
    if (scope_pid_ > 0) {
      ::kill(scope_pid_, SIGTERM);
      ::waitpid(scope_pid_, nullptr, 0);
    }
    if (!created_.empty()) {
      // Empty once corral has stopped; the kernel may need a moment to let go.
      for (int i = 0; i < 50 && ::rmdir(created_.c_str()) != 0; ++i) std::this_thread::sleep_for(100ms);
    }
  }

  /// Tries systemd, then cgroup v1, then v2. false: `why` says what was missing.
  bool make(std::string& why) {
    const std::string name = "corral-itest-" + std::to_string(::getpid());
    if (read_text("/proc/1/comm") == "systemd\n" && ::access("/usr/bin/systemd-run", X_OK) == 0 && try_systemd(name))
      return true;
    if (::geteuid() != 0) {
      why = "not root, and no systemd to make a scope: cannot make a memory-limited cgroup";
      return false;
    }
    if (fs::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
      std::string dir = "/sys/fs/cgroup/memory/" + name;
      if (::mkdir(dir.c_str(), 0755) == 0) {
        created_ = dir;
        if (write_text(dir + "/memory.limit_in_bytes", std::to_string(kLimit))) {
          // No escape into swap: memsw exists only with swap accounting.
          if (fs::exists(dir + "/memory.memsw.limit_in_bytes"))
            write_text(dir + "/memory.memsw.limit_in_bytes", std::to_string(kLimit));
          write_text(dir + "/memory.swappiness", "0");
          dir_ = dir;
          home_ = "/sys/fs/cgroup/memory";
          how_ = "cgroup v1 memory.limit_in_bytes = 256M";
          v1_ = true;
          return true;
        }
      }
      why = "cgroup v1: cannot create or limit " + dir + ": " + std::strerror(errno);
    }
    if (read_text("/sys/fs/cgroup/cgroup.controllers").find("memory") != std::string::npos) {
      std::string dir = "/sys/fs/cgroup/" + name;
      if (::mkdir(dir.c_str(), 0755) == 0) {
        created_ = dir;
        if (write_text(dir + "/memory.max", std::to_string(kLimit))) {
          write_text(dir + "/memory.swap.max", "0");
          dir_ = dir;
          home_ = "/sys/fs/cgroup";
          how_ = "cgroup v2 memory.max = 256M";
          return true;
        }
      }
      why += (why.empty() ? "" : "; ") + std::string("cgroup v2: cannot create or limit ") + dir + ": " +
             std::strerror(errno);
    }
    if (why.empty()) why = "no systemd scope, no cgroup v1 memory controller, no cgroup v2 memory controller";
    return false;
  }

  /// Moves this process in (its children started from now on are caged) / back out.
  bool enter() { return write_text(dir_ + "/cgroup.procs", std::to_string(::getpid())); }
  void leave() {
    if (!home_.empty()) write_text(home_ + "/cgroup.procs", std::to_string(::getpid()));
  }

  uint64_t peak() const {
    std::string t = read_text(dir_ + (v1_ ? "/memory.max_usage_in_bytes" : "/memory.peak"));
    return t.empty() ? 0 : std::stoull(t);
  }
  long long oom_kills() const {
    return v1_ ? field(read_text(dir_ + "/memory.oom_control"), "oom_kill")
               : field(read_text(dir_ + "/memory.events"), "oom_kill");
  }
  const std::string& how() const { return how_; }

 private:
  bool try_systemd(const std::string& name) {
    // A transient scope holding a placeholder process; this process then joins its cgroup.
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/usr/bin/systemd-run", "systemd-run", "--scope", "--quiet", "-p", "MemoryMax=256M", "-p",
              "MemorySwapMax=0", ("--unit=" + name).c_str(), "/bin/sleep", "3600", nullptr);
      ::_exit(127);
    }
    if (pid < 0) return false;
    scope_pid_ = pid;
    for (int i = 0; i < 50; ++i) {
      for (std::string slice : {"system.slice", "user.slice"}) {
        std::string dir = "/sys/fs/cgroup/" + slice + "/" + name + ".scope";
        if (fs::exists(dir + "/cgroup.procs") && read_text(dir + "/memory.max") == std::to_string(kLimit) + "\n") {
          dir_ = dir;
          home_ = "/sys/fs/cgroup";
          how_ = "systemd-run --scope -p MemoryMax=256M";
          return true;
        }
      }
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::string dir_, home_, created_, how_;
  bool v1_ = false;
  pid_t scope_pid_ = -1;
};

long env_or(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atol(v) : fallback;
}

std::string sha256_file(const std::string& path) {
  ProcessResult r = run_process({"sha256sum", path}, 60s);
  return r.out.substr(0, 64);
}

class UploadMemoryTest : public IntegrationTest {
 protected:
  void TearDown() override {
    IntegrationTest::TearDown();
    if (!scratch_.empty()) fs::remove_all(scratch_);
  }
  std::string scratch_;
};

TEST_F(UploadMemoryTest, ConcurrentLargeUploadsStayWithinTheMemoryLimit) {
  const long clients = env_or("CORRAL_UPLOAD_CLIENTS", 25);
  const long mib = env_or("CORRAL_UPLOAD_MIB", 50);
  MemoryCage cage;
  std::string why;
  if (!cage.make(why)) GTEST_SKIP() << why;

  // Body temp files on a disk: tmpfs pages would be charged to the cgroup like memory.
  std::string temp_dir = rt_.path() + "/bodies";
  struct statfs sf {};
  if (::statfs(rt_.path().c_str(), &sf) == 0 && sf.f_type == TMPFS_MAGIC) {
    char tmpl[] = "/var/tmp/corral-itest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    scratch_ = tmpl;
    temp_dir = scratch_ + "/bodies";
  }
  config_.proxy("max_body_size", quote(std::to_string(mib + 1) + "MiB"));
  config_.proxy("temp_dir", quote(temp_dir));
  config_.app("web").workers(4).concurrency(8).timeout("120s").queue_timeout("300s");
  config_.app("web").env.erase("TESTAPP_LOG");

  // One body file for every client (its page cache is the test's, not corral's).
  std::string body = rt_.file("upload");
  {
    std::ofstream f(body, std::ios::binary);
    std::mt19937_64 rng(42);
    std::vector<uint64_t> block(1 << 17);  // 1 MiB
    for (long i = 0; i < mib; ++i) {
      for (auto& w : block) w = rng();
      f.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(block.size() * 8));
    }
  }
  const std::string expect = sha256_file(body) + " " + std::to_string(static_cast<uint64_t>(mib) << 20) + "\n";

  ASSERT_TRUE(cage.enter()) << "cannot join " << cage.how();
  start();
  cage.leave();  // corral's processes stay in the cage; the test and its curls do not
  if (HasFatalFailure()) return;
  nlohmann::json st = corral_->status();
  const pid_t proxy = st["proxy"].value("pid", 0);
  ASSERT_GT(proxy, 0);

  auto t0 = std::chrono::steady_clock::now();
  std::vector<HttpResponse> rs = parallel(static_cast<int>(clients), [&](int i) {
    return curl({"--data-binary", "@" + body, "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                 "http://127.0.0.1:" + std::to_string(port()) + "/sha256?client=" + std::to_string(i)},
                300s);
  });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int ok = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    if (rs[i].status == 200 && rs[i].body == expect) ++ok;
    else ADD_FAILURE() << "client " << i << ": " << rs[i].status << " " << rs[i].error << rs[i].body.substr(0, 100);
  }
  std::string status = read_text("/proc/" + std::to_string(proxy) + "/status");
  long long hwm_kb = 0;
  if (size_t at = status.find("VmHWM:"); at != std::string::npos) hwm_kb = std::atoll(status.c_str() + at + 6);
  std::printf("[upload-memory] %s: %d/%ld uploads of %ld MiB byte-exact in %.1f s (%.0f MiB/s); cgroup peak %.1f MiB "
              "(limit 256), OOM kills %lld; proxy peak RSS %.1f MiB\n",
              cage.how().c_str(), ok, clients, mib, secs, static_cast<double>(clients * mib) / secs,
              static_cast<double>(cage.peak()) / (1 << 20), cage.oom_kills(), static_cast<double>(hwm_kb) / 1024);
  EXPECT_EQ(ok, clients);
  EXPECT_LE(cage.oom_kills(), 0) << "something in corral was OOM-killed";
  EXPECT_EQ(corral_->status()["proxy"].value("pid", 0), proxy) << "the proxy was restarted";
  // The bodies carried were clients x mib MiB; the proxy held a small fixed part of each.
  EXPECT_LT(hwm_kb, 96 * 1024) << "the proxy's memory grew with the uploads";
  EXPECT_TRUE(fs::is_empty(temp_dir)) << "temp files left in " << temp_dir;
}

}  // namespace
}  // namespace corral::itest
