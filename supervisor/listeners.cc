#include "supervisor/listeners.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/net/address.h"
#include "common/net/socket.h"

namespace corral::supervisor {

Result<std::vector<BoundListener>> bind_listeners(const std::vector<conf::Listener>& listeners) {
  std::vector<BoundListener> out;
  for (auto& l : listeners) {
    auto addr = net::parse_address(l.address);
    if (!addr) return fail(Errc::Config, "listener " + l.address + ": " + addr.error().message());
    auto fd = net::listen_tcp(*addr);
    if (!fd) return fail(fd.error());
    auto local = net::local_address(fd->get());
    if (!local) return fail(local.error());
    out.push_back(BoundListener{l.address, local->to_string(), std::move(*fd)});
  }
  return out;
}

Result<BoundListener> bind_admin(const std::string& spec) {
  if (spec.find('/') != std::string::npos) {
    auto fd = net::listen_unix(spec, 64, 0660);
    if (!fd) return fail(Errc::Config, "admin listener " + spec + ": " + fd.error().message());
    return BoundListener{spec, "unix:" + spec, std::move(*fd)};
  }
  conf::Listener l;
  l.address = spec;
  auto bound = bind_listeners({l});
  if (!bound) return fail(Errc::Config, "admin " + bound.error().message());
  return std::move(bound->front());
}

Result<void> make_dirs(const std::string& path, unsigned mode) {
  if (path.empty()) return fail(Errc::InvalidInput, "empty directory path");
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) return fail_sys("mkdir " + prefix);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return fail_sys("stat " + path);
  if (!S_ISDIR(st.st_mode)) return fail(Errc::InvalidInput, path + " exists and is not a directory");
  return {};
}

bool remove_own_file(const std::string& path, dev_t dev, ino_t ino) {
  struct stat st {};
  if (ino == 0 || ::lstat(path.c_str(), &st) != 0 || st.st_dev != dev || st.st_ino != ino) return false;
  return ::unlink(path.c_str()) == 0;
}

std::string slot_socket_path(const std::string& runtime_dir, const std::string& app, int slot) {
  return runtime_dir + "/" + app + "." + std::to_string(slot) + ".sock";
}

std::string control_socket_path(const std::string& runtime_dir) { return runtime_dir + "/control.sock"; }

}  // namespace corral::supervisor
