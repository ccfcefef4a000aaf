#pragma once
// Misbehaviour on request, for the supervisor's hard-times tests: a worker that forks away
// processes (daemonizing double fork + setsid) and one that closes its listening socket.
#include <sys/types.h>

namespace testapp {

/// The listening socket (set once by main before serving).
void set_listen_fd(int fd);
int listen_fd();

/// Double-forks a process into a session of its own (a daemon) and returns its pid (-1 on
/// failure). It keeps no fd of the worker except, when `serve`, the listening socket, which
/// it starts answering ("stray", status 200) once the worker that made it is gone. Otherwise
/// it sleeps forever. Only async-signal-safe calls run in the children (the app is threaded).
pid_t fork_away(bool serve);

}  // namespace testapp
