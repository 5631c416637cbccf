"""AGQ speed (issue "Adaptive Gauss-Hermite quadrature").

* 100,000 rows, 2,000 clusters, logistic (1 | g), nagq = 10: ratio to lme4 glmer(nAGQ = 10)
  on the same data (target ≤ 0.05);
* 20,000 rows, 1,000 clusters, logistic (1 + x | g), nagq = 7: time only (lme4 cannot).

    python benchmarks/bench_agq.py [--no-r]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_laplace as bl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    use_r = not args.no_r and bl.r_available()
    with tempfile.TemporaryDirectory() as tmp:
        res = bl.run_case("logit_ri_100k", Path(tmp), use_r, 1, method="agq", nagq=10)
        res["case"] = "logit_ri_100k nagq=10"
        bl.report(res, 0.05)
        res = bl.run_case("agq_slope_20k", Path(tmp), False, 1, method="agq", nagq=7)
        res["case"] = "slope_20k nagq=7"
        bl.report(res, None)


if __name__ == "__main__":
    main()
