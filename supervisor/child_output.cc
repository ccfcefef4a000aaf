#include "supervisor/child_output.h"

#include <unistd.h>

#include <cerrno>

#include "common/ev/loop.h"
#include "supervisor/output_level.h"

namespace corral::supervisor {

void LineSplitter::emit() {
  sink_(partial_, continued_);
  partial_.clear();
  continued_ = cut_;
  cut_ = false;
}

void LineSplitter::feed(std::string_view bytes) {
  // Invariant: partial_.size() <= kMaxLine.
  while (!bytes.empty()) {
    const size_t room = kMaxLine - partial_.size();
    const auto nl = bytes.find('\n');
    if (nl != std::string_view::npos && nl <= room) {
      partial_.append(bytes.substr(0, nl));
      if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
      emit();
      bytes.remove_prefix(nl + 1);
    } else if (bytes.size() <= room) {
      partial_.append(bytes);  // no newline yet
      return;
    } else {
      // Overlong: emit exactly kMaxLine bytes and go on with the rest of the line.
      partial_.append(bytes.substr(0, room));
      cut_ = true;
      emit();
      bytes.remove_prefix(room);
    }
  }
}

void LineSplitter::flush() {
  if (partial_.empty()) return;
  emit();
}

ChildOutput::ChildOutput(ev::Loop& loop, UniqueFd fd, std::string tag, log::Level plain)
    : fd_(std::move(fd)),
      tag_(std::move(tag)),
      plain_(plain),
      last_(plain),
      splitter_([this](std::string_view line, bool continued) { on_line(line, continued); }) {
  watch_ = std::make_unique<ev::FdWatch>(loop, fd_.get(), [this](bool, bool) {
    if (!drain()) {
      watch_->set(false, false);
      fd_.reset();
    }
  });
  watch_->set(true, false);
}

void ChildOutput::on_line(std::string_view line, bool continued) {
  if (continued && line.empty()) return;  // the newline right after a cut: nothing more to say
  OutputLine out = continued ? OutputLine{last_, line} : classify_output_line(line, tag_, plain_);
  last_ = out.level;
  if (out.level >= log::level()) log::write_line(out.level, tag_, out.text);
}

ChildOutput::~ChildOutput() {
  watch_.reset();
  drain();
  splitter_.flush();
}

void ChildOutput::flush() {
  drain();
  splitter_.flush();
}

bool ChildOutput::drain() {
  if (!fd_) return false;
  char buf[16384];
  // Bounded per call so a chatty child cannot starve the loop; the watch fires again.
  for (int i = 0; i < 16; ++i) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      splitter_.feed(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    splitter_.flush();  // EOF (or an error, which ends the capture the same way)
    return false;
  }
  return true;
}

}  // namespace corral::supervisor
