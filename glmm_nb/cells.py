"""What the front ends share: the ``%%glmm`` cell text for a set of choices (the magics' docs
and the widget) and the check of a dispersion model's options (magics, CLI, widget)."""

from __future__ import annotations

from .errors import ModelError
from .families import family_names, get_family

__all__ = ["cell_text", "takes_dispformula", "check_disp_options"]


def takes_dispformula(family) -> bool:
    """Whether a family has a dispersion a ``dispformula`` can model (gaussian sigma, NB theta …)."""
    fam = get_family(family)
    return bool(fam.profiled_lmm or fam.n_dispersion)


def check_disp_options(family, dispformula: str | None, reml: bool | None, flag: str = "--dispformula",
                       ml: str = "add --ml") -> None:
    """Refuse, naming the front end's own option, a dispersion model the fit would refuse: a
    family without a dispersion, or a gaussian one by REML (glmmTMB fits it by ML)."""
    if dispformula is None:
        return
    if not takes_dispformula(family):
        names = ", ".join(n for n in family_names() if takes_dispformula(n))
        raise ModelError(f"{flag} needs a family with a dispersion parameter ({names}), not {get_family(family).name}")
    if get_family(family).profiled_lmm and reml is not False:
        raise ModelError(f"a gaussian model with {flag} is fitted by maximum likelihood (as glmmTMB): {ml}")


def cell_text(name: str | None, data: str, formula: str, family: str, link: str | None, method: str,
              nagq: int, reml: bool | None = None, report: str | None = None, weights: str | None = None,
              ziformula: str | None = None, hurdle: bool = False, ordered: str | None = None,
              dispformula: str | None = None) -> str:
    """The %%glmm cell equivalent to a set of choices (used by the model builder)."""
    import shlex

    parts = ["%%glmm"]
    if name:
        parts.append(name)
    parts += ["--data", data, "--family", family]
    if link:
        parts += ["--link", link]
    if method != "laplace":
        parts += ["--method", method, "--nagq", str(nagq)]
    if get_family(family).profiled_lmm and reml is False:
        parts.append("--ml")
    if weights:
        parts += ["--weights", shlex.quote(weights)]
    if ziformula:
        parts += ["--ziformula", shlex.quote(ziformula)]
    if hurdle:
        parts.append("--hurdle")
    if dispformula:
        parts += ["--dispformula", shlex.quote(dispformula)]
    if ordered:
        parts += ["--ordered", shlex.quote(ordered)]
    if report:
        parts += ["--report", report]
    return " ".join(parts) + "\n" + formula
