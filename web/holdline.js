/* holdline.js -- a small, dependency-free browser client for holdline.
 *
 * Usage:
 *
 *     var client = new Holdline({
 *       base: "",                 // "" means the page's own origin
 *       channels: ["demo"],
 *       transport: "auto",        // "auto", "sse" or "poll"; see below
 *       timeout: 25,              // seconds the server may hold each poll
 *       persistCursor: false,     // keep the cursor across page reloads
 *       token: getToken,          // private channels; see "Tokens" below
 *       tokenCookie: false,       // the token is also in a cookie
 *       tokenInQuery: false,      // or put it in the stream's URL
 *       withCredentials: false,   // send cookies cross-origin too
 *       onMessage: function (msg) { ... },          // {channel, id, data}
 *       onMissed: function (info) { ... },          // {cursor}
 *       onEvent: function (kind, text) { ... }      // see the list below
 *     });
 *     client.start();
 *     client.transport;           // "sse" or "poll": what it uses now
 *     ...
 *     client.stop();
 *
 * Transports. With "sse" the client opens an EventSource on
 * GET {base}/events/{ch1},{ch2}[?cursor=C] and gets each message as it is
 * published, on one long-lived response. With "poll" it long-polls
 * GET {base}/poll/{ch1},{ch2}?timeout=S&cursor=C in a loop: after every 200
 * answer it polls again at once, sending back the cursor the server gave
 * it. "auto" (the default) is "sse" where the browser has EventSource and
 * "poll" where it has not, and "poll" too with a token that only a header
 * can carry (see "Tokens"); it also moves to "poll" for good if the first
 * stream is refused with a 404 or 405 or answered with something other
 * than text/event-stream (an older server, or a proxy that does not pass
 * /events), before any stream ever opened. onMessage gets the same
 * {channel, id, data} objects from both transports.
 *
 * Either way no message published between two requests is lost as long as
 * the server still holds it in history: the client always resumes from the
 * last cursor it got. After a network error or any other status it waits
 * (1 s, 2 s, 4 s ... up to 30 s, each spread by up to 20% so that many
 * clients do not reconnect in step after an outage) and then tries again.
 *
 * How the EventSource is resumed. The browser reconnects an EventSource by
 * itself after the stream ends or the network fails, to the URL it was
 * opened with, sending the last id it saw (the cursor) as Last-Event-ID;
 * the server prefers that header over the URL's ?cursor=, which still
 * says where the stream began, so the stream resumes where it got to. The
 * client leaves those reconnects to the browser. It opens a new
 * EventSource, with its own last cursor in the URL, only for one the
 * browser gave up on (readyState CLOSED: after any answer but a 200 event
 * stream, such as a 503 from an overloaded node or a proxy's 502).
 *
 * onMissed(info) is called when the server says it cannot prove that
 * nothing was lost since the cursor (history trimmed or expired, or Redis
 * lost its data): a poll answer with "missed": true, or the stream's
 * "missed" event. info.cursor is the cursor the client goes on from. The
 * messages still held come next, through onMessage, so a caller may
 * resync its state from elsewhere first.
 *
 * persistCursor: true keeps the cursor in sessionStorage (per tab, kept
 * across reloads), under "holdline:cursor:" + base + "/" + the channels
 * joined with "," (one key per set of channels, in their order: a cursor
 * is only valid for the list it was made for). A new client for the same
 * set then starts from the stored cursor, so a reload neither loses nor
 * repeats messages. A `cursor` option, when given, wins over the stored
 * one. Storage that is unavailable (blocked, full) is ignored.
 *
 * Tokens, for a node with auth.mode = "jwt" (private channels). `token` is
 * the JWT, or a function that returns one or a Promise of one. The
 * function is called with no arguments at start() and again whenever a
 * fresh token is needed: after a 401 or a 403, after the stream's
 * token_expired event and after the browser gave up on a stream. A string
 * it returns is the token; anything else means "no token of my own"
 * (for a page whose token is only in its cookie). One that throws,
 * rejects or has not answered within 10 s counts as a failed request: an
 * "error", then the backoff.
 *
 * How the token travels. Polls send "Authorization: Bearer <token>";
 * from a cross-origin page that header costs a CORS preflight (OPTIONS)
 * before every poll, since browsers keep preflight answers per URL and
 * each poll's cursor makes a new one (Chromium also skips that cache for
 * no-store fetches). EventSource cannot send headers, so a stream takes
 * the token either from the cookie auth.token_cookie (default
 * holdline_token), which the page's own server sets and the token
 * function refreshes (tokenCookie: true says the page does that), or
 * from the URL (tokenInQuery: true appends token=<token> to the /events
 * URL; the node must have auth.query_token on; URLs end up in proxy
 * logs, so prefer the cookie). With a token and neither option, "auto"
 * long-polls and "sse" throws. withCredentials: true sends cookies on
 * cross-origin requests too (EventSource's withCredentials, fetch's
 * credentials: "include"), which costs no preflight; the page's origin
 * must be in http.cors_origins, and the node allows credentials only
 * with auth.mode = "jwt". The token never appears in what onEvent
 * reports.
 *
 * What the client does about answers. A 401 (no token, a bad or expired
 * one) gets a fresh token: at once after a poll that went through (the
 * token ran out), with the usual backoff after a failure. A 403 (the token does not
 * grant a channel) will not change by itself, so the client waits the
 * longest backoff (backoffMaxMs) before it tries again, with a fresh token
 * in case the page's grants changed. The node ends a stream when its
 * token expires, with a token_expired event: the client closes the
 * stream, gets a fresh token and reopens at once from the cursor in the
 * event, so nothing is lost or repeated. A stream the browser gave up on
 * (a 401 among others) is fetched once, when a token or cookie is in use,
 * to learn its status, which EventSource does not tell; a 401 or 403 is
 * then handled as for polls, anything else retried with backoff and a
 * fresh token.
 *
 * onEvent(kind, text) reports each step, for logs and demo pages:
 *
 *     "start"     start() was called.
 *     "request"   a poll was sent, or a stream opened; text is the URL.
 *     "open"      the event stream was answered and is open (sse).
 *     "response"  a 200 poll answer arrived; text says how many messages
 *                 it held (poll).
 *     "timeout"   the poll answer held no messages: the server's timeout
 *                 passed (poll).
 *     "missed"    the server says messages between the cursor and this
 *                 answer are gone (trimmed or expired), so the caller may
 *                 resync; onMissed is called too.
 *     "reconnect" the stream ended or broke and the browser reconnects it
 *                 by itself (sse).
 *     "transport" auto mode moved from "sse" to "poll"; text says why.
 *     "unauthorized" a poll, or the check of a stream the browser gave
 *                 up on, was answered 401; text says why. A fresh token
 *                 comes next, after the backoff.
 *     "forbidden" the same, answered 403: the token does not grant one of
 *                 the channels. The client waits backoffMaxMs.
 *     "token_expired" the node ended the stream at its token's expiry; the
 *                 client reopens it at once with a fresh token (sse).
 *     "error"     a network error, a non-200 answer (a poll's 401 and 403
 *                 are reported as above instead), a stream the browser
 *                 gave up on, or a token function that failed; text says
 *                 which.
 *     "backoff"   the client waits before the next try; text is the delay.
 *     "stop"      stop() was called.
 *
 * Apart from Authorization (with a token) the client sets no request
 * header, because one would make a cross-origin poll send a CORS
 * preflight it could do without; the cursor therefore travels in the query
 * string, where no cache can mix up two polls' answers. */
