"""The shipped sweep results (notebooks/sweep_results.json) are what ``sae_utils.sweep`` computes."""
import pytest

from sae_utils import sweep
from sae_utils.files import read_json
from sae_utils.train import TrainConfig

RESULTS = read_json(sweep.DEFAULT_OUT)


def test_results_match_the_current_sweep_settings_and_points():
    assert RESULTS["settings"] == sweep.settings()
    shipped = [(p["penalty"], p["knob"], p["value"]) for p in RESULTS["points"]]
    assert shipped == sweep.sweep_points()
    for point in RESULTS["points"]:
        assert TrainConfig(**point["config"]) == sweep.point_config(point["penalty"], point["knob"], point["value"])


def test_the_reference_kl_point_recomputes():
    """Train the KL point at rho 0.08, beta 0.005 again (about 10 s) and compare its test metrics.

    The tolerances allow for float32 rounding that differs between CPUs and thread counts (on one machine
    the metrics agree to 1e-6 whatever the thread count). They still single the point out: every other
    point of the sweep differs by more in test BCE or in active units per digit.
    """
    point = next(p for p in RESULTS["points"] if (p["penalty"], p["knob"], p["value"]) == ("kl", "rho", 0.08))
    shipped = point["metrics"]
    fresh = sweep.run_point(sweep.point_config("kl", "rho", 0.08))
    assert fresh["bce"] == pytest.approx(shipped["bce"], abs=5e-4)
    assert fresh["penalty"] == pytest.approx(shipped["penalty"], rel=0.1)
    assert fresh["mean_activation"] == pytest.approx(shipped["mean_activation"], rel=0.03)
    assert fresh["active_units_per_digit"] == pytest.approx(shipped["active_units_per_digit"], rel=0.02)
    assert fresh["dead_fraction"] == pytest.approx(shipped["dead_fraction"], abs=0.02)
