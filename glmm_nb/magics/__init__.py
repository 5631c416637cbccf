"""``%%glmm`` / ``%glmm`` magics — the only module of glmm_nb that imports IPython.

``%load_ext glmm_nb`` calls :func:`load_ipython_extension`. Settings are traitlets:
``%config GlmmMagic.family = "poisson"``, ``GlmmMagic.short_errors = False`` for tracebacks.
"""

from __future__ import annotations

from ..errors import GLMMError
from .args import ArgError, clean_body, expand_names, help_text, parse_line
from .run import MagicOutput, run_magic

__all__ = ["load_ipython_extension", "make_magics_class"]


def make_magics_class():
    from IPython.core.error import UsageError
    from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
    from traitlets import Bool, Int, Unicode

    @magics_class
    class GlmmMagic(Magics):
        family = Unicode("binomial", help="default family").tag(config=True)
        link = Unicode("", help="default link ('' = the family's canonical link)").tag(config=True)
        method = Unicode("laplace", help="default method: laplace or agq").tag(config=True)
        nagq = Int(1, help="default number of quadrature nodes").tag(config=True)
        reml = Bool(True, help="REML for gaussian models").tag(config=True)
        data = Unicode("", help="default data frame name").tag(config=True)
        short_errors = Bool(True, help="one-line errors for analyst mistakes").tag(config=True)

        def _defaults(self) -> dict:
            return {"family": self.family, "link": self.link or None, "method": self.method,
                    "nagq": self.nagq, "reml": self.reml, "data": self.data or None}

        @no_var_expand  # braces are ours to read (expand_names), not IPython's to evaluate
        @line_cell_magic
        def glmm(self, line, cell=None):
            try:
                args = parse_line(line, cell=cell is not None)
                if cell is not None:
                    formula = expand_names(clean_body(cell), self.shell.user_ns)
                else:
                    formula = expand_names(args.formula, self.shell.user_ns) if args.formula else None
                out = run_magic(args, formula, self.shell.user_ns, self._defaults())
            except (GLMMError, ArgError) as exc:
                if not self.short_errors:
                    raise
                # fails the cell (Run All stops) with one line and no traceback
                raise UsageError(f"glmm: {exc}") from None
            if cell is None:
                return out.result
            if not args.quiet:
                from IPython.display import display

                display(out)
            return None

    GlmmMagic.glmm.__doc__ = help_text()
    return GlmmMagic


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(make_magics_class())


__all__ += ["MagicOutput"]
