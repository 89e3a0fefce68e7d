// test_auth.mjs -- private channels in a real browser (Debian's Chromium,
// driven by playwright-core): holdline.js with tokens against nodes with
// auth.mode = "jwt", which this script starts itself. Tokens are HS256
// JWTs minted here with node:crypto, the way an application's server
// would mint them.
//
// Node 1: the default auth settings (leeway_s 30, no ?token=), with the
// test's "app" origin in http.cors_origins. Node 2: leeway_s 0 and
// query_token on, for tokens that run out within a case. Both share
// run.sh's Redis.
//
// Cases:
//   - long-poll with a token function from another origin: "auto" picks
//     long-poll, the first token is expired (401, a fresh one), then every
//     message published with a publish grant arrives once, in order;
//   - a page without a token reads the 401 and a 403 (status, JSON body,
//     WWW-Authenticate) from its own fetch, node 1 refuses ?token=, and
//     holdline.js waits backoffMaxMs after a 403, both transports;
//   - EventSource authenticated by the holdline_token cookie (set with
//     context.addCookies, HttpOnly, as an application would), on the same
//     origin, and from another origin of the same site with
//     withCredentials: true;
//   - tokenInQuery on node 2;
//   - tokens that live ~3 s on node 2 while a message is published every
//     200 ms for 8 s: a stream with tokenInQuery, a stream with tokenCookie
//     (the token function refreshes the cookie) and a long-poll, side by
//     side; each must get every message once and in order, through at
//     least two expiries (token_expired events, or 401s for the poll).
//
// This script starts and stops the two nodes itself; their pids are in
// DIR/node-auth-1.pid and DIR/node-auth-2.pid while they run, so that
// run.sh's cleanup can stop them if this script dies.
//
// Usage: node test_auth.mjs BIN/holdline PORT_1 PORT_2 REDIS_PORT DIR
// Prints one line per case and then "N passed, N failed"; exits 1 if any
// case failed. Normally started by run.sh.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync, rmSync, openSync, closeSync } from "node:fs";
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const [bin, port1, port2, redisPort, dir] = process.argv.slice(2);
if (!dir) {
    console.error("usage: node test_auth.mjs BIN PORT_1 PORT_2 REDIS_PORT DIR");
    process.exit(2);
}
const base1 = `http://127.0.0.1:${port1}`;
const base2 = `http://127.0.0.1:${port2}`;
// The "application" of the cross-origin cases: another origin (port) of
// the same site, served by this script on a loopback port the kernel
// picks. (A page Playwright answers itself has no address, and Chromium's
// local network access check then refuses its requests to loopback.)
let appOrigin = "";
const KEY = "holdline-browser-test-secret-0123456789abcdef";

const TOTAL_MS = 60000;
const STEP_MS = 10000;
const BACKOFF = { backoffMinMs: 300, backoffMaxMs: 1000 };
// The expiry cases: how long a token lives, the pause between two
// publishes and for how long they go on.
const SHORT_LIFE_S = 3;
const GAP_MS = 200;
const PUBLISH_MS = 8000;

let passed = 0;
let failed = 0;
let browser = null;
const nodes = [];
const nodeProblems = [];
// Every token minted, so that a case can check none leaked into onEvent.
const minted = new Set();

function ok(name, detail) {
    passed++;
    console.log(`[       OK ] ${name}${detail ? `: ${detail}` : ""}`);
}
function fail(name, problem) {
    failed++;
    console.log(`[  FAILED  ] ${name}: ${problem}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
    let timer;
    const bound = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms);
    });
    return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

// ---- tokens ---------------------------------------------------------------

// An HS256 JWT granting `subscribe` and `publish` (arrays of channel
// patterns), expiring `life` seconds from now (negative: already expired).
function mint({ subscribe = [], publish = [], life = 60 }) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iat: Math.min(now, now + life), exp: now + life, holdline: { subscribe, publish } })}`;
    const token = `${head}.${createHmac("sha256", KEY).update(head).digest("base64url")}`;
    minted.add(token);
    return token;
}

// ---- the nodes --------------------------------------------------------------

function startNode(n, port, env) {
    const log = `${dir}/node-auth-${n}.log`;
    const fd = openSync(log, "w");
    const proc = spawn(bin, ["-c", "config/holdline.cfg", "-p", String(port), "--redis", `127.0.0.1:${redisPort}`], {
        env: {
            ...process.env,
            HOLDLINE_HTTP_BIND: "127.0.0.1",
            HOLDLINE_LOG_LEVEL: "warn",
            HOLDLINE_NODE_NAME: `browser-auth-${n}`,
            HOLDLINE_AUTH_MODE: "jwt",
            HOLDLINE_AUTH_JWT_KEY: KEY,
            ...env,
        },
        stdio: ["ignore", fd, fd],
    });
    closeSync(fd);
    const pidFile = `${dir}/node-auth-${n}.pid`;
    writeFileSync(pidFile, `${proc.pid}\n`);
    const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve(signal ? `signal ${signal}` : code)));
    const node = { n, port, proc, log, pidFile, exited, running: true };
    exited.then(() => {
        node.running = false;
    });
    nodes.push(node);
    return node;
}

