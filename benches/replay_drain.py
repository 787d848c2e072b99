"""Replays a Postgres drain with offload's own claim and finish statements (#17), without the
worker: what the database alone spends per job, for trying a schema or statement change in
seconds instead of a release build and a full `scripts/bench` run.

It reads the statements from the source (`CLAIM` in src/queue/claim.rs, `PG_FINISH_MANY` in
src/queue/writer.rs, or files given by CLAIM_SQL / FINISH_SQL), makes a scratch database
migrated by the `offload` binary, optionally applies SQL files (the variants to compare),
queues N no-op jobs (beside FINISHED finished ones), then claims BATCH at a time and ends them
on one connection. It prints jobs/s, Postgres backend CPU per job (from /proc), wall time per
job of each statement and WAL per job. Run through `scripts/bench-replay`.

Settings (environment): DATABASE_URL (admin URL of the server), OFFLOAD_BIN, N (10000),
BATCH (64), FINISHED (0), SEED (fresh, or bench: see `fill`), IDS (v4, or v7:
time-ordered job ids), JIT (off).
"""

import os
import re
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rust_const(path, name):
    """The text of `const NAME: &str = "\\ ... ";` in a Rust source file."""
    src = open(os.path.join(ROOT, path)).read()
    m = re.search(r'const ' + name + r': &str = "\\\n(.*?)";', src, re.S)
    if not m:
        sys.exit(f"{name} not found in {path}")
    return m.group(1).replace('\\"', '"')


def statement(env, path, name):
    return open(os.environ[env]).read() if os.environ.get(env) else rust_const(path, name)


