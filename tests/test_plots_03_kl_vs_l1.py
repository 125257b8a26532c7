"""The plotting option notebook 03 uses: extra_points diamonds with their own face colours."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from sae_utils import plots  # noqa: E402


def _records():
    return {"kl": [{"params": {"rho": 0.08, "beta": b}, "metrics": {"units_for_mass": 200 + 100 * b, "bce": 0.07 + b}}
                   for b in (0.0, 0.005, 0.05)]}


def _diamond_faces(fig):
    faces = {}
    for collection in fig.axes[0].collections:
        if collection.get_label() in ("a", "b"):
            faces[collection.get_label()] = tuple(collection.get_facecolor()[0])
    return faces


def test_extra_point_diamonds_are_white_by_default_and_take_given_colours():
    extra = {"a": (150.0, 0.071), "b": (120.0, 0.069)}
    fig = plots.plot_tradeoff(_records(), {"kl": [("beta", {"rho": 0.08})]}, extra_points=extra)
    faces = _diamond_faces(fig)
    assert faces["a"] == faces["b"] == mcolors.to_rgba("white")
    plt.close(fig)
    fig = plots.plot_tradeoff(_records(), {"kl": [("beta", {"rho": 0.08})]}, extra_points=extra,
                              extra_point_colors={"a": "C0", "b": "C1"})
    faces = _diamond_faces(fig)
    assert faces["a"] == mcolors.to_rgba("C0") and faces["b"] == mcolors.to_rgba("C1")
    plt.close(fig)
