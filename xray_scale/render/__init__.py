"""``xray-scale render``: figures and GIFs of a store's images.

Which images (:mod:`.selection`), what each panel shows (:mod:`.panels`: a stored map, or one
recomputed by the run's own dispatch), the figures (:mod:`.figures`), follow-up GIFs
(:mod:`.gif`), and :func:`render_store`, which writes them all (:mod:`.render`). What they
read from the store besides its maps is in :mod:`.stored`. ``xray-scale report``, one HTML
page of a whole run, is :func:`.report.write_report`: each module is named after its command.
"""

from ..errors import SelectionError
from ..store.describe import failure_reason
from .figures import (
    FORMATS,
    failures_figure,
    grid_figure,
    histogram_figure,
    intensity_summary_figure,
    mask_fraction_figure,
    render_grid,
    save_figure,
)
from .gif import GifResult, render_gif
from .panels import DEFAULT_PANELS, SOURCES, Panel, parse_panel
from .render import RenderReport, render_store
from .selection import Selection, select_images

__all__ = [
    "DEFAULT_PANELS",
    "FORMATS",
    "SOURCES",
    "GifResult",
    "Panel",
    "RenderReport",
    "Selection",
    "SelectionError",
    "failure_reason",
    "failures_figure",
    "grid_figure",
    "histogram_figure",
    "intensity_summary_figure",
    "mask_fraction_figure",
    "parse_panel",
    "render_gif",
    "render_grid",
    "render_store",
    "save_figure",
    "select_images",
]
