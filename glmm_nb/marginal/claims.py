r"""The numbers behind the sentences: what an effect is for one cluster and for the population.

Every sentence the report, ``compare()`` and the key findings state about an effect is built
here from two computed numbers with stated definitions, for any family, link, zero part and
random-effect design:

* **conditional** (subject-specific): the coefficient's own ratio or difference,
  :math:`e^{\beta\delta}` (log/logit links) or :math:`\beta\delta` — the effect within one
  cluster — when one coefficient is the whole effect on the scale stated. When it is not (a
  zero part that involves the covariate, an interaction, a transformation), the effect on a
  *typical* cluster (random effects 0) over the observed rows: the contrast of
  :math:`\bar\mu^T_s = n^{-1}\sum_i E[y_i \mid b = 0, x_i^{(s)}]`, zero part included.
* **population-averaged** ("a policy applied to everyone"): the same contrast of the
  population means :math:`\bar\mu^P_s = n^{-1}\sum_i E_b E[y_i \mid b, x_i^{(s)}]` — the
  expectation over the fitted random-effect distribution, zero part included — between the
  scenarios :math:`s = 0` (everyone at the reference value, or at their observed value for a
  numeric shift) and :math:`s = 1` (everyone switched, or shifted by ``delta``). This is the
  computation of :func:`glmm_nb.marginal.average_marginal_effects` ("marginal" way).

The contrast is a ratio of means for a log link, an odds ratio of the mean probabilities for a
logit link, a difference for the identity link and a difference on the link scale otherwise.
The direction word compares the two numbers the sentence prints: on the log scale for ratios,
:math:`r = |\log \mathrm{PA}| / |\log \mathrm{cond}|`; "closer to no effect" when r < 1,
"farther from no effect" when r > 1, "in the opposite direction" when the signs differ.
Where the population mean does not exist (the inverse link: :math:`E_b[1/(\eta + b)]` has a
pole inside the normal's range) the claim says so instead of printing a number.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError
from ..inference.simulate import design_of, predict_design

__all__ = ["EffectClaim", "effect_claim", "contrast_scenarios", "direction", "interacting_terms",
           "attenuation_note"]

SAME = 5e-4  # |r - 1| below this: "the same" (to the 4 significant digits printed)
_QUANTITY = {"logit": "odds"}


@dataclass(frozen=True)
class EffectClaim:
    """One covariate contrast, conditional and population-averaged, with the words to say it.

    ``kind`` is "ratio" (log/logit links), "difference" (identity) or "link difference";
    ``conditional`` and ``population`` are on that scale (``population`` None when it does not
    exist, with ``why_missing``); ``count_part`` is exp(beta) of a zero-inflated/hurdle count part.
    """

    var: str
    step: str  # "treat = 1 rather than 0", "one unit more of x", "spp DF rather than GP"
    kind: str
    quantity: str  # what the ratio multiplies: "rate", "odds", "mean", "probability" ...
    link: str
    conditional: float
    conditional_from: str  # "coefficient" or "typical cluster"
    population: float | None
    why_missing: str = ""
    count_part: float | None = None
    means: dict = field(default_factory=dict)  # typical/population means under the two scenarios
    interacts: tuple = ()
    zero_part: str = ""  # "", "zero-inflated", "hurdle"
    term: str | None = None  # the coefficient of this contrast, when the model has one

    @property
    def direction(self) -> tuple[str, float]:
        """(word, percent): "closer", "farther", "same", "opposite" and |1 - r| in %."""
        if self.population is None:
            return "undefined", np.nan
        return direction(self.conditional, self.population, self.kind == "ratio")

    def conditional_sentence(self, cluster: str) -> str:
        verb = _verb(self.kind, self.quantity, self.link)
        c = _num(self.conditional)
        if self.conditional_from == "coefficient":
            where = f"within a cluster (for a given {cluster})"
        else:
            avg = f", averaged over the observed values of {', '.join(self.interacts)}" if self.interacts else ""
            where = f"for a typical cluster (random effects 0){avg}"
        text = f"Conditional (subject-specific): {where}, {self.step} {verb} {c}"
        if self.count_part is not None and self.zero_part:
            part = "of the counts that are not structural zeros" if self.zero_part == "zero-inflated" \
                else "of the positive counts (zero-truncated)"
            text += (f" — the mean including the zero part; the count part alone (the mean {part}) is multiplied "
                     f"by {_num(self.count_part)}")
        return text + "."

    def population_sentence(self) -> str:
        if self.population is None:
            return f"Population-averaged: not defined here — {self.why_missing}"
        verb = _verb(self.kind, self.quantity, self.link, population=True)
        word, pct = self.direction
        if word == "same":
            rel = "the same as the conditional effect"
        elif word == "opposite":
            rel = "in the opposite direction to the conditional effect"
        else:
            scale = " on the log scale" if self.kind == "ratio" else ""
            rel = f"{pct:.1f} % {'closer to' if word == 'closer' else 'farther from'} no effect than the " \
                  f"conditional effect{scale}"
        zero = " (zero part included)" if self.zero_part else ""
        who = _policy(self.step)
        return (f"Population-averaged (a policy applied to everyone): {who}{zero} {verb} "
                f"{_num(self.population)} — {rel}.")


def _num(v: float) -> str:
    return f"{v:.4g}"


def _verb(kind: str, quantity: str, link: str, population: bool = False) -> str:
    pop = "population-averaged " if population else ""
    if kind == "ratio":
        return f"multiplies the {pop}{quantity} by"
    if kind == "difference":
        return f"changes the {pop}{quantity} by"
    return f"changes the {pop}{quantity} on the {link} scale by"


def _policy(step: str) -> str:
    if step.startswith("one unit more of "):
        return f"moving everyone's {step[len('one unit more of '):]} up by one unit from its observed value"
    if " more of " in step:
        amount, var = step.split(" more of ", 1)
        return f"moving everyone's {var} up by {amount} from its observed value"
    return f"switching everyone to {step}"


def direction(conditional: float, population: float, ratio: bool) -> tuple[str, float]:
    """Compare the population-averaged effect with the conditional one (see the module doc)."""
    c = np.log(conditional) if ratio else conditional
    p = np.log(population) if ratio else population
    if not (np.isfinite(c) and np.isfinite(p)):
        return "undefined", np.nan
    if c == 0:
        return ("same", 0.0) if p == 0 else ("farther", np.inf)
    r = p / c
    if r < 0:
        return "opposite", np.nan
    if abs(r - 1) < SAME:
        return "same", 0.0
    return ("closer" if r < 1 else "farther"), abs(1 - r) * 100


def interacting_terms(m, var: str) -> list[str]:
    """Coefficients other than var's own that involve it (interactions, transformations)."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(var)}(?![\w])")
    own = {c for c in m.fixef.index if c == var or (c.startswith(var + "[") and ":" not in c)}
    return [c for c in m.fixef.index if c not in own and pattern.search(c)]


