// SPDX-License-Identifier: Apache-2.0
// Starting headless Chromium as the browser worker's child: its command line (every flag that
// keeps its traffic on the proxy and its features quiet, each with why) and the process itself,
// with the DevTools pipe on its fds 3 and 4.
// Runs in: worker (sandboxed)

#pragma once

#include <kj/io.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace chitin::browser {

struct ChromiumSettings {
  std::string executable = "/usr/lib/chromium/chromium";
  std::string profileDir = "/profile";  // --user-data-dir
  std::string homeDir = "/tmp/home";    // HOME, for fontconfig's cache
  std::string downloadDir = "/tmp/downloads";
  uint16_t proxyPort = 0;  // the forwarder's port on 127.0.0.1
};

// The argv (argv[0] first). Pure, so the flags can be tested.
std::vector<std::string> chromiumArgv(const ChromiumSettings& settings);

struct ChromiumProcess {
  pid_t pid = -1;
  kj::AutoCloseFd toChromium;    // write end of its fd 3
  kj::AutoCloseFd fromChromium;  // read end of its fd 4
};

// Starts Chromium with a cleared environment but for HOME and XDG directories under
// settings.homeDir (created), stdin /dev/null, stdout/stderr shared with the worker (the
// supervisor logs them, capped). Throws if it cannot be started.
ChromiumProcess startChromium(const ChromiumSettings& settings);

// Reaps every exited child without waiting (the worker is pid 1 of its sandbox, so Chromium's
// orphaned helpers become its children too).
void reapChildren();

}  // namespace chitin::browser
