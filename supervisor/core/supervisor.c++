// SPDX-License-Identifier: Apache-2.0
// The supervisor's main sequence (see supervisor.h).
// Runs in: supervisor

#include "supervisor.h"

#include "memory-tool.h"
#include "message-tool.h"

#include <chitin-build-config.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "account-setup.h"
#include "agent-core.h"
#include "audit-log.h"
#include "allowlists.h"
#include "broker.h"
#include "browser-tool.h"
#include "hosts-file-resolver.h"
#include "web-fetch-tool.h"
#include "web-search-tool.h"
#include "system-prompt.h"
#include "workspace-files.h"
#include "channel-host.h"
#include "channel-router.h"
#include "channel-service.h"
#include "sandbox-launcher.h"
#include "pairing.h"
#include "policy-host.h"
#include "snapshots.h"
#include "config.h"
#include "gateway.h"
#include "home.h"
#include "model-host.h"
#include "spawner.h"
#include "process-limits.h"
#include "spare-sandboxes.h"
#include "tool-runner.h"
#include "transcript.h"
#include "uv-kj-bridge.h"

namespace chitin {

namespace {

std::string readSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(std::string("cannot read: ") + strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Signals {
  uv_signal_t term;
  uv_signal_t interrupt;
  uv_signal_t hangup;
};

}  // namespace

int runGateway(const GatewayCommand& command) {
  // Logs go to stderr; stdout carries only what a script may parse (the URLs).
  spdlog::set_default_logger(spdlog::stderr_color_st("chitin"));

  // 1. Who we run as. Workers must never run as uid 0 (bwrap would map root to root on every
  //    bind mount), so root must name a service user to become.
  std::optional<ServiceUser> serviceUser;
  if (geteuid() == 0) {
    if (command.user.empty()) {
      fprintf(stderr,
              "chitin gateway: refusing to run as root. chitin never runs workers as uid 0.\n"
              "Start it as an ordinary user, or as root with --user NAME to drop to that user\n"
              "(create one with: useradd --system --create-home chitin).\n");
      return 2;
    }
    try {
      serviceUser = lookupServiceUser(command.user);
    } catch (const std::exception& e) {
      fprintf(stderr, "chitin gateway: %s\n", e.what());
      return 2;
    }
  } else if (!command.user.empty()) {
    struct passwd* pw = getpwuid(geteuid());
    if (pw == nullptr || command.user != pw->pw_name) {
      fprintf(stderr, "chitin gateway: --user %s needs root (running as uid %d)\n",
              command.user.c_str(), static_cast<int>(geteuid()));
      return 2;
    }
  }

  // Descriptors for a thousand sessions' workers (process-limits.h).
  rlim_t openFiles = raiseOpenFileLimit();
  if (openFiles < 4096) {
    spdlog::warn("open files limited to {} (ulimit -n): about {} sessions with live workers",
                 openFiles, openFiles / 3);
  }

  // 2. Home and config (first start writes the commented example).
  HomeLayout home;
  config::ChitinConfig config;
  try {
    home.root = defaultHomePath(serviceUser ? serviceUser->homeDir : "");
    config = loadConfigFile((ensureHomeLayout(home, "main"), home.configPath()));
    ensureHomeLayout(home, config.agent().id());
    // The prompt's date and time in the owner's zone (set before any thread could read TZ).
    if (!config.agent().time_zone().empty()) {
      setenv("TZ", config.agent().time_zone().c_str(), 1);
      tzset();
    }
    for (const auto& name :
         bootstrapWorkspaceOnce(home.workspaceDir(config.agent().id()),
                                home.stateDir() + "/bootstrapped-" + config.agent().id())) {
      spdlog::info("workspace: wrote {} from its template", name);
    }
  } catch (const ConfigError& e) {
    fprintf(stderr, "chitin gateway: config error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fprintf(stderr, "chitin gateway: %s\n", e.what());
    return 2;
  }

  // 3. Drop root for good before anything else runs.
  if (serviceUser) {
    try {
      dropRootTo(*serviceUser, home.root);
    } catch (const std::exception& e) {
      fprintf(stderr, "chitin gateway: %s\n", e.what());
      return 1;
    }
  }

  ModelSettings modelSettings;
  std::vector<egress::Rule> modelEgress;
  std::string token;
  try {
    modelSettings = resolveModelSettings(config, processEnvironment(), readSmallFile);
    modelEgress = egress::modelRules(modelSettings.baseUrl, config.egress());
    token = loadOrCreateToken(home);
  } catch (const ConfigError& e) {
    fprintf(stderr, "chitin gateway: config error: %s\n", e.what());
    return 2;
  } catch (const egress::RuleError& e) {
    fprintf(stderr, "chitin gateway: config error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fprintf(stderr, "chitin gateway: %s\n", e.what());
    return 1;
  }

  // The policy, the audit log and the snapshots: without them nothing may act.
  std::unique_ptr<PolicyHost> policy;
  std::unique_ptr<PairingStore> pairing;
  std::unique_ptr<audit::AuditLog> auditLog;
  std::unique_ptr<audit::Snapshots> snapshots;
  std::unique_ptr<UntrustedFiles> untrusted;
  try {
    PolicyHostSettings ps;
    if (config.policy().include_shipped()) ps.policyDirs.push_back(command.policyDir);
    ps.policyDirs.push_back(home.policiesDir());
    ps.entitiesPath = home.entitiesPath();
    ps.agentId = config.agent().id();
    policy = std::make_unique<PolicyHost>(ps);
  } catch (const std::exception& e) {
    fprintf(stderr, "chitin gateway: %s\n(fix the file, then check with `chitin policy check`)\n",
            e.what());
    return 2;
  }
  try {
    pairing = std::make_unique<PairingStore>(home.pairingPath(), unixNow);
    // The check of the whole chain waits out the start-up: begun at once, it read and hashed the
    // log beside it on two cores, and start -> first client grew with the log (tests/bench (a):
    // +3 to +6 ms with 200,000 records).
    auditLog = audit::AuditLog::open(home.auditDir(), std::chrono::milliseconds(500));
    const auto& sc = config.snapshots();
    audit::SnapshotLimits limits;
    limits.maxDepth = sc.max_depth();
    limits.maxEntries = sc.max_entries();
    limits.maxFileBytes = sc.max_file_bytes();
    limits.maxSnapshotBytes = sc.max_snapshot_bytes();
    limits.timeLimitMs = sc.time_limit_seconds() * 1000;
    audit::RetentionPolicy retention;
    retention.keepDays = sc.keep_days();
    retention.keepSnapshots = sc.keep_snapshots();
    retention.maxBytes = sc.max_store_bytes();
    snapshots = std::make_unique<audit::Snapshots>(home.snapshotsDir(config.agent().id()),
                                                   home.workspaceDir(config.agent().id()), limits,
                                                   retention);
    untrusted = std::make_unique<UntrustedFiles>(home.untrustedFilesPath(config.agent().id()));
  } catch (const std::exception& e) {
    fprintf(stderr, "chitin gateway: %s\n", e.what());
    return 1;
  }
  // (A chain that does not verify is said loudly by the audit log's own check, off the loop.)
  // Appended here, synced below on the log's thread while the start-up goes on: the first record
  // that must be on disk before something happens (a tool call's intent) is synced in line and
  // takes this one with it, so nothing waits for it.
  {
    audit::Record started;
    started.set_kind(audit::CONFIG_CHANGE);
    started.set_principal("chitin");
    started.set_outcome("started");
    started.set_detail("gateway " CHITIN_VERSION " started with " +
                       std::to_string(policy->policyCount()) + " policies");
    try {
      auditLog->append(started, false);
    } catch (const std::exception& e) {
      fprintf(stderr, "chitin gateway: the audit log cannot be written: %s\n", e.what());
      return 1;
    }
  }

  uv_loop_t loop;
  KJ_ASSERT(uv_loop_init(&loop) == 0);
  int status = 0;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&loop, io);
    kj::Promise<void> startSynced =
        auditLog->syncAsync()
            .catch_([](kj::Exception&& e) {
              spdlog::error("the gateway's start record is not on disk: {}",
                            e.getDescription().cStr());
            })
            .eagerlyEvaluate(nullptr);

    spawn::SystemSpawnOs spawnOs;
    spawn::SpawnerSettings spawnSettings;
    spawnSettings.bwrapPath = config.sandbox().bwrap_path();
    spawnSettings.profileDir = config.sandbox().profile_dir().empty()
                                   ? command.profileDir
                                   : config.sandbox().profile_dir();
    spawnSettings.workerDir =
        config.sandbox().worker_dir().empty() ? command.workerDir : config.sandbox().worker_dir();
    spawnSettings.warn = [](const std::string& message) { spdlog::warn("{}", message); };
    spawn::Spawner spawner(spawnSettings, spawnOs);

    // The egress broker before every worker that may hold one of its endpoints.
    egress::SystemResolver systemResolver(&loop);
    // The owner's overrides (tests, homelab), checked when the config was loaded; the broker
    // judges their answers like any other.
    std::unique_ptr<egress::HostsFileResolver> overrides;
    std::unique_ptr<egress::Broker> broker;
    try {
      if (!config.egress().resolver_hosts_file().empty()) {
        overrides = std::make_unique<egress::HostsFileResolver>(
            &loop, egress::readHostsFile(config.egress().resolver_hosts_file()), systemResolver);
        spdlog::warn("egress: names listed in {} resolve as that file says",
                     config.egress().resolver_hosts_file());
      }
      egress::Resolver& resolver =
          overrides ? static_cast<egress::Resolver&>(*overrides) : systemResolver;
      broker = std::make_unique<egress::Broker>(
          &loop, egress::brokerSettings(config.egress(), home.egressSocketDir()), resolver,
          *auditLog);
    } catch (const egress::RuleError& e) {
      fprintf(stderr, "chitin gateway: %s\n", e.what());
      bridge.close();
      uv_run(&loop, UV_RUN_DEFAULT);
      return 1;
    } catch (const kj::Exception& e) {
      fprintf(stderr, "chitin gateway: cannot set up the egress broker: %s\n",
              e.getDescription().cStr());
      bridge.close();
      uv_run(&loop, UV_RUN_DEFAULT);
      return 1;
    }

    TranscriptStore transcripts(home.sessionsDir());
    ModelHost model(&loop, io, spawner, modelSettings, *broker, modelEgress);
    ToolRunnerSettings toolSettings;
    toolSettings.defaultTimeoutSeconds = config.agent().tool_timeout_seconds();
    toolSettings.maxTimeoutSeconds = config.agent().tool_timeout_seconds();
    toolSettings.maxOutputBytes = config.agent().max_tool_output_bytes();
    toolSettings.memoryStateDir = home.memoryStateDir(config.agent().id());
    toolSettings.ownerSkillsDir = home.root + "/skills";
    if (!modelSettings.embeddingModel.empty()) {
      toolSettings.embeddingModel = modelSettings.embeddingModel;
      toolSettings.embed = [&model](capnp::List<capnp::Text>::Reader texts) {
        return model.embed(texts);
      };
    }
    SpareSettings spareSettings;
    spareSettings.maxSpares = config.agent().spare_sandboxes();
    spareSettings.idleSeconds = config.agent().session_idle_seconds();
    SpareSandboxes spares(&loop, io, spawner, spareSettings);
    ToolRunner sandboxedTools(&loop, io, spawner, toolSettings, &spares);
    // memory_search's hits are judged for untrusted content file by file (memory-tool.h).
    MemoryToolSettings memorySettings;
    memorySettings.workspaceDir = home.workspaceDir(config.agent().id());
    memorySettings.untrustedPaths.assign(config.policy().untrusted_paths().begin(),
                                         config.policy().untrusted_paths().end());
    memorySettings.maxOutputBytes = toolSettings.maxOutputBytes;
    MemoryTool memoryTool(sandboxedTools, *untrusted, memorySettings);
    // `message` is sent by the channel host (set below when channels are configured).
    MessageTool messageTool(memoryTool, nullptr);
    // web_fetch: its own worker per call, each hop decided by the guard and granted on the
    // worker's broker endpoint (web-fetch-tool.h).
    WebFetchSettings webSettings;
    webSettings.egress = config.egress();
    webSettings.maxOutputBytes = toolSettings.maxOutputBytes;
    // Per hop: 30 s, or less when the owner caps every tool call lower.
    webSettings.timeoutMs = std::min<uint32_t>(30000, config.agent().tool_timeout_seconds() * 1000);
    WebToolContext webContext{&loop, io, spawner, broker.get()};
    WebFetchTool webTools(messageTool, webContext, webSettings);
    // web_search: its own worker per call, one rule (the provider's host:port); the Brave key is
    // read here and handed to that worker only, in the request.
    WebSearchSettings searchSettings;
    searchSettings.provider = searchProvider(config.web_search(), home.root);  // checked at load
    searchSettings.egress = config.egress();
    searchSettings.maxOutputBytes = toolSettings.maxOutputBytes;
    searchSettings.timeoutMs = webSettings.timeoutMs;
    if (searchSettings.provider.provider == "brave") {
      try {
        searchSettings.apiKey =
            channels::readCredential(searchSettings.provider.credentialPath, geteuid());
      } catch (const std::exception& e) {
        // web_search then says so to the model; the rest of the gateway runs.
        spdlog::warn("web_search (Brave): no usable API key: {}", e.what());
      }
    }
    WebSearchTool searchTools(webTools, webContext, searchSettings);
    // `browser`: one sandboxed Chromium per session, each document decided by the policy.
    BrowserToolSettings browserSettings;
    browserSettings.agentId = config.agent().id();
    browserSettings.stateDir = home.stateDir();
    browserSettings.egress = config.egress();
    browserSettings.idleSeconds = config.agent().session_idle_seconds();
    BrowserTool tools(searchTools, &loop, io, spawner, *broker, browserSettings);

    AgentCoreSettings coreSettings;
    coreSettings.agentId = config.agent().id();
    coreSettings.systemPrompt = config.agent().system_prompt();
    coreSettings.timeZone =
        config.agent().time_zone().empty() ? hostTimeZone() : config.agent().time_zone();
    coreSettings.promptBudget.perFile = config.agent().prompt_file_max_chars();
    coreSettings.promptBudget.total = config.agent().prompt_files_max_chars();
    coreSettings.skillDirs = {
        {skills::Source::WORKSPACE, home.workspaceDir(config.agent().id()) + "/skills"},
        {skills::Source::OWNER, home.root + "/skills"},
        {skills::Source::BUNDLED, command.skillsDir}};
    coreSettings.workspaceDir = home.workspaceDir(config.agent().id());
    coreSettings.maxSteps = config.agent().max_steps();
    coreSettings.sessionIdleSeconds = config.agent().session_idle_seconds();
    coreSettings.sessionReset = sessionResetPolicy(config.agent().session_reset().daily_at(),
                                                   config.agent().session_reset().idle_minutes());
    coreSettings.compaction = compactionSettingsFrom(config.agent().compaction());
    coreSettings.homeDir = home.root;
    coreSettings.sessionModelsPath = home.stateDir() + "/session-models.json";
    coreSettings.version = CHITIN_VERSION;
    coreSettings.auditDir = home.auditDir();
    coreSettings.approvalTimeoutSeconds = config.policy().approval_timeout_seconds();
    coreSettings.untrustedPaths.assign(config.policy().untrusted_paths().begin(),
                                       config.policy().untrusted_paths().end());
    coreSettings.mentionPatterns.assign(config.policy().mention_patterns().begin(),
                                        config.policy().mention_patterns().end());
    AgentCore core(&loop, io, spawner, transcripts, model, tools, coreSettings, "checking",
                   Safeguards{*policy, *pairing, *auditLog, *snapshots, *untrusted});

    gateway::GatewayOptions gwOptions;
    gwOptions.bind = config.gateway().bind();
    gwOptions.port = command.port ? *command.port : static_cast<uint16_t>(config.gateway().port());
    gwOptions.token = token;
    gwOptions.allowedOrigins.assign(config.gateway().allowed_origins().begin(),
                                    config.gateway().allowed_origins().end());
    gwOptions.webRoot = command.webRoot;
    gwOptions.maxFrameBytes = config.gateway().max_frame_bytes();
    gwOptions.maxConnections = config.gateway().max_connections();
    gwOptions.authFailuresBeforeLockout = config.gateway().auth_failures_before_lockout();
    gwOptions.lockoutSeconds = config.gateway().lockout_seconds();
    gwOptions.version = CHITIN_VERSION;
    // Channels (supervisor/channels): one sandboxed worker per configured account; what they
    // deliver runs through the core, replies go back to the same chat.
    const auto& cc = config.channels();
    channels::RouterSettings routerSettings;
    routerSettings.workspaceDir = coreSettings.workspaceDir;
    routerSettings.seenDir = home.root + "/state/channel-seen";
    routerSettings.ackReaction = cc.ack_reaction();
    routerSettings.maxAttachmentBytes = cc.max_attachment_bytes();
    channels::ChannelRouter router(core, io.provider->getTimer(), untrusted.get(), routerSettings,
                                   &loop);
    channels::HostSettings hostSettings;
    hostSettings.homeDir = home.root;
    hostSettings.serviceUid = geteuid();
    hostSettings.maxAttachmentBytes = cc.max_attachment_bytes();
    hostSettings.egress = config.egress();
    channels::SandboxLauncher channelLauncher(&loop, io, spawner);
    channels::BrokerEndpoints channelEgress(*broker);
    channels::ChannelHost channelHost(
        channelLauncher, &channelEgress, router, *auditLog, io.provider->getTimer(), hostSettings,
        std::vector<config::ChannelAccountConfig>(cc.account().begin(), cc.account().end()));
    if (cc.account_size() > 0) messageTool.setSender(&channelHost);
    channels::ChannelService service(core, channelHost);

    broker->setGatewayPort(gwOptions.port);
    gateway::Gateway gw(&loop, gwOptions, service);
    core.setBroadcast(
        [&gw, &router](const std::string& event, const google::protobuf::Message& payload) {
          gw.broadcast(event, payload);
          // A run from a chat asks its approval question on that chat too.
          if (event == "approval.requested")
            router.approvalRequested(static_cast<const gateway::ApprovalInfo&>(payload));
        });
    try {
      gw.start();
    } catch (const std::exception& e) {
      fprintf(stderr, "chitin gateway: %s\n", e.what());
      status = 1;
    }

    Signals signals;
    if (status == 0) {
      broker->setGatewayPort(gw.port());  // the port bound (0 in the options: an ephemeral one)
      core.setConnectionCounter([&gw]() { return gw.connectionCount(); });
      // `chitin memory search` through the gateway: its memory worker, with the embeddings.
      core.setMemorySearch([&sandboxedTools, workspace = memorySettings.workspaceDir](
                               const std::string& query, uint32_t maxResults) {
        return sandboxedTools.runMemoryCommand(rpc::ToolInvocation::MEMORY_SEARCH, query,
                                               maxResults, workspace);
      });
      core.setSpareStatus([&spares, &spareSettings](gateway::StatusPayload& out) {
        out.set_spare_sandboxes(static_cast<uint32_t>(spares.stats().waiting));
        out.set_spare_sandboxes_max(spareSettings.maxSpares);
      });
      std::string host = gwOptions.bind == "0.0.0.0" ? "127.0.0.1" : gwOptions.bind;
      std::string base = "http://" + host + ":" + std::to_string(gw.port());
      writeGatewayUrl(home, "ws://" + host + ":" + std::to_string(gw.port()));
      if (!command.quiet) {
        printf("chitin gateway %s listening on %s (home %s)\n", CHITIN_VERSION, base.c_str(),
               home.root.c_str());
        printf("web chat: %s/#token=%s\n", base.c_str(), token.c_str());
        if (!modelSettings.configured()) {
          printf("no model configured: replies will say how to configure one\n");
        }
        fflush(stdout);
      }

      if (cc.account_size() > 0) {
        try {
          channels::ensurePrivateDir(home.root, {"state", "channel-seen"});
        } catch (const std::exception& e) {
          spdlog::error("channels: {}", e.what());
        }
        channelHost.start();
      }

      // Whether sandboxes can be built here, checked once with a real one off the loop thread
      // so start-up does not wait for it. Nothing depends on the answer for safety: every
      // spawn checks again and fails closed.
      struct SandboxCheck {
        uv_work_t work;
        spawn::SpawnerSettings settings;
        std::optional<std::string> problem;
        std::optional<spawn::CgroupStatus> cgroups;  // none if the check itself failed
        AgentCore* core;
      };
      auto* check = new SandboxCheck{{}, spawnSettings, std::nullopt, std::nullopt, &core};
      check->work.data = check;
      uv_queue_work(
          &loop, &check->work,
          [](uv_work_t* w) {
            auto* c = static_cast<SandboxCheck*>(w->data);
            // On a thread of its own at nice 19 (niceness is per thread and passes to the
            // processes it starts): the trial sandbox, a few ms of CPU in bwrap, takes a core
            // only when serving the first clients does not want it.
            std::thread([c] {
              setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
              try {
                spawn::SystemSpawnOs os;
                spawn::Spawner probe(c->settings, os);
                c->problem = probe.checkAvailable();
                c->cgroups = probe.detectCgroups();
              } catch (const std::exception& e) {
                c->problem = std::string("the sandbox check failed: ") + e.what();
              } catch (const kj::Exception& e) {
                c->problem = std::string("the sandbox check failed: ") + e.getDescription().cStr();
              }
            }).join();
          },
          [](uv_work_t* w, int result) {
            auto* c = static_cast<SandboxCheck*>(w->data);
            if (result == 0) {
              if (c->problem)
                spdlog::error("sandbox unavailable, no worker will run: {}", *c->problem);
              if (c->cgroups && c->cgroups->inForce) {
                spdlog::info("cgroup limits in force: {}", c->cgroups->detail);
              } else if (c->cgroups) {
                spdlog::warn(
                    "cgroup limits not in force ({}); workers are bounded by rlimits, "
                    "capped tmpfs and the wall clock only. {}",
                    c->cgroups->detail, c->cgroups->fix);
              }
              c->core->setSandboxStatus(c->problem ? *c->problem : "ok");
            }
            delete c;
          });

      // 4. Signals belong to libuv. SIGTERM/SIGINT: stop workers, flush, exit 0.
      struct StopContext {
        AgentCore* core;
        channels::ChannelHost* channels;
        gateway::Gateway* gw;
        UvKjBridge* bridge;
        ModelHost* model;
        BrowserTool* browser;
        SpareSandboxes* spares;
        egress::Broker* broker;
        Signals* signals;
        bool stopping = false;
      };
      static StopContext stop;
      stop = StopContext{&core,  &channelHost, &gw,          &bridge, &model,
                         &tools, &spares,      broker.get(), &signals};
      auto onStop = [](uv_signal_t* s, int signum) {
        if (stop.stopping) return;
        stop.stopping = true;
        spdlog::info("signal {}: shutting down", signum);
        stop.core->shutdown();
        stop.channels->stop();
        stop.model->stop();
        stop.browser->shutdown();
        stop.spares->shutdown();  // after the turns: none of them prepares another
        stop.broker->closeAll();
        stop.gw->stop();
        stop.bridge->pump();  // flush what the shutdown queued, then let the loop drain
        stop.bridge->close();
        uv_close(reinterpret_cast<uv_handle_t*>(&stop.signals->term), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&stop.signals->interrupt), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&stop.signals->hangup), nullptr);
      };
      uv_signal_init(&loop, &signals.term);
      uv_signal_init(&loop, &signals.interrupt);
      uv_signal_init(&loop, &signals.hangup);
      uv_signal_start(&signals.term, onStop, SIGTERM);
      uv_signal_start(&signals.interrupt, onStop, SIGINT);
      uv_signal_start(
          &signals.hangup, [](uv_signal_t*, int) { stop.core->reloadPolicy("SIGHUP"); }, SIGHUP);

      uv_run(&loop, UV_RUN_DEFAULT);
    } else {
      gw.stop();
    }

    // 5. Teardown, in the order the stack notes give: lws' second destroy after its handles
    //    closed, then the bridge, then KJ objects, then the loop.
    bridge.pump();
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
    gw.finishStop();
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  int closed = uv_loop_close(&loop);
  if (closed != 0) spdlog::debug("uv_loop_close: {}", uv_strerror(closed));
  if (status == 0) spdlog::info("stopped cleanly");
  return status;
}

}  // namespace chitin
