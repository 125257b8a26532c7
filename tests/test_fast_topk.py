"""The sparse decoder product of TopK codes (fast_topk.py) against the plain product: values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from sae_utils.families import build_model
from sae_utils.fast_topk import sparse_decode
from sae_utils.penalties import topk_code


def both(pre, weight, bias, upstream, k):
    """(logits, dL/dpre, dL/dweight, dL/dbias) through TopK and the plain product, then the sparse one."""
    results = []
    for product in (F.linear, sparse_decode):
        leaves = [t.detach().clone().requires_grad_() for t in (pre, weight, bias)]
        logits = product(topk_code(leaves[0], k), leaves[1], leaves[2])
        logits.backward(upstream)
        results.append([logits.detach(), *(leaf.grad for leaf in leaves)])
    return results


@pytest.mark.parametrize("shift", [0.0, -1.5])  # -1.5: many kept values are negative, so rows hold fewer than k
def test_values_and_gradients_equal_the_plain_product(shift):
    g = torch.Generator().manual_seed(1)
    pre = torch.randn(64, 40, generator=g) + shift
    pre[3] = -1.0  # a row the ReLU empties completely
    weight, bias, upstream = torch.randn(30, 40, generator=g), torch.randn(30, generator=g), torch.randn(64, 30, generator=g)
    plain, fast = both(pre, weight, bias, upstream, k=6)
    for a, b, name in zip(plain, fast, ("logits", "dL/dpre", "dL/dweight", "dL/dbias")):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)


def test_gradcheck_in_float64():
    g = torch.Generator().manual_seed(2)
    code = topk_code(torch.randn(5, 9, dtype=torch.float64, generator=g), 3).detach().requires_grad_()
    weight = torch.randn(4, 9, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    # the code's gradient is defined at its non-zero values (where TopK passes gradient): check the others
    assert torch.autograd.gradcheck(lambda w, b: sparse_decode(code.detach(), w, b), (weight, bias))
    (sparse_decode(code, weight, bias) * torch.ones(5, 4, dtype=torch.float64)).sum().backward()
    expected = torch.where(code != 0, weight.sum(dim=0).expand(5, 9), 0.0)
    torch.testing.assert_close(code.grad, expected)


def test_a_topk_model_decodes_through_it_with_the_plain_values():
    model = build_model("topk", 32, k=4)
    x = torch.rand(10, 784, generator=torch.Generator().manual_seed(3))
    code = model.encode(x)
    torch.testing.assert_close(model.decode(code), model.decoder(code), rtol=1e-6, atol=1e-6)
