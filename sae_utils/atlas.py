"""The atlas: every setting of a grid trained with the full reference recipe, and what the figures need of it.

``GRID`` is family -> hyperparameter -> values, read from the table of families (each hyperparameter's
``grid``); a family's points are the cartesian product of its values, plus a few recipe ``VARIANTS``
(the reference recipe with one more field changed, e.g. ``activation="sigmoid"``: L1 on sigmoid codes, measured
with its own penalty, ``evaluate(..., family="l1")``). Each point is trained as ``TrainConfig(penalty=family, **point)`` with
every other field at its default: 20 epochs on all 60,000 training digits, batch 1200, Adam lr 9e-3,
512 hidden units, seed 0 (TopK's recipe also lets the learning rate fall to 0 over the last 30 % of the
steps: ``lr_decay``). It is then measured on all 10,000 test digits. Stored per point (never the
weights): the config, the per-epoch history, the test metrics (``evaluate`` plus ``units_for_mass`` at
share 0.9, ``l0`` for ReLU and TopK codes (None for sigmoid codes), ``fraction_variance_unexplained``,
``units_for_mass_scale_free`` (the same count on y_j ‖d_j‖, which rescaling a unit leaves unchanged), the
``units_for_mass_above_*`` counts above each unit's resting level (``mass_counts``), for sigmoid codes
``sum_share_at_or_below`` and ``units_above_per_digit`` at 0.3, 0.5 and 0.7 (``threshold_counts``), ``unit_variance``
(each unit's code variance over the test digits, a list of H floats), ``top_class_share`` (``metrics.top_class_share``
of each unit, a list of H floats), ``top_class_share_by_z`` (the same with each unit's digits ranked by its
pre-activation z, which has no ties where float32 rounds many sigmoid codes to 1.0; these are absent from points measured before they were added, see ``remeasure``) and ``probe_error``, the linear probe's test error (``probe.linear_probe``; TopK also
``probe_error_wider``, encoded with ``probe_k`` = 3k units)), each unit's firing frequency and mean
activation (rho_hat_j), the reconstructions of 20 fixed test digits (the first two of each class) as
uint8, the decoder feature images of the 64 units that fire most often as int8 with a float32 scale per
unit and those units' dashboards, and the seconds the point took.

One compressed file per family, ``atlas_runs/{family}.npz``, rewritten atomically after every point,
so an interrupted build loses at most the point in progress. Its metadata is a JSON string inside the
.npz: it loads with ``allow_pickle=False``. About 60 kB a point (about 6 MB for the 114 points of the three families).
Read it with ``load_atlas(family).entry(**params)``.

    python -m sae_utils.atlas                               # every missing point of every family
    python -m sae_utils.atlas --family l1                   # one family
    python -m sae_utils.atlas --point rho=0.08,beta=0.005   # one point
    python -m sae_utils.atlas --list                        # what is built
    python -m sae_utils.atlas --remeasure --point rho=0.08,beta=0  # add metrics measured since it was built
    python -m sae_utils.atlas --pixel-probe                 # the raw-pixel probe, probe_error's baseline

Resumable: points already in the file are skipped. Deterministic: training is seeded, and the torch
thread count hardly matters (after one epoch, 1 and 2 threads differ by 3e-9 in the train objective
and not at all in test BCE). Run one build per family at a time: two builds of one family would
overwrite each other's points.

Cost, measured on an AMD EPYC (Zen 4) with 2 cores: one point takes about 60-70 s with 1 thread on an idle
core (80-100 s with the linear probe), so the 128 points (50 of the grid, 78 recipe variants, three of them 60-epoch runs) take
about 3 hours with ``--threads 1``, or about 1.5 hours as two 1-thread builds side by side (one per family:
they write different files), which is how the shipped atlas was built, while other work shared the cores.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import itertools
import json
import math
import numbers
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checks import check_choice, check_int, check_number
from .data import IMAGE_SIDE, load_mnist, prepare_images
from .families import FAMILIES
from .files import atomic_write_bytes, atomic_write_json
from .metrics import (ACTIVE_THRESHOLD, evaluate, firing_frequency, fraction_variance_unexplained,
                      above_resting_level, l0, mass_share_below, top_class_share, unit_dashboards, units_by_use,
                      units_for_mass)
from .probe import L2, MAX_ITERATIONS, linear_probe
from .train import TrainConfig, TrainingDivergedError, train

GRID = {name: {h.name: h.grid for h in fam.hyperparameters} for name, fam in FAMILIES.items()}
VARIANTS = {name: fam.atlas_variants for name, fam in FAMILIES.items() if fam.atlas_variants}
ATLAS_DIR = Path(__file__).with_name("atlas_runs")
FORMAT = 2
MASS_SHARE = 0.9
SIGMOID_THRESHOLDS = (0.3, 0.5, 0.7)   # "active" is above 0.5; notebook 01 asks what 0.3 and 0.7 would say
TOP_CLASS_DIGITS = 50  # top_class_share: the share of each unit's 50 top test digits from their most common class
DIGITS_PER_CLASS = 2
N_FEATURES = 64
WIDER_PROBE = 3  # TopK codes are probed a second time with this many times k units kept (k-sparse paper)
DASHBOARD = ("top_digits", "top_values", "histogram", "edges")
ARRAYS = ("recon", "features", "feature_scale", "feature_units", "firing_frequency", "mean_activation", *DASHBOARD)


class MissingSettingError(KeyError):
    """A setting that is not in the atlas; the message names it and what is there."""

    def __str__(self):
        return str(self.args[0])  # KeyError would print the message in quotes


def grid_values(family: str) -> dict[str, tuple]:
    """The grid of ``family``: parameter name -> its values."""
    return dict(GRID[check_choice("family", family, tuple(GRID))])


def grid_points(family: str) -> list[dict]:
    """Every point of the family's grid as a parameter dict, the last parameter varying fastest."""
    values = grid_values(family)
    grid = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    order = [*values, *TrainConfig.__dataclass_fields__]  # a variant's fields in one canonical order
    return grid + [dict(sorted(variant.items(), key=lambda item: order.index(item[0])))
                   for variant in VARIANTS.get(family, ())]


def point_id(params: dict) -> str:
    """The canonical name of a point, e.g. "rho=0.08,beta=0.005" (numbers with ``:g``, in grid order;
    a text value such as start=default as it is)."""
    return ",".join(f"{name}={value}" if isinstance(value, str) else f"{name}={float(value):g}"
                    for name, value in params.items())


def _describe_grid(family: str) -> str:
    return "; ".join(f"{name} in {', '.join(f'{v:g}' for v in values)}" for name, values in grid_values(family).items())


