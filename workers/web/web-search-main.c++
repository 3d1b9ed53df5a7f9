// SPDX-License-Identifier: Apache-2.0
// chitin-worker-web-search: serves `WebSearcher.search` for one web_search call: one request to
// the configured provider through the egress broker, its answer parsed into title/url/snippet.
// Runs in: worker (sandboxed)
//
// It holds the provider's API key (Brave) for this one call, handed over Cap'n Proto, never
// from a file or the environment; its only rule at the broker is the provider's host:port, so
// the key can go nowhere else. Flag (tests only): --egress-socket=PATH.

#include <kj/debug.h>
#include <string.h>

#include <stdexcept>

#include "fetch.h"
#include "search.h"
#include "utf8.h"
#include "web.capnp.h"
#include "worker-main.h"

namespace chitin {
namespace {

constexpr uint64_t MAX_ANSWER_BYTES = 4 << 20;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class WebSearcherImpl final : public rpc::WebSearcher::Server {
 public:
  explicit WebSearcherImpl(std::string egressSocket) : egressSocket_(std::move(egressSocket)) {}

  kj::Promise<void> search(SearchContext context) override {
    auto request = context.getParams().getRequest();
    std::string provider = request.getProvider();
    unsigned count = request.getCount() == 0 ? 5 : std::min<unsigned>(request.getCount(), 20);
    auto outcome = context.getResults().initOutcome();
    // Every text at its contract bound (web.capnp), cut at a character: the supervisor kills a
    // worker whose answer is larger.
    auto shortText = [](const std::string& s) { return clipUtf8(s, rpc::MAX_SHORT_TEXT_BYTES - 3); };
    auto hitText = [](const std::string& s) { return clipUtf8(s, rpc::MAX_HIT_TEXT_BYTES - 3); };
    std::string url =
        web::searchRequestUrl(provider, request.getEndpoint(), request.getQuery(), count);
    if (url.empty()) {
      outcome.setFailed(shortText("unknown search provider \"" + provider + "\""));
      return kj::READY_NOW;
    }
    web::FetchOutcome got =
        web::fetchOnce(egressSocket_, url, MAX_ANSWER_BYTES, request.getTimeoutMs(),
                       web::searchHeaders(provider, request.getApiKey()));
    if (got.kind == web::FetchOutcome::Kind::FAILED) {
      outcome.setFailed(shortText(got.error));
      return kj::READY_NOW;
    }
    if (got.status != 200) {
      outcome.setFailed(shortText(provider + " answered HTTP " + std::to_string(got.status) +
                                  (got.status == 401 || got.status == 403
                                       ? " (is the API key right?)"
                                   : got.status == 429 ? " (rate limited)"
                                                       : "")));
      return kj::READY_NOW;
    }
    try {
      auto hits = web::parseSearchAnswer(provider, got.body, count);
      auto list = outcome.initHits(static_cast<unsigned>(hits.size()));
      for (unsigned i = 0; i < hits.size(); i++) {
        list[i].setTitle(hitText(hits[i].title));
        list[i].setUrl(hitText(hits[i].url));
        list[i].setSnippet(hitText(hits[i].snippet));
      }
    } catch (const std::exception& e) {
      outcome.setFailed(shortText(e.what()));
    }
    return kj::READY_NOW;
  }

 private:
  std::string egressSocket_;
};
#pragma GCC diagnostic pop

}  // namespace
}  // namespace chitin

int main(int argc, char** argv) {
  return chitin::runWorker(
      argc, argv, "web-search", [argc, argv](chitin::WorkerContext&) -> capnp::Capability::Client {
        chitin::rpc::WebSearcher::Client client =
            kj::heap<chitin::WebSearcherImpl>(chitin::web::egressSocketFromArgs(argc, argv));
        return client;
      });
}
