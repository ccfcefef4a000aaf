#pragma once
// The id of a reload plan (`corralctl plan`, `corralctl reload --plan-id`): names exactly the
// running state it was planned against and the candidate it was planned for, so a reload
// given the id applies the planned change or nothing. Pure; thread-safe.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "supervisor/reload_plan.h"

namespace corral::supervisor {

/// SHA-256 (FIPS 180-4), incremental. Used for plan ids, not for secrets.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  /// The digest; the object must not be updated afterwards.
  std::array<uint8_t, 32> finish();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t used_ = 0;
  uint64_t total_ = 0;
};

/// 64 lowercase hex digits. Pure.
std::string sha256_hex(std::string_view bytes);

/// What a plan id covers.
struct PlanIdInputs {
  uint64_t generation = 0;            ///< the running config generation (bumps at every reload and tune)
  const conf::Config* running = nullptr;  ///< the running config (with the values set at run time)
  std::string_view candidate_text;    ///< the candidate file's bytes, as read
  const conf::Config* candidate = nullptr;  ///< the candidate as loaded (its TLS files' contents included)
  const ReloadPlan* plan = nullptr;   ///< the plan (without the running workers' pids)
};

/// "g<generation>-<24 hex digits>": the generation, then a hash of the running config, the
/// candidate's bytes, every file it pulls in (TLS certificates and keys: path and contents)
/// and the plan. The candidate's own path is left out: a candidate planned elsewhere and
/// copied into place unchanged plans to the same id. Pure.
std::string make_plan_id(const PlanIdInputs& in);

/// The generation a plan id was made at; nullopt when `id` is not a plan id. Pure.
std::optional<uint64_t> plan_id_generation(std::string_view id);

}  // namespace corral::supervisor
