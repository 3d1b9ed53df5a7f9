// SPDX-License-Identifier: Apache-2.0
// Tests for the Embedder a memory call is handed: requests past the contract's bounds are
// faults, the call's budget ends every request past it, the model's failure comes back as
// `failed`, and the vectors pass through as the model worker gave them.
// Runs in: test

#include "memory-embedder.h"

#include <doctest/doctest.h>
#include <kj/async.h>

#include <string>
#include <vector>

#include "model.capnp.h"

namespace chitin {
namespace {

struct Embeds {
  std::vector<size_t> calls;  // texts per call that reached the model
  bool fail = false;
};

EmbedFunction fakeModel(Embeds& seen) {
  return [&seen](capnp::List<capnp::Text>::Reader texts) {
    seen.calls.push_back(texts.size());
    auto message = kj::heap<capnp::MallocMessageBuilder>();
    auto result = message->initRoot<rpc::EmbeddingResult>();
    if (seen.fail) {
      result.initFailed().setMessage("the provider answered HTTP 400");
    } else {
      auto vectors = result.initVectors(texts.size());
      for (capnp::uint i = 0; i < texts.size(); ++i) {
        auto v = vectors.init(i, 3);
        v.set(0, static_cast<float>(texts[i].size()));
        v.set(1, 1.0f);
        v.set(2, -1.0f);
      }
    }
    return kj::Promise<kj::Own<capnp::MallocMessageBuilder>>(kj::mv(message));
  };
}

auto ask(rpc::Embedder::Client& embedder, std::vector<std::string> texts) {
  auto request = embedder.embedRequest();
  auto list = request.initTexts(static_cast<capnp::uint>(texts.size()));
  for (size_t i = 0; i < texts.size(); ++i) list.set(static_cast<capnp::uint>(i), texts[i]);
  return request.send();
}

TEST_CASE("memory embedder: vectors pass through; the budget ends every request past it") {
  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  Embeds seen;
  rpc::Embedder::Client embedder = kj::heap<MemoryEmbedder>(fakeModel(seen), 5);
  auto first = ask(embedder, {"abc", "de"}).wait(waitScope);
  REQUIRE(first.getFailed().size() == 0);
  REQUIRE(first.getVectors().size() == 2);
  CHECK(first.getVectors()[0][0] == 3.0f);
  CHECK(first.getVectors()[1][0] == 2.0f);
  CHECK(first.getVectors()[1][2] == -1.0f);
  // 3 left: a request of 4 fails without reaching the model, one of 3 is served, then none.
  auto over = ask(embedder, {"a", "b", "c", "d"}).wait(waitScope);
  CHECK(std::string(over.getFailed().cStr()) == "this call's embedding budget is spent");
  CHECK(ask(embedder, {"a", "b", "c"}).wait(waitScope).getVectors().size() == 3);
  CHECK(ask(embedder, {"a"}).wait(waitScope).getFailed().size() > 0);
  CHECK(seen.calls == std::vector<size_t>{2, 3});
}

TEST_CASE("memory embedder: requests past the contract's bounds are faults") {
  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  Embeds seen;
  rpc::Embedder::Client embedder = kj::heap<MemoryEmbedder>(fakeModel(seen), 1000);
  CHECK_THROWS_AS(ask(embedder, {}).wait(waitScope), kj::Exception);
  CHECK_THROWS_AS(
      ask(embedder, std::vector<std::string>(rpc::MAX_EMBED_TEXTS + 1, "t")).wait(waitScope),
      kj::Exception);
  CHECK_THROWS_AS(ask(embedder, {std::string(rpc::MAX_EMBED_TEXT_BYTES + 1, 'x')}).wait(waitScope),
                  kj::Exception);
  CHECK(seen.calls.empty());
  // At the bounds: served.
  CHECK(ask(embedder, std::vector<std::string>(rpc::MAX_EMBED_TEXTS,
                                               std::string(rpc::MAX_EMBED_TEXT_BYTES, 'x')))
            .wait(waitScope)
            .getVectors()
            .size() == rpc::MAX_EMBED_TEXTS);
}

TEST_CASE("memory embedder: the model's failure comes back as `failed`, and spends the budget") {
  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  Embeds seen;
  seen.fail = true;
  rpc::Embedder::Client embedder = kj::heap<MemoryEmbedder>(fakeModel(seen), 2);
  auto failed = ask(embedder, {"a", "b"}).wait(waitScope);
  CHECK(std::string(failed.getFailed().cStr()) == "the provider answered HTTP 400");
  CHECK(failed.getVectors().size() == 0);
  seen.fail = false;
  CHECK(ask(embedder, {"a"}).wait(waitScope).getFailed().size() > 0);  // budget spent
}

}  // namespace
}  // namespace chitin
