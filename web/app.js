// SPDX-License-Identifier: Apache-2.0
// chitin's web chat: connects to the gateway's WebSocket (/ws), performs the connect
// handshake with the token, sends `agent` requests and renders the streamed reply and each tool
// call as it runs. Plain DOM, no framework, nothing loaded from elsewhere (the page's CSP is
// 'self'). All text from the server goes in through textContent, never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "chitin.gatewayToken";
  const CLIENT = { id: "webchat", version: "0.1.0", user: "owner" };
  const MAX_ARGS_SHOWN = 120; // tool lines in a run; approvals are never cut silently

  const el = {
    status: document.getElementById("status"),
    transcript: document.getElementById("transcript"),
    empty: document.getElementById("empty"),
    form: document.getElementById("composer"),
    message: document.getElementById("message"),
    send: document.getElementById("send"),
    abort: document.getElementById("abort"),
    channelsToggle: document.getElementById("channels-toggle"),
    channels: document.getElementById("channels"),
    channelList: document.getElementById("channel-list"),
    login: document.getElementById("login"),
    loginText: document.getElementById("login-text"),
    loginCode: document.getElementById("login-code"),
    loginNote: document.getElementById("login-note"),
    loginQr: document.getElementById("login-qr"),
  };

  // The token arrives in the fragment (#token=…): fragments are never sent to the server or
  // written to its logs. Take it out of the address bar at once and keep it for this tab only.
  function takeToken() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const fromUrl = fragment.get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text;
  }

  function scrollToEnd() {
    el.transcript.lastElementChild?.scrollIntoView({ block: "end" });
  }

  function addMessage(role, text) {
    el.empty.hidden = true;
    const item = document.createElement("li");
    item.className = `msg ${role}`;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : role === "assistant" ? "chitin" : "Notice";
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    item.append(who, body);
    el.transcript.append(item);
    scrollToEnd();
    return item;
  }

  function shortArgs(json) {
    if (!json) return "";
    let text = json;
    try {
      text = JSON.stringify(JSON.parse(json));
    } catch {
      // shown as given
    }
    return text.length > MAX_ARGS_SHOWN ? `${text.slice(0, MAX_ARGS_SHOWN - 1)}…` : text;
  }

  // One run: the assistant message it streams into and its tool lines.
  class RunView {
    constructor() {
      this.item = addMessage("assistant", "");
      this.item.dataset.state = "running";
      this.item.setAttribute("aria-busy", "true");
      this.text = this.item.querySelector(".text");
      this.tools = document.createElement("ul");
      this.tools.className = "tools";
      this.tools.setAttribute("aria-label", "Tool calls");
      this.item.insertBefore(this.tools, this.text);
      this.toolLines = new Map();
      this.streamed = "";
    }

    delta(text) {
      this.streamed += text;
      this.text.textContent = this.streamed;
      scrollToEnd();
    }

    tool(phase, tool) {
      let line = this.toolLines.get(tool.id);
      if (!line) {
        line = document.createElement("li");
        line.className = "tool";
        const name = document.createElement("span");
        name.className = "tool-name";
        const args = document.createElement("code");
        args.className = "tool-args";
        const status = document.createElement("span");
        status.className = "tool-status";
        line.append(name, args, status);
        this.tools.append(line);
        this.toolLines.set(tool.id, line);
      }
      const status = tool.status || (phase === "start" ? "running" : "ok");
      line.dataset.status = status;
      line.querySelector(".tool-name").textContent = tool.name || "tool";
      line.querySelector(".tool-args").textContent = shortArgs(tool.argumentsJson);
      line.querySelector(".tool-status").textContent = status;
      if (tool.summary) line.title = tool.summary;
      scrollToEnd();
    }

    finish(result) {
      const status = result.status || "ok";
      if (result.reply && result.reply !== this.streamed) this.text.textContent = result.reply;
      for (const tool of result.tools || []) this.tool("end", tool);
      if (status === "error") {
        const note = document.createElement("p");
        note.className = "error";
        note.textContent = result.error || "The run failed.";
        this.item.append(note);
      } else if (status === "aborted") {
        const note = document.createElement("p");
        note.className = "note";
        note.textContent = "Stopped.";
        this.item.append(note);
      }
      this.item.dataset.state = status === "ok" ? "done" : status;
      this.item.removeAttribute("aria-busy");
      scrollToEnd();
    }

    interrupt(reason) {
      if (this.item.dataset.state !== "running") return;
      this.finish({ status: "error", error: reason });
    }
  }

  class Gateway {
    constructor(token) {
      this.token = token;
      this.nextId = 1;
      this.pending = new Map(); // request id -> {onResult, onError}
      this.runs = new Map(); // runId -> RunView
      this.retryMs = 1000;
      this.stopped = false;
    }

    open() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      setStatus("connecting", "Connecting…");
      this.ws = new WebSocket(`${scheme}//${location.host}/ws`);
      this.ready = false;
      this.ws.addEventListener("message", (e) => this.onFrame(e.data));
      this.ws.addEventListener("close", () => this.onClose());
    }

    send(method, params, onResult, onError) {
      const id = String(this.nextId++);
      this.pending.set(id, { onResult, onError });
      this.ws.send(JSON.stringify({ type: "req", id, method, params }));
      return id;
    }

    onFrame(data) {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch {
        return;
      }
      if (frame.type === "event") return this.onEvent(frame.event, frame.payload || {});
      if (frame.type !== "res") return;
      const waiter = this.pending.get(frame.id);
      if (!waiter) {
        if (!frame.ok && frame.error) addMessage("notice", frame.error.message);
        return;
      }
      if (frame.ok) {
        // `agent` gets two replies with one id: accepted, then the result.
        if (waiter.onResult(frame.payload || {}) !== "keep") this.pending.delete(frame.id);
      } else {
        this.pending.delete(frame.id);
        waiter.onError(frame.error || { code: "INTERNAL", message: "unknown error" });
      }
    }

    onEvent(name, payload) {
      if (name === "connect.challenge") return this.handshake(payload.nonce);
      if (name === "approval.requested") return this.showApproval(payload);
      if (name === "approval.resolved") return this.closeApproval(payload);
      if (name !== "agent") return;
      const view = this.runs.get(payload.runId);
      if (!view) return;
      if (payload.stream === "assistant" && payload.delta) view.delta(payload.delta);
      if (payload.stream === "tool" && payload.tool) view.tool(payload.phase, payload.tool);
    }

    handshake(nonce) {
      this.send(
        "connect",
        { auth: { token: this.token }, nonce, client: CLIENT, minProtocol: 1, maxProtocol: 1 },
        () => {
          this.ready = true;
          this.retryMs = 1000;
          setStatus("connected", "Connected");
          el.message.disabled = false;
          el.send.disabled = false;
          el.channelsToggle.disabled = false;
        },
        (error) => {
          // A refused token will not get better by retrying.
          this.stopped = true;
          const text =
            error.code === "LOCKED_OUT" ? error.message : `Not connected: ${error.message}`;
          setStatus("failed", text);
        },
      );
    }

    onClose() {
      this.ready = false;
      el.message.disabled = true;
      el.send.disabled = true;
      el.channelsToggle.disabled = true;
      this.loginSeq = null; // a login in progress is followed again after reconnecting
      for (const view of this.runs.values()) view.interrupt("Connection lost during the run.");
      this.runs.clear();
      this.pending.clear();
      updateAbort();
      if (this.stopped) return;
      setStatus("disconnected", `Disconnected; retrying in ${Math.round(this.retryMs / 1000)} s`);
      setTimeout(() => this.open(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 30000);
    }

    // The channel accounts and their state (`channels.status`), each with a way to link it
    // where the platform logs in interactively (WhatsApp).
    showChannels() {
      this.send(
        "channels.status",
        {},
        (payload) => {
          el.channelList.replaceChildren();
          const accounts = payload.accounts || [];
          if (accounts.length === 0) {
            const none = document.createElement("li");
            none.textContent = "No channel accounts are configured (chitin channels add …).";
            el.channelList.append(none);
          }
          for (const a of accounts) {
            const item = document.createElement("li");
            const name = document.createElement("span");
            name.textContent = `${a.kind}/${a.account}: ${a.state || "unknown"}`;
            item.append(name);
            if (a.detail) {
              const detail = document.createElement("span");
              detail.className = "channel-detail";
              detail.textContent = ` — ${a.detail}`;
              item.append(detail);
            }
            if (a.kind === "whatsapp" && a.state !== "connected") {
              const link = document.createElement("button");
              link.type = "button";
              link.className = "secondary";
              link.textContent = "Link";
              link.addEventListener("click", () => this.login(a.kind, a.account, 0));
              item.append(" ", link, " ", this.phoneForm(a.kind, a.account));
            }
            el.channelList.append(item);
          }
        },
        (error) => addMessage("notice", `Channels: ${error.message}`),
      );
    }

    // Linking without a camera: the phone's number asks WhatsApp for an 8-character code, which
    // the owner types on the phone. The number is checked by the worker; this only catches what
    // cannot be one.
    phoneForm(kind, account) {
      const form = document.createElement("form");
      form.className = "phone-link";
      const phone = document.createElement("input");
      phone.type = "tel";
      phone.autocomplete = "tel";
      phone.placeholder = "+15551234567";
      phone.setAttribute("aria-label", `Phone number of ${kind}/${account}, international form`);
      const ask = document.createElement("button");
      ask.type = "submit";
      ask.className = "secondary";
      ask.textContent = "Get pairing code";
      form.append(phone, " ", ask);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const number = phone.value.trim();
        if (!/^\+?[0-9][0-9 ()-]{5,30}$/.test(number)) {
          el.login.hidden = false;
          showCode("");
          el.loginText.textContent =
            "Enter the phone's number in international form, with its country code: +15551234567.";
          return;
        }
        this.login(kind, account, 0, number);
      });
      return form;
    }

    // Follows a login: each answer carries the newest QR code (as rows of modules the
    // supervisor encoded) or pairing code; asks again for the next one until connected.
    // `phoneNumber` (when beginning, after = 0) asks for a pairing code instead of a QR code.
    login(kind, account, after, phoneNumber = "", token = 0) {
      if (after === 0) token = this.loginToken = (this.loginToken || 0) + 1;
      this.loginSeq = after;
      el.login.hidden = false;
      el.loginNote.textContent = "";
      if (after === 0) {
        el.loginText.textContent = "Asking the worker for a code…";
        showCode("");
        drawQr([]);
      }
      const params = { kind, account, after, waitSeconds: 30 };
      if (after === 0 && phoneNumber) params.phoneNumber = phoneNumber;
      this.send(
        "channels.login",
        params,
        (r) => {
          // Superseded (a newer login began), or the connection was lost.
          if (this.loginSeq !== after || this.loginToken !== token) return;
          if (r.state === "connected") {
            el.loginText.textContent = `Linked${r.detail ? `: ${r.detail}` : "."}`;
            showCode("");
            drawQr([]);
            this.showChannels();
            return;
          }
          if (r.pairingCode) {
            el.loginText.textContent =
              "On the phone: WhatsApp › Settings › Linked devices › Link a device › " +
              "Link with phone number instead, then enter this code:";
            showCode(r.pairingCode);
            drawQr([]);
          } else if (r.qrRows && r.qrRows.length) {
            el.loginText.textContent =
              "Scan with WhatsApp on your phone: Settings › Linked devices › Link a device.";
            showCode("");
            drawQr(r.qrRows);
          } else if (r.state === "failed") {
            el.loginText.textContent = `Login failed: ${r.detail || "see chitin channels status"}`;
            return;
          }
          this.login(kind, account, Number(r.seq || after), phoneNumber, token);
        },
        (error) => {
          if (this.loginSeq !== after || this.loginToken !== token) return;
          // A code already shown stays: the owner may still be typing or scanning it.
          if (after === 0) el.loginText.textContent = `Login: ${error.message}`;
          else el.loginNote.textContent = `No longer following the login: ${error.message}`;
        },
      );
    }

    ask(message) {
      addMessage("user", message);
      let view = null;
      this.send(
        "agent",
        { message, idempotencyKey: randomKey() },
        (payload) => {
          if (payload.status === "accepted" && !view) {
            view = new RunView();
            this.runs.set(payload.runId, view);
            updateAbort();
            return "keep";
          }
          view?.finish(payload);
          this.runs.delete(payload.runId);
          updateAbort();
          return "done";
        },
        (error) => addMessage("notice", `${error.code}: ${error.message}`),
      );
    }

    // A call the policy wants confirmed: what exactly, and approve/deny buttons. The description
    // and the full call arrive as display text: the supervisor has shown every control, bidi and
    // invisible character and every long run of spaces as an escape (common/display-text.h), so
    // the page shows them as they are, as text, never as HTML. The one line says so itself when
    // it is shortened; the whole call, every argument in full, is one click away.
    showApproval(a) {
      if (!a.id || document.getElementById(`approval-${a.id}`)) return;
      const card = document.createElement("li");
      card.className = "approval";
      card.id = `approval-${a.id}`;
      const title = document.createElement("p");
      title.className = "approval-title";
      title.textContent = `Confirm ${a.tool || "tool call"} (code ${a.code || "?"})`;
      const what = document.createElement("pre");
      what.className = "approval-call";
      what.textContent = a.description || "";
      const full = document.createElement("details");
      full.className = "approval-full";
      const summary = document.createElement("summary");
      const omitted = Number(a.descriptionOmittedBytes || 0);
      summary.textContent = omitted
        ? `Full call (the line above leaves out ${omitted} bytes)`
        : "Full call";
      const call = document.createElement("pre");
      call.className = "approval-full-call";
      call.textContent =
        a.fullCall || `This gateway sent no full call: run \`chitin approvals show ${a.id}\`.`;
      if (a.fullCallLeftOut) {
        // Too large to announce to every client: fetched, whole, when the owner opens it.
        call.textContent = "Loading the full call…";
        full.addEventListener("toggle", () => {
          if (!full.open || call.dataset.loaded) return;
          call.dataset.loaded = "1";
          this.send("approval.get", { id: a.id }, (whole) => {
            call.textContent = whole.fullCall || "";
          }, (error) => {
            call.textContent = error.message;
          });
        });
      }
      full.append(summary, call);
      const meta = document.createElement("p");
      meta.className = "approval-meta";
      meta.textContent = `${a.sessionKey || ""} · expires ${a.expiresAt || "?"}`;
      const buttons = document.createElement("div");
      buttons.className = "actions";
      for (const [label, decision] of [["Approve", "approve"], ["Deny", "deny"]]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = label;
        b.dataset.decision = decision;
        if (decision === "deny") b.className = "secondary";
        b.addEventListener("click", () => {
          for (const other of buttons.querySelectorAll("button")) other.disabled = true;
          this.send("approval.resolve", { id: a.id, decision }, () => {}, (error) => {
            addMessage("notice", error.message);
            card.remove();
          });
        });
        buttons.append(b);
      }
      card.append(title, what, full, meta, buttons);
      el.transcript.append(card);
      el.empty.hidden = true;
      scrollToEnd();
    }

    closeApproval(r) {
      const card = document.getElementById(`approval-${r.id}`);
      if (!card) return;
      card.querySelector(".actions")?.remove();
      const done = document.createElement("p");
      done.className = "approval-done";
      done.dataset.decision = r.decision || "";
      done.textContent = `${r.decision || "resolved"}${r.by ? ` by ${r.by}` : ""}`;
      card.append(done);
    }

    abortAll() {
      for (const runId of this.runs.keys()) {
        this.send("agent.abort", { runId }, () => {}, (error) => addMessage("notice", error.message));
      }
    }
  }

  let gateway = null;

  // Paints QR modules ('1' dark) with a four-module quiet zone, dark on white whatever the page's
  // colour scheme, since phones read dark-on-light codes.
  // WhatsApp shows pairing codes as two groups of four ("ABCD-1234"); so does this.
  function showCode(code) {
    const plain = String(code || "");
    el.loginCode.textContent = /^[A-Z0-9]{8}$/i.test(plain) ? `${plain.slice(0, 4)}-${plain.slice(4)}` : plain;
    el.loginCode.hidden = plain === "";
  }

  function drawQr(rows) {
    const canvas = el.loginQr;
    if (!rows.length) {
      canvas.width = canvas.height = 0;
      return;
    }
    const scale = 6;
    const side = (rows.length + 8) * scale;
    canvas.width = canvas.height = side;
    const g = canvas.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, side, side);
    g.fillStyle = "#000";
    rows.forEach((row, y) => {
      for (let x = 0; x < row.length; x++) {
        if (row[x] === "1") g.fillRect((x + 4) * scale, (y + 4) * scale, scale, scale);
      }
    });
  }

  function updateAbort() {
    el.abort.hidden = !gateway || gateway.runs.size === 0;
  }

  function submit() {
    const text = el.message.value.trim();
    if (!text || !gateway?.ready) return;
    el.message.value = "";
    gateway.ask(text);
  }

  el.form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
  el.message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  el.abort.addEventListener("click", () => gateway?.abortAll());
  el.channelsToggle.addEventListener("click", () => {
    const open = el.channels.hidden;
    el.channels.hidden = !open;
    el.channelsToggle.setAttribute("aria-expanded", String(open));
    if (open) gateway?.showChannels();
  });

  const token = takeToken();
  if (!token) {
    setStatus("failed", "No token: open the link with #token=… that chitin printed.");
    return;
  }
  gateway = new Gateway(token);
  gateway.open();
})();
