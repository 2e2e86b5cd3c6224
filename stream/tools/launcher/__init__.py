"""Start and stop the real parts: Tansu broker, Triton, Faust workers, one
module each.

Shared by `memberstream up`/`demo`, the tests and the benchmarks. Each
process binds 127.0.0.1 on a free port, is waited on until it answers, and is
stopped by its PID (SIGTERM, then SIGKILL), also when the caller fails.
"""
from stream.tools.launcher.broker import Broker, start_broker
from stream.tools.launcher.process import LaunchError, Process, free_port, spawn, stopping, wait_until
from stream.tools.launcher.triton import Triton, start_triton
from stream.tools.launcher.worker import WorkerProcess, records_taken, start_worker, worker_env

__all__ = ["Broker", "LaunchError", "Process", "Triton", "WorkerProcess", "free_port", "records_taken", "spawn",
           "start_broker", "start_triton", "start_worker", "stopping", "wait_until", "worker_env"]
