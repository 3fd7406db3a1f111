"""One HTML page for a whole run: what ran, what failed, what QC flagged.

:func:`write_report` writes ``out_dir/index.html`` and everything it shows
beside it, so the page opens from the disk with no server and no network (no
script, no external font or stylesheet)::

    index.html              the page
    plots/*.png             the dataset plots (render's summary figures)
    thumbs/<image>.png      gallery thumbnails (the store's previews, else the source)
    grids/<image>.png       the comparison grid of each gallery image (linked)
    gifs/patient_<id>.gif   a few patients' follow-ups
    csv/<flag>.csv          the full list of each QC flag, the groups, the outliers,
                            the failures

Counts are complete; galleries are capped (``gallery`` images per flag,
``groups`` groups), so the folder stays small for 112,120 images.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..config import load_config
from ..io.decode import decode_image, unpad
from ..store.access import open_store
from ..store.describe import failure_reason
from ..store.export import store_table
from ..store.layout import QC_FLAGS, STATUS_FAILED, STATUS_OK
from ..store.metadata import RunMetadata
from .figures import (
    failures_figure,
    intensity_summary_figure,
    mask_fraction_figure,
    render_grid,
    save_figure,
)
from .gif import render_gif

__all__ = ["ReportResult", "write_report"]

_THUMB = 160
"""Longer side of a gallery thumbnail, in pixels."""
_NO_QC = "no QC in this store (it was made before QC existed, or with qc.enabled = false)"


@dataclass
class ReportResult:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    page : Path
        ``out_dir/index.html``.
    files : list of Path
        Every other file written (plots, thumbnails, grids, GIFs, CSVs).
    notes : list of str
        One line per thing left out (a thumbnail whose source is gone, a plot).
    """

    page: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Page:
    """Collects the files and notes of one report while its HTML is built."""

    def __init__(self, store: Path, group, table, out: Path, grid_dpi: float):
        self.store, self.group, self.table, self.out = store, group, table, out
        self.stored = RunMetadata.from_group(group)
        self.grid_dpi = grid_dpi
        self.result = ReportResult(out / "index.html")
        self._thumbs: dict[int, str | None] = {}
        self._grids: dict[int, str | None] = {}

    def name(self, index: int) -> str:
        path = Path(str(self.table.at[index, "path"])).name
        return path[:-4] if path.lower().endswith(".png") else path

    def file_stem(self, index: int) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name(index))
        return f"{index:06d}_{safe}"

    def thumb(self, index: int) -> str | None:
        """Relative path of the image's thumbnail, written once; None when unavailable."""
        if index not in self._thumbs:
            pixels = self._thumb_pixels(index)
            if pixels is None:
                self._thumbs[index] = None
            else:
                path = self.out / "thumbs" / f"{self.file_stem(index)}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                self.result.files.append(path)
                self._thumbs[index] = path.relative_to(self.out).as_posix()
        return self._thumbs[index]

    def _thumb_pixels(self, index: int) -> np.ndarray | None:
        if "previews" in self.group:
            return _shrink(np.asarray(self.group["previews"][index, 0]))
        config = load_config(self.stored.config)
        decoded = decode_image(
            str(self.table.at[index, "path"]),
            shape=tuple(self.stored.image_shape),
            dtype=self.stored.pixel_dtype,
            **config.decode_options(),
        )
        if not decoded.ok:
            self.result.notes.append(f"no thumbnail of {self.name(index)}: {decoded.error}")
            return None
        return _shrink(_to_gray8(unpad(decoded.pixels, decoded)))

    def grid(self, index: int) -> str | None:
        """Relative path of the image's comparison grid, drawn once; None when it failed."""
        if index not in self._grids:
            base = self.out / "grids" / self.file_stem(index)
            paths, notes = render_grid(self.group, index, base, dpi=self.grid_dpi)
            self.result.files += paths
            self.result.notes += [f"{self.name(index)}: {note}" for note in notes]
            self._grids[index] = paths[0].relative_to(self.out).as_posix() if paths else None
        return self._grids[index]

    def figure(self, tile: str, index: int) -> str:
        """One gallery tile: the thumbnail linked to the grid, with a caption."""
        thumb, grid = self.thumb(index), self.grid(index)
        caption = f"{html.escape(self.name(index))}<br>{tile}"
        if thumb is None:
            body = '<div class="missing">source unavailable</div>'
        else:
            alt = html.escape(self.name(index))
            body = f'<img src="{thumb}" alt="{alt}">'
        if grid is not None:
            body = f'<a href="{grid}">{body}</a>'
        return f"<figure>{body}<figcaption>{caption}</figcaption></figure>"

    def csv(self, name: str, rows) -> str:
        path = self.out / "csv" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(path, index=False)
        self.result.files.append(path)
        return path.relative_to(self.out).as_posix()

    def plot(self, name: str, figure) -> str | None:
        if figure is None:
            self.result.notes.append(f"plot {name} left out: nothing to draw")
            return None
        (path,) = save_figure(figure, self.out / "plots" / name)
        self.result.files.append(path)
        return path.relative_to(self.out).as_posix()


