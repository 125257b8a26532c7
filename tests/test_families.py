"""The table of families (sae_utils.families) against everything that reads it: the model's activations,
the penalties' signatures, the checks, TrainConfig, the command line, the atlas grid and the metrics."""
import dataclasses
import inspect
import math

import pytest
import torch

from sae_utils import SparseAutoencoder, TrainConfig, kl_sparsity_penalty, l1_penalty, sparsity_penalty
from sae_utils.cli import build_parser, train_config
from sae_utils.families import (FAMILIES, HYPERPARAMETERS, build_model, code_activation, family, family_of_activation,
                                topk_dead_unit_loss)
from sae_utils.metrics import ACTIVE_THRESHOLD
from sae_utils.model import ACTIVATIONS

NAMES = list(FAMILIES)
WITH_PENALTY = [name for name, fam in FAMILIES.items() if fam.penalty is not None]
REAL = [(fam, h) for fam, h in ((f, h) for f in FAMILIES.values() for h in f.hyperparameters) if not h.integer]
ENTRIES = [(fam, h) for fam in FAMILIES.values() for h in fam.hyperparameters]
ENTRY_IDS = [f"{fam.name}-{h.name}" for fam, h in ENTRIES]


def random_code(activation: str, batch=16, hidden=8, seed=0) -> torch.Tensor:
    """Codes as the activation makes them, from pre-activations spread over [-6, 6] and beyond."""
    pre = 3 * torch.randn(batch, hidden, generator=torch.Generator().manual_seed(seed))
    return activate(activation, pre)


