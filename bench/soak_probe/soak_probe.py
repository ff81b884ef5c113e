"""Stall probes for bench/soak.py: what else was slow when many requests were slow together.

In a process, `install(path)` appends to `path` one line per event, "<unix time> <kind> <ms>":
  gc<N>   a garbage collection of generation N that took >= GC_MS (the GIL is held throughout)
  late    a thread that sleeps SLEEP_S woke up >= LATE_MS late: the process did not get the GIL
          (a long collection or C call) or was not scheduled (host CPU contention)
The soak puts this directory on the server's and the worker's PYTHONPATH with SOAK_PROBE_LOG set,
so that their sitecustomize installs it at start-up; the soak's own client installs it directly.
"""

import gc
import threading
import time

GC_MS = 10
LATE_MS = 20
SLEEP_S = 0.05


def install(path):
    out = open(path, "a", buffering=1)  # open for the life of the process
    lock = threading.Lock()
    started = []

    def write(kind, ms):
        with lock:
            out.write(f"{time.time():.3f} {kind} {ms:.1f}\n")

    def on_gc(phase, info):
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            ms = (time.perf_counter() - started.pop()) * 1000
            if ms >= GC_MS:
                write(f"gc{info['generation']}", ms)

    def tick():
        while True:
            before = time.perf_counter()
            time.sleep(SLEEP_S)
            late = (time.perf_counter() - before - SLEEP_S) * 1000
            if late >= LATE_MS:
                write("late", late)

    gc.callbacks.append(on_gc)
    threading.Thread(target=tick, name="soak-probe", daemon=True).start()


def read(path, since_unix):
    """The events of a probe log as (seconds since `since_unix`, kind, ms)."""
    events = []
    try:
        with open(path) as lines:
            for line in lines:
                unix, kind, ms = line.split()
                events.append((float(unix) - since_unix, kind, float(ms)))
    except FileNotFoundError:
        pass
    return events
