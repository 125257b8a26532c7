"""The interactive explorer: choose the penalty, move rho, beta and lam, and watch the autoencoder change.

Two layers, so the logic is testable without a browser:

- ``Explorer`` (plain Python): turns a ``Setting`` into a ``Result`` (model, test metrics, rendered
  views), training a new setting quickly (``QuickRecipe``: a few epochs on part of the training set)
  or loading the pretrained model at the reference setting, and caches every result for the session.
- ``ExplorerApp`` (ipywidgets): the controls and views; every change of a control calls ``redraw``.

Views are PNG bytes for ``ipywidgets.Image``: the inputs above their reconstructions and the feature
images are drawn as one mosaic each (one array, no matplotlib axes), so a cached setting redraws in
milliseconds; the histogram comes from ``sae_utils.plots`` and is rendered once per setting.
"""
from __future__ import annotations

import contextlib
import html
import io
import time
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import torch

from .checks import check_choice, check_int, check_number
from .data import load_mnist, prepare_images
from .files import figure_png
from .metrics import evaluate
from .families import FAMILIES
from .plots import plot_activation_histogram
from .pretrained import load_pretrained
from .train import TrainConfig, TrainingDivergedError, train

# What the sliders offer. beta and lam may also be 0 (the "penalty off" box): no sparsity pressure.
RHO_RANGE = (0.01, 0.5)
BETA_RANGE = (1e-4, 1.0)
LAM_RANGE = (1e-6, 1e-2)
REFERENCE = {"rho": 0.08, "beta": 0.005, "lam": 4e-5}
MAX_DIGITS = 20
N_FEATURES_SHOWN = 64


@dataclass(frozen=True)
class Setting:
    """One point of the explorer: the penalty and its parameters, rounded to 2 significant digits.

    Parameters the penalty does not use are None (KL: lam; L1: rho and beta), so moving the lam
    slider while KL is chosen does not count as a new setting. Build one with ``make_setting``.
    """

    penalty: str
    rho: float | None = None
    beta: float | None = None
    lam: float | None = None

    @property
    def weight(self) -> float:
        return self.beta if self.penalty == "kl" else self.lam

    @property
    def is_reference(self) -> bool:
        return self == reference_setting(self.penalty)

    def label(self) -> str:
        if self.penalty == "kl":
            return f"KL: ρ = {self.rho:g}, β = {self.beta:g}"
        return f"L1: λ = {self.lam:g}"

    def train_config(self, **recipe) -> TrainConfig:
        """The TrainConfig of this setting; ``recipe`` sets epochs, batch_size, n_hidden, seed."""
        params = {"rho": self.rho, "beta": self.beta} if self.penalty == "kl" else {"lam": self.lam}
        return TrainConfig(penalty=self.penalty, **params, **recipe)


def _two_digits(value: float) -> float:
    """Round to 2 significant digits: slider positions such as 10**-2.3 = 0.00501 become 0.005."""
    return float(f"{value:.2g}")


def make_setting(penalty: str = "kl", rho: float = REFERENCE["rho"], beta: float = REFERENCE["beta"],
                 lam: float = REFERENCE["lam"]) -> Setting:
    """Validate the control values and return the canonical ``Setting`` (see its docstring).

    rho must lie in RHO_RANGE; beta in [0, BETA_RANGE[1]]; lam in [0, LAM_RANGE[1]].
    """
    check_choice("penalty", penalty, tuple(FAMILIES))
    if penalty == "kl":
        rho = check_number("rho", rho, low=RHO_RANGE[0], high=RHO_RANGE[1])
        beta = check_number("beta", beta, low=0, high=BETA_RANGE[1])
        return Setting("kl", rho=_two_digits(rho), beta=_two_digits(beta))
    lam = check_number("lam", lam, low=0, high=LAM_RANGE[1])
    return Setting("l1", lam=_two_digits(lam))


def reference_setting(penalty: str) -> Setting:
    """The published reference setting of ``penalty``: KL rho 0.08, beta 0.005; L1 lam 4e-5."""
    return make_setting(penalty, **REFERENCE)


def parse_digits(text: str, n_test: int) -> list[int]:
    """Parse "3, 2, 1" into test-set indices; each must lie in [0, n_test - 1], 1 to MAX_DIGITS of them."""
    if not isinstance(text, str):
        raise TypeError(f"test digits must be a string of comma-separated indices, got {type(text).__name__}")
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if not 1 <= len(parts) <= MAX_DIGITS:
        raise ValueError(f"test digits: give 1 to {MAX_DIGITS} comma-separated indices, got {len(parts)}")
    indices = []
    for part in parts:
        if not (part.isascii() and part.isdigit()) or int(part) >= n_test:
            raise ValueError(f"test digits must be whole numbers from 0 to {n_test - 1}, got {part!r}")
        indices.append(int(part))
    return indices


