"""The explorer's logic without widgets: settings on the atlas grid, views drawn from atlas entries, the cache.

A tiny atlas (the ``tiny_atlas`` fixture) stands in for the shipped one.
"""
from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest

from sae_utils import atlas, explorer
from sae_utils.explorer import Explorer, Setting, make_setting, reference_setting

@pytest.fixture
def ex(tiny_atlas) -> Explorer:
    return Explorer(tiny_atlas)


def png_size(data: bytes) -> tuple[int, int]:
    return PIL.Image.open(io.BytesIO(data)).size


# --- settings -----------------------------------------------------------------------------------------

def test_make_setting_keeps_the_familys_values_and_fills_in_references():
    assert make_setting("kl", rho=0.16, lam=6.4e-4) == Setting("kl", (("rho", 0.16), ("beta", 0.005)))
    assert make_setting("l1", rho=0.16, beta=0.15) == Setting("l1", (("lam", 4e-5),))
    assert reference_setting("kl").label() == "KL: ρ = 0.08, β = 0.005"
    assert reference_setting("l1").is_reference and not make_setting("l1", lam=0.0).is_reference


def test_a_value_off_by_float_rounding_snaps_to_the_grid_value():
    assert make_setting("kl", beta=0.005000000000000001).as_dict()["beta"] == 0.005


@pytest.mark.parametrize("kwargs, error, words", [
    ({"penalty": "l2"}, ValueError, ["penalty must", "'l2'", "'kl', 'l1'"]),
    ({"penalty": "kl", "beta": 0.007}, ValueError, ["beta must be one of the atlas grid values", "0.015", "got 0.007"]),
    ({"penalty": "kl", "rho": 1.5}, ValueError, ["rho must lie in (0, 1)", "1.5"]),
    ({"penalty": "l1", "lam": "big"}, TypeError, ["lam must be a real number", "'big'"]),
    ({"penalty": "topk", "k": 7}, ValueError, ["k must be one of the atlas grid values", "5, 10, 25", "got 7"]),
    ({"penalty": "topk", "k": 2.5}, TypeError, ["k must be an integer >= 1", "2.5"]),
    ({"penalty": "topk", "k": 0}, ValueError, ["k must be an integer >= 1, got 0"]),
])
def test_make_setting_rejects_bad_values_naming_them(kwargs, error, words):
    with pytest.raises(error) as caught:
        make_setting(**kwargs)
    assert all(word in str(caught.value) for word in words), str(caught.value)


# --- views from the atlas -----------------------------------------------------------------------------

def test_a_view_shows_the_atlas_numbers_of_its_setting(ex, tiny_atlas):
    setting = make_setting("kl", beta=0.015)
    view = ex.view(setting)
    stored = atlas.load_atlas("kl", tiny_atlas).entry(rho=0.08, beta=0.015)
    assert view.metrics == stored.metrics and view.history == stored.history
    assert "20 epochs on all 60,000" in view.source  # the recipe of the shipped atlas, stated on screen


def test_reconstructions_put_the_test_digits_above_their_stored_reconstructions(ex, tiny_atlas):
    view = ex.view(reference_setting("l1"))
    stored = atlas.load_atlas("l1", tiny_atlas).entry(lam=4e-5)
    image = np.asarray(PIL.Image.open(io.BytesIO(view.reconstructions["second"])).convert("L"), dtype=float) / 255
    # 10 digits side by side, each drawn 2x2 per pixel with 2-value gaps: (2 * 28 + 2) * 2 rows, 10 columns
    assert image.shape == ((2 * 28 + 2) * 2, (10 * 28 + 9 * 2) * 2)
    top_left = image[:56:2, :56:2]  # first digit of the set "second": the second test digit of class 0
    digit = explorer.load_mnist("test")[0][stored.digit_indices[1]].numpy() / 255
    np.testing.assert_allclose(top_left, digit, atol=1 / 255 + 1e-9)
    bottom_left = image[60:116:2, :56:2]  # the second row starts after 28 values and a gap of 2
    np.testing.assert_allclose(bottom_left, stored.recon[1] / 255, atol=1 / 255 + 1e-9)


def test_the_statistics_mark_the_target_rho_only_where_the_penalty_acts(ex, tiny_atlas, monkeypatch):
    drawn = []
    real = explorer.plot_unit_statistics
    monkeypatch.setattr(explorer, "plot_unit_statistics", lambda *args: drawn.append(args[2]) or real(*args))
    entry = atlas.load_atlas("kl", tiny_atlas).entry(rho=0.08, beta=0.005)
    for setting in (make_setting("kl", beta=0.005), make_setting("kl", beta=0.0), reference_setting("l1")):
        ex.statistics_png(setting, entry)
    assert drawn == [0.08, None, None]       # beta = 0: rho only sets the start; L1 has no rho


def test_a_seen_setting_comes_from_the_cache(ex, monkeypatch):
    first = ex.view(reference_setting("kl"))
    monkeypatch.setattr(explorer, "load_atlas", lambda *a, **k: pytest.fail("read the atlas again"))
    assert ex.view(reference_setting("kl")) is first and ex.is_cached(reference_setting("kl"))


def test_neighbours_are_one_grid_step_away_with_their_test_bce(ex, tiny_atlas):
    steps = ex.neighbours(reference_setting("kl"))
    assert [(name, value) for name, value, _ in steps] == \
        [("rho", 0.04), ("rho", 0.16), ("beta", 0.0015), ("beta", 0.015)]
    book = atlas.load_atlas("kl", tiny_atlas)
    assert steps[3][2] == book.entry(rho=0.08, beta=0.015).metrics["bce"]


def test_a_grid_setting_missing_from_the_atlas_names_the_build_command(ex):
    with pytest.raises(KeyError, match=r"python -m sae_utils.atlas --point rho=0.32,beta=0.15"):
        ex.view(make_setting("kl", rho=0.32, beta=0.15))


def test_view_rejects_what_is_not_a_setting(ex):
    with pytest.raises(TypeError, match=r"setting must be a Setting \(use make_setting\), got dict"):
        ex.view({"penalty": "kl"})


def test_a_dashboard_shows_a_stored_unit_and_refuses_a_rank_outside_them(ex, tiny_atlas):
    setting = make_setting("topk", k=10)
    entry = atlas.load_atlas("topk", tiny_atlas).entry(k=10)
    png = ex.dashboard_png(setting, 0)
    assert png_size(png)[0] > 300 and png != ex.dashboard_png(setting, 1)
    n = len(entry.feature_units)
    with pytest.raises(ValueError, match=rf"rank must be an integer in \[0, {n - 1}\]"):
        ex.dashboard_png(setting, n)
