"""The penalties and the reconstruction loss against float64 formulas, gradcheck and closed forms."""
import numpy as np
import pytest
import torch

from sae_utils import kl_divergence, kl_sparsity_penalty, l1_penalty, reconstruction_bce, sparsity_penalty

RHOS = [0.01, 0.08, 0.5, 0.9]


def kl_reference(rho: float, rho_hat: np.ndarray) -> np.ndarray:
    """Bernoulli KL in float64, straight from the definition."""
    return rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))


def random_code(batch=64, hidden=20, seed=0, dtype=torch.float32) -> torch.Tensor:
    """Sigmoid-like codes in (0, 1), units with clearly different means."""
    g = torch.Generator().manual_seed(seed)
    shift = torch.linspace(-3, 3, hidden, dtype=torch.float64)
    return torch.sigmoid(torch.randn(batch, hidden, generator=g, dtype=torch.float64) + shift).to(dtype)


@pytest.mark.parametrize("rho", RHOS)
def test_kl_divergence_matches_float64_formula(rho):
    rho_hat = torch.rand(1000, generator=torch.Generator().manual_seed(1)) * 0.98 + 0.01
    expected = kl_reference(rho, rho_hat.double().numpy())
    np.testing.assert_allclose(kl_divergence(rho, rho_hat).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_kl_divergence_is_zero_only_at_rho():
    rho_hat = torch.tensor([0.05, 0.08, 0.2], dtype=torch.float64)
    value = kl_divergence(0.08, rho_hat)
    assert value[1].item() == pytest.approx(0.0, abs=1e-15)
    assert value[0] > 0 and value[2] > 0


@pytest.mark.parametrize("rho", RHOS)
def test_kl_sparsity_penalty_averages_each_unit_over_the_batch(rho):
    code = random_code()
    rho_hat = code.double().numpy().mean(axis=0)  # one mean per unit, over the batch
    expected = kl_reference(rho, rho_hat).sum()
    assert kl_sparsity_penalty(code, rho).item() == pytest.approx(expected, rel=1e-5)
    # Averaging over units instead (one rho_hat per digit) gives a clearly different number.
    wrong = kl_reference(rho, code.double().numpy().mean(axis=1)).sum()
    assert abs(wrong - expected) > 0.1 * expected


def test_l1_penalty_is_batch_mean_of_unit_sums():
    code = torch.randn(50, 30, generator=torch.Generator().manual_seed(2))
    expected = np.abs(code.double().numpy()).sum(axis=1).mean()
    assert l1_penalty(code).item() == pytest.approx(expected, rel=1e-6)
    assert l1_penalty(torch.zeros(3, 4)).item() == 0.0


def test_reconstruction_bce_matches_naive_float64_formula():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(40, 784, generator=g) * 4
    x = torch.rand(40, 784, generator=g)  # soft targets, not only 0 and 1
    p = 1 / (1 + np.exp(-logits.double().numpy()))
    xd = x.double().numpy()
    expected = -(xd * np.log(p) + (1 - xd) * np.log(1 - p)).mean()  # mean over batch and pixels
    assert reconstruction_bce(logits, x).item() == pytest.approx(expected, rel=1e-6)


def test_reconstruction_bce_is_finite_and_exact_at_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, 100.0, -100.0]], requires_grad=True)
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    loss = reconstruction_bce(logits, x)
    # Each wrong-sided logit z costs |z| nats (log(1 + e^|z|) = |z| in float32); right-sided ones cost ~0.
    assert loss.item() == pytest.approx((1e4 + 1e4 + 0 + 0) / 4, rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    np.testing.assert_allclose(logits.grad.numpy(), [[0.25, -0.25, 0.0, 0.0]], atol=1e-6)


def test_sparsity_penalty_dispatches_by_family_name():
    code = random_code()
    assert sparsity_penalty("kl", code, 0.1).item() == kl_sparsity_penalty(code, 0.1).item()
    assert sparsity_penalty("kl", code).item() == kl_sparsity_penalty(code, 0.08).item()  # rho's reference
    assert sparsity_penalty("l1", code).item() == l1_penalty(code).item()
    # (Family.weighted_penalty, the training loop's weight * penalty, is tested in test_families.py.)


def test_unchecked_formula_is_the_checked_one_without_the_checks():
    code = random_code()
    assert kl_sparsity_penalty.unchecked(code, 0.1).item() == kl_sparsity_penalty(code, 0.1).item()
    bad = torch.full((4, 3), 1.25)  # not a probability: refused when checked, computed when not
    with pytest.raises(ValueError, match=r"code must have values in \[0, 1\]"):
        kl_sparsity_penalty(bad, 0.1)
    assert torch.isfinite(l1_penalty.unchecked(bad))


# --- gradients ---------------------------------------------------------------------------------------

def test_gradcheck_kl_sparsity_penalty():
    code = random_code(batch=8, hidden=5, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_()
    assert torch.autograd.gradcheck(lambda c: kl_sparsity_penalty(c, 0.08), (code,))


def test_gradcheck_kl_divergence():
    rho_hat = torch.linspace(0.05, 0.95, 7, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda r: kl_divergence(0.3, r), (rho_hat,))


def test_gradcheck_l1_penalty():
    # Away from 0, where |.| is differentiable; both signs.
    code = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    code = (code + 0.2 * code.sign()).requires_grad_()
    assert torch.autograd.gradcheck(l1_penalty, (code,))


def test_gradcheck_reconstruction_bce():
    logits = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    x = torch.rand(4, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: reconstruction_bce(z, x), (logits,))


@pytest.mark.parametrize("rho", RHOS)
def test_kl_gradient_has_closed_form(rho):
    rho_hat = torch.linspace(0.02, 0.98, 25, dtype=torch.float64, requires_grad=True)
    kl_divergence(rho, rho_hat).sum().backward()
    r = rho_hat.detach()
    torch.testing.assert_close(rho_hat.grad, -rho / r + (1 - rho) / (1 - r))


def test_kl_penalty_gradient_through_batch_mean_is_divided_by_batch():
    rho, code = 0.08, random_code(batch=32, hidden=10, dtype=torch.float64).requires_grad_()
    kl_sparsity_penalty(code, rho).backward()
    r = code.detach().mean(dim=0)
    per_unit = -rho / r + (1 - rho) / (1 - r)
    torch.testing.assert_close(code.grad, (per_unit / 32).expand(32, 10))


def test_l1_gradient_is_sign_over_batch():
    code = torch.tensor([[1.5, -2.0, 0.5], [-0.1, 3.0, 0.2]], requires_grad=True)
    l1_penalty(code).backward()
    torch.testing.assert_close(code.grad, code.detach().sign() / 2)


# --- dead and saturated units ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_finite_at_rho_hat_zero_and_one(dtype):
    rho_hat = torch.tensor([0.0, 1.0, 0.5], dtype=dtype, requires_grad=True)
    value = kl_divergence(0.08, rho_hat)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(rho_hat.grad).all()
    # Still a large penalty: more than at rho_hat = 1e-3 and 1 - 1e-3.
    near = kl_divergence(0.08, torch.tensor([1e-3, 1 - 1e-3], dtype=torch.float64))
    assert value[0].item() > near[0].item() and value[1].item() > near[1].item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_penalty_finite_with_dead_and_saturated_units(dtype):
    code = torch.rand(16, 4, dtype=dtype)
    code[:, 0] = 0.0  # dead unit
    code[:, 1] = 1.0  # saturated unit
    code.requires_grad_()
    value = kl_sparsity_penalty(code, 0.08)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(code.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_keeps_pulling_a_unit_whose_average_is_far_below_eps(dtype):
    """The gradient is the float64 formula -rho/rho_hat + (1-rho)/(1-rho_hat) down to the smallest normal number."""
    tiny = torch.finfo(dtype).tiny
    rho_hat = torch.tensor([1e-30 if dtype == torch.float32 else 1e-300, 10 * tiny, 0.0], dtype=dtype, requires_grad=True)
    kl_divergence(0.08, rho_hat).sum().backward()
    expected = [-0.08 / r + 0.92 / (1 - r) for r in rho_hat[:2].tolist()]
    np.testing.assert_allclose(rho_hat.grad[:2].tolist(), expected, rtol=1e-5)
    assert torch.isfinite(rho_hat.grad).all() and rho_hat.grad[2] == 0  # exactly 0: clamped, no pull, no inf
