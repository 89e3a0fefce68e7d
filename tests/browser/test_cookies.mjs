// test_cookies.mjs -- a real browser (Debian's Chromium, driven by
// playwright-core) polls a holdline node with cookie jars of growing size.
//
// Browsers send every cookie of the origin with every request, so a site
// whose other pages set analytics, consent and session cookies makes the
// long-poll requests carry them too. Each case is a browser (a context of
// its own) that has the jar for the node's origin, opens the node's demo
// page and runs a same-origin fetch('/poll/x?timeout=1') in it: jars up to
// 12 KB must get the usual 200 JSON poll answer, a jar that grows between
// two polls of one page too, and a 40 KB jar a 431 JSON error. A fetch
// that fails ("Failed to fetch") means the node closed the connection
// without an answer, and is reported with Chromium's network error.
//
// Usage: node test_cookies.mjs http://127.0.0.1:PORT/
// Prints one line per case and then "N passed, N failed"; exits 1 if any
// case failed. Normally started by run.sh, which starts Redis and the node.

import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) {
    console.error("usage: node test_cookies.mjs BASE_URL");
    process.exit(2);
}
const origin = new URL(base).origin;

// Every step has its own bound, and the whole run has one more, so that a
// hung browser or node cannot hold up the suite.
const TOTAL_MS = 60000;
const STEP_MS = 10000;
// A poll with timeout=1 is answered within a second; five leave room for
// a slow (sanitizer) build without letting a hung node cost much.
const FETCH_MS = 5000;

let passed = 0;
let failed = 0;
let browser = null;
let context = null;

function summaryAndExit(code) {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(code);
}

const totalTimer = setTimeout(() => {
    console.log(`[  FAILED  ] browser test: not finished after ${TOTAL_MS / 1000} s`);
    failed++;
    // Closing the browser may itself hang; exit regardless after a moment.
    setTimeout(() => summaryAndExit(1), 3000).unref();
    (context ? context.close() : Promise.resolve()).catch(() => {}).finally(() => summaryAndExit(1));
}, TOTAL_MS);

function withTimeout(promise, ms, what) {
    let timer;
    const bound = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms);
    });
    return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

// Cookie values: a seeded generator, so every run sends the same bytes and
// a failure can be reproduced. Only characters Chromium stores unquoted.
let seed = 12345;
function rand() {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
}
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
function token(n) {
    let s = "";
    for (let i = 0; i < n; i++) s += B64[Math.floor(rand() * B64.length)];
    return s;
}
function digits(n) {
    let s = "";
    for (let i = 0; i < n; i++) s += Math.floor(rand() * 10);
    return s;
}

// The cookies of an ordinary site, smallest first: a session id and CSRF
// token, analytics ids, consent strings, then preferences and state blobs.
function siteCookies() {
    return [
        ["sessionid", token(32)],
        ["csrftoken", token(64)],
        ["_ga", `GA1.1.${digits(10)}.${digits(10)}`],
        ["_gid", `GA1.1.${digits(9)}.${digits(10)}`],
        ["_ga_7QX2LBM9KD", `GS1.1.${digits(10)}.4.1.${digits(10)}.0.0.0`],
        ["_fbp", `fb.1.${digits(13)}.${digits(10)}`],
        ["lang", "en-US"],
        ["ajs_anonymous_id", `${token(8)}-${token(4)}-${token(4)}-${token(4)}-${token(12)}`],
        ["_hjSessionUser_3185772", token(120)],
        ["euconsent-v2", token(260)],
        ["OptanonConsent", `isGpcEnabled=0&datestamp=${token(40)}&version=202409.1.0&groups=${token(140)}`],
        ["AMCV_5E34123F5245B2CD0A490D45%40AdobeOrg", token(230)],
        ["mbox", `session#${token(32)}#${digits(10)}|PC#${token(40)}#${digits(10)}`],
        ["_uetsid", token(32)],
        ["_uetvid", token(32)],
        ["prefs", token(1200)],
        ["ab_tests", token(900)],
        ["recently_viewed", token(2100)],
        ["cart", token(2800)],
        ["saved_search", token(1700)],
        ["ui_state", token(3000)],
        ["feature_flags", token(2400)],
    ];
}

