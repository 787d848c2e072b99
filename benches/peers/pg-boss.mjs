// pg-boss peer for benches/queue.rs: `node pg-boss.mjs drain|latency DATABASE_URL N`.
// Prints one JSON line: {"jobs_per_s": …, "enqueue_jobs_per_s": …} or {"p50_ms": …, "p99_ms": …}.
// At its best setting for throughput: batchSize 100, two local workers (localConcurrency 2),
// fetch continuously while batches come back full; LISTEN/NOTIFY on for latency. The drain is
// timed from its rows (first started_on to last completed_on), as offload's is; CPU per job is
// this process's own (process.cpuUsage).
import { PgBoss } from 'pg-boss'
import pg from 'pg'
import fs from 'node:fs'

const [mode, url, nText] = process.argv.slice(2)
const n = Number(nText)
const queue = 'noop'
// CPU time (user + system, µs) of the local Postgres server's processes, as benches/queue.rs
// reads it for offload.
const postgresCpuUs = () => {
  let total = 0
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim().split(/\s+/)
      total += (Number(f[11]) + Number(f[12])) * 10000
    } catch {}
  }
  return total
}
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
  // The queueing is timed too: batches of 1,000 through the library, as offload's figure.
  const queued0 = process.hrtime.bigint()
  for (let i = 0; i < n; i += 1000) {
    await boss.insert(queue, Array.from({ length: Math.min(1000, n - i) }, () => ({ data: {} })))
  }
  const enqueueS = Number(process.hrtime.bigint() - queued0) / 1e9
  const wal0 = (await db.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l
  const dbCpu0 = postgresCpuUs()
  const cpu0 = process.cpuUsage()
  await boss.work(queue, { batchSize: 100, localConcurrency: 2, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 }, async () => {})
  while ((await completed()) < n) await sleep(250)
  const cpu = process.cpuUsage(cpu0)
  const dbCpu = postgresCpuUs() - dbCpu0
  const wal = (await db.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8 AS w', [wal0])).rows[0].w
  const span = (await db.query(
    'SELECT extract(epoch FROM max(completed_on) - min(started_on)) AS s FROM pgboss.job WHERE name = $1', [queue])).rows[0].s
  console.log(JSON.stringify({ jobs_per_s: n / Number(span), enqueue_jobs_per_s: n / enqueueS, cpu_us_per_job: (cpu.user + cpu.system) / n, wal_bytes_per_job: wal / n, db_cpu_us_per_job: dbCpu / n }))
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
