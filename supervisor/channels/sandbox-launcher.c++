// SPDX-License-Identifier: Apache-2.0
// Channel workers in real sandboxes (see sandbox-launcher.h).
// Runs in: supervisor

#include "sandbox-launcher.h"

#include "inbound.h"
#include "worker-host.h"

namespace chitin::channels {

namespace {

// A sandboxed channel worker as the host sees it.
class HostedWorker final : public LaunchedWorker {
 public:
  explicit HostedWorker(kj::Own<WorkerHost> host)
      : host_(kj::mv(host)), client_(host_->bootstrap<rpc::ChannelWorker>()) {}
  rpc::ChannelWorker::Client client() override { return client_; }
  kj::Promise<WorkerExit> onExit() override { return host_->onExit(); }
  void kill(const std::string& reason) override { host_->kill(reason); }
  kj::Promise<std::string> onViolation() override { return host_->onViolation(); }

 private:
  kj::Own<WorkerHost> host_;
  rpc::ChannelWorker::Client client_;  // one bootstrap: start, send and status go to one object
};

}  // namespace

kj::Own<LaunchedWorker> SandboxLauncher::launch(const LaunchRequest& r) {
  spawn::SpawnRequest request;
  request.profile = r.profile;
  request.vars = r.vars;
  request.egressSocket = r.egressSocket;
  // Read with the bounds of the biggest legitimate channel message, not Cap'n Proto's defaults.
  return kj::heap<HostedWorker>(
      kj::heap<WorkerHost>(loop_, io_, spawner_.spawn(request), r.label, channelReaderOptions()));
}

}  // namespace chitin::channels
