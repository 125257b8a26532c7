"""The atlas: a stored point recomputes, and a tiny build is resumable, pickle-free and checks its inputs."""
import json
import math

import numpy as np
import pytest
import torch
from helpers import short_probe

from sae_utils import atlas, load_mnist, prepare_images
from sae_utils.metrics import ACTIVE_THRESHOLD
from sae_utils.train import TrainConfig, TrainingDivergedError, train


@pytest.mark.parametrize("family", list(atlas.GRID))
def test_a_stored_point_recomputes_its_first_epoch(family):
    """Retrain the first stored point of the family for 1 epoch (about 3 s) instead of 20 (about 2.5 min).

    Training is seeded, so epoch 1 of the 20-epoch run is the same computation as a 1-epoch run: its
    train objective and test BCE must match the stored history's first epoch. Measured on the L1
    reference point: with 1 thread they match exactly, with 2 threads to 3e-9 (test BCE exactly);
    1e-5 leaves room for other CPUs' float32 rounding and is still 100 times smaller than what
    another seed changes (1e-3 to 3e-3).
    """
    if not atlas.atlas_path(family).is_file():
        pytest.skip(f"the {family} atlas is not built yet (python -m sae_utils.atlas --family {family})")
    book = atlas.load_atlas(family)
    stored = book.entry(**book.points()[0])
    full = stored.config
    assert full.lr_decay < 1 - 1 / full.epochs  # the learning rate only starts to fall after epoch 1, so that
    config = TrainConfig(**{**full.as_dict(), "epochs": 1, "lr_decay": 0.0})  # epoch 1 is the same computation
    _, history = train(config, progress=False)
    assert history["train_objective"][0] == pytest.approx(stored.history["train_objective"][0], abs=1e-5)
    assert history["test_bce"][0] == pytest.approx(stored.history["test_bce"][0], abs=1e-5)


# A tiny stand-in for the grid and the recipe: 1 epoch of 10 batches on 2,000 digits, tested on 500.
TINY_GRID = {"kl": {"rho": (0.08,), "beta": (0.0, 0.005)}, "l1": {"lam": (0.0, 4e-5)}, "topk": {"k": (5, 10)}}


@pytest.fixture
def tiny(monkeypatch, train_digits, test_digits):
    """The tiny grid and recipe installed; returns the list of configs ``train`` was called with."""
    digits = {"train": train_digits, "test": test_digits}
    labels = {split: atlas.load_mnist(split)[1][:len(images)] for split, images in digits.items()}
    monkeypatch.setattr(atlas, "GRID", TINY_GRID)
    monkeypatch.setattr(atlas, "VARIANTS", {})
    monkeypatch.setattr(atlas, "load_mnist", lambda split: (digits[split].clone(), labels[split].clone()))
    monkeypatch.setattr(atlas, "point_config",
                        lambda family, params: TrainConfig(penalty=family, epochs=1, batch_size=200, **params))
    calls = []

    def counting_train(config, *args, **kwargs):
        calls.append(config)
        return train(config, *args, **kwargs)

    monkeypatch.setattr(atlas, "train", counting_train)
    monkeypatch.setattr(atlas, "linear_probe", short_probe)
    return calls