def _to_gray8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return (pixels >> 8).astype(np.uint8)


def _shrink(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape
    scale = min(1.0, _THUMB / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{title}</h2>{body}</section>'


def _run_section(page: _Page) -> str:
    stored = page.stored
    runs = list(stored.runs)
    processed = sum(r["processed"] for r in runs)
    elapsed = sum(r["elapsed_s"] for r in runs)
    rate = f"{processed / elapsed:.1f} img/s" if elapsed else "n/a"
    inputs = ", ".join(str(i) for i in stored.inputs) or "n/a"
    height, width = stored.image_shape
    rows = [
        ("store", str(page.store)),
        ("inputs", inputs),
        ("images", f"{len(page.table)} of {height} x {width} {stored.pixel_dtype}"),
        ("engine", f"{stored.engine} (compat: {stored.compat or 'none'})"),
        ("created", stored.created),
        ("time", f"{elapsed:.1f} s in {len(runs)} run(s), {rate}"),
        ("xray-scale", stored.version),
    ]
    cells = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    config = html.escape(json.dumps(stored.config, indent=1))
    return (
        f'<section id="run"><h2>The run</h2><table>{cells}</table>'
        f"<details><summary>config</summary><pre>{config}</pre></details></section>"
    )


def _status_section(page: _Page) -> str:
    table = page.table
    counts = table["status"].value_counts().to_dict()
    items = "".join(
        f"<li>{html.escape(str(s))}: <b>{n}</b></li>" for s, n in sorted(counts.items())
    )
    failed = table[table["status"] == STATUS_FAILED]
    reasons = Counter(failure_reason(str(e)) for e in failed["error"])
    rows = "".join(
        f"<tr><td>{html.escape(r)}</td><td>{n}</td></tr>" for r, n in reasons.most_common()
    )
    part = f'<section id="status"><h2>Images by status</h2><ul>{items}</ul>'
    if len(failed):
        link = page.csv("failures", failed[["image", "path", "error"]])
        part += (
            f"<h3>Failures by reason</h3><table><tr><th>reason</th><th>images</th></tr>"
            f'{rows}</table><p><a href="{link}">all {len(failed)} failures (CSV)</a></p>'
        )
    return part + "</section>"


def _plots_section(page: _Page) -> str:
    figures = {
        "intensity": intensity_summary_figure(page.group),
        "mask_fraction": mask_fraction_figure(page.group),
        "failures": failures_figure(page.group),
    }
    images = []
    for name, figure in figures.items():
        path = page.plot(name, figure)
        if path is not None:
            images.append(f'<img class="plot" src="{path}" alt="{name}">')
    return f'<section id="plots"><h2>The dataset</h2>{"".join(images)}</section>'


def _flag_section(page: _Page, ok, gallery: int) -> str:
    table = page.table
    parts = ['<section id="qc"><h2>Quality control</h2>']
    summary = "".join(
        f'<li><a href="#qc-{flag}">{flag}</a>: <b>{int(table[f"qc_{flag}"][ok].sum())}</b></li>'
        for flag in QC_FLAGS
    )
    if "qc_outlier" in table.columns:
        outliers = int(table["qc_outlier"][ok].sum())
        summary += f'<li><a href="#qc-outliers">outliers</a>: <b>{outliers}</b></li>'
    parts.append(f"<ul>{summary}</ul>")
    columns = ["image", "path", "qc_frame_fraction", "mean", "median", "p01", "p99"]
    for flag in QC_FLAGS:
        flagged = table[ok & table[f"qc_{flag}"].astype(bool)]
        link = page.csv(flag, flagged[columns])
        tiles = "".join(
            page.figure(f"frame {row.qc_frame_fraction:.0%}" if flag == "framed" else "", i)
            for i, row in zip(flagged.index[:gallery], flagged.itertuples(), strict=False)
        )
        shown = min(gallery, len(flagged))
        parts.append(
            f'<h3 id="qc-{flag}">{flag}: {len(flagged)} images</h3>'
            f'<p>showing {shown}; <a href="{link}">the full list (CSV)</a></p>'
            f'<div class="gallery">{tiles}</div>'
        )
    scored = table[ok].sort_values("qc_outlier_score", ascending=False, kind="stable")
    link = page.csv("outliers", scored[["image", "path", "qc_outlier_score", *columns[3:]]])
    if "qc_outlier" not in table.columns:  # made before qc/outlier: scores, no flags
        parts.append(
            '<h3 id="qc-outliers">Outliers</h3><p>no qc/outlier in this store (it was made '
            f'before it existed); <a href="{link}">every ok image by score (CSV)</a></p>'
        )
        return "".join(parts) + "</section>"
    flagged = scored[scored["qc_outlier"].astype(bool)]
    tiles = "".join(
        page.figure(f"score {score:.1f}", i)
        for i, score in zip(flagged.index[:gallery], flagged["qc_outlier_score"], strict=False)
    )
    parts.append(
        f'<h3 id="qc-outliers">Outliers: {len(flagged)} images</h3>'
        f"<p>showing {min(gallery, len(flagged))}, highest score first; "
        f'<a href="{link}">every ok image by score (CSV)</a></p>'
        f'<div class="gallery">{tiles}</div>'
    )
    return "".join(parts) + "</section>"


def _groups_section(page: _Page, ok, groups: int, members: int) -> str:
    table = page.table
    columns = []
    for kind, title in (("duplicate", "Duplicates"), ("near_duplicate", "Near duplicates")):
        key = f"qc_{kind}_group"
        grouped = table[ok & (table[key] >= 0)]
        sizes = grouped[key].value_counts()
        order = sorted(sizes.index, key=lambda g: (-sizes[g], g))
        link = page.csv(f"{kind}_groups", grouped[["image", "path", key]].sort_values(key))
        rows = []
        for group_id in order[:groups]:
            indices = grouped.index[grouped[key] == group_id][:members]
            tiles = "".join(page.figure("", i) for i in indices)
            rows.append(
                f'<div class="group"><p>group {group_id}: {sizes[group_id]} images</p>'
                f'<div class="gallery">{tiles}</div></div>'
            )
        columns.append(
            f'<div class="column"><h3>{title}: {len(sizes)} groups, {len(grouped)} images</h3>'
            f'<p>showing {min(groups, len(sizes))}; <a href="{link}">every group (CSV)</a></p>'
            f"{''.join(rows)}</div>"
        )
    return (
        f'<section id="groups"><h2>Copies</h2><div class="side">{"".join(columns)}</div></section>'
    )


def _gifs_section(page: _Page, ok, count: int) -> str:
    table = page.table[ok]
    patients = table[table["patient_id"].astype(str) != ""]["patient_id"].astype(str)
    sizes = patients.value_counts()
    chosen = sorted((p for p in sizes.index if sizes[p] >= 2), key=lambda p: (-sizes[p], p))
    images = []
    for patient in chosen[:count]:
        path = page.out / "gifs" / f"patient_{patient}.gif"
        result = render_gif(page.group, patient, path, max_size=256)
        page.result.notes += result.notes
        if result.path is not None:
            page.result.files.append(result.path)
            rel = result.path.relative_to(page.out).as_posix()
            images.append(
                f'<figure><img src="{rel}" alt="patient {html.escape(patient)}">'
                f"<figcaption>patient {html.escape(patient)}</figcaption></figure>"
            )
    if not images:
        return _section("gifs", "Follow-ups", "<p>no patient with two ok images</p>")
    return _section("gifs", "Follow-ups", f'<div class="gallery">{"".join(images)}</div>')


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 2px 8px; }
th { color: #555; font-weight: normal; }
.gallery { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; width: 170px; font-size: 11px; word-break: break-all; }
figure img { max-width: 160px; max-height: 160px; border: 1px solid #ccc; }
.missing { width: 160px; height: 60px; background: #eee; color: #900; padding: 4px; }
img.plot { max-width: 48%; margin: 4px; }
.side { display: flex; gap: 24px; } .column { flex: 1; min-width: 0; }
.group { border-top: 1px solid #ddd; margin-top: 6px; }
"""


def write_report(
    store: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    gallery: int = 12,
    groups: int = 8,
    group_members: int = 6,
    gifs: int = 3,
    grid_dpi: float = 60,
) -> ReportResult:
    """Write a one-page HTML report of a store into ``out_dir``.

    Parameters
    ----------
    store : path-like
        A store written by :func:`xray_scale.run`.
    out_dir : path-like
        Folder for ``index.html`` and its files (created); layout in the module docstring.
    gallery : int
        Thumbnails shown per QC flag (and outliers); the CSVs list all.
    groups, group_members : int
        Duplicate and near-duplicate groups shown, largest first, and images per group.
    gifs : int
        Patients whose follow-ups are shown as GIFs (those with the most ok images).
    grid_dpi : float
        Resolution of the comparison grids the thumbnails link to.

    Returns
    -------
    ReportResult

    Raises
    ------
    StoreError
        If ``store`` is not a store.
    ValueError
        For a negative cap.
    """
    for key, value in {"gallery": gallery, "groups": groups, "gifs": gifs}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
    if isinstance(group_members, bool) or not isinstance(group_members, int) or group_members < 1:
        raise ValueError(f"group_members must be an integer >= 1, got {group_members!r}")
    group = open_store(store)
    table = store_table(store)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = _Page(Path(store).absolute(), group, table, out, grid_dpi)
    ok = (table["status"] == STATUS_OK).to_numpy()
    sections = [_run_section(page), _status_section(page), _plots_section(page)]
    if "qc_framed" in table.columns:
        sections.append(_flag_section(page, ok, gallery))
        sections.append(_groups_section(page, ok, groups, group_members))
    else:
        sections.append(_section("qc", "Quality control", f"<p>{_NO_QC}</p>"))
    sections.append(_gifs_section(page, ok, gifs))
    title = f"xray-scale report: {html.escape(Path(store).name)}"
    page.result.page.write_text(
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        + "\n".join(sections)
        + "</body></html>\n",
        encoding="utf-8",
    )
    return page.result
