// SPDX-License-Identifier: Apache-2.0
// chitin-worker-web-fetch: serves `WebFetcher.fetch` for one web_fetch call, one hop at a time,
// through the egress broker; turns what comes back into readable UTF-8 text.
// Runs in: worker (sandboxed)
//
// Everything it handles is hostile: the page, its headers, its redirects. It holds nothing
// worth stealing (no credential, no workspace, no home) and reaches only the one host:port the
// supervisor granted for the hop in progress. Flag (tests only): --egress-socket=PATH (default
// /run/chitin/egress.sock, where the sandbox binds it).

#include <kj/debug.h>
#include <string.h>

#include "extract.h"
#include "fetch.h"
#include "utf8.h"
#include "web.capnp.h"
#include "worker-main.h"

namespace chitin {
namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class WebFetcherImpl final : public rpc::WebFetcher::Server {
 public:
  explicit WebFetcherImpl(std::string egressSocket) : egressSocket_(std::move(egressSocket)) {}

  kj::Promise<void> fetch(FetchContext context) override {
    auto request = context.getParams().getRequest();
    std::string url = request.getUrl();
    web::FetchOutcome got =
        web::fetchOnce(egressSocket_, url, request.getMaxBodyBytes(), request.getTimeoutMs());
    auto result = context.getResults().initResult();
    result.setStatus(static_cast<uint16_t>(got.status));
    if (got.kind == web::FetchOutcome::Kind::FAILED) {
      result.setFailed(clipUtf8(got.error, rpc::MAX_SHORT_TEXT_BYTES - 3));
      return kj::READY_NOW;
    }
    if (got.kind == web::FetchOutcome::Kind::REDIRECT) {
      result.setRedirect(clipUtf8(got.location, rpc::MAX_SHORT_TEXT_BYTES - 3));
      return kj::READY_NOW;
    }
    auto page = result.initPage();
    std::string media = web::mediaType(got.contentType);
    page.setContentType(clipUtf8(media, rpc::MAX_SHORT_TEXT_BYTES - 3));
    page.setBodyBytes(got.body.size());
    web::Kind kind = web::classifyBody(media, got.body);
    bool truncated = got.truncated;
    if (kind == web::Kind::BINARY) {
      page.setText(web::describeBinary(media, got.body.size(), got.truncated));
    } else {
      std::string charset = web::detectCharset(got.contentType, got.body, kind == web::Kind::HTML);
      std::string text = web::decodeToUtf8(got.body, charset);
      page.setCharset(clipUtf8(charset, rpc::MAX_SHORT_TEXT_BYTES - 3));
      if (kind == web::Kind::HTML) {
        auto extracted = web::extractHtml(text, url, request.getMarkdown(), request.getMaxChars());
        page.setTitle(clipUtf8(extracted.title, rpc::MAX_TITLE_BYTES - 3));
        truncated = truncated || extracted.truncated;
        text = std::move(extracted.text);
      }
      // The supervisor cuts at maxChars again (it trusts no worker to); this keeps the
      // message small. Cut on a character boundary.
      size_t limit = size_t(request.getMaxChars()) * 4;
      if (text.size() > limit) {
        size_t cut = limit;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) cut--;
        text.resize(cut);
        truncated = true;
      }
      // Cap'n Proto Text cannot carry NUL.
      for (char& c : text) {
        if (c == '\0') c = ' ';
      }
      page.setText(text);
    }
    page.setTruncated(truncated);
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
      argc, argv, "web-fetch", [argc, argv](chitin::WorkerContext&) -> capnp::Capability::Client {
        chitin::rpc::WebFetcher::Client client =
            kj::heap<chitin::WebFetcherImpl>(chitin::web::egressSocketFromArgs(argc, argv));
        return client;
      });
}
