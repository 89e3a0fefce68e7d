/* holdline.js -- a small, dependency-free browser client for holdline.
 *
 * Usage:
 *
 *     var client = new Holdline({
 *       base: "",                 // "" means the page's own origin
 *       channels: ["demo"],
 *       timeout: 25,              // seconds the server may hold each poll
 *       onMessage: function (msg) { ... },          // {channel, id, data}
 *       onEvent: function (kind, text) { ... }      // see the list below
 *     });
 *     client.start();
 *     ...
 *     client.stop();
 *
 * The client long-polls GET {base}/poll/{ch1},{ch2}?timeout=S&cursor=C in a
 * loop. After every 200 answer it polls again at once, sending back the
 * cursor the server gave it, so that no message published between two polls
 * is lost as long as the server still holds it in history. After a network
 * error or any other status it waits (1 s, 2 s, 4 s ... up to 30 s, each
 * spread by up to 20% so that many clients do not reconnect in step after an
 * outage) and then tries again.
 *
 * onEvent(kind, text) reports each step, for logs and demo pages:
 *
 *     "start"     start() was called.
 *     "request"   a poll was sent; text is the URL.
 *     "response"  a 200 answer arrived; text says how many messages it held.
 *     "timeout"   the answer held no messages: the server's timeout passed.
 *     "missed"    the server says messages between the cursor and this answer
 *                 are gone (trimmed or expired), so the caller may resync.
 *     "error"     a network error or a non-200 answer; text says which.
 *     "backoff"   the client waits before the next try; text is the delay.
 *     "stop"      stop() was called.
 *
 * The client never sets custom request headers, because those would make a
 * cross-origin poll send a CORS preflight before every single request; the
 * cursor therefore travels in the query string. */