def activate(activation: str, pre: torch.Tensor) -> torch.Tensor:
    """The activation of a model of that kind (TopK keeping half the units) applied to ``pre`` (B, H)."""
    return ACTIVATIONS[activation](pre, max(1, pre.shape[-1] // 2)) if activation == "topk" else ACTIVATIONS[activation](pre)


# --- the entries, as the lesson defines them ------------------------------------------------------------

def test_the_table_holds_the_two_families_of_the_lesson_and_topk():
    kl, l1, topk = FAMILIES["kl"], FAMILIES["l1"], FAMILIES["topk"]
    assert NAMES == ["kl", "l1", "topk"] and all(fam.name == name for name, fam in FAMILIES.items())
    assert (kl.activation, kl.penalty, kl.penalty_args, kl.weight, kl.active_threshold) == (
        "sigmoid", kl_sparsity_penalty, ("rho",), "beta", 0.5)
    assert (l1.activation, l1.penalty, l1.penalty_args, l1.weight, l1.active_threshold) == (
        "relu", l1_penalty, (), "lam", 0.0)
    assert (topk.activation, topk.penalty, topk.weight, topk.active_threshold, topk.auxiliary,
            topk.auxiliary_weight) == ("topk", None, None, 0.0, topk_dead_unit_loss, 1 / 32)


def test_reference_values_are_the_published_setup():
    assert FAMILIES["kl"].reference() == {"rho": 0.08, "beta": 0.005}
    assert FAMILIES["l1"].reference() == {"lam": 4e-5}
    assert FAMILIES["topk"].reference() == {"k": 25}  # Makhzani and Frey's k on MNIST
    assert {h.name: h.allowed() for h in HYPERPARAMETERS.values()} == {
        "rho": "(0, 1)", "beta": "[0, inf)", "lam": "[0, inf)", "k": "[1, n_hidden]"}


# --- each family against the model, the penalties and the metrics --------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_activation_is_a_model_activation_and_names_the_family(name):
    fam = FAMILIES[name]
    assert fam.activation in ACTIVATIONS
    assert SparseAutoencoder.for_penalty(name, 32).activation == fam.activation
    assert family_of_activation(fam.activation) is fam  # one family per activation: evaluate relies on it
    assert family(name) is fam


def test_family_lookup_of_an_unknown_name_lists_the_families():
    with pytest.raises(ValueError, match=r"penalty must be one of 'kl', 'l1', 'topk', got 'sparse'"):
        family("sparse")


@pytest.mark.parametrize("name", WITH_PENALTY)
def test_penalty_weight_and_penalty_args_name_hyperparameters_of_the_family(name):
    fam = FAMILIES[name]
    names = [h.name for h in fam.hyperparameters]
    assert len(set(names)) == len(names)
    assert set(fam.penalty_args) <= set(names)
    assert fam.weight in names and fam.weight not in fam.penalty_args  # the penalty itself is unweighted


@pytest.mark.parametrize("name", WITH_PENALTY)
def test_penalty_takes_the_code_and_exactly_its_penalty_args(name):
    fam = FAMILIES[name]
    assert list(inspect.signature(fam.penalty.unchecked).parameters) == ["code", *fam.penalty_args]
    assert fam.penalty_arguments({**fam.reference(), "unrelated": 1.0}) == {
        arg: fam.reference()[arg] for arg in fam.penalty_args}


@pytest.mark.parametrize("name", WITH_PENALTY)
def test_penalty_accepts_the_codes_of_its_activation(name):
    """A KL penalty paired with ReLU codes (values above 1) would be refused here."""
    fam = FAMILIES[name]
    code = random_code(fam.activation)
    arguments = fam.penalty_arguments(fam.reference())
    checked = fam.penalty(code, **arguments)  # the public, checked formula
    assert math.isfinite(checked.item()) and checked.item() >= 0
    assert fam.penalty.unchecked(code, **arguments).item() == checked.item()  # the training loop's


def test_weighted_penalty_is_the_weight_times_the_family_penalty():
    code = torch.sigmoid(torch.randn(64, 20, generator=torch.Generator().manual_seed(0)) +
                         torch.linspace(-3, 3, 20))
    for name, hyperparameters in (("kl", {"rho": 0.1, "beta": 0.005}), ("l1", {"lam": 4e-5})):
        weighted, penalty = family(name).weighted_penalty(code, hyperparameters)
        assert penalty.item() == pytest.approx(sparsity_penalty(name, code, 0.1).item(), rel=1e-7)
        weight = hyperparameters["beta" if name == "kl" else "lam"]
        assert weighted.item() == pytest.approx(weight * penalty.item(), rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_active_threshold_is_the_metrics_one_and_the_activation_can_cross_it(name):
    fam = FAMILIES[name]
    assert ACTIVE_THRESHOLD[fam.activation] == fam.active_threshold
    low, high = activate(fam.activation, torch.tensor([[-50.0, 50.0]]))[0].tolist()
    assert low <= fam.active_threshold < high  # units can be both inactive and active


@pytest.mark.parametrize("name", [name for name, fam in FAMILIES.items() if fam.start is not None])
def test_start_takes_the_family_hyperparameters(name):
    fam = FAMILIES[name]
    model = SparseAutoencoder(32, fam.activation, k=fam.reference().get("k"))
    fam.start(model, mean_input=None, **fam.reference())  # as build_model calls it: every hyperparameter by name


@pytest.mark.parametrize("rho", [0.01, 0.08, 0.5, 0.9])
def test_kl_start_puts_the_encoder_bias_at_logit_rho(rho):
    model = SparseAutoencoder.for_penalty("kl", 6, rho)
    expected = torch.full((6,), math.log(rho / (1 - rho)))
    torch.testing.assert_close(model.encoder.bias.detach(), expected, rtol=0, atol=0)
    assert torch.sigmoid(model.encoder.bias.detach().double()).tolist() == pytest.approx([rho] * 6, rel=1e-6)


# --- each hyperparameter: its values, its checks, and where it is read ----------------------------------

@pytest.mark.parametrize("fam, h", ENTRIES, ids=ENTRY_IDS)
def test_reference_value_passes_its_own_check(fam, h):
    assert h.check(h.reference) == h.reference


@pytest.mark.parametrize("fam, h", ENTRIES, ids=ENTRY_IDS)
def test_grid_values_pass_the_checks_and_contain_the_reference(fam, h):
    assert all(h.check(value) == value for value in h.grid)
    assert h.reference in h.grid  # the explorer's sliders start at the reference
    assert list(h.grid) == sorted(set(h.grid))  # increasing: the explorer steps along it
    assert len({f"{value:g}" for value in h.grid}) == len(h.grid)  # the atlas names its points with :g


@pytest.mark.parametrize("fam, h", REAL, ids=[f"{fam.name}-{h.name}" for fam, h in REAL])
def test_allowed_describes_the_range_the_check_enforces(fam, h):
    refused = [h.low - 1, math.nan, math.inf] + ([h.low] if h.open_low else [])
    if h.high is not None:
        refused += [h.high + 1] + ([h.high] if h.open_high else [])
    for value in refused:
        with pytest.raises(ValueError) as caught:
            h.check(value)
        assert f"{h.name} must lie in {h.allowed()}, got" in str(caught.value), value
    if not h.open_low:
        assert h.check(h.low) == h.low
    with pytest.raises(TypeError, match=rf"{h.name} must be a real number"):
        h.check("0.1")


def test_hyperparameter_names_are_unique_across_families():
    """HYPERPARAMETERS (and TrainConfig's fields, the flags, the atlas's --point) key them by name alone."""
    assert len(HYPERPARAMETERS) == len(ENTRIES)
    assert all(HYPERPARAMETERS[h.name] is h for _, h in ENTRIES)


@pytest.mark.parametrize("fam, h", ENTRIES, ids=ENTRY_IDS)
def test_train_config_has_a_checked_field_for_every_hyperparameter(fam, h):
    field = {f.name: f for f in dataclasses.fields(TrainConfig)}[h.name]
    assert field.default == h.reference
    assert h.help in field.metadata["help"] and h.allowed() in field.metadata["help"]
    value = h.grid[1]
    config = TrainConfig(penalty=fam.name, **{h.name: value})
    assert getattr(config, h.name) == value and config.hyperparameters()[h.name] == value
    bad = type(h.reference)(h.low - 1)
    with pytest.raises(ValueError) as from_config:
        TrainConfig(**{h.name: bad})
    with pytest.raises(ValueError) as from_table:
        h.check(bad)
    assert str(from_config.value) == str(from_table.value)


@pytest.mark.parametrize("name", WITH_PENALTY)
def test_train_config_reads_its_family_from_the_table(name):
    fam = FAMILIES[name]
    config = TrainConfig(penalty=name)
    assert config.hyperparameters() == fam.reference()
    assert config.weight == fam.reference()[fam.weight]
    assert TrainConfig(penalty=name, **{fam.weight: 0.125}).weight == 0.125


@pytest.mark.parametrize("fam, h", ENTRIES, ids=ENTRY_IDS)
def test_command_line_has_a_flag_for_every_hyperparameter(fam, h):
    parser = build_parser()
    assert getattr(parser.parse_args(["train"]), h.name) is None  # not given: TrainConfig's default
    assert getattr(train_config(parser.parse_args(["train"])), h.name) == h.reference
    args = parser.parse_args(["train", "--penalty", fam.name, f"--{h.name.replace('_', '-')}", f"{h.grid[1]!r}"])
    assert getattr(args, h.name) == h.grid[1] and args.penalty == fam.name
    assert getattr(train_config(args), h.name) == h.grid[1]


def test_build_model_swaps_the_activation_only_where_the_penalty_takes_it():
    """The ablation of the activation: None or "family" is the family's own; L1 takes sigmoid codes."""
    assert build_model("l1", 8).activation == "relu" == build_model("l1", 8, activation="family").activation
    assert build_model("l1", 8, activation="sigmoid").activation == "sigmoid"
    assert build_model("kl", 8, activation="sigmoid").activation == "sigmoid"
    assert code_activation("topk") == "topk" and code_activation("l1", "sigmoid") == "sigmoid"
    with pytest.raises(ValueError, match="activation='relu' does not go with penalty='kl'"):
        build_model("kl", 8, activation="relu")
    with pytest.raises(ValueError, match="activation='sigmoid' does not go with penalty='topk'"):
        build_model("topk", 8, activation="sigmoid")
    for fam in FAMILIES.values():
        assert all(a in ACTIVATIONS and a != fam.activation for a in fam.other_activations)
        assert fam.other_activations or fam.own_activation_only  # a family that takes no other says why


@pytest.mark.parametrize("name, rho, activation", [("kl", 0.01, None), ("l1", None, "sigmoid")])
def test_start_rho_moves_only_the_start_of_sigmoid_codes(name, rho, activation):
    """The ablation that separates KL's target from its start (and gives L1's sigmoid codes KL's start):
    every encoder bias at logit(start_rho), every weight as the run without it, the target unchanged."""
    hyper = {} if rho is None else {"rho": rho}
    torch.manual_seed(3)
    plain = build_model(name, 6, activation=activation, **hyper)
    torch.manual_seed(3)
    moved = build_model(name, 6, activation=activation, start_rho=0.3, **hyper)
    torch.testing.assert_close(moved.encoder.bias.detach(), torch.full((6,), math.log(0.3 / 0.7)), rtol=0, atol=0)
    assert not torch.equal(plain.encoder.bias, moved.encoder.bias)
    for a, b in ((plain.encoder.weight, moved.encoder.weight), (plain.decoder.weight, moved.decoder.weight),
                 (plain.decoder.bias, moved.decoder.bias)):
        assert torch.equal(a, b)
    config = TrainConfig(penalty=name, activation=activation or "family", start_rho=0.3, **hyper)
    assert config.start_rho == 0.3 and config.hyperparameters().get("rho", rho) == rho


def test_start_rho_is_refused_where_the_codes_are_not_sigmoid_or_the_start_is_pytorchs():
    with pytest.raises(ValueError, match=r"start_rho=0.08 .* relu codes"):
        TrainConfig(penalty="l1", start_rho=0.08)
    with pytest.raises(ValueError, match=r"start_rho=0.08 .* start='default'"):
        TrainConfig(penalty="kl", start="default", start_rho=0.08)
    with pytest.raises(ValueError, match=r"start_rho must lie in \(0, 1\), got 1.0"):
        TrainConfig(penalty="kl", start_rho=1.0)
    with pytest.raises(ValueError, match="start_rho=0.08 .* topk codes"):
        build_model("topk", 8, k=2, start_rho=0.08)
    args = build_parser().parse_args(["train", "--start-rho", "0.08", "--rho", "0.01"])
    assert train_config(args).start_rho == 0.08
