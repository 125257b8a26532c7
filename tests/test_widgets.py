"""The explorer without a browser: settings, parsing, views, the cache, and the controls' wiring.

Models are trained with a tiny recipe (1 epoch on 2,000 digits, 32 hidden units: ~0.2 s each).
"""
from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import sae_utils
from sae_utils import widgets
from sae_utils.widgets import (Explorer, ExplorerApp, QuickRecipe, Setting, make_setting, parse_digits,
                               reference_setting, tile)

TINY = QuickRecipe(epochs=1, train_size=2000, batch_size=100, n_hidden=32)


@pytest.fixture
def explorer(train_digits, test_digits) -> Explorer:
    return Explorer(test_digits[:300], train_digits, recipe=TINY)


@pytest.fixture
def count_training(monkeypatch):
    """Count the calls of sae_utils.train made by the explorer."""
    calls = []

    def counting_train(*args, **kwargs):
        calls.append(args[0])
        return sae_utils.train(*args, **kwargs)

    monkeypatch.setattr(widgets, "train", counting_train)
    return calls


def decode_png(data: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(data), format="png")


# --- settings and inputs ---------------------------------------------------------------------------

def test_make_setting_keeps_only_the_parameters_the_penalty_uses():
    assert make_setting("kl", rho=0.1, beta=0.02, lam=1e-3) == Setting("kl", rho=0.1, beta=0.02)
    assert make_setting("l1", rho=0.1, beta=0.02, lam=1e-3) == Setting("l1", lam=1e-3)
    # Moving lam while KL is chosen is not a new setting.
    assert make_setting("kl", lam=1e-5) == make_setting("kl", lam=1e-3)


def test_log_slider_positions_round_to_the_reference_values():
    # The log sliders step by 0.1 in log10: the positions nearest the reference give 10**-2.3, 10**-4.4.
    assert make_setting("kl", rho=0.08000000000000002, beta=10 ** -2.3) == reference_setting("kl")
    assert make_setting("l1", lam=10 ** -4.4) == reference_setting("l1")
    assert reference_setting("kl") == Setting("kl", rho=0.08, beta=0.005)
    assert reference_setting("l1").lam == 4e-5
    assert reference_setting("kl").is_reference and not make_setting("kl", beta=0.01).is_reference


@pytest.mark.parametrize("kwargs, error, words", [
    ({"penalty": "l2"}, ValueError, ["penalty", "'l2'"]),
    ({"rho": 0.7}, ValueError, ["rho", "[0.01, 0.5]", "0.7"]),
    ({"rho": 0.0}, ValueError, ["rho", "0.0"]),
    ({"beta": -0.1}, ValueError, ["beta", "-0.1"]),
    ({"beta": float("nan")}, ValueError, ["beta", "nan"]),
    ({"beta": "0.1"}, TypeError, ["beta", "str"]),
    ({"penalty": "l1", "lam": 0.5}, ValueError, ["lam", "[0, 0.01]", "0.5"]),
    ({"penalty": "l1", "lam": None}, TypeError, ["lam", "None"]),
])
def test_make_setting_rejects_bad_values_naming_them(kwargs, error, words):
    with pytest.raises(error) as info:
        make_setting(**kwargs)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_parse_digits_accepts_indices_and_rejects_the_rest():
    assert parse_digits(" 3, 2,1 ;0 ", n_test=10) == [3, 2, 1, 0]
    for text, words in [("", ["1 to 20", "got 0"]), (",".join(["1"] * 21), ["got 21"]),
                        ("1, 10", ["0 to 9", "'10'"]), ("1, -2", ["'-2'"]), ("1, 2.5", ["'2.5'"]),
                        ("seven", ["'seven'"])]:
        with pytest.raises(ValueError) as info:
            parse_digits(text, n_test=10)
        assert all(word in str(info.value) for word in words), (text, str(info.value))
    with pytest.raises(TypeError, match="string"):
        parse_digits([1, 2], n_test=10)


def test_one_of_each_class_finds_the_first_digit_of_every_class():
    labels = sae_utils.load_mnist("test")[1]
    indices = widgets.one_of_each_class(labels)
    assert [int(labels[i]) for i in indices] == list(range(10))
    assert all(int(labels[j]) != int(labels[i]) for i in indices for j in range(i))
    assert widgets.one_of_each_class(torch.tensor([5, 1, 1, 5])) == [1, 0]


def test_quick_recipe_validates():
    with pytest.raises(ValueError, match="batch_size"):
        QuickRecipe(train_size=100, batch_size=200)
    with pytest.raises(TypeError, match="epochs"):
        QuickRecipe(epochs=1.5)


# --- views ----------------------------------------------------------------------------------------

