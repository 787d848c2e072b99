// The upload page: drag-and-drop or pick files, upload with byte progress, list recent jobs.
"use strict";

(() => {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  const uploads = document.getElementById("uploads");
  const recentList = document.getElementById("recent");

  // The body limit of one upload request (all its files together), from the server.
  let maxUploadBytes = Infinity;
  // Most files one batch takes (the server's limit).
  const MAX_BATCH_FILES = 100;

  offload.api("/api/v1/formats").then(
    (f) => {
      maxUploadBytes = f.max_upload_bytes;
      document.getElementById("formats").textContent = f.inputs.map((i) => i.extension).join(", ");
      input.accept = f.inputs.map((i) => "." + i.extension).join(",");
    },
    () => (document.getElementById("formats").textContent = "unknown (the server did not answer)"),
  );

  function renderRecent() {
    recentList.replaceChildren();
    const jobs = offload.recent();
    if (jobs.length === 0) {
      const li = document.createElement("li");
      li.textContent = "No jobs yet.";
      recentList.append(li);
      return;
    }
    for (const job of jobs) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = `/jobs/${job.id}`;
      link.textContent = job.name;
      const badge = document.createElement("span");
      badge.className = `badge ${job.status}`;
      badge.textContent = job.status;
      li.append(link, badge);
      recentList.append(li);
    }
  }

  // The export options the form's "Options" set, as the API takes them (unset ones left out,
  // so the server's defaults apply).
  // Office formats take none of the PDF options (the service refuses them rather than ignore
  // them), so they are not sent for those.
  const OFFICE = new Set(["docx", "odt", "rtf", "txt", "html", "xlsx", "ods", "csv", "pptx", "odp"]);
  // A PDF export from this page asks for a page-1 thumbnail, shown on the job page (image
  // exports show their pages; an office format would need a second conversion for one).
  const THUMBNAIL_PX = 320;

  function chosenOptions(format) {
    const value = (id) => document.getElementById(id).value.trim();
    const checked = (id) => document.getElementById(id).checked;
    const options = {};
    if (OFFICE.has(format)) return options;
    if (value("opt-pages")) options.page_range = value("opt-pages");
    // An image is not a PDF/A document: the choice applies to PDF exports.
    if (value("opt-pdfa") && format === "pdf") options.pdf_a = value("opt-pdfa");
    if (value("opt-watermark")) options.watermark = { text: value("opt-watermark") };
    if (checked("opt-landscape")) options.landscape = true;
    if (checked("opt-notes")) options.export_notes = true;
    if (checked("opt-notes-pages")) options.export_notes_pages = true;
    return options;
  }

  // XMLHttpRequest, not fetch: only it reports upload progress (bytes sent). `files` go up in
  // one request: one file is one export; several become one merged PDF (`merge`) or a batch
  // of exports followed as one list.
  function upload(files, merge) {
    const label = files.map((f) => f.name).join(" + ");
    const size = files.reduce((n, f) => n + f.size, 0);
    const kind = merge ? "merged" : "batch";
    const file = { name: files.length > 1 ? `${label} (${kind})` : label };
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `Uploading ${file.name}`);
    const state = document.createElement("span");
    state.textContent = "0%";
    li.append(name, bar, state);
    uploads.append(li);

    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/exports");
      xhr.upload.onprogress = (e) => {
        bar.value = e.loaded;
        state.textContent = `${Math.round((100 * e.loaded) / (e.total || 1))}%`;
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {}
        if (xhr.status === 202 && body) {
          // Several files without merge: a batch of jobs.
          for (const job of body.batch ? body.batch.jobs : [body]) offload.remember(job);
          state.replaceChildren();
          const link = document.createElement("a");
          link.href = body.batch ? `/batches/${body.batch.id}` : `/jobs/${body.id}`;
          link.textContent = "uploaded — follow it";
          state.append(link);
          offload.announce(`${file.name} uploaded`);
          resolve(body);
        } else {
          state.textContent = `refused: ${(body && body.message) || xhr.status}`;
          state.className = "error";
          offload.announce(`${file.name} was refused: ${(body && body.message) || xhr.status}`);
          resolve(null);
        }
      };
      xhr.onerror = () => {
        state.textContent = "network error";
        state.className = "error";
        resolve(null);
      };
      const form = new FormData();
      for (const f of files) form.append("file", f, f.name);
      if (merge) form.append("merge", "true");
      // Someone is watching this page: the upload goes before other tenants' backfills.
      form.append("priority", "interactive");
      // A merge joins PDFs: it is always one.
      const format = merge ? "pdf" : document.getElementById("format").value;
      if (format !== "pdf") form.append("format", format);
      if (!merge && format === "pdf") form.append("thumbnail", String(THUMBNAIL_PX));
      const options = chosenOptions(format);
      if (Object.keys(options).length > 0) form.append("options", JSON.stringify(options));
      const password = document.getElementById("opt-password").value;
      if (password) form.append("password", password);
      xhr.send(form);
    });
  }

  // One request for all the files — one job, a merge, or a batch — then straight to its live
  // progress page. Files that cannot go up together as a batch (over the request's size limit,
  // or more than a batch takes) go up one request each, listed here.
  async function uploadAll(list) {
    const files = [...list];
    if (files.length === 0) return;
    const merge = document.getElementById("merge").checked && files.length > 1;
    const total = files.reduce((n, f) => n + f.size, 0);
    if (!merge && files.length > 1 && (total > maxUploadBytes || files.length > MAX_BATCH_FILES)) {
      await Promise.all(files.map((f) => upload([f], false)));
      renderRecent();
      return;
    }
    const answer = await upload(files, merge);
    renderRecent();
    if (answer) location.assign(answer.batch ? `/batches/${answer.batch.id}` : `/jobs/${answer.id}`);
  }

  input.addEventListener("change", () => uploadAll(input.files));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    uploadAll(e.dataTransfer.files);
  });
  document.getElementById("clear").addEventListener("click", () => {
    offload.forget();
    renderRecent();
  });
  renderRecent();
})();