def grid_point(family: str, params: dict) -> dict:
    """``params`` checked against the points of ``family`` and put in canonical order; raises if it is not one.
    A recipe field given at its default names the grid point itself: ``seed=0`` is the grid's seed."""
    names = tuple(grid_values(family))
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    given = {name: value for name, value in params.items() if name in names or value != defaults.get(name, ...)}
    recipe = [f for f in defaults if f in given and f not in names]  # a variant's
    if set(given) != set(names) | set(recipe):
        raise ValueError(f"a {family} setting needs exactly the parameters {', '.join(names)}, "
                         f"got {', '.join(params) or 'none'}")
    params = given
    wanted = point_id({name: params[name] for name in (*names, *recipe)})
    point = {point_id(p): p for p in grid_points(family)}.get(wanted)
    if point is None:
        raise MissingSettingError(f"the {family} atlas has no setting {wanted}; its grid is {_describe_grid(family)}")
    return point


def parse_point(text: str, family: str | None = None) -> tuple[str, dict]:
    """"rho=0.08,beta=0.005" -> ("kl", {"rho": 0.08, "beta": 0.005}); the family is found from the names."""
    params = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if not name.strip() or not value.strip():
            raise ValueError(f"--point must look like name=value,name=value (e.g. rho=0.08,beta=0.005), "
                             f"got {text!r}")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            params[name.strip()] = value.strip()  # a text field of a recipe variant (start=default)
    families = [family] if family else [f for f, values in GRID.items() if set(values) <= set(params)]
    if len(families) != 1:
        known = "; ".join(f"{f}: {', '.join(values)}" for f, values in GRID.items())
        raise ValueError(f"--point {text!r} names no family's parameters (families and parameters: {known})")
    try:
        return families[0], grid_point(families[0], params)
    except MissingSettingError as err:
        raise ValueError(str(err)) from None


def point_config(family: str, params: dict) -> TrainConfig:
    """The TrainConfig of a point: the family's penalty and the point's values, everything else default."""
    return TrainConfig(penalty=family, **params)


def fixed_digits(labels: torch.Tensor) -> np.ndarray:
    """Indices of the first ``DIGITS_PER_CLASS`` digits of each class 0-9 in ``labels``, ordered by class."""
    return np.concatenate([np.flatnonzero(labels.numpy() == c)[:DIGITS_PER_CLASS] for c in range(10)])


def mass_counts(code: torch.Tensor, column_norm: torch.Tensor) -> dict:
    """The mean number of units carrying ``MASS_SHARE`` of a digit's code mass (k90), counted five ways.

    code: (N, H) the codes of the test digits; column_norm: (H,) the decoder columns' lengths ‖d_j‖.
    Raw on y; scale-free on y_j ‖d_j‖ (rescaling a unit leaves it unchanged); above each unit's resting
    level, its median over the N digits, raw and scale-free; and above each unit's minimum, which a
    decoder bias absorbs exactly (``metrics.above_resting_level``).
    """
    above_median = above_resting_level(code, "median")
    return dict(units_for_mass=units_for_mass(code, MASS_SHARE),
                units_for_mass_scale_free=units_for_mass(code * column_norm, MASS_SHARE),
                units_for_mass_above_resting=units_for_mass(above_median, MASS_SHARE),
                units_for_mass_above_resting_scale_free=units_for_mass(above_median * column_norm, MASS_SHARE),
                units_for_mass_above_minimum=units_for_mass(above_resting_level(code, "minimum"), MASS_SHARE))


def threshold_counts(code: torch.Tensor, thresholds=SIGMOID_THRESHOLDS) -> dict:
    """Where a code's mass sits against each threshold t (default ``SIGMOID_THRESHOLDS``), over N digits.

    code: (N, H), non-negative. Returns {"sum_share_at_or_below": {"t": share of the code's total sum carried
    by values <= t}, "units_above_per_digit": {"t": mean over the N digits of the number of units > t}},
    keyed by ``f"{t:g}"`` (JSON keys are strings): ``metrics.mass_share_below`` and the sum over units of
    ``metrics.firing_frequency`` at each t."""
    return {"sum_share_at_or_below": {f"{t:g}": mass_share_below(code, t) for t in thresholds},
            "units_above_per_digit": {f"{t:g}": firing_frequency(code, t).double().sum().item() for t in thresholds}}


@torch.no_grad()
def measure(model, config: TrainConfig, test_images: torch.Tensor, digits: np.ndarray,
            probe_data: tuple | None = None) -> tuple[dict, dict]:
    """The stored numbers of a trained model: (JSON-able metrics, arrays of one point).

    probe_data: ``((train_images, train_labels), (test_images, test_labels))`` for the linear probe
    (default: all of MNIST); its test labels, the classes of ``test_images``, also give ``top_class_share``.

    Arrays: recon uint8 (20, 28, 28); features int8 (64, 28, 28) with feature_scale float32 (64,)
    (the dashboards of the same 64 units: top_digits int16 (64, 9), top_values float32 (64, 9),
    histogram int32 (64, 20), edges float32 (64, 21), see ``metrics.unit_dashboards``)
    (the decoder column of each unit divided by its largest absolute value, times 127); feature_units
    (64,) the units, most often firing first (ties: higher mean activation first); firing_frequency and
    mean_activation float32 (H,).
    """
    metrics = evaluate(model, test_images, family=config.penalty, **config.hyperparameters())
    x = prepare_images(test_images)
    model.eval()
    z = model.pre_activation(x)                      # (N, H), kept: top_class_share_by_z ranks by it
    code = model.code_activation(z)
    logits = model.decode(code)
    threshold = ACTIVE_THRESHOLD[model.activation]
    column_norm = model.decoder.weight.norm(dim=0)   # (H,) ‖d_j‖: y_j ‖d_j‖ is unchanged by rescaling a unit
    labels = probe_data[1][1] if probe_data else load_mnist("test")[1]   # the classes of test_images
    metrics.update(**mass_counts(code, column_norm),
                   l0=l0(code) if threshold == 0 else None,  # L0 needs exact zeros
                   fraction_variance_unexplained=fraction_variance_unexplained(x, torch.sigmoid(logits)),
                   probe_error=linear_probe(model, *(probe_data or ()))["test_error"],
                   unit_variance=code.var(dim=0, unbiased=False).tolist(),  # (H,): s_j^2 over the test digits
                   top_class_share=top_class_share(code, labels, TOP_CLASS_DIGITS).tolist(),  # (H,)
                   # z never ties where float32 rounds many sigmoid codes to exactly 1.0
                   top_class_share_by_z=top_class_share(z, labels, TOP_CLASS_DIGITS).tolist())
    if model.activation == "sigmoid":                # thresholds other than 0 mean something on [0, 1] codes
        metrics.update(threshold_counts(code))
    if model.k is not None:
        wider = min(WIDER_PROBE * model.k, model.n_hidden)
        metrics.update(probe_k=wider, probe_error_wider=linear_probe(model, *(probe_data or ()), k=wider)["test_error"])
    frequency = firing_frequency(code, threshold).numpy()
    mean_activation = code.mean(dim=0).numpy()
    units = units_by_use(torch.from_numpy(frequency), torch.from_numpy(mean_activation))[:N_FEATURES].numpy()
    weights = model.decoder.weight.T[torch.from_numpy(units)].numpy()  # (64, 784): the image each unit adds to the output
    scale = np.abs(weights).max(axis=1).astype(np.float32)
    quantised = np.round(127 * weights / np.where(scale > 0, scale, 1)[:, None]).astype(np.int8)
    recon = np.round(255 * torch.sigmoid(logits[torch.from_numpy(digits)]).numpy()).astype(np.uint8)
    side = (IMAGE_SIDE, IMAGE_SIDE)
    dashboards = unit_dashboards(code, units, threshold)
    return metrics, {"recon": recon.reshape(-1, *side), "features": quantised.reshape(-1, *side),
                     "feature_scale": scale, "feature_units": units.astype(np.int16),
                     "firing_frequency": frequency.astype(np.float32),
                     "mean_activation": mean_activation.astype(np.float32),
                     "top_digits": dashboards["top_digits"].astype(np.int16),
                     "top_values": dashboards["top_values"], "histogram": dashboards["histogram"].astype(np.int32),
                     "edges": dashboards["edges"]}


