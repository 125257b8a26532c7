"""The explorer's widgets without a browser: controls over the atlas grid, every view wired, the snapshot."""
from __future__ import annotations

import io

import PIL.Image
import pytest

from sae_utils.explorer import Explorer, make_setting
from sae_utils import explorer_app, plots
from sae_utils.explorer_app import ExplorerApp, numbers_html


@pytest.fixture
def app(tiny_atlas) -> ExplorerApp:
    return ExplorerApp(Explorer(tiny_atlas))


def views(app) -> dict:
    return {name: getattr(app, name).value for name in ("reconstructions", "features", "statistics", "numbers")}


def test_the_app_starts_at_the_kl_reference_with_one_slider_per_hyperparameter(app):
    assert app.setting() == make_setting("kl")
    assert list(app.sliders) == ["rho", "beta", "lam", "k"]
    assert [v for _, v in app.sliders["beta"].options] == [0.0, 0.0015, 0.005, 0.015, 0.05, 0.15]
    assert "KL: ρ = 0.08, β = 0.005" in app.numbers.value and "from the atlas" in app.numbers.value
    assert app.sliders["lam"].disabled and app.sliders["k"].disabled and not app.sliders["beta"].disabled


def test_moving_beta_one_step_changes_every_view_to_that_setting(app):
    before = views(app)
    app.sliders["beta"].value = 0.015
    after = views(app)
    assert all(before[name] != after[name] for name in before)
    assert "β = 0.015" in after["numbers"]
    assert app.explorer.view(make_setting("kl", beta=0.015)).features_png == after["features"]


def test_moving_lam_while_kl_is_chosen_changes_nothing(app):
    before = views(app)
    app.sliders["lam"].value = 8e-5
    assert views(app) == before


def test_switching_family_enables_its_sliders_and_shows_its_reference(app):
    app.set(penalty="l1")
    assert app.setting() == make_setting("l1") and "L1: λ = 4e-05" in app.numbers.value
    assert app.sliders["rho"].disabled and app.sliders["beta"].disabled and not app.sliders["lam"].disabled
    assert "— (a sigmoid is almost never exactly 0)" not in app.numbers.value  # L1 codes have an L0


def test_the_digit_set_changes_only_the_reconstructions(app):
    before = views(app)
    app.set(digits="second")
    after = views(app)
    assert [name for name in before if before[name] != after[name]] == ["reconstructions"]


def test_the_reference_button_brings_every_slider_back(app):
    app.set(rho=0.16, lam=2e-5)
    app.reference.click()
    assert app.setting() == make_setting("kl") and app.sliders["lam"].value == 4e-5


def test_set_rejects_unknown_controls_and_values_off_the_grid(app):
    with pytest.raises(ValueError, match=r"unknown control\(s\) \['gamma'\]; the controls are penalty, digits, rho"):
        app.set(gamma=1)
    with pytest.raises(ValueError, match=r"beta must be one of \[0.0, 0.0015, 0.005, 0.015, 0.05, 0.15\], got 0.007"):
        app.set(beta=0.007)
    assert app.setting() == make_setting("kl")  # nothing moved


def test_numbers_state_the_yardstick_and_the_budget(app):
    html = numbers_html(app.explorer.view(make_setting("kl")))
    assert "units carrying 90 % of a digit's code mass" in html and "— (a sigmoid is almost never exactly 0)" in html
    assert "20 epochs on all 60,000 training digits" in html


def test_snapshot_is_a_picture_of_the_current_setting(app, monkeypatch):
    drawn = []
    monkeypatch.setattr(explorer_app, "numbers_rows", lambda view: drawn.append(view.setting) or [("setting", "x")])
    first = PIL.Image.open(io.BytesIO(app.snapshot()))
    app.set(beta=0.015)
    app.snapshot()
    assert first.format == "PNG" and first.width > PIL.Image.open(io.BytesIO(app.features.value)).width
    assert drawn[0] == make_setting("kl") and drawn[-1] == make_setting("kl", beta=0.015)  # the setting shown


def test_the_app_displays_as_its_widget_with_a_plain_text_line(app):
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("Sparse autoencoder explorer (interactive widgets)")


def test_the_k_slider_moves_the_topk_setting_and_only_when_topk_is_chosen(app):
    assert [v for _, v in app.sliders["k"].options] == [5, 10, 25, 50, 100, 200, 300]
    app.set(penalty="topk")
    assert app.setting() == make_setting("topk") and "TOPK: k = 25" in app.numbers.value
    assert not app.sliders["k"].disabled and app.sliders["beta"].disabled
    before = views(app)
    app.set(k=10)
    assert "k = 10" in app.numbers.value and views(app)["features"] != before["features"]


