// The console in a real browser: Debian's Chromium driven by
// playwright-core, axe-core injected into every page. Run by
// tests/api/console.rs, which starts the nodes and passes:
//   GATEHOUSE_URL            the primary
//   GATEHOUSE_ADMIN_TOKEN    its admin token
//   GATEHOUSE_THROTTLED_URL  a primary with auth_failure_limit = 3
//   GATEHOUSE_REPLICA_URL    a replica of the first
//   GATEHOUSE_SCREENSHOTS    where screenshots go
//   CHROMIUM                 the browser (default /usr/bin/chromium)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import axe from "axe-core";

const BASE = process.env.GATEHOUSE_URL;
const TOKEN = process.env.GATEHOUSE_ADMIN_TOKEN;
const THROTTLED = process.env.GATEHOUSE_THROTTLED_URL;
const REPLICA = process.env.GATEHOUSE_REPLICA_URL;
const SHOTS = process.env.GATEHOUSE_SCREENSHOTS;
const CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'";
const DAV = "dav.example.com";

let browser;
/** Every CSP violation any page reported, and every console page without the header. */
const violations = [];
const missingHeaders = [];

before(async () => {
  assert.ok(BASE && TOKEN, "GATEHOUSE_URL and GATEHOUSE_ADMIN_TOKEN are required");
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh browser context whose pages report CSP violations and missing headers. */
async function newContext(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, ...options });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  context.on("page", (page) => watch(page));
  return context;
}

function watch(page) {
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|CSP violation/i.test(text)) violations.push(`${page.url()}: ${text}`);
  });
  page.on("response", async (response) => {
    const url = new URL(response.url());
    if (response.request().resourceType() !== "document" || !url.pathname.startsWith("/ui")) return;
    const headers = await response.allHeaders();
    const csp = headers["content-security-policy"] || "";
    if (!csp.startsWith(CSP) || headers["x-content-type-options"] !== "nosniff" ||
        headers["referrer-policy"] !== "no-referrer") {
      missingHeaders.push(`${response.status()} ${url.pathname}: ${JSON.stringify(headers)}`);
    }
  });
}

/** Runs `action` and waits for the navigation it causes; the final response. */
async function navigate(page, action) {
  const [response] = await Promise.all([page.waitForNavigation(), action()]);
  return response;
}

/** axe-core on the page: no serious or critical violation. */
async function accessible(page, name) {
  await page.evaluate(axe.source);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `axe on ${name} (${page.url()})`,
  );
}