def build_point(config: TrainConfig, train_data: tuple, test_data: tuple, digits: np.ndarray) -> tuple[dict, dict]:
    """Train one point on ``train_data`` = (images, labels) and measure it on ``test_data`` = (images,
    labels); return (metadata for the JSON, arrays)."""
    start = time.perf_counter()
    model, history = train(config, train_data[0], test_data[0], progress=False)
    if history["interrupted"]:  # train turns Ctrl-C into a short history: stop the build, store nothing
        raise KeyboardInterrupt
    metrics, arrays = measure(model, config, test_data[0], digits, (train_data, test_data))
    return {"config": config.as_dict(), "history": history, "metrics": metrics,
            "seconds": round(time.perf_counter() - start, 1)}, arrays


def atlas_path(family: str, directory=None) -> Path:
    return Path(ATLAS_DIR if directory is None else directory) / f"{check_choice('family', family, tuple(GRID))}.npz"


def _read(path: Path, family: str) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] for name in (*ARRAYS, "digit_indices")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable atlas file; truncated or corrupted? ({err})") from err
    if meta.get("format") != FORMAT or meta.get("family") != family:
        raise ValueError(f"{path} is not a format-{FORMAT} atlas of family {family!r} "
                         f"(it says format {meta.get('format')!r}, family {meta.get('family')!r})")
    return meta, arrays


