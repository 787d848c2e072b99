// The live progress page of a batch (several documents uploaded together): one list of its
// jobs from the batch's server-sent events, polling when they fail (`offload.live`).
"use strict";

(() => {
  const id = location.pathname.split("/").filter(Boolean).pop();
  const el = (name) => document.getElementById(name);
  let batch = null;
  let announced = null;

  function render(next) {
    batch = next;
    const c = batch.counts;
    const ended = c.succeeded + c.failed + c.cancelled;
    const total = batch.jobs.length;
    document.title = `Batch — ${ended} of ${total} done — offload`;
    el("title").textContent = `Batch of ${batch.size} document${batch.size === 1 ? "" : "s"}`;
    el("size").textContent = String(batch.size);
    el("counts").textContent =
      `${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled, ` +
      `${c.running} running, ${c.queued} queued`;
    const percent = total ? Math.round((100 * ended) / total) : 100;
    el("fill").style.width = `${percent}%`;
    el("fill").className = `fill ${batch.ended ? (c.failed ? "failed" : "succeeded") : "running"}`;
    el("bar").setAttribute("aria-valuenow", String(percent));
    el("cancel").hidden = batch.ended;
    renderJobs(batch.jobs);
    tickElapsed();
    for (const job of batch.jobs) offload.remember(job);
    const summary = `${ended} of ${total} documents done`;
    if (summary !== announced) {
      offload.announce(summary);
      announced = summary;
    }
    if (batch.ended) el("live").textContent = "Finished.";
  }

  // One row per job, in upload order: its name (to its own page), status, progress, download.
  function renderJobs(jobs) {
    const list = el("jobs");
    list.replaceChildren();
    for (const job of jobs) {
      const li = document.createElement("li");
      li.dataset.job = job.id;
      const link = document.createElement("a");
      link.href = `/jobs/${job.id}`;
      link.textContent = offload.jobName(job);
      const badge = document.createElement("span");
      badge.className = `badge ${job.status}`;
      badge.textContent = job.status;
      li.append(link, badge);
      if (job.status === "running" || job.status === "queued") {
        const stage = document.createElement("span");
        stage.className = "hint";
        stage.textContent = `${job.progress.percent}% ${job.progress.message || ""}`.trim();
        li.append(stage);
      }
      if (job.status === "succeeded" && job.result) {
        const download = document.createElement("a");
        download.href = job.result.url;
        download.textContent = `Download ${job.result.filename}`;
        li.append(download);
      }
      if (job.error && job.status === "failed") {
        const why = document.createElement("span");
        why.className = "error";
        why.textContent = job.error.message;
        li.append(why);
      }
      list.append(li);
    }
  }

  function tickElapsed() {
    if (!batch) return;
    const start = Date.parse(batch.created_at);
    const end = batch.ended_at ? Date.parse(batch.ended_at) : Date.now();
    el("elapsed").textContent = offload.duration(end - start);
  }

  const updates = offload.live({
    stream: `/api/v1/batches/${id}/events`,
    url: `/api/v1/batches/${id}`,
    render,
    ended: (b) => b.ended,
    status: el("live"),
  });

  el("cancel").addEventListener("click", async () => {
    try {
      const done = await offload.api("/api/v1/jobs/cancel", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ filter: { batch_id: id } }),
      });
      offload.announce(`${done.affected} documents cancelled`);
      await updates.poll();
    } catch (e) {
      el("error").hidden = false;
      el("error").textContent = e.message;
    }
  });

  offload
    .api(`/api/v1/batches/${id}`)
    .then((first) => {
      updates.show(first);
      updates.start();
    })
    .catch((e) => {
      el("title").textContent = e.status === 404 ? "No such batch" : "Batch";
      el("live").textContent = e.message;
    });
  setInterval(tickElapsed, 1000);
})();
