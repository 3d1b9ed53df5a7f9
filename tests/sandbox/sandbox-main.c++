// SPDX-License-Identifier: Apache-2.0
// main() of the sandbox suite: become the unprivileged test user, make sure sandboxes can be
// built here at all (else SKIP, exit 77 -- never a false pass), then run the doctest cases.
// Runs in: tests

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <stdio.h>

#include "drop-root.h"
#include "probe-runner.h"

namespace {

constexpr int EXIT_SKIP = 77;  // meson's SKIP

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
  return context.run();
}