def scratch_db(admin_url):
    name = "offload_replay_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as adm:
        adm.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(admin_url)
    url = urlunsplit(parts._replace(path="/" + name))
    bin_path = os.environ.get("OFFLOAD_BIN", os.path.join(ROOT, "target/release/offload"))
    env = dict(os.environ, DATABASE_URL=url, RUST_LOG="error")
    subprocess.run([bin_path, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    return name, url


def job_id(ids, created_at):
    """SQL for the id of a generated job created at `created_at` (SQL, µs): random (UUIDv4),
    or time-ordered like a UUIDv7 (its first 48 bits the creation time, so new ids land at
    the right edge of the primary key)."""
    if ids == "v4":
        return "gen_random_uuid()::text"
    ms = f"lpad(to_hex((({created_at}) / 1000)::bigint), 12, '0')"
    return (f"substr({ms}, 1, 8) || '-' || substr({ms}, 9, 4) || '-7' "
            "|| substr(gen_random_uuid()::text, 16)")


def queue(c, n, now, ids, prefix="T"):
    """n queued no-op jobs shaped like the service's, created from `now` on."""
    c.execute(
        f"""WITH v AS (SELECT {job_id(ids, '$2 + g')} AS id, '{prefix}' || lpad(g::text, 25, '0') AS task_id, g
                      FROM generate_series(1, $1) g),
           ins AS (INSERT INTO offload_jobs (id, kind, status, args, task_id, attempts, max_attempts,
                     progress_percent, progress_message, created_at, updated_at, steps, tenant, priority)
                   SELECT id, 'noop', 'queued', '{{}}', task_id, 0, 3, 0, 'queued', $2 + g, $2 + g,
                     '[{{"name":"publish","status":"pending"}}]', 'default', 'normal' FROM v
                   RETURNING *)
           INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, tenant)
           SELECT task_id, kind, convert_to('{{"job_id":"' || id || '"}}', 'UTF8'), 'Pending', 0, 3,
             now() - interval '1 second', 1, tenant FROM ins""",
        (n, now),
    )


def fill(c, n, finished, now, seed, ids):
    """n queued no-op jobs and `finished` succeeded ones. SEED=fresh writes the finished rows
    as such and analyzes the tables after queueing; SEED=bench does what `scripts/bench` does:
    queues them, marks them all finished, VACUUM ANALYZEs, then queues n (no ANALYZE after)."""
    c.execute(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) "
        "VALUES ('replay', 'noop', 'PgStorage', '', now())"
    )
    if finished and seed == "bench":
        queue(c, finished, now - 10**9, ids, prefix="F")
        c.execute(
            "UPDATE offload_jobs SET status = 'succeeded', attempts = 1, progress_percent = 100, "
            "progress_message = 'done', started_at = created_at, finished_at = created_at, "
            "updated_at = created_at"
        )
        c.execute(
            "UPDATE apalis.jobs SET status = 'Done', attempts = 1, done_at = now(), "
            "last_result = '{\"Ok\":null}'"
        )
        c.execute("VACUUM ANALYZE offload_jobs")
        c.execute("VACUUM ANALYZE apalis.jobs")
    elif finished:
        c.execute(
            f"""INSERT INTO offload_jobs (id, kind, status, args, task_id, attempts, max_attempts,
                 progress_percent, progress_message, created_at, updated_at, started_at,
                 finished_at, steps, tenant, priority)
               SELECT {job_id(ids, "$2 - g")}, 'noop', 'succeeded', '{{}}',
                 'F' || lpad(g::text, 25, '0'), 1, 3, 100, 'done', $2 - g, $2 - g, $2 - g, $2 - g,
                 '[]', 'default', 'normal'
               FROM generate_series(1, $1) g""",
            (finished, now),
        )
        c.execute(
            """INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                 priority, tenant, done_at, lock_by)
               SELECT 'F' || lpad(g::text, 25, '0'), 'noop', '{}'::bytea, 'Done', 1, 3, now(), 1,
                 'default', now(), 'replay' FROM generate_series(1, $1) g""",
            (finished,),
        )
    queue(c, n, now, ids)
    if seed != "bench":
        c.execute("ANALYZE")


def main():
    admin = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    n, batch = int(os.environ.get("N", "10000")), int(os.environ.get("BATCH", "64"))
    finished = int(os.environ.get("FINISHED", "0"))
    seed, ids = os.environ.get("SEED", "fresh"), os.environ.get("IDS", "v4")
    claim = statement("CLAIM_SQL", "src/queue/claim.rs", "CLAIM")
    finish = statement("FINISH_SQL", "src/queue/writer.rs", "PG_FINISH_MANY")
    name, url = scratch_db(admin)
    try:
        with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.RawCursor) as c:
            for variant in sys.argv[1:]:
                c.execute(open(variant).read())
            c.execute("SET jit = " + os.environ.get("JIT", "off"))
            now = int(time.time() * 1e6)
            fill(c, n, finished, now, seed, ids)
            print(run(c, claim, finish, n, batch, now), f"(FINISHED={finished} SEED={seed} IDS={ids})",
                  "variants:", sys.argv[1:] or "none")
    finally:
        with psycopg.connect(admin, autocommit=True) as adm:
            adm.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(c, claim, finish, n, batch, now):
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]

    def cpu_us():
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1e6 / os.sysconf("SC_CLK_TCK")

    lsn = c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    cpu0, t0, done, in_claim, in_finish = cpu_us(), time.time(), 0, 0.0, 0.0
    while done < n:
        a = time.time()
        # claimed_id, claimed_job, ..., then the started row (its id is column 6).
        rows = c.execute(claim, ("replay", "noop", batch, "{}", 0), prepare=True).fetchall()
        b = time.time()
        in_claim += b - a
        if not rows:
            break
        k = len(rows)
        none = [None] * k
        c.execute(
            finish,
            ([r[6] for r in rows], [r[0] for r in rows], [1] * k, ["succeeded"] * k, [100] * k,
             ["done"] * k, none, none, none, none, none, none, [now] * k, ["[]"] * k,
             ['[{"name":"publish","status":"done"}]'] * k, now, none),
            prepare=True,
        ).fetchall()
        in_finish += time.time() - b
        done += k
    took, cpu = time.time() - t0, cpu_us() - cpu0
    wal = c.execute("SELECT pg_current_wal_lsn() - $1::pg_lsn", (lsn,)).fetchone()[0]
    return (
        f"{done} jobs in batches of {batch}: {done / took:.0f} jobs/s, Postgres CPU "
        f"{cpu / done:.0f} µs/job, claim {in_claim * 1e6 / done:.0f} µs/job, finish "
        f"{in_finish * 1e6 / done:.0f} µs/job (wall), WAL {float(wal) / done:.0f} B/job"
    )


if __name__ == "__main__":
    main()
