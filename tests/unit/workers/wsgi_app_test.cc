// WsgiApp with a real embedded interpreter and a recording sink: the calling convention
// (start_response, write, exc_info, close), header validation and the 500 / abort choice,
// without sockets or processes.
#include "workers/wsgi/wsgi_app.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "workers/wsgi/python.h"

namespace corral::worker::wsgi {
namespace {

struct RecordingSink final : ResponseSink {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<uint64_t> length;
  std::string body;
  bool finished = false, aborted = false;
  bool send_head(int s, std::string_view r, std::span<const std::pair<std::string, std::string>> h,
                 std::optional<uint64_t> cl) override {
    status = s;
    reason = r;
    headers.assign(h.begin(), h.end());
    length = cl;
    return true;
  }
  bool send_body(std::string_view d) override {
    body.append(d);
    return true;
  }
  bool finish() override { return finished = true; }
  void abort() override { aborted = true; }
  bool head_request() const override { return head; }
  bool head = false;  // answering a HEAD request
};

constexpr const char* kApp = R"PY(
import sys
closed = []

class It:
    def __init__(self, chunks, fail=False):
        self.chunks, self.fail = list(chunks), fail
    def __iter__(self):
        return self
    def __next__(self):
        if self.chunks:
            return self.chunks.pop(0)
        if self.fail:
            raise ValueError("unit-test failure")
        raise StopIteration
    def close(self):
        closed.append(1)

def app(environ, start_response):
    p = environ["PATH_INFO"]
    if p == "/ok":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Multi", "1")])
        return [b"hello"]
    if p == "/write":
        w = start_response("202 Accepted", [])
        w(b"a")
        return It([b"", b"b"])
    if p == "/replace":
        start_response("200 OK", [])
        try:
            1 / 0
        except ZeroDivisionError:
            start_response("500 Oops", [("X-E", "1")], sys.exc_info())
        return [b"e"]
    if p == "/late_fail":
        start_response("200 OK", [])
        return It([b"x"], fail=True)
    if p == "/early_fail":
        start_response("200 OK", [])
        return It([], fail=True)
    if p == "/bad_status":
        start_response("20 OK", [])
        return []
    if p == "/lf":
        start_response("200 OK", [("X", "a\nb")])
        return []
    if p == "/nothing":
        # What Werkzeug returns for HEAD: the GET's headers, no length, an empty iterable.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []
    if p == "/input":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [data[::-1]]
    raise KeyError(p)
)PY";

class WsgiAppTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    register_corral_module();
    Py_InitializeEx(0);
    PyRef code(Py_CompileString(kApp, "unit_app.py", Py_file_input));
    ASSERT_TRUE(code);
    module_ = PyImport_ExecCodeModule("unit_app", code.get());
    ASSERT_NE(module_, nullptr);
    PyRef fn(PyObject_GetAttrString(module_, "app"));
    app_ = new WsgiApp(fn.get(), AppSettings{{}, false, true, "test"});
  }
  // The interpreter stays up for the process (finalizing and re-initializing is not supported
  // well by extension modules).

  RecordingSink run(const std::string& path, std::string body = {}, bool head_request = false) {
    std::string raw = std::string(head_request ? "HEAD " : "POST ") + path + " HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n";
    http1::RequestParser p;
    http1::RequestHead head;
    EXPECT_EQ(p.parse(raw, head).status, http1::ParseStatus::Done);
    RecordingSink sink;
    sink.head = head_request;
    app_->call(head, body, true, sink);
    EXPECT_FALSE(PyErr_Occurred()) << "a Python error escaped";
    return sink;
  }
  size_t closed_count() {
    PyRef c(PyObject_GetAttrString(module_, "closed"));
    return static_cast<size_t>(PyList_Size(c.get()));
  }

  static inline PyObject* module_ = nullptr;
  static inline WsgiApp* app_ = nullptr;
};

TEST_F(WsgiAppTest, ListResponseGetsItsLength) {
  auto s = run("/ok");
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.reason, "OK");
  EXPECT_EQ(s.body, "hello");
  ASSERT_TRUE(s.length.has_value());
  EXPECT_EQ(*s.length, 5u);
  EXPECT_TRUE(s.finished);
  EXPECT_EQ(s.headers.size(), 2u);
}

TEST_F(WsgiAppTest, NothingYieldedIsAnEmptyBodyExceptForHead) {
  auto s = run("/nothing");
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.length, std::optional<uint64_t>(0));
  EXPECT_TRUE(s.finished);
  // HEAD: the app gave no length and its GET body is unknown, so none is claimed.
  s = run("/nothing", {}, true);
  EXPECT_EQ(s.status, 200);
  EXPECT_FALSE(s.length.has_value()) << "a HEAD answer got Content-Length " << *s.length;
  EXPECT_TRUE(s.finished);
}

TEST_F(WsgiAppTest, WriteThenIterableAndCloseIsCalled) {
  size_t before = closed_count();
  auto s = run("/write");
  EXPECT_EQ(s.status, 202);
  EXPECT_EQ(s.body, "ab");
  EXPECT_FALSE(s.length.has_value());
  EXPECT_TRUE(s.finished);
  EXPECT_EQ(closed_count(), before + 1);
}

TEST_F(WsgiAppTest, ExcInfoReplacesAnUnsentHead) {
  auto s = run("/replace");
  EXPECT_EQ(s.status, 500);
  EXPECT_EQ(s.reason, "Oops");
  EXPECT_EQ(s.body, "e");
}

TEST_F(WsgiAppTest, FailureAfterTheHeadAborts) {
  size_t before = closed_count();
  auto s = run("/late_fail");
  EXPECT_EQ(s.status, 200);
  EXPECT_TRUE(s.aborted);
  EXPECT_FALSE(s.finished);
  EXPECT_EQ(closed_count(), before + 1) << "close() must run even when iteration failed";
}

TEST_F(WsgiAppTest, FailuresBeforeTheHeadAre500) {
  for (const char* p : {"/early_fail", "/bad_status", "/lf", "/missing"}) {
    auto s = run(p);
    EXPECT_EQ(s.status, 500) << p;
    EXPECT_EQ(s.body, "Internal Server Error\n") << p;
    EXPECT_FALSE(s.aborted) << p;
  }
}

TEST_F(WsgiAppTest, InputIsTheBody) {
  auto s = run("/input", "abc");
  EXPECT_EQ(s.body, "cba");
}

}  // namespace
}  // namespace corral::worker::wsgi