def _write(path: Path, meta: dict, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def build(family: str, points: list[dict] | None = None, directory=None, *, progress: bool = True,
          log=tqdm.write) -> list[str]:
    """Train and store the points of ``family`` (default: its whole grid) missing from its atlas file.

    The file is rewritten atomically after each point. A point whose training diverges is reported
    and left out. Returns the ids of the points that diverged.
    """
    path = atlas_path(family, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta, arrays = {"format": FORMAT, "family": family, "mass_share": MASS_SHARE, "points": []}, {}
    test_images, test_labels = load_mnist("test")
    digits = fixed_digits(test_labels)
    if path.exists():
        meta, arrays = _read(path, family)
        for entry in meta["points"]:  # a file from another recipe must not be extended silently
            if TrainConfig(**entry["config"]) != point_config(family, entry["params"]):  # fields added later take their defaults
                raise ValueError(f"{path} holds {entry['id']} trained with {entry['config']}, not the current "
                                 f"recipe {point_config(family, entry['params']).as_dict()}; move the file away")
    done = {entry["id"] for entry in meta["points"]}
    todo = [grid_point(family, p) for p in (grid_points(family) if points is None else points)]
    todo = [p for p in todo if point_id(p) not in done]
    train_data = load_mnist("train") if todo else None
    failed = []
    for params in tqdm(todo, desc=f"{family} atlas", unit="point", disable=not progress):
        try:
            entry, new = build_point(point_config(family, params), train_data, (test_images, test_labels), digits)
        except TrainingDivergedError as err:
            log(f"{family} {point_id(params)}: {err}; left out")
            failed.append(point_id(params))
            continue
        meta["points"].append({"id": point_id(params), "params": params, **entry})
        arrays = {name: np.concatenate([arrays[name], new[name][None]]) if arrays else new[name][None]
                  for name in ARRAYS} | {"digit_indices": digits}
        _write(path, meta, arrays)
        m = entry["metrics"]
        log(f"{family} {point_id(params)}: test BCE {m['bce']:.4f}, units for {MASS_SHARE:.0%} of the code mass "
            f"{m['units_for_mass']:.1f}, dead {m['dead_fraction']:.3f}, {entry['seconds']:.0f} s")
    return failed


REPRODUCED = {"bce": 1e-5, "units_for_mass": 0.5}  # stored metric -> the largest change a retrained point may show


def remeasure(family: str, points: list[dict], directory=None, *, progress: bool = True,
              log=tqdm.write) -> list[str]:
    """Retrain stored points of ``family`` and add to each the metrics ``measure`` has gained since it was
    built (e.g. ``top_class_share``); the stored numbers are kept as they are.

    Training is seeded, so a retrained point must reproduce its stored test BCE and k90 (to ``REPRODUCED``:
    far below what another seed changes; threads and CPUs round differently); one that does not is reported
    and left unchanged. The file is rewritten atomically after each point. Returns the ids of the points
    that did not reproduce.
    """
    path = atlas_path(family, directory)
    meta, arrays = _read(path, family)
    stored = {entry["id"]: entry for entry in meta["points"]}
    wanted = [point_id(grid_point(family, p)) for p in points]
    missing = [pid for pid in wanted if pid not in stored]
    if missing:
        raise MissingSettingError(f"the {family} atlas in {path} has no stored point {', '.join(missing)} to remeasure")
    test_data, train_data = load_mnist("test"), load_mnist("train")
    digits = fixed_digits(test_data[1])
    failed = []
    for pid in tqdm(wanted, desc=f"{family} remeasure", unit="point", disable=not progress):
        entry = stored[pid]
        new, _ = build_point(point_config(family, entry["params"]), train_data, test_data, digits)
        moved = {key: new["metrics"][key] - entry["metrics"][key] for key in REPRODUCED}
        if any(abs(change) > REPRODUCED[key] for key, change in moved.items()):
            log(f"{family} {pid}: does not reproduce its stored metrics (changes {moved}); left unchanged")
            failed.append(pid)
            continue
        added = {key: value for key, value in new["metrics"].items() if key not in entry["metrics"]}
        entry["metrics"].update(added)
        _write(path, meta, arrays)
        log(f"{family} {pid}: reproduced (changes {moved}); added {', '.join(added) or 'nothing'}")
    return failed


PIXEL_PROBE = "pixel_probe.json"


def pixel_probe_path(directory=None) -> Path:
    return Path(ATLAS_DIR if directory is None else directory) / PIXEL_PROBE


def build_pixel_probe(directory=None, data: tuple | None = None) -> dict:
    """Fit the linear probe on the raw pixels (``linear_probe(None)``), the baseline every stored
    ``probe_error`` is compared with, and store it beside the atlas files as ``pixel_probe.json``.

    data: ``((train_images, train_labels), (test_images, test_labels))``, default all of MNIST. The
    record keeps the probe's settings, so a change of ``probe.L2`` or ``MAX_ITERATIONS`` shows.
    """
    train, test = data or (load_mnist("train"), load_mnist("test"))
    result = linear_probe(None, train, test)
    record = {"test_error": result["test_error"], "train_error": result["train_error"],
              "n_features": result["n_features"], "l2": L2, "max_iterations": MAX_ITERATIONS,
              "n_train": len(train[1]), "n_test": len(test[1])}
    atomic_write_json(pixel_probe_path(directory), record)
    return record


def pixel_probe(directory=None) -> dict:
    """The stored raw-pixel probe (``build_pixel_probe``): ``{"test_error", "train_error", "n_features",
    "l2", "max_iterations", "n_train", "n_test"}``, errors as fractions. Fitted once with the atlas,
    as every code's ``probe_error`` is; ``linear_probe(None)`` fits it again (about half a minute)."""
    path = pixel_probe_path(directory)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; build it with python -m sae_utils.atlas --pixel-probe")
    return json.loads(path.read_text())


@dataclass
class AtlasEntry:
    """One trained point. recon: uint8 (20, 28, 28) reconstructions of the test digits ``digit_indices``;
    features: float32 (64, 28, 28) decoder feature images of the units ``feature_units`` (int8-rounded);
    firing_frequency, mean_activation: float32 (H,)."""

    family: str
    params: dict
    config: TrainConfig
    history: dict
    metrics: dict
    seconds: float
    recon: np.ndarray
    digit_indices: np.ndarray
    features: np.ndarray
    feature_units: np.ndarray
    firing_frequency: np.ndarray
    mean_activation: np.ndarray
    dashboards: dict  # metrics.unit_dashboards of the units feature_units, over the 10,000 test digits

    def first_of_each_class(self, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The first stored test digit of each class 0 .. n_classes - 1: (their test-set indices (n,), their
        uint8 reconstructions (n, 28, 28)). The stored digits are ordered by class, DIGITS_PER_CLASS of each."""
        return self.digit_indices[::DIGITS_PER_CLASS][:n_classes], self.recon[::DIGITS_PER_CLASS][:n_classes]

    def unit_scale_statistics(self) -> dict:
        """The per-unit statistics ``metrics.scale_summary`` reads, as ``metrics.unit_scale_statistics``
        returns them for a model, float64 tensors (H,): "column_norm" ‖d_j‖ from the stored int8-rounded
        decoder columns of the units ``feature_units`` (NaN for every other unit: not stored),
        "mean_activation" and "firing_frequency" on the test set."""
        norm = torch.full((len(self.firing_frequency),), math.nan, dtype=torch.float64)
        lengths = np.linalg.norm(self.features.reshape(len(self.feature_units), -1).astype(np.float64), axis=1)
        norm[torch.as_tensor(self.feature_units, dtype=torch.long)] = torch.from_numpy(lengths)
        return {"column_norm": norm, "mean_activation": torch.from_numpy(self.mean_activation.astype(np.float64)),
                "firing_frequency": torch.from_numpy(self.firing_frequency.astype(np.float64))}


class Atlas:
    """The stored points of one family, read from its file; see ``load_atlas``."""

    def __init__(self, family: str, path: Path):
        self.family, self.path = family, path
        self._meta, self._arrays = _read(path, family)
        self._rows = {entry["id"]: row for row, entry in enumerate(self._meta["points"])}

    def points(self) -> list[dict]:
        """The parameter dicts of the stored points, in the order they were built."""
        return [dict(entry["params"]) for entry in self._meta["points"]]

    def records(self, variants: bool = False) -> list[dict]:
        """Every stored grid point's ``{"params", "config", "history", "metrics"}`` (no arrays), in build
        order; with ``variants``, the recipe variants (``VARIANTS``) too."""
        grid = set(grid_values(self.family))
        return [{key: copy.deepcopy(entry[key]) for key in ("params", "config", "history", "metrics")}
                for entry in self._meta["points"] if variants or set(entry["params"]) == grid]

    def entry(self, **params) -> AtlasEntry:
        """The stored point with these parameters, e.g. ``entry(rho=0.08, beta=0.005)``."""
        params = grid_point(self.family, params)
        row = self._rows.get(point_id(params))
        if row is None:
            raise MissingSettingError(
                f"the {self.family} setting {point_id(params)} is in the grid but not built in {self.path}; "
                f"build it with `python -m sae_utils.atlas --point {point_id(params)}`")
        meta = self._meta["points"][row]
        a = {name: array[row].copy() if name in ARRAYS else array.copy()  # copies: the cached atlas stays intact
             for name, array in self._arrays.items()}
        features = a["features"].astype(np.float32) * (a["feature_scale"] / 127)[:, None, None]
        units = a["feature_units"].astype(np.int64)
        return AtlasEntry(self.family, dict(meta["params"]), TrainConfig(**meta["config"]),
                          copy.deepcopy(meta["history"]), dict(meta["metrics"]), meta["seconds"], a["recon"],
                          a["digit_indices"], features, a["feature_units"].astype(np.int64),
                          a["firing_frequency"], a["mean_activation"],
                          {name: a[name] for name in DASHBOARD} | {"firing_frequency": a["firing_frequency"][units]})


def load_atlas(family: str, directory=None) -> Atlas:
    """The atlas of ``family`` from ``directory`` (default: the package's atlas_runs), cached per process
    until the file changes."""
    path = atlas_path(family, directory)
    if not path.is_file():
        raise FileNotFoundError(f"no {family} atlas: {path} does not exist; build it with "
                                f"`python -m sae_utils.atlas --family {family}`")
    stat = path.stat()
    return _load(family, path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load(family: str, path: Path, _mtime_ns: int, _size: int) -> Atlas:
    return Atlas(family, path)


def seed_spread(family: str, keys=("bce", "units_for_mass", "dead_fraction"), directory=None,
                **params) -> dict:
    """How much one setting's test metrics vary with the seed alone: the stored points equal to ``params``
    (a grid point, e.g. ``rho=0.08, beta=0.005``) at seed 0 and at every other stored seed. Returns
    {key: {"seeds", "values", "mean", "std", "min", "max"}}, std the sample standard deviation (n - 1);
    keys: metrics of the atlas (``AtlasEntry.metrics``). Raises if fewer than two seeds are stored."""
    base = grid_point(family, params)
    runs = {}
    for record in load_atlas(family, directory).records(variants=True):
        stored = dict(record["params"])
        seed = stored.pop("seed", 0)
        if stored == base:
            runs[seed] = record["metrics"]
    if len(runs) < 2:
        raise MissingSettingError(f"the {family} setting {point_id(base)} has {len(runs)} stored seed(s); "
                                  f"a spread needs two or more")
    seeds = sorted(runs)
    spread = {}
    for key in keys:
        values = np.array([runs[seed][key] for seed in seeds], dtype=np.float64)
        spread[key] = {"seeds": seeds, "values": values.tolist(), "mean": values.mean(), "std": values.std(ddof=1),
                       "min": values.min(), "max": values.max()}
    return spread


def seeded_settings(family: str, directory=None) -> list[dict]:
    """The grid settings of ``family`` stored with more than one seed (each as its grid parameters, e.g.
    ``{"rho": 0.08, "beta": 0.005}``), in the order their seed-1 runs are stored; variants that change
    anything else (a start, a learning rate, ...) are left out. Each one is a valid ``seed_spread`` setting."""
    knobs = set(grid_values(family))
    settings = []
    for record in load_atlas(family, directory).records(variants=True):
        params = dict(record["params"])
        if params.pop("seed", 0) == 1 and set(params) == knobs:
            settings.append(params)
    return settings


def l0_per_living(l0, dead_fraction, n_hidden: int):
    """The share of the living units that a digit switches on: L0 / (n_hidden * (1 - dead_fraction)).

    l0: the mean number of non-zero code values per digit (``metrics["l0"]``); dead_fraction: the share of
    the n_hidden units that are zero on every test digit (``metrics["dead_fraction"]``). Both may be numbers
    or equal-length sequences (e.g. ``seed_spread(...)[key]["values"]``). Returns a float for numbers, else
    a (S,) float64 array. A ReLU code's L0 counts only living units, so the result lies in [0, 1]."""
    n_hidden = check_int("n_hidden", n_hidden, low=1)
    l0_arr, dead_arr = np.asarray(l0, dtype=np.float64), np.asarray(dead_fraction, dtype=np.float64)
    if l0_arr.shape != dead_arr.shape or l0_arr.ndim > 1:
        raise ValueError(f"l0 and dead_fraction must be numbers or equal-length sequences, got shapes "
                         f"{l0_arr.shape} and {dead_arr.shape}")
    if not ((dead_arr >= 0) & (dead_arr < 1)).all():
        raise ValueError(f"dead_fraction must lie in [0, 1), got {dead_fraction!r}")
    if not ((l0_arr >= 0) & (l0_arr <= n_hidden * (1 - dead_arr) + 1e-9)).all():
        raise ValueError(f"l0 must lie in [0, n_hidden * (1 - dead_fraction)] (only living units fire), "
                         f"got {l0!r} with n_hidden {n_hidden} and dead_fraction {dead_fraction!r}")
    share = l0_arr / (n_hidden * (1 - dead_arr))
    return float(share) if share.ndim == 0 else share


SPARSITY_FORMATS = {"dead units": ".1%", "L0 per digit": ".1f", "L0 / living units": ".1%", "test BCE": ".5f"}


def sparsity_rows(runs: dict, n_hidden: int, first: str = "setting") -> list:
    """Table rows of how sparse each stored ReLU run's test code is, with the share due to dead units apart.

    runs: {row label: AtlasEntry, or a metrics dict with "dead_fraction", "l0" and "bce"} (the test-set
    values of ``entry.metrics``); n_hidden: the runs' number of hidden units; first: the first column's name.
    Returns [{first: label, "dead units": dead_fraction, "L0 per digit": l0, "L0 / living units":
    ``l0_per_living(l0, dead_fraction, n_hidden)``, "test BCE": bce}, ...] in the order of ``runs``; print
    with ``table(rows, formats=SPARSITY_FORMATS)``."""
    if not isinstance(runs, dict) or not runs:
        raise ValueError(f"runs must be a non-empty dict {{label: AtlasEntry or metrics dict}}, got {runs!r}")
    rows = []
    for name, run in runs.items():
        m = run.metrics if isinstance(run, AtlasEntry) else run
        missing = [key for key in ("dead_fraction", "l0", "bce") if key not in m]
        if missing:
            raise ValueError(f"run {name!r} lacks the metrics {missing}")
        rows.append({first: name, "dead units": m["dead_fraction"], "L0 per digit": m["l0"],
                     "L0 / living units": l0_per_living(m["l0"], m["dead_fraction"], n_hidden), "test BCE": m["bce"]})
    return rows


NOISE_BINS = ((2.0, "within seed noise"), (4.0, "borderline"), (math.inf, "beyond seed noise"))


def noise_verdict(z: float) -> str:
    """The seed-noise rule's words for a difference of z standard deviations (of the difference):
    |z| <= 2 "within seed noise", 2 < |z| <= 4 "borderline", |z| > 4 "beyond seed noise"."""
    return next(label for bound, label in NOISE_BINS if abs(z) <= bound)


def start_rows(x, rho: float = 0.08, beta: float = 0.005, n_hidden: int = 512, seed: int = 0) -> list:
    """The KL model before its first step, from the family's encoder-bias start and from PyTorch's default one
    (``families.build_model(..., family_start=False)``), both built after ``torch.manual_seed(seed)``.
    x: (B, 784) float images in [0, 1] (one minibatch); rho in (0, 1); beta >= 0.
    Returns [{"start": "ours" | "PyTorch default", "mean code value": mean of the (B, H) code,
    "weighted KL penalty": beta * sum_j KL(rho || rho_hat_j), rho_hat_j over the B images}], as floats."""
    from .families import build_model
    from .penalties import kl_sparsity_penalty

    if not (0 < float(rho) < 1) or float(beta) < 0:
        raise ValueError(f"need 0 < rho < 1 and beta >= 0, got rho={rho!r}, beta={beta!r}")
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must be a (B, D) batch of images, got shape {tuple(x.shape)}")
    rows = []
    for name, family_start in (("ours", True), ("PyTorch default", False)):
        torch.manual_seed(seed)
        model = build_model("kl", n_hidden, x.shape[1], family_start=family_start, rho=rho, beta=beta)
        with torch.no_grad():
            code = model.encode(x.float()).double()
        rows.append({"start": name, "mean code value": float(code.mean()),
                     "weighted KL penalty": float(beta * kl_sparsity_penalty(code, rho))})
    return rows


def gallery_entries(points, directory=None) -> dict:
    """Atlas entries labelled for ``plots.plot_atlas_gallery``: {label: AtlasEntry}, in the order given.
    points: a sequence of (family, params dict) of stored settings. Each label is "<FAMILY> sym=value, ..."
    (e.g. "KL ρ=0.01, β=0.005"; values below 10⁻³ as ``label`` writes them, "4e-5"), with " (ref.)" for the family's reference and " (no penalty)" when the
    penalty weight (β or λ) is 0."""
    entries = {}
    for item in points:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], dict)):
            raise ValueError(f"each point must be (family, params dict), got {item!r}")
        family, params = item
        fam = FAMILIES[family]
        symbols = {h.name: h.symbol for h in fam.hyperparameters}
        text = f"{family.upper()} " + ", ".join(f"{symbols[k]}={v:g}" if v == 0 or abs(v) >= 1e-3 else
                                                 f"{symbols[k]}={label(v)}" for k, v in params.items())
        if grid_point(family, params) == grid_point(family, fam.reference()):
            text += " (ref.)"
        elif any(params.get(k) == 0 for k in ("beta", "lam")):
            text += " (no penalty)"
        entries[text] = load_atlas(family, directory).entry(**params)
    return entries


def _z(change: float, s: float) -> float:
    """A difference in units of its yardstick s; ±inf (or 0 for no change) when s is 0."""
    return change / s if s > 0 else math.copysign(math.inf, change) if change else 0.0


def setting_sd(family: str, key: str, directory=None, **params) -> tuple[float, bool]:
    """The seed standard deviation of metric ``key`` at a setting: from its own stored seeds when it has
    two or more, else the family's reference setting's (borrowed). Returns (sd, borrowed)."""
    try:
        return float(seed_spread(family, (key,), directory, **params)[key]["std"]), False
    except MissingSettingError:
        reference = FAMILIES[family].reference()
        return float(seed_spread(family, (key,), directory, **reference)[key]["std"]), True


def compare(family: str, a: dict, b: dict, key: str, directory=None) -> dict:
    """One metric of two settings of ``family`` (seed 0 each) judged by the seed-noise rule: "a", "b" (the
    values), "change" (b - a), "s" (sqrt(sd_a^2 + sd_b^2), each sd from ``setting_sd``), "z" (change / s),
    "verdict" (``noise_verdict(z)``) and "borrowed" (True when either sd is the reference's).
    a, b: parameter dicts, e.g. ``compare("kl", {"rho": 0.08, "beta": 0.0}, {"rho": 0.08, "beta": 0.0015}, "bce")``."""
    atlas = load_atlas(family, directory)
    values = [atlas.entry(**params).metrics[key] for params in (a, b)]
    (sd_a, borrowed_a), (sd_b, borrowed_b) = (setting_sd(family, key, directory, **params) for params in (a, b))
    s = math.hypot(sd_a, sd_b)
    change = values[1] - values[0]
    z = _z(change, s)
    return {"a": values[0], "b": values[1], "change": change, "s": s, "z": z, "verdict": noise_verdict(z),
            "borrowed": borrowed_a or borrowed_b}


def pooled_sd(spreads: list, key: str) -> float:
    """One family's seed noise from several settings: the pooled sample standard deviation
    sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1)) of ``key`` over ``seed_spread`` results (n_i seeds, s_i their
    std). Pooling assumes the settings share one noise level; it weights each by its degrees of freedom."""
    if not spreads:
        raise ValueError("pooled_sd needs at least one seed_spread result, got none")
    freedom = np.array([len(spread[key]["values"]) - 1 for spread in spreads], dtype=np.float64)
    variance = np.array([spread[key]["std"] ** 2 for spread in spreads])
    return float(np.sqrt((freedom * variance).sum() / freedom.sum()))


def pair_tolerance(sigma_a: dict, sigma_b: dict, c: float = 3 / math.sqrt(2)) -> dict:
    """The noise tolerance of a difference between one run of setting a and one of setting b:
    {key: c * sqrt(sigma_a[key]^2 + sigma_b[key]^2)} for every key both give (sigma: {metric: seed std}).
    The default c = 3 / sqrt(2) makes it 3 sigma when both settings share one sigma."""
    c = check_number("c", c, low=0, low_open=True)
    return {key: c * math.sqrt(sigma_a[key] ** 2 + sigma_b[key] ** 2) for key in sigma_a if key in sigma_b}


def noise_yardstick(spreads: dict, keys=("units_for_mass", "bce"), c: float = 3 / math.sqrt(2)) -> dict:
    """The seed-noise yardstick of two families from their seeded settings, in one call.

    spreads: {(family, setting label): ``seed_spread`` result}, two families, each with one or more settings
    holding every key of ``keys``. Per family f: "sigma"[f] = {key: ``pooled_sd``}, "dof"[f] = sum of its
    settings' n_i - 1, "largest"[f] = {key: the largest s_i}, "fold"[f] = the largest ratio of its largest to
    its smallest s_i over the keys. "tolerance": {(f, f): ``pair_tolerance(sigma_f, sigma_f, c)``, and under
    (first family, second family) the cross tolerance ``pair_tolerance(sigma_a, sigma_b, c)``};
    "wide": the cross tolerance from each family's largest s_i instead of its pooled sigma (a wider yardstick);
    "c": c. Families in the order they first appear in ``spreads``."""
    c = check_number("c", c, low=0, low_open=True)
    families = list(dict.fromkeys(family for family, _ in spreads))
    if len(families) != 2:
        raise ValueError(f"spreads must hold settings of exactly two families, got {families}")
    result = {"sigma": {}, "dof": {}, "largest": {}, "fold": {}, "tolerance": {}, "c": c}
    for family in families:
        runs = [spread for (f, _), spread in spreads.items() if f == family]
        missing = [key for key in keys for run in runs if key not in run]
        if missing:
            raise ValueError(f"every spread must hold the keys {tuple(keys)}; {family} lacks {sorted(set(missing))}")
        result["dof"][family] = sum(len(run[keys[0]]["values"]) - 1 for run in runs)
        result["sigma"][family] = {key: pooled_sd(runs, key) for key in keys}
        result["largest"][family] = {key: max(run[key]["std"] for run in runs) for key in keys}
        result["fold"][family] = max(max(run[key]["std"] for run in runs) / min(run[key]["std"] for run in runs)
                                     for key in keys)
        result["tolerance"][family, family] = pair_tolerance(result["sigma"][family], result["sigma"][family], c)
    a, b = families
    result["tolerance"][a, b] = pair_tolerance(result["sigma"][a], result["sigma"][b], c)
    result["wide"] = pair_tolerance(result["largest"][a], result["largest"][b], c)
    return result


def series(family: str, moving: str, directory=None, **fixed) -> dict:
    """The grid points of ``family`` where ``moving`` varies and every other hyperparameter is at ``fixed``:
    {value of moving: record (as ``Atlas.records``)}, by increasing value. E.g. ``series("kl", "beta", rho=0.08)``."""
    names = set(grid_values(family))
    if moving not in names or set(fixed) != names - {moving}:
        raise ValueError(f"a {family} series moves one of {', '.join(sorted(names))} and fixes the others; "
                         f"got moving={moving!r}, fixed={', '.join(fixed) or 'none'}")
    rows = [r for r in load_atlas(family, directory).records() if all(r["params"][k] == v for k, v in fixed.items())]
    return {row["params"][moving]: row for row in sorted(rows, key=lambda r: r["params"][moving])}


def metric_rows(family: str, moving: str, values, keys, names: dict | None = None, floor: float | None = None,
                seeds: bool = False, directory=None, **fixed) -> list:
    """One table row per value of ``moving`` (the other hyperparameters at ``fixed``), for ``table``.

    values: the values of ``moving`` (e.g. betas); keys: metrics of the atlas (``AtlasEntry.metrics``);
    names: {key: column header} (default: the key). seeds False: each cell is the seed-0 run's metric.
    seeds True: each cell is the text "mean ± std" over the stored seeds (``seed_spread``; std with n - 1,
    both printed with the digits of ``digits_of``), plus a "seeds" column. floor: if given (e.g. the test
    BCE floor ``metrics.bce_floor(x).mean()``), an "above floor" column, the (mean) test BCE minus it.
    Returns [{moving: value, ("seeds": n,) header: cell, ..., ("above floor": float)}], in the order of values."""
    if not isinstance(moving, str) or moving not in grid_values(family):
        raise ValueError(f"moving must be a hyperparameter of {family} ({', '.join(grid_values(family))}), got {moving!r}")
    keys, names = tuple(keys), dict(names or {})
    if not keys or any(not isinstance(k, str) for k in keys):
        raise ValueError(f"keys must be a non-empty sequence of metric names, got {keys!r}")
    if floor is not None:
        floor = check_number("floor", floor, low=0)
    rows = []
    for value in values:
        params = {**fixed, moving: value}
        row = {moving: value}
        if seeds:
            spread = seed_spread(family, keys=tuple(dict.fromkeys(keys + ("bce",))), directory=directory, **params)
            row["seeds"] = len(spread[keys[0]]["seeds"])
            for key in keys:
                d = digits_of(key)
                row[names.get(key, key)] = f"{spread[key]['mean']:.{d}f} ± {spread[key]['std']:.{d}f}"
            bce = spread["bce"]["mean"]
        else:
            metrics_ = load_atlas(family, directory).entry(**params).metrics
            row |= {names.get(key, key): metrics_[key] for key in keys}
            bce = metrics_["bce"]
        if floor is not None:
            row["above floor"] = bce - floor
        rows.append(row)
    return rows


def digits_of(key: str) -> int:
    """Decimals ``metric_rows`` prints a metric with: 5 for "bce", 4 for "mean_activation" and other shares, 1 for
    unit counts ("active_units_per_digit", "units_for_mass", "l0")."""
    return {"bce": 5, "active_units_per_digit": 1, "units_for_mass": 1, "l0": 1}.get(key, 4)


def steps(rows: dict, key: str, unit: float = 1.0) -> np.ndarray:
    """The change of the metric ``key`` from each row of a ``series`` to the next, divided by ``unit`` (e.g. a
    seed standard deviation, so the changes read in sigmas): (len(rows) - 1,) floats."""
    return np.diff([row["metrics"][key] for row in rows.values()]) / unit


def margins(records: list, rivals: list, unit: dict) -> list:
    """Each record's margin: the lead of the rival that beats it by the most (``best_rivals``), as a list of
    floats in the order of ``records``. records, rivals, unit: as ``best_rivals``."""
    if not records:
        raise ValueError("records must be a non-empty list of atlas records")
    return [float(lead) for lead, _, _ in best_rivals(records, rivals, unit).values()]


def best_rivals(records: list, rivals: list, unit: dict) -> dict:
    """For each record, the rival that beats it by the most: {point_id of the record: (lead, key, rival params)}.

    A rival's lead over a record is the smaller of (record - rival) / unit[key] over the keys of ``unit``
    (e.g. {"units_for_mass": tolerance, "bce": tolerance}: lower is better on both), so a lead above 1
    means better by more than one unit on every key; key names the key that sets it. Records and rivals
    as ``Atlas.records``."""
    best = {}
    for record in records:
        leads = []
        for rival in rivals:
            lead, key = min(((record["metrics"][k] - rival["metrics"][k]) / u, k) for k, u in unit.items())
            leads.append((lead, key, rival["params"]))
        best[point_id(record["params"])] = max(leads, key=lambda lead: lead[0])
    return best


def leads(record: dict, reference: dict, unit: dict) -> dict:
    """A record's lead over a reference on each metric, in units: {key: (reference metric - record metric) /
    unit[key]} for every key of ``unit`` (lower is better on every metric, so positive means the record is
    better). record, reference: dicts with a "metrics" dict (as ``Atlas.records``); unit: {metric: positive
    tolerance}, e.g. the cross-family tolerance of ``noise_yardstick``."""
    if not isinstance(unit, dict) or not unit or any(not (isinstance(u, (int, float)) and u > 0) for u in unit.values()):
        raise ValueError(f"unit must be a non-empty dict {{metric: positive tolerance}}, got {unit!r}")
    missing = [k for k in unit for r in (record, reference) if k not in r.get("metrics", {})]
    if missing:
        raise ValueError(f"record and reference must both hold the metrics {sorted(unit)}; missing {sorted(set(missing))}")
    return {key: (reference["metrics"][key] - record["metrics"][key]) / u for key, u in unit.items()}


def activation_penalty_records(lam: float, rho: float, beta: float, directory=None) -> dict:
    """The atlas runs that separate the activation from the penalty (the L1 penalty on sigmoid codes, the ReLU
    model without and with it, the KL reference with either start), each a record as ``Atlas.records`` with a
    "model" label added.

    lam: the ReLU L1 weight shown beside lam = 0; rho, beta: the KL reference. Returns {"sigmoid L1": the L1
    atlas's sigmoid-code runs with a living unit (dead_fraction < 1), by increasing lam; "left out": the
    sigmoid-code runs with every unit dead; "ReLU L1": [lam = 0, lam]; "KL": [the KL reference with its
    logit(rho) start, the same with PyTorch's start]}."""
    lam, rho, beta = (check_number(n, v, low=0) for n, v in (("lam", lam), ("rho", rho), ("beta", beta)))
    l1_atlas, kl_atlas = load_atlas("l1", directory), load_atlas("kl", directory)
    on_sigmoid = sorted((dict(q, model=f"sigmoid L1, lam = {q['params']['lam']:g}") for q in l1_atlas.records(variants=True)
                         if q["params"].get("activation") == "sigmoid"), key=lambda q: q["params"]["lam"])
    relu = [{"model": f"ReLU L1, lam = {q:g}", "params": {"lam": q}, "metrics": l1_atlas.entry(lam=q).metrics}
            for q in (0.0, lam)]
    kl = [{"model": name, "params": q, "metrics": kl_atlas.entry(**q).metrics} for name, q in (
        ("KL reference (logit start)", {"rho": rho, "beta": beta}),
        ("KL, PyTorch's start, seed 0", {"rho": rho, "beta": beta, "start": "default"}))]
    return {"sigmoid L1": [q for q in on_sigmoid if q["metrics"]["dead_fraction"] < 1],
            "left out": [q for q in on_sigmoid if q["metrics"]["dead_fraction"] >= 1], "ReLU L1": relu, "KL": kl}


def table(records: list, columns: dict | None = None, *, formats: dict | None = None, default: str = ".4f") -> str:
    """A plain-text table, one row per record. records: dicts with "params" and "metrics" (as
    ``Atlas.records``), or any dicts; columns: {header: (what, format)}, where what is a metric or
    parameter name (looked up in record["metrics"], then record["params"], then the record itself) or a
    function of the record, and format a format spec such as ".4f" (None values print as "-").

    columns None: one column per key of the first record, in its order (for rows of plain values), each
    formatted with ``formats.get(key)`` or by its type: text left-aligned, integers "d", floats ``default``.
    """
    if columns is None:
        columns = {key: (key, (formats or {}).get(key) or _format_of(value, default))
                   for key, value in records[0].items()}

    def cell(record, what, spec):
        if callable(what):
            value = what(record)
        else:
            value = next((part[what] for part in (record.get("metrics", {}), record.get("params", {}), record)
                          if isinstance(part, dict) and what in part), None)
        return "-" if value is None else format(value, spec)

    rows = [[cell(record, what, spec) for what, spec in columns.values()] for record in records]
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(columns)]
    left = [str(spec).startswith("<") for _, spec in columns.values()]  # a "<" column is left-aligned

    def line(values):
        return "  ".join(v.ljust(w) if l else v.rjust(w) for v, w, l in zip(values, widths, left)).rstrip()

    return "\n".join([line(list(columns))] + [line(row) for row in rows])


