// test_restart.mjs -- a real browser (Debian's Chromium, driven by
// playwright-core) subscribes on node A while messages are published on
// node B, and node A is stopped (SIGTERM) and started again on the same
// port halfway through: the page must get every message exactly once, in
// order, with the ids node B handed out.
//
// Restart cases, each on channels of its own:
//   - holdline.js in auto mode, which in Chromium is EventSource on
//     /events, on two channels at once (one combined cursor);
//   - a raw EventSource on /events, resumed by the browser alone
//     (Last-Event-ID);
//   - holdline.js with transport: "poll" (the long-poll fallback);
//   - holdline.js when its reconnects are answered 503, which makes
//     Chromium close the EventSource for good.
// Then, without a restart: auto mode where /events answers 404 (it must
// long-poll instead), holdline.js with persistCursor across a page
// reload (messages published while the page is away arrive after it,
// none twice), and onMissed for both transports (a cursor from another
// Redis data set).
//
// This script starts and stops node A itself (it is restarted between
// cases); its pid is always in DIR/node-a.pid while it runs, so that
// run.sh's cleanup can stop it if this script dies. Redis and node B are
// run.sh's.
//
// Usage: node test_restart.mjs BIN/holdline PORT_A REDIS_PORT BASE_B DIR
// Prints one line per case and then "N passed, N failed"; exits 1 if any
// case failed. Normally started by run.sh.

import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync, rmSync, openSync, closeSync } from "node:fs";
import { chromium } from "playwright-core";

const [bin, portA, redisPort, baseB, dir] = process.argv.slice(2);
if (!dir) {
    console.error("usage: node test_restart.mjs BIN PORT_A REDIS_PORT BASE_B DIR");
    process.exit(2);
}
const baseA = `http://127.0.0.1:${portA}`;
const pidFile = `${dir}/node-a.pid`;

// Every step has its own bound, and the whole run has one more, so that a
// hung browser or node cannot hold up the suite.
const TOTAL_MS = 100000;
const STEP_MS = 10000;
// Messages per restart case, the pause between two publishes, after which
// message node A is stopped, and how long it stays down: longer than the
// server's retry: 3000, so the browser's first reconnect finds the port
// closed and has to try again.
const COUNT = 40;
const GAP_MS = 100;
const STOP_AFTER = 10;
const DOWN_MS = 4000;
// After the last publish (and node A being back), how long the page may
// take to catch up.
const CATCH_UP_MS = 20000;
// The client's backoff in these cases: short, so a down node costs seconds.
const BACKOFF = { backoffMinMs: 300, backoffMaxMs: 1000 };

let passed = 0;
let failed = 0;
let browser = null;
let nodeA = null; // {proc, n, exited: Promise<code>}
let starts = 0;
const nodeProblems = [];

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

// ---- node A: started, stopped and restarted by this script -------------

function startA() {
    starts++;
    const log = `${dir}/node-a-${starts}.log`;
    const fd = openSync(log, "w");
    const proc = spawn(bin, ["-c", "config/holdline.cfg", "-p", String(portA), "--redis", `127.0.0.1:${redisPort}`], {
        env: {
            ...process.env,
            HOLDLINE_HTTP_BIND: "127.0.0.1",
            HOLDLINE_LOG_LEVEL: "warn",
            HOLDLINE_NODE_NAME: `browser-a-${starts}`,
            // Heartbeats well within each case, so that they are part of
            // what the browser parses. Settings a server without them
            // ignores.
            HOLDLINE_SSE_HEARTBEAT_S: "1",
        },
        stdio: ["ignore", fd, fd],
    });
    closeSync(fd);
    writeFileSync(pidFile, `${proc.pid}\n`);
    const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve(signal ? `signal ${signal}` : code)));
    nodeA = { proc, n: starts, log, exited };
    return nodeA;
}

async function readyA() {
    for (let i = 0; i < 200; i++) {
        let ready = false;
        try {
            const r = await fetch(`${baseA}/readyz`, { signal: AbortSignal.timeout(1000) });
            ready = r.status === 200;
        } catch {
            // Not listening yet.
        }
        if (ready) return checkPortOwner();
        await sleep(50);
    }
    throw new Error(`node A on port ${portA} did not become ready (log: ${nodeA.log})`);
}

