// SPDX-License-Identifier: Apache-2.0
// The egress broker: endpoints (one listening socket per worker), the socket directory, the
// audit budget (see broker.h; one tunnel's life is in tunnel.c++).
// Runs in: supervisor

#include <fcntl.h>
#include <signal.h>
#include <kj/debug.h>
#include <kj/io.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit-log.h"
#include "broker-impl.h"

namespace chitin::egress {

namespace {

constexpr int BACKLOG = 64;
constexpr uint64_t MINUTE_MS = 60'000;

class EndpointHandle final : public Endpoint {
 public:
  explicit EndpointHandle(EndpointState* state) : state_(state) { state_->refs++; }
  ~EndpointHandle() override {
    state_->close();
    state_->unref();
  }
  const std::string& socketPath() const override { return state_->path; }
  const std::vector<Rule>& rules() const override { return state_->rules; }
  void replaceRules(std::vector<Rule> rules) override { state_->rules = std::move(rules); }
  void setAdmission(Admission admission) override { state_->admission = std::move(admission); }

 private:
  EndpointState* state_;
};

// A private directory: ours, a real directory (not a symlink), mode 0700.
int openPrivateDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    KJ_FAIL_SYSCALL("mkdir(egress socket directory)", errno, dir);
  }
  int fd;
  KJ_SYSCALL(fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), dir);
  struct stat st;
  KJ_SYSCALL(fstat(fd, &st), dir);
  if (st.st_uid != geteuid() || (st.st_mode & 07777) != 0700) {
    close(fd);
    KJ_FAIL_REQUIRE("the egress socket directory must be owned by this user with mode 0700", dir,
                    st.st_uid, st.st_mode & 07777);
  }
  return fd;
}

}  // namespace

std::string escapeHost(const std::string& host) {
  static const char HEX[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : host.substr(0, 300)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += HEX[c >> 4];
      out += HEX[c & 15];
    }
  }
  return out;
}

BrokerSettings brokerSettings(const config::EgressConfig& egress, std::string socketDir) {
  BrokerSettings s;
  s.socketDir = std::move(socketDir);
  if (egress.connect_timeout_seconds() != 0) {
    s.connectTimeoutMs = egress.connect_timeout_seconds() * 1000;
  }
  if (egress.max_connection_seconds() != 0) {
    s.maxConnectionSeconds = egress.max_connection_seconds();
  }
  if (egress.max_connections_per_worker() != 0) {
    s.maxConnectionsPerWorker = egress.max_connections_per_worker();
  }
  return s;
}

void EndpointState::close() {
  if (broker == nullptr) return;
  Broker::Impl* owner = broker;
  broker = nullptr;
  admission = nullptr;  // drops what the decider holds; no tunnel is admitted any more
  owner->endpoints.erase(this);
  // The socket file first: from now on no worker can connect, even before the loop turns.
  unlink(path.c_str());
  uv_close(reinterpret_cast<uv_handle_t*>(&listener),
           [](uv_handle_t* h) { static_cast<EndpointState*>(h->data)->unref(); });
  std::set<Tunnel*> open = tunnels;
  for (Tunnel* tunnel : open) endTunnel(tunnel, "closed: the worker's endpoint was closed");
  if (failuresUnrecorded > 0) {
    audit::Record r;
    r.set_kind(audit::EGRESS);
    r.set_worker(worker);
    r.set_outcome("not recorded one by one: " + std::to_string(failuresUnrecorded) +
                  " more connections that reached no host (over the per-minute audit budget)");
    owner->audit.appendOrLog(std::move(r), false);
    failuresUnrecorded = 0;
  }
}

void EndpointState::unref() {
  if (--refs == 0) delete this;
}

