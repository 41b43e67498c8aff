"""Charts drawn once per run: a section notebook keeps the PNG of each chart it shows in the run
directory, and the report, showing the same evidence, reuses it instead of drawing it again
(drawing is most of the report notebook's time, and the report is the last step of a run).

Inside ``charts_kept_in(folder)``, ``drawn(draw, *args)`` returns the chart's PNG (``ChartPNG``);
outside it, the figure itself. The chart is drawn from its arguments as JSON (what the evidence file
holds), so the section notebook and the report draw from the same values, and the file's name is a
hash of everything that decides its pixels: that JSON, the drawing function, the source of its module
and of ``report/charts.py``, matplotlib's version and its current rcParams (a notebook may change the
style). Other data, code, matplotlib or style: another name; a stale picture is never shown. Arguments
that are not plain JSON (NaN, arrays) are drawn every time.
Files are replaced atomically (two kernels may draw at once) and read with a size cap; a file that is
not a PNG is drawn again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CHARTS_DIR_NAME", "ChartPNG", "charts_kept_in", "drawn", "chart_png"]

CHARTS_DIR_NAME = "charts"  # in a run directory
MAX_PNG_BYTES = 8 * 1024 * 1024  # a chart is 10-50 KB; a bigger file is not ours
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FOLDER: ContextVar[Path | None] = ContextVar("stability_charts_folder", default=None)


@dataclass(frozen=True)
class ChartPNG:
    """A chart already drawn, as PNG."""

    png: bytes


@contextmanager
def charts_kept_in(folder: str | Path | None) -> Iterator[None]:
    """Within the block, ``drawn`` keeps and reuses charts in ``folder`` (None: draws, keeps nothing)."""
    token = _FOLDER.set(Path(folder) if folder is not None else None)
    try:
        yield
    finally:
        _FOLDER.reset(token)


def drawn(draw: Callable[..., Any], *args: Any) -> Any:
    """``draw(*args)``: a matplotlib figure outside ``charts_kept_in``; inside, its PNG, read from the
    folder when the same chart was drawn before, else drawn and kept there."""
    folder = _FOLDER.get()
    if folder is None:
        return draw(*args)
    try:
        text = json.dumps(args, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):  # not plain JSON: drawn as given, not kept
        return ChartPNG(chart_png(draw(*args)))
    path = folder / f"{_chart_key(draw, text)}.png"
    png = _read_png(path)
    if png is None:
        png = chart_png(draw(*json.loads(text)))
        _write_atomic(path, png)
    return ChartPNG(png)


def chart_png(part: Any) -> bytes:
    """The PNG of a chart part: kept bytes as they are, a figure drawn (and let go by pyplot, if a view
    made it there: the inline backend would show it a second time)."""
    if isinstance(part, ChartPNG):
        return part.png
    from .charts import png_bytes

    png = png_bytes(part)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(part)
    return png


def _chart_key(draw: Callable[..., Any], args_json: str) -> str:
    name = f"{draw.__module__}.{draw.__qualname__}"
    digest = hashlib.sha256(_code_version(draw.__module__).encode())
    digest.update(b"\0" + name.encode() + b"\0" + args_json.encode() + b"\0" + _style().encode())
    return digest.hexdigest()[:40]


def _style() -> str:
    """matplotlib's rcParams as they are now, but the backend (it does not change a PNG's pixels)."""
    import matplotlib

    params = matplotlib.rcParams
    # dict's own items: RcParams.__getitem__ checks each key (and resolves "backend"), 30% slower.
    items = dict.items(params) if isinstance(params, dict) and dict.__len__(params) else params.items()
    return repr(sorted((key, value) for key, value in items if key != "backend"))


@functools.cache
def _code_version(module_name: str) -> str:
    import matplotlib

    from . import charts

    sources = b""
    for module in (sys.modules.get(module_name), charts):
        source = getattr(module, "__file__", None)
        sources += Path(source).read_bytes() if source else module_name.encode()
    return f"{matplotlib.__version__}:{hashlib.sha256(sources).hexdigest()}"


def _read_png(path: Path) -> bytes | None:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PNG_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_PNG_BYTES and data.startswith(_PNG_SIGNATURE) else None


def _write_atomic(path: Path, data: bytes) -> None:
    """Best effort: a chart that cannot be kept is still shown, and drawn again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
