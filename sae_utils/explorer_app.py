"""The explorer's ipywidgets front end (tooling): sliders over the atlas grid, the views of ``explorer.py``.

``explore()`` in a notebook shows it. Every control change calls ``redraw``; a setting seen before comes
from the cache, a new one from its atlas entry (no training). ``snapshot()`` is a static picture of the
current views, for places where widgets cannot run (a notebook opened without a kernel).
"""
from __future__ import annotations

import html
import io
import time

import numpy as np
import PIL.Image

from .explorer import DIGIT_SETS, Explorer, View, check_digit_set, make_setting
from .families import FAMILIES
from .plots import feature_tile_corners
from .checks import check_int

CODE_NAMES = {"relu": "ReLU", "topk": "TopK"}  # how the activations are written on the buttons


def numbers_rows(view: View) -> list[tuple[str, str]]:
    """The metrics of ``view`` as (name, value) text pairs, for the table and the snapshot."""
    m = view.metrics
    active = FAMILIES[view.setting.family].active_threshold
    return [
        ("setting", view.setting.label()),
        ("test BCE per pixel", f"{m['bce']:.4f}"),
        ("units carrying 90 % of a digit's code mass (k90)", f"{m['units_for_mass']:.1f} (mean over test digits)"),
        ("L0: units not exactly zero per digit",
         "— (a sigmoid is almost never exactly 0)" if m.get("l0") is None else f"{m['l0']:.1f}"),
        (f"active units per digit (code > {active:g})", f"{m['active_units_per_digit']:.1f}"),
        (f"units never active (code > {active:g})", f"{100 * m['dead_fraction']:.1f} %"),
        ("mean activation", f"{m['mean_activation']:.4f}"),
        ("pixel variance unexplained (FVU)", f"{100 * m['fraction_variance_unexplained']:.1f} %"),
        ("model", view.source),
    ]


def numbers_html(view: View) -> str:
    """The metrics of ``view`` as a small HTML table (class sae-numbers-table)."""
    cells = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k, quote=False)}</th>"
                    f"<td>{html.escape(v, quote=False)}</td></tr>" for k, v in numbers_rows(view))
    return f"<table class='sae-numbers-table'>{cells}</table>"


def never_active_note(view: View) -> str:
    """"; n of 64 never active (grey)" when some of the drawn units are active on no test digit, else ""."""
    n = int(np.sum(view.feature_frequency == 0))
    return f"; {n} of {len(view.feature_frequency)} never active (grey)" if n else ""


def tile_label(unit: int, frequency: float) -> str:
    """The label of one feature tile: the unit and the share of test digits it is active on, "72: 6.7%"."""
    return f"{unit}: {100 * frequency:.1f}%"


def features_title(view: View) -> str:
    return (f"<b>What the 64 most often active units draw</b> (decoder weights, most often active first; one colour "
            f"scale, red +, blue −, saturating at ±{view.features_scale:.2f}{never_active_note(view)})")