// holdline listens with SO_REUSEPORT, so while node A is down another
// process of the same user (another test's node picking a free port) can
// start listening on its port, and then share it with the restarted node
// A: the page's reconnects would reach a node of another Redis. That is
// reported as what it is rather than as lost messages. Needs ss
// (iproute2); without it the check is skipped.
function checkPortOwner() {
    let out;
    try {
        out = execFileSync("ss", ["-Hltnp", `sport = :${portA}`], { encoding: "utf8", timeout: 5000 });
    } catch {
        return;
    }
    const others = [...new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))].filter((p) => p !== nodeA.proc.pid);
    if (others.length) {
        throw new Error(`port ${portA} is also listened on by pid ${others.join(", ")}, not this test's node A: ` +
            "another process listens on it too (SO_REUSEPORT shares it), so this run cannot test a restart on it");
    }
}

// SIGTERM by pid, then the exit within 10 s with code 0 and a log without
// a sanitizer or crash report, as run.sh asks of node B.
async function stopA() {
    const a = nodeA;
    if (!a) return;
    a.proc.kill("SIGTERM");
    let code = await Promise.race([a.exited, sleep(10000).then(() => "timeout")]);
    if (code === "timeout") {
        a.proc.kill("SIGKILL");
        code = `no exit within 10 s of SIGTERM (killed), ${await a.exited}`;
    }
    nodeA = null;
    rmSync(pidFile, { force: true });
    const text = readFileSync(a.log, "utf8");
    const report = /AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|Assertion/.test(text);
    if (code !== 0 || report) {
        nodeProblems.push(`node A #${a.n} exited with ${code}${report ? " and left a sanitizer or crash report" : ""} (log: ${a.log})`);
    }
}

function killA() {
    if (nodeA) {
        try {
            nodeA.proc.kill("SIGKILL");
        } catch {
            // Already gone.
        }
        rmSync(pidFile, { force: true });
    }
}
process.on("exit", killA);
for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
        console.log(`[  FAILED  ] browser test: stopped by ${sig}`);
        failed++;
        console.log(`${passed} passed, ${failed} failed`);
        process.exit(1);
    });
}

// ---- publishing on node B ----------------------------------------------

async function publish(channel, data) {
    const r = await fetch(`${baseB}/publish/${channel}`, {
        method: "POST",
        body: data,
        signal: AbortSignal.timeout(5000),
    });
    const body = await r.text();
    if (r.status !== 201) throw new Error(`publish on B answered ${r.status}: ${body}`);
    return JSON.parse(body).id;
}

// The cursor node B hands out for a channel now.
async function cursorNow(channel) {
    const r = await fetch(`${baseB}/poll/${channel}?timeout=1`, { signal: AbortSignal.timeout(5000) });
    return JSON.parse(await r.text()).cursor;
}

// ---- the page ------------------------------------------------------------

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

// A page of node A's origin that loads the holdline.js node A serves (the
// one embedded in the binary) and nothing else; the demo page would run a
// client of its own. Playwright answers this one URL; everything else the
// page asks for goes to the node.
const PAGE = `${baseA}/__restart_test__.html`;
const PAGE_HTML = '<!doctype html><meta charset="utf-8"><title>restart test</title><script src="/holdline.js"></script>';