def test_tile_places_images_row_by_row_with_gaps():
    images = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    mosaic = tile(images, cols=2, gap=1, fill=-1)
    expected = np.array([[0, 1, -1, 4, 5],
                         [2, 3, -1, 6, 7],
                         [-1, -1, -1, -1, -1],
                         [8, 9, -1, -1, -1],
                         [10, 11, -1, -1, -1]], dtype=np.float32)
    np.testing.assert_array_equal(mosaic, expected)


def test_to_png_enlarges_each_value_into_a_block():
    array = np.array([[0.0, 1.0], [1.0, 0.0]])
    image = decode_png(widgets.to_png(array, scale=3))
    assert image.shape[:2] == (6, 6)
    np.testing.assert_allclose(image[:3, :3, 0], 0.0)   # gray colormap: 0 is black,
    np.testing.assert_allclose(image[:3, 3:, 0], 1.0)   # 1 is white


def test_reconstructions_show_the_digits_above_the_model_output(explorer):
    result = explorer.result(make_setting("kl"))
    image = decode_png(explorer.reconstructions(result, [0, 1, 2]))
    assert image.shape[:2] == (2 * (2 * 28 + 2), 2 * (3 * 28 + 2 * 2))
    top_left = image[:56:2, :56:2, 0]  # the first input digit, one pixel per 2x2 block
    np.testing.assert_allclose(top_left, explorer.test_images[0].reshape(28, 28).numpy(), atol=1 / 255)


# --- the explorer's logic -------------------------------------------------------------------------

def test_a_cached_setting_is_not_trained_again(explorer, count_training):
    setting = make_setting("kl", rho=0.1, beta=0.01)
    first = explorer.result(setting)
    assert explorer.result(setting) is first
    assert explorer.result(make_setting("kl", rho=0.1, beta=0.01, lam=1e-3)) is first
    assert len(count_training) == 1 and count_training[0].beta == 0.01 and count_training[0].epochs == 1
    explorer.result(make_setting("kl", rho=0.1, beta=0.02))
    assert len(count_training) == 2


def test_raising_beta_lowers_the_mean_activation_towards_rho(explorer):
    means = [explorer.result(make_setting("kl", rho=0.05, beta=beta)).metrics["mean_activation"]
             for beta in (0.0, 0.01, 1.0)]
    assert means[0] > means[1] > means[2]
    assert abs(means[2] - 0.05) < 0.02, means


def test_lam_zero_puts_no_l1_pressure_on_the_codes(explorer, count_training):
    free = explorer.result(make_setting("l1", lam=0.0))
    assert count_training[0].lam == 0.0
    assert free.metrics["objective"] == free.metrics["bce"]  # bce + 0 * penalty
    assert free.metrics["penalty"] > 0  # the codes are not sparse by themselves
    pressed = explorer.result(make_setting("l1", lam=3e-3))
    assert pressed.metrics["mean_activation"] < 0.1 * free.metrics["mean_activation"]
    assert pressed.metrics["active_units_per_digit"] < free.metrics["active_units_per_digit"]


def test_the_reference_setting_uses_the_pretrained_model(explorer, count_training):
    result = explorer.result(reference_setting("l1"))
    pretrained, card = sae_utils.load_pretrained("l1")
    assert not count_training and "pretrained" in result.source
    for mine, shipped in zip(result.model.state_dict().values(), pretrained.state_dict().values()):
        assert torch.equal(mine, shipped)
    explorer.use_pretrained = False
    quick = explorer.result(reference_setting("l1"))
    assert len(count_training) == 1 and "quick" in quick.source and quick.model.n_hidden == 32


def test_a_missing_pretrained_model_is_replaced_by_quick_training(train_digits, test_digits, tmp_path):
    explorer = Explorer(test_digits[:300], train_digits, recipe=TINY, pretrained_dir=tmp_path)
    result = explorer.result(reference_setting("kl"))
    assert "quick" in result.source and "kl.json" in explorer.notes[0]


def test_training_restores_the_number_of_torch_threads(explorer):
    original = torch.get_num_threads()
    torch.set_num_threads(3)  # not the quick recipe's count, so a forgotten restore shows
    try:
        explorer.result(make_setting("kl", beta=0.02))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(original)


def test_explorer_rejects_bad_arguments(train_digits, test_digits):
    with pytest.raises(ValueError, match="train_size = 15000"):
        Explorer(test_digits, train_digits)
    with pytest.raises(TypeError, match="train_images must be a torch.Tensor, got list"):
        Explorer(test_digits, [[0] * 784] * 2000, recipe=TINY)
    with pytest.raises(ValueError, match="train_images must have values in"):
        Explorer(test_digits, train_digits.float(), recipe=TINY)  # 0-255 floats: not divided by 255
    with pytest.raises(TypeError, match="make_setting"):
        Explorer(test_digits, train_digits, recipe=TINY).result(("kl", 0.08, 0.005, None))


