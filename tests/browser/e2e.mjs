// End-to-end tests of the pages in Debian's Chromium (run by tests/api/browser.rs):
//   node e2e.mjs BASE_URL BOARD_URL SCREENSHOT_DIR DECK_PATH
// Each step prints `ok - name` or `not ok - name: why` (with a screenshot); the exit code is
// the number of failed steps.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const [base, board, shots, deckPath, docPath] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const LONG = 120_000;
let failures = 0;

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function api(path, body) {
  const resp = await fetch(base + path, body ? {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  } : {});
  return resp.json();
}

async function step(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    failures += 1;
    console.log(`not ok - ${name}: ${e.stack || e}`);
    await page.screenshot({ path: `${shots}/failed-${name.replace(/\W+/g, "-")}.png`, fullPage: true }).catch(() => {});
  }
}

// Records every value the progress bar shows, across navigations.
await context.addInitScript(() => {
  window.__barValues = [];
  document.addEventListener("DOMContentLoaded", () => {
    const bar = document.getElementById("bar");
    if (!bar) return;
    new MutationObserver(() => window.__barValues.push(Number(bar.getAttribute("aria-valuenow"))))
      .observe(bar, { attributes: true, attributeFilter: ["aria-valuenow"] });
  });
});

await step("upload a deck on / and follow it to succeeded, then download the PDF", async () => {
  await page.goto(base + "/");
  await page.locator("#formats", { hasText: "pptx" }).waitFor();
  check((await page.textContent("#formats")).includes("pptx"), "formats listed from /api/v1/formats");
  check(await page.getAttribute("#announce", "aria-live") === "polite", "an aria-live region");
  await page.screenshot({ path: `${shots}/index.png`, fullPage: true });
  await page.setInputFiles("#file", deckPath);
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/, { timeout: LONG });
  await page.locator("#status", { hasText: "succeeded" }).waitFor({ timeout: LONG });
  const values = await page.evaluate(() => window.__barValues);
  check(values.some((v) => v > 0 && v < 100), `the bar moved through intermediate values: ${values}`);
  check(values.at(-1) === 100, `the bar ends full: ${values}`);
  check(await page.textContent("#announce") === "Job succeeded", "the status change was announced");
  await page.screenshot({ path: `${shots}/job-succeeded.png`, fullPage: true });
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const pdf = readFileSync(await download.path());
  check(pdf.subarray(0, 5).toString() === "%PDF-", "the download is a PDF");
  check(download.suggestedFilename().endsWith(".pdf"), `a .pdf name: ${download.suggestedFilename()}`);
  // The job is in the browser's recent list.
  await page.goto(base + "/");
  await page.locator("#recent a").first().waitFor();
  check((await page.textContent("#recent")).includes("succeeded"), "the recent list shows the job");
});

await step("merge two documents from the upload page and watch their parts", async () => {
  await page.goto(base + "/");
  await page.check("#merge");
  await page.setInputFiles("#file", [docPath, deckPath]);
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/, { timeout: LONG });
  await page.locator("#parts li").nth(1).waitFor({ timeout: LONG });
  const parts = await page.locator("#parts li a").allTextContents();
  check(parts.join(",") === "report3.docx,deck50.pptx", `the parts in the chosen order: ${parts}`);
  await page.locator("#status", { hasText: "succeeded" }).waitFor({ timeout: LONG });
  const steps = await page.locator("#steps li").allTextContents();
  check(steps.length === 2 && steps[0].startsWith("merge") && steps[1].startsWith("publish"), `steps: ${steps}`);
  check(await page.isVisible("#download"), "the merged PDF can be downloaded");
  check((await page.textContent("#title")) === "report3.docx + deck50.pptx", "named by its parts");
  await page.screenshot({ path: `${shots}/job-merged.png`, fullPage: true });
});

await step("two documents without merge become a batch, followed as one list", async () => {
  await page.goto(base + "/");
  await page.setInputFiles("#file", [docPath, deckPath]);
  await page.waitForURL(/\/batches\/[0-9a-f-]{36}$/, { timeout: LONG });
  await page.locator("#jobs li").nth(1).waitFor({ timeout: LONG });
  const names = await page.locator("#jobs li > a:first-child").allTextContents();
  check(names.join(",") === "report3.docx,deck50.pptx", `one row per document, in upload order: ${names}`);
  await page.locator("#live", { hasText: "Finished." }).waitFor({ timeout: LONG });
  const badges = await page.locator("#jobs .badge").allTextContents();
  check(badges.join(",") === "succeeded,succeeded", `both succeeded: ${badges}`);
  check(await page.locator("#jobs li a", { hasText: "Download" }).count() === 2, "each result can be downloaded");
  check((await page.textContent("#counts")).startsWith("2 succeeded"), "the counts say so");
  check(await page.isHidden("#cancel"), "nothing is left to cancel");
  await page.screenshot({ path: `${shots}/batch-ended.png`, fullPage: true });
});