// One case's page: a fresh context, the page loaded, and what the page
// reports through window.record(kind, value) collected in `log` (it
// survives reloads).
async function openPage(log) {
    const context = await withTimeout(browser.newContext(), STEP_MS, "newContext");
    await context.route(PAGE, (route) => route.fulfill({ status: 200, contentType: "text/html", body: PAGE_HTML }));
    await context.exposeFunction("record", (kind, value) => {
        note(log, kind, value);
    });
    // Every request the page makes to a node and how it ended, for the
    // trace of a failed case. (Playwright does not show the Last-Event-ID
    // header Chromium adds to a reconnect; the ids of the messages before
    // it say what it was.)
    const short = (u) => u.replace(baseA, "").replace(/cursor=[^&]*/, (c) => `cursor=...${c.slice(-12)}`);
    context.on("request", (req) => {
        if (!/\/(events|poll)\//.test(req.url())) return;
        note(log, "http", short(req.url()));
    });
    context.on("response", (res) => {
        if (/\/(events|poll)\//.test(res.url())) note(log, "http", `  answered ${res.status()}`);
    });
    context.on("requestfailed", (req) => {
        if (/\/(events|poll)\//.test(req.url())) note(log, "http", `  failed: ${req.failure()?.errorText}`);
    });
    const page = await withTimeout(context.newPage(), STEP_MS, "newPage");
    page.setDefaultTimeout(STEP_MS);
    page.on("pageerror", (e) => note(log, "pageerror", String(e)));
    const resp = await page.goto(PAGE, { timeout: STEP_MS, waitUntil: "load" });
    if (!resp || resp.status() !== 200) throw new Error(`${PAGE} answered ${resp ? resp.status() : "nothing"}`);
    const has = await page.evaluate(() => typeof Holdline === "function" && typeof EventSource === "function");
    if (!has) throw new Error("the page has no Holdline (node A's /holdline.js) or no EventSource");
    return { context, page };
}

// Starts holdline.js in the page as window.client; messages and callbacks
// go to record(). Returns the cursor it starts from.
async function startClient(page, options) {
    return page.evaluate((o) => {
        window.client = new Holdline({
            ...o,
            onMessage: (m) => window.record("message", m),
            onMissed: (info) => window.record("missed", info),
            onEvent: (kind, text) => window.record("event", { kind, text }),
        });
        window.client.start();
        return window.client.cursor;
    }, options);
}

// A raw EventSource in the page as window.es: only the browser's own
// reconnects, with Last-Event-ID.
async function startRawEventSource(page, url) {
    await page.evaluate((u) => {
        const es = new EventSource(u);
        window.es = es;
        es.onopen = () => window.record("event", { kind: "open" });
        es.onmessage = (e) => window.record("message", { ...JSON.parse(e.data), lastEventId: e.lastEventId });
        es.onerror = () => window.record("event", { kind: es.readyState === 2 ? "closed" : "reconnect" });
    }, url);
}

// Stops the page's subscription (so node A frees it at once) and closes
// the case's context.
async function closePage(context, page) {
    if (page) {
        await page.evaluate(() => {
            if (window.client) window.client.stop();
            if (window.es) window.es.close();
        }).catch(() => {});
    }
    if (context) await withTimeout(context.close(), STEP_MS, "closing a context").catch(() => {});
}

// A case that failed halfway may have left node A stopped.
async function ensureA() {
    if (!nodeA) {
        startA();
        await readyA();
    }
}

// A case's log entry, with the time since this script started.
const T0 = Date.now();
function note(log, kind, value) {
    const entry = { kind, value, at: Date.now() - T0 };
    log.push(entry);
    return entry;
}

// After a failed case: what the page asked the node and what it got, in
// order, the node's stop and start included.
function trace(log) {
    for (const e of log) {
        let text = null;
        if (e.kind === "http" || e.kind === "node") text = e.value;
        else if (e.kind === "message") text = `message ${e.value.data}${e.value.lastEventId ? ` id ...${e.value.lastEventId.slice(-12)}` : ""}`;
        else if (e.kind === "event" && e.value.kind !== "request") text = `${e.value.kind}${e.value.text ? `: ${e.value.text}` : ""}`;
        if (text !== null) console.log(`      ${String(e.at).padStart(6)} ms  ${text}`);
    }
}

const messages = (log) => log.filter((e) => e.kind === "message").map((e) => e.value);
const events = (log, kind) => log.filter((e) => e.kind === "event" && e.value.kind === kind).length;

async function waitFor(cond, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (cond()) return true;
        await sleep(50);
    }
    return cond();
}

// Publishes "warm-up" messages on every channel until the page has one
// from each: then its subscription is surely in place, wherever the
// server fixes the position of a stream opened without a cursor.
async function warmUp(log, channels) {
    for (let round = 1; round <= 40; round++) {
        for (const ch of channels) await publish(ch, `warm-up ${round}`);
        const got = (ch) => messages(log).some((m) => m.channel === ch && /^warm-up /.test(m.data));
        if (await waitFor(() => channels.every(got), 250)) return;
    }
    throw new Error("no warm-up message reached the page within 10 s");
}

// Compares what the page got (warm-ups left out) with what was published,
// channel by channel: every message once, in order, with B's id. Returns
// null, or what is wrong.
function compare(got, sent, channels) {
    const problems = [];
    for (const ch of channels) {
        const want = sent.filter((m) => m.channel === ch);
        const have = got.filter((m) => m.channel === ch && !/^warm-up /.test(m.data));
        const seen = new Map();
        for (const m of have) seen.set(m.data, (seen.get(m.data) ?? 0) + 1);
        const dups = [...seen].filter(([, n]) => n > 1).map(([d, n]) => `${d} x${n}`);
        const lost = want.filter((m) => !seen.has(m.data)).map((m) => m.data);
        if (dups.length) problems.push(`${ch}: duplicated ${dups.slice(0, 5).join(", ")}`);
        if (lost.length) problems.push(`${ch}: lost ${lost.length} (${lost.slice(0, 5).join(", ")}${lost.length > 5 ? ", ..." : ""})`);
        if (!dups.length && !lost.length) {
            for (let i = 0; i < want.length; i++) {
                if (have[i].data !== want[i].data) {
                    problems.push(`${ch}: out of order at ${i}: got ${have[i].data}, expected ${want[i].data}`);
                    break;
                }
                if (have[i].id !== want[i].id) {
                    problems.push(`${ch}: ${want[i].data} has id ${have[i].id}, node B gave ${want[i].id}`);
                    break;
                }
            }
        }
    }
    return problems.length ? problems.join("; ") : null;
}

function wrongMessage(got, sent, channels) {
    const extra = got.filter((m) => !/^warm-up /.test(m.data) && !sent.some((s) => s.data === m.data && s.channel === m.channel));
    return extra.length ? `unexpected messages: ${extra.slice(0, 3).map((m) => JSON.stringify(m)).join(", ")}` : null;
}

// HOLDLINE_BROWSER_ONLY=text runs only the cases whose name contains it
// (for working on one case).
const only = process.env.HOLDLINE_BROWSER_ONLY ?? "";
const skipped = (name) => only !== "" && !name.includes(only);

let caseNo = 0;
const channelPrefix = `rt${Date.now() % 1000000}`;

// One restart case: the page subscribes on A (`subscribe`), COUNT
// messages are published on B (alternating over `channels`), A is stopped
// after STOP_AFTER of them and started again DOWN_MS later while the
// publishing goes on, and then the page must hold exactly what was sent.
async function restartCase(name, channels, subscribe, evidence) {
    if (skipped(name)) return;
    const log = [];
    let context = null;
    let page = null;
    let restart = null;
    try {
        ({ context, page } = await openPage(log));
        await subscribe(page, channels);
        await warmUp(log, channels);
        const sent = [];
        for (let i = 1; i <= COUNT; i++) {
            const ch = channels[i % channels.length];
            const data = `${ch} #${i}`;
            sent.push({ channel: ch, data, id: await publish(ch, data) });
            if (i === STOP_AFTER) {
                restart = (async () => {
                    note(log, "node", "node A: SIGTERM");
                    await stopA();
                    note(log, "node", "node A: exited");
                    await sleep(DOWN_MS);
                    startA();
                    note(log, "node", "node A: started");
                    await readyA();
                    note(log, "node", "node A: ready");
                })();
            }
            await sleep(GAP_MS);
        }
        await restart;
        // A few more after A is back, so the page's catching up is tested
        // both ways: history read on reconnect and live delivery after it.
        for (let i = COUNT + 1; i <= COUNT + 5; i++) {
            const ch = channels[i % channels.length];
            const data = `${ch} #${i}`;
            sent.push({ channel: ch, data, id: await publish(ch, data) });
        }
        const done = () => sent.every((s) => messages(log).some((m) => m.channel === s.channel && m.data === s.data));
        await waitFor(done, CATCH_UP_MS);
        await sleep(300); // a duplicate could still be on its way
        const got = messages(log);
        const pageErrors = log.filter((e) => e.kind === "pageerror").map((e) => e.value);
        // The case's own evidence first: it often says why messages are
        // missing (the browser gave up on the stream).
        const problem = [
            await evidence(page, log),
            compare(got, sent, channels) ?? wrongMessage(got, sent, channels),
            pageErrors.length ? `page errors: ${pageErrors.join("; ")}` : null,
        ].filter(Boolean).join("; ");
        // What the page went through, so a pass shows the resumption was
        // really exercised.
        const steps = ["open", "reconnect", "error"].map((k) => `${events(log, k)} ${k}`).join(", ");
        if (problem) {
            fail(name, `${problem} (${steps})`);
            trace(log);
        }
        else ok(name, `${sent.length} messages on ${channels.join(",")}, each once and in order, ids as node B gave them (${steps})`);
    } catch (e) {
        fail(name, e.message.split("\n")[0]);
    } finally {
        await closePage(context, page);
        // A restart still under way when the case failed ends first, so
        // that only one node A is ever started.
        if (restart) await restart.catch(() => {});
        await ensureA();
    }
}

function channelsFor(n) {
    caseNo++;
    return Array.from({ length: n }, (_, i) => `${channelPrefix}-${caseNo}${"abcdefgh"[i]}`);
}

async function cases() {
    await restartCase(
        'holdline.js, transport "auto" (EventSource), 2 channels, started from a cursor, node A restarted',
        channelsFor(2),
        // Started from a cursor, the stream's URL carries one, and the
        // browser reconnects to that URL: the Last-Event-ID it sends must
        // win over the URL's older cursor, or messages come twice.
        async (page, chs) => startClient(page, { channels: chs, cursor: await cursorNow(chs.join(",")), ...BACKOFF }),
        async (page, log) => {
            const transport = await page.evaluate(() => window.client.transport);
            if (transport !== "sse") return `client.transport is ${JSON.stringify(transport)}, expected "sse"`;
            const opens = events(log, "open");
            return opens >= 2 ? null : `the stream opened ${opens} time(s): it was never resumed`;
        },
    );

    await restartCase(
        "raw EventSource (browser reconnects with Last-Event-ID), node A restarted",
        channelsFor(1),
        (page, chs) => startRawEventSource(page, `${baseA}/events/${chs[0]}`),
        async (page, log) => {
            if (events(log, "closed") > 0) return "the browser closed the EventSource (readyState CLOSED) instead of reconnecting";
            const opens = events(log, "open");
            if (opens < 2) return `the stream opened ${opens} time(s): it was never resumed`;
            const last = messages(log).at(-1);
            return last && last.lastEventId ? null : "the last message had no lastEventId (no id: line)";
        },
    );

    await restartCase(
        'holdline.js, transport "poll", node A restarted',
        channelsFor(1),
        (page, chs) => startClient(page, { channels: chs, transport: "poll", timeout: 5, ...BACKOFF }),
        async (page, log) => {
            const transport = await page.evaluate(() => window.client.transport);
            if (transport !== "poll") return `client.transport is ${JSON.stringify(transport)}, expected "poll"`;
            const urls = log.filter((e) => e.kind === "event" && e.value.kind === "request").map((e) => e.value.text);
            if (urls.some((u) => !u.includes("/poll/"))) return "a request went elsewhere than /poll/";
            return events(log, "error") > 0 ? null : "no poll failed while node A was down: it was not tested";
        },
    );

    // Chromium closes an EventSource for good after an answer that is not a
    // 200 event stream; the client must open a new one itself. The second
    // and third stream requests (the first reconnects after the SIGTERM)
    // are answered 503 here, before they reach the network.
    let refused = 0;
    await restartCase(
        "holdline.js, EventSource closed by the browser after 503 answers, node A restarted",
        channelsFor(1),
        async (page, chs) => {
            let n = 0;
            await page.route(`${baseA}/events/**`, (route) => {
                n++;
                if (n !== 2 && n !== 3) return route.continue();
                refused++;
                return route.fulfill({ status: 503, contentType: "application/json", body: '{"error":"overloaded","detail":"test"}' });
            });
            return startClient(page, { channels: chs, cursor: await cursorNow(chs[0]), ...BACKOFF });
        },
        async (page, log) => {
            const reopened = log.filter((e) => e.kind === "event" && e.value.kind === "error" && /refused/.test(e.value.text)).length;
            if (refused !== 2) return `${refused} stream requests were answered 503, expected 2`;
            if (reopened !== 2) return `the client reported ${reopened} refused streams, expected 2`;
            return events(log, "open") >= 2 ? null : "the stream was never open again";
        },
    );

    await fallbackCase();
    await persistCase();
    for (const transport of ["auto", "poll"]) await missedCase(transport);
}

// Auto mode where /events is answered 404 (an older node, a proxy that
// does not pass it): the client must move to long-polling, say so, and
// deliver as before.
async function fallbackCase() {
    const name = 'holdline.js, transport "auto" where /events answers 404: long-polls instead';
    if (skipped(name)) return;
    const [ch] = channelsFor(1);
    const log = [];
    let context = null;
    let page = null;
    try {
        ({ context, page } = await openPage(log));
        await page.route(`${baseA}/events/**`, (route) =>
            route.fulfill({ status: 404, contentType: "application/json", body: '{"error":"not_found","detail":"test"}' }));
        await startClient(page, { channels: [ch], timeout: 5, ...BACKOFF });
        await warmUp(log, [ch]);
        const sent = [];
        for (let i = 1; i <= 5; i++) sent.push({ channel: ch, data: `${ch} #${i}`, id: await publish(ch, `${ch} #${i}`) });
        await waitFor(() => messages(log).filter((m) => !/^warm-up /.test(m.data)).length >= 5, STEP_MS);
        await sleep(300);
        const used = await page.evaluate(() => window.client.transport);
        const moved = log.filter((e) => e.kind === "event" && e.value.kind === "transport");
        const problem = (used !== "poll" ? `client.transport is ${JSON.stringify(used)}, expected "poll"` : null) ??
            (moved.length !== 1 ? `${moved.length} "transport" events, expected 1` : null) ??
            compare(messages(log), sent, [ch]) ?? wrongMessage(messages(log), sent, [ch]);
        if (problem) fail(name, problem);
        else ok(name, `${moved[0].value.text}; 5 messages, each once and in order`);
    } catch (e) {
        fail(name, e.message.split("\n")[0]);
    } finally {
        await closePage(context, page);
    }
}

// persistCursor: messages 1-5 arrive, the page reloads, 6-10 are published
// while no client runs, and the new client (same channel, persistCursor)
// gets 6-10 and then 11-15 live, and nothing twice.
async function persistCase() {
    const name = 'holdline.js, persistCursor across a page reload (transport "auto")';
    if (skipped(name)) return;
    const [ch] = channelsFor(1);
    const log = [];
    let context = null;
    let page = null;
    try {
        ({ context, page } = await openPage(log));
        const opts = { channels: [ch], persistCursor: true, ...BACKOFF };
        await startClient(page, opts);
        await warmUp(log, [ch]);
        const sent = [];
        const send = async (from, to) => {
            for (let i = from; i <= to; i++) sent.push({ channel: ch, data: `${ch} #${i}`, id: await publish(ch, `${ch} #${i}`) });
        };
        const has = (n) => () => messages(log).filter((m) => !/^warm-up /.test(m.data)).length >= n;
        await send(1, 5);
        await waitFor(has(5), STEP_MS);
        // Stopped first, so that a late warm-up cannot move the cursor
        // between this look and the reload (stop() is also what a page
        // leaving does).
        const stored = await page.evaluate(() => {
            window.client.stop();
            return [window.client.storageKey, sessionStorage.getItem(window.client.storageKey), window.client.cursor];
        });
        await page.reload({ waitUntil: "load" });
        await send(6, 10);
        const resumed = await startClient(page, opts);
        await send(11, 15);
        await waitFor(has(15), STEP_MS);
        await sleep(300);
        const problem = (stored[1] !== stored[2] || !stored[1]
            ? `sessionStorage[${JSON.stringify(stored[0])}] is ${JSON.stringify(stored[1])}, the cursor ${JSON.stringify(stored[2])}`
            : null) ??
            (resumed !== stored[2] ? `after the reload the client started from ${JSON.stringify(resumed)}, not the stored cursor` : null) ??
            compare(messages(log), sent, [ch]) ?? wrongMessage(messages(log), sent, [ch]);
        if (problem) fail(name, problem);
        else ok(name, `15 messages, 5 before the reload and 10 after it, each once and in order (key ${stored[0]})`);
    } catch (e) {
        fail(name, e.message.split("\n")[0]);
    } finally {
        await closePage(context, page);
    }
}

// A cursor from another Redis data set (its epoch changed): the server
// must say "missed" once, then hand over the history it holds; onMissed is
// called once and the messages follow.
async function missedCase(transport) {
    const name = `holdline.js, transport "${transport}": a cursor from another data set calls onMissed once`;
    if (skipped(name)) return;
    const [ch] = channelsFor(1);
    const log = [];
    let context = null;
    let page = null;
    try {
        ({ context, page } = await openPage(log));
        const sent = [];
        for (let i = 1; i <= 3; i++) sent.push({ channel: ch, data: `${ch} #${i}`, id: await publish(ch, `${ch} #${i}`) });
        const real = await cursorNow(ch);
        const epoch = real.split(":")[0];
        // The same length, one digit different: a valid epoch, not this one.
        const other = epoch.slice(0, -1) + (epoch.at(-1) === "0" ? "1" : "0");
        await startClient(page, { channels: [ch], transport, timeout: 5, cursor: `${other}:1-0`, ...BACKOFF });
        await waitFor(() => messages(log).length >= 3, STEP_MS);
        sent.push({ channel: ch, data: `${ch} #4`, id: await publish(ch, `${ch} #4`) });
        await waitFor(() => messages(log).length >= 4, STEP_MS);
        await sleep(300);
        const missed = log.filter((e) => e.kind === "missed");
        const used = await page.evaluate(() => window.client.transport);
        const problem = (used !== (transport === "auto" ? "sse" : "poll") ? `client.transport is ${used}` : null) ??
            (missed.length !== 1 ? `onMissed was called ${missed.length} times` : null) ??
            (typeof missed[0].value?.cursor !== "string" || !missed[0].value.cursor.startsWith(`${epoch}:`)
                ? `onMissed got ${JSON.stringify(missed[0].value)}, not the cursor to go on from`
                : null) ??
            compare(messages(log), sent, [ch]) ?? wrongMessage(messages(log), sent, [ch]) ??
            (log.findIndex((e) => e.kind === "missed") > log.findIndex((e) => e.kind === "message")
                ? "onMissed came after the first message"
                : null);
        if (problem) fail(name, problem);
        else ok(name, `onMissed once with cursor ${missed[0].value.cursor.split(":")[0]}:..., then the 3 held and 1 new message`);
    } catch (e) {
        fail(name, e.message.split("\n")[0]);
    } finally {
        await closePage(context, page);
    }
}

const totalTimer = setTimeout(() => {
    console.log(`[  FAILED  ] browser test: not finished after ${TOTAL_MS / 1000} s`);
    failed++;
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(1);
}, TOTAL_MS);

try {
    startA();
    await readyA();
    browser = await chromium.launch(CHROMIUM);
    await cases();
} catch (e) {
    fail("browser test stopped", e.message.split("\n")[0]);
}
clearTimeout(totalTimer);
await withTimeout(browser ? browser.close() : Promise.resolve(), STEP_MS, "closing Chromium").catch((e) =>
    console.log(`browser test: ${e.message}`),
);
await stopA();
if (nodeProblems.length) fail("node A stopped cleanly after every SIGTERM", nodeProblems.join("; "));
else ok("node A stopped cleanly after every SIGTERM", `${starts} starts, no sanitizer or crash report`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
