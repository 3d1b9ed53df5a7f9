// SPDX-License-Identifier: Apache-2.0
// main() of the sandbox suite: become the unprivileged test user, make sure sandboxes can be
// built here at all (else SKIP, exit 77 -- never a false pass), then run the doctest cases; a
// run in which a case skipped (skip.h) and none failed is a SKIP too.
// Runs in: tests

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <stdio.h>

#include "drop-root.h"
#include "probe-runner.h"
#include "skip.h"

namespace {

constexpr int EXIT_SKIP = 77;  // meson's SKIP

// How many test cases the run's filters selected: meson runs some cases by name, and a filter
// that matches nothing (a renamed case) must fail, not pass having run nothing.
unsigned selectedCases = 0;

struct SelectedCases : doctest::IReporter {
  explicit SelectedCases(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    selectedCases = stats.numTestCasesPassingFilters;
  }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
DOCTEST_REGISTER_LISTENER("selected-cases", 1, SelectedCases);

}  // namespace

int main(int argc, char** argv) {
  if (auto why = chitin::testing::dropRoot(chitin::testing::testUser())) {
    fprintf(stderr, "SKIP: cannot run sandboxes unprivileged: %s\n", why->c_str());
    return EXIT_SKIP;
  }
  if (auto why = chitin::testing::testSpawner().checkAvailable()) {
    // Only a host without the prerequisites skips; any other failure of the trial sandbox is
    // a chitin bug and fails the suite.
    bool hostLacks = why->find("user namespaces") != std::string::npos ||
                     why->find("bubblewrap is not installed") != std::string::npos;
    fprintf(stderr, "%s: %s\n", hostLacks ? "SKIP: sandboxes unavailable here" : "FAIL",
            why->c_str());
    return hostLacks ? EXIT_SKIP : 1;
  }
  doctest::Context context(argc, argv);
  int result = context.run();
  if (context.shouldExit() || result != 0) return result;
  if (selectedCases == 0) {
    fprintf(stderr, "FAIL: no test case matches the filters given\n");
    return 1;
  }
  if (int skipped = chitin::testing::skippedCases().load(); skipped > 0) {
    fprintf(stderr, "SKIP: %d test case(s) could not run on this host (the reasons are above)\n",
            skipped);
    return EXIT_SKIP;
  }
  return 0;
}