def label(value) -> str:
    """A hyperparameter value as the notebooks print it: the shortest of "g" and a one-decimal mantissa
    with a bare exponent below 0.05, e.g. 0 -> "0", 4e-05 -> "4e-5", 0.00016 -> "1.6e-4", 0.02 -> "2e-2",
    0.08 -> "0.08", 0.15 -> "0.15". value: a finite number."""
    value = check_number("value", value)
    if value == 0 or 5e-2 <= abs(value) < 1e4:
        return format(value, "g")
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _format_of(value, default: str) -> str:
    """The format spec of a table cell by its type: text "<" (left-aligned), integers "d", floats ``default``."""
    if isinstance(value, str):
        return "<"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return "d"
    return default


def frontier(records: list, x_key: str = "units_for_mass", y_key: str = "bce", margins=(0.0, 0.0)) -> list:
    """The records no other record beats on both metrics (lower is better on both) by more than
    ``margins`` (x margin, y margin): with margins set to the seed spreads, the points whose lead is not
    larger than the noise stay on the frontier. Returned in the order given."""
    dx, dy = margins

    def beaten(a):
        return any(b["metrics"][x_key] < a["metrics"][x_key] - dx and b["metrics"][y_key] < a["metrics"][y_key] - dy
                   for b in records if b is not a)

    return [record for record in records if not beaten(record)]


