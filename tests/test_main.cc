// The main() of every test binary but interpreter_test: one interpreter for
// the whole binary, owned by a GoogleTest environment, so tests run with the
// GIL held by the main thread.

#include <memory>
#include <optional>

#include "gtest/gtest.h"
#include "leakguard/python/interpreter.h"
#if defined(LEAKGUARD_WITH_PYTHON_MODULE)
#include "leakguard/python_module.h"
#endif

namespace {

class PythonEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
#if defined(LEAKGUARD_WITH_PYTHON_MODULE)
    // `import leakguard` works inside the test binaries, as in any host.
    ASSERT_TRUE(leakguard::python::RegisterModule().ok());
#endif
    leakguard::InterpreterOptions options;
    options.program_name = LEAKGUARD_PYTHON_EXECUTABLE;
    options.argv = {"leakguard-test"};
    options.extra_sys_path = {LEAKGUARD_TEST_SCRIPTS_DIR};
    auto started = leakguard::Interpreter::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    interpreter_.emplace(*std::move(started));
  }
  void TearDown() override {
    if (interpreter_) {
      EXPECT_TRUE(interpreter_->Finalize().ok());
      interpreter_.reset();
    }
  }

 private:
  std::optional<leakguard::Interpreter> interpreter_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new PythonEnvironment);
  return RUN_ALL_TESTS();
}
