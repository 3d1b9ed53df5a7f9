// SPDX-License-Identifier: Apache-2.0
// Tests for the memory index's embeddings and hybrid ranking (memory-vectors.c++): which chunks
// still need a vector, vectors kept across an edit elsewhere in the file and dropped with their
// text or when the model changes, vectors refused when they are not finite or not of one
// dimension, a damaged stored vector skipped, and the ranking: meaning finds a note that shares
// no word with the query, keywords still count, an unrelated chunk is no hit.
// Runs in: test

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <sqlite3.h>

#include "memory-index.h"
#include "memory-test-dirs.h"

namespace chitin {
namespace {

namespace fs = std::filesystem;
using Dirs = testing::MemoryDirs;

// A stand-in for an embeddings model: words of a concept share a dimension, others get one by
// a hash of their own. 16 dimensions.
std::vector<float> embed(const std::string& text) {
  static const std::map<std::string, int> concepts = {
      {"car", 0},   {"cars", 0},   {"automobile", 0}, {"sedan", 0},     {"vehicle", 0}, {"dog", 1},
      {"puppy", 1}, {"canine", 1}, {"doctor", 2},     {"physician", 2}, {"dentist", 2}};
  std::vector<float> v(16, 0.0f);
  std::string lower;
  for (char c : text) lower += static_cast<char>(tolower(static_cast<unsigned char>(c)));
  std::regex word("[a-z0-9]+");
  for (auto it = std::sregex_iterator(lower.begin(), lower.end(), word);
       it != std::sregex_iterator(); ++it) {
    std::string w = it->str();
    auto c = concepts.find(w);
    v[c != concepts.end() ? c->second : 4 + std::hash<std::string>{}(w) % 12] += 1.0f;
  }
  return v;
}

// Embeds every chunk the index asks for, as memory_search does, batch by batch.
size_t embedAll(MemoryIndex& index, const std::string& model, uint32_t batch = 64) {
  size_t total = 0;
  for (;;) {
    auto chunks = index.chunksToEmbed(model, batch);
    if (chunks.empty()) return total;
    std::vector<std::vector<float>> vectors;
    for (const auto& c : chunks) vectors.push_back(embed(c.text));
    index.putVectors(model, chunks, vectors);
    total += chunks.size();
  }
}

void seed(Dirs& d) {
  d.write("memory/garage.md", "Sedan needs new tyres.\n");
  d.write("memory/pets.md", "The puppy needs its vaccinations next month.\n");
  d.write("memory/health.md", "Dentist on the 14th at nine.\n");
  d.write("MEMORY.md", "Prefers tea over coffee.\n");
}

TEST_CASE("memory vectors: every chunk is embedded once; an edit re-embeds only its new text") {
  Dirs d;
  d.write("memory/notes.md", "First paragraph about cars.\n\nSecond paragraph about dogs.\n");
  d.write("memory/copy.md", "First paragraph about cars.\n");  // the same text: one vector
  MemoryIndex index(d.index());
  index.update(d.rootFd);
  CHECK(index.embeddedChunks("m1") == 0);
  CHECK(embedAll(index, "m1", 1) == 2);  // distinct texts, one batch at a time
  CHECK(index.embeddedChunks("m1") == 3);
  CHECK(index.chunksToEmbed("m1", 10).empty());

  d.write("memory/notes.md", "First paragraph about cars.\n\nA new paragraph about doctors.\n");
  index.update(d.rootFd);
  auto pending = index.chunksToEmbed("m1", 10);
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].text == "A new paragraph about doctors.");
  CHECK(pending[0].hash == chunkHash(pending[0].text));
  embedAll(index, "m1");
  // The dogs paragraph's vector went with its text.
  auto counts = index.vectorCounts();
  REQUIRE(counts.size() == 1);
  CHECK(counts[0] == std::make_pair(std::string("m1"), uint64_t(2)));
}

TEST_CASE("memory vectors: another model's vectors are dropped; so are a model's of a new size") {
  Dirs d;
  seed(d);
  MemoryIndex index(d.index());
  index.update(d.rootFd);
  embedAll(index, "m1");
  CHECK(index.embeddedChunks("m1") == 4);
  embedAll(index, "m2");
  CHECK(index.embeddedChunks("m1") == 0);
  CHECK(index.embeddedChunks("m2") == 4);

  // Same name, other dimension: the model behind the name changed; the old vectors go.
  auto one = index.chunksToEmbed("m2", 1);
  CHECK(one.empty());
  d.write("memory/new.md", "Something new.\n");
  index.update(d.rootFd);
  auto fresh = index.chunksToEmbed("m2", 10);
  REQUIRE(fresh.size() == 1);
  index.putVectors("m2", fresh, {std::vector<float>(32, 0.5f)});
  CHECK(index.embeddedChunks("m2") == 1);
}

