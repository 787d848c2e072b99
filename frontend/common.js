// Shared by the pages: API calls, the browser-kept list of recent jobs, announcements.
"use strict";

const offload = (() => {
  const RECENT_KEY = "offload.recentJobs";
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);

  async function api(path, options = {}) {
    const resp = await fetch(path, options);
    const body = resp.status === 204 ? null : await resp.json().catch(() => null);
    if (!resp.ok) {
      const message = body && body.message ? body.message : `the server answered ${resp.status}`;
      const error = new Error(message);
      error.status = resp.status;
      error.code = body && body.code;
      throw error;
    }
    return body;
  }

  function recent() {
    try {
      return JSON.parse(localStorage.getItem(RECENT_KEY)) || [];
    } catch {
      return [];
    }
  }

  // Remembers a job (newest first, at most 50), keeping what we know of it for the list.
  // What to call a job: its document, its parts for a merge, else its kind.
  function jobName(job) {
    if (job.input) return job.input.filename;
    if (job.parts && job.parts.length) return job.parts.map((p) => p.filename).join(" + ");
    return `${job.kind} job`;
  }

  function remember(job) {
    const entry = { id: job.id, name: jobName(job), status: job.status };
    const list = [entry, ...recent().filter((j) => j.id !== job.id)].slice(0, 50);
    localStorage.setItem(RECENT_KEY, JSON.stringify(list));
  }

  function forget() {
    localStorage.removeItem(RECENT_KEY);
  }

  // Tells screen readers (aria-live region) what just changed.
  function announce(text) {
    const region = document.getElementById("announce");
    if (region) region.textContent = text;
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
  }

  return { api, recent, remember, forget, announce, duration, jobName, FINAL };
})();
