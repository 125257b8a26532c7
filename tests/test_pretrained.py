"""sae_utils.pretrained: the shipped weights against a fresh evaluation, saving (atomically) and safe
loading (sha256, damage, crafted pickles). The ``evaluate`` command is tested in test_cli.py."""
import hashlib
import json
import os
import shutil

import pytest
import torch

import sae_utils
from sae_utils.families import FAMILIES
from sae_utils import SparseAutoencoder, TrainConfig, load_pretrained
from sae_utils.pretrained import PRETRAINED_DIR, load_model, save_model
from sae_utils.train import PUBLISHED_LOSSES

NAMES = ["kl", "l1", "topk"]


@pytest.mark.parametrize("name", NAMES)
def test_card_describes_the_reference_run(name):
    card = json.loads((PRETRAINED_DIR / f"{name}.json").read_text())
    assert TrainConfig(**card["config"]) == TrainConfig(penalty=name)  # the reference setup (later fields: defaults)
    assert card["architecture"] == {"n_hidden": 512, "activation": FAMILIES[name].activation, "n_input": 784,
                                    **({"k": 25} if name == "topk" else {})}
    assert card["history"]["epoch"] == list(range(1, 21)) and card["history"]["interrupted"] is False
    assert {"torch", "numpy", "python", "sae_utils"} <= set(card["versions"])
    weights = PRETRAINED_DIR / card["weights_file"]
    assert card["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_card_test_metrics_match_a_fresh_evaluation(name):
    model, card = load_pretrained(name)
    assert model.architecture() == card["architecture"] and not model.training
    fresh = sae_utils.evaluate(model, sae_utils.load_mnist("test")[0], **TrainConfig(**card["config"]).hyperparameters())
    for key, value in card["metrics"]["test"].items():
        assert fresh[key] == pytest.approx(value, abs=1e-4), key


@pytest.mark.parametrize("name", list(PUBLISHED_LOSSES))
def test_test_bce_at_or_below_the_published_loss(name):
    _, card = load_pretrained(name)
    assert card["metrics"]["test"]["bce"] <= PUBLISHED_LOSSES[name]["test"]


def test_topk_reference_meets_its_targets():
    """The TopK issue's bar: k = 25, test BCE at most 0.085, fewer than 5 % of the units dead, L0 <= k."""
    model, card = load_pretrained("topk")
    test = card["metrics"]["test"]
    assert model.k == 25 and card["config"]["lr_decay"] == 0.3
    assert test["bce"] <= 0.085 and test["dead_fraction"] < 0.05 and test["active_units_per_digit"] <= 25


# --- damaged and tampered files ------------------------------------------------------------------------

@pytest.fixture
def copied_kl(tmp_path):
    """A copy of the shipped KL card and weights in tmp_path."""
    for name in ("kl.json", "kl.pt"):
        shutil.copy(PRETRAINED_DIR / name, tmp_path / name)
    return tmp_path


def rewrite_card(folder, **changes):
    card_path = folder / "kl.json"
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_copy_loads(copied_kl):
    model, _ = load_pretrained("kl", copied_kl)
    reference, _ = load_pretrained("kl")
    torch.testing.assert_close(model.state_dict(), reference.state_dict(), rtol=0, atol=0)


def test_tampered_weights_fail_the_sha256(copied_kl):
    raw = bytearray((copied_kl / "kl.pt").read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit in one weight
    (copied_kl / "kl.pt").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"weights file .*kl\.pt has sha256 .* but its card .*kl\.json says"):
        load_pretrained("kl", copied_kl)


def test_truncated_weights_are_reported(copied_kl):
    weights = copied_kl / "kl.pt"
    weights.write_bytes(weights.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=r"kl\.pt has sha256"):
        load_pretrained("kl", copied_kl)
    # Even with a card that vouches for the truncated file, loading fails with the file's name.
    rewrite_card(copied_kl, sha256=hashlib.sha256(weights.read_bytes()).hexdigest())
    with pytest.raises(ValueError, match=r"kl\.pt is not a readable torch weights file"):
        load_pretrained("kl", copied_kl)


def test_card_that_is_not_json_is_reported(copied_kl):
    card = copied_kl / "kl.json"
    card.write_text(card.read_text()[:200])  # cut off mid-write
    with pytest.raises(ValueError, match=r"kl\.json is not valid JSON"):
        load_pretrained("kl", copied_kl)


@pytest.mark.parametrize("content", ["[1, 2]", '{"sha256": "00"}', "null"])
def test_card_without_the_needed_fields_is_reported(copied_kl, content):
    (copied_kl / "kl.json").write_text(content)
    with pytest.raises(ValueError, match=r"model card .*kl\.json must be a JSON object with the fields"):
        load_pretrained("kl", copied_kl)


def test_card_may_not_point_outside_its_folder(copied_kl):
    rewrite_card(copied_kl, weights_file="../kl.pt")
    with pytest.raises(ValueError, match=r"weights_file must be a file name beside the card, got '\.\./kl\.pt'"):
        load_pretrained("kl", copied_kl)


def test_weights_that_do_not_fit_the_architecture_are_reported(copied_kl):
    rewrite_card(copied_kl, architecture={"n_hidden": 100, "activation": "sigmoid", "n_input": 784})
    with pytest.raises(ValueError, match=r"kl\.pt does not fit the architecture in .*kl\.json"):
        load_pretrained("kl", copied_kl)
    rewrite_card(copied_kl, architecture={"n_hidden": 512, "layers": 3})
    with pytest.raises(ValueError, match=r"does not fit the architecture"):
        load_pretrained("kl", copied_kl)


def test_missing_weights_are_reported(copied_kl):
    (copied_kl / "kl.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"weights file .*kl\.pt named by .*kl\.json does not exist"):
        load_pretrained("kl", copied_kl)


def test_save_and_load_round_trip(tmp_path, test_digits):
    torch.manual_seed(0)
    model = SparseAutoencoder.for_penalty("l1", 16)
    card = save_model(model, {"config": TrainConfig(penalty="l1").as_dict()}, tmp_path, "tiny")
    assert card["sha256"] == hashlib.sha256((tmp_path / "tiny.pt").read_bytes()).hexdigest()
    loaded, loaded_card = load_model(tmp_path / "tiny.json")
    assert loaded_card == card
    x = sae_utils.prepare_images(test_digits[:8])
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_crash_while_saving_a_model_keeps_the_previous_model(tmp_path, monkeypatch):
    first = SparseAutoencoder(8)
    save_model(first, {}, tmp_path, "m")
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            save_model(SparseAutoencoder(8), {}, tmp_path, "m")
    loaded, _ = load_model(tmp_path / "m.json")  # sha256 still matches: neither file was touched
    torch.testing.assert_close(loaded.state_dict(), first.state_dict(), rtol=0, atol=0)


# --- a file crafted to run code when unpickled -------------------------------------------------------

def test_load_model_refuses_code_even_with_a_matching_sha256(crafted):
    path, marker = crafted
    card = {"weights_file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "architecture": {"n_hidden": 8, "activation": "sigmoid", "n_input": 784}}
    (path.parent / "evil.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="refused to load"):
        load_model(path.parent / "evil.json")
    assert not marker.exists()