def _other_vars(m, terms: list[str], var: str) -> list[str]:
    frame = m.spec.frame
    out = []
    for c in frame.columns:
        if c != var and any(re.search(rf"(?<![\w.]){re.escape(c)}(?![\w])", t) for t in terms):
            out.append(c)
    return out


def contrast_scenarios(frame: pd.DataFrame, var: str, level=None, delta: float = 1.0):
    """(data at s = 0, data at s = 1, step text, coefficient name or None): a two-level or 0/1
    covariate switched from its first to its second value, a factor's ``level`` against its
    reference, or a numeric covariate shifted by ``delta`` from its observed values."""
    if var not in frame.columns:
        raise DataError(f"'{var}' is not a variable of the model (variables: {', '.join(frame.columns)})")
    col = frame[var]
    d0, d1 = frame.copy(), frame.copy()
    if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(col) \
            or pd.api.types.is_string_dtype(col):
        cats = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) \
            else sorted(col.dropna().unique().tolist(), key=str)
        if level is None:
            if len(cats) != 2:
                raise DataError(f"'{var}' has {len(cats)} levels: name the level to compare with its reference")
            level = cats[1]
        if level not in cats:
            raise DataError(f"'{level}' is not a level of '{var}' (levels: {', '.join(map(str, cats))})")
        if isinstance(col.dtype, pd.CategoricalDtype):
            d0[var] = pd.Categorical([cats[0]] * len(col), categories=cats, ordered=col.cat.ordered)
            d1[var] = pd.Categorical([level] * len(col), categories=cats, ordered=col.cat.ordered)
        else:
            d0[var], d1[var] = cats[0], level
        return d0, d1, f"{var} = {level} rather than {cats[0]}", f"{var}[T.{level}]"
    if pd.api.types.is_bool_dtype(col):
        d0[var], d1[var] = False, True
        return d0, d1, f"{var} = True rather than False", f"{var}[T.True]"
    if not pd.api.types.is_numeric_dtype(col):
        raise DataError(f"'{var}' must be numeric, boolean or a factor")
    vals = set(np.asarray(pd.unique(col.dropna()), float))
    if vals <= {0.0, 1.0} and delta == 1.0:
        d0[var] = col.dtype.type(0)
        d1[var] = col.dtype.type(1)
        return d0, d1, f"{var} = 1 rather than 0", var
    d1[var] = col + delta
    step = f"one unit more of {var}" if delta == 1.0 else f"{delta:g} more of {var}"
    return d0, d1, step, var


