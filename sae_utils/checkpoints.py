"""Checkpoints (tooling around the training loop): everything needed to continue training exactly.

Written atomically after every epoch, loadable with ``weights_only`` (no code runs), and refused when
written for another config or other training data.
"""
from __future__ import annotations

from .files import atomic_torch_save, safe_torch_load


def save_checkpoint(path, config, model, optimizer, shuffler, history, n_train: int) -> None:
    """Everything needed to continue training exactly, written atomically; loadable with weights_only."""
    atomic_torch_save({"config": config.as_dict(), "n_train": n_train, "model": model.state_dict(),
                       "optimizer": optimizer.state_dict(), "shuffler": shuffler.get_state(),
                       "history": history}, path)


def load_checkpoint(path, config, model, optimizer, shuffler, n_train: int) -> dict:
    """Restore model, optimizer and shuffler state in place from ``path``; return the history."""
    state = safe_torch_load(path)
    needed = {"config", "model", "optimizer", "shuffler", "history"}
    if not isinstance(state, dict) or not needed <= state.keys():
        raise ValueError(f"{path} is not a sae_utils training checkpoint: it must hold {', '.join(sorted(needed))}")
    saved = {k: v for k, v in type(config)(**state["config"]).as_dict().items() if k not in ("device", "epochs")}
    wanted = {k: v for k, v in config.as_dict().items() if k not in ("device", "epochs")}
    if saved != wanted:
        raise ValueError(f"checkpoint {path} was written for a different config: {saved}, not {wanted}")
    if state.get("n_train") != n_train:
        raise ValueError(f"checkpoint {path} was written for {state.get('n_train')} training images, not {n_train}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    shuffler.set_state(state["shuffler"])
    return state["history"]
