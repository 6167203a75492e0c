"""A timm backbone with two heads: regression (1 output) and classification (K outputs).

Where the backbone's weights come from (`model.pretrained`):
- false: random initialisation.
- true: timm's pretrained weights, from the local caches when they are there (Hugging Face's
  hub cache, torch.hub's checkpoint directory), else downloaded by timm from the hub.
- a path: a weights file (safetensors, or a torch state dict read with weights_only) of an
  FBPNet or of the bare backbone, as `fbp-search weights` writes it. The way onto offline nodes.

`check_model` finds, once and before anything trains, what would make every trial fail: weights
that cannot be had here, a file that does not fit, a backbone that cannot take the image size.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from fbp.config import ModelConfig
from fbp.errors import InputError
from fbp.files import atomic_path

PROBE_SECONDS = 3.0
"""The longest the hub (or a weights URL) is waited for when asked whether weights are there."""

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # huggingface_hub's own switches


class FBPNet(nn.Module):
    """A timm backbone, pooled, with a regression head (1 output) and a classification head (K).

    `mean` and `std` are the input normalization of the backbone's pretrained config in timm
    (`timm.data.resolve_model_data_config`): what its weights were trained on, which
    `fbp.augment` applies to every view. Plain attributes, not in the state dict."""

    def __init__(self, backbone: nn.Module, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.backbone = backbone  # timm model with num_classes=0: (B, 3, H, W) -> (B, D) pooled
        features = backbone.num_features
        self.dropout = nn.Dropout(drop_rate)
        self.regression = nn.Linear(features, 1)
        self.classifier = nn.Linear(features, num_classes)
        data = timm.data.resolve_model_data_config(backbone)
        self.mean: tuple[float, ...] = tuple(float(v) for v in data["mean"])
        self.std: tuple[float, ...] = tuple(float(v) for v in data["std"])

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.backbone(x)  # (B, D), in bf16 under mixed precision
        # the heads in float32 whatever the precision: in bf16 a score is rounded to steps of
        # 1/64 on [2, 4) and 1/32 on [4, 8), as large as the differences between the paper's rows
        with torch.autocast(h.device.type, enabled=False):
            h = self.dropout(h.float())
            return self.regression(h).squeeze(1), self.classifier(h)  # (B,), (B, K)


def _first_line(e: BaseException) -> str:
    """`Type: first line of the message`: torch and timm errors run to paragraphs; the first line says why."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


# --- timm's pretrained weights: on disk, downloadable, or neither -----------------------------


class WeightsUnavailable(InputError):
    """timm's weights for a backbone are neither on disk nor downloadable from here. The message
    is the reason without a config key; `exist` is False when timm has no weights for it at all."""

    def __init__(self, message: str, exist: bool):
        super().__init__(message)
        self.exist = exist


def offline() -> str | None:
    """The variable that says the network must not be tried (HF_HUB_OFFLINE=1 or
    TRANSFORMERS_OFFLINE=1, read now and as huggingface_hub read it at import), else None."""
    import huggingface_hub.constants as hf

    for name in _OFFLINE_VARIABLES:
        if os.environ.get(name, "").upper() in hf.ENV_VARS_TRUE_VALUES:
            return name
    return _OFFLINE_VARIABLES[0] if hf.HF_HUB_OFFLINE else None


def _hf_cache_dir() -> str:
    """The hub cache as huggingface_hub resolves it, from the environment as it is now."""
    import huggingface_hub.constants as hf

    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return hf.HF_HUB_CACHE


def _hf_filenames(cfg) -> list[str]:
    """The files timm asks the hub for, in its order: safetensors first, then the pickle."""
    name = cfg.hf_hub_filename or "pytorch_model.bin"
    if name == "pytorch_model.bin":
        return ["model.safetensors", "pytorch_model.safetensors", name]
    return [name[: -len(".bin")] + ".safetensors", name] if name.endswith(".bin") else [name]


def _url_filename(url: str) -> str:
    return os.path.basename(urllib.parse.urlparse(url).path)