class ExplorerApp:
    """The widgets of an ``Explorer``: display the app (or ``app.widget``) in a notebook."""

    def __init__(self, explorer: Explorer | None = None):
        import ipywidgets as w

        self.explorer = explorer if explorer is not None else Explorer()
        self.seconds = float("nan")  # how long the last redraw took
        self._holding = False
        self.penalty = w.ToggleButtons(options=[(f"{f.name.upper()} ({CODE_NAMES.get(f.activation, f.activation)} codes)",
                                                 f.name) for f in FAMILIES.values()])
        self.sliders = {}
        for fam in FAMILIES.values():
            for h in fam.hyperparameters:
                self.sliders[h.name] = w.SelectionSlider(
                    options=[(f"{g:g}", g) for g in h.grid], value=h.reference, continuous_update=False,
                    description=f"{h.symbol} ({h.label})",
                    style={"description_width": "9em"}, layout=w.Layout(width="34em"))
        self.digits = w.ToggleButtons(options=[(f"{name} of each class", name) for name in DIGIT_SETS],
                                      style={"button_width": "11em"})
        self.reference = w.Button(description="reference setting", icon="undo", button_style="info",
                                  layout=w.Layout(width="14em"))
        self.message = w.HTML()
        natural_size = {"format": "png", "layout": w.Layout(align_self="flex-start")}
        self.reconstructions = w.Image(**natural_size)
        self.features = w.Image(**natural_size)
        self.statistics = w.Image(**natural_size)
        self.numbers = w.HTML()
        self.features_header = w.HTML()
        self.unit = w.Dropdown(description="unit", style={"description_width": "9em"}, layout=w.Layout(width="34em"))
        self.dashboard = w.Image(**natural_size)
        self.dashboard.add_class("sae-dashboard")
        self.unit.observe(lambda _change: self.redraw_dashboard(), names="value")
        for name in ("reconstructions", "features", "statistics", "numbers"):
            getattr(self, name).add_class(f"sae-{name}")  # for tests/test_browser.py
        for control in (self.penalty, self.digits, *self.sliders.values()):
            control.observe(lambda _change: self.redraw(), names="value")
        self.reference.on_click(lambda _button: self.to_reference())
        self.widget = self._layout(w)
        self.widget.add_class("sae-explorer")
        self.redraw()

    def _layout(self, w):
        title = w.HTML("<b>Sparse autoencoder explorer.</b> Every setting is a model trained with the full "
                       "reference recipe (20 epochs on all 60,000 training digits), read from the atlas.")
        label = w.HTML("<div style='text-align:right;padding-right:8px'>family</div>", layout=w.Layout(width="9em"))
        digits_label = w.HTML("<div style='text-align:right;padding-right:8px'>test digits</div>",
                              layout=w.Layout(width="9em"))
        controls = w.VBox([w.HBox([label, self.penalty, self.reference]), *self.sliders.values(),
                           w.HBox([digits_label, self.digits])])
        views = w.HBox([
            w.VBox([w.HTML("<b>Test digits (top) and their reconstructions (bottom)</b>"), self.reconstructions,
                    w.HTML("<b>Numbers on the 10,000 test digits</b>"), self.numbers]),
            w.VBox([self.features_header, self.features]),
        ])
        dashboard = w.VBox([w.HTML("<b>Feature dashboard</b>: pick one of the 64 most often active units to "
                                   "see what it draws, its top 9 test digits and how strongly it fires"),
                            self.unit, self.dashboard])
        return w.VBox([title, controls, self.message, views, self.statistics, dashboard])

    def _repr_mimebundle_(self, **kwargs):
        """Display as the widget; where widgets cannot be shown, as a line saying so."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if bundle:
            bundle["text/plain"] = ("Sparse autoencoder explorer (interactive widgets): run the notebook's "
                                    "cells to use it.")
        return bundle

    def setting(self):
        """The setting the controls show."""
        return make_setting(self.penalty.value, **{name: s.value for name, s in self.sliders.items()})

    def set(self, **values) -> None:
        """Set several controls at once (penalty, digits, or a hyperparameter's name), then redraw once."""
        unknown = set(values) - {"penalty", "digits", *self.sliders}
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; the controls are penalty, digits, "
                             f"{', '.join(self.sliders)}")
        self._holding = True
        try:
            for name, value in values.items():
                control = self.sliders.get(name) or getattr(self, name)
                try:
                    control.value = value
                except Exception as err:  # traitlets' TraitError: not one of the options
                    raise ValueError(f"{name} must be one of {[v for _, v in control.options]}, "
                                     f"got {value!r}") from err
        finally:
            self._holding = False
        self.redraw()

    def to_reference(self) -> None:
        """The reference button: every hyperparameter back at its reference value."""
        self.set(**{h.name: h.reference for fam in FAMILIES.values() for h in fam.hyperparameters})

    def redraw(self) -> None:
        """Show the setting the controls describe."""
        if self._holding:
            return
        start = time.perf_counter()
        self._enable_relevant_sliders()
        view = self.explorer.view(self.setting())
        self.reconstructions.value = view.reconstructions[check_digit_set(self.digits.value)]
        self.features.value = view.features_png
        self.features_header.value = features_title(view)
        self.statistics.value = view.statistics_png
        self.numbers.value = numbers_html(view)
        self._show_units(view)
        self._say("")
        self.seconds = time.perf_counter() - start

    def _show_units(self, view: View) -> None:
        """The unit menu of ``view``'s stored units, keeping the position picked, and its dashboard."""
        rank = self.unit.value or 0
        self._holding = True
        try:
            self.unit.options = [(f"unit {u} (active on {100 * f:.1f}% of test digits)", i)
                                 for i, (u, f) in enumerate(zip(view.feature_units, view.feature_frequency))]
            self.unit.value = rank
        finally:
            self._holding = False
        self.redraw_dashboard()

    def redraw_dashboard(self) -> None:
        """Show the dashboard of the unit the menu names."""
        if not self._holding and self.unit.value is not None:
            self.dashboard.value = self.explorer.dashboard_png(self.setting(), self.unit.value)

    def snapshot(self, colors: int | None = 256) -> bytes:
        """A static picture of the explorer's current views and numbers, as PNG bytes: on the left the
        reconstructions, the numbers and the unit statistics, on the right the features with their colour
        bar; each picture at its own pixel size (no rescaling). ``colors``: the palette size the PNG is
        quantised to (default 256, a small file); None keeps every colour (smooth colour bars)."""
        if colors is not None:
            colors = check_int("colors", colors, low=2)
        import matplotlib.pyplot as plt

        from .files import figure_png

        view = self.explorer.view(self.setting())
        pngs = {"reconstructions": self.reconstructions.value, "features": self.features.value,
                "statistics": self.explorer.statistics_png(self.setting(), title=False, dpi=100)}
        pictures = {name: np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB")) for name, png in pngs.items()}
        (h1, w1), (h2, w2), (h3, w3) = (pictures[n].shape[:2] for n in ("reconstructions", "features", "statistics"))
        rows = numbers_rows(view)
        text_h, title_h, caption_h, gap, bar_w = 17 * len(rows) + 10, 44, 50, 24, 70
        left_w = max(w1, w3, 600)                       # left column: reconstructions, numbers, statistics
        width = left_w + gap + w2 + bar_w + 2 * gap
        left_h = caption_h + h1 + gap + text_h + h3
        height = title_h + max(left_h, caption_h + h2) + gap
        dpi = 100
        fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)

        def place(name, x, y_top, w, h, caption=""):
            ax = fig.add_axes((x / width, (height - y_top - h) / height, w / width, h / height))
            ax.imshow(pictures[name], interpolation="nearest")
            ax.set_axis_off()
            if caption:
                ax.set_title(caption, fontsize=9)
            return ax

        place("reconstructions", gap, title_h + caption_h, w1, h1, "test digits (top) and their reconstructions (bottom)")
        text_top = title_h + caption_h + h1 + gap
        fig.text(gap / width, 1 - text_top / height, "\n".join(f"{k}: {v}" for k, v in rows), va="top",
                 fontsize=9, linespacing=1.45)
        place("statistics", gap, text_top + text_h, w3, h3)
        features_x = gap + left_w + gap
        features_ax = place("features", features_x, title_h + caption_h, w2, h2,
                            f"decoder images of the 64 most often active units, most often active first\n"
                            f"(tile: unit: % of test digits it is active on)\n"
                            f"red +, blue −, saturating at ±{view.features_scale:.2f}{never_active_note(view)}")
        corners = feature_tile_corners(len(view.feature_units), w2, h2)
        for (x, y), unit, frequency in zip(corners, view.feature_units, view.feature_frequency):
            features_ax.text(x + 1, y + 1, tile_label(int(unit), float(frequency)), fontsize=5.5, va="top",
                             bbox={"facecolor": "white", "alpha": 0.7, "pad": 0.3, "linewidth": 0})
        bar_ax = fig.add_axes(((features_x + w2 + 10) / width, (height - title_h - caption_h - h2) / height,
                               14 / width, h2 / height))
        scale = view.features_scale
        fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(-scale, scale), cmap="bwr"), cax=bar_ax,
                     extend="both").set_label("decoder weight", fontsize=8)
        bar_ax.tick_params(labelsize=7)
        fig.suptitle(f"Sparse autoencoder explorer — {view.setting.label()}", fontsize=12,
                     y=1 - 12 / height, va="top")
        png = figure_png(fig, dpi=dpi, colors=colors)
        plt.close(fig)
        return png

    def _enable_relevant_sliders(self) -> None:
        used = {h.name for h in FAMILIES[self.penalty.value].hyperparameters}
        for name, slider in self.sliders.items():
            slider.disabled = name not in used

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#444"
        self.message.value = f"<span class='sae-message' style='color:{color}'>{html.escape(text)}</span>" if text else ""