(function (root) {
  "use strict";

  // Channel names the server accepts. Checking them here turns a typo into
  // an exception at construction time instead of an endless 400/backoff loop.
  var CHANNEL_RE = /^[A-Za-z0-9._~:-]{1,200}$/;

  // The server answers a poll after at most `timeout` seconds; if no answer
  // has come this long after that, the connection is presumed dead (a proxy
  // or NAT dropped it silently) and the poll is aborted and retried.
  var GRACE_MS = 15000;

  function Holdline(options) {
    var opts = options || {};
    var channels = opts.channels || ["demo"];
    if (typeof channels === "string") {
      channels = [channels];
    }
    if (!Array.isArray(channels) || channels.length === 0) {
      throw new TypeError("Holdline: channels must be a non-empty array");
    }
    channels.forEach(function (ch) {
      if (typeof ch !== "string" || !CHANNEL_RE.test(ch)) {
        throw new TypeError("Holdline: bad channel name " + JSON.stringify(ch));
      }
    });

    // A trailing slash on base would produce "//poll", which some proxies
    // treat as a different path.
    this.base = String(opts.base || "").replace(/\/+$/, "");
    this.channels = channels.slice();
    this.timeout = opts.timeout > 0 ? Math.floor(opts.timeout) : 25;
    this.cursor = typeof opts.cursor === "string" ? opts.cursor : "";
    this.backoffMinMs = opts.backoffMinMs > 0 ? opts.backoffMinMs : 1000;
    this.backoffMaxMs = opts.backoffMaxMs > 0 ? opts.backoffMaxMs : 30000;
    this.onMessage = typeof opts.onMessage === "function" ? opts.onMessage : function () {};
    this.onEvent = typeof opts.onEvent === "function" ? opts.onEvent : function () {};

    this.running = false;
    this.failures = 0;
    // Each start() begins a new generation; a loop from an earlier start()
    // sees the number change and ends, so stop() followed quickly by start()
    // never leaves two loops polling side by side.
    this._generation = 0;
    this._abort = null;
    this._wake = null;
  }

  Holdline.prototype.start = function () {
    if (this.running) {
      return this;
    }
    this.running = true;
    this.failures = 0;
    this._generation += 1;
    this._emit("start", "channels " + this.channels.join(","));
    this._loop(this._generation);
    return this;
  };

  Holdline.prototype.stop = function () {
    if (!this.running) {
      return this;
    }
    this.running = false;
    this._generation += 1;
    // Aborting the fetch frees the held connection on the server at once
    // instead of leaving it open until its timeout.
    if (this._abort) {
      this._abort.abort();
      this._abort = null;
    }
    if (this._wake) {
      this._wake();
    }
    this._emit("stop", "stopped");
    return this;
  };

  // The URL of the next poll, with the current cursor when there is one.
  Holdline.prototype.pollUrl = function () {
    var query = "timeout=" + encodeURIComponent(String(this.timeout));
    if (this.cursor !== "") {
      query += "&cursor=" + encodeURIComponent(this.cursor);
    }
    return this.base + "/poll/" + this.channels.join(",") + "?" + query;
  };

  Holdline.prototype._loop = async function (generation) {
    while (this.running && this._generation === generation) {
      var ok = await this._pollOnce(generation);
      if (this._generation !== generation) {
        return;
      }
      if (ok) {
        this.failures = 0;
        continue;
      }
      this.failures += 1;
      var delay = this.backoffDelay(this.failures);
      this._emit("backoff", "retrying in " + (delay / 1000).toFixed(1) + " s");
      await this._sleep(delay);
    }
  };

  // Returns the wait before retry number n (1-based): the doubling base
  // delay, capped, then spread to 80..120% and capped again, so the cap
  // holds while clients stuck at it still do not retry in lockstep.
  Holdline.prototype.backoffDelay = function (n) {
    var exp = Math.min(n - 1, 30);
    var base = Math.min(this.backoffMaxMs, this.backoffMinMs * Math.pow(2, exp));
    var jittered = base * (0.8 + Math.random() * 0.4);
    return Math.round(Math.min(this.backoffMaxMs, jittered));
  };

  // Sends one poll and handles its answer. Resolves true after a usable 200
  // answer and false after anything that should be retried with backoff.
  Holdline.prototype._pollOnce = async function (generation) {
    var url = this.pollUrl();
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = null;
    this._abort = controller;
    if (controller) {
      timer = setTimeout(function () {
        controller.abort();
      }, this.timeout * 1000 + GRACE_MS);
    }

    this._emit("request", url);
    var response;
    var body;
    try {
      response = await fetch(url, {
        method: "GET",
        cache: "no-store",
        signal: controller ? controller.signal : undefined
      });
      body = await response.text();
    } catch (err) {
      if (this._generation !== generation) {
        // stop() aborted this poll on purpose; that is not an error.
        return false;
      }
      var reason = err && err.name === "AbortError"
        ? "no answer within " + (this.timeout + GRACE_MS / 1000) + " s"
        : (err && err.message) || String(err);
      this._emit("error", reason);
      return false;
    } finally {
      if (timer !== null) {
        clearTimeout(timer);
      }
      if (this._abort === controller) {
        this._abort = null;
      }
    }

    if (this._generation !== generation) {
      return false;
    }
    if (response.status !== 200) {
      this._emit("error", "HTTP " + response.status + describeError(body));
      return false;
    }

    var answer;
    try {
      answer = JSON.parse(body);
    } catch (err) {
      this._emit("error", "answer is not JSON: " + err.message);
      return false;
    }
    if (answer === null || typeof answer !== "object") {
      this._emit("error", "answer is not a JSON object");
      return false;
    }

    // The body's cursor wins; the header carries the same value and is the
    // fallback for answers (e.g. from a proxy cache) that lost the body field.
    // An empty cursor means "none yet", so the old one is kept.
    var cursor = typeof answer.cursor === "string" ? answer.cursor : "";
    if (cursor === "") {
      cursor = response.headers.get("Holdline-Cursor") || "";
    }
    if (cursor !== "") {
      this.cursor = cursor;
    }

    var messages = Array.isArray(answer.messages) ? answer.messages : [];
    this._emit("response", messages.length + (messages.length === 1 ? " message" : " messages"));
    if (answer.missed === true) {
      this._emit("missed", "some messages before this answer are no longer in history");
    }
    if (messages.length === 0) {
      this._emit("timeout", "no event");
      return true;
    }
    for (var i = 0; i < messages.length; i++) {
      if (this._generation !== generation) {
        // A callback called stop(); the rest of this answer is not wanted.
        break;
      }
      var m = messages[i] || {};
      this._call(this.onMessage, [{
        channel: typeof m.channel === "string" ? m.channel : this.channels[0],
        id: typeof m.id === "string" ? m.id : null,
        data: typeof m.data === "string" ? m.data : (m.data == null ? "" : String(m.data))
      }]);
    }
    return true;
  };

  // Waits ms milliseconds, or less if stop() is called meanwhile.
  Holdline.prototype._sleep = function (ms) {
    var self = this;
    return new Promise(function (resolve) {
      var timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (self._wake === done) {
          self._wake = null;
        }
        resolve();
      }
      self._wake = done;
    });
  };

  Holdline.prototype._emit = function (kind, text) {
    this._call(this.onEvent, [kind, text]);
  };

  // Runs a user callback. An exception in it must not end the poll loop, so
  // it is rethrown from a fresh task, where the browser still reports it.
  Holdline.prototype._call = function (fn, args) {
    try {
      fn.apply(null, args);
    } catch (err) {
      setTimeout(function () {
        throw err;
      }, 0);
    }
  };

  // Turns a holdline error body {"error":..,"detail":..} into ": error (detail)"
  // for messages; anything else is shortened so a proxy's HTML error page does
  // not flood the log.
  function describeError(body) {
    try {
      var e = JSON.parse(body);
      if (e && typeof e.error === "string") {
        return ": " + e.error + (typeof e.detail === "string" && e.detail ? " (" + e.detail + ")" : "");
      }
    } catch (ignored) {
      // Not JSON: fall through to the plain text below.
    }
    var text = String(body || "").replace(/\s+/g, " ").trim();
    return text ? ": " + text.slice(0, 120) : "";
  }

  Holdline.CHANNEL_RE = CHANNEL_RE;

  // Browsers get a global; Node (for tests) gets a CommonJS export.
  if (typeof module === "object" && module && module.exports) {
    module.exports = Holdline;
  } else {
    root.Holdline = Holdline;
  }
})(typeof self !== "undefined" ? self : this);
