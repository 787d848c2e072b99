// pg-boss peer for benches/queue.rs: `node pg-boss.mjs drain|latency DATABASE_URL N`.
// Prints one JSON line: {"jobs_per_s": …} or {"p50_ms": …, "p99_ms": …}.
// Tuned as its docs suggest for throughput: batchSize 100, fetch continuously while batches
// come back full; LISTEN/NOTIFY on for latency.
import { PgBoss } from 'pg-boss'
import pg from 'pg'

const [mode, url, nText] = process.argv.slice(2)
const n = Number(nText)
const queue = 'noop'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pct = (sorted, p) => sorted[Math.round((sorted.length - 1) * p)]

const boss = new PgBoss({ connectionString: url, useListenNotify: mode === 'latency', max: 10 })
boss.on('error', (e) => console.error(e))
await boss.start()
await boss.createQueue(queue, { notify: mode === 'latency' })
const db = new pg.Client({ connectionString: url })
await db.connect()
const completed = async () =>
  Number((await db.query("SELECT count(*) FROM pgboss.job WHERE name = $1 AND state = 'completed'", [queue])).rows[0].count)

if (mode === 'drain') {
  for (let i = 0; i < n; i += 1000) {
    await boss.insert(queue, Array.from({ length: Math.min(1000, n - i) }, () => ({ data: {} })))
  }
  const started = performance.now()
  await boss.work(queue, { batchSize: 100, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 }, async () => {})
  while ((await completed()) < n) await sleep(50)
  console.log(JSON.stringify({ jobs_per_s: n / ((performance.now() - started) / 1000) }))
} else {
  const latencies = []
  await boss.work(queue, { batchSize: 100, includeMetadata: true }, async (jobs) => {
    const now = Date.now()
    for (const job of jobs) latencies.push(now - job.createdOn.getTime())
  })
  await sleep(1000)
  for (let i = 0; i < n; i++) {
    await boss.send(queue, {})
    await sleep(20)
  }
  while (latencies.length < n) await sleep(20)
  latencies.sort((a, b) => a - b)
  console.log(JSON.stringify({ p50_ms: pct(latencies, 0.5), p99_ms: pct(latencies, 0.99) }))
}
await db.end()
await boss.stop({ graceful: false, wait: false })
process.exit(0)
