// The live progress page of one job: server-sent events, polling when they fail, actions.
"use strict";

(() => {
  const id = location.pathname.split("/").filter(Boolean).pop();
  const el = (name) => document.getElementById(name);
  let job = null;
  let lastStatus = null;

  function render(next) {
    job = next;
    offload.remember(job);
    const name = offload.jobName(job);
    document.title = `${name} — ${job.status} — offload`;
    el("title").textContent = name;
    const status = el("status");
    status.textContent = job.status;
    status.className = `badge ${job.status}`;
    el("stage").textContent = job.progress.message || "—";
    el("attempts").textContent = job.cache_hit
      ? "none: answered from the result cache"
      : `${job.attempts} of ${job.max_attempts}`;
    el("options").textContent = describeOptions(job.options);
    const percent = job.progress.percent;
    el("fill").style.width = `${percent}%`;
    el("fill").className = `fill ${job.status}`;
    el("bar").setAttribute("aria-valuenow", String(percent));
    const error = el("error");
    error.hidden = !job.error;
    error.textContent = job.error ? `${job.error.message} (${job.error.code})` : "";

    const download = el("download");
    download.hidden = job.status !== "succeeded" || !job.result;
    if (job.result) {
      download.href = job.result.url;
      download.textContent = `Download ${job.result.filename}`;
    }
    el("cancel").hidden = !(job.status === "queued" || job.status === "running");
    el("retry").hidden = !(job.status === "failed" || job.status === "cancelled");

    renderPreview(job.status === "succeeded" ? job.result : null);
    renderSteps(job.steps || []);
    renderParts(job.parts || []);
    tickElapsed();
    if (job.status !== lastStatus) {
      offload.announce(`Job ${job.status}${job.error ? ": " + job.error.message : ""}`);
      lastStatus = job.status;
    }
    if (offload.FINAL.has(job.status)) el("live").textContent = "Finished.";
  }

  // The result's images: every page of an image export (each links to its file), or the
  // thumbnail of any other. Lazily loaded: a 200-page export fetches what is scrolled to.
  let previewShown = null;
  function renderPreview(result) {
    const images = result ? (result.files.length > 0 ? result.files : result.thumbnail ? [result.thumbnail] : []) : [];
    const key = images.map((i) => i.url).join(" ");
    if (key === previewShown) return;
    previewShown = key;
    const gallery = el("preview");
    gallery.replaceChildren();
    el("preview-card").hidden = images.length === 0;
    for (const image of images) {
      const link = document.createElement("a");
      link.href = image.url;
      const img = document.createElement("img");
      img.loading = "lazy";
      img.src = image.url;
      img.width = image.width;
      img.height = image.height;
      img.alt = `Page ${image.page} of ${result.filename}`;
      const caption = document.createElement("span");
      caption.textContent = `Page ${image.page}`;
      link.append(img, caption);
      gallery.append(link);
    }
  }

  // `{"page_range": "1-3", "watermark": {"text": "DRAFT"}}` → "page_range 1-3, watermark DRAFT".
  function describeOptions(options) {
    if (!options || Object.keys(options).length === 0) return "none";
    return Object.entries(options)
      .map(([name, value]) => {
        if (value === true) return name;
        if (value && typeof value === "object") return `${name} ${value.text ?? JSON.stringify(value)}`;
        return `${name} ${value}`;
      })
      .join(", ");
  }

  function renderSteps(steps) {
    const list = el("steps");
    list.replaceChildren(
      ...steps.map((step) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.textContent = step.name;
        const badge = document.createElement("span");
        badge.className = `badge step-${step.status}`;
        badge.textContent = step.attempt ? `${step.status} (attempt ${step.attempt})` : step.status;
        li.append(name, badge);
        if (step.error) {
          const why = document.createElement("span");
          why.className = "error";
          why.textContent = step.error;
          li.append(why);
        }
        return li;
      }),
    );
  }

  function renderParts(parts) {
    el("parts-card").hidden = parts.length === 0;
    el("parts").replaceChildren(
      ...parts.map((part) => {
        const li = document.createElement("li");
        const link = document.createElement("a");
        link.href = `/jobs/${part.id}`;
        link.textContent = part.filename;
        const badge = document.createElement("span");
        badge.className = `badge ${part.status}`;
        badge.textContent = part.status;
        li.append(link, badge);
        return li;
      }),
    );
  }

  function tickElapsed() {
    if (!job) return;
    // A merge job's own attempt starts after its parts: count from its creation.
    const merged = job.parts && job.parts.length;
    const start = Date.parse((!merged && job.started_at) || job.created_at);
    const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
    el("elapsed").textContent = offload.duration(end - start);
  }

  const updates = offload.live({
    stream: `/api/v1/jobs/${id}/events`,
    url: `/api/v1/jobs/${id}`,
    render,
    ended: (j) => offload.FINAL.has(j.status),
    status: el("live"),
  });

  async function act(path, label) {
    try {
      updates.show(await offload.api(path, { method: "POST" }));
      offload.announce(label);
      updates.start();
    } catch (e) {
      el("error").hidden = false;
      el("error").textContent = e.message;
    }
  }

  el("cancel").addEventListener("click", () => act(`/api/v1/jobs/${id}/cancel`, "Cancel requested"));
  el("retry").addEventListener("click", () => act(`/api/v1/jobs/${id}/retry`, "Queued again"));

  offload
    .api(`/api/v1/jobs/${id}`)
    .then((first) => {
      updates.show(first);
      updates.start();
    })
    .catch((e) => {
      el("title").textContent = e.status === 404 ? "No such job" : "Job";
      el("live").textContent = e.message;
    });
  setInterval(tickElapsed, 1000);
})();