await step("the upload page's options reach the export", async () => {
  await page.goto(base + "/");
  await page.click("#options summary");
  await page.fill("#opt-pages", "2-3");
  await page.selectOption("#opt-pdfa", "2b");
  await page.fill("#opt-watermark", "DRAFT");
  await page.screenshot({ path: `${shots}/index-options.png`, fullPage: true });
  await page.setInputFiles("#file", docPath);
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/, { timeout: LONG });
  await page.locator("#status", { hasText: "succeeded" }).waitFor({ timeout: LONG });
  const shown = await page.textContent("#options");
  check(shown.includes("page_range 2-3") && shown.includes("pdf_a 2b") && shown.includes("watermark DRAFT"), `options shown: ${shown}`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const pdf = readFileSync(await download.path()).toString("latin1");
  const pages = (pdf.match(/\/Type\s*\/Page[^s]/g) || []).length;
  check(pages === 2, `pages 2-3 only: ${pages} pages`);
  check(pdf.includes("pdfaid:part"), "a PDF/A file");
  // A bad option is refused on the page, in words.
  await page.goto(base + "/");
  await page.click("#options summary");
  await page.fill("#opt-pages", "3-1");
  await page.setInputFiles("#file", docPath);
  await page.locator("#uploads .error").waitFor({ timeout: LONG });
  const refusal = await page.textContent("#uploads .error");
  check(refusal.includes("options.page_range"), `the refusal names the option: ${refusal}`);
});

await step("page images are picked on the upload page and shown on the job page", async () => {
  await page.goto(base + "/");
  await page.selectOption("#format", "png");
  await page.setInputFiles("#file", docPath);
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/, { timeout: LONG });
  await page.locator("#status", { hasText: "succeeded" }).waitFor({ timeout: LONG });
  const job = await api(new URL(page.url()).pathname.replace("/jobs/", "/api/v1/jobs/"));
  const pages = job.result.files.length;
  const images = page.locator("#preview img");
  await images.first().waitFor({ timeout: LONG });
  check(pages >= 2 && (await images.count()) === pages, `one image per page: ${await images.count()} of ${pages}`);
  // Lazily loaded: scroll each into view, then every one has decoded pixels.
  for (let i = 0; i < pages; i++) await images.nth(i).scrollIntoViewIfNeeded();
  await page.waitForFunction(() => [...document.querySelectorAll("#preview img")].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: LONG });
  check((await page.textContent("#download")).includes(".zip"), "the download is the zip of the pages");
  await page.screenshot({ path: `${shots}/job-page-images.png`, fullPage: true });
  // Any other export from the page shows its thumbnail.
  await page.goto(base + "/");
  await page.selectOption("#format", "pdf");
  await page.setInputFiles("#file", docPath);
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/, { timeout: LONG });
  await page.locator("#status", { hasText: "succeeded" }).waitFor({ timeout: LONG });
  await page.waitForFunction(() => { const i = document.querySelector("#preview img"); return i && i.complete && i.naturalWidth > 0; }, null, { timeout: LONG });
  check((await page.locator("#preview img").count()) === 1, "one thumbnail");
  await page.screenshot({ path: `${shots}/job-page-thumbnail.png`, fullPage: true });
});

await step("cancel a slow sleep job from its page", async () => {
  const job = await api("/api/v1/jobs", { kind: "sleep", args: { seconds: 60 } });
  await page.goto(`${base}/jobs/${job.id}`);
  await page.locator("#status", { hasText: "running" }).waitFor({ timeout: LONG });
  check(await page.isVisible("#cancel"), "Cancel is offered while running");
  check(!(await page.isVisible("#retry")), "Retry is not offered while running");
  await page.keyboard.press("Tab"); // the page is keyboard-usable: focus moves into it
  await page.focus("#cancel");
  await page.keyboard.press("Enter");
  await page.locator("#status", { hasText: "cancelled" }).waitFor({ timeout: LONG });
  check(await page.isVisible("#retry"), "Retry is offered once cancelled");
  check(!(await page.isVisible("#cancel")), "Cancel is gone once cancelled");
  await page.screenshot({ path: `${shots}/job-cancelled.png`, fullPage: true });
  const server = await api(`/api/v1/jobs/${job.id}`);
  check(server.status === "cancelled", `the server has it cancelled: ${server.status}`);
});