def _cached_timm_weights(cfg) -> str | None:
    """The file of timm's pretrained weights if it is already on disk, else None; no network."""
    if cfg.file and Path(cfg.file).is_file():
        return cfg.file
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in _hf_filenames(cfg):
            found = try_to_load_from_cache(repo, filename, cache_dir=_hf_cache_dir(), revision=revision or None)
            if isinstance(found, str):  # not None, nor the marker of a file known to be absent
                return found
    if cfg.url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / _url_filename(cfg.url)
        if cached.is_file():
            return str(cached)
    return None


def _within(seconds: float, ask: Callable[[], str | None], where: str) -> str | None:
    """`ask()` in a daemon thread, waited for at most `seconds`: a socket timeout does not bound
    a DNS lookup, which on a cluster with a dead resolver can hang for much longer."""
    answer: list[str | None] = [f"{where} did not answer within {seconds:g} s"]

    def run() -> None:
        try:
            answer[0] = ask()
        except Exception as e:  # whatever the network layer raises: no answer
            answer[0] = f"{where} cannot be reached ({_first_line(e)})"

    thread = threading.Thread(target=run, daemon=True, name="fbp-weights-probe")
    thread.start()
    thread.join(seconds)
    return answer[0]


def _ask(cfg, timeout: float) -> str | None:
    """None when the hub (or the weights' URL) says the file is there; else why it cannot be
    had. Metadata only (HEAD requests): nothing is downloaded."""
    if cfg.hf_hub_id:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in _hf_filenames(cfg):
            try:
                get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision or None), timeout=timeout)
                return None
            except EntryNotFoundError:
                continue
            except RepositoryNotFoundError as e:  # gated repositories included
                return f"the hub refuses {repo} ({_first_line(e)})"
        return f"the hub has no weights file in {repo}"
    try:
        with urllib.request.urlopen(urllib.request.Request(cfg.url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError as e:
        return f"{cfg.url} answers HTTP {e.code}"


def timm_weights(backbone: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Where timm's pretrained weights for `backbone` come from: the file on disk (returned), or
    None when they are not on disk but the hub answers that it has them (timm downloads them).

    Raises `WeightsUnavailable` when neither: timm has no weights for it, or they are not on
    disk and the hub is not tried (offline) or does not answer within `timeout` seconds."""
    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None or not (cfg.file or cfg.hf_hub_id or cfg.url):
        raise WeightsUnavailable(f"timm has no pretrained weights for {backbone!r}", exist=False)
    found = _cached_timm_weights(cfg)
    if found:
        return found
    where = "the hub" if cfg.hf_hub_id else urllib.parse.urlparse(cfg.url).netloc if cfg.url else ""
    if not where:
        why = f"its file {cfg.file} does not exist"
    elif switch := offline():
        why = f"{where} is not tried ({switch}=1: offline)"
    else:
        why = _within(timeout, lambda: _ask(cfg, timeout), where)
        if why is None:
            return None
    raise WeightsUnavailable(f"timm's weights for {backbone!r} are not in the local cache and {why}", exist=True)


def pretrained_backbone(backbone: str, timeout: float = PROBE_SECONDS, image_size: int | None = None) -> nn.Module:
    """timm's `backbone` with num_classes=0 and its pretrained weights: from the local cache,
    else downloaded. Raises `WeightsUnavailable` when neither can be (see `timm_weights`)."""
    found = timm_weights(backbone, timeout)
    overlay = {"file": found} if found else None  # load exactly the cached file, with no network
    return create_backbone(backbone, image_size, pretrained=True, pretrained_cfg_overlay=overlay)


def create_backbone(backbone: str, image_size: int | None = None, **kwargs) -> nn.Module:
    """timm's `backbone` without its classifier (num_classes=0). A model built for one input
    size (a ViT: its patch grid and position embeddings) is built for `image_size`, timm
    resampling pretrained position embeddings to it; a convolutional one takes any size and no
    img_size argument."""
    if image_size is not None:
        try:
            return timm.create_model(backbone, num_classes=0, img_size=image_size, **kwargs)
        except TypeError as e:
            if "img_size" not in str(e):
                raise
    return timm.create_model(backbone, num_classes=0, **kwargs)


def _pretrained_true_error(backbone: str, e: WeightsUnavailable) -> InputError:
    if not e.exist:
        return InputError(f"model.pretrained: true, but {e}; set model.pretrained: false, or a path to a weights file")
    return InputError(
        f"model.pretrained: true, but {e}; put them on disk once, on a machine with internet: "
        f"fbp-search weights {backbone} --out weights/{backbone}.safetensors, then set model.pretrained "
        "to that file (or fill HF_HOME there and share it: README, Pretrained weights offline)"
    )


# --- weights files --------------------------------------------------------------------------


def read_weights(path: Path) -> dict[str, Tensor]:
    """A state dict from a safetensors file or a torch file (weights_only: a pickle that would
    run code is refused). A checkpoint's `state_dict` or `model` entry is taken when present."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise InputError(f"model.pretrained: {path} {what}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch and safetensors raise several types for a bad file
        raise InputError(f"model.pretrained: cannot read {path} as a state dict ({_first_line(e)})") from None
    if isinstance(state, dict):
        state = state.get("state_dict", state.get("model", state))
    if not isinstance(state, dict) or not any(isinstance(v, Tensor) for v in state.values()):
        raise InputError(f"model.pretrained: {path} holds no state dict (a {type(state).__name__} of no tensors)")
    return state


def _load_weights(model: FBPNet, state: dict[str, Tensor], path: Path, backbone: str) -> None:
    """Load a state dict of an FBPNet (keys `backbone.…`, heads included) or of the bare backbone
    (whatever it has beyond the backbone, e.g. its ImageNet classifier, is dropped)."""
    whole = any(k.startswith("backbone.") for k in state)
    target = model if whole else model.backbone
    own = target.state_dict()
    if not whole:
        state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing:
        problem = f"{len(missing)} of {len(own)} weights missing, e.g. {missing[0]}"
    elif extra:
        problem = f"{len(extra)} weights the model does not have, e.g. {extra[0]}"
    elif wrong:
        k = wrong[0]
        problem = f"{len(wrong)} weights of another shape, e.g. {k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
    else:
        target.load_state_dict(state)
        return
    raise InputError(f"model.pretrained: {path} does not fit model.backbone {backbone!r}: {problem}")


def save_weights(module: nn.Module | dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> int:
    """Write `module`'s state dict (or a state dict) as safetensors, atomically (a temporary
    name in the same directory, then a rename): a reader on another node never sees half a
    file. Returns bytes."""
    from safetensors.torch import save_file

    state = module.state_dict() if isinstance(module, nn.Module) else module
    # own contiguous copies: safetensors refuses tensors that share storage or are strided views
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path.stat().st_size


# --- the model ------------------------------------------------------------------------------


def _new_model(config: ModelConfig, num_classes: int, pretrained: bool = False, image_size: int | None = None) -> FBPNet:
    if pretrained:
        try:
            backbone = pretrained_backbone(config.backbone, image_size=image_size)
        except WeightsUnavailable as e:
            raise _pretrained_true_error(config.backbone, e) from None
    else:
        backbone = create_backbone(config.backbone, image_size, pretrained=False)
    return FBPNet(backbone, num_classes, config.drop_rate)


def build_model(config: ModelConfig, num_classes: int, image_size: int | None = None) -> FBPNet:
    """`config.pretrained`: false; true (timm's weights: the local cache, else downloaded; an
    InputError when neither can be); or a path to a weights file of an FBPNet or a bare backbone.
    `image_size`: the input's side, for a backbone built for one size (create_backbone)."""
    pretrained = config.pretrained
    if isinstance(pretrained, bool):
        return _new_model(config, num_classes, pretrained, image_size)
    path = Path(pretrained)
    state = read_weights(path)
    model = _new_model(config, num_classes, image_size=image_size)
    _load_weights(model, state, path, config.backbone)
    return model


def weights_bytes(backbone: str, num_classes: int = 10) -> int:
    """Bytes of an FBPNet's weights as saved (fp32 parameters and buffers), counted on the meta
    device: no memory, no weights, ~0.1 s for seresnext50_32x4d. A fold model file is this plus
    a small header; what a study keeps on disk is sized from it (search.preflight)."""
    with torch.device("meta"):
        model = FBPNet(timm.create_model(backbone, pretrained=False, num_classes=0), num_classes)
    return sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())


def check_backbone_name(name: str) -> None:
    """An unknown timm name, with the names that look like it (the caller names the key)."""
    if not timm.is_model(name):
        close = similar_names(name, timm.list_models())
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise InputError(f"unknown timm backbone {name!r}{hint}")


def name_parts(name: str) -> set[str]:
    """`seresnext50_32x4d` -> {seresnext, 50, 32, x, 4, d}: runs of letters and of digits, so
    a family (resnet) and a size (50) are parts of their own, whatever separates them."""
    return set(re.findall(r"[a-z]+|[0-9]+", name.lower()))


def similar_names(name: str, known: Iterable[str], count: int = 8) -> list[str]:
    """The `count` known names nearest to `name`: the most parts shared first, then the fewest
    parts of their own (resnet50 before resnet50_gn), then difflib's ratio of the whole names.
    A character-run match alone ranked cspresnet50 first for resnet_does_not_exist; parts put the
    resnets first. With no part shared, difflib's close matches."""
    arch = name.split(".")[0].lower()  # a pretrained tag (.a1_in1k) names weights, not the model
    parts = name_parts(arch)
    scored = []
    for other in known:
        theirs = name_parts(other)
        shared = len(parts & theirs)
        if shared:
            scored.append((-shared, len(theirs - parts), -difflib.SequenceMatcher(None, arch, other).ratio(), other))
    if not scored:
        return difflib.get_close_matches(arch, list(known), n=count, cutoff=0.5)
    return [other for *_, other in sorted(scored)[:count]]


_FITTED: set[tuple[str, int]] = set()
"""(a model config without its weights, an image size) that check_model saw run a forward pass."""


def check_model(config: ModelConfig, image_sizes: Iterable[int], timeout: float = PROBE_SECONDS) -> None:
    """Raise InputError (one line, naming the key and value) for what would fail every trial:

    - a backbone name timm does not know;
    - `pretrained: true` and timm's weights neither on disk nor downloadable (the hub is asked
      for metadata only, at most `timeout` seconds; not at all when offline);
    - `pretrained: <path>` that does not exist, cannot be read, or does not fit the backbone;
    - an image size the backbone cannot take: one forward pass of a (1, 3, S, S) batch, on the
      CPU in eval mode (seresnext50_32x4d at 224 px: about 0.35 s with the build, 2 CPU cores).
    """
    try:
        check_backbone_name(config.backbone)
    except InputError as e:
        raise InputError(f"model.backbone: {e}") from None
    pretrained = config.pretrained
    if pretrained is True:
        try:
            timm_weights(config.backbone, timeout)
        except WeightsUnavailable as e:
            raise _pretrained_true_error(config.backbone, e) from None
    state, heads = None, 2  # the heads' size does not matter, unless a weights file holds them
    if not isinstance(pretrained, bool):  # what build_model does; K from the file when it holds the heads, which must fit too
        path = Path(pretrained)
        state = read_weights(path)
        held = state.get("classifier.weight") if any(k.startswith("backbone.") for k in state) else None
        heads = held.shape[0] if isinstance(held, Tensor) and held.ndim == 2 else 2
    with torch.no_grad():
        for size in sorted(set(image_sizes)):  # a backbone built for one input size (a ViT) is built for each
            # timm's weights or random ones: one architecture, whose fit a size need be shown once
            # a process (a set of studies, or `validate` of each, shares a few backbones)
            fitted = (config.model_copy(update={"pretrained": False}).model_dump_json(), size) if state is None else None
            if fitted in _FITTED:
                continue
            model = _new_model(config, num_classes=heads, image_size=size)
            if state is not None:
                _load_weights(model, state, path, config.backbone)
            model.eval()
            try:
                model(torch.zeros(1, 3, size, size))
            except Exception as e:  # whatever the backbone raises for a size it cannot take
                raise InputError(f"data.image_size: {size} does not fit model.backbone {config.backbone!r} ({_first_line(e)})") from None
            if fitted is not None:
                _FITTED.add(fitted)
