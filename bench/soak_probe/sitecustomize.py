"""Installs bench/soak.py's stall probe in a process started with SOAK_PROBE_LOG set."""

import os

if os.environ.get("SOAK_PROBE_LOG"):
    import soak_probe

    soak_probe.install(os.environ["SOAK_PROBE_LOG"])
