// The operator's list of queues: one row per queue the board's API knows, its pending,
// running, done and failed counts and its workers, linking to the board's page
// of that queue. It exists because apalis-board 1.0's prebuilt Queues page shows only the first
// queue; it reads the same JSON API, so both always agree.
const REFRESH_MS = 5000;

// The counts an operator scans for, in this order; the engine reports more (rates, durations),
// which stay on the board's own pages. A queue that never ran a job reports no statistics: 0.
const COLUMNS = [
  ["PENDING_JOBS", "pending"],
  ["RUNNING_JOBS", "running"],
  ["DONE_JOBS", "done"],
  ["FAILED_JOBS", "failed"],
  ["KILLED_JOBS", "killed"],
  ["JOBS_PAST_HOUR", "past hour"],
];

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function render(queues) {
  const table = document.getElementById("queues");
  const head = document.createElement("tr");
  for (const name of ["queue", ...COLUMNS.map(([, label]) => label), "workers"]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.append(th);
  }
  const rows = queues.map((queue) => {
    const row = document.createElement("tr");
    row.className = "queue";
    row.dataset.queue = queue.name;
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = `/queues/${encodeURIComponent(queue.name)}`;
    link.textContent = queue.name;
    name.append(link);
    const values = new Map((queue.stats || []).map((s) => [s.title, s.value]));
    row.append(name);
    for (const [title] of COLUMNS) {
      const td = cell(values.get(title) ?? "0", "num");
      td.dataset.stat = title;
      row.append(td);
    }
    row.append(cell(String((queue.workers || []).length), "num"));
    return row;
  });
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...rows);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const resp = await fetch("/api/v1/queues");
    if (!resp.ok) throw new Error(`the board answered HTTP ${resp.status}`);
    render(await resp.json());
    error.hidden = true;
  } catch (e) {
    error.textContent = `Could not load the queues: ${e.message}`;
    error.hidden = false;
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