TEST_CASE("memory vectors: vectors that are not finite, zero or of mixed sizes are refused") {
  Dirs d;
  seed(d);
  MemoryIndex index(d.index());
  index.update(d.rootFd);
  auto chunks = index.chunksToEmbed("m", 2);
  REQUIRE(chunks.size() == 2);
  std::vector<float> good(16, 1.0f), nan(16, 1.0f), zero(16, 0.0f), shorter(8, 1.0f);
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(index.putVectors("m", chunks, {good}), std::invalid_argument);
  CHECK_THROWS_AS(index.putVectors("m", chunks, {good, nan}), std::invalid_argument);
  CHECK_THROWS_AS(index.putVectors("m", chunks, {good, zero}), std::invalid_argument);
  CHECK_THROWS_AS(index.putVectors("m", chunks, {good, shorter}), std::invalid_argument);
  CHECK_THROWS_AS(index.putVectors("m", chunks, {good, {}}), std::invalid_argument);
  CHECK(index.embeddedChunks("m") == 0);  // nothing stored by a refused batch
  CHECK_THROWS_AS(index.searchHybrid("tea", zero, "m", 5), std::invalid_argument);
}

TEST_CASE("memory hybrid: meaning finds what shares no word; keywords still rank; no noise") {
  Dirs d;
  seed(d);
  MemoryIndex index(d.index());
  index.update(d.rootFd);
  embedAll(index, "m");

  // "automobile" is in no note: keyword search finds nothing, meaning finds the sedan.
  CHECK(index.search("automobile", 5).empty());
  auto hits = index.searchHybrid("automobile", embed("automobile"), "m", 5);
  REQUIRE(!hits.empty());
  CHECK(hits[0].path == "memory/garage.md");
  CHECK(hits[0].startLine == 1);
  CHECK(hits[0].snippet.find("Sedan") != std::string::npos);
  CHECK(hits[0].score > 0.3);
  CHECK(hits[0].score <= 1.0);
  // The other notes are about other things: no hits.
  CHECK(hits.size() == 1);

  // A keyword match counts even where meaning does not help.
  hits = index.searchHybrid("tea", embed("tea"), "m", 5);
  REQUIRE(!hits.empty());
  CHECK(hits[0].path == "MEMORY.md");
  CHECK(hits[0].snippet.find("**tea**") != std::string::npos);

  // Both at once rank above either alone.
  d.write("memory/both.md", "The physician said the dentist visit can wait.\n");
  index.update(d.rootFd);
  embedAll(index, "m");
  hits = index.searchHybrid("dentist", embed("dentist"), "m", 5);
  REQUIRE(hits.size() >= 2);
  CHECK(hits[0].path == "memory/both.md");  // the word and two words of the concept
  CHECK(hits[1].path == "memory/health.md");

  // Chunks not embedded yet rank by their keywords.
  d.write("memory/late.md", "Automobile insurance renews in May.\n");
  index.update(d.rootFd);
  hits = index.searchHybrid("automobile", embed("automobile"), "m", 5);
  std::vector<std::string> paths;
  for (const auto& h : hits) paths.push_back(h.path);
  CHECK(std::find(paths.begin(), paths.end(), "memory/late.md") != paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "memory/garage.md") != paths.end());
}

TEST_CASE("memory hybrid: a stored vector of the wrong size is skipped, not read past its end") {
  Dirs d;
  seed(d);
  {
    MemoryIndex index(d.index());
    index.update(d.rootFd);
    embedAll(index, "m");
  }
  // Damage every vector as a stray writer of /state could: a few bytes.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(d.index().c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "UPDATE vectors SET vector = x'0000803f'", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  sqlite3_close(db);
  MemoryIndex index(d.index());
  auto hits = index.searchHybrid("sedan", embed("sedan"), "m", 5);
  REQUIRE(hits.size() == 1);  // by its keyword alone
  CHECK(hits[0].path == "memory/garage.md");
}

}  // namespace
}  // namespace chitin