def grid_table(families=("kl", "l1"), directory=None) -> str:
    """The stored grid as a small plain-text table, one row per swept setting family: the knob values stored at
    seed 0 with the recipe (the sigmoid-L1 runs, ``activation="sigmoid"``, in a row of their own), then one row
    per setting stored with more than one seed, with its number of seeds. families: atlas families to list."""
    if isinstance(families, str) or not families:
        raise ValueError("families must be a non-empty sequence of family names")
    rows = []
    for family in families:
        stored = load_atlas(family, directory).records(variants=True)
        knobs = tuple(grid_values(family))
        swept: dict = {}
        seeds: dict = {}
        for record in stored:
            params = dict(record["params"])
            seed = params.pop("seed", 0)
            extra = {k: v for k, v in params.items() if k not in knobs}
            if seed == 0 and set(extra) <= {"activation"}:
                row_label = f"{family.upper()}" + (f", {extra['activation']} codes" if extra else "")
                for knob in knobs:
                    swept.setdefault((row_label, knob), set()).add(params[knob])
            seeds.setdefault(point_id(params), set()).add(seed)
        for (row_label, knob), values in swept.items():
            rows.append({"runs": row_label, "knob": knob, "values": ", ".join(f"{v:g}" for v in sorted(values))})
        for point, stored_seeds in seeds.items():
            if len(stored_seeds) > 1:
                rows.append({"runs": f"{family.upper()} seeds", "knob": point, "values": f"{len(stored_seeds)} seeds"})
    return table(rows, {"runs": ("runs", "<"), "knob or setting": ("knob", "<"), "values": ("values", "<")})


