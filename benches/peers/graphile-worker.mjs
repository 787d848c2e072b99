// graphile-worker peer for benches/queue.rs: `node graphile-worker.mjs drain|latency DATABASE_URL N`.
// Prints one JSON line: {"jobs_per_s": …} or {"p50_ms": …, "p99_ms": …}.
// concurrency 32 (its documented knob for throughput); it wakes on LISTEN/NOTIFY itself.
import { Logger, run, makeWorkerUtils } from 'graphile-worker'
import pg from 'pg'

const [mode, url, nText] = process.argv.slice(2)
const n = Number(nText)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pct = (sorted, p) => sorted[Math.round((sorted.length - 1) * p)]

const logger = new Logger(() => () => {})
const utils = await makeWorkerUtils({ connectionString: url, logger })
await utils.migrate()
const db = new pg.Client({ connectionString: url })
await db.connect()
// Finished jobs are deleted: the drain is over when none are left.
const left = async () =>
  Number((await db.query('SELECT count(*) FROM graphile_worker._private_jobs')).rows[0].count)
const latencies = []
// It deletes finished jobs, so the drain is timed here: from the first job's start to the
// last one's end.
let first, last
const taskList = {
  noop: async (_payload, helpers) => {
    first ??= performance.now()
    if (mode === 'latency') latencies.push(Date.now() - new Date(helpers.job.created_at).getTime())
    last = performance.now()
  },
}
const options = { connectionString: url, concurrency: 32, noHandleSignals: true, pollInterval: 1000, taskList, logger }

let runner
if (mode === 'drain') {
  // The queueing is timed too: batches of 1,000 through the library, as offload's figure.
  const queued0 = performance.now()
  for (let i = 0; i < n; i += 1000) {
    await utils.addJobs(Array.from({ length: Math.min(1000, n - i) }, () => ({ identifier: 'noop', payload: {} })))
  }
  const enqueueS = (performance.now() - queued0) / 1000
  const cpu0 = process.cpuUsage()
  runner = await run(options)
  while ((await left()) > 0) await sleep(250)
  const cpu = process.cpuUsage(cpu0)
  console.log(JSON.stringify({ jobs_per_s: n / ((last - first) / 1000), enqueue_jobs_per_s: n / enqueueS, cpu_us_per_job: (cpu.user + cpu.system) / n }))
} else {
  runner = await run(options)
  await sleep(1000)
  for (let i = 0; i < n; i++) {
    await utils.addJob('noop', {})
    await sleep(20)
  }
  while (latencies.length < n) await sleep(20)
  latencies.sort((a, b) => a - b)
  console.log(JSON.stringify({ p50_ms: pct(latencies, 0.5), p99_ms: pct(latencies, 0.99) }))
}
await runner.stop()
await utils.release()
await db.end()
process.exit(0)
