// Which Python a WSGI worker would exec (workers/wsgi/interpreter.h): the version read from the
// name the interpreter's symlinks resolve to, else from the virtualenv's pyvenv.cfg.
#include "workers/wsgi/interpreter.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace corral::worker::wsgi {
namespace {

class InterpreterVersionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-interpXXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/venv/bin");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string venv() const { return dir_ + "/venv"; }
  void file(const std::string& path, const std::string& text) { std::ofstream(dir_ + "/" + path) << text; }
  std::string dir_;
};

TEST_F(InterpreterVersionTest, FromTheNameTheSymlinksResolveTo) {
  file("python3.12", "");
  std::filesystem::create_symlink(dir_ + "/python3.12", venv() + "/bin/python3");
  // The name wins over a pyvenv.cfg that says otherwise.
  file("venv/pyvenv.cfg", "home = /usr/bin\nversion = 3.11.2\n");
  EXPECT_EQ(interpreter_version(venv() + "/bin/python3", venv()), "3.12");
  EXPECT_EQ(interpreter_version("/usr/bin/python3", ""), "3.11") << "Debian's python3 -> python3.11";
}

TEST_F(InterpreterVersionTest, FromPyvenvCfgWhenTheNameDoesNotTell) {
  file("venv/bin/python3", "");  // a copy (venv --copies), named python3
  EXPECT_EQ(interpreter_version(venv() + "/bin/python3", venv()), std::nullopt) << "no pyvenv.cfg";
  file("venv/pyvenv.cfg", "home = /opt/py/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n");
  EXPECT_EQ(interpreter_version(venv() + "/bin/python3", venv()), "3.11");
  file("venv/pyvenv.cfg", "home = /opt/py/bin\nversion_info = 3.12.0.final.0\n");  // virtualenv's key
  EXPECT_EQ(interpreter_version(venv() + "/bin/python3", venv()), "3.12");
  file("venv/pyvenv.cfg", "version = three\n");
  EXPECT_EQ(interpreter_version(venv() + "/bin/python3", venv()), std::nullopt);
  EXPECT_EQ(interpreter_version(venv() + "/bin/python3", ""), std::nullopt) << "no virtualenv: the name only";
  EXPECT_EQ(interpreter_version(dir_ + "/missing", ""), std::nullopt);
}

TEST(InterpreterPath, VirtualenvOrTheSystemPython) {
  Options o;
  EXPECT_EQ(interpreter_path(o), "/usr/bin/python3");
  o.virtualenv = "/srv/app/.venv";
  EXPECT_EQ(interpreter_path(o), "/srv/app/.venv/bin/python3");
}

}  // namespace
}  // namespace corral::worker::wsgi
