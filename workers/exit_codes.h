#pragma once
// corral-worker exit codes (gunicorn's WORKER_BOOT_ERROR / APP_LOAD_ERROR): the supervisor
// tells "the worker itself could not start" from "the app it hosts is unusable".
namespace corral::worker {

inline constexpr int kExitOk = 0;
/// Bad arguments, no inherited socket, cannot start threads: corral-worker cannot run.
inline constexpr int kExitBootError = 3;
/// The app is unusable: CGI program missing or not executable, `root` not a folder.
inline constexpr int kExitAppLoadError = 4;

}  // namespace corral::worker