_PICTURE_APPS: dict = {}  # id(explorer) or None -> the hidden ExplorerApp that show_snapshot draws with


def show_snapshot(dashboard_rank: int | None = None, explorer: Explorer | None = None, **setting) -> list[bytes]:
    """Display the explorer as static pictures, for a notebook opened without a kernel: the full-colour
    ``snapshot(colors=None)`` of the explorer at the reference with ``setting`` applied (keywords as in
    ``ExplorerApp.set``: penalty, digits, rho, beta, lam, k; none: the KL reference), then, if
    ``dashboard_rank`` is an integer, the dashboard of the unit at that rank among the 64 stored units
    (0: the most often active). Draws with one hidden ``ExplorerApp`` per explorer, built on the first call and
    reused; an app shown with ``explore()`` is not changed. Returns the PNG bytes displayed."""
    from IPython.display import Image, display

    key = None if explorer is None else id(explorer)
    if key not in _PICTURE_APPS:
        _PICTURE_APPS[key] = ExplorerApp(explorer)
    app = _PICTURE_APPS[key]
    app.set(penalty="kl", **{h.name: h.reference for fam in FAMILIES.values() for h in fam.hyperparameters})
    if setting:
        app.set(**setting)
    pngs = [app.snapshot(colors=None)]
    if dashboard_rank is not None:
        pngs.append(app.explorer.dashboard_png(app.setting(), check_int("dashboard_rank", dashboard_rank, low=0)))
    for png in pngs:
        display(Image(png))
    return pngs


