"""`moe-mlora` whose sweep workers, once a few runs are recorded, hold every further run until they are killed.

The stop tests start a sweep with this script and stop it after the first records appear: the rest of the
grid cannot finish first, however fast the machine (no race against the clock). Sweep workers are spawned
processes that import this script as their main module, so the patch below applies inside them too.
"""

import os
import sys
import time
from pathlib import Path

from moe_mlora.experiments import sweep

FREE_RUNS = int(os.environ.get("MOE_MLORA_TEST_FREE_RUNS", "2"))
_execute_run = sweep.execute_run


def _held_after_free_runs(config, results_dir, **kwargs):
    if len(list(Path(results_dir).glob("*/result.json"))) >= FREE_RUNS:
        while True:  # until the sweep's end kills this worker
            time.sleep(0.2)
    return _execute_run(config, results_dir, **kwargs)


sweep.execute_run = _held_after_free_runs

if __name__ == "__main__":
    import signal

    from moe_mlora.cli import app

    # A shell without job control starts a background command (`pytest ... &`) with SIGINT ignored, and the
    # child inherits that: Python then installs no KeyboardInterrupt handler and the SIGINT test would hang.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    sys.exit(app())
