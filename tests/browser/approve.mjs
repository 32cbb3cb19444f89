#!/usr/bin/env node
// Decides one approval request the way a reviewer would: through the web page, in Debian's
// headless Chromium.
//
//   node approve.mjs <base-url> <token> <approval-id> <approve|deny> [reason]
//
// Prints one JSON line {"state": "...", "error": "...", "command": "..."} and exits 0 once the
// API answered the click: "state" is the card's state then ("pending" when more approvals are
// needed), "error" the page's visible error (e.g. a 403 on self-approval) or null. Exits 2 only
// when the harness itself failed (bad usage, no browser, card never shown, no answer in time).
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT_MS = Number(process.env.APPROVE_TIMEOUT_MS || 20000);

class HarnessError extends Error {}
function fail(msg) {
  throw new HarnessError(msg);
}
function die(msg) {
  console.error(`approve.mjs: ${msg}`);
  process.exit(2);
}

const [base, token, id, action, reason] = process.argv.slice(2);
if (!base || !token || !id || !["approve", "deny"].includes(action)) {
  die("usage: node approve.mjs <base-url> <token> <approval-id> <approve|deny> [reason]");
}
if (action === "deny" && !reason) die("deny needs a reason");

let browser;
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Tests run as root, where Chromium refuses to start with its sandbox.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
} catch (e) {
  die(`cannot launch ${CHROMIUM}: ${e.message}`);
}

try {
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  // The token travels in the fragment, which never reaches the server or its logs.
  await page.goto(`${base.replace(/\/+$/, "")}/#token=${encodeURIComponent(token)}`);

  const card = page.locator(`[data-approval-id="${id.replace(/["\\]/g, "\\$&")}"]`);
  try {
    await card.waitFor({ state: "visible" });
  } catch {
    const err = await page.locator("#error.shown .msg").textContent({ timeout: 1000 }).catch(() => "");
    fail(`request ${id} never appeared on the page${err ? ` (page error: ${err.trim()})` : ""}`);
  }
  const command = (await card.locator("pre.command").textContent()) ?? "";
  if (!command.trim()) fail(`request ${id} shows no command`);

  // The page sets data-outcome ("ok" or "error") when the API has answered this click.
  await card.evaluate((c) => delete c.dataset.outcome);
  if (action === "approve") {
    if (reason) await card.locator(".approve-reason").fill(reason);
    await card.locator("button.approve").click();
  } else {
    await card.locator(".deny-reason").fill(reason);
    await card.locator("button.deny").click();
  }
  await page
    .waitForFunction(
      (id) => {
        const err = document.querySelector("#error.shown .msg");
        if (err && err.textContent.trim()) return true;
        const c = document.querySelector(`[data-approval-id="${CSS.escape(id)}"]`);
        return Boolean(c && c.dataset.outcome);
      },
      id,
      { timeout: TIMEOUT_MS },
    )
    .catch(() => fail(`no outcome within ${TIMEOUT_MS} ms after clicking ${action}`));

  const state = (await card.locator(".state").textContent().catch(() => null))?.trim() ?? null;
  const errorShown = await page.locator("#error.shown").count();
  const error = errorShown ? (await page.locator("#error .msg").textContent()).trim() : null;
  console.log(JSON.stringify({ state, error, command }));
} catch (e) {
  console.error(`approve.mjs: ${e.message}`);
  exitCode = 2;
} finally {
  await browser.close();
}
process.exit(exitCode);