def controls_state(app: ExplorerApp) -> dict:
    """What the controls of ``app`` show, as plain data: "family" (the chosen family's button text),
    "families" (every family button's text), "digits" and "digit sets" (the same for the digit toggle), and
    "sliders", one dict per slider: "label" (its description), "options" (the grid values as the readout
    writes them), "value" (the readout now) and "enabled" (False for the sliders of the other families)."""
    return {"family": app.penalty.label, "families": [text for text, _ in app.penalty.options],
            "digits": app.digits.label, "digit sets": [text for text, _ in app.digits.options],
            "sliders": [{"label": s.description, "options": [text for text, _ in s.options], "value": s.label,
                         "enabled": not s.disabled} for s in app.sliders.values()]}


def controls_png(app: ExplorerApp) -> bytes:
    """A static picture of the controls of ``app`` as they stand (``controls_state``), as PNG bytes: the
    family buttons (the chosen one filled) and the reference button, one slider per hyperparameter with a
    tick at each grid value, its value labelled and the handle at the current one (greyed when it belongs
    to another family), then the digit-set buttons. For a notebook opened without a kernel."""
    import matplotlib.pyplot as plt

    from .files import figure_png

    state = controls_state(app)
    rows = len(state["sliders"]) + 2
    fig = plt.figure(figsize=(9.5, 0.5 * rows + 0.9), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 95)
    ax.set_ylim(rows + 0.3, -1.5)
    ax.text(95 / 2, -1.05, "The explorer's controls, as they stand (a picture: run the notebook to move them)",
            ha="center", va="center", fontsize=11)
    ax.set_axis_off()
    chosen, plain = {"facecolor": "#2196f3", "edgecolor": "#2196f3"}, {"facecolor": "#eeeeee", "edgecolor": "#bbbbbb"}

    def buttons(y, title, texts, picked, x=15, width=19):
        ax.text(x - 1, y, title, ha="right", va="center", fontsize=10)
        for i, text in enumerate(texts):
            style = chosen if text == picked else plain
            ax.add_patch(plt.Rectangle((x + i * (width + 1), y - 0.32), width, 0.64, **style))
            ax.text(x + i * (width + 1) + width / 2, y, text, ha="center", va="center", fontsize=9,
                    color="white" if text == picked else "black")
        return x + len(texts) * (width + 1)

    end = buttons(0, "family", state["families"], state["family"])
    ax.add_patch(plt.Rectangle((end + 1, -0.32), 15, 0.64, facecolor="#00bcd4", edgecolor="#00bcd4"))
    ax.text(end + 8.5, 0, "↺ reference setting", ha="center", va="center", fontsize=9, color="white")
    for y, slider in enumerate(state["sliders"], start=1):
        colour = "black" if slider["enabled"] else "#aaaaaa"
        ax.text(14, y, slider["label"], ha="right", va="center", fontsize=10, color=colour)
        xs = np.linspace(16, 70, len(slider["options"]))
        ax.plot([xs[0], xs[-1]], [y, y], color=colour, linewidth=2, solid_capstyle="round")
        for x, text in zip(xs, slider["options"]):
            ax.plot([x, x], [y - 0.1, y + 0.1], color=colour, linewidth=1)
            ax.text(x, y + 0.4, text, ha="center", va="center", fontsize=7, color=colour)
        handle = xs[slider["options"].index(slider["value"])]
        ax.plot(handle, y, "o", markersize=11, color="#2196f3" if slider["enabled"] else "#cccccc",
                markeredgecolor=colour)
        ax.text(73, y, slider["value"], ha="left", va="center", fontsize=10, color=colour)
    buttons(rows - 1, "test digits", state["digit sets"], state["digits"])
    ax.text(95 / 2, rows - 0.1, "grey: the sliders of the other families (off while this family is chosen)",
            ha="center", va="center", fontsize=8, color="#666666")
    png = figure_png(fig, dpi=100, colors=64)
    plt.close(fig)
    return png


def explore(**kwargs) -> ExplorerApp:
    """Build the explorer and display it (in a notebook); returns the app for programmatic control."""
    from IPython.display import display

    app = ExplorerApp(**kwargs)
    display(app)
    return app