// The Cookie header Chromium builds from a jar: "a=1; b=2".
function headerSize(cookies) {
    return cookies.reduce((n, [k, v]) => n + k.length + 1 + v.length, 0) + 2 * (cookies.length - 1);
}

// A jar whose Cookie header is `target` bytes: the site's cookies in order
// while they fit, then one filler cookie of the exact remaining size.
function jarOf(target) {
    const jar = [];
    for (const c of siteCookies()) {
        if (headerSize([...jar, c]) + 40 > target) break;
        jar.push(c);
    }
    const rest = target - headerSize(jar) - 2 - "consent_log=".length;
    if (rest > 0) jar.push(["consent_log", token(rest)]);
    return jar;
}

// A jar far over any sane header limit: ten cookies near Chromium's 4096
// byte cap per cookie, besides the small ones.
function hugeJar() {
    const jar = siteCookies().slice(0, 8);
    for (let i = 0; i < 10; i++) jar.push([`blob${i}`, token(4000)]);
    return jar;
}

// Runs one same-origin fetch in the page and brings back what the page
// saw. AbortSignal bounds it inside the page too.
async function pagePoll(page) {
    return page.evaluate(async (ms) => {
        try {
            const r = await fetch("/poll/x?timeout=1", { cache: "no-store", signal: AbortSignal.timeout(ms) });
            return { fetched: true, status: r.status, type: r.headers.get("content-type"), body: await r.text() };
        } catch (e) {
            return { fetched: false, error: `${e.name}: ${e.message}` };
        }
    }, FETCH_MS);
}

