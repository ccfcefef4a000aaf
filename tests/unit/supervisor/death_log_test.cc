#include "supervisor/death_log.h"

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

DeathRecord record(int worker, const std::string& reason) {
  DeathRecord r;
  r.time_ms = 1'700'000'000'000 + worker;
  r.worker = worker;
  r.pid = 1000 + worker;
  r.generation = 2;
  r.incarnation = 3;
  r.reason = reason;
  r.exit = "killed by signal 9 (SIGKILL)";
  r.uptime_seconds = 1.5;
  r.requests = 7;
  r.in_flight = 1;
  r.line = "worker " + std::to_string(worker) + " exited";
  return r;
}

TEST(DeathLog, NewestFirstAndFields) {
  DeathLog log;
  log.add(record(0, "signal"));
  auto r = record(1, "reload");
  r.expected = true;
  log.add(r);
  nlohmann::json j = log.json();
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["worker"], 1);
  EXPECT_EQ(j[0]["reason"], "reload");
  EXPECT_EQ(j[0]["expected"], true);
  EXPECT_EQ(j[1]["worker"], 0);
  EXPECT_EQ(j[1]["expected"], false);
  EXPECT_EQ(j[1]["pid"], 1000);
  EXPECT_EQ(j[1]["generation"], 2);
  EXPECT_EQ(j[1]["incarnation"], 3);
  EXPECT_EQ(j[1]["time_ms"], 1'700'000'000'000);
  EXPECT_EQ(j[1]["exit"], "killed by signal 9 (SIGKILL)");
  EXPECT_DOUBLE_EQ(j[1]["uptime_seconds"].get<double>(), 1.5);
  EXPECT_EQ(j[1]["requests"], 7);
  EXPECT_EQ(j[1]["in_flight"], 1);
  EXPECT_EQ(j[1]["line"], "worker 0 exited");
  // No answer from the proxy (yet): null, not an empty list ("serving no request").
  EXPECT_TRUE(j[1]["in_flight_requests"].is_null());
  EXPECT_EQ(j[1]["in_flight_requests_omitted"], 0);
}

TEST(DeathLog, CompleteAddsTheRequestsAndTheLine) {
  DeathLog log;
  const uint64_t a = log.add(record(0, "signal"));
  const uint64_t b = log.add(record(1, "exit"));
  control::SlotRequestInfo q;
  q.id = "r1";
  q.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  q.method = "GET";
  q.path = "/sleep?ms=5000";
  q.elapsed_ms = 812;
  q.state = "failed";
  log.complete(a, std::vector<control::SlotRequestInfo>{q}, "worker 0 exited, serving 1 request(s): rid=r1");
  log.complete(b, std::vector<control::SlotRequestInfo>{}, "worker 1 exited, serving no request");
  nlohmann::json j = log.json();
  ASSERT_EQ(j.size(), 2u);
  ASSERT_TRUE(j[1]["in_flight_requests"].is_array());
  ASSERT_EQ(j[1]["in_flight_requests"].size(), 1u);
  auto& r = j[1]["in_flight_requests"][0];
  EXPECT_EQ(r["id"], "r1");
  EXPECT_EQ(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(r["method"], "GET");
  EXPECT_EQ(r["path"], "/sleep?ms=5000");
  EXPECT_EQ(r["elapsed_ms"], 812);
  EXPECT_EQ(r["state"], "failed");
  EXPECT_EQ(j[1]["line"], "worker 0 exited, serving 1 request(s): rid=r1");
  EXPECT_TRUE(j[0]["in_flight_requests"].is_array());
  EXPECT_TRUE(j[0]["in_flight_requests"].empty());
}

TEST(DeathLog, KeepsTheNewestTwentyAndIgnoresLateAnswersForEvictedOnes) {
  DeathLog log;
  const uint64_t first = log.add(record(0, "signal"));
  for (int i = 1; i < 25; ++i) log.add(record(i, "exit"));
  EXPECT_EQ(log.size(), DeathLog::kCapacity);
  log.complete(first, std::nullopt, "too late");  // evicted: nothing happens
  nlohmann::json j = log.json();
  ASSERT_EQ(j.size(), 20u);
  EXPECT_EQ(j[0]["worker"], 24);
  EXPECT_EQ(j[19]["worker"], 5);
  for (auto& r : j) EXPECT_NE(r["line"], "too late");
}

TEST(DeathLog, BoundsWhatARecordKeeps) {
  DeathLog log;
  const uint64_t id = log.add(record(0, "signal"));
  std::vector<control::SlotRequestInfo> many(DeathLog::kMaxRequests + 3);
  for (size_t i = 0; i < many.size(); ++i) many[i].id = "r" + std::to_string(i);
  // A multi-byte character straddles the cut: the line stays valid UTF-8.
  std::string line(DeathLog::kMaxLine - 1, 'x');
  line += "\xc3\xa9 and more";
  log.complete(id, many, line);
  nlohmann::json j = log.json()[0];
  ASSERT_EQ(j["in_flight_requests"].size(), DeathLog::kMaxRequests);
  EXPECT_EQ(j["in_flight_requests"][0]["id"], "r0");
  EXPECT_EQ(j["in_flight_requests_omitted"], 3);
  const std::string kept = j["line"];
  EXPECT_EQ(kept, std::string(DeathLog::kMaxLine - 1, 'x') + "...");
  EXPECT_NO_THROW((void)j.dump());
}

}  // namespace
}  // namespace corral::supervisor
