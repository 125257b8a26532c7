"""The training loop: shuffled minibatches, the objective BCE + weight * penalty, Adam.

``train_epoch`` is the textbook loop (shuffle, batch, forward, objective, backward, step); ``train``
wraps it with what a real run needs: data checks, the progress bar, the test BCE after every epoch,
checkpoints and resume, Ctrl-C and the divergence stop. ``train(TrainConfig())`` is the reference setup
(Adam, lr 9e-3, 20 epochs, batch 1200; KL rho 0.08, beta 0.005; L1 lam 4e-5) on all 60,000 MNIST training
digits, evaluated on the 10,000 test digits.

Speed (an epoch costs about 1.25 times its matrix products on a 2-core CPU, benchmarks/train_speed.py):
batches are taken from the uint8 digits in memory, the BCE runs through ``fast_bce`` on CPUs where that
is faster, Adam takes one fused step, and each step synchronises once.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import load_checkpoint, save_checkpoint
from .checks import (CONFIG_CHECKS as CHECK, ACTIVATION_CHOICES, DEVICES, STARTS, check_device, check_int,
                     check_number, check_type)
from .data import pixels, training_inputs
from .fast_bce import training_bce
from .families import (DEFAULT, FAMILIES, HYPERPARAMETERS, build_model, check_start_rho, code_activation,
                       family, family_of_activation)
from .model import check_topk_k

HISTORY_KEYS = ("epoch", "train_objective", "train_bce", "train_penalty", "test_bce")
# What the code looks like on the test set after each epoch (``_test_scores``): cheap, and it lets a lesson
# follow a shipped run epoch by epoch without replaying it.
CODE_HISTORY_KEYS = ("test_penalty", "test_active_per_digit", "test_living_units", "decoder_norm_median",
                     "test_scaled_mass")


def _field(default, check, help: str, **metadata):
    """A TrainConfig field: its default, ``check(name, value) -> value``, and the command line's help."""
    return field(default=default, metadata={"check": check, "help": help, **metadata})


