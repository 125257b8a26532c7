"""Is a change between two settings larger than seed noise? Paired tests over seeds, and Holm's correction.

Two settings trained on the same seeds give one change per seed, d_i = after_i - before_i. If the
setting made no difference, the paired t statistic

    t = mean(d) / (sd(d) / sqrt(n))        (sd with n - 1 in the denominator)

follows Student's t distribution with n - 1 degrees of freedom, and p = P(|T| >= |t|) is the chance of a
change at least this large from seed noise alone. A notebook that runs many such tests corrects them
together with Holm's step-down method, which keeps the chance of any false pass at or below alpha.
No scipy: the t distribution's tail has a closed form for an integer number of degrees of freedom.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .checks import check_int, check_number


def t_two_sided_p(t: float, dof: int) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` (an integer >= 1) degrees of freedom.

    Closed form (Abramowitz & Stegun 26.7.3-4): with theta = atan(|t| / sqrt(dof)), P(|T| < |t|) is a
    finite series in cos(theta). For dof = 2 it is |t| / sqrt(t^2 + 2); for dof = 1, 2 theta / pi."""
    dof = check_int("dof", dof)
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or math.isnan(t):
        raise ValueError(f"t must be a real number or +-inf, got {t!r}")
    theta = math.atan(abs(t) / math.sqrt(dof))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    term = total = 1.0
    if dof % 2 == 0:   # sin(theta) * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), up to cos^(dof - 2)
        for k in range(1, dof // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        inside = sin * total
    else:              # 2/pi * (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), up to cos^(dof - 3)
        for k in range(1, (dof - 1) // 2):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        inside = 2 / math.pi * (theta + (sin * math.sqrt(cos2) * total if dof > 1 else 0.0))
    return min(1.0, max(0.0, 1.0 - inside))


def t_critical(dof: int, alpha: float = 0.05) -> float:
    """The |t| at which ``t_two_sided_p(t, dof)`` equals ``alpha`` (in (0, 1)): 4.30 for dof = 2, alpha = 0.05."""
    dof = check_int("dof", dof)
    alpha = check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    low, high = 0.0, 1.0
    while t_two_sided_p(high, dof) > alpha:   # p falls as |t| grows
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if t_two_sided_p(middle, dof) > alpha else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class PairedChange:
    """One paired comparison: ``changes`` = after - before, one per seed (in the given order); ``mean`` of
    the changes; the paired ``t`` and its two-sided ``p`` with ``dof`` = seeds - 1."""
    changes: tuple
    mean: float
    t: float
    p: float
    dof: int

    @property
    def same_sign(self) -> bool:
        """Every seed changes in the same direction (and none is zero)."""
        changes = np.asarray(self.changes)
        return bool((changes > 0).all() or (changes < 0).all())

    def beyond_noise(self, alpha: float = 0.05) -> bool:
        """The notebooks' rule: every seed moves the same way and p < ``alpha``."""
        alpha = check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
        return self.same_sign and self.p < alpha

    def row(self, label: str, digits: int = 1, alpha: float = 0.05) -> dict:
        """A table row for ``atlas.table``: comparison, mean change, t, p, changes by seed, verdict."""
        return {"comparison": label, "mean change": f"{self.mean:+.{digits}f}", "t": f"{self.t:.1f}",
                "p": f"{self.p:.3f}", "changes by seed": str(np.round(self.changes, digits).tolist()),
                "verdict": "beyond seed noise" if self.beyond_noise(alpha) else "within seed noise"}


def paired_change(before, after) -> PairedChange:
    """The paired t-test of ``after`` against ``before``: two sequences of one metric, seed by seed (the
    same seeds in the same order, at least two). A change that is the same on every seed has t = +-inf
    and p = 0 (no change at all: t = 0, p = 1)."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if before.ndim != 1 or before.shape != after.shape or len(before) < 2:
        raise ValueError(f"before and after must be two 1-d sequences of the same length >= 2 (one value "
                         f"per seed), got shapes {before.shape} and {after.shape}")
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        raise ValueError("before and after must hold finite numbers only")
    changes = after - before
    mean, spread = changes.mean(), changes.std(ddof=1)
    if spread > 0:
        t = mean / (spread / math.sqrt(len(changes)))
    else:
        t = math.copysign(math.inf, mean) if mean != 0 else 0.0
    dof = len(changes) - 1
    return PairedChange(tuple(changes.tolist()), float(mean), float(t), t_two_sided_p(t, dof), dof)


def holm(p_values) -> list:
    """Holm's step-down adjustment of m p-values, returned in the input order: the k-th smallest p
    (k = 1..m) times m - k + 1, capped at 1 and made non-decreasing in that order. A test passes at
    level alpha after the correction when its adjusted p < alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p_values must be a non-empty 1-d sequence of numbers in [0, 1], got {p_values!r}")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
