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

  // Live updates of one resource (a job, a batch): its server-sent events at `stream`, each
  // handed to `render` as JSON; when the stream fails (a proxy drops it, the network blinks),
  // `url` is polled every 2 seconds instead — the work goes on on the server either way.
  // `status` shows what is happening (an element's text); `ended(value)` says when to stop.
  function live({ stream, url, render, ended, status }) {
    const POLL_MS = 2000;
    let source = null;
    let timer = null;
    let last = null;
    const show = (value) => {
      last = value;
      render(value);
      if (ended(value)) stop();
    };
    function stop() {
      if (source) source.close();
      source = null;
      clearInterval(timer);
      timer = null;
    }
    async function poll() {
      try {
        show(await api(url));
      } catch (e) {
        status.textContent = `Cannot reach the server (${e.message}); retrying…`;
      }
    }
    function fallBack() {
      if (source) source.close();
      source = null;
      if (timer || (last && ended(last))) return;
      status.textContent = "Live updates interrupted — checking every 2 seconds.";
      poll();
      timer = setInterval(poll, POLL_MS);
    }
    // (Re)starts following, unless it already is or the resource has ended.
    function start() {
      if (source || timer || (last && ended(last))) return;
      if (!("EventSource" in window)) return fallBack();
      source = new EventSource(stream);
      source.onopen = () => (status.textContent = "Live.");
      source.onmessage = (e) => show(JSON.parse(e.data));
      source.onerror = () => {
        if (!last || !ended(last)) fallBack();
      };
    }
    return { start, stop, show, poll };
  }

  return { api, recent, remember, forget, announce, duration, jobName, live, FINAL };
})();
