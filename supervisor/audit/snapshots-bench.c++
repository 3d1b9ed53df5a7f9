// SPDX-License-Identifier: Apache-2.0
// The snapshot cost once warm, on two workspaces with the same 10,000 files: one holding about
// 1 GiB (100 sparse 10 MiB files among them), one about 40 MiB. Run by scripts/bench; prints one
// line of figures. The claim it checks: the stat cache makes an unchanged workspace's snapshot
// cost grow with its entries, not with its bytes.
// Runs in: bench (a plain process; no sandbox, no gateway)
//
//   snapshots-bench [DIR]   (DIR: where to make the workspaces; default /tmp)

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "snapshots.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// 100 directories x 100 files; every 100th file is `bigBytes` long (sparse), the rest 2 KB.
uint64_t makeWorkspace(const std::string& dir, off_t bigBytes) {
  uint64_t total = 0;
  std::string small(2000, 's');
  for (int d = 0; d < 100; ++d) {
    std::string sub = dir + "/d" + std::to_string(d);
    fs::create_directories(sub);
    for (int i = 0; i < 100; ++i) {
      std::string path = sub + "/f" + std::to_string(i);
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) {
        perror(path.c_str());
        exit(1);
      }
      if (i == 0) {
        if (ftruncate(fd, bigBytes) != 0) exit(1);
        total += static_cast<uint64_t>(bigBytes);
      } else {
        std::string content = small + std::to_string(d * 100 + i);
        if (write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()))
          exit(1);
        total += content.size();
      }
      close(fd);
    }
  }
  return total;
}

struct Figures {
  uint64_t bytes;
  double coldMs, warmP50, warmMax;
};

Figures measure(const std::string& base, const std::string& name, off_t bigBytes) {
  std::string ws = base + "/" + name + "-ws", git = base + "/" + name + ".git";
  Figures f{};
  f.bytes = makeWorkspace(ws, bigBytes);
  usleep(200'000);  // older than the stat cache's racy window
  chitin::audit::Snapshots snaps(git, ws);
  auto t = Clock::now();
  snaps.take("cold");
  f.coldMs = msSince(t);
  std::vector<double> warm;
  for (int i = 0; i < 7; ++i) {
    t = Clock::now();
    auto s = snaps.take("warm");
    warm.push_back(msSince(t));
    if (s.bytesRead != 0) {
      fprintf(stderr, "a warm snapshot read %llu bytes\n",
              static_cast<unsigned long long>(s.bytesRead));
      exit(1);
    }
  }
  std::sort(warm.begin(), warm.end());
  f.warmP50 = warm[warm.size() / 2];
  f.warmMax = warm.back();
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  std::string parent = argc > 1 ? argv[1] : "/tmp";
  std::string tmpl = parent + "/chitin-snapbench-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    perror("mkdtemp");
    return 1;
  }
  Figures big = measure(tmpl, "big", 10 << 20);
  Figures small = measure(tmpl, "small", 200 << 10);
  fs::remove_all(tmpl);
  printf(
      "snapshot bench: 10000 files; %.0f MiB: cold %.0f ms, warm p50 %.2f ms max %.2f ms; "
      "%.0f MiB: cold %.0f ms, warm p50 %.2f ms max %.2f ms; warm ratio %.2f\n",
      big.bytes / 1048576.0, big.coldMs, big.warmP50, big.warmMax, small.bytes / 1048576.0,
      small.coldMs, small.warmP50, small.warmMax, big.warmP50 / small.warmP50);
  return 0;
}
