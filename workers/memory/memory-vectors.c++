// SPDX-License-Identifier: Apache-2.0
// The memory index's embeddings and hybrid ranking (see memory-index.h).
// Runs in: the memory worker (sandboxed), and its tests.
//
// The index holds the vectors of one model at a time (`vector_model`: its name and dimension;
// storing another's drops them all), one per distinct chunk text (`vectors`, by chunkHash),
// scaled to length 1 and kept as 8-bit integers with one float scale: a quarter of the bytes a
// search reads, for a similarity off by well under 1%. A stored vector whose size is not the
// model's is skipped: the index is never trusted, only used.
//
// What a search with embeddings costs besides the ranking itself stays small once everything is
// embedded: meta 'chunk_generation' moves on whenever the chunks change (memory-index.c++), and
// 'embedded_generation' records the generation at which no chunk lacked a vector, so a search
// then neither looks for chunks to embed nor counts the embedded ones.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <queue>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "memory-index.h"
#include "memory-sqlite.h"

namespace chitin {

namespace {

using memory_sqlite::Statement;

// Scaled to length 1; empty when `v` is empty, not finite or all zeros.
std::vector<float> unitLength(const std::vector<float>& v) {
  double sum = 0;
  for (float x : v) {
    if (!std::isfinite(x)) return {};
    sum += static_cast<double>(x) * x;
  }
  if (v.empty() || !(sum > 0) || !std::isfinite(sum)) return {};
  double scale = 1.0 / std::sqrt(sum);
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i] * scale);
  return out;
}

// A unit vector as stored: its largest magnitude (a float), then each component as an 8-bit
// integer of that magnitude's 127ths.
std::string packed(const std::vector<float>& unit) {
  float largest = 0;
  for (float x : unit) largest = std::max(largest, std::fabs(x));
  std::string bytes(sizeof(float) + unit.size(), '\0');
  memcpy(bytes.data(), &largest, sizeof(float));
  for (size_t i = 0; i < unit.size(); ++i) {
    long q = std::lround(unit[i] / largest * 127.0f);
    bytes[sizeof(float) + i] = static_cast<char>(static_cast<int8_t>(std::clamp(q, -127L, 127L)));
  }
  return bytes;
}

// The similarity of unit vector `q` and a stored vector (`blob`, of q's dimension), or NaN when
// the blob is not one.
double similarity(const std::vector<float>& q, const void* blob, size_t bytes) {
  if (bytes != sizeof(float) + q.size()) return NAN;
  float scale;
  memcpy(&scale, blob, sizeof(float));
  const int8_t* c = static_cast<const int8_t*>(blob) + sizeof(float);
  // Eight running sums: independent, so the compiler keeps them in vector registers (this loop
  // is most of a search's time: 15 million products at 20,000 vectors of 768).
  float sums[8] = {};
  size_t n = q.size(), i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) sums[j] += q[i + j] * static_cast<float>(c[i + j]);
  float sum = 0;
  for (; i < n; ++i) sum += q[i] * static_cast<float>(c[i]);
  for (float partial : sums) sum += partial;
  double dot = static_cast<double>(sum) * scale / 127.0;
  return std::isfinite(dot) ? dot : NAN;
}

// A vector-only hit's snippet: the chunk's start ("…" where cut); no word of it matched.
std::string snippetOf(const std::string& text) {
  std::string cut = cutAtCharacter(text, 300);
  return cut.size() < text.size() ? cut + "…" : cut;
}

struct StoredModel {
  bool present = false;
  std::string model;
  size_t dimensions = 0;
};

StoredModel storedModel(sqlite3* db) {
  StoredModel out;
  Statement s(db, "SELECT model, dimensions FROM vector_model LIMIT 1");
  if (s.step()) {
    out.present = true;
    out.model = s.text(0);
    out.dimensions = static_cast<size_t>(std::max<int64_t>(s.integer(1), 0));
  }
  return out;
}

int64_t metaValue(sqlite3* db, const char* key, int64_t otherwise) {
  Statement s(db, "SELECT value FROM meta WHERE key = ?");
  s.bind(1, std::string(key));
  return s.step() ? s.integer(0) : otherwise;
}

