"""procrastinate peer for benches/queue.rs: `python procrastinate_bench.py drain|latency URL N`.

Prints one JSON line: {"jobs_per_s": …, "cpu_us_per_job": …} or {"p50_ms": …, "p99_ms": …}. Concurrency 32 (its
async workers); LISTEN/NOTIFY on (its default). Latency is read from its own event log:
from the job's `deferred` event to its `started` event, both stamped by the database.
"""

import asyncio
import json
import sys
import time

import procrastinate

mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))


@app.task(name="noop")
async def noop():
    pass


async def scalar(sql):
    rows = await app.connector.execute_query_all_async(sql)
    return list(rows[0].values())[0]


async def main():
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        if mode == "drain":
            for i in range(0, n, 1000):
                await noop.batch_defer_async(*[{} for _ in range(min(1000, n - i))])
            cpu0 = time.process_time()
            await app.run_worker_async(concurrency=32, wait=False)
            cpu = time.process_time() - cpu0
            done = await scalar("SELECT count(*) AS c FROM procrastinate_jobs WHERE status = 'succeeded'")
            assert done == n, f"{done} of {n} succeeded"
            # Timed from its event log, as offload's drain is from its rows: the first job's
            # start to the last one's end.
            span = await scalar(
                """SELECT extract(epoch FROM max(at) FILTER (WHERE type IN ('succeeded', 'failed'))
                                        - min(at) FILTER (WHERE type = 'started')) AS s
                   FROM procrastinate_events"""
            )
            print(json.dumps({"jobs_per_s": n / float(span), "cpu_us_per_job": cpu * 1e6 / n}))
        else:
            worker = asyncio.create_task(app.run_worker_async(concurrency=32, fetch_job_polling_interval=1.0))
            await asyncio.sleep(1)
            for _ in range(n):
                await noop.defer_async()
                await asyncio.sleep(0.02)
            while await scalar("SELECT count(*) AS c FROM procrastinate_jobs WHERE status = 'succeeded'") < n:
                await asyncio.sleep(0.05)
            worker.cancel()
            rows = await app.connector.execute_query_all_async(
                """SELECT extract(epoch FROM s.at - d.at) * 1000 AS ms
                   FROM procrastinate_events d JOIN procrastinate_events s USING (job_id)
                   WHERE d.type = 'deferred' AND s.type = 'started' ORDER BY ms"""
            )
            ms = [float(r["ms"]) for r in rows]
            pick = lambda p: ms[round((len(ms) - 1) * p)]
            print(json.dumps({"p50_ms": pick(0.5), "p99_ms": pick(0.99)}))


asyncio.run(main())
