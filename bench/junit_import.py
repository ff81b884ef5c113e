"""Benchmark: a 10,000-testcase JUnit XML report imported through POST /tm_api/junit/.

One server process (plumbing.devserver.Server, uvicorn, production settings: DEBUG off, a
machine token) on PostgreSQL + Redis, from a clean checkout: creates and drops its own database
bench_junit_<pid>. The report is generated as CI tools write them: nested suites (packages of
classes), failures and errors with multi-line stack traces, skips, a few flaky tests (Surefire's
<flakyFailure>), <system-out> on a fifth of the testcases, properties.

In the same run and minute, the baseline: one machine posting test_start and test_stop (one
request at a time, as a machine does) to the same server for --seconds. Prints, per import, the
time of the POST and the testcases stored per second, and their ratio to the tests per second
the machine reports store (one start and one stop per test).

    .venv/bin/python bench/junit_import.py [--tests 10000] [--rounds 3] [--seconds 10]

Env: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS_DB (default 13).
"""

import gzip
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from harness import options, server_env  # noqa: E402 (sys.path set above)
from scaling import cpu_seconds, process_tree  # noqa: E402 (sys.path set above)
from tm_live import TESTS_PER_RUN, dry_run_body, percentile, psql  # noqa: E402

from plumbing.devserver import Server  # noqa: E402 (sys.path set above)

TRACE = """java.lang.AssertionError: expected:<{a}> but was:<{b}>
\tat org.junit.Assert.fail(Assert.java:89)
\tat org.junit.Assert.failNotEquals(Assert.java:835)
\tat org.junit.Assert.assertEquals(Assert.java:120)
\tat com.acme.{pkg}.{cls}.{name}({cls}.java:{line})
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)
\tat org.junit.runners.model.FrameworkMethod$1.runReflectiveCall(FrameworkMethod.java:59)
\tat org.junit.internal.runners.model.ReflectiveCallable.run(ReflectiveCallable.java:12)
\tat org.apache.maven.surefire.junit4.JUnit4Provider.invoke(JUnit4Provider.java:169)
"""


def report(tests: int, seed: int = 7) -> bytes:
    """A JUnit XML document of `tests` testcases: 20 packages, each a suite of class suites."""
    rng = random.Random(seed)
    packages, per_class = 20, 25
    classes = max(1, tests // (packages * per_class))
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<testsuites name="nightly" tests="{tests}">']
    made = 0
    for p in range(packages):
        pkg = f"pkg{p:02d}"
        out.append(f'<testsuite name="com.acme.{pkg}" timestamp="2024-05-01T02:00:00">')
        out.append(f'<properties><property name="java.version" value="21.0.{p}"/></properties>')
        for c in range(classes):
            cls = f"Service{c:03d}Test"
            out.append(f'<testsuite name="com.acme.{pkg}.{cls}">')
            for n in range(per_class):
                if made == tests:
                    break
                made += 1
                name = f"test_case_{n:03d}[{rng.randint(0, 9)}]"
                attrs = (f'classname="com.acme.{pkg}.{cls}" name={quoteattr(name)} '
                         f'time="{rng.expovariate(5):.3f}"')
                body = []
                roll = rng.random()
                trace = escape(TRACE.format(a=rng.randint(0, 9), b=rng.randint(10, 99), pkg=pkg,
                                            cls=cls, name=name, line=rng.randint(20, 400)))
                if roll < 0.05:
                    body.append(f'<failure message="expected:&lt;1&gt; but was:&lt;2&gt;" '
                                f'type="java.lang.AssertionError">{trace}</failure>')
                elif roll < 0.08:
                    body.append('<error message="Connection refused" type="java.net.'
                                f'ConnectException">{trace}</error>')
                elif roll < 0.13:
                    body.append('<skipped message="not on this platform"/>')
                elif roll < 0.14:
                    body.append(f'<flakyFailure message="timed out" type="java.util.concurrent.'
                                f'TimeoutException"><stackTrace>{trace}</stackTrace>'
                                f'<system-out>retrying {escape(name)}</system-out></flakyFailure>')
                if rng.random() < 0.2:
                    lines = "\n".join(f"{n:04d} INFO  {cls}: step {k} done in {rng.randint(1, 90)} ms"
                                      for k in range(rng.randint(3, 30)))
                    body.append(f"<system-out>{escape(lines)}</system-out>")
                out.append(f"<testcase {attrs}>{''.join(body)}</testcase>" if body
                           else f"<testcase {attrs}/>")
            out.append("</testsuite>")
        out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out).encode()