async function screenshot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.jpg`), type: "jpeg", quality: 60 });
}

/** A page checked by axe (and photographed when `shot` names it). */
async function check(page, name, shot) {
  await accessible(page, name);
  if (shot) await screenshot(page, shot);
}

async function signIn(page, base = BASE, token = TOKEN) {
  await page.goto(`${base}/ui/`);
  await page.fill("#token", token);
  return navigate(page, () => page.click("button[type=submit]"));
}

/** `/api/verify` as a trusted proxy asks it. */
async function verify(credential, method = "GET", uri = "/") {
  const response = await fetch(`${BASE}/api/verify`, {
    headers: {
      Authorization: `Bearer ${credential}`,
      "X-Forwarded-Host": DAV,
      "X-Forwarded-Uri": uri,
      "X-Forwarded-Method": method,
      "X-Forwarded-Proto": "https",
    },
  });
  return response.status;
}

test("the whole flow: sign in, application, rule, API key, revocation, rotation, sign out", async () => {
  const context = await newContext({ permissions: ["clipboard-read", "clipboard-write"] });
  // A session name planted before sign-in (fixation) must not become signed in.
  await context.addCookies([
    { name: "gatehouse_console", value: "planted-by-someone", domain: new URL(BASE).hostname, path: "/ui" },
  ]);
  const page = await context.newPage();

  await page.goto(`${BASE}/ui/`);
  assert.match(page.url(), /\/ui\/sign-in$/);
  assert.equal(await page.title(), "Sign in · gatehouse console");
  await check(page, "sign-in", "sign-in");

  const signedIn = await signIn(page);
  assert.equal(signedIn.status(), 200);
  assert.match(page.url(), /\/ui\/applications$/);
  const [cookie] = (await context.cookies(`${BASE}/ui/`)).filter((c) => c.name === "gatehouse_console");
  assert.ok(cookie, "a session cookie");
  assert.notEqual(cookie.value, "planted-by-someone", "a fresh session name");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/ui");
  assert.equal(cookie.secure, false, "plain HTTP here; Secure over HTTPS (tests/api/console.rs)");
  assert.ok(!(await page.content()).includes(TOKEN), "the token is never in a page");
  assert.ok(!page.url().includes(TOKEN));
  await check(page, "applications (empty)");

  // An application, its secret shown once.
  await navigate(page, () => page.click("text=New application"));
  assert.equal(await page.locator("h1").textContent(), "New application");
  await check(page, "new application");
  await page.fill("#client_id", "canister");
  await page.fill("#name", "Canister <b>media</b> & \"friends\"");
  await page.fill("#groups", "media, backup");
  const created = await navigate(page, () => page.click("text=Create application"));
  assert.equal(created.status(), 201);
  assert.equal(created.headers()["cache-control"], "no-store");
  const secret = await page.inputValue("#client-secret");
  assert.match(secret, /^gcs_/);
  assert.equal(await page.locator("main b").count(), 0, "the name is escaped, not markup");
  assert.ok((await page.locator("main").textContent()).includes("Canister <b>media</b>"));
  await check(page, "application created", "secret-once");
  // The copy button (the console's only script) puts the secret on the clipboard.
  await page.click("button[data-copy=client-secret]");
  await page.waitForFunction(() => document.querySelector("button[data-copy=client-secret]").textContent !== "Copy");
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  const issued = await fetch(`${BASE}/oauth/token`, {
    method: "POST",
    headers: {
      Authorization: `Basic ${Buffer.from(`canister:${secret}`).toString("base64")}`,
      "Content-Type": "application/x-www-form-urlencoded",
    },
    body: "grant_type=client_credentials",
  });
  assert.equal(issued.status, 200, "the secret shown works");
  await navigate(page, () => page.click("text=Go to the application"));
  assert.ok(!(await page.content()).includes(secret), "shown once only");

  // A rule for the WebDAV host, read-only methods.
  await page.goto(`${BASE}/ui/rules`);
  await check(page, "rules (empty)");
  await navigate(page, () => page.click("text=New rule"));
  await page.fill("#id", "dav");
  await page.fill("#host", DAV);
  await page.fill("#methods", "GET, HEAD, OPTIONS, PROPFIND");
  await page.fill("#allowed_groups", "media");
  await check(page, "new rule");
  await navigate(page, () => page.click("text=Create rule"));
  assert.match(page.url(), /\/ui\/rules$/);
  assert.match(await page.locator("[role=status]").textContent(), /Rule dav for dav\.example\.com created/);
  await page.goto(`${BASE}/ui/rules/new`);
  await page.fill("#id", "dav-private");
  await page.fill("#host", DAV);
  await page.fill("#path_prefix", "/private");
  await page.fill("#allowed_groups", "admins");
  await navigate(page, () => page.click("text=Create rule"));
  const order = await page.locator("tbody tr td:nth-child(8)").allTextContents();
  assert.deepEqual(order, ["dav-private", "dav"], "most specific first");
  await check(page, "rules", "rules");

  // An API key: minted, shown once with snippets, working, then revoked.
  await page.goto(`${BASE}/ui/applications/canister`);
  await check(page, "application", "application");
  await page.fill("#key-name", "nightly <sync>");
  await page.fill("#expires_in", "30d");
  await page.fill("#methods", "GET, PROPFIND");
  const minted = await navigate(page, () => page.click("text=Mint API key"));
  assert.equal(minted.status(), 201);
  assert.equal(minted.headers()["cache-control"], "no-store");
  const key = await page.inputValue("#api-key");
  assert.match(key, /^eyJ/);
  assert.ok((await page.locator("#snippet-curl").textContent()).includes(key));
  assert.ok((await page.locator("#snippet-rclone").textContent()).includes(`https://${DAV}/`));
  await check(page, "API key minted", "api-key-once");
  assert.equal(await verify(key), 200, "the key verifies");
  assert.equal(await verify(key, "PUT"), 403, "outside the key's methods");

  await navigate(page, () => page.click("text=Back to the application"));
  assert.ok(!(await page.content()).includes(key), "shown once only");
  assert.equal(await page.locator("tbody tr").count(), 1);
  await navigate(page, () => page.click("a[aria-label^='Revoke key']"));
  assert.match(await page.locator("h1").textContent(), /^Revoke key nightly <sync>\?$/);
  await check(page, "revoke confirmation");
  await navigate(page, () => page.click("button:has-text('Revoke key')"));
  assert.match(await page.locator("[role=status]").textContent(), /revoked/);
  assert.equal(await page.locator("tbody .badge.no").textContent(), "revoked");
  assert.equal(await verify(key), 401, "revoked in the UI, refused at verify");

  // Editing, deactivating and activating again.
  await page.fill("#name", "Canister");
  await navigate(page, () => page.click("text=Save changes"));
  assert.equal(await page.locator("[role=status]").textContent(), "Changes saved.");
  assert.equal(await page.locator("h1").textContent(), "Application Canister");
  await navigate(page, () => page.click("button:has-text('Deactivate')"));
  assert.equal(await page.locator("dl .badge").textContent(), "inactive");
  await navigate(page, () => page.click("button:has-text('Activate')"));
  assert.equal(await page.locator("dl .badge").textContent(), "active");
  // Rotating the secret with a grace period: the old one still works.
  await page.fill("#grace_period", "1h");
  await navigate(page, () => page.click("text=Rotate secret"));
  const rotated = await page.inputValue("#client-secret");
  assert.notEqual(rotated, secret);
  assert.match(await page.locator("main").textContent(), /previous one works until/);

  // The list: search, groups, state.
  await page.goto(`${BASE}/ui/applications?q=backup`);
  assert.deepEqual(await page.locator("tbody td:first-child").allTextContents(), ["canister"]);
  await page.goto(`${BASE}/ui/applications?q=nothing-like-it`);
  assert.match(await page.locator("main").textContent(), /No application matches/);
  await page.goto(`${BASE}/ui/applications`);
  assert.match(await page.locator("tbody td:nth-child(5)").textContent(), /UTC$/, "the last token issued");
  await check(page, "applications", "applications");

  // Test access: the decision /api/verify would make, and why.
  await navigate(page, () => page.click("nav >> text=Test access"));
  await check(page, "test access");
  const testAccess = async (fields) => {
    for (const [id, value] of Object.entries(fields)) {
      if (id.startsWith("with-")) await page.check(`#${id}`);
      else if (id === "client_id") await page.selectOption("#client_id", value);
      else await page.fill(`#${id}`, value);
    }
    await navigate(page, () => page.click("button:has-text('Test access')"));
    return {
      decision: (await page.locator("#decision").textContent()).trim(),
      reason: await page.locator("#reason").textContent(),
      rule: (await page.locator("#rule").textContent()).trim(),
    };
  };
  const granted = await testAccess({ "with-application": "", client_id: "canister", method: "GET", host: DAV, path: "/photos/a.jpg" });
  assert.equal(granted.decision, "Granted — 200");
  assert.match(granted.rule, /^dav /);
  assert.match(await page.locator("main").textContent(), /remote-user: canister/i);
  await check(page, "test access, granted", "test-access");
  const refused = await testAccess({ method: "DELETE", path: "/photos/a.jpg" });
  assert.equal(refused.decision, "Denied — 403");
  assert.match(refused.reason, /method/i);
  assert.match(refused.rule, /^dav /);
  await check(page, "test access, denied");
  const other = await testAccess({ method: "GET", path: "/private/x" });
  assert.equal(other.decision, "Denied — 403");
  assert.match(other.reason, /group/i);
  assert.match(other.rule, /^dav-private /);
  const revokedKey = await testAccess({ "with-token": "", token: key, path: "/" });
  assert.equal(revokedKey.decision, "Denied — 401");
  assert.match(revokedKey.reason, /revoked/i);
  assert.ok(!(await page.content()).includes(key), "the pasted key is not written back");
  const anonymous = await testAccess({ "with-none": "", host: "nowhere.example.com" });
  assert.equal(anonymous.decision, "Denied — 401");
  assert.equal(anonymous.rule, "none");
  assert.equal(await verify(key), 401, "Test access changed nothing");

  // Rotating the signing key.
  await page.goto(`${BASE}/ui/keys`);
  const keysBefore = await page.locator("tbody tr").count();
  await navigate(page, () => page.click("text=Rotate signing key"));
  assert.match(await page.locator("[role=status]").textContent(), /is published; it signs from/);
  assert.equal(await page.locator("tbody tr").count(), keysBefore + 1);
  await check(page, "signing keys", "signing-keys");

  // The audit log: the console's actions, as ui:<fingerprint>.
  await page.goto(`${BASE}/ui/audit?actor=ui%3A`);
  const actions = await page.locator("tbody td:nth-child(3)").allTextContents();
  for (const action of [
    "POST /admin/v1/applications",
    "POST /admin/v1/resources",
    "POST /admin/v1/applications/{client_id}/api-keys",
    "DELETE /admin/v1/api-keys/{id}",
    "POST /admin/v1/keys/rotate",
    "POST /ui/sign-in",
  ]) {
    assert.ok(actions.includes(action), `${action} in ${actions}`);
  }
  const actors = new Set(await page.locator("tbody td:nth-child(2)").allTextContents());
  assert.equal(actors.size, 1);
  assert.match([...actors][0], /^ui:[A-Za-z0-9_-]{8}$/);
  await check(page, "audit", "audit");
  await page.goto(`${BASE}/ui/audit?action=keys%2Frotate`);
  assert.deepEqual(await page.locator("tbody td:nth-child(3)").allTextContents(), ["POST /admin/v1/keys/rotate"]);

  await page.goto(`${BASE}/ui/fleet`);
  await check(page, "fleet", "fleet");

  // A rule's edit and delete pages; an application deleted.
  await page.goto(`${BASE}/ui/rules/dav-private`);
  await check(page, "rule");
  await navigate(page, () => page.click("text=Delete rule"));
  await check(page, "delete rule confirmation");
  await navigate(page, () => page.click("button:has-text('Delete rule')"));
  assert.deepEqual(await page.locator("tbody tr td:nth-child(8)").allTextContents(), ["dav"]);
  await page.goto(`${BASE}/ui/applications/new`);
  await page.fill("#client_id", "throwaway");
  await navigate(page, () => page.click("text=Create application"));
  await page.goto(`${BASE}/ui/applications/throwaway/delete`);
  await check(page, "delete application confirmation");
  await navigate(page, () => page.click("button:has-text('Delete application')"));
  assert.equal(await page.locator("[role=status]").textContent(), "Application throwaway deleted.");

  // On a phone.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(`${BASE}/ui/applications/canister`);
  await check(page, "application on a phone", "phone");
  await page.setViewportSize({ width: 1100, height: 720 });

  // Signing out ends the session: every page is closed, the old cookie too.
  const pages = [
    "/ui/applications", "/ui/applications/new", "/ui/applications/canister", "/ui/rules",
    "/ui/rules/new", "/ui/rules/dav", "/ui/test-access", "/ui/audit", "/ui/keys", "/ui/fleet",
  ];
  const session = (await context.cookies(`${BASE}/ui/`)).find((c) => c.name === "gatehouse_console").value;
  await navigate(page, () => page.click("text=Sign out"));
  assert.match(page.url(), /\/ui\/sign-in$/);
  assert.equal((await context.cookies(`${BASE}/ui/`)).filter((c) => c.name === "gatehouse_console").length, 0);
  for (const at of pages) {
    await page.goto(`${BASE}${at}`);
    assert.match(page.url(), /\/ui\/sign-in$/, `${at} after sign-out`);
  }
  for (const at of pages) {
    const replayed = await fetch(`${BASE}${at}`, {
      headers: { Cookie: `gatehouse_console=${session}` },
      redirect: "manual",
    });
    assert.equal(replayed.status, 303, `${at} with the old cookie`);
    assert.equal(replayed.headers.get("location"), "/ui/sign-in");
  }
  const form = await fetch(`${BASE}/ui/keys/rotate`, {
    method: "POST",
    headers: { Cookie: `gatehouse_console=${session}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: "csrf=anything",
  });
  assert.equal(form.status, 403, "a form with the old cookie");
  await context.close();
});

test("a wrong admin token is refused with a message, and repeated ones are throttled", async () => {
  assert.ok(THROTTLED, "GATEHOUSE_THROTTLED_URL");
  const context = await newContext();
  const page = await context.newPage();
  for (let i = 0; i < 3; i++) {
    const refused = await signIn(page, THROTTLED, "not-the-admin-token-but-long-enough");
    assert.equal(refused.status(), 401);
    assert.match(await page.locator("#sign-in-error").textContent(), /not this node's admin token/);
    assert.equal(await page.inputValue("#token"), "", "the token is not put back in the page");
  }
  await check(page, "sign-in with an error");
  // Locked out: even the right token is refused until the window ends.
  const locked = await signIn(page, THROTTLED);
  assert.equal(locked.status(), 429);
  assert.ok(Number(locked.headers()["retry-after"]) > 0);
  assert.match(await page.locator("[role=alert]").textContent(), /too many failed sign-ins/);
  await check(page, "throttled sign-in");
  assert.equal((await context.cookies(`${THROTTLED}/ui/`)).length, 0);
  await context.close();
});

test("forms from another origin, or without the CSRF token, are refused", async () => {
  const context = await newContext();
  const page = await context.newPage();
  await signIn(page);
  const keysBefore = await keyCount(page);

  // A page on another origin posts to the console, with the session cookie.
  const evil = http.createServer((req, res) => {
    const target = req.url === "/sign-in" ? `${BASE}/ui/sign-in` : `${BASE}/ui/keys/rotate`;
    const field = req.url === "/sign-in" ? `<input name="token" value="${TOKEN}">` : `<input name="csrf" value="guessed">`;
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(`<!doctype html><title>x</title><form method="post" action="${target}">${field}</form>` +
      `<script>document.forms[0].submit()</script>`);
  });
  await new Promise((resolve) => evil.listen(0, "127.0.0.1", resolve));
  const evilUrl = `http://127.0.0.1:${evil.address().port}`;
  try {
    for (const at of ["/rotate", "/sign-in"]) {
      const attacker = await context.newPage();
      const [answer] = await Promise.all([
        attacker.waitForNavigation({ url: (u) => u.pathname.startsWith("/ui/") }),
        attacker.goto(`${evilUrl}${at}`),
      ]);
      assert.equal(answer.status(), 403, at);
      assert.match(await attacker.locator("[role=alert]").textContent(), /another site/);
      await attacker.close();
    }
  } finally {
    evil.close();
  }
  assert.equal(await keyCount(page), keysBefore, "nothing rotated");

  // The session cookie, but no (or a wrong) CSRF token.
  for (const form of [{}, { csrf: "" }, { csrf: "x".repeat(43) }]) {
    const answer = await context.request.post(`${BASE}/ui/keys/rotate`, { form, maxRedirects: 0 });
    assert.equal(answer.status(), 403, JSON.stringify(form));
    assert.match(await answer.text(), /security token is missing or out of date/);
  }
  const signOut = await context.request.post(`${BASE}/ui/sign-out`, { form: {}, maxRedirects: 0 });
  assert.equal(signOut.status(), 403, "sign-out needs the token too");
  await page.goto(`${BASE}/ui/keys`);
  assert.match(page.url(), /\/ui\/keys$/, "still signed in");
  assert.equal(await keyCount(page), keysBefore, "nothing rotated");
  await context.close();
});

async function keyCount(page) {
  await page.goto(`${BASE}/ui/keys`);
  return page.locator("tbody tr").count();
}

test("a replica's console page links to its primary", async () => {
  assert.ok(REPLICA, "GATEHOUSE_REPLICA_URL");
  const context = await newContext();
  const page = await context.newPage();
  const answer = await page.goto(`${REPLICA}/ui/`);
  assert.equal(answer.status(), 200);
  const link = page.locator("main a");
  assert.equal(await link.getAttribute("href"), `${BASE}/ui/`);
  await check(page, "replica");
  await navigate(page, () => link.click());
  assert.match(page.url(), /\/ui\/sign-in$/);
  await context.close();
});

test("no page logged a CSP violation, and every page carried the headers", () => {
  assert.deepEqual(violations, []);
  assert.deepEqual(missingHeaders, []);
});
