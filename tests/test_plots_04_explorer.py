"""plots.plot_explorer_tradeoff: notebook 04's trade-off figure, its labels placed by the package."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from sae_utils import plots


def _records():
    kl = [{"params": {"rho": 0.08, "beta": beta}, "metrics": {"units_for_mass": k, "bce": b}}
          for beta, k, b in ((0.0015, 234.8, 0.0692), (0.005, 237.2, 0.0701), (0.015, 245.0, 0.0715))]
    l1 = [{"params": {"lam": lam}, "metrics": {"units_for_mass": k, "bce": b}}
          for lam, k, b in ((0.0, 150.7, 0.0651), (4e-5, 84.1, 0.0673))]
    return {"kl": kl, "l1": l1}


def test_seed_names_sit_beside_their_crosses_in_their_colour():
    warm = {"KL, warm-up": [(203.5, 0.0714), (204.7, 0.0715), (203.4, 0.0716)],
            "L1, warm-up": [(92.5, 0.0668), (93.8, 0.0671)]}
    fig = plots.plot_explorer_tradeoff(_records(), {"kl": [("beta", {"rho": 0.08})], "l1": [("lam", {})]}, warm)
    ax = fig.axes[0]
    names = {t.get_text(): t for t in ax.texts if t.get_text().endswith("seeds")}
    assert set(names) == {"3 seeds", "2 seeds"}
    assert names["3 seeds"].xy == (203.5, 0.0714)   # the first cross of its group
    assert names["3 seeds"].xyann == plots.EXPLORER_SEEDS_OFFSETS[0]
    assert names["2 seeds"].xyann == plots.EXPLORER_SEEDS_OFFSETS[1]
    assert names["3 seeds"].arrow_patch is not None   # joined to its cross by a line
    cross_colours = {line.get_label(): line.get_color() for line in ax.lines}
    assert names["3 seeds"].get_color() == cross_colours["KL, warm-up"]
    # the crowded β = 0.015 label is moved clear of the KL star, with a line back to its point
    moved = [t for t in ax.texts if t.get_text() == "β=0.015"]
    assert moved and moved[0].xyann == plots.EXPLORER_TRADEOFF_LABELS["kl"][("beta", 0.015)]
    assert moved[0].arrow_patch is not None and moved[0].get_visible()
    plt.close(fig)


def test_an_empty_seed_group_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_explorer_tradeoff(_records(), {}, {"KL, warm-up": []})


def test_a_third_seed_group_gets_its_own_name_offset_and_the_ticks_pass_through():
    warm = {"KL, warm-up": [(203.5, 0.0714)], "L1, warm-up": [(92.5, 0.0668)],
            "L1, λ = 0, warm-up": [(313.2, 0.0648), (315.3, 0.0646), (320.1, 0.0650)]}
    offsets = [(-34, 14), (14, -26), (-20, -24)]
    fig = plots.plot_explorer_tradeoff(_records(), {"l1": [("lam", {})]}, warm, xticks=(100, 200, 300),
                                       seeds_offsets=offsets)
    ax = fig.axes[0]
    names = {t.get_text(): t for t in ax.texts if t.get_text().endswith("seeds")}
    assert names["3 seeds"].xy == (313.2, 0.0648) and names["3 seeds"].xyann == (-20, -24)
    assert [int(t) for t in ax.get_xticks()] == [100, 200, 300]
    assert "L1, λ = 0, warm-up" in {line.get_label() for line in ax.lines}
    plt.close(fig)


def test_seeds_offsets_must_match_the_groups():
    with pytest.raises(ValueError, match="one \\(dx, dy\\) per warm_up group"):
        plots.plot_explorer_tradeoff(_records(), {}, {"KL, warm-up": [(203.5, 0.0714)]}, seeds_offsets=[])