def _contrast(kind: str, link, a: float, b: float) -> float:
    """The effect of moving the mean from a to b on the claim's scale."""
    if kind == "ratio":
        if link.name == "logit":
            return float((b / (1 - b)) / (a / (1 - a)))
        return float(b / a)
    if kind == "difference":
        return float(b - a)
    return float(link.link(b) - link.link(a))


def effect_claim(m, var: str, level=None, delta: float = 1.0) -> EffectClaim:
    """The conditional and population-averaged effect of ``var`` (see the module docstring)."""
    fam = m.request.family
    if fam.ordinal:
        raise ModelError("an ordinal model's effects are on cumulative odds: see m.compare() and the report's "
                         "category probabilities")
    frame = m.spec.frame
    if frame is None:
        raise ModelError("this result carries no model frame")
    link = fam.link
    kind = "ratio" if link.name in ("log", "logit") else "difference" if link.name == "identity" else "link difference"
    quantity = fam.difference_word if link.name == "log" else _QUANTITY.get(link.name, fam.mean_word)
    d0, d1, step, coef = contrast_scenarios(frame, var, level, delta)
    x0, x1 = design_of(m, d0), design_of(m, d1)
    zero = ""
    if fam.has_zero_part:
        zero = "hurdle" if fam.hurdle else "zero-inflated"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, t1 = (float(np.mean(predict_design(m, x, re="none"))) for x in (x0, x1))
        try:
            p0, p1 = (float(np.mean(predict_design(m, x, re="marginal"))) for x in (x0, x1))
            population, why = _contrast(kind, link, p0, p1), ""
        except ModelError as exc:
            p0 = p1 = np.nan
            population, why = None, str(exc)
    inter = interacting_terms(m, var)
    zero_involves = zero and m.spec.zi_X is not None and any(
        n == var or n.startswith(var + "[") or (":" in n and var in n.split(":")) for n in m.spec.zi_names)
    one_coef = coef in m.fixef.index and not inter and not zero_involves
    scale = 1.0 if "rather than" in step else delta
    if one_coef:
        b = float(m.fixef[coef]) * scale
        conditional = float(np.exp(b)) if kind == "ratio" else b
        source = "coefficient"
    else:
        conditional = _contrast(kind, link, t0, t1)
        source = "typical cluster"
    count_part = None
    if zero_involves and coef in m.fixef.index and not inter:
        count_part = float(np.exp(m.fixef[coef] * scale))
    return EffectClaim(var=var, step=step, kind=kind, quantity=quantity, link=link.name, conditional=conditional,
                       conditional_from=source, population=population, why_missing=why, count_part=count_part,
                       means={"typical": (t0, t1), "population": (p0, p1)},
                       interacts=tuple(_other_vars(m, inter, var)), zero_part=zero,
                       term=coef if coef in m.fixef.index else None)


def attenuation_note(m, table: pd.DataFrame) -> str:
    """What averaging over the clusters did to each coefficient here, read off ``table``
    (conditional, marginal): towards zero, away from zero, unchanged or reversed."""
    groups: dict[str, list[str]] = {"unchanged": [], "moved towards zero": [], "moved away from zero": [],
                                    "reversed in sign": []}
    for term, r in table.iterrows():
        if term == "(Intercept)" or "|" in str(term):
            continue
        c, p = r["conditional"], r["marginal"]
        if not (np.isfinite(c) and np.isfinite(p)) or c == 0:
            continue
        a = p / c
        key = ("unchanged" if abs(a - 1) < SAME else "reversed in sign" if a < 0
               else "moved towards zero" if a < 1 else "moved away from zero")
        groups[key].append(str(term))
    parts = [f"{k}: {', '.join(v)}" for k, v in groups.items() if v]
    if not parts:
        return ""
    return "Here, averaged over the clusters — " + "; ".join(parts) + "."