await step("when the event stream dies the page recovers by polling", async () => {
  const job = await api("/api/v1/jobs", { kind: "sleep", args: { seconds: 3 } });
  let streams = 0;
  // The first stream delivers one event and then the connection ends; every reconnect fails.
  await page.route("**/api/v1/jobs/*/events", async (route) => {
    streams += 1;
    if (streams > 1) return route.abort();
    const now = await api(`/api/v1/jobs/${job.id}`);
    return route.fulfill({
      status: 200,
      headers: { "content-type": "text/event-stream" },
      body: `data: ${JSON.stringify(now)}\n\n`,
    });
  });
  await page.goto(`${base}/jobs/${job.id}`);
  await page.locator("#live", { hasText: "checking every 2 seconds" }).waitFor({ timeout: LONG });
  await page.screenshot({ path: `${shots}/job-polling.png`, fullPage: true });
  await page.locator("#status", { hasText: "succeeded" }).waitFor({ timeout: LONG });
  check(streams >= 1, "the page used the event stream first");
  await page.unroute("**/api/v1/jobs/*/events");
});

await step("/docs lists every operation and Try it out uploads a document", async () => {
  const spec = await api("/openapi.json");
  const operations = Object.values(spec.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
  await page.goto(base + "/docs");
  await page.locator(".opblock").nth(operations - 1).waitFor({ timeout: LONG });
  check((await page.locator(".opblock").count()) === operations, `${operations} operations shown`);
  await page.screenshot({ path: `${shots}/docs.png`, fullPage: true });
  const upload = page.locator("#operations-Exports-create_export");
  await upload.locator(".opblock-summary").click();
  await upload.locator("button.try-out__btn").click();
  // `file` is an array (several files merge): Swagger UI shows an "Add item" button first.
  if ((await upload.locator('input[type="file"]').count()) === 0) {
    await upload.locator("button", { hasText: /add (string )?item/i }).first().click();
  }
  await upload.locator('input[type="file"]').first().setInputFiles(deckPath);
  await upload.locator("button.execute").click();
  const status = upload.locator(".live-responses-table tbody .response-col_status").first();
  await status.waitFor({ timeout: LONG });
  const answer = await upload.locator(".live-responses-table .response-col_description pre").first().textContent();
  check((await status.textContent()).trim() === "202", `Try it out answered ${(await status.textContent()).trim()}: ${answer}`);
  await upload.screenshot({ path: `${shots}/docs-try-it-out.png` });
});

await step("the board shows the queues, workers and jobs just run", async () => {
  await page.goto(board + "/");
  await page.getByText("Overview", { exact: false }).first().waitFor({ timeout: LONG });
  await page.screenshot({ path: `${shots}/board-overview.png`, fullPage: true });
  await page.goto(board + "/workers");
  for (const kind of ["export", "noop", "sleep"]) {
    await page.getByText(`${kind}@`, { exact: false }).first().waitFor({ timeout: LONG });
  }
  await page.screenshot({ path: `${shots}/board-workers.png`, fullPage: true });
  await page.goto(board + "/queues/export/Done");
  await page.getByText("Done", { exact: true }).first().waitFor({ timeout: LONG });
  await page.locator("text=/export@/").first().waitFor({ timeout: LONG });
  await page.screenshot({ path: `${shots}/board-export-done.png`, fullPage: true });
  await page.goto(board + "/queues/sleep/Done");
  await page.locator("text=/sleep@/").first().waitFor({ timeout: LONG });
  await page.screenshot({ path: `${shots}/board-sleep-done.png`, fullPage: true });
});

await step("the operator's queue list shows every kind's queue", async () => {
  await page.goto(board + "/offload/queues");
  for (const kind of ["export", "merge", "noop", "sleep", "webhook"]) {
    await page.locator(`tr.queue[data-queue="${kind}"]`).waitFor({ timeout: LONG });
  }
  const rows = await page.locator("tr.queue").count();
  check(rows === 5, `one row per queue, got ${rows}`);
  // The first step's export finished, so the export queue counts at least one done job.
  const done = await page.locator('tr.queue[data-queue="export"] td[data-stat="DONE_JOBS"]').textContent();
  check(Number(done) >= 1, `the export queue shows its done jobs, got ${done}`);
  await page.screenshot({ path: `${shots}/board-queues.png`, fullPage: true });
});

await step("the pages are readable on a phone", async () => {
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const job = await api("/api/v1/jobs", { kind: "sleep", args: { seconds: 0 } });
  for (const [name, path] of [["index", "/"], ["job", `/jobs/${job.id}`]]) {
    await phone.goto(base + path);
    await phone.waitForLoadState("networkidle");
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `${name}: no horizontal scrolling (${overflow}px too wide)`);
    await phone.screenshot({ path: `${shots}/phone-${name}.png`, fullPage: true });
  }
  await phone.close();
});

await browser.close();
process.exit(failures);
