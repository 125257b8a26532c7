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