def _list(directory) -> None:
    for family in GRID:
        path = atlas_path(family, directory)
        built = {e["id"]: e for e in _read(path, family)[0]["points"]} if path.is_file() else {}
        print(f"{family}: {len(built)} of {len(grid_points(family))} points built in {path}")
        for params in grid_points(family):
            entry = built.get(point_id(params))
            state = f"test BCE {entry['metrics']['bce']:.4f}, {entry['seconds']:.0f} s" if entry else "missing"
            print(f"  {point_id(params)}: {state}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sae_utils.atlas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=tuple(GRID), help="build this family only (default: all)")
    parser.add_argument("--point", help="build this one point only, e.g. rho=0.08,beta=0.005 or lam=4e-05")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=ATLAS_DIR, help=f"folder of the atlas files (default {ATLAS_DIR})")
    parser.add_argument("--list", action="store_true", help="list the grid and what is built, build nothing")
    parser.add_argument("--remeasure", action="store_true",
                        help="retrain the stored --point and add the metrics measured since it was built")
    parser.add_argument("--pixel-probe", action="store_true",
                        help=f"fit the linear probe on the raw pixels and store it as {PIXEL_PROBE}, build nothing else")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be an integer >= 1, got {args.threads}")
    jobs = {family: None for family in ([args.family] if args.family else GRID)}
    if args.point:
        try:
            family, params = parse_point(args.point, args.family)
        except ValueError as err:
            parser.error(str(err))
        jobs = {family: [params]}
    if args.list:
        _list(args.out)
        return 0
    if args.remeasure and not args.point:
        parser.error("--remeasure needs the --point to retrain (one stored point; each takes a full training run)")
    torch.set_num_threads(args.threads)
    if args.remeasure:
        family, points = next(iter(jobs.items()))
        return 1 if remeasure(family, points, args.out) else 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.pixel_probe:
        print(build_pixel_probe(args.out))
        return 0
    failed = [f"{family} {pid}" for family, points in jobs.items() for pid in build(family, points, args.out)]
    if failed:
        print(f"diverged, not stored: {'; '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
