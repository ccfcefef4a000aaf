#pragma once
// Chromium: a headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands go to its fd 3, answers and events come from its fd 4,
// each message a JSON text ended by a NUL byte), so tests need no WebSocket library. It
// opens one page, records every console error, uncaught exception and browser-reported
// error (network, CSP) of that page, evaluates expressions in it and takes screenshots.
//
// Not thread-safe; owned by one test.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace corral::itest {

class Chromium {
 public:
  /// The browser binary: $CORRAL_CHROMIUM, else chromium or chromium-browser from PATH; ""
  /// when there is none.
  static std::string find_binary();

  Chromium() = default;
  ~Chromium();
  Chromium(const Chromium&) = delete;
  Chromium& operator=(const Chromium&) = delete;

  /// Starts the browser (own process group; profile in `dir`/profile, its output in
  /// `dir`/chromium.log) with a `width` × `height` window. False with `error` on failure.
  [[nodiscard]] bool start(const std::string& dir, int width, int height, std::string* error);
  /// Opens `url` in a new page and waits for its load event. False with `error` on failure.
  [[nodiscard]] bool open(const std::string& url, std::string* error);
  /// Runtime.evaluate in the page (awaits promises); the value, or a null json with
  /// `error` filled when the call or the expression failed.
  nlohmann::json evaluate(const std::string& expression, std::string* error = nullptr);
  /// Evaluates `expression` every 100 ms until it is true; false on timeout.
  bool wait_for(const std::string& expression, std::chrono::milliseconds timeout);
  /// Writes a PNG of the whole page to `path`. False with `error` on failure.
  [[nodiscard]] bool screenshot(const std::string& path, std::string* error);
  /// Console errors, uncaught exceptions and error log entries of the page so far.
  const std::vector<std::string>& errors() const { return errors_; }
  /// Every console message and log entry of the page so far ("level: text").
  const std::vector<std::string>& messages() const { return messages_; }
  /// Closes the browser (Browser.close, then SIGKILL of its group after 3 s).
  void stop();
  /// Accepts any TLS certificate from now on (Security.setIgnoreCertificateErrors), for a
  /// test's self-signed one. False with `error` on failure.
  [[nodiscard]] bool ignore_certificate_errors(std::string* error);

 private:
  /// Sends a command (to the page's session when `page` is true) and waits for its answer,
  /// handling events meanwhile. The "result" object, or null with `error` filled.
  nlohmann::json call(const std::string& method, const nlohmann::json& params, bool page,
                      std::chrono::milliseconds timeout, std::string* error);
  /// Reads one message within `timeout`; false on timeout or EOF (sets eof_).
  bool read_message(std::chrono::milliseconds timeout, nlohmann::json& out);
  void on_event(const nlohmann::json& m);

  pid_t pid_ = -1;
  int to_browser_ = -1;    // our end of its fd 3
  int from_browser_ = -1;  // our end of its fd 4
  bool eof_ = false;
  std::string inbox_;
  uint64_t next_id_ = 0;
  std::string session_;
  bool loaded_ = false;
  std::vector<std::string> errors_;
  std::vector<std::string> messages_;
};

/// Standard base64 decoding (for screenshots); invalid characters are skipped.
std::string base64_decode(const std::string& in);

}  // namespace corral::itest
