"""The explorer's logic (tooling, not lesson): a setting of a family's hyperparameters -> what it shows.

Every setting the explorer offers is a point of the atlas (``sae_utils.atlas``): a model trained with the
full reference recipe (20 epochs on all 60,000 training digits), stored with its test metrics, the
reconstructions of 20 fixed test digits and the feature images of its 64 most often active units. So
every setting, the reference included, is shown at the same budget, and shown at once: nothing is
trained while you explore. ``explorer_app.ExplorerApp`` is the ipywidgets front end of ``Explorer``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np

from .atlas import load_atlas
from .checks import check_choice
from .data import load_mnist
from .families import DEFAULT, FAMILIES, family
from .files import figure_png
from .plots import features_png, plot_feature_dashboards, plot_unit_statistics, reconstructions_png

DIGIT_SETS = ("first", "second")  # of each class: the atlas stores the first two test digits of each class
RECIPE = "20 epochs on all 60,000 training digits (the reference recipe), from the atlas"


@dataclass(frozen=True)
class Setting:
    """A family and a value for each of its hyperparameters, all on the atlas grid. Build with ``make_setting``."""

    family: str
    params: tuple[tuple[str, float], ...]  # (name, value) in the order of the family's hyperparameters

    def as_dict(self) -> dict:
        return dict(self.params)

    @property
    def is_reference(self) -> bool:
        return self == reference_setting(self.family)

    def label(self) -> str:
        fam = FAMILIES[self.family]
        symbols = {h.name: h.symbol for h in fam.hyperparameters}
        return f"{self.family.upper()}: " + ", ".join(f"{symbols[name]} = {value:g}" for name, value in self.params)


def make_setting(penalty: str = DEFAULT, **values) -> Setting:
    """The setting of family ``penalty`` with the given hyperparameter values (others: their reference).

    Values of hyperparameters the family does not use are ignored (the explorer sends every slider's
    value). Each used value must be one of the atlas grid's values for it.
    """
    fam = family(penalty)
    params = []
    for h in fam.hyperparameters:
        value = h.check(values.get(h.name, h.reference))
        if not any(np.isclose(value, g, rtol=1e-9, atol=0) for g in h.grid):
            raise ValueError(f"{h.name} must be one of the atlas grid values "
                             f"{', '.join(f'{g:g}' for g in h.grid)}, got {value:g}")
        params.append((h.name, next(g for g in h.grid if np.isclose(value, g, rtol=1e-9, atol=0))))
    return Setting(fam.name, tuple(params))


def reference_setting(penalty: str) -> Setting:
    """The published reference setting of the family: KL rho 0.08, beta 0.005; L1 lam 4e-5."""
    return make_setting(penalty)


@dataclass
class View:
    """What the explorer shows for one setting: the atlas numbers and three pictures (PNG bytes)."""

    setting: Setting
    metrics: dict
    history: dict
    source: str
    seconds: float
    reconstructions: dict = field(repr=False)  # digit set ("first", "second") -> PNG
    features_png: bytes = field(repr=False)
    features_scale: float  # the features' colour scale ends at +- this weight
    statistics_png: bytes = field(repr=False)
    feature_units: np.ndarray = field(repr=False)
    feature_frequency: np.ndarray = field(repr=False)  # how often each of feature_units is active


class Explorer:
    """Settings -> views, read from the atlas in ``atlas_dir`` (default: the package's) and kept for the
    session. The test digits are MNIST's, for the top row of the reconstructions."""

    def __init__(self, atlas_dir=None):
        self.atlas_dir = atlas_dir
        self.test_images = load_mnist("test")[0]
        self.cache: dict[Setting, View] = {}
        self.dashboards: dict[tuple[Setting, int], bytes] = {}  # (setting, rank) -> PNG

    def view(self, setting: Setting) -> View:
        """The view of ``setting``, from the cache or drawn from its atlas entry."""
        if not isinstance(setting, Setting):
            raise TypeError(f"setting must be a Setting (use make_setting), got {type(setting).__name__}")
        if setting not in self.cache:
            self.cache[setting] = self._draw(setting)
        return self.cache[setting]

    def is_cached(self, setting: Setting) -> bool:
        return setting in self.cache

    def _draw(self, setting: Setting) -> View:
        start = time.perf_counter()
        entry = load_atlas(setting.family, self.atlas_dir).entry(**setting.as_dict())
        inputs = self.test_images[entry.digit_indices].numpy() / 255.0
        recon = entry.recon / 255.0
        # the atlas's digits are ordered by class, DIGITS_PER_CLASS of each: set k is every k-th one
        reconstructions = {name: reconstructions_png(inputs[k::len(DIGIT_SETS)], recon[k::len(DIGIT_SETS)])
                           for k, name in enumerate(DIGIT_SETS)}
        statistics_png = self.statistics_png(setting, entry)
        features, scale = features_png(entry.features, never_active=entry.firing_frequency[entry.feature_units] == 0)
        return View(setting, entry.metrics, entry.history, RECIPE, time.perf_counter() - start,
                    reconstructions, features, scale, statistics_png, entry.feature_units,
                    entry.firing_frequency[entry.feature_units])

    def statistics_png(self, setting: Setting, entry=None, title: bool = True, dpi: int = 80) -> bytes:
        """``plots.plot_unit_statistics`` of the setting's units as PNG bytes, titled with the setting's label
        unless ``title`` is False (the snapshot names the setting once, above everything). The target rho is
        marked only where its penalty acts: at beta = 0 rho sets the start alone, and is no target."""
        values, fam = setting.as_dict(), FAMILIES[setting.family]
        entry = entry or load_atlas(setting.family, self.atlas_dir).entry(**values)
        target = values.get("rho") if fam.weight is not None and values.get(fam.weight) else None
        fig = plot_unit_statistics(entry.mean_activation, entry.firing_frequency, target,
                                   setting.label() if title else None, fam.active_threshold)
        png = figure_png(fig, dpi=dpi)
        plt.close(fig)
        return png

    def dashboard_png(self, setting: Setting, rank: int) -> bytes:
        """The feature dashboard (``plots.plot_feature_dashboards``) of the unit at position ``rank`` among
        the setting's 64 stored units (0: the most often active), as PNG bytes."""
        if (setting, rank) in self.dashboards:
            return self.dashboards[setting, rank]
        entry = load_atlas(setting.family, self.atlas_dir).entry(**setting.as_dict())
        if not (isinstance(rank, (int, np.integer)) and 0 <= rank < len(entry.feature_units)):
            raise ValueError(f"rank must be an integer in [0, {len(entry.feature_units) - 1}] (the stored units, "
                             f"most often active first), got {rank!r}")
        rows = {name: values[[rank]] for name, values in entry.dashboards.items()}
        fig = plot_feature_dashboards(entry.features[[rank]], rows, self.test_images, [int(entry.feature_units[rank])],
                                      setting.label())
        self.dashboards[setting, rank] = png = figure_png(fig, dpi=80)
        plt.close(fig)
        return png

    def neighbours(self, setting: Setting) -> list[tuple[str, float, float]]:
        """``(hyperparameter, value, test BCE)`` of each setting one grid step away from ``setting``."""
        fam, here = FAMILIES[setting.family], setting.as_dict()
        book = load_atlas(setting.family, self.atlas_dir)
        steps = []
        for h in fam.hyperparameters:
            i = h.grid.index(here[h.name])
            for j in (i - 1, i + 1):
                if 0 <= j < len(h.grid):
                    steps.append((h.name, h.grid[j], book.entry(**{**here, h.name: h.grid[j]}).metrics["bce"]))
        return steps


def check_digit_set(name: str) -> str:
    return check_choice("digits", name, DIGIT_SETS)
