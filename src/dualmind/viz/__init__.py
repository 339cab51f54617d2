"""Look inside the two heads: logit lens, attention and cross-attention maps, activation norms,
and how far an adapted core moved, as one offline HTML report (``dualmind viz``)."""

from dualmind.viz.load import VizError
from dualmind.viz.report import write_report

__all__ = ["VizError", "write_report"]
