"""The fast CPU BCE kernel against float64 references, autograd, and the plain formula it stands in for."""
import pytest
import torch

from sae_utils import reconstruction_bce
from sae_utils.fast_bce import mean_bce_with_logits, training_bce


@pytest.mark.parametrize("scale", [0.5, 5.0, 40.0])
def test_mean_bce_with_logits_matches_a_float64_reference(scale):
    g = torch.Generator().manual_seed(0)
    logits, x = torch.randn(64, 784, generator=g) * scale, torch.rand(64, 784, generator=g)
    x_hat = torch.sigmoid(logits.double())
    reference = -(x.double() * torch.log(x_hat) + (1 - x.double()) * torch.log1p(-x_hat)).mean().item()
    if scale < 40:  # at scale 40 sigmoid saturates in float64 too; compare with torch's stable form there
        assert mean_bce_with_logits(logits, x).item() == pytest.approx(reference, rel=1e-6)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(logits.double(), x.double()).item()
    assert mean_bce_with_logits(logits, x).item() == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("shape", [(3, 16), (5, 7)])  # numel divisible by 16 (products of 16 sigmoids) or not
def test_mean_bce_with_logits_gradient(shape):
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(*shape, generator=g, dtype=torch.float64) * 6).requires_grad_()
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: mean_bce_with_logits(t, x), (logits,))


@pytest.mark.parametrize("scale", [0.5, 5.0, 40.0])
def test_fast_and_plain_bce_agree_in_value_and_gradient(scale):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1200, 784, generator=g)
    logits = (torch.randn(1200, 784, generator=g) * scale).requires_grad_()
    fast = mean_bce_with_logits(logits, x)
    (fast_grad,) = torch.autograd.grad(fast, logits)
    plain = reconstruction_bce(logits, x)
    (plain_grad,) = torch.autograd.grad(plain, logits)
    assert fast.item() == pytest.approx(plain.item(), rel=1e-6)
    torch.testing.assert_close(fast_grad, plain_grad, rtol=1e-5, atol=1e-12)


def test_training_bce_uses_the_kernel_only_on_simd_cpus(monkeypatch):
    for capability, expected in (("AVX512", mean_bce_with_logits), ("AVX2", mean_bce_with_logits),
                                 ("DEFAULT", reconstruction_bce.unchecked)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        assert training_bce("cpu") is expected
    assert training_bce("cuda") is reconstruction_bce.unchecked
