// SPDX-License-Identifier: Apache-2.0
// memory_search's cost inside the memory worker, phase by phase, for scripts/bench (not a test:
// it prints figures).
// Runs in: benchmark only
//
// What chitin-worker-memory does for one memory_search once the index is built, without the
// sandbox around it: open the index (take its lock, open SQLite, check the file), bring it up
// to date with unchanged notes, search, and read the counts the answer carries. The notes are
// shaped like tests/bench/bench.py's (o); each round is a new MemoryIndex, as each call is a new
// worker (SQLite's page cache starts empty, the kernel's does not).
//
//   memory-bench NOTES [ROUNDS]
//
// Prints one JSON object: notes, rounds, the first (building) call in ms, the p50 of each phase
// of a warm call in ms, of the directory walk alone (the update's floor: a stat per note), and of
// an update given the pair the supervisor's watch passes when nothing changed (no walk).

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "memory-index.h"

using namespace chitin;
using Clock = std::chrono::steady_clock;

namespace {

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int positive(const char* arg, const char* what) {
  int n = atoi(arg);
  if (n <= 0) {
    fprintf(stderr, "memory-bench: %s: expected a positive number, got \"%s\"\n", what, arg);
    exit(2);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: memory-bench NOTES [ROUNDS]\n");
    return 2;
  }
  int notes = positive(argv[1], "NOTES");
  int rounds = argc > 2 ? positive(argv[2], "ROUNDS") : 50;
  char tmpl[] = "/tmp/chitin-memory-bench-XXXXXX";
  std::filesystem::path root = mkdtemp(tmpl);
  std::filesystem::path memory = root / "workspace" / "memory";
  std::filesystem::create_directories(memory);
  std::filesystem::create_directories(root / "state");
  for (int i = 0; i < notes; ++i) {
    char name[32];
    snprintf(name, sizeof name, "n%05d.md", i);
    std::ofstream(memory / name) << "# Note " << i << "\n\nMet person " << i << " about project "
                                 << i % 97 << ".\n"
                                 << (i % 100 == 0 ? "The giraffe enclosure came up."
                                                  : "Nothing else.")
                                 << "\n";
  }
  int rootFd = open((root / "workspace").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::string indexPath = (root / "state" / "index.sqlite").string();
  const std::string query = "giraffe enclosure";
  const uint32_t maxResults = 8;  // memory_search's default (tool-runner.c++)

  auto start = Clock::now();
  {
    MemoryIndex index(indexPath);
    index.update(rootFd);
    index.search(query, maxResults);
  }
  double first = msSince(start);

  // The walk alone (one stat per note, no index): the floor under the update.
  std::vector<double> walk;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    size_t found = 0;
    forEachMemoryFile(rootFd, [&](const FoundFile&) { ++found; });
    walk.push_back(msSince(t0));
  }

  std::vector<double> open, update, search, counts, total;
  size_t hits = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    auto index = std::make_unique<MemoryIndex>(indexPath);
    auto t1 = Clock::now();
    MemoryStats stats = index->update(rootFd);
    auto t2 = Clock::now();
    hits = index->search(query, maxResults).size();
    auto t3 = Clock::now();
    stats = index->counts();
    auto t4 = Clock::now();
    index.reset();
    auto t5 = Clock::now();
    using ms = std::chrono::duration<double, std::milli>;
    open.push_back(ms(t1 - t0).count());
    update.push_back(ms(t2 - t1).count());
    search.push_back(ms(t3 - t2).count());
    counts.push_back(ms(t4 - t3).count());
    total.push_back(ms(t5 - t0).count());
    if (stats.files != static_cast<uint64_t>(notes)) {
      fprintf(stderr, "memory-bench: the index holds %llu files, expected %d\n",
              static_cast<unsigned long long>(stats.files), notes);
      return 1;
    }
  }
  // The update when the supervisor's watch passes the pair the last walk recorded (nothing
  // changed since): no walk.
  std::vector<double> synced;
  const WalkSync pair{1, 1};
  {
    MemoryIndex index(indexPath);
    index.update(rootFd, pair);  // walks once, and records the pair
  }
  for (int r = 0; r < rounds; ++r) {
    auto index = std::make_unique<MemoryIndex>(indexPath);
    auto t0 = Clock::now();
    MemoryStats stats = index->update(rootFd, pair);
    synced.push_back(msSince(t0));
    if (stats.walked || stats.files != static_cast<uint64_t>(notes)) {
      fprintf(stderr, "memory-bench: an update with the recorded pair walked the files\n");
      return 1;
    }
  }
  // Hybrid ranking (memory-vectors.c++) with every chunk embedded at 768 dimensions (e.g.
  // nomic-embed-text): what a search with embeddings adds inside the worker, besides the
  // provider's time for the query.
  const std::string model = "bench-768";
  std::vector<double> pending, hybrid, embedded;
  size_t vectors = 0;
  {
    MemoryIndex index(indexPath);
    std::mt19937 random(7);
    std::normal_distribution<float> normal;
    for (;;) {
      auto chunks = index.chunksToEmbed(model, 2048);  // set-up: few transactions
      if (chunks.empty()) break;
      std::vector<std::vector<float>> batch(chunks.size(), std::vector<float>(768));
      for (auto& v : batch)
        for (auto& x : v) x = normal(random);
      index.putVectors(model, chunks, batch);
      vectors += chunks.size();
    }
    std::vector<float> queryVector(768);
    for (auto& x : queryVector) x = normal(random);
    for (int r = 0; r < rounds; ++r) {
      auto t0 = Clock::now();
      index.chunksToEmbed(model, 256);
      auto t1 = Clock::now();
      index.searchHybrid(query, queryVector, model, maxResults);
      auto t2 = Clock::now();
      index.embeddedChunks(model);
      auto t3 = Clock::now();
      using ms = std::chrono::duration<double, std::milli>;
      pending.push_back(ms(t1 - t0).count());
      hybrid.push_back(ms(t2 - t1).count());
      embedded.push_back(ms(t3 - t2).count());
    }
  }
  close(rootFd);
  std::filesystem::remove_all(root);
  printf(
      "{\"notes\": %d, \"rounds\": %d, \"hits\": %zu, \"first_ms\": %.3f, \"open_ms\": %.3f, "
      "\"update_ms\": %.3f, \"search_ms\": %.3f, \"counts_ms\": %.3f, \"total_ms\": %.3f, "
      "\"walk_ms\": %.3f, \"synced_update_ms\": %.3f, \"vectors\": %zu, "
      "\"pending_ms\": %.3f, \"hybrid_ms\": %.3f, \"embedded_ms\": %.3f}\n",
      notes, rounds, hits, first, median(open), median(update), median(search), median(counts),
      median(total), median(walk), median(synced), vectors, median(pending), median(hybrid),
      median(embedded));
  return 0;
}