async function ready(node) {
    for (let i = 0; i < 200; i++) {
        if (!node.running) break;
        try {
            const r = await fetch(`http://127.0.0.1:${node.port}/readyz`, { signal: AbortSignal.timeout(1000) });
            if (r.status === 200) return;
        } catch {
            // Not listening yet.
        }
        await sleep(50);
    }
    const last = readFileSync(node.log, "utf8").trim().split("\n").slice(-3).join(" | ");
    throw new Error(`auth node ${node.n} on port ${node.port} did not become ready (log: ${node.log}: ${last})`);
}

// SIGTERM by pid, then the exit within 10 s with code 0 and a log without
// a sanitizer or crash report.
async function stopNode(node) {
    if (node.running) node.proc.kill("SIGTERM");
    let code = await Promise.race([node.exited, sleep(10000).then(() => "timeout")]);
    if (code === "timeout") {
        node.proc.kill("SIGKILL");
        code = `no exit within 10 s of SIGTERM (killed), ${await node.exited}`;
    }
    rmSync(node.pidFile, { force: true });
    const text = readFileSync(node.log, "utf8");
    const report = /AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|Assertion/.test(text);
    if (code !== 0 || report) {
        nodeProblems.push(`auth node ${node.n} exited with ${code}${report ? " and left a sanitizer or crash report" : ""} (log: ${node.log})`);
    }
}

function killNodes() {
    for (const node of nodes) {
        if (!node.running) continue;
        try {
            node.proc.kill("SIGKILL");
        } catch {
            // Already gone.
        }
        rmSync(node.pidFile, { force: true });
    }
}
process.on("exit", killNodes);
for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
        console.log(`[  FAILED  ] browser test: stopped by ${sig}`);
        failed++;
        console.log(`${passed} passed, ${failed} failed`);
        process.exit(1);
    });
}

// ---- talking to a node from here ------------------------------------------

async function publish(base, channel, data, token) {
    const r = await fetch(`${base}/publish/${channel}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
        body: data,
        signal: AbortSignal.timeout(5000),
    });
    const body = await r.text();
    if (r.status !== 201) throw new Error(`publish on ${channel} answered ${r.status}: ${body}`);
    return JSON.parse(body).id;
}

// The cursor a node hands out for a channel now.
async function cursorNow(base, channel) {
    const r = await fetch(`${base}/poll/${channel}?timeout=1`, {
        headers: { Authorization: `Bearer ${mint({ subscribe: [channel] })}` },
        signal: AbortSignal.timeout(5000),
    });
    const body = await r.text();
    if (r.status !== 200) throw new Error(`poll on ${channel} answered ${r.status}: ${body}`);
    return JSON.parse(body).cursor;
}

// ---- the page -----------------------------------------------------------------

const CHROMIUM = {
    executablePath: "/usr/bin/chromium",
    headless: true,
    timeout: 20000,
    args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ],
};

const T0 = Date.now();
function note(log, kind, value) {
    const entry = { kind, value, at: Date.now() - T0 };
    log.push(entry);
    return entry;
}

// The page of every case: loads holdline.js from ?base= (the one
// embedded in that node's binary) and nothing else.
const pageHtml = (base) =>
    `<!doctype html><meta charset="utf-8"><title>auth test</title><script src="${base}/holdline.js"></script>`;

// The application's server: only that page.
function startApp() {
    const server = createServer((req, res) => {
        const url = new URL(req.url, "http://app");
        if (url.pathname !== "/__auth_test__.html") {
            res.writeHead(404).end();
            return;
        }
        res.writeHead(200, { "Content-Type": "text/html", "Cache-Control": "no-store" }).end(pageHtml(url.searchParams.get("base")));
    });
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            appOrigin = `http://127.0.0.1:${server.address().port}`;
            resolve(server);
        });
    });
}

