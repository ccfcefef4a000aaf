#include "tests/integration/harness/integration_test.h"

#include <thread>

namespace corral::itest {

void IntegrationTest::start() {
  std::string cfg = rt_.write_file("corral.toml", config_.render());
  ASSERT_FALSE(cfg.empty());
  corral_ = std::make_unique<CorralProcess>(rt_, cfg);
  std::string error;
  ASSERT_TRUE(corral_->start(std::chrono::seconds(15), &error)) << error;
  nlohmann::json st = corral_->status(&error);
  ASSERT_TRUE(st.is_object()) << error;
  port_ = corral_->port(0);
  ASSERT_GT(port_, 0) << "no bound port in status: " << st.dump();
}

void IntegrationTest::stop_and_expect_clean(std::chrono::milliseconds timeout) {
  if (!corral_ || stopped_) return;
  stopped_ = true;
  if (!corral_->running()) {
    ADD_FAILURE() << "corral-supervisor was no longer running before stop";
  } else {
    std::optional<int> code = corral_->stop(timeout);
    EXPECT_TRUE(code.has_value()) << "corral-supervisor did not exit within " << timeout.count() << " ms of SIGTERM";
    if (code) {
      EXPECT_EQ(*code, 0) << "exit status of corral-supervisor after SIGTERM";
    }
  }
  audit_leftovers();
}

void IntegrationTest::audit_leftovers() {
  // Children may take a moment to be reaped after the supervisor exits (PDEATHSIG).
  std::vector<ProcInfo> left;
  for (int i = 0; i < 20; ++i) {
    left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
    if (left.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string list;
  for (auto& p : left) list += "  pid " + std::to_string(p.pid) + " ppid " + std::to_string(p.ppid) + ": " + p.cmdline + "\n";
  ADD_FAILURE() << "processes left after the supervisor exited:\n" << list;
}

bool IntegrationTest::wait_status(const std::function<bool(const nlohmann::json&)>& pred,
                                  std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    nlohmann::json st = corral_->status();
    if (st.is_object() && pred(st)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::vector<std::string> IntegrationTest::log_lines_with(const std::string& needle) const {
  if (!corral_) return {};
  return grep_lines(corral_->log(), needle);
}

std::vector<std::string> IntegrationTest::app_lines_with(const std::string& needle) const {
  std::vector<std::string> out;
  for (auto& l : log_lines_with(needle))
    if (l.find("testapp pid=") != std::string::npos) out.push_back(l);
  return out;
}

void IntegrationTest::TearDown() {
  if (corral_ && !stopped_) stop_and_expect_clean();
  if (corral_) {
    std::vector<std::string> errors = error_lines(corral_->log(), allowed_errors_);
    if (!errors.empty()) {
      std::string all;
      for (auto& e : errors) all += "  " + e + "\n";
      ADD_FAILURE() << "error lines in the log not on the allow-list:\n" << all;
    }
  }
  if (HasFailure()) {
    rt_.keep();
    if (corral_)
      std::fprintf(stderr, "----- last 200 lines of %s -----\n%s\n-----\n", corral_->log_path().c_str(),
                   tail_lines(corral_->log(), 200).c_str());
    std::fprintf(stderr, "----- config -----\n%s-----\n", read_file(rt_.file("corral.toml")).c_str());
  }
  if (corral_) corral_->kill_all();
}

}  // namespace corral::itest
