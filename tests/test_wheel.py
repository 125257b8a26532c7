"""The package as a user installs it: the wheel carries every shipped model and load_pretrained finds it.

The wheel is built from a copy of the repository (what a clean clone holds, so no stale build/ folder
slips into it), installed into a folder of its own and used from another working directory with the
repository off the path. An editable install (the README's set-up) is checked the same way in a fresh
virtual environment. Both build offline (no build isolation): setuptools comes from this environment.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(card.stem for card in (ROOT / "pretrained").glob("*.json"))
# What a clean clone lacks (.gitignore), and git's own files.
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__",
                                        ".pytest_cache", ".ipynb_checkpoints", "runs")

# Run in the installed package: load and evaluate every shipped model, report as JSON.
CHECK = """
import json, os, sys
import sae_utils
from sae_utils.pretrained import PRETRAINED_DIR, PRETRAINED_NAMES
evaluate = sys.argv[1] == "evaluate"
images = sae_utils.load_mnist("test")[0] if evaluate else None
report = {"sys_path": [os.path.abspath(entry) for entry in sys.path], "file": sae_utils.__file__, "dir": str(PRETRAINED_DIR),
          "names": list(PRETRAINED_NAMES), "models": {}}
for name in PRETRAINED_NAMES:
    model, card = sae_utils.load_pretrained(name)
    report["models"][name] = {"card_bce": card["metrics"]["test"]["bce"],
                              "bce": sae_utils.evaluate(model, images)["bce"] if evaluate else None}
try:
    sae_utils.load_pretrained("no-such-model")
except ValueError as err:
    report["unknown"] = str(err)
print(json.dumps(report))
"""


def offline_build_problem() -> str | None:
    """Why this environment cannot build the package without the network, or None if it can."""
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed"
    setuptools = importlib.util.find_spec("setuptools")
    if setuptools is None:
        return "setuptools is not installed"
    has_bdist_wheel = (Path(setuptools.origin).parent / "command" / "bdist_wheel.py").is_file()  # setuptools >= 70.1
    if not has_bdist_wheel and importlib.util.find_spec("wheel") is None:
        return "setuptools < 70.1 without the wheel package cannot build wheels"
    return None


pytestmark = pytest.mark.skipif(offline_build_problem() is not None, reason=str(offline_build_problem()))


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", **extra}


def run(command: list, cwd: Path, **env) -> str:
    done = subprocess.run(command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def pip(*args, cwd: Path) -> str:
    return run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "-q"], cwd=cwd)


def check(python: str, elsewhere: Path, mode: str, **env) -> dict:
    return json.loads(run([python, "-c", CHECK, mode], cwd=elsewhere, **env).splitlines()[-1])


def is_under(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("clone") / "sae_utils_src"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE)
    return source


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """An empty working directory: nothing importable from it."""
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "elsewhere"


def test_repository_ships_the_reference_models():
    assert {"kl", "l1", "topk"} <= set(SHIPPED)


def test_wheel_carries_every_pretrained_model_and_loads_it_from_anywhere(sources, tmp_path, elsewhere):
    pip("wheel", "--no-build-isolation", "-w", tmp_path / "dist", ".", cwd=sources)
    (wheel,) = (tmp_path / "dist").glob("sae_utils-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    # The cards and weights of pretrained/, not its figures; the bundled MNIST; the atlas runs (if any).
    models = {name for name in files if name.startswith("sae_utils/pretrained_models/")}
    assert models == {f"sae_utils/pretrained_models/{name}{suffix}" for name in SHIPPED for suffix in (".json", ".pt")}
    wanted = [*(ROOT / "sae_utils").glob("mnist/*.gz"), *(ROOT / "sae_utils").glob("atlas_runs/*.npz"),
              ROOT / "sae_utils" / "atlas_runs" / "pixel_probe.json"]
    assert {f"sae_utils/{path.relative_to(ROOT / 'sae_utils').as_posix()}" for path in wanted} <= files

    site_dir = tmp_path / "site"
    pip("install", "--target", site_dir, wheel, cwd=tmp_path)
    report = check(sys.executable, elsewhere, "evaluate", PYTHONPATH=str(site_dir))

    assert is_under(report["file"], site_dir), f"sae_utils came from {report['file']}, not the wheel"
    holders = [entry for entry in report["sys_path"] if (Path(entry) / "sae_utils" / "__init__.py").is_file()]
    assert [Path(entry).resolve() for entry in holders] == [site_dir.resolve()], "another sae_utils is on the path"
    assert is_under(report["dir"], site_dir / "sae_utils" / "pretrained_models")
    assert report["names"] == SHIPPED
    for name, model in report["models"].items():
        assert model["bce"] == pytest.approx(model["card_bce"], abs=1e-5), name
    assert report["unknown"] == f"name must be one of {', '.join(map(repr, SHIPPED))}, got 'no-such-model'"


def test_editable_install_reads_the_repository_pretrained_folder(sources, tmp_path, elsewhere):
    """``pip install -e .`` into a fresh environment that sees this one's packages (torch) but not its
    own installs of sae_utils: the models come from the source tree's top-level pretrained/."""
    env = tmp_path / "env"
    run([sys.executable, "-m", "venv", "--without-pip", env], cwd=tmp_path)
    python = str(env / "bin" / "python")
    env_site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
                    .strip())
    host = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    # Plain path lines: this environment's packages, without running its .pth files (its own sae_utils finder).
    (env_site / "host_packages.pth").write_text("".join(f"{path}\n" for path in host if Path(path).is_dir()))
    pip("install", "--no-build-isolation", "--target", env_site, "--editable", sources, cwd=tmp_path)
    report = check(python, elsewhere, "load")

    assert is_under(report["file"], sources / "sae_utils"), f"sae_utils came from {report['file']}"
    assert Path(report["dir"]).resolve() == (sources / "pretrained").resolve()
    assert report["names"] == SHIPPED and set(report["models"]) == set(SHIPPED)
