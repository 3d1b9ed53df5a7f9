// SPDX-License-Identifier: Apache-2.0
// The memory index's embeddings and hybrid ranking (see memory-index.h).
// Runs in: the memory worker (sandboxed), and its tests.
//
// Vectors are float32, little-endian as this machine is, scaled to length 1 when stored, so a
// similarity is a dot product. A stored vector that is not a whole number of floats or not of
// the query's dimension is skipped: the index is never trusted, only used.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>

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

// A vector-only hit's snippet: the chunk's start ("…" where cut); no word of it matched.
std::string snippetOf(const std::string& text) {
  std::string cut = cutAtCharacter(text, 300);
  return cut.size() < text.size() ? cut + "…" : cut;
}

std::string packed(const std::vector<float>& v) {
  std::string bytes(v.size() * sizeof(float), '\0');
  memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

}  // namespace

std::vector<ChunkToEmbed> MemoryIndex::chunksToEmbed(const std::string& model, uint32_t limit) {
  return rebuildingOnDamage(true, [&] {
    std::vector<ChunkToEmbed> out;
    Statement s(db_,
                "SELECT hash, min(text) FROM chunks WHERE hash NOT IN "
                "(SELECT hash FROM vectors WHERE model = ?) GROUP BY hash ORDER BY min(rowid) "
                "LIMIT ?");
    s.bind(1, model).bind(2, static_cast<int64_t>(limit));
    while (s.step()) out.push_back(ChunkToEmbed{s.text(0), s.text(1)});
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
  rebuildingOnDamage(false, [&] {
    {
      // Another dimension under the same model name means another model: start over.
      Statement stored(db_, "SELECT length(vector) FROM vectors WHERE model = ? LIMIT 1");
      stored.bind(1, model);
      bool other =
          stored.step() && static_cast<size_t>(stored.integer(0)) != dimensions * sizeof(float);
      exec("BEGIN IMMEDIATE");
      try {
        Statement drop(db_, other ? "DELETE FROM vectors" : "DELETE FROM vectors WHERE model != ?");
        if (!other) drop.bind(1, model);
        drop.step();
        Statement put(db_, "INSERT OR REPLACE INTO vectors(model, hash, vector) VALUES(?, ?, ?)");
        for (size_t i = 0; i < chunks.size(); ++i) {
          put.reset();
          put.bind(1, model).bind(2, chunks[i].hash).bindBlob(3, blobs[i]).step();
        }
        // Texts no chunk holds any more (edited or removed notes).
        exec("DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM chunks)");
        exec("COMMIT");
      } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }
    writeStamp();
  });
}

uint64_t MemoryIndex::embeddedChunks(const std::string& model) {
  return rebuildingOnDamage(true, [&] {
    Statement s(db_,
                "SELECT count(*) FROM chunks WHERE hash IN "
                "(SELECT hash FROM vectors WHERE model = ?)");
    s.bind(1, model);
    return s.step() ? static_cast<uint64_t>(s.integer(0)) : 0;
  });
}

std::vector<std::pair<std::string, uint64_t>> MemoryIndex::vectorCounts() {
  return rebuildingOnDamage(true, [&] {
    std::vector<std::pair<std::string, uint64_t>> out;
    Statement s(db_, "SELECT model, count(*) FROM vectors GROUP BY model ORDER BY model");
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

    struct Scored {
      double similarity = 0;
      double text = 0;
      bool keyword = false;
    };
    std::unordered_map<int64_t, Scored> scored;
    for (const auto& hit : keyword) {
      Scored& s = scored[hit.chunk];
      s.keyword = true;
      s.text = best < 0 ? hit.score / best : 1.0;
    }

    // Meaning candidates: every chunk with a vector of the query's dimension.
    std::vector<std::pair<double, int64_t>> nearest;
    Statement vectors(db_,
                      "SELECT c.rowid, v.vector FROM chunks c JOIN vectors v "
                      "ON v.model = ? AND v.hash = c.hash");
    vectors.bind(1, model);
    const size_t bytes = q.size() * sizeof(float);
    std::vector<float> v(q.size());
    while (vectors.step()) {
      std::string blob = vectors.blob(1);
      if (blob.size() != bytes) continue;
      memcpy(v.data(), blob.data(), bytes);
      double dot = 0;
      for (size_t i = 0; i < q.size(); ++i) dot += static_cast<double>(q[i]) * v[i];
      if (!std::isfinite(dot)) continue;
      nearest.emplace_back(dot, vectors.integer(0));
    }
    size_t keep = std::min<size_t>(nearest.size(), candidates);
    std::partial_sort(nearest.begin(), nearest.begin() + static_cast<ptrdiff_t>(keep),
                      nearest.end(), std::greater<>());
    nearest.resize(keep);
    // The keyword candidates' similarities too (they may lie outside the nearest).
    std::unordered_map<int64_t, double> similarity(nearest.begin(), nearest.end());
    for (auto& [dot, chunk] : nearest) {
      if (!scored.count(chunk) && dot < weights.minVectorOnlySimilarity) continue;
      scored[chunk].similarity = dot;
    }
    if (!keyword.empty()) {
      Statement one(db_,
                    "SELECT v.vector FROM chunks c JOIN vectors v "
                    "ON v.model = ? AND v.hash = c.hash WHERE c.rowid = ?");
      for (const auto& hit : keyword) {
        if (similarity.count(hit.chunk)) {
          scored[hit.chunk].similarity = similarity[hit.chunk];
          continue;
        }
        one.reset();
        one.bind(1, model).bind(2, hit.chunk);
        if (!one.step()) continue;
        std::string blob = one.blob(0);
        if (blob.size() != bytes) continue;
        memcpy(v.data(), blob.data(), bytes);
        double dot = 0;
        for (size_t i = 0; i < q.size(); ++i) dot += static_cast<double>(q[i]) * v[i];
        if (std::isfinite(dot)) scored[hit.chunk].similarity = dot;
      }
    }

    std::map<int64_t, const MemoryHit*> keywordHit;
    for (const auto& hit : keyword) keywordHit[hit.chunk] = &hit;
    std::vector<MemoryHit> hits;
    Statement chunk(db_, "SELECT path, start_line, end_line, text FROM chunks WHERE rowid = ?");
    for (const auto& [id, s] : scored) {
      MemoryHit hit;
      if (auto k = keywordHit.find(id); k != keywordHit.end()) {
        hit = *k->second;
      } else {
        chunk.reset();
        chunk.bind(1, id);
        if (!chunk.step()) continue;
        hit = MemoryHit{chunk.text(0),
                        static_cast<uint32_t>(chunk.integer(1)),
                        static_cast<uint32_t>(chunk.integer(2)),
                        snippetOf(chunk.text(3)),
                        0,
                        id};
      }
      hit.score =
          weights.vectorWeight * std::max(0.0, s.similarity) + (1 - weights.vectorWeight) * s.text;
      hits.push_back(std::move(hit));
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