// Whether every chunk has a vector of `stored`'s model since the chunks last changed.
bool allEmbedded(sqlite3* db) {
  return metaValue(db, "embedded_generation", -1) == metaValue(db, "chunk_generation", 0);
}

}  // namespace

std::vector<ChunkToEmbed> MemoryIndex::chunksToEmbed(const std::string& model, uint32_t limit) {
  return rebuildingOnDamage(true, [&] {
    std::vector<ChunkToEmbed> out;
    StoredModel stored = storedModel(db_);
    bool same = stored.present && stored.model == model;
    if (same && allEmbedded(db_)) return out;
    Statement s(db_, same ? "SELECT hash, min(text) FROM chunks WHERE hash NOT IN "
                            "(SELECT hash FROM vectors) GROUP BY hash ORDER BY min(rowid) LIMIT ?"
                          : "SELECT hash, min(text) FROM chunks GROUP BY hash ORDER BY min(rowid) "
                            "LIMIT ?");
    s.bind(1, static_cast<int64_t>(limit));
    while (s.step()) out.push_back(ChunkToEmbed{s.text(0), s.text(1)});
    if (same && out.empty()) {
      // Complete: later searches skip this scan until the chunks change.
      exec(
          "INSERT OR REPLACE INTO meta(key, value) VALUES('embedded_generation', "
          "coalesce((SELECT value FROM meta WHERE key = 'chunk_generation'), 0))");
      writeStamp();
    }
    return out;
  });
}