(function (root) {
  "use strict";

  // Channel names the server accepts. Checking them here turns a typo into
  // an exception at construction time instead of an endless 400/backoff loop.
  var CHANNEL_RE = /^[A-Za-z0-9._~:-]{1,200}$/;

  // The server answers a poll after at most `timeout` seconds; if no answer
  // has come this long after that, the connection is presumed dead (a proxy
  // or NAT dropped it silently) and the poll is aborted and retried.
  var GRACE_MS = 15000;

  // How long auto mode's check of a refused first stream may take before
  // it counts as a network error (and the stream is simply retried).
  var PROBE_MS = 10000;

  // How long a token function may take before its answer counts as a
  // failure (and it is asked again after the backoff).
  var TOKEN_MS = 10000;

  var TRANSPORTS = ["auto", "sse", "poll"];

  // EventSource.readyState values, named here because a browser without
  // EventSource has no constants to read them from.
  var ES_CONNECTING = 0;

  function hasEventSource() {
    return !!root && typeof root.EventSource === "function";
  }

  // sessionStorage, or null where it is missing or reading it throws
  // (storage blocked for the site, a sandboxed frame).
  function sessionStore() {
    try {
      return root && root.sessionStorage ? root.sessionStorage : null;
    } catch (ignored) {
      return null;
    }
  }

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
    var transport = opts.transport === undefined ? "auto" : opts.transport;
    if (TRANSPORTS.indexOf(transport) < 0) {
      throw new TypeError("Holdline: transport must be \"auto\", \"sse\" or \"poll\", not " +
        JSON.stringify(transport));
    }
    if (transport === "sse" && !hasEventSource()) {
      throw new TypeError("Holdline: transport \"sse\" needs EventSource, which this browser lacks");
    }
    // "" is no token, as undefined is: `token: stored || ""` must not
    // change the transport.
    var token = opts.token == null || opts.token === "" ? null : opts.token;
    if (token !== null && typeof token !== "string" && typeof token !== "function") {
      throw new TypeError("Holdline: token must be a string or a function");
    }
    if (opts.tokenInQuery === true && token === null) {
      throw new TypeError("Holdline: tokenInQuery needs a token");
    }
    // A token that only a header can carry: EventSource cannot send it.
    var headerOnly = token !== null && opts.tokenInQuery !== true && opts.tokenCookie !== true;
    if (transport === "sse" && headerOnly) {
      throw new TypeError("Holdline: transport \"sse\" cannot send a token in a header; " +
        "say tokenCookie: true or tokenInQuery: true");
    }

    // A trailing slash on base would produce "//poll", which some proxies
    // treat as a different path.
    this.base = String(opts.base || "").replace(/\/+$/, "");
    this.channels = channels.slice();
    this.timeout = opts.timeout > 0 ? Math.floor(opts.timeout) : 25;
    this.backoffMinMs = opts.backoffMinMs > 0 ? opts.backoffMinMs : 1000;
    this.backoffMaxMs = opts.backoffMaxMs > 0 ? opts.backoffMaxMs : 30000;
    this.onMessage = typeof opts.onMessage === "function" ? opts.onMessage : function () {};
    this.onMissed = typeof opts.onMissed === "function" ? opts.onMissed : function () {};
    this.onEvent = typeof opts.onEvent === "function" ? opts.onEvent : function () {};

    // What was asked for, and what is used: "sse" or "poll".
    this.transportOption = transport;
    this.transport = transport === "poll" || !hasEventSource() || headerOnly ? "poll" : "sse";

    // The token as given, the one in use ("" for none) and whether a
    // function is to be asked for a fresh one before the next request.
    this._tokenSource = token;
    this._token = typeof token === "string" ? token : "";
    this._tokenStale = typeof token === "function";
    this.tokenInQuery = opts.tokenInQuery === true;
    this.withCredentials = opts.withCredentials === true;
    // Whether the node may refuse this client for its token or cookie:
    // then a stream the browser gave up on is checked for a 401 or 403.
    this._auth = token !== null || opts.tokenCookie === true;

    this.persistCursor = opts.persistCursor === true;
    this.storageKey = "holdline:cursor:" + this.base + "/" + this.channels.join(",");
    this.cursor = "";
    if (typeof opts.cursor === "string") {
      this.cursor = opts.cursor;
    } else if (this.persistCursor) {
      this.cursor = this._loadCursor();
    }

    this.running = false;
    this.failures = 0;
    // Each start() begins a new generation; a loop from an earlier start()
    // sees the number change and ends, so stop() followed quickly by start()
    // never leaves two loops polling side by side.
    this._generation = 0;
    this._abort = null;
    this._wake = null;
    // The open EventSource (sse), the timer that will open the next one,
    // and whether any stream of this client was ever answered: auto mode
    // gives up on streams only before that.
    this._es = null;
    this._retry = null;
    this._everOpened = false;
    // Set by a 403, for the wait that follows it; by a poll's 401 after a
    // poll that went through, for a fresh token without a wait.
    this._forbidden = false;
    this._refreshNow = false;
  }

  Holdline.prototype.start = function () {
    if (this.running) {
      return this;
    }
    this.running = true;
    this.failures = 0;
    this._generation += 1;
    // A token function is asked anew at every start: the page may have
    // been stopped for longer than its last token lives.
    this._tokenStale = typeof this._tokenSource === "function";
    this._emit("start", "channels " + this.channels.join(",") + ", transport " + this.transport);
    if (this.transport === "sse") {
      this._sseOpen(this._generation);
    } else {
      this._loop(this._generation);
    }
    return this;
  };

  Holdline.prototype.stop = function () {
    if (!this.running) {
      return this;
    }
    this.running = false;
    this._generation += 1;
    // Aborting the fetch, or closing the stream, frees the held connection
    // on the server at once instead of leaving it open until its timeout.
    if (this._abort) {
      this._abort.abort();
      this._abort = null;
    }
    this._sseClose();
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

  // The URL of the next event stream, with the current cursor when there
  // is one.
  Holdline.prototype.eventsUrl = function () {
    var url = this.base + "/events/" + this.channels.join(",");
    return this.cursor !== "" ? url + "?cursor=" + encodeURIComponent(this.cursor) : url;
  };

  Holdline.prototype._loop = async function (generation) {
    while (this.running && this._generation === generation) {
      this._forbidden = false;
      var ok = await this._freshToken(generation) && await this._pollOnce(generation);
      if (this._generation !== generation) {
        return;
      }
      if (ok) {
        this.failures = 0;
        continue;
      }
      this.failures += 1;
      // A token that simply ran out (the node answers a held poll when its
      // token ends, and the next poll gets a 401) is replaced at once, not
      // after a backoff: only a 401 that follows a fresh token waits.
      if (this._refreshNow) {
        this._refreshNow = false;
        continue;
      }
      var delay = this._failureDelay();
      this._emit("backoff", "retrying in " + (delay / 1000).toFixed(1) + " s");
      await this._sleep(delay);
    }
  };

  // The wait after the latest failure: after a 403 the longest, since a
  // grant does not change by itself, and otherwise the doubling backoff.
  Holdline.prototype._failureDelay = function () {
    return this.backoffDelay(this._forbidden ? 31 : this.failures);
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
      response = await fetch(url, this._fetchInit(controller, true));
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
    if (response.status === 401 || response.status === 403) {
      this._refused(response.status, "HTTP " + response.status + describeError(body));
      this._refreshNow = response.status === 401 && this._tokenStale && this.failures === 0;
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
    this._setCursor(cursor);

    var messages = Array.isArray(answer.messages) ? answer.messages : [];
    this._emit("response", messages.length + (messages.length === 1 ? " message" : " messages"));
    if (answer.missed === true) {
      this._missed();
      if (this._generation !== generation) {
        return false;
      }
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
      this._deliver(messages[i]);
    }
    return true;
  };

  // Takes the cursor an event's data carries ({"cursor": ...}), if any.
  Holdline.prototype._cursorFromEvent = function (e) {
    var info = null;
    try {
      info = JSON.parse(e.data);
    } catch (ignored) {
      return;
    }
    if (info && typeof info.cursor === "string") {
      this._setCursor(info.cursor);
    }
  };

  // What every fetch of the client sends: no caching, cookies as the
  // page asked, and the token in the header when there is one (polls only:
  // the check of a stream asks exactly what the stream asked).
  Holdline.prototype._fetchInit = function (controller, withToken) {
    var init = {
      method: "GET",
      cache: "no-store",
      credentials: this.withCredentials ? "include" : "same-origin",
      signal: controller ? controller.signal : undefined
    };
    if (withToken && this._token !== "") {
      init.headers = { Authorization: "Bearer " + this._token };
    }
    return init;
  };

  // A 401 or 403: reported, the next try asks for a fresh token, and a
  // 403 makes the next wait the longest.
  Holdline.prototype._refused = function (status, text) {
    this._tokenStale = typeof this._tokenSource === "function";
    if (status === 403) {
      this._forbidden = true;
      this._emit("forbidden", text);
    } else {
      this._emit("unauthorized", text);
    }
  };

  // Asks the token function for a fresh token if one is due. Resolves true
  // when the client may go on (a token in place, or none needed), false
  // after a failure (reported) or when stop() came first.
  Holdline.prototype._freshToken = function (generation) {
    if (typeof this._tokenSource !== "function" || !this._tokenStale) {
      return Promise.resolve(true);
    }
    var self = this;
    var timer = null;
    var asked = new Promise(function (resolve) {
      resolve(self._tokenSource());
    });
    var bound = new Promise(function (resolve, reject) {
      timer = setTimeout(function () {
        reject(new Error("no token within " + TOKEN_MS / 1000 + " s"));
      }, TOKEN_MS);
    });
    return Promise.race([asked, bound]).then(function (t) {
      clearTimeout(timer);
      if (self._generation !== generation) {
        return false;
      }
      self._token = typeof t === "string" ? t : "";
      self._tokenStale = false;
      return true;
    }, function (err) {
      clearTimeout(timer);
      if (self._generation !== generation) {
        return false;
      }
      self._emit("error", "the token function failed: " + ((err && err.message) || String(err)));
      return false;
    });
  };

  // Opens the event stream, unless stop() (or a newer start()) came first,
  // after asking for a fresh token if one is due.
  Holdline.prototype._sseOpen = function (generation) {
    this._retry = null;
    if (!this.running || this._generation !== generation) {
      return;
    }
    if (typeof this._tokenSource !== "function" || !this._tokenStale) {
      this._sseConnect(generation);
      return;
    }
    var self = this;
    this._freshToken(generation).then(function (ok) {
      if (!self.running || self._generation !== generation) {
        return;
      }
      if (ok) {
        self._sseConnect(generation);
      } else {
        self._sseRetry(generation, false);
      }
    });
  };

  // Opens the event stream now, with the token in place.
  Holdline.prototype._sseConnect = function (generation) {
    var self = this;
    // What onEvent is told, and the URL opened: the same with the token.
    var shown = this.eventsUrl();
    var url = shown;
    var opened = false;
    var es;
    this._emit("request", shown);
    if (this.tokenInQuery && this._token !== "") {
      url += (url.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(this._token);
    }
    try {
      es = this.withCredentials ? new root.EventSource(url, { withCredentials: true })
        : new root.EventSource(url);
    } catch (err) {
      // A URL the browser will not open (a bad base): retried like an error.
      this._emit("error", (err && err.message) || String(err));
      this._sseRetry(generation, false);
      return;
    }
    this._es = es;

    // Every handler first checks that its EventSource is still the current
    // one: a closed one can still have events queued.
    es.onopen = function () {
      if (self._es !== es) {
        return;
      }
      opened = true;
      self._everOpened = true;
      self.failures = 0;
      self._emit("open", "stream open");
    };
    es.onmessage = function (e) {
      if (self._es !== es) {
        return;
      }
      var m;
      try {
        m = JSON.parse(e.data);
      } catch (err) {
        self._emit("error", "event data is not JSON: " + err.message);
        return;
      }
      // The id: line before the data is the cursor after this message. A
      // plain (non-durable) message has none, and lastEventId keeps the
      // previous cursor, which is still right.
      if (typeof e.lastEventId === "string") {
        self._setCursor(e.lastEventId);
      }
      self._deliver(m);
    };
    es.addEventListener("missed", function (e) {
      if (self._es !== es) {
        return;
      }
      // The event itself is what matters; a cursor in it is a bonus.
      self._cursorFromEvent(e);
      self._missed();
    });
    // The node ends the stream when its token expires, with this event
    // first. The browser would reconnect with the same URL and cookie,
    // whose token is now refused; instead the client reopens the stream
    // itself, at once, with a fresh token, from the event's cursor: the
    // position the stream had reached, which may be past the last
    // message's.
    es.addEventListener("token_expired", function (e) {
      if (self._es !== es) {
        return;
      }
      // Without a cursor in it, the last message's is the one to go on from.
      self._cursorFromEvent(e);
      self._sseClose();
      self._tokenStale = typeof self._tokenSource === "function";
      self.failures = 0;
      self._emit("token_expired", "the stream's token expired; reopening with a fresh one");
      self._sseOpen(generation);
    });
    es.onerror = function () {
      if (self._es !== es) {
        return;
      }
      if (es.readyState === ES_CONNECTING) {
        // The browser reconnects by itself (after the server's retry:
        // delay) and sends Last-Event-ID, which the server prefers to the
        // URL's cursor: the stream resumes where it got to, including
        // positions the server sent without an event.
        self._emit("reconnect", opened ? "the stream ended; the browser reconnects"
          : "no stream yet; the browser retries");
        opened = false;
        return;
      }
      // The browser gave up (CLOSED): a new stream, from the last cursor
      // this client saw, with a fresh token, replaces it.
      self._sseClose();
      self._tokenStale = typeof self._tokenSource === "function";
      self._emit("error", "the stream was refused or cut");
      if (self._auth || (self.transportOption === "auto" && !self._everOpened)) {
        self._sseProbe(generation, url, shown, opened);
        return;
      }
      self._sseRetry(generation, opened);
    };
  };

  Holdline.prototype._sseClose = function () {
    if (this._retry !== null) {
      clearTimeout(this._retry);
      this._retry = null;
    }
    if (this._es) {
      this._es.close();
      this._es = null;
    }
  };

  // Opens the next stream after the backoff delay. A stream that was open
  // counts as a success: the next one waits the shortest delay only (but
  // after a 403 the longest).
  Holdline.prototype._sseRetry = function (generation, wasOpen) {
    if (!this.running || this._generation !== generation) {
      return;
    }
    if (wasOpen) {
      this.failures = 0;
    }
    this.failures += 1;
    var delay = this._failureDelay();
    this._forbidden = false;
    this._emit("backoff", "retrying in " + (delay / 1000).toFixed(1) + " s");
    var self = this;
    this._retry = setTimeout(function () {
      self._sseOpen(generation);
    }, delay);
  };

  // After the browser gave up on a stream (readyState CLOSED), in auto mode
  // before any stream ever opened and whenever a token or cookie is in use:
  // EventSource does not say why, so the same URL (shown: the same without
  // the token) is fetched once to find out. In auto mode, before any
  // stream opened, a 404 or 405, or a 200 that is not an event stream,
  // means streams cannot work here (an older server, a proxy that does not
  // pass /events), and the client long-polls from now on. A 401 or 403 is
  // reported and retried as for polls. Anything else (a 503 from an
  // overloaded node, a network error) is retried as a stream.
  Holdline.prototype._sseProbe = function (generation, url, shown, wasOpen) {
    var self = this;
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, PROBE_MS) : null;
    var canFallBack = this.transportOption === "auto" && !this._everOpened;
    fetch(url, this._fetchInit(controller, false))
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        var noStreams = response.status === 404 || response.status === 405 ||
          (response.status === 200 && !/^text\/event-stream\b/i.test(type));
        if (response.status === 401 || response.status === 403) {
          return response.text().then(function (body) {
            return { status: response.status, text: "HTTP " + response.status + describeError(body) };
          });
        }
        // Only the status and type were wanted; a 200 stream is not read.
        if (controller) {
          controller.abort();
        }
        return noStreams && canFallBack
          ? { status: 0, text: "HTTP " + response.status + (type ? " " + type.split(";")[0] : "") }
          : null;
      })
      .then(null, function () {
        return null;
      })
      .then(function (found) {
        if (timer !== null) {
          clearTimeout(timer);
        }
        if (!self.running || self._generation !== generation) {
          return;
        }
        if (found === null) {
          self._sseRetry(generation, wasOpen);
          return;
        }
        if (found.status !== 0) {
          self._refused(found.status, found.text);
          self._sseRetry(generation, false);
          return;
        }
        self.transport = "poll";
        self.failures = 0;
        self._emit("transport", "poll: " + shown + " answered " + found.text);
        self._loop(generation);
      });
  };

  // Hands one message object (from a poll answer or a stream event) to
  // onMessage, in the one shape both transports share.
  Holdline.prototype._deliver = function (raw) {
    var m = raw && typeof raw === "object" ? raw : {};
    this._call(this.onMessage, [{
      channel: typeof m.channel === "string" ? m.channel : this.channels[0],
      id: typeof m.id === "string" ? m.id : null,
      data: typeof m.data === "string" ? m.data : (m.data == null ? "" : String(m.data))
    }]);
  };

  Holdline.prototype._missed = function () {
    this._emit("missed", "some messages before this answer are no longer in history");
    this._call(this.onMissed, [{ cursor: this.cursor }]);
  };

  // Takes a cursor the server handed out; an empty one means "none yet",
  // so the old one is kept.
  Holdline.prototype._setCursor = function (cursor) {
    if (typeof cursor !== "string" || cursor === "" || cursor === this.cursor) {
      return;
    }
    this.cursor = cursor;
    if (this.persistCursor) {
      var store = sessionStore();
      try {
        if (store) {
          store.setItem(this.storageKey, cursor);
        }
      } catch (ignored) {
        // Full or blocked storage: the client works on, only without it.
      }
    }
  };

  Holdline.prototype._loadCursor = function () {
    var store = sessionStore();
    try {
      var v = store ? store.getItem(this.storageKey) : null;
      return typeof v === "string" ? v : "";
    } catch (ignored) {
      return "";
    }
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