def test_the_unit_menu_shows_the_dashboard_of_the_unit_picked(app):
    view = app.explorer.view(app.setting())
    assert [v for _, v in app.unit.options] == list(range(64)) or len(app.unit.options) == len(view.feature_units)
    assert app.unit.options[0][0].startswith(f"unit {view.feature_units[0]} (active on")
    first = app.dashboard.value
    app.unit.value = 3
    assert app.dashboard.value != first
    assert app.dashboard.value == app.explorer.dashboard_png(app.setting(), 3)
    app.sliders["beta"].value = 0.015  # another setting keeps the position picked, for its own units
    assert app.unit.value == 3 and app.dashboard.value == app.explorer.dashboard_png(app.setting(), 3)


def test_never_active_units_are_counted_over_the_features_and_only_when_there_are_some():
    from sae_utils.atlas import load_atlas
    entry = load_atlas("l1").entry(lam=6.4e-4)                     # the shipped atlas
    n_never = int((entry.firing_frequency[entry.feature_units] == 0).sum())
    assert n_never > 0   # at the largest lambda, some of the 64 units drawn are never active
    shipped = Explorer()
    title = explorer_app.features_title(shipped.view(make_setting("l1", lam=6.4e-4)))
    assert title.endswith(f"; {n_never} of 64 never active (grey))")
    assert "never active" not in explorer_app.features_title(shipped.view(make_setting("kl")))


def test_snapshot_labels_each_feature_tile_with_its_unit_and_frequency_at_the_tile(app, monkeypatch):
    import sae_utils.files

    figures = []
    monkeypatch.setattr(sae_utils.files, "figure_png", lambda fig, **kw: figures.append(fig) or b"")
    app.snapshot()
    view = app.explorer.view(app.setting())
    labelled = [ax for ax in figures[0].axes if ax.texts]
    assert len(labelled) == 1
    texts = labelled[0].texts
    assert [t.get_text() for t in texts] == [explorer_app.tile_label(int(u), float(f)) for u, f in
                                             zip(view.feature_units, view.feature_frequency)]
    height, width = labelled[0].images[0].get_array().shape[:2]
    corners = plots.feature_tile_corners(len(view.feature_units), width, height)
    assert [t.get_position() for t in texts] == [(x + 1, y + 1) for x, y in corners]
    assert explorer_app.tile_label(72, 0.0671) == "72: 6.7%"


def test_snapshot_keeps_every_colour_when_asked(app):
    quantised = PIL.Image.open(io.BytesIO(app.snapshot()))
    full = PIL.Image.open(io.BytesIO(app.snapshot(colors=None)))
    assert quantised.mode == "P" and full.mode in ("RGB", "RGBA") and full.size == quantised.size
    assert len(full.convert("RGB").getcolors(maxcolors=1 << 24)) > 256
    with pytest.raises(ValueError, match="colors"):
        app.snapshot(colors=1)


def test_show_snapshot_displays_the_full_colour_snapshot_and_the_dashboard_asked_for(tiny_atlas, monkeypatch):
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects: shown.extend(objects))
    explorer = Explorer(tiny_atlas)
    reference = ExplorerApp(explorer)
    pngs = explorer_app.show_snapshot(dashboard_rank=0, explorer=explorer)
    assert pngs == [reference.snapshot(colors=None), explorer.dashboard_png(make_setting("kl"), 0)]
    assert [image.data for image in shown] == pngs
    moved = ExplorerApp(explorer)
    moved.set(penalty="kl", beta=0.015)
    assert explorer_app.show_snapshot(explorer=explorer, beta=0.015) == [moved.snapshot(colors=None)]
    again = explorer_app.show_snapshot(explorer=explorer)   # back at the reference: the setting does not stick
    assert again == [pngs[0]]
    with pytest.raises(ValueError, match="dashboard_rank"):
        explorer_app.show_snapshot(dashboard_rank=-1, explorer=explorer)


def test_controls_picture_shows_the_controls_as_they_stand(app):
    state = explorer_app.controls_state(app)
    assert state["family"] == "KL (sigmoid codes)" and state["digits"] == "first of each class"
    assert [s["label"] for s in state["sliders"]] == ["ρ (KL target)", "β (KL weight)", "λ (L1 weight)", "k (units kept)"]
    assert [s["value"] for s in state["sliders"][:2]] == ["0.08", "0.005"]
    assert [s["enabled"] for s in state["sliders"]] == [True, True, False, False]
    assert state["sliders"][1]["options"] == ["0", "0.0015", "0.005", "0.015", "0.05", "0.15"]
    before = explorer_app.controls_png(app)
    assert PIL.Image.open(io.BytesIO(before)).format == "PNG"
    app.set(penalty="l1", lam=8e-5)
    moved = explorer_app.controls_state(app)
    assert moved["family"] == "L1 (ReLU codes)" and moved["sliders"][2]["value"] == "8e-05"
    assert [s["enabled"] for s in moved["sliders"]] == [False, False, True, False]
    assert explorer_app.controls_png(app) != before
