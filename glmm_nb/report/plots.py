"""The report's charts from Python: ``m.plot.coefs()``, ``.caterpillar()``, ``.effects("x")``,
``.diagnostics()``, ``.marginal()`` return Altair charts built by the same builders
(:mod:`.charts`) from the same section data (:mod:`.sections`) as the HTML report."""

from __future__ import annotations

import altair as alt

from ..errors import ModelError
from . import charts as ch
from . import sections as sec
from .focal import choose_focus
from .ordinal import category_curves

__all__ = ["ModelPlots"]


def _chart(spec: dict):
    """An Altair chart object from a Vega-Lite spec built by :mod:`.charts`."""
    if "layer" in spec:
        return alt.LayerChart.from_dict(spec)
    if "hconcat" in spec:
        return alt.HConcatChart.from_dict(spec)
    return alt.Chart.from_dict(spec)


def _hconcat(*specs: dict) -> dict:
    """Top-level specs side by side: data sets merged, each sub-spec without $schema/config."""
    out = {"hconcat": [], "datasets": {}}
    for spec in specs:
        sub = {k: v for k, v in spec.items() if k not in ("$schema", "config", "datasets")}
        out["datasets"].update(spec.get("datasets", {}))
        out["hconcat"].append(sub)
    for k in ("$schema", "config"):
        if k in specs[0]:
            out[k] = specs[0][k]
    return out


class ModelPlots:
    """Charts of one fitted model (``m.plot``)."""

    def __init__(self, m):
        self._m = m

    def coefs(self):
        """Forest plot of the fixed effects with 95 % intervals."""
        f = sec.fixed_section(self._m)
        return _chart(ch.forest(f["rows"], f["exp_name"]))

    def caterpillar(self, group: str | None = None, term: str | None = None):
        """Conditional modes with ±1.96 conditional SDs, ordered, for one grouping factor and
        column (default: the first)."""
        cats = sec.random_section(self._m)["caterpillars"]
        pick = [c for c in cats if (group is None or c["group"] == group) and (term is None or c["term"] == term)]
        if not pick:
            have = ", ".join(f"{c['group']}/{c['term']}" for c in cats)
            raise ModelError(f"no random effect {group!r}/{term!r}; the model has {have}")
        c = pick[0]
        return _chart(ch.caterpillar(c["data"], c["group"], c["term"]))

    def effects(self, var: str | None = None):
        """Predicted response against a covariate (default: the treatment when its name says so,
        else the first continuous covariate; see :mod:`.focal`): clusters at quantiles of the
        random intercept, the typical cluster and the population average, the other covariates
        held at their means or most common values."""
        if self._m.request.family.ordinal:  # one curve per category (the report's ordinal chart)
            f = choose_focus(self._m, var)
            if f is None:
                raise ModelError("effect curves vary a covariate, and the model's fixed part has none")
            data = category_curves(self._m, f)
            return _chart(ch.category_probabilities(data, f.var, not f.discrete, f.held_text))
        out = sec.marginal_section(self._m, var, None)
        if out["curves"] is None:  # only the reasons about the curves (not the GEE's)
            why = [x.split(": ", 1)[-1] for x in out["missing"] if x.startswith("prediction curves")]
            raise ModelError("no effect curves: " + ("; ".join(why) or "the predictions could not be computed"))
        f = out["focus"]
        return _chart(ch.curves(out["curves"], f.var, self._m.request.family.mean_word, f.discrete, f.held_text))

    marginal = effects

    def diagnostics(self, nsim: int = 250):
        """Histogram and QQ plot of the simulated scaled residuals, side by side."""
        d = sec.diagnostics_section(self._m, nsim)
        if d["hist"] is None:
            raise ModelError("; ".join(d["missing"]) or "no simulated residuals")
        return _chart(_hconcat(ch.residual_hist(d["hist"]), ch.residual_qq(d["qq"])))
