"""A study file: a base `TrialConfig`, a search space over its dotted paths, and how to run it.

    name: loss_weights
    data: {dataset: scut-fbp5500, root: data/SCUT-FBP5500_v2}     # TrialConfig sections
    loss: {name: combo, alpha: 2.0, beta: 1.0, gamma: 1.0}
    search:
      sampler: tpe                    # tpe | random | grid | gp | cmaes | nsga2
      num_trials: 40
      space:
        loss.alpha: {float: [0.0, 4.0]}
        train.lr: {float: [0.001, 0.1], log: true}
        train.schedule.name: {choice: [step, cosine]}
        train.schedule.step_size: {int: [10, 100], step: 10, when: {train.schedule.name: step}}
      baseline: [{loss.alpha: 2.0}]   # evaluated first
      tpe_window: 1000                # TPE models the 1,000 most recent finished trials
    objective: {metric: pc, mode: max}
    scheduler: {name: asha, grace_folds: 1}
    resources: {gpu: 0.5, cpu: 4, max_concurrent: 8}

Everything is checked at load, before anything runs: every space path exists in TrialConfig,
every bound, choice and baseline value passes that field's validation, conditions name paths
that exist. Errors name the YAML key and the value.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fbp.config import (
    TrialConfig,
    absolute_path,
    apply_overrides,
    field_at,
    format_validation_error,
    is_path_field,
    published_refill,
    read_yaml,
    resolve_paths,
    set_path,
    validate_config,
)
from fbp.errors import InputError
from fbp.metrics import METRICS, val_name

Scalar = float | int | str | bool | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dimension(Strict):
    """One searched knob: exactly one of `float`, `int` (as [low, high]) or `choice`."""

    float_: tuple[float, float] | None = Field(None, alias="float")
    int_: tuple[int, int] | None = Field(None, alias="int")
    choice: list[Scalar] | None = None
    log: bool = False
    """Sample the range on a log scale."""
    step: float | None = Field(None, gt=0)
    """Quantize the range (a grid sampler needs it for float and int ranges)."""
    when: dict[str, Scalar | list[Scalar]] | None = None
    """Search this knob only when these paths have these values (a list: any of them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [k for k, v in (("float", self.float_), ("int", self.int_), ("choice", self.choice)) if v is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of float, int, choice; got {kinds or 'none'}")
        bounds = self.float_ or self.int_
        if bounds is not None and not bounds[0] <= bounds[1]:
            raise ValueError(f"low <= high must hold, but got (low={bounds[0]}, high={bounds[1]})")
        if self.log and (bounds is None or bounds[0] <= 0):
            raise ValueError("log needs a float or int range with low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        return self

    @property
    def kind(self) -> str:
        return "float" if self.float_ is not None else "int" if self.int_ is not None else "choice"

    @property
    def values_to_check(self) -> list[Scalar]:
        return list(self.choice) if self.choice is not None else list(self.float_ or self.int_)

    def outside(self, value: Scalar) -> str | None:
        """Why `value` is not a point of this dimension, or None when it is. A baseline point is
        enqueued in Optuna, which runs a fixed value outside the space with only a warning: the
        study would then report a trial the space cannot hold."""
        if self.choice is not None:
            return None if any(_same(value, c) for c in self.choice) else f"not one of the choices {list(self.choice)}"
        low, high = self.float_ or self.int_
        extra = " log" if self.log else f" step {self.step:g}" if self.step is not None else ""
        where = f"the range {self.kind} [{low}, {high}]{extra}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"not a number, and the space is {where}"
        if self.int_ is not None and float(value) != int(value):
            return f"not an integer, and the space is {where}"
        if not low <= value <= high:
            return f"outside {where}"
        step = self.step if self.step is not None else (1 if self.int_ is not None else None)
        if step is not None and abs((value - low) / step - round((value - low) / step)) > 1e-8:
            return f"not on the grid of {where}"
        return None

    def grid(self) -> list[Scalar] | None:
        """Every value of the dimension, or None when it is continuous."""
        if self.choice is not None:
            return list(self.choice)
        low, high = self.float_ or self.int_
        step = self.step if self.step is not None else (1 if self.int_ is not None else None)
        if step is None:
            return None
        count = int(round((high - low) / step)) + 1
        values = [low + i * step for i in range(count)]
        return [int(v) for v in values] if self.int_ is not None else [round(v, 12) for v in values]


def _same(a: Scalar, b: Scalar) -> bool:
    """Equal as YAML means it: 1 and 1.0 are, true and 1 are not (Python's == says they are)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


class SearchSpec(Strict):
    sampler: Literal["tpe", "random", "grid", "gp", "cmaes", "nsga2"] = "tpe"
    num_trials: int = Field(8, ge=1)
    """How many trials to run (a grid ends earlier when it is used up). Without a space the
    study is one configuration, one trial."""
    seed: int = 0
    """Sampler seed."""
    space: dict[str, Dimension] = Field(default_factory=dict)
    baseline: list[dict[str, Scalar]] = Field(default_factory=list)
    """Points evaluated first, e.g. the paper's setting; each is a {path: value} mapping."""
    keep_models: int = Field(3, ge=0)
    """Keep the selected fold models of this many best complete trials (by the objective) in
    RESULTS/models, and the baseline's; a trial that drops out of them is deleted. Export one
    with fbp-search export. Each kept trial costs its folds' weights (SEResNeXt50: ~100 MB a fold)."""
    tpe_window: int = Field(1000, ge=10)
    """sampler tpe: the most recent finished trials it models. Its ask then costs the same
    however long the study runs (all trials: ~15 ms more per 1,000, past 1 s at the slowest of
    10,000 trials; bench/scale.py); a study of at most this many trials samples as plain TPE."""

    @model_validator(mode="before")
    @classmethod
    def _one_configuration(cls, raw):
        if isinstance(raw, dict) and not raw.get("space") and "num_trials" not in raw:
            return {**raw, "num_trials": 1}
        return raw


class Objective(Strict):
    metric: str = "pc"
    """What the search optimises: a metric of `fbp.metrics.METRICS` (pc, mae, rmse), the mean
    over a trial's folds."""
    mode: Literal["max", "min"] | None = None
    """Default: the metric's own direction (max for pc, min for mae and rmse)."""
    on: Literal["val", "test"] = "val"
    """Where the search reads the metric. val: on a part held out of each fold's training
    split (eval.holdout), so neither Optuna nor ASHA ever sees a test fold, and the test
    figures the report gives for the chosen trial are honest. test: the mean test-fold metric,
    as the published code's searches did; every figure of such a study is marked as selected
    on test folds. Default: val for a study with a search space, test for one configuration
    (it chooses nothing)."""

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, raw):
        # YAML 1.1 reads a bare `on:` key as the boolean true: {metric: pc, on: val} -> {True: "val"}
        if isinstance(raw, dict) and True in raw and "on" not in raw:
            raw = {("on" if k is True else k): v for k, v in raw.items()}
        return raw

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; valid: {', '.join(METRICS)}")
        return v

    @property
    def direction(self) -> str:
        return self.mode or METRICS[self.metric].direction

    @property
    def key(self) -> str:
        """The reported value it reads: `pc` (test folds) or `val_pc` (validation parts)."""
        return val_name(self.metric) if self.on == "val" else self.metric

    @model_validator(mode="after")
    def _sensible(self) -> Objective:
        own = METRICS[self.metric].direction
        if self.mode is not None and self.mode != own:
            raise ValueError(f"metric {self.metric} is better when {'higher' if own == 'max' else 'lower'}; mode {self.mode!r} would optimize it the wrong way")
        return self


class SchedulerSpec(Strict):
    name: Literal["asha", "none"] = "asha"
    grace_folds: int = Field(1, ge=1)
    """ASHA: folds every trial completes before it can be stopped."""
    reduction_factor: float = Field(2.0, gt=1)


class Resources(Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)
    """GPUs per trial; a fraction shares a GPU (0.5: two trials per GPU)."""
    max_concurrent: int = Field(0, ge=0)
    """Trials at once; 0 lets the resources decide."""


class MLflowTracking(Strict):
    uri: str | None = None
    """A tracking URI (http://host:5000, sqlite:///path.db); default an embedded SQLite store,
    RESULTS/tracking/mlflow.db."""
    experiment: str | None = None
    """The MLflow experiment; default the study's name."""


class WandbTracking(Strict):
    project: str | None = None
    """The W&B project; default the study's name."""
    mode: Literal["offline", "online"] = "offline"
    """offline (the default) writes under RESULTS/tracking/wandb for `wandb sync`; online logs as it goes."""


class TensorBoardTracking(Strict):
    """Event files under RESULTS/tracking/tensorboard, one folder per trial."""


class Tracking(Strict):
    """Experiment trackers the study logs every trial to (search.tracking); not part of what the
    study computes, so not of its hash: `resume --track` can add one."""

    mlflow: MLflowTracking | None = None
    wandb: WandbTracking | None = None
    tensorboard: TensorBoardTracking | None = None

    @model_validator(mode="before")
    @classmethod
    def _names(cls, raw):
        # tracking: [mlflow, tensorboard] is each with its defaults
        if isinstance(raw, list) and all(isinstance(name, str) for name in raw):
            return {name: {} for name in raw}
        return raw

    def options(self) -> dict[str, dict]:
        """tracker name -> its options, for the trackers turned on."""
        return {name: getattr(self, name).model_dump(exclude_none=True) for name in type(self).model_fields if getattr(self, name) is not None}


class StudySpec(TrialConfig):
    """A trial config (its sections `data`, `model`, `loss`, `train`, `eval` are the base of every
    trial) plus what to search and how to run it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """The study's name: results go to results/<name> unless --results says otherwise."""
    description: str = ""
    """What the study is for, in words (shown by validate, kept in study.yaml)."""
    search: SearchSpec = SearchSpec()
    """What to try: the sampler, how many trials, the space over dotted paths, baseline points."""
    objective: list[Objective] = Field(default_factory=lambda: [Objective()])
    """One objective ({metric: pc}) or several (a list) for a multi-objective study."""
    scheduler: SchedulerSpec = SchedulerSpec()
    """When to stop weak trials early (ASHA, with folds as its rungs)."""
    resources: Resources = Resources()
    """What each trial reserves on the cluster."""
    tracking: Tracking = Tracking()
    """Experiment trackers (mlflow, wandb, tensorboard) every trial is logged to; --track adds one."""

    @property
    def objectives(self) -> list[Objective]:
        return self.objective

    @model_validator(mode="before")
    @classmethod
    def _objective_split(cls, raw):
        """Resolve `objective.on` (val for a study with a space, test for one configuration)
        and hold out the validation parts a `val` objective reads (eval.holdout)."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        objectives = raw.get("objective", [{}])
        objectives = [objectives] if isinstance(objectives, (dict, Objective)) else objectives
        if not isinstance(objectives, list) or not objectives:
            return raw  # the field's own validation says what is wrong
        search = raw.get("search") or {}
        searched = bool(search.space if isinstance(search, SearchSpec) else (search.get("space") if isinstance(search, dict) else None))
        plain = [o.model_dump() if isinstance(o, Objective) else Objective._yaml_on(dict(o)) if isinstance(o, dict) else o for o in objectives]
        for o in plain:
            if isinstance(o, dict):
                o.setdefault("on", "val" if searched else "test")
        raw["objective"] = plain
        splits = {o.get("on") for o in plain if isinstance(o, dict)}
        if len(splits) > 1:
            raise ValueError(f"objective: every objective reads the same split, got on: {sorted(splits)}")
        if splits == {"val"}:
            evaluation = raw.get("eval") or {}
            evaluation = evaluation.model_dump() if isinstance(evaluation, BaseModel) else dict(evaluation)
            if evaluation.get("holdout") is False:
                raise ValueError("eval.holdout: false, but objective.on: val reads the validation parts it holds out; drop one")
            raw["eval"] = {**evaluation, "holdout": True}
        return raw

    @property
    def base(self) -> TrialConfig:
        """The trial config every trial starts from (the study's own sections)."""
        return TrialConfig.model_construct(**{k: getattr(self, k) for k in TrialConfig.model_fields})

    def trial_config(self, params: dict[str, Any], context: dict | None = None) -> TrialConfig:
        """The base config with a trial's params set at their dotted paths. `context=TRUSTED`
        where the study was checked already (every registered name a param can take: a trial
        in a worker), which spares the registries' torch import."""
        raw = self.base.model_dump(mode="json")
        for path, value in params.items():
            set_path(raw, path, value)
        return TrialConfig.model_validate(published_refill(raw, list(params)), context=context)

    @field_validator("objective", mode="before")
    @classmethod
    def _objectives(cls, v):
        v = [v] if isinstance(v, dict) else v
        if isinstance(v, list) and not v:
            raise ValueError("give at least one objective")
        return v


# --- checks that need the whole spec ----------------------------------------------------------


def _field_exists(path: str) -> bool:
    parent, _, key = path.rpartition(".")
    # keys under data.options are the loader's own: any name passes here, the loader checks
    return field_at(path) is not None or (parent == "data.options" and bool(key))


def _check_value(spec: StudySpec, path: str, value: Any, where: str, context: dict | None = None) -> None:
    raw = spec.base.model_dump(mode="json")
    set_path(raw, path, value)
    try:
        TrialConfig.model_validate(published_refill(raw, [path]), context=context)
    except ValidationError as e:
        raise InputError(f"{where}: {value!r} is not a valid {path} ({format_validation_error(e)})") from None


def check_spec(spec: StudySpec, source: str, context: dict | None = None) -> None:
    s = spec.search
    split = [p for p in SPLIT_PATHS if p in s.space]
    if split:
        raise InputError(f"{source}: search.space.{split[0]}: a study runs one dataset split (every trial the same folds, which its progress, ASHA, "
                         "the models it keeps and resume count on); write one study per dataset or protocol")
    for path, dim in s.space.items():
        where = f"{source}: search.space.{path}"
        if not _field_exists(path):
            raise InputError(f"{where}: no such path in the trial config (sections: data, model, loss, train, eval)")
        for value in dim.values_to_check:
            _check_value(spec, path, value, where, context)
        for condition in dim.when or {}:
            if not _field_exists(condition):
                raise InputError(f"{where}.when: condition on {condition!r}, which is no path in the trial config")
            if condition in s.space and list(s.space).index(condition) > list(s.space).index(path):
                raise InputError(f"{where}.when: {condition} must come before {path} in the space")
    if s.sampler == "grid":
        continuous = [p for p, d in s.space.items() if d.grid() is None]
        if not s.space or continuous:
            raise InputError(f"{source}: search.sampler grid needs a space of choices or stepped ranges; continuous: {continuous or 'the space is empty'}")
        if any(d.when for d in s.space.values()):
            raise InputError(f"{source}: search.sampler grid cannot take conditional dimensions (when)")
    if not s.space and s.num_trials > 1:
        raise InputError(f"{source}: search.num_trials: {s.num_trials} trials, but search.space is empty: every trial would train the same configuration; give a space, or num_trials: 1")
    if s.sampler == "cmaes" and any(d.kind == "choice" for d in s.space.values()):
        raise InputError(f"{source}: search.sampler cmaes handles no choice dimensions; use tpe")
    _check_no_test_choice(spec, source)
    if len(spec.objectives) > 1 and s.sampler not in ("nsga2", "random", "tpe", "grid"):
        raise InputError(f"{source}: {len(spec.objectives)} objectives need sampler nsga2, tpe, random or grid, got {s.sampler}")
    for i, point in enumerate(s.baseline):
        for path, value in point.items():
            where = f"{source}: search.baseline[{i}].{path}"
            if path not in s.space:
                raise InputError(f"{where}: not a searched path (space: {', '.join(s.space) or 'empty'})")
            _check_value(spec, path, value, where, context)
            why = s.space[path].outside(value)
            if why:
                raise InputError(f"{where}: {value!r} is {why}")


SPLIT_PATHS = ("data.dataset", "data.protocol", "data.folds")
"""Paths that would give trials of one study different folds: not searchable."""


def _check_no_test_choice(spec: StudySpec, source: str) -> None:
    """A study whose objective reads the validation parts must not let the test folds choose
    anything: with eval.select test_oracle each fold reports the epoch of its best test PC, so
    the val metric Optuna and ASHA read belongs to an epoch the test fold picked."""
    if spec.objectives[0].on != "val":
        return
    if spec.eval.select == "test_oracle":
        why = "eval.select: test_oracle (published_code: true sets it where eval.select is not given)" if spec.published_code else "eval.select: test_oracle"
        raise InputError(f"{source}: {why} picks each fold's epoch on its test PC, but objective.on: val chooses between trials without the test folds; "
                         "set eval.select: last or inner_val (or objective.on: test, and every figure is marked as chosen on test)")
    arm = spec.search.space.get("published_code")
    if arm is not None and True in (arm.choice or []) and spec.eval.select == "last" and not spec.published_code:
        raise InputError(f"{source}: search.space.published_code: its arm true sets eval.select: test_oracle, which picks each fold's epoch on its test PC, but "
                         "objective.on: val chooses between trials without the test folds; set eval.select: inner_val (the published arm then keeps it), "
                         "or objective.on: test (a grid of arms chooses nothing)")
    dim = spec.search.space.get("eval.select")
    if dim is not None and "test_oracle" in (dim.choice or []):
        raise InputError(f"{source}: search.space.eval.select: the choice test_oracle picks epochs on the test folds, but objective.on: val chooses between trials without them; "
                         "search last and inner_val only")


def validate_spec(raw: dict, source: str, context: dict | None = None) -> StudySpec:
    """The study, checked; errors name `source`, the YAML key and the value. `context=TRUSTED`
    for a study.yaml this program wrote (no registry import, so no torch)."""
    try:
        spec = StudySpec.model_validate(raw, context=context)
    except ValidationError as e:
        raise InputError(f"{source}: {format_validation_error(e)}") from None
    check_spec(spec, source, context)
    return spec


def load_spec(path: str | Path, overrides: list[str] = ()) -> StudySpec:
    raw = apply_overrides(read_yaml(path), list(overrides))
    return validate_spec(raw, str(path))


def with_absolute_paths(spec: StudySpec, base: Path) -> StudySpec:
    """Every path of the study absolute against `base`, the directory the command ran from:
    the base config's path fields, and searched or baseline values of path fields (a choice
    of weights files). Trials run in other working directories and on other nodes."""
    spec = resolve_paths(spec, base)
    paths = [p for p in spec.search.space if is_path_field(field_at(p))]
    if not paths:
        return spec

    def fix(value):
        return absolute_path(value, base) if isinstance(value, str) else value

    space = {p: d.model_copy(update={"choice": [fix(v) for v in d.choice]}) if p in paths and d.choice else d for p, d in spec.search.space.items()}
    baseline = [{p: fix(v) if p in paths else v for p, v in point.items()} for point in spec.search.baseline]
    return spec.model_copy(update={"search": spec.search.model_copy(update={"space": space, "baseline": baseline})})


STUDY_ONLY = tuple(k for k in StudySpec.model_fields if k not in TrialConfig.model_fields)
"""The keys a study file adds to a trial config: name, description, search, objective, ..."""


def load_base(path: str | Path, overrides: list[str] = ()) -> tuple[TrialConfig, str | None]:
    """The one configuration a file describes, and the study's name if it is a study file.

    A plain TrialConfig file is that config. A file with any study key is validated as a
    study (the whole schema, so a typo anywhere still names its key) and gives its base
    config; its search, objective, scheduler and resources are not used. The search space
    itself is not checked: nothing is searched.
    """
    raw = apply_overrides(read_yaml(path), list(overrides))
    if not raw.keys() & set(STUDY_ONLY):
        return validate_config(raw, str(path)), None
    try:
        spec = StudySpec.model_validate(raw)
        return spec.base, spec.name
    except ValidationError as e:  # the base's own cross-section checks run when it is built
        raise InputError(f"{path}: {format_validation_error(e)}") from None


def resolved(spec: StudySpec) -> dict:
    """The study with every default filled in, as plain data (what study.yaml stores): its name
    and description first, then the trial config's sections, then the search."""
    plain = spec.model_dump(mode="json", by_alias=True, exclude_none=False)
    plain.pop("tracking")  # where a study is logged is not what it computes (RESULTS/tracking/tracking.yaml keeps it)
    first = {k: plain.pop(k) for k in ("name", "description")}
    return copy.deepcopy({**first, **plain})
