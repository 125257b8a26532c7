"""sae_utils.kl_l1_plots: what the two figures of notebook 03 draw, and the inputs they refuse."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sae_utils import kl_l1_plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_error_maps_share_one_scale_and_draw_the_difference():
    a, b = torch.linspace(0, 1, 784), torch.full((784,), 0.25)
    fig = kl_l1_plots.plot_error_maps({"A": a, "B": b}, title="t")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert images[0].get_clim() == images[1].get_clim() == (0, 1.0)      # one scale, from 0 to the larger maximum
    np.testing.assert_allclose(images[2].get_array().ravel(), (a - b).numpy())
    low, high = images[2].get_clim()
    assert low == -high == -0.75                                          # symmetric around 0
    assert fig._suptitle.get_text() == "t"


@pytest.mark.parametrize("maps", [{"A": torch.zeros(784)}, {"A": torch.zeros(784), "B": torch.zeros(10)},
                                  {"A": torch.zeros(784), "B": torch.full((784,), float("nan"))}, []])
def test_error_maps_refuse_bad_input(maps):
    with pytest.raises(ValueError):
        kl_l1_plots.plot_error_maps(maps)


def test_bce_and_penalty_draws_weighted_penalty_only_for_penalised_runs():
    history = {"train_bce": [0.3, 0.2, 0.1], "train_penalty": [10.0, 5.0, 2.0]}
    fig = kl_l1_plots.plot_bce_and_penalty({"penalised": (history, 0.01), "free": (history, 0.0)})
    left, right = fig.axes
    assert len(left.lines) == 2 and len(right.lines) == 1
    np.testing.assert_allclose(right.lines[0].get_ydata(), [0.1, 0.05, 0.02])
    np.testing.assert_allclose(left.lines[1].get_xdata(), [1, 2, 3])
    assert left.lines[1].get_linestyle() == "--" and left.lines[0].get_linestyle() == "-"
    assert left.get_yscale() == right.get_yscale() == "log"


def test_bce_and_penalty_refuses_bad_input():
    history = {"train_bce": [0.3, 0.2], "train_penalty": [1.0]}
    with pytest.raises(ValueError):
        kl_l1_plots.plot_bce_and_penalty({})
    with pytest.raises(ValueError):
        kl_l1_plots.plot_bce_and_penalty({"x": (history, 0.1)})
    with pytest.raises(ValueError):
        kl_l1_plots.plot_bce_and_penalty({"x": ({"train_bce": [0.1], "train_penalty": [1.0]}, -1.0)})