function parseJson(text) {
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

function short(text) {
    const s = String(text).replace(/\s+/g, " ");
    return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

async function runCase(page, name, jar, expect) {
    await withTimeout(context.clearCookies(), STEP_MS, "clearCookies");
    await withTimeout(
        context.addCookies(jar.map(([n, v]) => ({ name: n, value: v, url: origin }))),
        STEP_MS,
        "addCookies",
    );

    // What Chromium really sent, from its network events: the Cookie
    // header's size, all header lines ("Name: value\r\n") together, and
    // the network error of a request that got no answer.
    let sent = null;
    let netError = null;
    const onRequest = (req) => {
        if (req.url().includes("/poll/x?")) sent = req;
    };
    const onFailed = (req) => {
        if (req.url().includes("/poll/x?")) netError = req.failure()?.errorText ?? "unknown";
    };
    page.on("request", onRequest);
    page.on("requestfailed", onFailed);
    let got;
    try {
        got = await withTimeout(pagePoll(page), FETCH_MS + 2000, "fetch");
    } finally {
        page.off("request", onRequest);
        page.off("requestfailed", onFailed);
    }
    // Chromium reports the headers it really sent (with Cookie) only for
    // requests that got an answer; otherwise the jar's own size is shown.
    let sizes = `${jar.length} cookies`;
    const headers = sent
        ? await withTimeout(sent.headersArray(), 3000, "request headers").catch(() => null)
        : null;
    const cookie = (headers ?? []).filter((h) => h.name.toLowerCase() === "cookie");
    const sentCookie = cookie.map((h) => h.value).join("; ").length;
    if (cookie.length > 0) {
        const lines = headers.reduce((n, h) => n + h.name.length + 2 + h.value.length + 2, 0);
        sizes += `, sent Cookie header ${sentCookie} B, all header lines ${lines} B`;
    } else {
        sizes += `, Cookie header ${headerSize(jar)} B (sent headers not reported)`;
    }

    let problem = null;
    let detail = "";
    // Chromium drops a cookie it will not keep (over 4096 bytes, over 180
    // per domain) without an error; then this case would not test its size.
    if (cookie.length > 0 && sentCookie !== headerSize(jar)) {
        problem = `Chromium sent a ${sentCookie} B Cookie header for a ${headerSize(jar)} B jar: ` +
            "it dropped cookies, so this case does not test what it says";
    } else if (!got.fetched) {
        // Chromium's error tells a connection closed before any answer
        // from an answer cut short or malformed.
        const closed = /ERR_EMPTY_RESPONSE|ERR_CONNECTION_(RESET|CLOSED|ABORTED)/.test(netError ?? "");
        const late = got.error.startsWith("TimeoutError");
        problem = `fetch failed (${got.error}; Chromium: ${netError ?? "no network error"}): ` +
            (closed ? "the connection was closed without an answer"
                : late ? `no answer within ${FETCH_MS / 1000} s` : "no usable answer");
    } else {
        const body = parseJson(got.body);
        const json = /^application\/json\b/.test(got.type ?? "");
        if (got.status !== expect) {
            problem = `status ${got.status}, expected ${expect}`;
        } else if (!json) {
            problem = `Content-Type ${got.type ?? "missing"}, expected application/json`;
        }
        if (!problem && body === undefined) problem = "the body is not JSON";
        if (!problem && expect === 200 && !Array.isArray(body.messages)) {
            problem = 'the body has no "messages" array';
        }
        if (!problem && expect === 431) {
            if (typeof body.error !== "string" || typeof body.detail !== "string") {
                problem = 'the body is not {"error": ..., "detail": ...}';
            } else if (body.error !== "headers_too_large") {
                problem = `error "${body.error}", expected "headers_too_large"`;
            }
        }
        detail = problem
            ? `${got.status} ${got.type ?? "(no Content-Type)"}, body: ${short(got.body)}`
            : expect === 200
              ? `200 ${got.type}, ${body.messages.length} messages`
              : `431 ${got.type}, error "${body.error}"`;
    }

    if (problem) {
        failed++;
        console.log(`[  FAILED  ] ${name} (${sizes}): ${problem}${detail ? `; got ${detail}` : ""}`);
    } else {
        passed++;
        console.log(`[       OK ] ${name} (${sizes}): ${detail}`);
    }
}

// Chromium's flags: headless, and without the background networking that
// keeps trying to reach Google's services, which this machine's closed
// network refuses.
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

// Each case is a browser that has had its jar all along: a context of its
// own (its own connections), the jar set, then the demo page opened and
// polled from. The page's own load carries the jar too, except for the
// 40 KB jar, which no page of the node would get past: that one is set
// after the page has loaded.
async function freshPage(jar, before) {
    if (context) await withTimeout(context.close(), STEP_MS, "closing a context");
    context = await withTimeout(browser.newContext(), STEP_MS, "newContext");
    const page = await withTimeout(context.newPage(), STEP_MS, "newPage");
    page.setDefaultTimeout(STEP_MS);
    if (before) await addJar(jar);
    const resp = await page.goto(base, { timeout: STEP_MS, waitUntil: "load" });
    if (!resp || resp.status() !== 200) {
        throw new Error(`the demo page ${base} answered ${resp ? resp.status() : "nothing"}`);
    }
    if (!before) await addJar(jar);
    return page;
}

async function addJar(jar) {
    await withTimeout(
        context.addCookies(jar.map(([n, v]) => ({ name: n, value: v, url: origin }))),
        STEP_MS,
        "addCookies",
    );
}

async function main() {
    // playwright-core gives the browser a new empty profile below TMPDIR,
    // which run.sh points into this run's own directory.
    browser = await chromium.launch(CHROMIUM);
    for (const kb of [0.5, 2, 4, 8, 12]) {
        const jar = jarOf(Math.round(kb * 1024));
        const page = await freshPage(jar, true);
        await runCase(page, `cookies ${kb} KB -> 200 poll answer`, jar, 200);
    }
    // A jar that grows while the page polls on one kept-alive connection
    // (the site sets cookies): 2 KB, then 2.8 KB.
    const small = jarOf(2048);
    const page = await freshPage(small, true);
    await runCase(page, "cookies 2 KB, first poll of a page", small, 200);
    await runCase(page, "the jar grown to 2.8 KB, next poll of the same page", jarOf(2867), 200);
    const huge = hugeJar();
    await runCase(await freshPage(huge, false), "cookies 40 KB -> 431 JSON error", huge, 431);
}

try {
    await main();
} catch (e) {
    failed++;
    console.log(`[  FAILED  ] browser test stopped: ${e.message.split("\n")[0]}`);
}
clearTimeout(totalTimer);
await withTimeout(browser ? browser.close() : Promise.resolve(), STEP_MS, "closing Chromium").catch((e) =>
    console.log(`browser test: ${e.message}`),
);
summaryAndExit(failed === 0 ? 0 : 1);
