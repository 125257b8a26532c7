"""The plotting options notebook 01 uses: the unit-evidence figure's middle-row label and the sorted-code figure."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sae_utils import plots  # noqa: E402


def _evidence(**kwargs):
    rng = np.random.default_rng(0)
    return plots.plot_unit_evidence(rng.random((2, 9, 28, 28)), rng.normal(size=(2, 784)),
                                    rng.normal(size=(2, 784)), [3, 7], **kwargs)


def test_unit_evidence_middle_row_label_defaults_and_can_be_set():
    fig = _evidence()
    assert fig.axes[2].get_ylabel() == "mean of the top inputs\nminus the mean input"
    plt.close(fig)
    fig = _evidence(difference_label="mean of the top 50\nminus the mean digit")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "mean of the top 50\nminus the mean digit" in labels
    assert "mean of the top inputs\nminus the mean input" not in labels
    plt.close(fig)


def test_sorted_code_draws_values_largest_first_with_threshold_and_rank():
    values = np.array([0.1, 0.9, 0.3, 0.6, 0.05])
    fig = plots.plot_sorted_code(values, threshold=0.5, k=3, title="one digit")
    ax = fig.axes[0]
    dots, hline, vline = ax.lines
    assert list(dots.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(dots.get_ydata()) == pytest.approx([0.9, 0.6, 0.3, 0.1, 0.05])
    assert list(hline.get_ydata()) == [0.5, 0.5]
    assert list(vline.get_xdata()) == [3, 3]
    assert ax.get_title() == "one digit"
    plt.close(fig)


@pytest.mark.parametrize("kwargs, message", [({"k": 6}, r"k must be a rank in \[1, 5\]"),
                                             ({"k": 0}, "k must be an integer >= 1"),
                                             ({"threshold": float("nan")}, "threshold")])
def test_sorted_code_refuses_a_rank_or_threshold_it_cannot_draw(kwargs, message):
    arguments = {"threshold": 0.5, "k": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        plots.plot_sorted_code(np.array([0.1, 0.9, 0.3, 0.6, 0.05]), **arguments)


def _stored(scale, seed):
    from types import SimpleNamespace
    rng = np.random.default_rng(seed)
    return SimpleNamespace(features=scale * rng.normal(size=(8, 28, 28)).astype(np.float32),
                           feature_units=np.arange(8) + 10 * seed, firing_frequency=rng.random(40))


def test_stored_features_share_one_colour_scale_and_one_colour_bar():
    fig = plots.plot_stored_features({"small": _stored(0.1, 0), "large": _stored(5.0, 1)}, n=4, title="two runs")
    images = [image for ax in fig.axes for image in ax.get_images()]
    assert len(images) == 8
    assert len({image.get_clim() for image in images}) == 1           # one scale for both blocks
    limit = images[0].get_clim()[1]
    assert limit > 1.0                                                  # set by the larger block, not the small one
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 1
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles[0].startswith("unit 0,") and titles[4].startswith("unit 10,")
    plt.close(fig)


def test_stored_features_refuse_more_tiles_than_stored():
    with pytest.raises(ValueError, match="at most the 8 stored columns"):
        plots.plot_stored_features({"one": _stored(1.0, 0)}, n=9)
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_stored_features({})