def _hyperparameter(name: str):
    """A TrainConfig field for a family's hyperparameter: default, range and help from the table."""
    h = HYPERPARAMETERS[name]
    return _field(h.reference, lambda _name, value: h.check(value), f"{h.help}, in {h.allowed()}",
                  type=int if h.integer else float)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters, checked once when built; the defaults are the published reference setup (the
    KL model's start at logit(rho) is this project's choice: ``families.start_codes_at_rho``).

    penalty: the family ("kl": sigmoid codes, weight beta, target rho; "l1": ReLU codes, weight lam;
    "topk": TopK codes keeping k units per input, no penalty). A family's hyperparameters are checked
    against the table; another family's must stay at their reference values (``TrainConfig(penalty="topk",
    beta=0.01)`` is refused: TopK has no penalty weight). lr_decay left at None takes the family's
    recipe (TopK: 0.3; KL and L1: 0, the reference run's constant learning rate).
    activation: an ablation that swaps the code activation while keeping the family's penalty: "family"
    (the family's own codes, the default), "sigmoid" or "relu". Only combinations that make sense are
    accepted: L1 on sigmoid codes (notebook 03's question: the activation or the penalty?); KL needs
    sigmoid codes (rho_hat_j must lie in (0, 1)) and TopK its own, so they refuse any other. Naming the
    family's own activation is the same as "family" (stored as "family"). A swapped activation starts
    from PyTorch's default initialisation (the family's start is for its own codes).
    device: "cpu", "cuda" or "auto" (CUDA when available). Frozen: change a field with
    ``dataclasses.replace(config, beta=0.01)``, which builds (and checks) a new config.
    """

    penalty: str = _field(DEFAULT, lambda name, value: family(value).name, "family of sparse autoencoder",
                          choices=tuple(FAMILIES))
    rho: float = _hyperparameter("rho")
    beta: float = _hyperparameter("beta")
    lam: float = _hyperparameter("lam")
    k: int = _hyperparameter("k")
    lr: float = _field(9e-3, CHECK["positive"], "Adam learning rate, > 0")
    lr_decay: float = _field(None, CHECK["fraction"], "the last fraction of the steps, in [0, 1], over which the "
                             "learning rate falls linearly to 0 (default: the family's recipe, TopK 0.3, "
                             "else 0)", type=float, recipe=0.0)
    lr_warmup: float = _field(0.0, CHECK["fraction"], "the first fraction of the steps, in [0, 1], over which the "
                              "learning rate rises linearly to lr (step s of n warm-up steps takes lr * s / n; "
                              "default 0: none, the reference run)")
    weight_decay: float = _field(0.0, CHECK["non-negative"], "weight decay, >= 0: the objective trained on "
                                 "adds (weight_decay / 2) * sum W^2 over the encoder and decoder weights (not the "
                                 "biases), UFLDL's weight-decay term; the history's objective leaves it out")
    epochs: int = _field(20, CHECK["count"], "passes over the training set, >= 1")
    batch_size: int = _field(1200, CHECK["count"], "inputs per Adam step, >= 1")
    n_hidden: int = _field(512, CHECK["count"], "hidden units, >= 1")
    seed: int = _field(0, CHECK["seed"], "random seed, >= 0")
    start: str = _field("family", CHECK["start"], "the model's initialisation: 'family' (the family's start, e.g. "
                        "the KL encoder bias at logit(rho)) or 'default' (PyTorch's, the ablation)",
                        choices=STARTS)
    start_rho: float | None = _field(None, CHECK["start_rho"], "sigmoid codes only: start every encoder bias at "
                                     "logit(start_rho), start_rho in (0, 1), in place of the family's start "
                                     "(default: none; KL's own start is at logit(rho)). The ablation that "
                                     "separates KL's target from its start, or gives L1's sigmoid codes KL's "
                                     "start", type=float)
    activation: str = _field("family", CHECK["activation"], "the code activation: 'family' (the family's own: "
                             "KL sigmoid, L1 ReLU, TopK TopK) or 'sigmoid' / 'relu' (the ablation, which keeps "
                             "the family's penalty; L1 takes 'sigmoid')", choices=ACTIVATION_CHOICES)
    device: str = _field("cpu", CHECK["device"], "where to train", choices=DEVICES)

    def __post_init__(self):
        recipe = family(self.penalty).recipe or {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and "recipe" in f.metadata:
                value = recipe.get(f.name, f.metadata["recipe"])
            object.__setattr__(self, f.name, f.metadata["check"](f.name, value))
        self._check_family_fields()

    def _check_family_fields(self):
        """Another family's hyperparameter set away from its reference is a mistake (TopK with a beta);
        TopK's k must fit the hidden layer; an activation the family's penalty cannot take is refused."""
        fam = family(self.penalty)
        for h in HYPERPARAMETERS.values():
            if h not in fam.hyperparameters and getattr(self, h.name) != h.reference:
                owner = next(f.name for f in FAMILIES.values() if h in f.hyperparameters)
                uses = ", ".join(x.name for x in fam.hyperparameters)
                raise ValueError(f"{h.name}={getattr(self, h.name)!r} applies to the {owner} family, not to "
                                 f"{fam.name} (whose hyperparameters are {uses}"
                                 f"{'; it has no penalty weight' if fam.weight is None else ''})")
        if "k" in self.hyperparameters():
            check_topk_k(self.k, self.n_hidden)
        if code_activation(self.penalty, self.activation) == fam.activation:  # refuses what makes no sense
            object.__setattr__(self, "activation", "family")  # the family's own, named: the same config
        check_start_rho(self.start_rho, self.code_activation, self.start)

    @property
    def code_activation(self) -> str:
        """The model's code activation: the family's own, or the ablation's ("sigmoid" for L1 on sigmoid codes)."""
        return code_activation(self.penalty, self.activation)

    def hyperparameters(self) -> dict:
        """The values of this config's family's hyperparameters, e.g. {"rho": 0.08, "beta": 0.005}."""
        return {h.name: getattr(self, h.name) for h in family(self.penalty).hyperparameters}

    @property
    def weight(self) -> float:
        """The penalty's weight: beta for KL, lam for L1; TopK: the fixed weight of its auxiliary loss."""
        fam = family(self.penalty)
        return fam.auxiliary_weight if fam.weight is None else getattr(self, fam.weight)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite. ``model`` holds the weights of the last good step."""

    def __init__(self, message: str, model, history: dict | None = None):
        super().__init__(message)
        self.model, self.history = model, history


def squared_weights(model) -> torch.Tensor:
    """The sum of the squared encoder and decoder weights, sum W^2 (a scalar): UFLDL's weight-decay term
    without its lambda / 2. The biases are left out, as in the textbook: decaying a bias would pull each
    unit's resting point towards 0, which has nothing to do with the size of the features."""
    return model.encoder.weight.square().sum() + model.decoder.weight.square().sum()


def train_epoch(model, optimizer, x_train, config: TrainConfig, bce, shuffler, epoch: int):
    """One pass over ``x_train`` (N, D) in shuffled minibatches: the textbook loop.

    Yields after each Adam step ``([objective, bce, penalty], batch size)``, the batch means (the objective is
    BCE + weight * penalty; weight decay, when set, is added to what the step descends only). A loss that
    is not finite raises TrainingDivergedError before its step, so the model keeps the last good weights.
    """
    fam, hyperparameters = FAMILIES[config.penalty], config.hyperparameters()
    order = torch.randperm(len(x_train), generator=shuffler).to(x_train.device)
    for step, indices in enumerate(order.split(config.batch_size), start=1):
        x = pixels(x_train.index_select(0, indices))                  # (B, D) in [0, 1]
        logits, code = model(x)                                       # (B, D), (B, H)
        reconstruction = bce(logits, x)                               # mean over batch and pixels
        weighted_penalty, penalty = fam.weighted_penalty(code, hyperparameters, model, x, logits)
        objective = reconstruction + weighted_penalty                 # BCE + weight * penalty
        loss = (objective + config.weight_decay / 2 * squared_weights(model)  # what the step descends
                if config.weight_decay else objective)
        values = torch.stack((objective, reconstruction, penalty)).tolist()  # the step's one synchronisation
        if not math.isfinite(values[0]):
            raise TrainingDivergedError(
                f"training diverged: the loss became {values[0]} at epoch {epoch}, batch {step}. "
                f"The weights of the last good step are kept (error.model). Try a smaller learning rate "
                f"(lr={config.lr:g}) or a smaller penalty weight (={config.weight:g}).", model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if fam.after_step is not None:                                # TopK: decoder columns back to length 1
            fam.after_step(model)
        yield values, len(x)


def new_history() -> dict:
    """Per-epoch lists (epoch numbers count from 1) and whether training was interrupted. train_objective,
    train_bce and train_penalty are the epoch's means over its steps (the penalty unweighted, so
    objective = bce + weight * penalty). Measured on the test set after the epoch: test_bce, and the
    code's ``CODE_HISTORY_KEYS`` (see ``_test_scores``)."""
    return {**{key: [] for key in (*HISTORY_KEYS, *CODE_HISTORY_KEYS)}, "interrupted": False}


def train(config: TrainConfig | None = None, train_images=None, test_images=None, *,
          checkpoint=None, resume: bool = False, progress: bool = True):
    """Train a sparse autoencoder; return ``(model, history)``.

    train_images: uint8 (0-255) or floats in [0, 1], of shape (N, D) or, where D = s * s, (N, s, s) or
    (N, 1, s, s); default the 60,000 MNIST training digits. The model is built for that D. test_images:
    the same D, scored after every epoch; default the 10,000 MNIST test digits (needed when D != 784).
    ``checkpoint``: a path written after every epoch; with ``resume=True`` an existing checkpoint is
    continued (its config must match). Ctrl-C stops training and returns the model and the history of
    the completed epochs, with ``history["interrupted"] = True``. A NaN or infinite loss raises
    ``TrainingDivergedError``.
    """
    config = config if config is not None else TrainConfig()
    check_type("config", config, TrainConfig)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH, the file to continue from")
    model, optimizer, shuffler, x_train, x_test, bce = _start(config, train_images, test_images)
    history = new_history()
    if resume and Path(checkpoint).exists():
        history = load_checkpoint(checkpoint, config, model, optimizer, shuffler, len(x_train))

    n_batches = math.ceil(len(x_train) / config.batch_size)
    start_epoch = len(history["epoch"])
    step, total_steps = start_epoch * n_batches, config.epochs * n_batches
    set_learning_rate(optimizer, learning_rate(config, step, total_steps))
    bar = tqdm(total=(config.epochs - start_epoch) * n_batches, disable=not progress,
               desc=f"{config.penalty.upper()} autoencoder", unit="batch")
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            model.train()
            sums = [0.0, 0.0, 0.0]
            for values, size in train_epoch(model, optimizer, x_train, config, bce, shuffler, epoch):
                sums = [total + value * size for total, value in zip(sums, values)]
                step += 1
                set_learning_rate(optimizer, learning_rate(config, step, total_steps))  # for the next step
                bar.update()
            means = [total / len(x_train) for total in sums]
            _record_epoch(history, epoch, means, _test_scores(model, x_test, config, bce))
            bar.set_postfix(loss=f"{means[0]:.4f}", test_bce=f"{history['test_bce'][-1]:.4f}")
            if checkpoint is not None:
                save_checkpoint(checkpoint, config, model, optimizer, shuffler, history, len(x_train))
    except TrainingDivergedError as err:
        err.history = history
        raise
    except KeyboardInterrupt:
        history["interrupted"] = True
        warnings.warn(f"training interrupted after {len(history['epoch'])} complete epochs; "
                      "returning the model and history so far", stacklevel=2)
    finally:
        bar.close()
    return model, history


def _start(config: TrainConfig, train_images, test_images):
    """What a run starts from: the seeded model, Adam, the shuffler, the data on the device and the BCE."""
    device = check_device(config.device)
    x_train, x_test = training_inputs(train_images, test_images, config.batch_size)
    x_train, x_test = x_train.to(device), x_test.to(device)
    torch.manual_seed(config.seed)
    model = build_model(config.penalty, config.n_hidden, x_train.shape[1], mean_input=_mean_input(x_train),
                        family_start=config.start == "family", activation=config.activation,
                        start_rho=config.start_rho, **config.hyperparameters()).to(device)
    optimizer = _new_adam(model, config.lr)
    shuffler = torch.Generator().manual_seed(config.seed)
    return model, optimizer, shuffler, x_train, x_test, training_bce(device)


def first_batch(config: TrainConfig, n_inputs: int = 60_000) -> torch.Tensor:
    """(batch_size,) int64: the indices of the inputs in the first minibatch that ``train(config)`` and
    ``replay(config, ...)`` take from ``n_inputs`` training inputs (the first slice of the seeded shuffle)."""
    check_type("config", config, TrainConfig)
    n_inputs = check_int("n_inputs", n_inputs)
    order = torch.randperm(n_inputs, generator=torch.Generator().manual_seed(config.seed))  # as _start + train_epoch
    return order[:config.batch_size]


def replay(config: TrainConfig, steps, train_images=None, lr_schedule=None, progress: bool = False,
           adam_betas: tuple | None = None) -> dict:
    """Copies of the model at the start (key 0) and after each Adam step in ``steps`` (counted from 1) of
    the run ``train(config, train_images)`` makes: the same start, order of the inputs, Adam and BCE, so
    step s here is step s there. Stops after the last step asked for.

    lr_schedule: ``lr_schedule(step) -> learning rate`` of each step (counted from 1), to replay the run
    with another schedule (a warm-up); default the config's own (``learning_rate``). adam_betas: Adam's
    (beta1, beta2), each in [0, 1), to replay the run with other moment decays (beta1 = 0: no momentum);
    default PyTorch's (0.9, 0.999), as ``train``. progress: a bar over the steps.
    """
    check_type("config", config, TrainConfig)
    steps = sorted({check_int("steps", step) for step in steps})
    if not steps:
        raise ValueError("steps must name at least one step, an integer >= 1")
    if adam_betas is not None:
        pair = tuple(adam_betas) if isinstance(adam_betas, (tuple, list)) else ()
        if len(pair) != 2:
            raise ValueError(f"adam_betas must be a pair (beta1, beta2), each in [0, 1), got {adam_betas!r}")
        adam_betas = tuple(check_number(f"adam_betas[{i}]", b, low=0, high=1, high_open=True) for i, b in enumerate(pair))
    model, optimizer, shuffler, x_train, _, bce = _start(config, train_images, None)
    if adam_betas is not None:
        optimizer.param_groups[0]["betas"] = adam_betas
    total = config.epochs * math.ceil(len(x_train) / config.batch_size)
    schedule = lr_schedule or (lambda step: learning_rate(config, step - 1, total))
    copies, done, epoch = {0: copy.deepcopy(model)}, 0, 0
    set_learning_rate(optimizer, schedule(1))
    with tqdm(total=steps[-1], disable=not progress, desc=f"replaying {config.penalty.upper()}", unit="step") as bar:
        while done < steps[-1]:
            epoch += 1
            for _values, _size in train_epoch(model, optimizer, x_train, config, bce, shuffler, epoch):
                done += 1
                bar.update()
                if done in steps:
                    copies[done] = copy.deepcopy(model)
                if done == steps[-1]:
                    break
                set_learning_rate(optimizer, schedule(done + 1))
    return copies


@torch.no_grad()
def _mean_input(x_train) -> torch.Tensor:
    """(D,) the mean training input in [0, 1], summed in float64 a slice at a time."""
    return sum(pixels(part).double().sum(dim=0) for part in x_train.split(10_000)).float().cpu() / len(x_train)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (counted from 0) of ``total_steps``: ``config.lr``, rising
    linearly over the first ``config.lr_warmup`` of the steps (step s, counted from 1, of n warm-up steps
    takes lr * s / n) and falling linearly to 0 over the last ``config.lr_decay`` of them (both 0: constant,
    the reference run)."""
    rate = config.lr
    warmup_steps = config.lr_warmup * total_steps
    if warmup_steps > 0:
        rate *= min(1.0, (step + 1) / warmup_steps)
    decay_steps = config.lr_decay * total_steps
    if decay_steps > 0:
        rate *= min(1.0, (total_steps - step) / decay_steps)
    return rate


def set_learning_rate(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def _test_scores(model, x_test, config: TrainConfig, bce) -> dict:
    """The model on the test set after an epoch, as floats.

    test_bce: mean over inputs and pixels, a batch at a time (no 30 MB temporaries every epoch). From the
    code of all N test inputs, (N, H): test_penalty, the family's unweighted penalty as ``evaluate``
    reports it (TopK: 0); test_active_per_digit, the mean number of units above the active threshold of
    the code's activation (L1: L0; sigmoid codes, also L1's on them: above 0.5); test_living_units, the
    units active on at least one input; decoder_norm_median, the median length ||d_j|| of the living
    units' decoder columns (None when none lives); test_scaled_mass, the mean over inputs of
    sum_j |y_j| * ||d_j||, the code's mass with each unit measured by the length of the image it adds,
    which a rescaling (y_j / c, d_j * c) leaves unchanged while it divides the L1 penalty by c.
    """
    model.eval()
    fam = FAMILIES[config.penalty]
    total, codes = 0.0, []
    for x in map(pixels, x_test.split(config.batch_size)):
        logits, code = model(x)
        total = total + bce(logits, x) * len(x)
        codes.append(code)
    code = torch.cat(codes)
    active = code > family_of_activation(model.activation).active_threshold  # the code's own rule
    living = active.any(dim=0)
    penalty = 0.0 if fam.penalty is None else \
        fam.penalty.unchecked(code, **fam.penalty_arguments(config.hyperparameters())).item()
    all_lengths = model.decoder.weight.norm(dim=0)
    lengths = all_lengths[living]
    return {"test_bce": total.item() / len(x_test), "test_penalty": penalty,
            "test_active_per_digit": active.sum(dim=1).float().mean().item(),
            "test_living_units": int(living.sum()),
            "decoder_norm_median": lengths.median().item() if len(lengths) else None,
            "test_scaled_mass": (code.abs() @ all_lengths).mean().item()}


def _new_adam(model, lr: float) -> torch.optim.Optimizer:
    """Adam with its fused one-kernel step where this torch has it for the device (CPU: torch >= 2.4)."""
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr)


def _record_epoch(history, epoch, means, scores):
    for key, value in zip(HISTORY_KEYS, (epoch, *means, scores["test_bce"])):
        history[key].append(value)
    for key in CODE_HISTORY_KEYS:  # a checkpoint from before these keys: earlier epochs unknown (None)
        history.setdefault(key, [None] * (epoch - 1)).append(scores[key])


# The losses the published reference setup reported (per-pixel BCE-based, see the README).
PUBLISHED_LOSSES = {name: fam.published for name, fam in FAMILIES.items() if fam.published}