def test_build_is_resumable_and_skips_built_points(tiny, tmp_path, monkeypatch):
    assert atlas.build("kl", [{"rho": 0.08, "beta": 0.005}], tmp_path, progress=False) == []
    assert len(tiny) == 1
    original = atlas.train

    def interrupted(config, *args, **kwargs):  # Ctrl-C during the next point
        raise KeyboardInterrupt

    monkeypatch.setattr(atlas, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atlas.build("kl", None, tmp_path, progress=False)
    assert atlas.load_atlas("kl", tmp_path).points() == [{"rho": 0.08, "beta": 0.005}]  # the first point survived
    monkeypatch.setattr(atlas, "train", original)
    atlas.build("kl", None, tmp_path, progress=False)
    assert [c.beta for c in tiny] == [0.005, 0.0]  # only the missing point was trained
    atlas.build("kl", None, tmp_path, progress=False)
    assert len(tiny) == 2
    assert atlas.load_atlas("kl", tmp_path).points() == [{"rho": 0.08, "beta": 0.005}, {"rho": 0.08, "beta": 0.0}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kl.npz"]  # no temporary files left behind


def test_stored_file_shapes_dtypes_and_no_pickle(tiny, tmp_path):
    atlas.build("l1", None, tmp_path, progress=False)
    with np.load(tmp_path / "l1.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    assert {name: (a.dtype.str, a.shape) for name, a in arrays.items() if name != "meta"} == {
        "recon": ("|u1", (2, 20, 28, 28)), "features": ("|i1", (2, 64, 28, 28)),
        "feature_scale": ("<f4", (2, 64)), "feature_units": ("<i2", (2, 64)),
        "firing_frequency": ("<f4", (2, 512)), "mean_activation": ("<f4", (2, 512)),
        "digit_indices": ("<i8", (20,)), "top_digits": ("<i2", (2, 64, 9)), "top_values": ("<f4", (2, 64, 9)),
        "histogram": ("<i4", (2, 64, 20)), "edges": ("<f4", (2, 64, 21)),
    }
    meta = json.loads(str(arrays["meta"]))
    assert [p["id"] for p in meta["points"]] == ["lam=0", "lam=4e-05"]
    metrics = meta["points"][1]["metrics"]
    assert {"bce", "units_for_mass", "l0", "fraction_variance_unexplained", "dead_fraction", "probe_error"} <= metrics.keys()
    assert 0 < metrics["units_for_mass"] <= metrics["l0"] <= 512
    assert 0 <= metrics["probe_error"] < 0.9  # a code of 500 test digits still beats guessing


def test_topk_points_store_l0_at_most_k_the_wider_probe_and_dashboards(tiny, tmp_path, test_digits):
    atlas.build("topk", None, tmp_path, progress=False)
    book = atlas.load_atlas("topk", tmp_path)
    assert book.points() == [{"k": 5}, {"k": 10}]
    entry = book.entry(k=10)
    m = entry.metrics
    assert m["l0"] <= 10 and m["units_for_mass"] <= m["l0"] and m["probe_k"] == 30
    assert 0 <= m["probe_error"] < 0.9 and 0 <= m["probe_error_wider"] < 0.9
    assert entry.dashboards["top_digits"].shape == (64, 9) and entry.dashboards["histogram"].shape == (64, 20)
    first = entry.dashboards["top_digits"][0]
    unit = entry.feature_units[0]
    assert entry.dashboards["firing_frequency"][0] == entry.firing_frequency[unit]
    assert entry.dashboards["histogram"][0].sum() == round(entry.firing_frequency[unit] * len(test_digits))
    assert np.all(np.diff(entry.dashboards["top_values"][0]) <= 0) and len(set(first.tolist())) == 9


def test_entry_matches_the_trained_model(tiny, tmp_path, monkeypatch, test_digits):
    models = []

    def keeping_train(config, *args, **kwargs):
        models.append(train(config, *args, **kwargs))
        return models[-1]

    monkeypatch.setattr(atlas, "train", keeping_train)
    atlas.build("kl", [{"rho": 0.08, "beta": 0.005}], tmp_path, progress=False)
    entry = atlas.load_atlas("kl", tmp_path).entry(rho=0.08, beta=0.005)
    model = models[0][0]
    assert entry.config == TrainConfig(penalty="kl", epochs=1, batch_size=200, rho=0.08, beta=0.005)
    assert entry.metrics["l0"] is None  # sigmoid codes
    labels = atlas.load_mnist("test")[1]
    assert labels[entry.digit_indices].tolist() == [c for c in range(10) for _ in range(2)]
    assert entry.digit_indices[:2].tolist() == torch.nonzero(labels == 0).flatten()[:2].tolist()
    with torch.no_grad():
        x = test_digits[entry.digit_indices].float() / 255
        expected_recon = model.reconstruct(x).reshape(20, 28, 28).numpy()
        code = model.encode(test_digits.float() / 255)
    assert np.abs(entry.recon / 255 - expected_recon).max() <= 0.5 / 255 + 1e-6
    weights = model.decoder.weight.detach().T[torch.from_numpy(entry.feature_units)].reshape(64, 28, 28).numpy()
    scale = np.abs(weights).max(axis=(1, 2))
    assert np.all(np.abs(entry.features - weights) <= scale[:, None, None] * (0.5 / 127 + 1e-6))
    frequency = (code > ACTIVE_THRESHOLD["sigmoid"]).float().mean(dim=0).numpy()
    np.testing.assert_allclose(entry.firing_frequency, frequency)
    centred = code.double() - code.double().mean(dim=0)
    np.testing.assert_allclose(entry.metrics["unit_variance"], (centred ** 2).mean(dim=0).numpy(), rtol=1e-4)
    np.testing.assert_allclose(entry.mean_activation, code.mean(dim=0).numpy(), rtol=1e-5)
    chosen = entry.firing_frequency[entry.feature_units]
    assert np.all(np.diff(chosen) <= 0) and chosen[0] == frequency.max()  # the most often firing, in order


def test_measure_stores_the_scale_free_k90_and_each_units_top_class_share(tiny, train_digits, test_digits):
    from sae_utils import metrics
    config = TrainConfig(penalty="l1", epochs=1, batch_size=200)
    model, _ = train(config, train_digits, test_digits, progress=False)
    labels = atlas.load_mnist("test")[1]
    stored, _ = atlas.measure(model, config, test_digits, np.arange(20))   # labels: the (tiny) MNIST test labels
    x = prepare_images(test_digits)
    assert stored["units_for_mass_scale_free"] == pytest.approx(metrics.scale_measures(model, x, 4e-5)["k90 of y‖d‖"])
    by_hand = metrics.top_class_share(model.encode(x).detach(), labels, 50)   # its own test: a numpy loop
    assert stored["top_class_share"] == pytest.approx(by_hand.tolist())
    by_z = metrics.top_class_share(x @ model.encoder.weight.T + model.encoder.bias, labels, 50)   # z = W x + b
    assert stored["top_class_share_by_z"] == pytest.approx(by_z.tolist())
    rescaled = model.rescaled(torch.linspace(0.5, 2.0, model.n_hidden))    # y_j ‖d_j‖ is unchanged by any rescaling
    again, _ = atlas.measure(rescaled, config, test_digits, np.arange(20))
    assert again["units_for_mass_scale_free"] == pytest.approx(stored["units_for_mass_scale_free"], rel=1e-4)
    assert again["units_for_mass"] != pytest.approx(stored["units_for_mass"], rel=1e-4)


def test_mass_counts_take_k90_on_the_code_shifted_by_each_units_resting_level():
    from sae_utils.metrics import units_for_mass
    code = torch.rand(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) ** 3
    norm = torch.tensor([0.5, 1.0, 2.0, 3.0, 1.5, 0.25], dtype=torch.float64)
    median = code.numpy()[np.argsort(code.numpy(), axis=0)[19], np.arange(6)]          # the lower middle of 40
    above = torch.from_numpy(np.maximum(code.numpy() - median, 0.0))
    counts = atlas.mass_counts(code, norm)
    assert counts["units_for_mass"] == units_for_mass(code, 0.9)
    assert counts["units_for_mass_scale_free"] == units_for_mass(code * norm, 0.9)
    assert counts["units_for_mass_above_resting"] == units_for_mass(above, 0.9)
    assert counts["units_for_mass_above_resting_scale_free"] == units_for_mass(above * norm, 0.9)
    assert counts["units_for_mass_above_minimum"] == units_for_mass(code - code.min(dim=0).values, 0.9)
    constant = torch.full((40, 6), 0.08, dtype=torch.float64) + torch.eye(40, 6, dtype=torch.float64)  # rests at 0.08
    assert atlas.mass_counts(constant, norm)["units_for_mass_above_resting"] == pytest.approx(6 / 40)
    assert atlas.mass_counts(constant, norm)["units_for_mass"] > 5     # the resting level fills the raw count


def test_threshold_counts_by_hand():
    code = torch.tensor([[0.1, 0.6, 0.9], [0.3, 0.5, 0.0]], dtype=torch.float64)   # total 2.4
    counts = atlas.threshold_counts(code)
    assert counts["sum_share_at_or_below"] == pytest.approx({"0.3": 0.4 / 2.4, "0.5": 0.9 / 2.4, "0.7": 1.5 / 2.4})
    assert counts["units_above_per_digit"] == pytest.approx({"0.3": 1.5, "0.5": 1.0, "0.7": 0.5})   # > t: 0.3 and 0.5 not
    assert atlas.threshold_counts(code, (1.0,)) == {"sum_share_at_or_below": {"1": 1.0}, "units_above_per_digit": {"1": 0.0}}


def test_remeasure_adds_new_metrics_only_to_a_point_that_reproduces(tiny, tmp_path, monkeypatch):
    atlas.build("kl", [{"rho": 0.08, "beta": 0.005}], tmp_path, progress=False)
    path = atlas.atlas_path("kl", tmp_path)
    meta, arrays = atlas._read(path, "kl")
    full = dict(meta["points"][0]["metrics"])
    del meta["points"][0]["metrics"]["top_class_share"]       # as a point built before the metric existed
    atlas._write(path, meta, arrays)
    assert atlas.remeasure("kl", [{"rho": 0.08, "beta": 0.005}], tmp_path, progress=False) == []
    assert atlas.load_atlas("kl", tmp_path).entry(rho=0.08, beta=0.005).metrics == full   # added back, nothing else moved
    meta, arrays = atlas._read(path, "kl")
    del meta["points"][0]["metrics"]["top_class_share"]
    meta["points"][0]["metrics"]["bce"] += 1e-3               # a stored point this recipe does not reproduce
    atlas._write(path, meta, arrays)
    logged = []
    assert atlas.remeasure("kl", [{"rho": 0.08, "beta": 0.005}], tmp_path, progress=False,
                           log=logged.append) == ["rho=0.08,beta=0.005"]
    assert "does not reproduce" in logged[0]
    assert "top_class_share" not in atlas.load_atlas("kl", tmp_path).entry(rho=0.08, beta=0.005).metrics
    with pytest.raises(atlas.MissingSettingError, match="no stored point rho=0.08,beta=0 to remeasure"):
        atlas.remeasure("kl", [{"rho": 0.08, "beta": 0.0}], tmp_path, progress=False)


def test_an_l1_on_sigmoid_variant_is_built_stored_and_found(tiny, tmp_path, monkeypatch):
    """The ablation of L1's activation as a recipe variant: its text field round-trips through the point's
    name, the file, records(variants=True) and entry(); it is measured with its own penalty (the L1 penalty
    of a sigmoid code: the sum of the units' means) and the sigmoid rule of "active"."""
    variant = {"lam": 1e-3, "activation": "sigmoid"}
    monkeypatch.setattr(atlas, "VARIANTS", {"l1": (variant,)})
    assert atlas.grid_point("l1", {"activation": "sigmoid", "lam": 0.001}) == variant
    assert atlas.point_id(variant) == "lam=0.001,activation=sigmoid"
    assert atlas.parse_point("lam=0.001,activation=sigmoid") == ("l1", variant)
    atlas.build("l1", [variant], tmp_path, progress=False, log=lambda *_: None)
    book = atlas.load_atlas("l1", tmp_path)
    assert book.points() == [variant] and book.records() == []
    assert [r["params"] for r in book.records(variants=True)] == [variant]
    entry = book.entry(lam=1e-3, activation="sigmoid")
    assert entry.config.activation == "sigmoid" and entry.config.code_activation == "sigmoid"
    assert tiny[-1] == entry.config
    assert entry.metrics["l0"] is None  # sigmoid codes: no exact zeros
    assert np.all((entry.mean_activation > 0) & (entry.mean_activation < 1))
    assert entry.metrics["penalty"] == pytest.approx(entry.mean_activation.astype(np.float64).sum(), rel=1e-5)
    assert entry.metrics["objective"] == pytest.approx(entry.metrics["bce"] + 1e-3 * entry.metrics["penalty"])
    assert entry.metrics["dead_fraction"] == pytest.approx(np.mean(entry.firing_frequency == 0))  # y > 0.5 rule
    with pytest.raises(atlas.MissingSettingError, match="has no setting lam=0.001,activation=relu"):
        book.entry(lam=1e-3, activation="relu")


NEW_SIGMOID_POINTS = [{"lam": lam, "activation": "sigmoid"} for lam in (0.0, 1e-4, 2.5e-4, 5e-4, 1e-3, 4e-3, 1.6e-2)]


def test_the_shipped_l1_on_sigmoid_points_load_with_their_own_penalty():
    book = atlas.load_atlas("l1")
    assert [p for p in NEW_SIGMOID_POINTS if p not in book.points()] == []  # all shipped
    for params in NEW_SIGMOID_POINTS:
        entry = book.entry(**params)
        assert entry.config == TrainConfig(penalty="l1", **params) and entry.config.start == "family"
        assert entry.metrics["penalty"] == pytest.approx(entry.mean_activation.astype(np.float64).sum(), rel=1e-4)
        assert entry.metrics["l0"] is None


def test_unknown_settings_and_missing_files_have_clear_errors(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m sae_utils.atlas --family l1"):
        atlas.load_atlas("l1", tmp_path)
    atlas.build("kl", [{"rho": 0.08, "beta": 0.0}], tmp_path, progress=False)
    book = atlas.load_atlas("kl", tmp_path)
    with pytest.raises(KeyError, match=r"no setting rho=0.05,beta=0.005; its grid is rho in 0.08; beta in 0, 0.005"):
        book.entry(rho=0.05, beta=0.005)
    with pytest.raises(KeyError, match=r"rho=0.08,beta=0.005 is in the grid but not built.*--point rho=0.08,beta=0.005"):
        book.entry(rho=0.08, beta=0.005)
    with pytest.raises(ValueError, match="needs exactly the parameters rho, beta, got lam"):
        book.entry(lam=4e-5)
    with pytest.raises(ValueError, match="family must be one of 'kl', 'l1', 'topk', got 'sparse'"):
        atlas.load_atlas("sparse", tmp_path)
    assert atlas.grid_values("kl") == TINY_GRID["kl"]


def test_diverged_points_are_left_out(tiny, tmp_path, monkeypatch):
    def diverging(config, *args, **kwargs):
        raise TrainingDivergedError("training diverged", None, {})

    monkeypatch.setattr(atlas, "train", diverging)
    assert atlas.build("l1", None, tmp_path, progress=False, log=lambda line: None) == ["lam=0", "lam=4e-05"]
    assert not (tmp_path / "l1.npz").exists()


def test_a_file_from_another_recipe_is_not_extended(tiny, tmp_path, monkeypatch):
    atlas.build("l1", [{"lam": 0.0}], tmp_path, progress=False)
    monkeypatch.setattr(atlas, "point_config", lambda family, params: TrainConfig(penalty=family, epochs=2, **params))
    with pytest.raises(ValueError, match="lam=0 trained with .*not the current recipe"):
        atlas.build("l1", None, tmp_path, progress=False)


@pytest.mark.parametrize("argv, message", [
    (["--family", "sparse"], "invalid choice: 'sparse'"),
    (["--point", "rho=0.05,beta=0.005"], "the kl atlas has no setting rho=0.05,beta=0.005; its grid is rho in"),
    (["--point", "rho=0.08"], "names no family's parameters"),
    (["--point", "lam"], "must look like name=value"),
    (["--family", "kl", "--point", "lam=4e-05"], "needs exactly the parameters rho, beta, got lam"),
    (["--threads", "0"], "--threads must be an integer >= 1, got 0"),
    (["--remeasure"], "--remeasure needs the --point to retrain"),
])
def test_cli_rejects_bad_arguments_with_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        atlas.main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m sae_utils.atlas: error:") and message in error


def test_cli_builds_one_point_and_lists(tiny, tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert atlas.main(["--point", "lam=4e-5", "--threads", "1", "--out", str(tmp_path)]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert [c.lam for c in tiny] == [4e-5]
    assert "l1 lam=4e-05: test BCE" in capsys.readouterr().out
    assert atlas.main(["--list", "--out", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "l1: 1 of 2 points built" in listing and "lam=0: missing" in listing and "kl: 0 of 2" in listing
    try:
        assert atlas.main(["--remeasure", "--point", "lam=4e-5", "--threads", "1", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "l1 lam=4e-05: reproduced" in capsys.readouterr().out and len(tiny) == 2   # retrained once more


def test_the_pixel_probe_is_stored_as_fitted_and_read_back(tmp_path, monkeypatch):
    images, labels = load_mnist("test")
    data = ((images[:300], labels[:300]), (images[300:500], labels[300:500]))
    fits, fit = [], atlas.linear_probe
    monkeypatch.setattr(atlas, "linear_probe", lambda *args, **kwargs: fits.append(fit(*args, **kwargs)) or fits[-1])
    record = atlas.build_pixel_probe(tmp_path, data)
    assert (record["test_error"], record["train_error"]) == (fits[0]["test_error"], fits[0]["train_error"])
    assert 0 < record["test_error"] < 0.5 and (record["n_train"], record["n_test"], record["n_features"]) == (300, 200, 784)
    assert atlas.pixel_probe(tmp_path) == record
    with pytest.raises(FileNotFoundError, match="python -m sae_utils.atlas --pixel-probe"):
        atlas.pixel_probe(tmp_path / "elsewhere")
    monkeypatch.setattr(atlas, "build_pixel_probe", lambda directory: {"built in": str(directory)})
    assert atlas.main(["--pixel-probe", "--out", str(tmp_path)]) == 0


def test_the_shipped_pixel_probe_used_the_probe_settings_of_the_stored_codes():
    """Every stored probe_error was fitted with probe.L2 and MAX_ITERATIONS; so must its baseline be."""
    stored = atlas.pixel_probe()
    assert (stored["l2"], stored["max_iterations"]) == (atlas.L2, atlas.MAX_ITERATIONS)
    assert (stored["n_train"], stored["n_test"], stored["n_features"]) == (60_000, 10_000, 784)


@pytest.mark.parametrize("family", ["kl", "l1", "topk"])
def test_the_reference_points_are_the_shipped_models(family):
    """Same recipe, same seed: the atlas's reference entry and the pretrained card report the same run."""
    from sae_utils.families import FAMILIES
    from sae_utils.pretrained import load_pretrained

    _, card = load_pretrained(family)
    entry = atlas.load_atlas(family).entry(**FAMILIES[family].reference())
    assert entry.config == TrainConfig(**{**card["config"], "device": entry.config.device})
    assert entry.metrics["bce"] == pytest.approx(card["metrics"]["test"]["bce"], abs=1e-6)
    assert entry.history["train_objective"] == pytest.approx(card["history"]["train_objective"], abs=1e-6)


def test_seed_spread_collects_every_stored_seed_of_a_setting():
    import statistics

    spread = atlas.seed_spread("kl", keys=("bce",), rho=0.08, beta=0.005)["bce"]
    stored = atlas.load_atlas("kl")
    expected = [stored.entry(rho=0.08, beta=0.005, seed=s).metrics["bce"] for s in spread["seeds"]]  # seed=0: the grid's
    assert spread["seeds"][:3] == [0, 1, 2] and spread["values"] == expected
    assert stored.entry(rho=0.08, beta=0.005, seed=0).metrics == stored.entry(rho=0.08, beta=0.005).metrics
    assert stored.entry(rho=0.08, beta=0.005, seed=1).metrics != stored.entry(rho=0.08, beta=0.005).metrics
    assert spread["std"] == pytest.approx(statistics.stdev(expected)) and spread["max"] == max(expected)
    with pytest.raises(atlas.MissingSettingError, match="rho=0.16,beta=0.005 has 1 stored seed"):
        atlas.seed_spread("kl", rho=0.16, beta=0.005)


def test_table_and_frontier_by_hand():
    records = [{"params": {"lam": 0.0}, "metrics": {"bce": 0.066, "units_for_mass": 150.0}},
               {"params": {"lam": 4e-5}, "metrics": {"bce": 0.067, "units_for_mass": 84.0}},
               {"params": {"lam": 1e-5}, "metrics": {"bce": 0.0675, "units_for_mass": 120.0}}]
    text = atlas.table(records, {"λ": ("lam", "g"), "BCE": ("bce", ".4f"), "k90": (lambda r: r["metrics"]["units_for_mass"], ".1f")})
    assert text.splitlines() == ["    λ     BCE    k90", "    0  0.0660  150.0", "4e-05  0.0670   84.0",
                                 "1e-05  0.0675  120.0"]
    named = atlas.table(records[:1], {"setting": (lambda r: f"lam={r['params']['lam']:g}", "<12"), "BCE": ("bce", ".3f")})
    assert named.splitlines() == ["setting         BCE", "lam=0         0.066"]  # "<" columns are left-aligned
    plain = [{"model": "KL", "units": 512, "share": 0.25, "bce": 0.07}, {"model": "L1", "units": 239, "share": 0.5, "bce": 0.0671}]
    assert atlas.table(plain, formats={"share": ".0%"}, default=".3f").splitlines() == [
        "model  units  share    bce", "KL       512    25%  0.070", "L1       239    50%  0.067"]
    assert atlas.frontier(records) == records[:2]  # lam=1e-5 is beaten by lam=4e-5 on both axes
    assert atlas.frontier(records, margins=(10, 0.001)) == records  # ... but by less than 0.001 in BCE


def test_series_and_steps_follow_one_slider():
    by_beta = atlas.series("kl", "beta", rho=0.08)
    assert list(by_beta) == [0.0, 0.0015, 0.005, 0.015, 0.05, 0.15]
    stored = atlas.load_atlas("kl")
    bce = [stored.entry(rho=0.08, beta=b).metrics["bce"] for b in by_beta]
    assert [r["metrics"]["bce"] for r in by_beta.values()] == bce
    assert atlas.steps(by_beta, "bce", unit=0.001) == pytest.approx([(b - a) / 0.001 for a, b in zip(bce, bce[1:])])
    with pytest.raises(ValueError, match="a kl series moves one of beta, rho and fixes the others"):
        atlas.series("kl", "beta")


def test_a_variant_is_found_whatever_the_order_of_its_fields(monkeypatch):
    monkeypatch.setattr(atlas, "VARIANTS", {"kl": ({"rho": 0.08, "beta": 0.005, "start": "default", "seed": 1},)})
    wanted = {"rho": 0.08, "beta": 0.005, "seed": 1, "start": "default"}
    assert atlas.grid_point("kl", {"seed": 1, "start": "default", "beta": 0.005, "rho": 0.08}) == wanted
    assert atlas.parse_point("rho=0.08,beta=0.005,start=default,seed=1") == ("kl", wanted)


def test_best_rivals_by_hand():
    def record(params, k90, bce):
        return {"params": params, "metrics": {"units_for_mass": k90, "bce": bce}}

    kl = [record({"rho": 0.08, "beta": 0.005}, 237.0, 0.0700), record({"rho": 0.08, "beta": 0.0}, 337.0, 0.0663)]
    l1 = [record({"lam": 4e-5}, 84.0, 0.0671), record({"lam": 0.0}, 150.0, 0.0650)]
    unit = {"units_for_mass": 10.0, "bce": 0.001}
    best = atlas.best_rivals(kl, l1, unit)
    # rho 0.08, beta 0.005 against lam 4e-5: min(15.3, 2.9) = 2.9 on bce; against lam 0: min(8.7, 5.0) = 5.0 on bce
    assert best["rho=0.08,beta=0.005"][1:] == ("bce", {"lam": 0.0})
    assert best["rho=0.08,beta=0.005"][0] == pytest.approx(5.0)
    # rho 0.08, beta 0 against lam 4e-5: min(25.3, -0.8); against lam 0: min(18.7, 1.3) = 1.3 on bce
    assert best["rho=0.08,beta=0"][0] == pytest.approx(1.3) and best["rho=0.08,beta=0"][2] == {"lam": 0.0}


def test_pooled_sd_and_pair_tolerance_by_hand():
    def spread(values):
        values = np.asarray(values, dtype=np.float64)
        return {"bce": {"values": values.tolist(), "std": values.std(ddof=1)}}
    one, other = spread([1.0, 3.0]), spread([0.0, 0.0, 6.0])           # s^2 = 2 (1 dof) and 12 (2 dof)
    assert atlas.pooled_sd([one], "bce") == pytest.approx(2 ** 0.5)
    assert atlas.pooled_sd([one, other], "bce") == pytest.approx(((1 * 2 + 2 * 12) / 3) ** 0.5)
    assert atlas.pair_tolerance({"bce": 2.0, "k": 1.0}, {"bce": 2.0}) == {"bce": pytest.approx(6.0)}  # 3 sigma
    assert atlas.pair_tolerance({"bce": 3.0}, {"bce": 4.0}, c=1.0)["bce"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="at least one"):
        atlas.pooled_sd([], "bce")


def test_noise_yardstick_by_hand():
    def spread(bce, k90):
        return {"bce": {"values": list(bce), "std": float(np.std(bce, ddof=1))},
                "units_for_mass": {"values": list(k90), "std": float(np.std(k90, ddof=1))}}
    spreads = {("kl", "a"): spread([1.0, 3.0], [0.0, 2.0]), ("kl", "b"): spread([0.0, 0.0, 6.0], [1.0, 1.0, 1.5]),
               ("l1", "a"): spread([2.0, 4.0], [0.0, 4.0])}
    got = atlas.noise_yardstick(spreads, c=1.0)
    assert got["dof"] == {"kl": 3, "l1": 1}
    assert got["sigma"]["kl"]["bce"] == pytest.approx(((2 + 2 * 12) / 3) ** 0.5)       # s^2 = 2 and 12
    assert got["largest"]["kl"] == {"bce": pytest.approx(12 ** 0.5), "units_for_mass": pytest.approx(2 ** 0.5)}
    assert got["fold"]["kl"] == pytest.approx(max(12 ** 0.5 / 2 ** 0.5, 2 ** 0.5 / np.std([1, 1, 1.5], ddof=1)))
    assert got["tolerance"]["kl", "l1"]["bce"] == pytest.approx((26 / 3 + 2) ** 0.5)
    assert got["tolerance"]["l1", "l1"]["bce"] == pytest.approx(2.0)                   # sqrt(2 + 2)
    assert got["wide"]["bce"] == pytest.approx((12 + 2) ** 0.5)
    with pytest.raises(ValueError, match="exactly two families"):
        atlas.noise_yardstick({("kl", "a"): spreads["kl", "a"]})


def test_noise_verdict_bins_are_disjoint_and_symmetric():
    assert [atlas.noise_verdict(z) for z in (0.0, 2.0, -2.01, 4.0, 4.01, -9.0)] == [
        "within seed noise", "within seed noise", "borderline", "borderline", "beyond seed noise", "beyond seed noise"]


def test_compare_uses_each_settings_own_seeds_or_borrows_the_references():
    reference, free, grid = {"lam": 4e-5}, {"lam": 0.0}, {"lam": 1e-5}
    own = atlas.compare("l1", free, reference, "bce")                  # both settings have seeds
    sd_free = atlas.seed_spread("l1", ("bce",), **free)["bce"]["std"]
    sd_reference = atlas.seed_spread("l1", ("bce",), **reference)["bce"]["std"]
    values = [atlas.load_atlas("l1").entry(**p).metrics["bce"] for p in (free, reference)]
    assert own["change"] == pytest.approx(values[1] - values[0]) and not own["borrowed"]
    assert own["z"] == pytest.approx((values[1] - values[0]) / (sd_free ** 2 + sd_reference ** 2) ** 0.5)
    assert own["verdict"] == atlas.noise_verdict(own["z"])
    borrowed = atlas.compare("l1", grid, reference, "bce")             # lambda = 1e-5 has seed 0 only
    assert borrowed["borrowed"] and borrowed["s"] == pytest.approx(2 ** 0.5 * sd_reference)
    assert atlas.compare("l1", reference, grid, "bce")["z"] == pytest.approx(-borrowed["z"])


@pytest.mark.parametrize("family", ["kl", "l1"])
def test_the_shipped_models_fire_as_their_atlas_reference_entries_say(family):
    """The stored per-unit firing frequencies are the shipped weights' own, recomputed here on all test digits."""
    from sae_utils.families import FAMILIES
    from sae_utils.metrics import firing_frequency
    from sae_utils.pretrained import load_pretrained

    model, _ = load_pretrained(family)
    with torch.no_grad():
        code = model.encode(prepare_images(load_mnist("test")[0]))
    recomputed = firing_frequency(code, ACTIVE_THRESHOLD[model.activation]).numpy()
    stored = atlas.load_atlas(family).entry(**FAMILIES[family].reference()).firing_frequency
    np.testing.assert_allclose(recomputed, stored, atol=1e-4)


def test_label_prints_hyperparameters_short():
    cases = {0: "0", 0.0: "0", 4e-5: "4e-5", 1e-5: "1e-5", 1.6e-4: "1.6e-4", 6.4e-4: "6.4e-4", 2e-2: "2e-2",
             9e-3: "9e-3", 1e-3: "1e-3", 0.08: "0.08", 0.15: "0.15", 0.0015: "1.5e-3", 12.0: "12"}
    for value, text in cases.items():
        assert atlas.label(value) == text
        assert float(text) == pytest.approx(value)  # the text reads back as the value
    with pytest.raises(TypeError, match="value"):
        atlas.label("4e-5")


def test_entry_unit_scale_statistics_match_the_stored_columns():
    entry = atlas.load_atlas("l1").entry(lam=4e-5)
    stats = entry.unit_scale_statistics()
    units = entry.feature_units.astype(np.int64)
    lengths = np.sqrt((entry.features.astype(np.float64) ** 2).reshape(len(units), -1).sum(axis=1))
    assert np.allclose(stats["column_norm"].numpy()[units], lengths, rtol=1e-12)
    others = np.setdiff1d(np.arange(len(entry.firing_frequency)), units)
    assert np.isnan(stats["column_norm"].numpy()[others]).all()
    assert np.array_equal(stats["firing_frequency"].numpy(), entry.firing_frequency.astype(np.float64))
    assert np.array_equal(stats["mean_activation"].numpy(), entry.mean_activation.astype(np.float64))


def test_activation_penalty_records_against_the_atlas():
    groups = atlas.activation_penalty_records(4e-5, 0.08, 0.005)
    sigmoid = [q for q in atlas.load_atlas("l1").records(variants=True) if q["params"].get("activation") == "sigmoid"]
    lams = sorted(q["params"]["lam"] for q in sigmoid)
    kept = [q["params"]["lam"] for q in groups["sigmoid L1"]]
    assert kept == sorted(kept) and sorted(kept + [q["params"]["lam"] for q in groups["left out"]]) == lams
    assert all(q["metrics"]["dead_fraction"] == 1 for q in groups["left out"])
    assert groups["ReLU L1"][1]["metrics"]["bce"] == atlas.load_atlas("l1").entry(lam=4e-5).metrics["bce"]
    assert groups["KL"][0]["metrics"]["bce"] == atlas.load_atlas("kl").entry(rho=0.08, beta=0.005).metrics["bce"]


def test_l0_per_living_divides_by_the_living_units_only():
    # by hand: 512 units, a quarter dead -> 384 living; 96 of them on per digit -> 25 %
    assert atlas.l0_per_living(96.0, 0.25, 512) == 0.25
    np.testing.assert_allclose(atlas.l0_per_living([96.0, 192.0], [0.25, 0.5], 512), [0.25, 0.75])
    entry = atlas.load_atlas("l1").entry(lam=4e-5)          # against the stored firing frequencies
    living = entry.firing_frequency > 0
    assert atlas.l0_per_living(entry.metrics["l0"], entry.metrics["dead_fraction"], 512) == pytest.approx(
        entry.firing_frequency[living].mean(), rel=1e-4)  # L0 = sum of firing frequencies over living units
    with pytest.raises(ValueError, match="dead_fraction must lie in \\[0, 1\\), got 1.0"):
        atlas.l0_per_living(0.0, 1.0, 512)
    with pytest.raises(ValueError, match="l0 must lie in"):
        atlas.l0_per_living(400.0, 0.5, 512)
    with pytest.raises(ValueError, match="equal-length"):
        atlas.l0_per_living([1.0, 2.0], [0.1], 512)


def test_sparsity_rows_divide_l0_by_the_living_units_of_each_run():
    # by hand: 512 units, a quarter dead -> 384 living; 96 of them on per digit -> 25 %
    rows = atlas.sparsity_rows({"a": {"dead_fraction": 0.25, "l0": 96.0, "bce": 0.07},
                                "b": {"dead_fraction": 0.5, "l0": 192.0, "bce": 0.06}}, 512, first="run")
    assert rows == [{"run": "a", "dead units": 0.25, "L0 per digit": 96.0, "L0 / living units": 0.25, "test BCE": 0.07},
                    {"run": "b", "dead units": 0.5, "L0 per digit": 192.0, "L0 / living units": 0.75, "test BCE": 0.06}]
    entry = atlas.load_atlas("l1").entry(lam=4e-5)          # an entry: against its stored firing frequencies
    (row,) = atlas.sparsity_rows({"ref": entry}, 512)
    assert row["setting"] == "ref" and row["test BCE"] == entry.metrics["bce"]
    living = entry.firing_frequency > 0
    assert row["L0 / living units"] == pytest.approx(entry.firing_frequency[living].mean(), rel=1e-4)
    assert set(atlas.SPARSITY_FORMATS) == set(row) - {"setting"}
    with pytest.raises(ValueError, match="lacks the metrics \\['bce'\\]"):
        atlas.sparsity_rows({"x": {"dead_fraction": 0.1, "l0": 1.0}}, 512)
    with pytest.raises(ValueError, match="non-empty dict"):
        atlas.sparsity_rows({}, 512)


def test_metric_rows_match_the_stored_runs_and_their_seeds():
    import statistics

    stored = atlas.load_atlas("kl")
    rows = atlas.metric_rows("kl", "beta", (0.0, 0.15), ("bce", "units_for_mass"), names={"bce": "test BCE"},
                             floor=0.05, rho=0.08)
    for row, beta in zip(rows, (0.0, 0.15)):
        m = stored.entry(rho=0.08, beta=beta).metrics
        assert row == {"beta": beta, "test BCE": m["bce"], "units_for_mass": m["units_for_mass"],
                       "above floor": m["bce"] - 0.05}
    (seeded,) = atlas.metric_rows("kl", "beta", (0.005,), ("bce",), seeds=True, floor=0.05, rho=0.08)
    bces = [r["metrics"]["bce"] for r in stored.records(variants=True)
            if {k: v for k, v in r["params"].items() if k != "seed"} == {"rho": 0.08, "beta": 0.005}]
    assert seeded["seeds"] == len(bces) >= 3
    assert seeded["bce"] == f"{statistics.mean(bces):.5f} ± {statistics.stdev(bces):.5f}"
    assert seeded["above floor"] == pytest.approx(statistics.mean(bces) - 0.05, abs=1e-12)
    with pytest.raises(ValueError, match="moving must be"):
        atlas.metric_rows("kl", "lam", (0.0,), ("bce",), rho=0.08)
    with pytest.raises(ValueError, match="keys must be"):
        atlas.metric_rows("kl", "beta", (0.0,), (), rho=0.08)


def test_gallery_entries_label_the_reference_and_the_unpenalised_points():
    entries = atlas.gallery_entries([("kl", {"rho": 0.01, "beta": 0.005}), ("kl", {"rho": 0.08, "beta": 0.005}),
                                     ("l1", {"lam": 0.0}), ("l1", {"lam": 6.4e-4})])
    assert list(entries) == ["KL ρ=0.01, β=0.005", "KL ρ=0.08, β=0.005 (ref.)", "L1 λ=0 (no penalty)", "L1 λ=6.4e-4"]
    assert entries["L1 λ=6.4e-4"].metrics["bce"] == atlas.load_atlas("l1").entry(lam=6.4e-4).metrics["bce"]
    with pytest.raises(ValueError, match="point"):
        atlas.gallery_entries([("kl",)])


def test_leads_by_hand():
    reference = {"metrics": {"units_for_mass": 200.0, "bce": 0.070}}
    better = {"model": "a", "metrics": {"units_for_mass": 150.0, "bce": 0.068}}
    worse = {"model": "b", "metrics": {"units_for_mass": 260.0, "bce": 0.069}}
    unit = {"units_for_mass": 10.0, "bce": 0.0005}
    assert atlas.leads(better, reference, unit) == pytest.approx({"units_for_mass": 5.0, "bce": 4.0})
    assert atlas.leads(worse, reference, unit) == pytest.approx({"units_for_mass": -6.0, "bce": 2.0})
    with pytest.raises(ValueError, match="unit"):
        atlas.leads(better, reference, {"bce": 0.0})
    with pytest.raises(ValueError, match="missing"):
        atlas.leads({"metrics": {"bce": 0.07}}, reference, unit)


def test_start_rows_match_a_hand_computed_first_step():
    """Against an independent reference: the codes written out as sigmoid(x W^T + b) from freshly seeded
    nn.Linear layers (ours: bias set to logit(rho)), and the KL penalty written out by hand."""
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(50, 784, generator=gen)
    rho, beta = 0.08, 0.005
    rows = atlas.start_rows(x, rho=rho, beta=beta, n_hidden=16, seed=3)
    assert [r["start"] for r in rows] == ["ours", "PyTorch default"]
    torch.manual_seed(3)
    layer = torch.nn.Linear(784, 16)
    by_hand = {}
    for name, bias in (("ours", torch.full((16,), math.log(rho / (1 - rho)))), ("PyTorch default", layer.bias)):
        code = torch.sigmoid(x.double() @ layer.weight.detach().double().T + bias.detach().double())
        q = code.mean(dim=0)
        kl = (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()
        by_hand[name] = (float(code.mean()), float(beta * kl))
    for row in rows:
        mean, penalty = by_hand[row["start"]]
        assert math.isclose(row["mean code value"], mean, rel_tol=1e-5)
        assert math.isclose(row["weighted KL penalty"], penalty, rel_tol=1e-4)
    with pytest.raises(ValueError, match="rho"):
        atlas.start_rows(x, rho=1.5)
    with pytest.raises(ValueError, match="x must"):
        atlas.start_rows(x[0])


def test_margins_are_each_records_best_rival_lead_in_order():
    def record(params, mass, bce):
        return {"params": params, "metrics": {"units_for_mass": mass, "bce": bce}}
    kl = [record({"rho": 0.08, "beta": 0.005}, 200.0, 0.070), record({"rho": 0.32, "beta": 0.0015}, 100.0, 0.066)]
    l1 = [record({"lam": 4e-5}, 80.0, 0.067), record({"lam": 1e-5}, 90.0, 0.0655)]
    unit = {"units_for_mass": 10.0, "bce": 0.001}
    by_hand = [max(min((k["metrics"]["units_for_mass"] - r["metrics"]["units_for_mass"]) / 10.0,
                       (k["metrics"]["bce"] - r["metrics"]["bce"]) / 0.001) for r in l1) for k in kl]
    assert atlas.margins(kl, l1, unit) == pytest.approx(by_hand)      # 3.0 and 0.5
    with pytest.raises(ValueError, match="records"):
        atlas.margins([], l1, unit)


def test_grid_table_lists_the_stored_knob_values_and_the_seeded_settings():
    lines = atlas.grid_table(("kl",)).splitlines()
    rows = {tuple(line.split(None, 2)[:2]): line.split(None, 2)[2] for line in lines[1:] if not line.startswith("KL seeds")}
    assert rows["KL", "rho"] == "0.01, 0.02, 0.04, 0.08, 0.16, 0.32"
    assert rows["KL", "beta"] == "0, 0.0015, 0.005, 0.015, 0.05, 0.15"
    seeded = {line.split()[2]: int(line.split()[3]) for line in lines if line.startswith("KL seeds")}
    assert seeded["rho=0.08,beta=0.005"] == len(atlas.seed_spread("kl", rho=0.08, beta=0.005)["bce"]["seeds"]) == 5
    assert seeded["rho=0.08,beta=0"] == 3 and "rho=0.16,beta=0.005" not in seeded   # one seed: not listed
    assert "L1, sigmoid codes  lam" in atlas.grid_table(("l1",))
    with pytest.raises(ValueError):
        atlas.grid_table("kl")


def test_seeded_settings_are_grid_points_with_a_seed_spread():
    """Every setting seeded_settings lists is a grid point that seed_spread accepts (two seeds or more)."""
    for family in ("kl", "l1"):
        if not atlas.atlas_path(family).is_file():
            pytest.skip(f"the {family} atlas is not built yet")
        settings = atlas.seeded_settings(family)
        assert settings, f"no seeded {family} setting"
        for params in settings:
            assert set(params) == set(atlas.grid_values(family))
            assert len(atlas.seed_spread(family, ("bce",), **params)["bce"]["seeds"]) >= 2
    assert {"rho": 0.08, "beta": 0.005} in atlas.seeded_settings("kl")
    assert {"lam": 4e-5} in atlas.seeded_settings("l1")