def one_of_each_class(labels: torch.Tensor) -> list[int]:
    """Index of the first digit of each class 0-9 in ``labels`` (classes that do not occur are skipped)."""
    return [int(torch.nonzero(labels == c)[0]) for c in range(10) if bool((labels == c).any())]


@dataclass(frozen=True)
class QuickRecipe:
    """How a new setting is trained: ``epochs`` passes over the first ``train_size`` training digits.

    Small batches give more Adam steps for the same work: 300 here, which bring the KL reference to a
    test BCE of 0.093 (the pretrained model's 1,000 steps of 1,200 digits reach 0.070).
    ``threads``: torch threads while training and evaluating. One, because with other work on the two
    cores two threads wait on each other: under a load of 6, an epoch over 5,000 digits took 11-13 s
    with two threads and 0.8 s with one.
    """

    epochs: int = 2
    train_size: int = 15_000
    batch_size: int = 100
    n_hidden: int = 512
    seed: int = 0
    threads: int = 1

    def __post_init__(self):
        for name in ("epochs", "train_size", "batch_size", "n_hidden", "threads"):
            check_int(name, getattr(self, name))
        if self.batch_size > self.train_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be at most train_size ({self.train_size})")

    def describe(self) -> str:
        return f"{self.epochs} epochs on the first {self.train_size:,} training digits, batches of {self.batch_size}"


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def quick_train(setting: Setting, train_images, check_images, recipe: QuickRecipe = QuickRecipe(),
                progress: bool = True):
    """Train a model for ``setting`` with ``recipe`` (sae_utils.train); return ``(model, history)``.

    train_images: at least ``recipe.train_size`` digits; check_images: the few digits train() scores
    after every epoch (the history's test_bce), kept small because that costs time too.
    """
    config = setting.train_config(epochs=recipe.epochs, batch_size=recipe.batch_size,
                                  n_hidden=recipe.n_hidden, seed=recipe.seed)
    return train(config, train_images[:recipe.train_size], check_images, progress=progress)


@dataclass
class Result:
    """What the explorer shows for one setting. metrics: ``sae_utils.evaluate`` on the test digits."""

    setting: Setting
    model: torch.nn.Module
    metrics: dict
    source: str
    seconds: float
    features_png: bytes = field(repr=False)
    histogram_png: bytes = field(repr=False)


