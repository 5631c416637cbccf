"""Fitting on Dask data: the same estimates as in memory, for data beyond one machine.

With one grouping factor (and factors nested in it) the Laplace and AGQ log-likelihoods, their
gradients and the finite-difference Hessian are sums over clusters, and each cluster's
conditional modes depend only on (theta, beta) and its own rows — with a zero part, a
dispersion model or random effects in the zero part too (the joint Laplace of
:mod:`glmm_nb.likelihood.zire` per partition); the profiled LMM's Schur pieces are sums too. So the rows are shuffled once so that every cluster lives in one
partition (:mod:`.plan`), each partition builds the in-memory deviance objects on its rows
once and keeps them on its worker (:mod:`.partition`, :mod:`.engine`), and every optimizer
step is one map-reduce that moves parameter-sized vectors only (:mod:`.devfun`). The optimizer,
the convergence checks and the result builder are the in-memory ones (:mod:`.fit`).

Dask is an optional dependency (``pip install 'glmm_nb[dask]'``): nothing here imports it until
a Dask fit runs.
"""

from .engine import DaskFitError, current_client
from .fit import DaskFit, ReTable, as_dask, fit_dask, is_dask_data, refit_dask
from .intervals import wald_confint
from .plan import DaskOptions, DaskPlan, make_plan, partition_key
from .predict import Predictor, predict_dask

__all__ = ["fit_dask", "refit_dask", "predict_dask", "Predictor", "DaskFit", "ReTable", "DaskOptions", "DaskPlan",
           "DaskFitError", "as_dask", "current_client", "is_dask_data", "make_plan", "partition_key", "wald_confint"]
