#pragma once
// The one include of <Python.h> for workers/wsgi (PY_SSIZE_T_CLEAN first, as the C API
// requires), plus a tiny owning reference.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace corral::worker::wsgi {

/// Owns one strong reference (Py_XDECREF on destruction). GIL held whenever it changes.
class PyRef {
 public:
  PyRef() = default;
  explicit PyRef(PyObject* o) : o_(o) {}  ///< steals `o` (may be null)
  ~PyRef() { Py_XDECREF(o_); }
  PyRef(PyRef&& r) noexcept : o_(r.o_) { r.o_ = nullptr; }
  PyRef& operator=(PyRef&& r) noexcept {
    if (this != &r) {
      Py_XDECREF(o_);
      o_ = r.o_;
      r.o_ = nullptr;
    }
    return *this;
  }
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  PyObject* get() const { return o_; }
  PyObject* release() {
    PyObject* o = o_;
    o_ = nullptr;
    return o;
  }
  explicit operator bool() const { return o_ != nullptr; }

 private:
  PyObject* o_ = nullptr;
};

}  // namespace corral::worker::wsgi
