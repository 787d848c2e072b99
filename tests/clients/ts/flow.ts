// The TypeScript flow of the generated-client tests: the client is openapi-fetch typed by
// openapi-typescript's output for the live spec (generated/schema.d.ts), used as a user would.
// Type-checked with `tsc`, run with `tsx flow.ts BASE_URL DECK_PATH`.
import createClient from "openapi-fetch";
import { readFileSync } from "node:fs";
import type { components, paths } from "./generated/schema.js";

type Job = components["schemas"]["Job"];
type ExportOptions = components["schemas"]["ExportOptions"];

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`failed: ${what}`);
}

const [base, deckPath] = process.argv.slice(2);
const client = createClient<paths>({ baseUrl: base });
const finalStatuses = new Set<Job["status"]>(["succeeded", "failed", "cancelled"]);

// Upload: the multipart form is built by hand (openapi-fetch sends JSON by default).
// `options` is typed by the spec and sent as a JSON part.
const deck = readFileSync(deckPath);
const options: ExportOptions = { page_range: "1-2", pdf_a: "2b" };
const created = await client.POST("/api/v1/exports", {
  body: { file: ["deck5.pptx"], options },
  bodySerializer() {
    const form = new FormData();
    form.append("file", new Blob([deck]), "deck5.pptx");
    form.append("options", new Blob([JSON.stringify(options)], { type: "application/json" }));
    return form;
  },
});
check(created.response.status === 202 && created.data, `upload answered ${created.response.status}`);
// One file answers a job; several without merge would answer `{batch}`.
check(!("batch" in created.data), "one file makes one job, not a batch");
let job: Job = created.data;
check(job.kind === "export" && job.status === "queued", "a queued export");
check(job.options?.page_range === "1-2" && job.options?.pdf_a === "2b", `options echoed: ${JSON.stringify(job.options)}`);
check(
  job.steps.map((s) => s.name).join(",") === "inspect,convert,publish",
  `the steps are listed: ${JSON.stringify(job.steps)}`,
);

// Poll until the job is final.
const deadline = Date.now() + 120_000;
while (!finalStatuses.has(job.status)) {
  check(Date.now() < deadline, "the job finishes within two minutes");
  await new Promise((resolve) => setTimeout(resolve, 200));
  const polled = await client.GET("/api/v1/jobs/{id}", { params: { path: { id: job.id } } });
  check(polled.data, `get answered ${polled.response.status}`);
  job = polled.data;
}
check(job.status === "succeeded", `succeeded, not ${job.status}: ${JSON.stringify(job.error)}`);

// Download the PDF.
const pdf = await client.GET("/api/v1/jobs/{id}/result", {
  params: { path: { id: job.id } },
  parseAs: "arrayBuffer",
});
check(pdf.data && Buffer.from(pdf.data).subarray(0, 5).toString() === "%PDF-", "the result is a PDF");

// List, newest first.
const page = await client.GET("/api/v1/jobs", { params: { query: { limit: 10 } } });
check(page.data?.jobs.some((j) => j.id === job.id), "the job is listed");

// Cancel a sleep job.
const sleeping = await client.POST("/api/v1/jobs", { body: { kind: "sleep", args: { seconds: 30 } } });
check(sleeping.data, `sleep answered ${sleeping.response.status}`);
const cancelled = await client.POST("/api/v1/jobs/{id}/cancel", { params: { path: { id: sleeping.data.id } } });
check(cancelled.data?.status === "cancelled", "the sleep job is cancelled");

// A 404 is a typed error.
const missing = await client.GET("/api/v1/jobs/{id}", {
  params: { path: { id: "3f1c2a9e-0a4b-4c55-9d7e-2f1e6c1b9a10" } },
});
check(missing.response.status === 404 && missing.error?.code === "job_not_found", "a typed 404");

console.log("typescript client flow: ok");
