"""Bad input at every public entry point: the right error type, naming the parameter, the value and what
is allowed. Each module's other tests are in its own file (crashes mid-write in test_files.py, resuming
from a checkpoint in test_train.py)."""
import pytest
import torch
from helpers import RANDOM_DIGITS, TINY

from sae_utils import (SparseAutoencoder, TrainConfig, evaluate, kl_divergence, kl_sparsity_penalty, l1_penalty,
                       load_mnist, load_pretrained, prepare_images, reconstruction_bce, sparsity_penalty, train)
from sae_utils import plots

NAN, INF = float("nan"), float("inf")
MODEL = SparseAutoencoder(8)
RELU_MODEL = SparseAutoencoder(8, "relu")
DIGITS = RANDOM_DIGITS  # 50 random uint8 digits


def images(value, n=20):
    return torch.full((n, 784), value)


def fit(**config):
    """Train briefly on DIGITS with the given TrainConfig fields and keyword arguments."""
    train_images = config.pop("train_images", DIGITS)
    test_images = config.pop("test_images", DIGITS)
    return train(TrainConfig(**{**TINY, **config}), train_images, test_images, progress=False)


# (id, call, error type, fragments the message must contain: the parameter, the value, what is allowed)
CASES = [
    # TrainConfig
    ("config rho=0", lambda: TrainConfig(rho=0), ValueError, ["rho must", "got 0.0", "(0, 1)"]),
    ("config rho=1", lambda: TrainConfig(rho=1), ValueError, ["rho must", "got 1.0", "(0, 1)"]),
    ("config rho=-0.1", lambda: TrainConfig(rho=-0.1), ValueError, ["rho must", "got -0.1", "(0, 1)"]),
    ("config rho=1.5", lambda: TrainConfig(rho=1.5), ValueError, ["rho must", "got 1.5", "(0, 1)"]),
    ("config rho=nan", lambda: TrainConfig(rho=NAN), ValueError, ["rho must", "got nan", "(0, 1)"]),
    ("config rho='0.1'", lambda: TrainConfig(rho="0.1"), TypeError, ["rho must", "'0.1'", "real number"]),
    ("config beta<0", lambda: TrainConfig(beta=-0.001), ValueError, ["beta must", "got -0.001", "[0, inf)"]),
    ("config beta=inf", lambda: TrainConfig(beta=INF), ValueError, ["beta must", "got inf", "[0, inf)"]),
    ("config lam<0", lambda: TrainConfig(lam=-4e-5), ValueError, ["lam must", "got -4e-05", "[0, inf)"]),
    ("config lam=nan", lambda: TrainConfig(lam=NAN), ValueError, ["lam must", "got nan", "[0, inf)"]),
    ("config lr=0", lambda: TrainConfig(lr=0), ValueError, ["lr must", "got 0.0", "(0, inf)"]),
    ("config lr<0", lambda: TrainConfig(lr=-0.01), ValueError, ["lr must", "got -0.01", "(0, inf)"]),
    ("config lr=inf", lambda: TrainConfig(lr=INF), ValueError, ["lr must", "got inf", "(0, inf)"]),
    ("config epochs=0", lambda: TrainConfig(epochs=0), ValueError, ["epochs must", "got 0", ">= 1"]),
    ("config epochs=2.5", lambda: TrainConfig(epochs=2.5), TypeError, ["epochs must", "got 2.5", "integer >= 1"]),
    ("config epochs=True", lambda: TrainConfig(epochs=True), TypeError, ["epochs must", "got True", "integer"]),
    ("config batch_size=0", lambda: TrainConfig(batch_size=0), ValueError, ["batch_size must", "got 0", ">= 1"]),
    ("config n_hidden=0", lambda: TrainConfig(n_hidden=0), ValueError, ["n_hidden must", "got 0", ">= 1"]),
    ("config seed=-1", lambda: TrainConfig(seed=-1), ValueError, ["seed must", "got -1", ">= 0"]),
    ("config penalty='L2'", lambda: TrainConfig(penalty="L2"), ValueError, ["penalty must", "'L2'", "'kl', 'l1'"]),
    ("config penalty=None", lambda: TrainConfig(penalty=None), ValueError, ["penalty must", "None", "'kl', 'l1'"]),
    ("config device='gpu'", lambda: TrainConfig(device="gpu"), ValueError, ["device must", "'gpu'", "'cpu', 'cuda'"]),
    # SparseAutoencoder
    ("model n_hidden=0", lambda: SparseAutoencoder(0), ValueError, ["n_hidden must", "got 0", ">= 1"]),
    ("model n_hidden=2.0", lambda: SparseAutoencoder(2.0), TypeError, ["n_hidden must", "2.0", "integer"]),
    ("model activation", lambda: SparseAutoencoder(8, "tanh"), ValueError,
     ["activation must", "'tanh'", "'sigmoid', 'relu'"]),
    ("for_penalty name", lambda: SparseAutoencoder.for_penalty("l2"), ValueError, ["penalty must", "'l2'", "'kl'"]),
    ("for_penalty rho", lambda: SparseAutoencoder.for_penalty("kl", 8, rho=1.0), ValueError,
     ["rho must", "got 1.0", "(0, 1)"]),
    ("forward x shape", lambda: MODEL(torch.rand(3, 100)), ValueError, ["x must", "(3, 100)", "(B, 784)"]),
    ("forward x 1-D", lambda: MODEL(torch.rand(784)), ValueError, ["x must", "(784,)", "(B, 784)"]),
    ("forward x uint8", lambda: MODEL(DIGITS), TypeError, ["x must", "torch.uint8", "floating-point", "prepare_images"]),
    ("forward x list", lambda: MODEL([[0.0] * 784]), TypeError, ["x must", "list", "torch.Tensor"]),
    ("reconstruct x nan", lambda: MODEL.reconstruct(images(NAN)), ValueError, ["x contains", "NaN", "[0, 1]"]),
    ("reconstruct x 2", lambda: MODEL.reconstruct(images(2.0)), ValueError, ["x must", "[2, 2]", "[0, 1]"]),
    ("reconstruct x<0", lambda: MODEL.reconstruct(images(-0.5)), ValueError, ["x must", "[-0.5, -0.5]", "[0, 1]"]),
    ("decode code shape", lambda: MODEL.decode(torch.rand(2, 5)), ValueError, ["code must", "(2, 5)", "(B, 8)"]),
    ("decode code int", lambda: MODEL.decode(torch.ones(2, 8, dtype=torch.long)), TypeError,
     ["code must", "torch.int64", "floating-point"]),
    # penalties
    ("kl_divergence rho", lambda: kl_divergence(0, torch.rand(3)), ValueError, ["rho must", "got 0.0", "(0, 1)"]),
    ("kl_divergence rho_hat>1", lambda: kl_divergence(0.1, torch.tensor([0.5, 1.5])), ValueError,
     ["rho_hat must", "[0.5, 1.5]", "[0, 1]"]),
    ("kl_divergence rho_hat nan", lambda: kl_divergence(0.1, torch.tensor([NAN])), ValueError,
     ["rho_hat contains 1 NaN", "[0, 1]"]),
    ("kl_divergence rho_hat int", lambda: kl_divergence(0.1, torch.tensor([1])), TypeError,
     ["rho_hat must", "torch.int64", "floating-point"]),
    ("kl_divergence rho_hat list", lambda: kl_divergence(0.1, [0.5]), TypeError, ["rho_hat must", "list", "Tensor"]),
    ("kl_sparsity code 1-D", lambda: kl_sparsity_penalty(torch.rand(5), 0.1), ValueError,
     ["code must", "(5,)", "(batch, n_hidden)"]),
    ("kl_sparsity code empty", lambda: kl_sparsity_penalty(torch.rand(0, 3), 0.1), ValueError,
     ["code must", "(0, 3)", "batch >= 1"]),
    ("kl_sparsity code>1", lambda: kl_sparsity_penalty(torch.full((4, 3), 1.25), 0.1), ValueError,
     ["code must", "[1.25, 1.25]", "[0, 1]"]),
    ("kl_sparsity code inf", lambda: kl_sparsity_penalty(torch.full((4, 3), INF), 0.1), ValueError,
     ["code contains 12 NaN or infinite", "[0, 1]"]),
    ("kl_sparsity rho", lambda: kl_sparsity_penalty(torch.rand(4, 3), 1.0), ValueError, ["rho must", "1.0", "(0, 1)"]),
    ("l1 code nan", lambda: l1_penalty(torch.tensor([[NAN, 1.0]])), ValueError, ["code contains 1 NaN", "finite"]),
    ("l1 code int", lambda: l1_penalty(torch.ones(2, 2, dtype=torch.int64)), TypeError,
     ["code must", "torch.int64", "floating-point"]),
    ("l1 code 3-D", lambda: l1_penalty(torch.rand(2, 3, 4)), ValueError, ["code must", "(2, 3, 4)", "(batch, n_hidden)"]),
    ("bce x>1", lambda: reconstruction_bce(torch.zeros(2, 3), torch.full((2, 3), 1.5)), ValueError,
     ["x must", "[1.5, 1.5]", "[0, 1]"]),
    ("bce x<0", lambda: reconstruction_bce(torch.zeros(2, 3), torch.full((2, 3), -0.1)), ValueError,
     ["x must", "[-0.1, -0.1]", "[0, 1]"]),
    ("bce x nan", lambda: reconstruction_bce(torch.zeros(2, 3), torch.full((2, 3), NAN)), ValueError,
     ["x contains 6 NaN", "[0, 1]"]),
    ("bce logits inf", lambda: reconstruction_bce(torch.full((2, 3), -INF), torch.zeros(2, 3)), ValueError,
     ["logits contains 6 NaN or infinite", "finite"]),
    ("bce shapes", lambda: reconstruction_bce(torch.zeros(2, 3), torch.zeros(3, 2)), ValueError,
     ["logits and x must", "(2, 3) and (3, 2)", "same shape"]),
    ("bce x uint8", lambda: reconstruction_bce(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.uint8)), TypeError,
     ["x must", "torch.uint8", "floating-point"]),
    ("sparsity_penalty name", lambda: sparsity_penalty("l2", torch.rand(2, 3)), ValueError,
     ["penalty must", "'l2'", "'kl', 'l1'"]),
    # train
    ("train config dict", lambda: train({"penalty": "kl"}, DIGITS, DIGITS), TypeError,
     ["config must", "dict", "TrainConfig"]),
    ("train batch > data", lambda: fit(batch_size=51), ValueError,
     ["batch_size must", "got 51", "at most the number of training images (50)"]),
    ("train images nan", lambda: fit(train_images=images(NAN)), ValueError, ["train_images contains", "NaN", "[0, 1]"]),
    ("train images 0-255 floats", lambda: fit(train_images=DIGITS.float()), ValueError,
     ["train_images must", "[0, 255]", "[0, 1]"]),
    ("train images shape", lambda: fit(train_images=torch.rand(20, 3, 4)), ValueError,
     ["train_images must", "(20, 3, 4)", "(N, 12)"]),
    ("train own data, no test set", lambda: train(TrainConfig(**TINY), torch.rand(20, 100), progress=False),
     ValueError, ["test_images must be given", "100 values", "784"]),
    ("train own data, test D differs", lambda: fit(train_images=torch.rand(20, 100)), ValueError,
     ["test_images must", "(N, 100)", "(50, 28, 28)"]),
    ("train images empty", lambda: fit(train_images=DIGITS[:0]), ValueError, ["train_images must", "(0, 28, 28)", "N >= 1"]),
    ("train images int64", lambda: fit(train_images=DIGITS.long()), TypeError,
     ["train_images must", "torch.int64", "uint8 (0-255) or floating point"]),
    ("train images numpy", lambda: fit(train_images=DIGITS.numpy()), TypeError,
     ["train_images must", "ndarray", "torch.Tensor"]),
    ("train test_images inf", lambda: fit(test_images=images(INF)), ValueError, ["test_images contains", "[0, 1]"]),
    # evaluate
    ("evaluate model None", lambda: evaluate(None, DIGITS), TypeError, ["model must", "NoneType", "SparseAutoencoder"]),
    ("evaluate model Linear", lambda: evaluate(torch.nn.Linear(784, 3), DIGITS), TypeError,
     ["model must", "Linear", "SparseAutoencoder"]),
    ("evaluate images nan", lambda: evaluate(MODEL, images(NAN)), ValueError, ["images contains", "NaN", "[0, 1]"]),
    ("evaluate images 0-255", lambda: evaluate(MODEL, DIGITS.float()), ValueError, ["images must", "[0, 255]", "[0, 1]"]),
    ("evaluate images shape", lambda: evaluate(MODEL, torch.rand(5, 27, 27)), ValueError, ["images must", "(5, 27, 27)", "(N, 784)"]),
    ("evaluate hyperparameter of another family", lambda: evaluate(RELU_MODEL, DIGITS, rho=0.1), ValueError,
     ["'rho'", "L1 family", "relu", "hyperparameters are lam"]),
    ("evaluate beta<0", lambda: evaluate(MODEL, DIGITS, beta=-1), ValueError, ["beta must", "got -1.0", "[0, inf)"]),
    ("evaluate positional config", lambda: evaluate(MODEL, DIGITS, TrainConfig()), TypeError, ["positional"]),
    # loading
    ("load_pretrained name", lambda: load_pretrained("l2"), ValueError, ["name must", "'l2'", "'kl', 'l1'"]),
    ("load_mnist split", lambda: load_mnist("val"), ValueError, ["split must", "'val'", "'train' or 'test'"]),
    ("prepare_images None", lambda: prepare_images(None), TypeError, ["images must", "NoneType", "torch.Tensor"]),
    # plots of inputs that are not 28x28 digits
    ("plot D not square", lambda: plots.plot_features(SparseAutoencoder(4, n_input=10)), ValueError,
     ["inputs of 10 values are not square images", "image_shape=(height, width)"]),
    ("plot image_shape wrong", lambda: plots.plot_features(SparseAutoencoder(4, n_input=10), image_shape=(3, 4)),
     ValueError, ["image_shape must be (height, width)", "= 10", "(3, 4)"]),
]


@pytest.mark.parametrize("call, error, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(call, error, fragments):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{message!r} lacks {missing}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for but CUDA is not available; use device='cpu'"):
        fit(device="cuda")


def test_good_values_at_the_edges_are_accepted():
    TrainConfig(beta=0, rho=1e-6, epochs=1, batch_size=1, n_hidden=1, seed=0, lr_decay=1)
    TrainConfig(penalty="l1", lam=0, lr_decay=0)
    TrainConfig(penalty="topk", k=1, n_hidden=1)
    fit(batch_size=50)  # a batch as large as the data
    kl_divergence(0.5, torch.tensor([0.0, 1.0]))
    reconstruction_bce(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))
    MODEL.reconstruct(torch.zeros(1, 1, 28, 28))
