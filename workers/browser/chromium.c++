// SPDX-License-Identifier: Apache-2.0
// Chromium's command line and start (see chromium.h).
// Runs in: worker (sandboxed)

#include "chromium.h"

#include <errno.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace chitin::browser {

std::vector<std::string> chromiumArgv(const ChromiumSettings& s) {
  KJ_REQUIRE(s.proxyPort != 0, "Chromium needs the forwarder's port");
  std::string proxy = "socks5://127.0.0.1:" + std::to_string(s.proxyPort);
  return {
      s.executable,
      "--headless=new",
      // Its own sandbox needs user namespaces, which this sandbox forbids;
      // sandbox-profiles/browser.textproto says what confines it instead.
      "--no-sandbox",
      // The worker drives it over fds 3 and 4; no DevTools port anyone else could reach.
      "--remote-debugging-pipe",
      "--user-data-dir=" + s.profileDir,
      // Every connection through the forwarder to the egress broker, loopback included (a page
      // asking for 127.0.0.1 gets the broker's refusal, not this sandbox's own loopback), and
      // names resolved by the broker only: Chromium maps every name to "not found" itself.
      "--proxy-server=" + proxy,
      "--proxy-bypass-list=<-loopback>",
      "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
      // What would leave beside the proxy: QUIC (UDP), WebRTC's direct UDP, DNS prefetching.
      "--disable-quic",
      "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
      "--dns-prefetch-disable",
      "--disable-features=NetworkPrediction,Translate,MediaRouter,DialMediaRouteProvider,"
      "OptimizationHints,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
      "InterestFeedContentSuggestions,PrivacySandboxSettings4",
      // Nothing on its own initiative: no updates, sync, metrics, crash reports, extensions.
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      "--disable-default-apps",
      "--disable-domain-reliability",
      "--disable-client-side-phishing-detection",
      "--disable-breakpad",
      "--disable-crash-reporter",
      "--no-pings",
      "--no-first-run",
      "--no-default-browser-check",
      // No keyring or D-Bus in the sandbox: cookies are kept in the profile as they are.
      "--password-store=basic",
      "--disable-gpu",
      "--mute-audio",
      "--hide-scrollbars",
      "--window-size=1280,800",
      // Its processes fork from the browser process directly instead of from zygotes, which
      // would be two more resident processes for nothing when there is no sandbox to set up.
      "--no-zygote",
      // V8's heap: what bounds a page's JavaScript memory where no cgroup is delegated.
      "--js-flags=--max-old-space-size=512",
      "about:blank",
  };
}

namespace {

void makeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    KJ_FAIL_SYSCALL("mkdir", errno, path);
  }
}

}  // namespace

ChromiumProcess startChromium(const ChromiumSettings& settings) {
  makeDir(settings.homeDir);
  makeDir(settings.homeDir + "/.config");
  makeDir(settings.homeDir + "/.cache");
  makeDir(settings.downloadDir);
  int toPipe[2], fromPipe[2];
  KJ_SYSCALL(pipe2(toPipe, O_CLOEXEC));
  kj::AutoCloseFd toRead(toPipe[0]), toWrite(toPipe[1]);
  KJ_SYSCALL(pipe2(fromPipe, O_CLOEXEC));
  kj::AutoCloseFd fromRead(fromPipe[0]), fromWrite(fromPipe[1]);
  // Above 4, so that neither dup2 below is a no-op that would leave close-on-exec set.
  auto high = [](kj::AutoCloseFd& fd) {
    int moved;
    KJ_SYSCALL(moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, 10));
    fd = kj::AutoCloseFd(moved);
  };
  high(toRead);
  high(fromWrite);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  KJ_DEFER(posix_spawn_file_actions_destroy(&actions));
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // dup2 clears close-on-exec on the copy; the originals close at exec. fd 3 in the child
  // replaces the worker's own Cap'n Proto socket, which Chromium must never hold.
  posix_spawn_file_actions_adddup2(&actions, toRead.get(), 3);
  posix_spawn_file_actions_adddup2(&actions, fromWrite.get(), 4);

  auto argv = chromiumArgv(settings);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env = {
      "HOME=" + settings.homeDir, "XDG_CONFIG_HOME=" + settings.homeDir + "/.config",
      "XDG_CACHE_HOME=" + settings.homeDir + "/.cache", "LANG=C.UTF-8", "TZ=UTC"};
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid;
  int rc =
      posix_spawn(&pid, settings.executable.c_str(), &actions, nullptr, args.data(), envp.data());
  if (rc != 0) KJ_FAIL_SYSCALL("posix_spawn", rc, settings.executable);
  return ChromiumProcess{pid, kj::mv(toWrite), kj::mv(fromRead)};
}

void reapChildren() {
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

}  // namespace chitin::browser