def machine_reports(url, token, seconds) -> float:
    """Tests per second stored by one machine posting test_start and test_stop."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    done = 0
    while time.monotonic() < deadline:
        if done % TESTS_PER_RUN == 0:
            r = session.post(url + "/tm_api/dry_run/", json=dry_run_body("reports"), timeout=30)
            assert r.status_code == 201, r.text
        body = {"machine_name": "reports", "file_path": "/bench",
                "file_name": f"test_{done % TESTS_PER_RUN:03d}.py"}
        r = session.post(url + "/tm_api/test_start/", json=body, timeout=30)
        assert r.status_code == 202, r.text
        r = session.post(url + "/tm_api/test_stop/", json={**body, "status": "passed"},
                         timeout=30)
        assert r.status_code == 202, r.text
        done += 1
    return done / (time.monotonic() - started)


def main():
    args = options(__doc__, tests=10_000, rounds=3, seconds=10.0)
    document = report(args.tests)
    packed = gzip.compress(document)
    pg = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    database = f"bench_junit_{os.getpid()}"
    psql(f"CREATE DATABASE {database}", pg)
    # The baseline is one machine's reports as fast as the server takes them: above the machine
    # token's default rate limit (200 a second, bursts of 2,000) on a fast machine.
    env = server_env(f"{pg}/{database}", RATE_LIMIT_MACHINE_TOKEN="1000000",
                     REDIS_PREFIX=database)  # no rate state left by an earlier run
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT,
                       env={**os.environ, **env}, check=True)
        script = "from tm_api.auth import issue_token\nprint(issue_token('bench')[1])"
        token = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", script], cwd=ROOT,
            env={**os.environ, **env}, check=True, capture_output=True, text=True).stdout.strip()
        server = Server(env, access_log=False).start()
        try:
            pids = process_tree(server.process.pid)
            machine_reports(server.url, token, 1)  # warm-up
            baseline = machine_reports(server.url, token, args.seconds)
            times, cpus = [], []
            for n in range(args.rounds):
                gzipped = n % 2 == 1
                cpu = sum(cpu_seconds(pid) for pid in pids)
                started = time.monotonic()
                response = requests.post(
                    f"{server.url}/tm_api/junit/?machine=ci-nightly&branch=main",
                    data=packed if gzipped else document, timeout=600,
                    headers={"Authorization": f"Token {token}",
                             "Content-Type": "application/xml",
                             **({"Content-Encoding": "gzip"} if gzipped else {})})
                times.append(time.monotonic() - started)
                cpus.append(sum(cpu_seconds(pid) for pid in pids) - cpu)
                assert response.status_code == 201, response.text[:500]
                counts = response.json()
                assert counts["tests"] == args.tests and counts["refused"] == 0, counts
                print(f"  import {n + 1}{' (gzip)' if gzipped else '       '}: "
                      f"{times[-1]:6.2f} s, {args.tests / times[-1]:7.0f} testcases/s, "
                      f"server CPU {cpus[-1]:.2f} s", flush=True)
            load = os.getloadavg()[0]
        finally:
            server.stop()
        best = min(times)
        print(f"\nJUnit import of {args.tests:,} testcases ({len(document) / 1e6:.1f} MB, gzip "
              f"{len(packed) / 1e6:.2f} MB; {counts}), one uvicorn process, PostgreSQL + "
              f"Redis, load average {load:.1f} on {os.cpu_count()} cores")
        print(f"baseline, one machine's test_start + test_stop: {baseline:7.0f} tests/s")
        print(f"JUnit import: best {best:.2f} s, median {percentile(times, 50):.2f} s = "
              f"{args.tests / best:.0f} testcases/s = {args.tests / best / baseline:.1f} x "
              f"baseline")
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", pg)


if __name__ == "__main__":
    main()
