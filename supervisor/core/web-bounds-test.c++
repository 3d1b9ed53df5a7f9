// SPDX-License-Identifier: Apache-2.0
// Tests for the read bounds of the web tools' and the memory worker (web.capnp, browser.capnp,
// tool.capnp's memory bounds): the biggest
// answer an honest worker can send -- every field at the bound its contract states -- fits the
// traversal limit the supervisor reads that worker's connection with (readerOptionsFor), and a
// message just past it does not. So an honest worker is never killed as a protocol breaker, and
// a compromised one (a page that took over the renderer) cannot make the supervisor read more
// than its contract allows: before these bounds it was Cap'n Proto's default, 64 MiB, which a
// browser result with two large downloads already passed.
// Runs in: test

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "browser.capnp.h"
#include "tool-runner.h"
#include "tool.capnp.h"
#include "web-fetch-tool.h"
#include "web.capnp.h"
#include "worker-host.h"

namespace chitin {
namespace {

// Whether `message`, written out, can be read back whole with `options`: `touch` reads every
// field, as the supervisor's code does (each read counts against the traversal limit).
template <typename T, typename Touch>
bool readsWithin(capnp::MessageBuilder& message, capnp::ReaderOptions options, Touch touch) {
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  try {
    capnp::FlatArrayMessageReader reader(flat, options);
    touch(reader.getRoot<T>());
    return true;
  } catch (const kj::Exception&) {
    return false;
  }
}

size_t touchFetch(rpc::FetchResult::Reader r) {
  if (r.isFailed()) return r.getFailed().size();
  if (r.isRedirect()) return r.getRedirect().size();
  auto page = r.getPage();
  return page.getContentType().size() + page.getCharset().size() + page.getTitle().size() +
         page.getText().size();
}

size_t touchSearch(rpc::SearchOutcome::Reader r) {
  if (r.isFailed()) return r.getFailed().size();
  size_t n = 0;
  for (auto hit : r.getHits())
    n += hit.getTitle().size() + hit.getUrl().size() + hit.getSnippet().size();
  return n;
}

size_t touchBrowser(rpc::BrowserResult::Reader r) {
  size_t n = (r.isOk() ? r.getOk().size() : r.getFailed().size()) + r.getUrl().size() +
             r.getScreenshot().size();
  for (auto file : r.getDownloads()) n += file.getName().size() + file.getData().size();
  return n;
}

std::string filled(size_t bytes) { return std::string(bytes, 'x'); }

TEST_CASE("web bounds: web_fetch's biggest honest result fits its read bound; one past it does not") {
  capnp::ReaderOptions options = readerOptionsFor(rpc::MAX_FETCH_RESULT_BYTES);
  CHECK(rpc::MAX_FETCH_RESULT_BYTES < (64u << 20));
  auto build = [](size_t textBytes) {
    auto message = kj::heap<capnp::MallocMessageBuilder>();
    auto result = message->initRoot<rpc::FetchResult>();
    result.setStatus(200);
    auto page = result.initPage();
    page.setContentType(filled(rpc::MAX_SHORT_TEXT_BYTES));
    page.setCharset(filled(rpc::MAX_SHORT_TEXT_BYTES));
    page.setTitle(filled(rpc::MAX_TITLE_BYTES));
    page.setText(filled(textBytes));
    return message;
  };
  // The worker sends at most 4 bytes per character of maxChars.
  auto honest = build(size_t(WEB_FETCH_MAX_CHARS) * 4);
  CHECK(readsWithin<rpc::FetchResult>(*honest, options, touchFetch));
  auto past = build(rpc::MAX_FETCH_RESULT_BYTES + (64 << 10));
  CHECK_FALSE(readsWithin<rpc::FetchResult>(*past, options, touchFetch));
}

TEST_CASE("web bounds: web_search's biggest honest outcome fits its read bound") {
  capnp::MallocMessageBuilder message;
  auto hits = message.initRoot<rpc::SearchOutcome>().initHits(20);
  for (auto hit : hits) {
    hit.setTitle(filled(rpc::MAX_HIT_TEXT_BYTES));
    hit.setUrl(filled(rpc::MAX_HIT_TEXT_BYTES));
    hit.setSnippet(filled(rpc::MAX_HIT_TEXT_BYTES));
  }
  CHECK(readsWithin<rpc::SearchOutcome>(message, readerOptionsFor(rpc::MAX_SEARCH_OUTCOME_BYTES),
                                           touchSearch));
  capnp::MallocMessageBuilder past;
  past.initRoot<rpc::SearchOutcome>().setFailed(filled(rpc::MAX_SEARCH_OUTCOME_BYTES + (64 << 10)));
  CHECK_FALSE(readsWithin<rpc::SearchOutcome>(past, readerOptionsFor(rpc::MAX_SEARCH_OUTCOME_BYTES),
                                                 touchSearch));
}

TEST_CASE("web bounds: the browser's biggest honest result fits its read bound") {
  capnp::MallocMessageBuilder message;
  auto result = message.initRoot<rpc::BrowserResult>();
  result.setOk(filled(rpc::MAX_RESULT_TEXT_BYTES));
  result.setUrl(filled(rpc::MAX_RESULT_TEXT_BYTES));
  std::string png(rpc::MAX_SCREENSHOT_BYTES, '\x89');
  result.setScreenshot(kj::arrayPtr(reinterpret_cast<const kj::byte*>(png.data()), png.size()));
  auto files = result.initDownloads(rpc::MAX_DOWNLOADS_PER_RESULT);
  size_t each = rpc::MAX_DOWNLOAD_BYTES_PER_RESULT / rpc::MAX_DOWNLOADS_PER_RESULT;
  std::string data(each, 'd');
  for (auto file : files) {
    file.setName(filled(255));
    file.setData(kj::arrayPtr(reinterpret_cast<const kj::byte*>(data.data()), data.size()));
  }
  capnp::ReaderOptions options = readerOptionsFor(rpc::MAX_RESULT_BYTES);
  CHECK(readsWithin<rpc::BrowserResult>(message, options, touchBrowser));
  // The same with one more such file is past it.
  capnp::MallocMessageBuilder past;
  auto more = past.initRoot<rpc::BrowserResult>();
  more.setScreenshot(kj::arrayPtr(reinterpret_cast<const kj::byte*>(png.data()), png.size()));
  auto extra = more.initDownloads(rpc::MAX_DOWNLOADS_PER_RESULT + 6);
  for (auto file : extra)
    file.setData(kj::arrayPtr(reinterpret_cast<const kj::byte*>(data.data()), data.size()));
  CHECK_FALSE(readsWithin<rpc::BrowserResult>(past, options, touchBrowser));
}

size_t touchToolResult(rpc::ToolResult::Reader r) {
  return r.isOk() ? r.getOk().size() : r.getFailed().size();
}

TEST_CASE("memory bounds: the memory worker's biggest honest answer fits its read bound") {
  // memorySearch's JSON as the worker writes it (workers/memory/memory-main.c++), every text at
  // its bound and made only of a control character, which JSON escapes at 6 bytes each: the
  // most an honest worker can send.
  std::string control(1, '\x01');
  auto worst = [&](size_t bytes) {
    std::string s;
    for (size_t i = 0; i < bytes; ++i) s += control;
    return s;
  };
  nlohmann::json answer = {{"files", UINT64_MAX},
                           {"chunks", UINT64_MAX},
                           {"indexBytes", UINT64_MAX},
                           {"added", UINT64_MAX},
                           {"changed", UINT64_MAX},
                           {"removed", UINT64_MAX},
                           {"unchanged", UINT64_MAX},
                           {"stale", UINT64_MAX},
                           {"skipped", UINT64_MAX},
                           {"updatedAt", INT64_MAX},
                           {"rebuiltBecause", worst(rpc::MAX_MEMORY_TEXT_BYTES)},
                           // With embeddings (the model's name is the supervisor's; cut anyway).
                           {"ranking", "keyword"},
                           {"embeddingModel", worst(rpc::MAX_MEMORY_PATH_BYTES)},
                           {"embedded", UINT64_MAX},
                           {"embeddedNow", UINT64_MAX},
                           {"embeddingError", worst(rpc::MAX_MEMORY_TEXT_BYTES / 2)}};
  nlohmann::json hits = nlohmann::json::array();
  for (uint32_t i = 0; i < rpc::MAX_MEMORY_HITS; ++i) {
    hits.push_back({{"path", worst(rpc::MAX_MEMORY_PATH_BYTES)},
                    {"startLine", UINT32_MAX},
                    {"endLine", UINT32_MAX},
                    {"snippet", worst(rpc::MAX_MEMORY_SNIPPET_BYTES)},
                    {"score", -1.2345678901234567e-300}});
  }
  answer["hits"] = hits;
  std::string json = answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  CHECK(json.size() < rpc::MAX_MEMORY_RESULT_BYTES);
  capnp::ReaderOptions options = readerOptionsFor(rpc::MAX_MEMORY_RESULT_BYTES);
  capnp::MallocMessageBuilder search;
  search.initRoot<rpc::ToolResult>().setOk(json);
  CHECK(readsWithin<rpc::ToolResult>(search, options, touchToolResult));
  // memoryGet's lines at their bound.
  capnp::MallocMessageBuilder get;
  get.initRoot<rpc::ToolResult>().setOk(filled(rpc::MAX_MEMORY_GET_TEXT_BYTES));
  CHECK(readsWithin<rpc::ToolResult>(get, options, touchToolResult));
  // One past the bound is not read: before, the default 64 MiB would have been.
  capnp::MallocMessageBuilder past;
  past.initRoot<rpc::ToolResult>().setOk(filled(rpc::MAX_MEMORY_RESULT_BYTES + (64 << 10)));
  CHECK_FALSE(readsWithin<rpc::ToolResult>(past, options, touchToolResult));
  CHECK(readsWithin<rpc::ToolResult>(past, capnp::ReaderOptions(), touchToolResult));
}

TEST_CASE("tool outcome: the output cap holds for what the model reads, stray bytes included") {
  // 3,000 stray bytes under a cap of 1,000 + 1,024: made valid they would be 9,000.
  capnp::MallocMessageBuilder message;
  std::string stray(2000, '\xff');
  message.initRoot<rpc::ToolResult>().setOk(capnp::Text::Reader(stray.data(), stray.size()));
  auto outcome = toolOutcomeFrom(message.getRoot<rpc::ToolResult>().asReader(), 1000);
  CHECK(outcome.content.size() <= 1000 + 64);
  CHECK(outcome.content.rfind("\xef\xbf\xbd", 0) == 0);
  CHECK(outcome.content.find("[output truncated by the supervisor]") != std::string::npos);
  // Control: text within the cap is whole.
  capnp::MallocMessageBuilder small;
  small.initRoot<rpc::ToolResult>().setOk("plain");
  CHECK(toolOutcomeFrom(small.getRoot<rpc::ToolResult>().asReader(), 1000).content == "plain");
}

}  // namespace
}  // namespace chitin
