"""The command line end to end on small runs, its error messages and exit codes, --resume, and the
``evaluate`` command against the shipped cards."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import raise_keyboard_interrupt

import sae_utils
from sae_utils import cli, load_pretrained
from sae_utils.files import safe_torch_load
from sae_utils.pretrained import load_model
from sae_utils.train import PUBLISHED_LOSSES

SMALL = ["--train-size", "2000", "--batch-size", "200", "--n-hidden", "32", "--no-progress"]


def run_main(argv, capsys):
    """Run ``main(argv)`` in this process; return (exit status, stdout, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as stop:  # argparse exits by itself on malformed flags
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


def test_train_end_to_end(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "sae_utils", "train", "--penalty", "l1", "--epochs", "2", "--train-size", "2000",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "l1.pt").is_file() and not (out / "checkpoint.pt").exists()
    for pattern in ("*loss_curve.png", "*reconstructions.png"):
        (figure,) = out.glob(pattern)
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((out / "l1.json").read_text())
    assert card["config"]["penalty"] == "l1" and card["config"]["epochs"] == 2
    assert card["history"]["epoch"] == [1, 2]
    assert card["metrics"]["train"]["n_images"] == 2000 and card["metrics"]["test"]["n_images"] == 10_000
    # The weights on disk reproduce the card's test metrics.
    model, _ = load_model(out / "l1.json")
    fresh = sae_utils.evaluate(model, sae_utils.load_mnist("test")[0])
    assert fresh["bce"] == pytest.approx(card["metrics"]["test"]["bce"], rel=1e-6)
    # The table: our losses beside the published ones.
    assert "published" in done.stdout and "0.07757" in done.stdout and "0.08090" in done.stdout
    assert f"{card['metrics']['test']['bce']:9.5f}" in done.stdout
    assert "Traceback" not in done.stderr


BAD_FLAGS = [
    (["--penalty", "l2"], "invalid choice: 'l2'"),
    (["--rho", "0"], "rho must lie in (0, 1), got 0.0"),
    (["--rho", "1.5"], "rho must lie in (0, 1), got 1.5"),
    (["--rho", "nan"], "rho must lie in (0, 1), got nan"),
    (["--beta", "-1"], "beta must lie in [0, inf), got -1.0"),
    (["--penalty", "l1", "--lam", "-0.1"], "lam must lie in [0, inf), got -0.1"),
    (["--lam", "1e-4"], "--lam does not apply to --penalty kl (it takes --rho, --beta)"),
    (["--lr-decay", "1.5"], "lr_decay must lie in [0, 1], got 1.5"),
    (["--lr-warmup", "-0.1"], "lr_warmup must lie in [0, 1], got -0.1"),
    (["--lr", "0"], "lr must lie in (0, inf), got 0.0"),
    (["--lr", "inf"], "lr must lie in (0, inf), got inf"),
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--epochs", "2.5"], "argument --epochs: invalid int value: '2.5'"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["--n-hidden", "0"], "n_hidden must be an integer >= 1, got 0"),
    (["--seed", "-1"], "seed must be an integer >= 0, got -1"),
    (["--device", "gpu"], "invalid choice: 'gpu'"),
    (["--train-size", "0"], "--train-size must be in [1, 60000], got 0"),
    (["--train-size", "100", "--batch-size", "200"], "batch_size must be at most the number of training images (100), got 200"),
    (["--learning-rate", "0.1"], "unrecognized arguments: --learning-rate"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flags_exit_2_with_a_short_message(flags, message, tmp_path, capsys):
    status, out, err = run_main(["train", "--out", str(tmp_path / "run"), *flags], capsys)
    assert status == 2
    assert message in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_unwritable_out_is_reported_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    def no_work(*args, **kwargs):
        raise AssertionError("data was loaded or training started before --out was checked")

    monkeypatch.setattr(cli, "load_mnist", no_work)
    monkeypatch.setattr(cli, "train", no_work)
    status, _, err = run_main(["train", "--out", str(blocker / "run")], capsys)
    assert status == 2
    assert f"output folder {blocker / 'run'} cannot be written" in err and "Traceback" not in err


def test_divergence_exits_1_with_advice(tmp_path, capsys):
    status, _, err = run_main(["train", "--penalty", "l1", "--lr", "1e30", "--out", str(tmp_path), *SMALL], capsys)
    assert status == 1
    assert "diverged" in err and "epoch 1, batch" in err and "learning rate" in err and "Traceback" not in err


def test_resume_continues_a_stopped_run_and_is_needed_to_continue_it(tmp_path, capsys, fail_at_step):
    """The flag only: that a resumed run equals an uninterrupted one is train's job (test_train.py)."""
    argv = ["train", "--penalty", "kl", "--epochs", "2", *SMALL, "--out", str(tmp_path)]
    checkpoint = tmp_path / "checkpoint.pt"
    fail_at_step(15, raise_keyboard_interrupt)  # epoch 2 of 2, batch 5 of 10
    with pytest.warns(UserWarning, match="interrupted"):
        status, _, err = run_main(argv, capsys)
    assert status == 130 and "--resume" in err
    assert checkpoint.is_file() and not (tmp_path / "kl.json").exists()
    stopped = safe_torch_load(checkpoint)["history"]
    assert stopped["epoch"] == [1]

    # Running again without --resume would throw the stopped run away: refused.
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "holds a stopped run" in err

    calls = fail_at_step(10**9, raise_keyboard_interrupt)  # never fires: counts the training steps
    assert run_main([*argv, "--resume"], capsys)[0] == 0
    assert calls["n"] == 10  # epoch 2 only: the run continued from the checkpoint, it did not start again
    resumed = json.loads((tmp_path / "kl.json").read_text())
    assert resumed["history"]["epoch"] == [1, 2]
    for key in ("train_objective", "train_bce", "train_penalty", "test_bce"):
        assert resumed["history"][key][0] == stopped[key][0]  # epoch 1 is the stopped run's
    assert not checkpoint.exists()  # a finished run leaves no checkpoint behind


def test_resume_without_a_stopped_run_is_refused(tmp_path, capsys):
    status, _, err = run_main(["train", "--out", str(tmp_path), "--resume", *SMALL], capsys)
    assert status == 2 and "no stopped run to continue" in err and "checkpoint.pt" in err


@pytest.mark.parametrize("junk", [b"PK\x03\x04 half a zip file", b"hello\n", bytes(range(7, 40))])
def test_resume_from_a_damaged_checkpoint_names_it(tmp_path, capsys, junk):
    (tmp_path / "checkpoint.pt").write_bytes(junk)
    status, _, err = run_main(["train", "--out", str(tmp_path), "--resume", *SMALL], capsys)
    assert status == 2 and str(tmp_path / "checkpoint.pt") in err and "Traceback" not in err
    assert "not a readable torch weights file" in err  # junk, not mistaken for a file that runs code


def test_evaluate_rejects_unknown_names(capsys):
    status, _, err = run_main(["evaluate", "l2"], capsys)
    assert status == 2 and "invalid choice: 'l2'" in err


def test_evaluate_with_a_missing_folder_names_it(tmp_path, capsys):
    status, _, err = run_main(["evaluate", "kl", "--dir", str(tmp_path / "nowhere")], capsys)
    assert status == 2 and str(Path(tmp_path / "nowhere" / "kl.json")) in err


def table_value(table: str, label: str) -> float:
    (line,) = [line for line in table.splitlines() if line.startswith(label)]
    return float(line[len(label):].split()[0])


@pytest.mark.parametrize("name", ["kl", "l1"])
def test_evaluate_command_reproduces_the_card(name, capsys):
    """``python -m sae_utils evaluate NAME`` evaluates afresh on all 70,000 digits."""
    assert cli.main(["evaluate", name]) == 0
    table = capsys.readouterr().out
    _, card = load_pretrained(name)
    assert table_value(table, "train BCE, final model") == pytest.approx(card["metrics"]["train"]["bce"], abs=1e-4)
    assert table_value(table, "test BCE") == pytest.approx(card["metrics"]["test"]["bce"], abs=1e-4)
    assert f"{PUBLISHED_LOSSES[name]['test']:10.5f}" in table


# --- --data: the user's own (N, D) arrays -----------------------------------------------------------

def own_patches(n=600, d=36, seed=0):
    """Random inputs in [0, 1] of D = 36 values (6x6 images), float32 (n, d)."""
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


def test_train_on_a_npy_file_holds_out_a_tenth_and_draws_its_images(tmp_path, capsys):
    path = tmp_path / "patches.npy"
    np.save(path, own_patches().numpy())
    argv = ["train", "--data", str(path), "--penalty", "l1", "--epochs", "1", "--batch-size", "100",
            "--n-hidden", "8", "--no-progress", "--out", str(tmp_path / "run")]
    status, out, err = run_main(argv, capsys)
    assert status == 0, err
    card = json.loads((tmp_path / "run" / "l1.json").read_text())
    assert card["data"] == str(path) and card["test_data"] == "last 60 rows of --data"
    assert card["metrics"]["train"]["n_images"] == 540 and card["metrics"]["test"]["n_images"] == 60
    assert card["architecture"]["n_input"] == 36 and card["published"] is None
    assert (tmp_path / "run" / "l1_reconstructions.png").is_file()  # 36 = 6 * 6: drawn as images
    model, _ = load_model(tmp_path / "run" / "l1.json")
    assert sae_utils.evaluate(model, own_patches()[-60:])["bce"] == pytest.approx(card["metrics"]["test"]["bce"])


def test_train_on_a_pt_file_of_non_square_inputs_with_a_test_file(tmp_path, capsys):
    torch.save(own_patches(d=10), tmp_path / "train.pt")
    torch.save(own_patches(n=50, d=10, seed=1), tmp_path / "test.pt")
    argv = ["train", "--data", str(tmp_path / "train.pt"), "--test-data", str(tmp_path / "test.pt"),
            "--epochs", "1", "--batch-size", "100", "--n-hidden", "4", "--no-progress", "--out", str(tmp_path)]
    status, out, err = run_main(argv, capsys)
    assert status == 0, err
    assert (tmp_path / "kl_loss_curve.png").is_file() and not (tmp_path / "kl_reconstructions.png").exists()
    assert json.loads((tmp_path / "kl.json").read_text())["metrics"]["test"]["n_images"] == 50


class RunsCode:
    def __reduce__(self):
        return (print, ("pickled code ran",))


@pytest.mark.parametrize("write, message", [
    (lambda p: np.save(p.with_suffix(".npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True),
     "is not a plain numeric .npy array (pickled objects are refused)"),
    (lambda p: torch.save({"x": RunsCode()}, p.with_suffix(".pt")), "could execute code"),
    (lambda p: torch.save({"x": torch.rand(3, 4)}, p.with_suffix(".pt")), "must hold one tensor of shape (N, D), got a dict"),
    (lambda p: np.save(p.with_suffix(".npy"), np.random.rand(4, 3, 2)), "must hold an array of shape (N, D), got shape (4, 3, 2)"),
    (lambda p: np.save(p.with_suffix(".npy"), np.full((4, 9), 2.0)), "must have values in [0, 1], got values in [2, 2]"),
    (lambda p: np.save(p.with_suffix(".npy"), np.ones((4, 9), dtype=np.int64)), "must be uint8 (0-255) or floating point"),
    (lambda p: p.with_suffix(".csv").write_text("1,2\n"), "--data must be a .npy or .pt file, got 'data.csv'"),
])
def test_bad_data_files_get_one_line_naming_the_file_and_exit_2(tmp_path, capsys, write, message):
    write(tmp_path / "data")
    (path,) = tmp_path.glob("data.*")
    status, out, err = run_main(["train", "--data", str(path), "--out", str(tmp_path / "run"), *SMALL[2:]], capsys)
    assert status == 2 and message in err and str(path.name) in err
    assert len(err.strip().splitlines()) == 1 and "pickled code ran" not in out


def test_a_test_file_of_another_width_is_refused(tmp_path, capsys):
    torch.save(own_patches(d=10), tmp_path / "train.pt")
    torch.save(own_patches(d=12), tmp_path / "test.pt")
    status, _, err = run_main(["train", "--data", str(tmp_path / "train.pt"), "--test-data",
                               str(tmp_path / "test.pt"), "--out", str(tmp_path)], capsys)
    assert status == 2 and "--test-data" in err and "(N, 10)" in err and "(600, 12)" in err