def to_png(array: np.ndarray, cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0, scale: int = 2) -> bytes:
    """A 2-D float array as PNG bytes, each value a ``scale`` x ``scale`` block (sharp when enlarged).

    Values are mapped linearly from [vmin, vmax] to the 256 colours of ``cmap`` and stored as a
    palette image: a third of the size of an RGBA one, which matters in the saved notebook.
    """
    levels = np.clip(np.rint((array - vmin) / (vmax - vmin) * 255), 0, 255).astype(np.uint8)
    big = np.repeat(np.repeat(levels, scale, axis=0), scale, axis=1)
    palette = np.rint(plt.get_cmap(cmap)(np.arange(256))[:, :3] * 255).astype(np.uint8)
    image = PIL.Image.frombytes("P", (big.shape[1], big.shape[0]), big.tobytes())
    image.putpalette(palette.ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def tile(images: np.ndarray, cols: int, gap: int = 2, fill: float = 0.5) -> np.ndarray:
    """(N, h, w) -> one 2-D mosaic, row by row, ``cols`` per row, ``gap`` pixels of ``fill`` between."""
    n, h, w = images.shape
    rows = -(-n // cols)
    mosaic = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), fill, dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        mosaic[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = image
    return mosaic


@torch.no_grad()
def reconstructions_png(model, images: torch.Tensor) -> bytes:
    """The digits ``images`` (N, 784) floats in a top row, the model's reconstructions below."""
    x_hat = model.reconstruct(images)
    both = torch.cat([images, x_hat]).reshape(-1, 28, 28).cpu().numpy()
    return to_png(tile(both, cols=len(images)), scale=2)


def features_png(model, n: int = N_FEATURES_SHOWN) -> bytes:
    """Encoder weights of the first ``n`` units as 28x28 images, red +, blue -, each unit scaled to its max."""
    features = model.feature_images()[:n]
    scaled = features / features.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    cols = int(np.ceil(np.sqrt(len(scaled))))
    return to_png(tile(scaled.cpu().numpy(), cols=cols, fill=0.0), cmap="bwr", vmin=-1.0, vmax=1.0)


def histogram_png(model, images: torch.Tensor, setting: Setting) -> bytes:
    """``plots.plot_activation_histogram`` of the test digits, with the target rho for KL, as PNG bytes."""
    fig = plot_activation_histogram(model, images, rho=setting.rho, title=setting.label())
    png = figure_png(fig, dpi=80)
    plt.close(fig)
    return png


class Explorer:
    """Settings -> results, computed once per session. The logic behind ``ExplorerApp``.

    test_images: the digits the numbers and histogram are computed on, test_labels their classes
    (default: the 10,000 MNIST test digits and labels); train_images: where quick training takes its
    first ``recipe.train_size`` digits from (default: the MNIST training digits). n_check: how many
    test digits train() scores after each epoch. use_pretrained: at the reference setting, load the
    shipped model (``pretrained_dir``, default pretrained/) instead of training quickly.
    """

    def __init__(self, test_images=None, train_images=None, *, test_labels=None,
                 recipe: QuickRecipe = QuickRecipe(), use_pretrained: bool = True, pretrained_dir=None,
                 n_check: int = 500):
        if test_images is None:
            test_images, test_labels = load_mnist("test")
        self.test_images = prepare_images(test_images, "test_images")
        self.test_labels = test_labels
        self.train_images = _first_digits(load_mnist("train")[0] if train_images is None else train_images,
                                          recipe.train_size)
        self.recipe = recipe
        self.use_pretrained = use_pretrained
        self.pretrained_dir = pretrained_dir
        self.check_images = self.test_images[:check_int("n_check", n_check)]
        self.cache: dict[tuple[Setting, bool], Result] = {}
        self.notes: list[str] = []

    def result(self, setting: Setting, progress: bool = False) -> Result:
        """The cached result of ``setting``, or a newly computed one (see the class docstring)."""
        if not isinstance(setting, Setting):
            raise TypeError(f"setting must be a Setting (use make_setting), got {type(setting).__name__}")
        key = self._key(setting)
        if key not in self.cache:
            self.cache[key] = self._compute(setting, pretrained=key[1], progress=progress)
        return self.cache[key]

    def is_cached(self, setting: Setting) -> bool:
        return self._key(setting) in self.cache

    def _key(self, setting: Setting) -> tuple[Setting, bool]:
        """The setting and whether its model is the pretrained one (the box can be switched off)."""
        return setting, self.use_pretrained and setting.is_reference

    def _compute(self, setting: Setting, pretrained: bool, progress: bool) -> Result:
        with torch_threads(self.recipe.threads):
            return self._compute_now(setting, pretrained, progress)

    def _compute_now(self, setting: Setting, pretrained: bool, progress: bool) -> Result:
        start = time.perf_counter()
        model, card = self._pretrained(setting) if pretrained else (None, None)
        if model is not None:
            source = f"pretrained model: {card['config']['epochs']} epochs on all 60,000 training digits"
        else:
            model, _ = quick_train(setting, self.train_images, self.check_images, self.recipe, progress)
            source = f"quick training: {self.recipe.describe()}"
        model.eval()
        config = setting.train_config(n_hidden=model.n_hidden)
        return Result(setting, model, evaluate(model, self.test_images, **config.hyperparameters()), source,
                      time.perf_counter() - start, features_png(model),
                      histogram_png(model, self.test_images, setting))

    def _pretrained(self, setting: Setting):
        try:
            return load_pretrained(setting.penalty, self.pretrained_dir)
        except (FileNotFoundError, ValueError) as err:
            self.notes.append(f"{err}; trained quickly instead")
            return None, None

    def reconstructions(self, result: Result, digits: list[int]) -> bytes:
        return reconstructions_png(result.model, self.test_images[digits])


def _first_digits(images, size: int) -> torch.Tensor:
    """The first ``size`` digits of ``images``, as given (uint8 stays uint8: train converts each batch),
    checked now rather than at the first new setting."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"train_images must be a torch.Tensor, got {type(images).__name__}")
    if len(images) < size:
        raise ValueError(f"train_images has {len(images)} digits, the recipe needs train_size = {size}")
    prepare_images(images[:size], "train_images")
    return images[:size]


def numbers_html(result: Result) -> str:
    """The metrics of ``result`` as a small HTML table (class sae-numbers-table)."""
    m, n_hidden = result.metrics, result.model.n_hidden
    rows = [
        ("setting", result.setting.label()),
        ("test BCE per pixel", f"{m['bce']:.4f}"),
        ("mean activation", f"{m['mean_activation']:.4f}"),
        ("active units per digit", f"{m['active_units_per_digit']:.1f} of {n_hidden} "
                                   f"({100 * m['active_fraction_per_digit']:.1f} %)"),
        ("dead units", f"{round(m['dead_fraction'] * n_hidden)} of {n_hidden} ({100 * m['dead_fraction']:.1f} %)"),
        ("model", f"{result.source} ({result.seconds:.1f} s)"),
    ]
    cells = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='sae-numbers-table'>{cells}</table>"


class ExplorerApp:
    """The ipywidgets front end of an ``Explorer``: display the app (or ``app.widget``) in a notebook.

    Every control change calls ``redraw``: a cached setting is redrawn at once, a new one is trained
    first (with a tqdm progress bar when ``progress``). Invalid input shows an error and keeps the views.
    """

    def __init__(self, explorer: Explorer | None = None, digits: list[int] | None = None, progress: bool = True):
        import ipywidgets as w

        self.explorer = explorer if explorer is not None else Explorer()
        self.progress = progress
        self.seconds = float("nan")  # how long the last redraw took, training included
        self._holding = False
        if digits is None:
            labels = self.explorer.test_labels
            n_test = len(self.explorer.test_images)
            digits = one_of_each_class(labels) if labels is not None else list(range(min(10, n_test)))
        slider = {"continuous_update": False, "style": {"description_width": "9em"},
                  "layout": w.Layout(width="40em")}
        self.penalty = w.ToggleButtons(options=[("KL (sigmoid codes)", "kl"), ("L1 (ReLU codes)", "l1")],
                                       tooltips=["KL(ρ ‖ ρ̂_j) summed over units, weight β",
                                                 "mean over digits of Σ_j |y_j|, weight λ"])
        self.rho = w.FloatSlider(value=REFERENCE["rho"], min=RHO_RANGE[0], max=RHO_RANGE[1], step=0.01,
                                 description="ρ (KL target)", readout_format=".2f", **slider)
        self.beta = w.FloatLogSlider(value=REFERENCE["beta"], min=np.log10(BETA_RANGE[0]),
                                     max=np.log10(BETA_RANGE[1]), step=0.1, description="β (KL weight)",
                                     readout_format=".1e", **slider)
        self.lam = w.FloatLogSlider(value=REFERENCE["lam"], min=np.log10(LAM_RANGE[0]),
                                    max=np.log10(LAM_RANGE[1]), step=0.1, description="λ (L1 weight)",
                                    readout_format=".1e", **slider)
        self.off = w.Checkbox(value=False, description="penalty off (weight 0)", indent=False)
        self.use_pretrained = w.Checkbox(value=self.explorer.use_pretrained, indent=False,
                                         description="pretrained model at the reference setting")
        self.digits = w.Text(value=", ".join(map(str, digits)), description="test digits",
                             continuous_update=False, style={"description_width": "9em"},
                             layout=w.Layout(width="32em"))
        self.reference = w.Button(description="reference setting", icon="undo", button_style="info",
                                  tooltip="KL ρ 0.08, β 0.005 / L1 λ 4e-5, with the pretrained model",
                                  layout=w.Layout(width="14em"))
        self.message = w.HTML()
        self.progress_area = w.Output()
        natural_size = {"format": "png", "layout": w.Layout(align_self="flex-start")}  # not stretched to the box
        self.reconstructions = w.Image(**natural_size)
        self.features = w.Image(**natural_size)
        self.histogram = w.Image(**natural_size)
        self.numbers = w.HTML()
        for name in ("reconstructions", "features", "histogram", "numbers"):
            getattr(self, name).add_class(f"sae-{name}")  # for tests/test_browser.py
        for control in (self.penalty, self.rho, self.beta, self.lam, self.off, self.use_pretrained, self.digits):
            control.observe(lambda _change: self.redraw(), names="value")
        self.reference.on_click(lambda _button: self.to_reference())
        self.widget = self._layout(w)
        self.widget.add_class("sae-explorer")
        self.redraw()

    def _layout(self, w):
        title = w.HTML(f"<b>Sparse autoencoder explorer.</b> New settings are trained quickly "
                       f"({self.explorer.recipe.describe()}, a few seconds) and kept for this session; "
                       "the reference setting uses the pretrained model.")
        views = w.HBox([
            w.VBox([w.HTML("<b>Test digits (top) and their reconstructions (bottom)</b>"), self.reconstructions,
                    w.HTML("<b>Numbers on the test digits</b>"), self.numbers]),
            w.VBox([w.HTML(f"<b>Features of the first {N_FEATURES_SHOWN} hidden units</b> (red +, blue −)"),
                    self.features]),
        ])
        # ToggleButtons puts its description above the buttons, so the label is a widget of its own,
        # as wide and as aligned as the sliders' descriptions.
        penalty_label = w.HTML("<div style='text-align:right;padding-right:8px'>penalty</div>",
                               layout=w.Layout(width="9em"))
        controls = w.VBox([w.HBox([penalty_label, self.penalty, self.reference]), self.rho, self.beta, self.lam,
                           w.HBox([self.off, self.use_pretrained], layout=w.Layout(margin="0 0 0 9.5em")),
                           self.digits])
        return w.VBox([title, controls, self.message, self.progress_area, views, self.histogram])

    def _repr_mimebundle_(self, **kwargs):
        """Display as the widget; where widgets cannot be shown (an untrusted or static notebook),
        as a line saying so instead of the widget's repr."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if bundle:
            bundle["text/plain"] = ("Sparse autoencoder explorer (interactive widgets): run the notebook's "
                                    "cells to use it.")
        return bundle

    def setting(self) -> Setting:
        """The setting the controls show."""
        off = self.off.value
        return make_setting(self.penalty.value, rho=self.rho.value, beta=0.0 if off else self.beta.value,
                            lam=0.0 if off else self.lam.value)

    def set(self, **values) -> None:
        """Set several controls at once (names: penalty, rho, beta, lam, off, use_pretrained, digits),
        then redraw once. Unknown names raise ValueError."""
        unknown = set(values) - {"penalty", "rho", "beta", "lam", "off", "use_pretrained", "digits"}
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}")
        self._holding = True
        try:
            for name, value in values.items():
                getattr(self, name).value = value
        finally:
            self._holding = False
        self.redraw()

    def to_reference(self) -> None:
        """The reference button: the published setting of the chosen penalty, with the pretrained model."""
        self.set(off=False, use_pretrained=True, **REFERENCE)

    def redraw(self) -> None:
        """Show the setting the controls describe: from the cache, or trained (or loaded) first."""
        if self._holding:
            return
        start = time.perf_counter()
        self._enable_relevant_controls()
        try:
            setting = self.setting()
            digits = parse_digits(self.digits.value, len(self.explorer.test_images))
        except (ValueError, TypeError) as err:
            return self._say(f"Invalid input: {err}", error=True)
        self.explorer.use_pretrained = self.use_pretrained.value
        try:
            result = self._result(setting)
        except TrainingDivergedError as err:
            return self._say(f"Training diverged at {setting.label()}: {err}", error=True)
        self.reconstructions.value = self.explorer.reconstructions(result, digits)
        self.features.value = result.features_png
        self.histogram.value = result.histogram_png
        self.numbers.value = numbers_html(result)
        self._say(" ".join(self.explorer.notes))
        self.seconds = time.perf_counter() - start

    def _result(self, setting: Setting) -> Result:
        self._clear_progress()  # the last bar belongs to another setting
        if self.explorer.is_cached(setting):
            return self.explorer.result(setting)
        self._say(f"Training {setting.label()}: {self.explorer.recipe.describe()}...")
        with self.progress_area:
            return self.explorer.result(setting, progress=self.progress)

    def _clear_progress(self) -> None:
        # Only when there is something to clear: outside a notebook, clear_output prints escape codes.
        if self.progress_area.outputs:
            self.progress_area.clear_output()

    def _enable_relevant_controls(self) -> None:
        kl = self.penalty.value == "kl"
        self.rho.disabled = not kl
        self.beta.disabled = not kl or self.off.value
        self.lam.disabled = kl or self.off.value

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#444"
        self.message.value = f"<span class='sae-message' style='color:{color}'>{html.escape(text)}</span>" if text else ""


def explore(**kwargs) -> ExplorerApp:
    """Build the explorer and display it (in a notebook); returns the app for programmatic control."""
    from IPython.display import display

    app = ExplorerApp(**kwargs)
    display(app)
    return app
