// SPDX-License-Identifier: Apache-2.0
// A hostile tool worker for the sandbox suite: it starts like the exec worker (limits, RPC,
// the exec lockdown) and answers `run` by streaming live output without end, ignoring any
// cap. (Empty chunks and writes after end() are covered by supervisor/core/capped-sink-test.)
// Runs in: worker (sandboxed)

#include <kj/debug.h>

#include <cstring>

#include "tool.capnp.h"
#include "worker-main.h"

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class FloodingWorker final : public chitin::rpc::ToolWorker::Server {
 public:
  FloodingWorker() { memset(chunk_, 'z', sizeof(chunk_)); }

  kj::Promise<void> run(RunContext context) override {
    return flood(context.getParams().getOutput());
  }

 private:
  kj::Promise<void> flood(chitin::rpc::ByteSink::Client output) {
    auto request = output.writeRequest();
    request.setChunk(kj::arrayPtr(reinterpret_cast<const kj::byte*>(chunk_), sizeof(chunk_)));
    // Errors from the sink are ignored: a hostile worker just keeps going.
    return request.send().then(
        [this, output]() mutable { return flood(kj::mv(output)); },
        [this, output](kj::Exception&&) mutable { return flood(kj::mv(output)); });
  }
  char chunk_[16384];
};
#pragma GCC diagnostic pop

}  // namespace

int main(int argc, char** argv) {
  return chitin::runWorker(argc, argv, "exec", [](chitin::WorkerContext&) {
    chitin::rpc::ToolWorker::Client client = kj::heap<FloodingWorker>();
    return client;
  });
}