# --- the controls ---------------------------------------------------------------------------------

@pytest.fixture
def app(explorer) -> ExplorerApp:
    return ExplorerApp(explorer, progress=False)


def shown(app) -> tuple[bytes, bytes, bytes, str]:
    return app.reconstructions.value, app.features.value, app.histogram.value, app.numbers.value


def test_the_default_digits_are_one_of_each_class_when_labels_are_known(explorer, test_digits):
    assert ExplorerApp(explorer, progress=False).digits.value == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    labels = sae_utils.load_mnist("test")[1][:300]
    labelled = Explorer(test_digits[:300], explorer.train_images, test_labels=labels, recipe=TINY)
    assert ExplorerApp(labelled, progress=False).digits.value == "3, 2, 1, 18, 4, 8, 11, 0, 61, 7"


def test_the_app_starts_at_the_pretrained_kl_reference(app):
    assert app.setting() == reference_setting("kl")
    assert "pretrained" in app.numbers.value and "0.08" in app.numbers.value
    assert all(shown(app)) and app.message.value == ""
    assert (app.rho.disabled, app.beta.disabled, app.lam.disabled) == (False, False, True)


def test_moving_beta_retrains_and_changes_every_view(app):
    before = shown(app)
    app.beta.value = 0.5
    after = shown(app)
    assert app.setting() == make_setting("kl", beta=0.5)
    assert all(old != new for old, new in zip(before, after))
    assert "β = 0.5" in app.numbers.value and "quick training" in app.numbers.value


def test_raising_beta_with_the_slider_lowers_the_mean_activation_shown(app):
    app.set(rho=0.05, beta=1e-4)
    low = app.explorer.result(app.setting()).metrics["mean_activation"]
    app.beta.value = 1.0
    high = app.explorer.result(app.setting()).metrics["mean_activation"]
    assert high < low
    assert f"{high:.4f}" in app.numbers.value


def test_moving_lam_while_kl_is_chosen_does_not_retrain(app, count_training):
    numbers = app.numbers.value
    app.lam.value = 1e-3
    assert not count_training and app.numbers.value == numbers


def test_switching_penalty_and_the_off_box_enable_the_relevant_sliders(app, count_training):
    app.penalty.value = "l1"
    assert (app.rho.disabled, app.beta.disabled, app.lam.disabled) == (True, True, False)
    assert "L1: λ = 4e-05" in app.numbers.value and not count_training  # the pretrained L1 model
    app.off.value = True
    assert app.lam.disabled and app.setting() == make_setting("l1", lam=0.0)
    assert count_training[-1].lam == 0.0


def test_digits_text_changes_only_the_reconstructions(app, count_training):
    recon, features, histogram, numbers = shown(app)
    app.digits.value = "5, 6"
    assert app.reconstructions.value != recon and shown(app)[1:] == (features, histogram, numbers)
    assert decode_png(app.reconstructions.value).shape[1] == 2 * (2 * 28 + 2)
    assert not count_training


def test_invalid_digits_show_an_error_and_keep_the_views(app):
    before = shown(app)
    app.digits.value = "1, 99999"
    assert "Invalid input" in app.message.value and "0 to 299" in app.message.value
    assert shown(app) == before
    app.digits.value = "1, 2"
    assert app.message.value == ""


def test_the_reference_button_returns_to_the_pretrained_model(app, count_training):
    app.set(penalty="l1", lam=1e-3, off=True, use_pretrained=False)
    assert len(count_training) == 1
    app.reference.click()
    assert app.setting() == reference_setting("l1") and app.use_pretrained.value
    assert "pretrained" in app.numbers.value and len(count_training) == 1


def test_a_cached_setting_redraws_without_training(app, count_training):
    app.beta.value = 0.05
    views = shown(app)
    app.beta.value = 0.005
    app.beta.value = 0.05
    assert shown(app) == views and len(count_training) == 1
    assert math.isfinite(app.seconds)


def test_the_app_displays_as_its_widget_with_a_plain_text_line(app):
    bundle = app._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == app.widget.model_id
    assert "run the notebook's cells" in bundle["text/plain"]


def test_set_rejects_unknown_controls(app):
    with pytest.raises(ValueError, match="gamma"):
        app.set(gamma=1)


def test_a_diverging_setting_shows_the_error(app, monkeypatch):
    def diverge(*_args, **_kwargs):
        raise sae_utils.TrainingDivergedError("training diverged: the loss became nan", None, {})

    monkeypatch.setattr(widgets, "train", diverge)
    before = shown(app)
    app.beta.value = 0.2
    assert "Training diverged at KL: ρ = 0.08, β = 0.2" in app.message.value
    assert shown(app) == before