void MemoryIndex::putVectors(const std::string& model, const std::vector<ChunkToEmbed>& chunks,
                             const std::vector<std::vector<float>>& vectors) {
  if (chunks.size() != vectors.size())
    throw std::invalid_argument("memory index: " + std::to_string(vectors.size()) +
                                " vectors for " + std::to_string(chunks.size()) + " chunks");
  std::vector<std::string> blobs;
  size_t dimensions = 0;
  for (const auto& v : vectors) {
    std::vector<float> unit = unitLength(v);
    if (unit.empty())
      throw std::invalid_argument("memory index: a vector is empty, zero or not finite");
    if (dimensions == 0) dimensions = unit.size();
    if (unit.size() != dimensions)
      throw std::invalid_argument("memory index: the vectors are not all of one dimension");
    blobs.push_back(packed(unit));
  }
  if (chunks.empty()) return;
  rebuildingOnDamage(false, [&] {
    StoredModel stored = storedModel(db_);
    exec("BEGIN IMMEDIATE");
    try {
      if (!stored.present || stored.model != model || stored.dimensions != dimensions) {
        // Another model, or another dimension under the same name (another model behind it):
        // the vectors held are of no use with these.
        exec(
            "DELETE FROM vectors; DELETE FROM vector_model;"
            "DELETE FROM meta WHERE key = 'embedded_generation'");
        Statement name(db_, "INSERT INTO vector_model(model, dimensions) VALUES(?, ?)");
        name.bind(1, model).bind(2, static_cast<int64_t>(dimensions)).step();
      }
      Statement put(db_, "INSERT OR REPLACE INTO vectors(hash, vector) VALUES(?, ?)");
      for (size_t i = 0; i < chunks.size(); ++i) {
        put.reset();
        put.bind(1, chunks[i].hash).bindBlob(2, blobs[i]).step();
      }
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    writeStamp();
  });
}

uint64_t MemoryIndex::embeddedChunks(const std::string& model) {
  return rebuildingOnDamage(true, [&]() -> uint64_t {
    StoredModel stored = storedModel(db_);
    if (!stored.present || stored.model != model) return 0;
    if (allEmbedded(db_)) return static_cast<uint64_t>(metaValue(db_, "chunks", 0));
    Statement s(db_, "SELECT count(*) FROM chunks WHERE hash IN (SELECT hash FROM vectors)");
    return s.step() ? static_cast<uint64_t>(s.integer(0)) : 0;
  });
}

std::vector<std::pair<std::string, uint64_t>> MemoryIndex::vectorCounts() {
  return rebuildingOnDamage(true, [&] {
    std::vector<std::pair<std::string, uint64_t>> out;
    Statement s(db_, "SELECT model, (SELECT count(*) FROM vectors) FROM vector_model LIMIT 1");
    while (s.step()) out.emplace_back(s.text(0), static_cast<uint64_t>(s.integer(1)));
    return out;
  });
}

std::vector<MemoryHit> MemoryIndex::searchHybrid(const std::string& text,
                                                 const std::vector<float>& queryVector,
                                                 const std::string& model, uint32_t maxResults,
                                                 const HybridWeights& weights) {
  std::vector<float> q = unitLength(queryVector);
  if (q.empty())
    throw std::invalid_argument("memory index: the query's vector is empty, zero or not finite");
  uint32_t candidates = maxResults * std::max<uint32_t>(weights.candidateFactor, 1);
  std::string all = ftsQuery(text, " ");
  return rebuildingOnDamage(true, [&] {
    // Keyword candidates (all the words, else any), their BM25 scaled so the best is 1.
    std::vector<MemoryHit> keyword;
    if (!all.empty()) {
      keyword = query(all, candidates);
      if (keyword.empty()) keyword = query(ftsQuery(text, " OR "), candidates);
    }
    double best = 0;
    for (const auto& hit : keyword) best = std::min(best, hit.score);
    std::unordered_map<std::string, std::vector<size_t>> keywordByHash;  // hash -> keyword[i]
    {
      Statement hashOf(db_, "SELECT hash FROM chunks WHERE rowid = ?");
      for (size_t i = 0; i < keyword.size(); ++i) {
        hashOf.reset();
        hashOf.bind(1, keyword[i].chunk);
        if (hashOf.step()) keywordByHash[hashOf.text(0)].push_back(i);
      }
    }

    // Meaning: one pass over the vectors, keeping the nearest texts (at the floor or above)
    // and the keyword candidates' similarities.
    std::vector<double> keywordSimilarity(keyword.size(), 0);
    using Near = std::pair<double, std::string>;
    std::priority_queue<Near, std::vector<Near>, std::greater<>> nearest;  // worst on top
    StoredModel stored = storedModel(db_);
    if (stored.present && stored.model == model && stored.dimensions == q.size()) {
      Statement vectors(db_, "SELECT hash, vector FROM vectors");
      while (vectors.step()) {
        double dot = similarity(q, vectors.blobData(1), vectors.bytes(1));
        if (std::isnan(dot)) continue;
        std::string hash = vectors.text(0);
        if (auto k = keywordByHash.find(hash); k != keywordByHash.end()) {
          for (size_t i : k->second) keywordSimilarity[i] = dot;
          continue;
        }
        if (dot < weights.minVectorOnlySimilarity) continue;
        if (nearest.size() < candidates) {
          nearest.emplace(dot, std::move(hash));
        } else if (dot > nearest.top().first) {
          nearest.pop();
          nearest.emplace(dot, std::move(hash));
        }
      }
    }

    std::vector<MemoryHit> hits;
    for (size_t i = 0; i < keyword.size(); ++i) {
      MemoryHit hit = keyword[i];
      double textScore = best < 0 ? hit.score / best : 1.0;
      hit.score = weights.vectorWeight * std::max(0.0, keywordSimilarity[i]) +
                  (1 - weights.vectorWeight) * textScore;
      hits.push_back(std::move(hit));
    }
    if (!nearest.empty()) {
      std::unordered_map<std::string, double> near;
      for (; !nearest.empty(); nearest.pop())
        near.emplace(nearest.top().second, nearest.top().first);
      // The chunks holding those texts (a text may be in several).
      Statement rows(db_, "SELECT rowid, hash, path, start_line, end_line, text FROM chunks");
      size_t found = 0;
      while (found < candidates && rows.step()) {
        auto n = near.find(rows.text(1));
        if (n == near.end()) continue;
        ++found;
        hits.push_back(MemoryHit{rows.text(2), static_cast<uint32_t>(rows.integer(3)),
                                 static_cast<uint32_t>(rows.integer(4)), snippetOf(rows.text(5)),
                                 weights.vectorWeight * n->second, rows.integer(0)});
      }
    }
    std::sort(hits.begin(), hits.end(), [](const MemoryHit& a, const MemoryHit& b) {
      if (a.score != b.score) return a.score > b.score;
      if (a.path != b.path) return a.path < b.path;
      return a.startLine < b.startLine;
    });
    if (hits.size() > maxResults) hits.resize(maxResults);
    return hits;
  });
}

}  // namespace chitin
