// test_demo.mjs -- the demo page in a real browser (Debian's Chromium,
// driven by playwright-core): it says which transport its client uses and
// prints a message published while it is open, once, with Server-Sent
// Events (the default in Chromium) and with ?transport=poll.
//
// Usage: node test_demo.mjs http://127.0.0.1:PORT/
// Prints one line per case and then "N passed, N failed"; exits 1 if any
// case failed. Normally started by run.sh, which starts Redis and the node.

import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) {
    console.error("usage: node test_demo.mjs BASE_URL");
    process.exit(2);
}
const origin = new URL(base).origin;

const TOTAL_MS = 40000;
const STEP_MS = 10000;

let passed = 0;
let failed = 0;
let browser = null;

function summaryAndExit(code) {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(code);
}

const totalTimer = setTimeout(() => {
    console.log(`[  FAILED  ] browser test: not finished after ${TOTAL_MS / 1000} s`);
    failed++;
    summaryAndExit(1);
}, TOTAL_MS);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

async function publish(channel, data) {
    const r = await fetch(`${origin}/publish/${channel}`, { method: "POST", body: data, signal: AbortSignal.timeout(5000) });
    if (r.status !== 201) throw new Error(`publish answered ${r.status}: ${await r.text()}`);
}

// The lines of the page's log, as the reader sees them.
const lines = (page) => page.$$eval("#log li", (ls) => ls.map((l) => l.textContent));

async function demoCase(query, wantLabel, wantStatus) {
    const channel = `demo-test-${Date.now() % 1000000}-${query ? "poll" : "auto"}`;
    const name = `demo page${query ? ` with ${query}` : ""}: says "${wantLabel}" and prints a published message once`;
    const context = await browser.newContext();
    try {
        const page = await context.newPage();
        page.setDefaultTimeout(STEP_MS);
        const errors = [];
        page.on("pageerror", (e) => errors.push(String(e)));
        await page.goto(`${base}?channel=${channel}${query ? `&${query}` : ""}`, { waitUntil: "load" });
        // Subscribed once the stream is open or the first poll is out; a
        // few publishes cover the time the server takes to fix the position.
        await page.waitForFunction(() => /Stream open|Sent request/.test(document.getElementById("log").textContent));
        const text = `hello from the test ${Date.now()}`;
        let got = [];
        for (let i = 0; i < 20; i++) {
            await publish(channel, `${text} #${i}`);
            await sleep(250);
            got = (await lines(page)).filter((l) => l.startsWith(`Server: ${text}`));
            if (got.length > 0) break;
        }
        await sleep(500);
        got = (await lines(page)).filter((l) => l.startsWith(`Server: ${text}`));
        const label = await page.textContent("#transport");
        const status = await page.textContent("#status");
        const seen = new Set(got);
        let problem = null;
        if (label !== wantLabel) problem = `the transport reads "${label}"`;
        else if (!wantStatus.test(status)) problem = `the status reads "${status}"`;
        else if (got.length === 0) problem = "no published message was printed";
        else if (seen.size !== got.length) problem = `a message was printed twice: ${got.join(" | ")}`;
        else if (errors.length) problem = `page errors: ${errors.join("; ")}`;
        if (problem) {
            failed++;
            console.log(`[  FAILED  ] ${name}: ${problem}`);
        } else {
            passed++;
            console.log(`[       OK ] ${name} ("${got[0]}"; status "${status}")`);
        }
    } finally {
        await context.close().catch(() => {});
    }
}

try {
    browser = await chromium.launch(CHROMIUM);
    await demoCase("", "Server-Sent Events (EventSource)", /streaming, cursor /);
    await demoCase("transport=poll", "long-poll", /polling/);
} catch (e) {
    failed++;
    console.log(`[  FAILED  ] browser test stopped: ${e.message.split("\n")[0]}`);
}
clearTimeout(totalTimer);
await Promise.race([browser ? browser.close() : Promise.resolve(), sleep(STEP_MS)]).catch(() => {});
summaryAndExit(failed === 0 ? 0 : 1);