void Broker::Impl::record(EndpointState& endpoint, audit::Record r, bool reachedHost) {
  r.set_kind(audit::EGRESS);
  r.set_worker(endpoint.worker);
  if (!reachedHost) {
    uint64_t now = uv_now(loop);
    if (now - endpoint.windowStartMs >= MINUTE_MS) {
      endpoint.windowStartMs = now;
      endpoint.failuresInWindow = 0;
    }
    if (endpoint.failuresInWindow >= settings.failureAuditsPerMinute) {
      endpoint.failuresUnrecorded++;
      return;
    }
    endpoint.failuresInWindow++;
    if (endpoint.failuresUnrecorded > 0) {
      r.set_detail(std::to_string(endpoint.failuresUnrecorded) +
                   " connections before this one reached no host and were over the per-minute "
                   "audit budget: not recorded one by one");
      endpoint.failuresUnrecorded = 0;
    }
  }
  // Not synced: the connection has already ended or been refused, and a tunnel's end must not
  // wait for the disk (the next synced record carries it to disk).
  audit.appendOrLog(std::move(r), false);
}

Broker::Broker(uv_loop_t* loop, BrokerSettings settings, Resolver& resolver, audit::AuditLog& audit)
    : impl_(new Impl{loop, std::move(settings), resolver, audit}) {
  // libuv writes with write(2): a worker that hangs up mid-write would otherwise kill the
  // supervisor with SIGPIPE. The supervisor ignores it (kj::setupAsyncIo does).
  struct sigaction current;
  KJ_SYSCALL(sigaction(SIGPIPE, nullptr, &current));
  KJ_REQUIRE(current.sa_handler == SIG_IGN, "the egress broker needs SIGPIPE ignored");
  impl_->dirFd = openPrivateDir(impl_->settings.socketDir);
}

Broker::~Broker() {
  closeAll();
  close(impl_->dirFd);
}

void Broker::closeAll() {
  std::set<EndpointState*> open = impl_->endpoints;
  for (EndpointState* endpoint : open) endpoint->close();
}

void Broker::setGatewayPort(uint16_t port) { impl_->gatewayPort = port; }

size_t Broker::tunnels() const { return impl_->tunnels; }

std::unique_ptr<Endpoint> Broker::open(const std::string& worker, std::vector<Rule> rules) {
  std::string name = "w" + std::to_string(++impl_->nextSocket) + ".sock";
  std::string path = impl_->settings.socketDir + "/" + name;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // A long $CHITIN_HOME would not fit sun_path: bind through our descriptor of the directory
  // instead ("/proc/self/fd/N/w1.sock" is short whatever the directory's path).
  std::string bindPath = path.size() < sizeof(address.sun_path)
                             ? path
                             : "/proc/self/fd/" + std::to_string(impl_->dirFd) + "/" + name;
  KJ_REQUIRE(bindPath.size() < sizeof(address.sun_path), "egress socket path too long", bindPath);
  memcpy(address.sun_path, bindPath.c_str(), bindPath.size() + 1);
  unlink(path.c_str());  // a stale socket of an earlier run; the directory is ours alone
  int fd;
  KJ_SYSCALL(fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  kj::AutoCloseFd owned(fd);
  KJ_SYSCALL(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), path);
  // connect() needs write permission on the socket file; only this user (and its sandboxes,
  // which map to it) has it.
  KJ_SYSCALL(chmod(path.c_str(), 0600), path);
  KJ_SYSCALL(listen(fd, BACKLOG), path);

  auto* state = new EndpointState;
  state->broker = impl_.get();
  state->worker = worker;
  state->rules = std::move(rules);
  state->path = path;
  state->refs = 1;  // the listening handle, until its close callback
  uv_pipe_init(impl_->loop, &state->listener, 0);
  state->listener.data = state;
  int raw = owned.release();
  int rc = uv_pipe_open(&state->listener, raw);
  if (rc != 0) ::close(raw);  // not the handle's yet
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&state->listener), BACKLOG,
                   [](uv_stream_t* server, int status) {
                     auto* endpoint = static_cast<EndpointState*>(server->data);
                     if (status < 0 || endpoint->broker == nullptr) return;
                     acceptTunnel(*endpoint);
                   });
  }
  impl_->endpoints.insert(state);
  auto handle = std::make_unique<EndpointHandle>(state);
  if (rc != 0) {
    handle.reset();  // closes and unlinks
    KJ_FAIL_REQUIRE("cannot listen on the egress socket", path, uv_strerror(rc));
  }
  spdlog::debug("egress: socket {} for {} ({} rules)", path, worker, state->rules.size());
  return handle;
}

}  // namespace chitin::egress
