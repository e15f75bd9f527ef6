"""Workforce management: forecast, staffing, rosters, adherence and shift handover (docs/wfm.md).

The forecast fits many tiny models (a few dozen points each). A multi-threaded BLAS spends more on
waking its threads than on the sums: on a busy 2-core machine one fit took 0.72 s with OpenBLAS's
threads and 0.11 s with one. So unless the operator chose otherwise, BLAS runs single-threaded; this
takes effect when this package is imported before numpy (the CLI and the server import it first).
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
