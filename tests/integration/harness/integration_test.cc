#include "tests/integration/harness/integration_test.h"

#include <cstdlib>
#include <thread>

namespace corral::itest {

void IntegrationTest::start() {
  std::string cfg = rt_.write_file("corral.toml", config_.render());
  ASSERT_FALSE(cfg.empty());
  corral_ = std::make_unique<CorralProcess>(rt_, cfg);
  if (!supervisor_binary_.empty()) corral_->set_binary(supervisor_binary_);
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

ProcessResult IntegrationTest::ctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv = {bin_path("corralctl"), "--socket", rt_.runtime_dir() + "/control.sock"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, timeout);
}

ProcessResult IntegrationTest::reload_config() {
  rt_.write_file("corral.toml", config_.render());
  return ctl({"reload"});
}

pid_t IntegrationTest::proxy_pid() {
  nlohmann::json st = corral_->status();
  if (!st.is_object() || !st.contains("proxy") || !st["proxy"].is_object()) return 0;
  return st["proxy"].value("pid", 0);
}

int IntegrationTest::admin_port() {
  nlohmann::json st = corral_->status();
  if (!st.is_object() || !st.contains("admin") || !st["admin"].is_object()) return 0;
  const std::string bound = st["admin"].value("bound", "");
  const size_t colon = bound.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(bound.c_str() + colon + 1);
}

void IntegrationTest::make_cert(const std::string& name, const std::string& cn) {
  const std::string alt = cn == "localhost" ? "DNS:localhost" : "DNS:" + cn + ",DNS:localhost";
  ProcessResult r = run_process({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                 "-nodes", "-days", "2", "-subj", "/CN=" + cn, "-addext", "subjectAltName=" + alt,
                                 "-keyout", rt_.path() + "/" + name + ".key", "-out", rt_.path() + "/" + name + ".pem"},
                                std::chrono::seconds(20));
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

void IntegrationTest::add_tls_listener() {
  ASSERT_NO_FATAL_FAILURE(make_cert());
  config_.raw("\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls = { cert = \"t.pem\", key = \"t.key\" }\n");
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