// A fresh context with a page at `origin` that loads holdline.js from
// `base`: a node's origin is answered by Playwright, the app's by the app.
// What the page reports through window.record(kind, value) goes to `log`;
// window.mintToken(spec) and window.refreshCookie(spec) are the
// application's token endpoints, run here. `cookie`, if given, is set
// before the page loads, HttpOnly, as a login would have set it.
async function openPage(log, origin, base, cookie) {
    const context = await withTimeout(browser.newContext(), STEP_MS, "newContext");
    const url = `${origin}/__auth_test__.html?base=${encodeURIComponent(base)}`;
    if (origin !== appOrigin) {
        await context.route(url, (route) => route.fulfill({ status: 200, contentType: "text/html", body: pageHtml(base) }));
    }
    const setCookie = (value) =>
        context.addCookies([{ name: "holdline_token", value, url: base, httpOnly: true, sameSite: "Lax" }]);
    if (cookie) await setCookie(cookie);
    await context.exposeFunction("record", (kind, value) => note(log, kind, value));
    // The first call of a spec with expiredFirst hands out an expired token.
    await context.exposeFunction("mintToken", (spec) => {
        const first = !log.some((e) => e.kind === "minted" && e.value === spec.tag);
        note(log, "minted", spec.tag);
        return mint({ ...spec, life: first && spec.expiredFirst ? -120 : spec.life });
    });
    await context.exposeFunction("refreshCookie", async (spec) => {
        note(log, "minted", spec.tag);
        await setCookie(mint(spec));
    });
    context.on("request", (req) => {
        if (!/\/(events|poll)\//.test(req.url())) return;
        // headers() leaves Authorization out; allHeaders() has it, later
        // (for a held poll, once it is answered).
        const entry = note(log, "http", { url: req.url(), type: req.resourceType(), authorization: null, known: false });
        entry.headers = req.allHeaders().then((h) => {
            entry.value.authorization = h.authorization ?? null;
            entry.value.known = true;
        }, () => {});
    });
    context.on("response", (res) => {
        if (/\/(events|poll)\//.test(res.url())) note(log, "http", { status: res.status(), url: res.url() });
    });
    const page = await withTimeout(context.newPage(), STEP_MS, "newPage");
    page.setDefaultTimeout(STEP_MS);
    page.on("pageerror", (e) => note(log, "pageerror", String(e)));
    const resp = await page.goto(url, { timeout: STEP_MS, waitUntil: "load" });
    if (!resp || resp.status() !== 200) throw new Error(`${url} answered ${resp ? resp.status() : "nothing"}`);
    if (!(await page.evaluate(() => typeof Holdline === "function"))) throw new Error(`the page has no Holdline (${base}/holdline.js)`);
    return { context, page };
}

// Starts holdline.js in the page as window.clients[tag]; its messages and
// events go to record() with the tag. token: a string, a spec for
// mintToken ({subscribe, life, expiredFirst}), a spec with cookie: true
// for refreshCookie, or null for none. Returns the client's transport.
async function startClient(page, tag, options, token) {
    return page.evaluate(({ tag, o, t }) => {
        const opts = {
            ...o,
            onMessage: (m) => window.record("message", { tag, ...m }),
            onEvent: (kind, text) => window.record("event", { tag, kind, text }),
        };
        if (typeof t === "string") opts.token = t;
        else if (t) opts.token = () => (t.cookie ? window.refreshCookie({ ...t, tag }) : window.mintToken({ ...t, tag }));
        window.clients = window.clients || {};
        window.clients[tag] = new Holdline(opts).start();
        return window.clients[tag].transport;
    }, { tag, o: options, t: token });
}

async function closePage(context, page) {
    if (page) {
        await page.evaluate(() => {
            for (const c of Object.values(window.clients || {})) c.stop();
            if (window.es) window.es.close();
        }).catch(() => {});
    }
    if (context) await withTimeout(context.close(), STEP_MS, "closing a context").catch(() => {});
}

const messages = (log, tag) => log.filter((e) => e.kind === "message" && e.value.tag === tag).map((e) => e.value);
const eventsOf = (log, tag, kind) => log.filter((e) => e.kind === "event" && e.value.tag === tag && e.value.kind === kind);
// Waits (briefly) until the headers of every request so far are known.
const headersKnown = (log) =>
    withTimeout(Promise.all(log.filter((e) => e.headers).map((e) => e.headers)), 2000, "request headers").catch(() => {});
const requests = (log, re) => log.filter((e) => e.kind === "http" && e.value.type && re.test(e.value.url)).map((e) => e.value);

async function waitFor(cond, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (cond()) return true;
        await sleep(50);
    }
    return cond();
}

// What the page got on channel ch against what was published: every
// message once, in order, with the node's id. Returns null, or what is
// wrong.
function compare(got, sent) {
    const seen = new Map();
    for (const m of got) seen.set(m.data, (seen.get(m.data) ?? 0) + 1);
    const dups = [...seen].filter(([, n]) => n > 1).map(([d, n]) => `${d} x${n}`);
    if (dups.length) return `duplicated ${dups.slice(0, 5).join(", ")}`;
    const lost = sent.filter((m) => !seen.has(m.data)).map((m) => m.data);
    if (lost.length) return `lost ${lost.length} of ${sent.length} (${lost.slice(0, 5).join(", ")}${lost.length > 5 ? ", ..." : ""})`;
    if (got.length !== sent.length) return `${got.length - sent.length} unexpected messages: ${JSON.stringify(got.find((m) => !sent.some((s) => s.data === m.data)))}`;
    for (let i = 0; i < sent.length; i++) {
        if (got[i].data !== sent[i].data) return `out of order at ${i}: got ${got[i].data}, expected ${sent[i].data}`;
        if (got[i].id !== sent[i].id) return `${sent[i].data} has id ${got[i].id}, the node gave ${sent[i].id}`;
    }
    return null;
}

// A minted token in what the page reported to onEvent (it must never be).
function leakedToken(log) {
    const texts = log.filter((e) => e.kind === "event").map((e) => String(e.value.text));
    return texts.some((t) => [...minted].some((tok) => t.includes(tok) || t.includes(encodeURIComponent(tok))))
        ? "a token appears in an onEvent text"
        : null;
}

function pageErrors(log) {
    const errs = log.filter((e) => e.kind === "pageerror").map((e) => e.value);
    return errs.length ? `page errors: ${errs.join("; ")}` : null;
}

// After a failed case: what the page asked and got, in order.
function trace(log) {
    for (const e of log) {
        let text = null;
        if (e.kind === "http") text = e.value.status ? `  answered ${e.value.status}` : `${e.value.type} ${e.value.url.replace(/token=[^&]*/, "token=...").replace(/^http:\/\/[^/]*/, "")}${e.value.authorization ? " (Authorization)" : ""}`;
        else if (e.kind === "message") text = `${e.value.tag}: message ${e.value.data}`;
        else if (e.kind === "event" && e.value.kind !== "request") text = `${e.value.tag}: ${e.value.kind}${e.value.text ? `: ${e.value.text}` : ""}`;
        else if (e.kind === "minted") text = `${e.value}: token minted`;
        if (text !== null) console.log(`      ${String(e.at).padStart(6)} ms  ${text}`);
    }
}

// HOLDLINE_BROWSER_ONLY=text runs only the cases whose name contains it;
// HOLDLINE_BROWSER_TRACE=1 prints every case's trace, passed or not.
const only = process.env.HOLDLINE_BROWSER_ONLY ?? "";
const traceAll = process.env.HOLDLINE_BROWSER_TRACE === "1";
const skipped = (name) => only !== "" && !name.includes(only);

const prefix = `au${Date.now() % 1000000}`;
let caseNo = 0;
const channelFor = (what) => `${prefix}-${++caseNo}-${what}`;

// Runs one case: body(log) returns [problem or null, detail]; a page is
// opened by the body itself (some open several).
async function runCase(name, body) {
    if (skipped(name)) return;
    const log = [];
    const pages = [];
    const open = async (origin, base, cookie) => {
        const p = await openPage(log, origin, base, cookie);
        pages.push(p);
        return p.page;
    };
    const started = Date.now();
    try {
        const [problem, detail] = await body(log, open);
        const all = [problem, leakedToken(log), pageErrors(log)].filter(Boolean).join("; ");
        const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
        if (all) {
            fail(name, `${all} (${took})`);
            trace(log);
        } else {
            ok(name, `${detail} (${took})`);
            if (traceAll) trace(log);
        }
    } catch (e) {
        fail(name, e.message.split("\n")[0]);
        trace(log);
    } finally {
        for (const p of pages) await closePage(p.context, p.page);
    }
}

// Publishes n numbered messages on ch, `gap` ms apart; returns what was sent.
async function publishSome(base, ch, n, gap = 0) {
    const token = mint({ publish: [ch] });
    const sent = [];
    for (let i = 1; i <= n; i++) {
        sent.push({ data: `${ch} #${i}`, id: await publish(base, ch, `${ch} #${i}`, token) });
        if (gap) await sleep(gap);
    }
    return sent;
}

// ---- the cases ------------------------------------------------------------------

async function pollCase() {
    await runCase('long-poll with a token function, from another origin ("auto" picks long-poll): an expired first token, a 401, a fresh token, then every message once and in order', async (log, open) => {
        const ch = channelFor("poll");
        const page = await open(appOrigin, base1);
        const transport = await startClient(page, "p",
            { base: base1, channels: [ch], timeout: 5, cursor: await cursorNow(base1, ch), ...BACKOFF },
            { subscribe: [ch], life: 60, expiredFirst: true });
        await waitFor(() => eventsOf(log, "p", "unauthorized").length > 0, STEP_MS);
        const sent = await publishSome(base1, ch, 10);
        await waitFor(() => messages(log, "p").length >= sent.length, STEP_MS);
        await sleep(300);
        await headersKnown(log);
        const polls = requests(log, /\/poll\//);
        const known = polls.filter((r) => r.known);
        const minted = log.filter((e) => e.kind === "minted").length;
        const unauthorized = eventsOf(log, "p", "unauthorized");
        const problem = (transport !== "poll" ? `client.transport is ${JSON.stringify(transport)}, expected "poll"` : null) ??
            (unauthorized.length !== 1 ? `${unauthorized.length} "unauthorized" events, expected 1 (for the expired first token)` : null) ??
            (!/^HTTP 401: unauthorized \(/.test(unauthorized[0].value.text) ? `"unauthorized" says ${JSON.stringify(unauthorized[0].value.text)}` : null) ??
            (minted < 2 ? `the token function was called ${minted} time(s), expected at least 2` : null) ??
            (known.length < 2 ? `the headers of only ${known.length} polls are known` : null) ??
            (known.some((r) => !/^Bearer .+\..+\..+$/.test(r.authorization ?? "")) ? "a poll went without an Authorization: Bearer header" : null) ??
            (polls.some((r) => /token=/.test(r.url)) ? "a poll put the token in its URL" : null) ??
            compare(messages(log, "p"), sent);
        return [problem, `${sent.length} messages, ${known.length} answered polls each with Authorization, the token function called ${minted} times; 401 said "${unauthorized[0]?.value.text}"`];
    });
}

async function refusalCase() {
    await runCase("a page without a token reads the 401 (status, JSON, WWW-Authenticate) and a 403 from its own cross-origin fetch; ?token= is refused where query_token is off", async (log, open) => {
        const ch = channelFor("closed");
        const page = await open(appOrigin, base1);
        const other = mint({ subscribe: [`${ch}-other`] });
        const got = await page.evaluate(async ({ base, ch, other }) => {
            const read = async (url, init) => {
                const r = await fetch(url, init);
                let body = null;
                try {
                    body = await r.json();
                } catch {
                    // Reported as null.
                }
                return { status: r.status, body, www: r.headers.get("WWW-Authenticate") };
            };
            return {
                none: await read(`${base}/poll/${ch}?timeout=1`),
                forbidden: await read(`${base}/poll/${ch}?timeout=1`, { headers: { Authorization: `Bearer ${other}` } }),
                query: await read(`${base}/poll/${ch}?timeout=1&token=${encodeURIComponent(other)}`),
            };
        }, { base: base1, ch, other });
        const check = (what, r, status, error, www, detail) =>
            r.status !== status ? `${what}: status ${r.status}, expected ${status}` :
            r.body?.error !== error ? `${what}: body ${JSON.stringify(r.body)}, expected error "${error}"` :
            !www.test(r.www ?? "") ? `${what}: WWW-Authenticate ${JSON.stringify(r.www)} is not readable or not ${www}` :
            detail && !detail.test(r.body.detail) ? `${what}: detail ${JSON.stringify(r.body.detail)}` : null;
        const problem = check("no token", got.none, 401, "unauthorized", /^Bearer realm="holdline"$/) ??
            check("a token for another channel", got.forbidden, 403, "forbidden", /error="insufficient_scope"/, /does not grant subscribe/) ??
            check("?token= on node 1", got.query, 401, "unauthorized", /error="invalid_token"/, /query_token/);
        return [problem, `401 ${JSON.stringify(got.none.body.detail)}, 403 ${JSON.stringify(got.forbidden?.body?.detail)}`];
    });

    await runCase("holdline.js after a 403 (a token for another channel) waits backoffMaxMs instead of retrying: long-poll on node 1, EventSource with tokenInQuery on node 2", async (log, open) => {
        const ch = channelFor("forbidden");
        const page1 = await open(appOrigin, base1);
        const page2 = await open(base2, base2);
        const long = { backoffMinMs: 300, backoffMaxMs: 4000 };
        const tokenSpec = { subscribe: [`${ch}-other`], life: 60 };
        await startClient(page1, "poll", { base: base1, channels: [ch], timeout: 5, ...long }, tokenSpec);
        const sseTransport = await startClient(page2, "sse", { channels: [ch], tokenInQuery: true, ...long }, tokenSpec);
        await sleep(2500);
        const problems = [];
        const summary = [];
        for (const tag of ["poll", "sse"]) {
            const forbidden = eventsOf(log, tag, "forbidden");
            const backoff = eventsOf(log, tag, "backoff").map((e) => parseFloat(e.value.text.replace(/^retrying in /, "")));
            const tries = requests(log, tag === "poll" ? /\/poll\// : /\/events\//).filter((r) => tag === "poll" || r.type === "eventsource").length;
            if (forbidden.length !== 1) problems.push(`${tag}: ${forbidden.length} "forbidden" events in 2.5 s, expected 1`);
            else if (!/does not grant subscribe/.test(forbidden[0].value.text)) problems.push(`${tag}: "forbidden" says ${JSON.stringify(forbidden[0].value.text)}`);
            if (backoff.length !== 1 || !(backoff[0] >= 3.2 && backoff[0] <= 4)) problems.push(`${tag}: waits ${JSON.stringify(backoff)} s, expected one wait of 3.2-4 s`);
            if (tries !== 1) problems.push(`${tag}: ${tries} requests in 2.5 s, expected 1`);
            if (messages(log, tag).length) problems.push(`${tag}: got a message`);
            summary.push(`${tag}: 1 request, "forbidden", then ${backoff[0]} s`);
        }
        if (sseTransport !== "sse") problems.push(`the tokenInQuery client's transport is ${sseTransport}`);
        return [problems.join("; ") || null, summary.join("; ")];
    });
}

async function cookieCases() {
    await runCase("EventSource authenticated by the holdline_token cookie (context.addCookies, HttpOnly), same-origin page, no token option", async (log, open) => {
        const ch = channelFor("cookie");
        const page = await open(base1, base1, mint({ subscribe: [ch], life: 60 }));
        const transport = await startClient(page, "c", { channels: [ch], cursor: await cursorNow(base1, ch), ...BACKOFF }, null);
        await waitFor(() => eventsOf(log, "c", "open").length > 0, STEP_MS);
        const sent = await publishSome(base1, ch, 10);
        await waitFor(() => messages(log, "c").length >= sent.length, STEP_MS);
        await sleep(300);
        await headersKnown(log);
        const streams = requests(log, /\/events\//);
        const problem = (transport !== "sse" ? `client.transport is ${JSON.stringify(transport)}, expected "sse"` : null) ??
            (streams.some((r) => /token=/.test(r.url) || r.authorization) ? "a stream carried the token in its URL or a header" : null) ??
            (!streams.some((r) => r.known) ? "the headers of no stream are known" : null) ??
            (eventsOf(log, "c", "error").length ? `errors: ${eventsOf(log, "c", "error").map((e) => e.value.text).join("; ")}` : null) ??
            compare(messages(log, "c"), sent);
        return [problem, `${sent.length} messages on ${streams.length} stream(s)`];
    });

    await runCase("EventSource with withCredentials: true from another origin of the same site, by the cookie (a raw EventSource without it is refused)", async (log, open) => {
        const ch = channelFor("credentials");
        const page = await open(appOrigin, base1, mint({ subscribe: [ch], life: 60 }));
        const transport = await startClient(page, "w",
            { base: base1, channels: [ch], withCredentials: true, tokenCookie: true, cursor: await cursorNow(base1, ch), ...BACKOFF }, null);
        const without = await page.evaluate((url) => new Promise((resolve) => {
            const es = new EventSource(url);
            window.es = es;
            es.onopen = () => resolve("open");
            es.onerror = () => {
                if (es.readyState === 2) resolve("closed");
            };
            setTimeout(() => resolve(`readyState ${es.readyState} after 5 s`), 5000);
        }), `${base1}/events/${ch}`);
        await waitFor(() => eventsOf(log, "w", "open").length > 0, STEP_MS);
        const sent = await publishSome(base1, ch, 10);
        await waitFor(() => messages(log, "w").length >= sent.length, STEP_MS);
        await sleep(300);
        const problem = (transport !== "sse" ? `client.transport is ${JSON.stringify(transport)}, expected "sse"` : null) ??
            (without !== "closed" ? `the EventSource without withCredentials ended ${without}, expected closed (a 401)` : null) ??
            compare(messages(log, "w"), sent);
        return [problem, `${sent.length} messages from ${appOrigin}`];
    });
}

async function queryCase() {
    await runCase("tokenInQuery: true on a node with auth.query_token on: the stream's URL carries token=, onEvent never shows it", async (log, open) => {
        const ch = channelFor("query");
        const page = await open(base2, base2);
        const transport = await startClient(page, "q",
            { channels: [ch], tokenInQuery: true, cursor: await cursorNow(base2, ch), ...BACKOFF }, { subscribe: [ch], life: 60 });
        await waitFor(() => eventsOf(log, "q", "open").length > 0, STEP_MS);
        const sent = await publishSome(base2, ch, 10);
        await waitFor(() => messages(log, "q").length >= sent.length, STEP_MS);
        await sleep(300);
        const streams = requests(log, /\/events\//);
        const shown = eventsOf(log, "q", "request").map((e) => e.value.text);
        const problem = (transport !== "sse" ? `client.transport is ${JSON.stringify(transport)}, expected "sse"` : null) ??
            (streams.length === 0 || streams.some((r) => !/[?&]token=[^&]+/.test(r.url)) ? "a stream went without token= in its URL" : null) ??
            (shown.some((u) => /token=/.test(u)) ? `onEvent "request" shows ${shown.find((u) => /token=/.test(u))}` : null) ??
            compare(messages(log, "q"), sent);
        return [problem, `${sent.length} messages; onEvent showed ${shown[0]?.replace(/cursor=[^&]*/, "cursor=...")}`];
    });
}

// Three clients on node 2 (leeway_s 0) whose token function mints tokens
// that live SHORT_LIFE_S, while a message is published on each one's
// channel every GAP_MS for PUBLISH_MS.
async function expiryCases() {
    const clients = [
        { tag: "query", name: "stream with tokenInQuery", opts: { tokenInQuery: true }, cookie: false, kind: "token_expired", transport: "sse" },
        { tag: "cookie", name: "stream with tokenCookie (the token function refreshes the cookie)", opts: { tokenCookie: true }, cookie: true, kind: "token_expired", transport: "sse" },
        { tag: "poll", name: "long-poll", opts: { transport: "poll", timeout: 5 }, cookie: false, kind: "unauthorized", transport: "poll" },
    ];
    const names = clients.map((c) => `tokens that live ${SHORT_LIFE_S} s (leeway_s 0), a message every ${GAP_MS} ms for ${PUBLISH_MS / 1000} s: ${c.name} gets each once and in order through at least two expiries`);
    if (names.every(skipped)) return;
    const log = [];
    const pages = [];
    const started = Date.now();
    const outcome = new Map();
    try {
        for (const c of clients) {
            c.ch = channelFor(`expiry-${c.tag}`);
            pages.push(await openPage(log, base2, base2));
        }
        const cursors = await Promise.all(clients.map((c) => cursorNow(base2, c.ch)));
        for (const [i, c] of clients.entries()) {
            c.got = await startClient(pages[i].page, c.tag, { channels: [c.ch], cursor: cursors[i], ...c.opts, ...BACKOFF },
                { subscribe: [c.ch], life: SHORT_LIFE_S, cookie: c.cookie });
        }
        const tokens = new Map(clients.map((c) => [c.tag, mint({ publish: [c.ch], life: 60 })]));
        for (const c of clients) c.sent = [];
        const end = Date.now() + PUBLISH_MS;
        for (let i = 1; Date.now() < end; i++) {
            await Promise.all(clients.map(async (c) => {
                const data = `${c.ch} #${i}`;
                c.sent.push({ data, id: await publish(base2, c.ch, data, tokens.get(c.tag)) });
            }));
            await sleep(GAP_MS);
        }
        await waitFor(() => clients.every((c) => messages(log, c.tag).length >= c.sent.length), STEP_MS);
        await sleep(300);
        for (const c of clients) {
            const expiries = eventsOf(log, c.tag, c.kind).length;
            const problem = (c.got !== c.transport ? `client.transport is ${JSON.stringify(c.got)}, expected "${c.transport}"` : null) ??
                (expiries < 2 ? `${expiries} "${c.kind}" events, expected at least 2` : null) ??
                compare(messages(log, c.tag), c.sent);
            const minted = log.filter((e) => e.kind === "minted" && e.value === c.tag).length;
            outcome.set(c.tag, [problem, `${c.sent.length} messages, ${expiries} "${c.kind}", ${minted} tokens minted`]);
        }
    } catch (e) {
        for (const c of clients) if (!outcome.has(c.tag)) outcome.set(c.tag, [e.message.split("\n")[0], ""]);
    } finally {
        for (const p of pages) await closePage(p.context, p.page);
    }
    const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    let traced = false;
    for (const [i, c] of clients.entries()) {
        if (skipped(names[i])) continue;
        const [problem, detail] = outcome.get(c.tag);
        const all = [problem, leakedToken(log.filter((e) => e.value?.tag === c.tag)), pageErrors(log)].filter(Boolean).join("; ");
        if (all) {
            fail(names[i], `${all} (${took})`);
            if (!traced) trace(log);
            traced = true;
        } else {
            ok(names[i], `${detail} (${took}, the three side by side)`);
            if (traceAll && !traced) trace(log);
            traced = true;
        }
    }
}

const totalTimer = setTimeout(() => {
    console.log(`[  FAILED  ] browser test: not finished after ${TOTAL_MS / 1000} s`);
    failed++;
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(1);
}, TOTAL_MS);

let app = null;
try {
    app = await startApp();
    const n1 = startNode(1, port1, { HOLDLINE_HTTP_CORS_ORIGINS: appOrigin });
    const n2 = startNode(2, port2, { HOLDLINE_AUTH_LEEWAY_S: "0", HOLDLINE_AUTH_QUERY_TOKEN: "true" });
    await Promise.all([ready(n1), ready(n2)]);
    browser = await chromium.launch(CHROMIUM);
    await pollCase();
    await refusalCase();
    await cookieCases();
    await queryCase();
    await expiryCases();
} catch (e) {
    fail("browser test stopped", e.message.split("\n")[0]);
}
clearTimeout(totalTimer);
await withTimeout(browser ? browser.close() : Promise.resolve(), STEP_MS, "closing Chromium").catch((e) =>
    console.log(`browser test: ${e.message}`),
);
for (const node of nodes) await stopNode(node);
if (app) {
    app.closeAllConnections();
    app.close();
}
if (nodeProblems.length) fail("the auth nodes stopped cleanly on SIGTERM", nodeProblems.join("; "));
else ok("the auth nodes stopped cleanly on SIGTERM", `${nodes.length} nodes, no sanitizer or crash report`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
