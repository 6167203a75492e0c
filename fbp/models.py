"""A timm backbone with two heads: regression (1 output) and classification (K outputs)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from fbp.config import ModelConfig
from fbp.errors import InputError


class FBPNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.backbone = backbone  # timm model with num_classes=0: (B, 3, H, W) -> (B, D) pooled
        features = backbone.num_features
        self.dropout = nn.Dropout(drop_rate)
        self.regression = nn.Linear(features, 1)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.dropout(self.backbone(x))  # (B, D)
        return self.regression(h).squeeze(1), self.classifier(h)  # (B,), (B, K)


def _cached_timm_weights(name: str) -> str | None:
    """The file of timm's pretrained weights for `name` if it is already on disk, else None.

    Looks in the Hugging Face cache that timm downloads into, without touching the network."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.file and Path(cfg.file).is_file():
        return cfg.file
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return found
    return None


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state


def build_model(config: ModelConfig, num_classes: int) -> FBPNet:
    """`config.pretrained`: False; True (timm's weights, which must already be on disk: nothing
    is downloaded); or a path to a state dict of an FBPNet or of the bare backbone."""
    pretrained = config.pretrained
    if pretrained is True:
        weights = _cached_timm_weights(config.backbone)
        if weights is None:
            raise InputError(
                f"model.pretrained: true, but timm's weights for {config.backbone!r} are not on disk "
                "(nothing is downloaded here); put them in the Hugging Face cache, give a path to a "
                "state dict, or set model.pretrained: false"
            )
        backbone = timm.create_model(config.backbone, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": weights})
        return FBPNet(backbone, num_classes, config.drop_rate)

    model = FBPNet(timm.create_model(config.backbone, pretrained=False, num_classes=0), num_classes, config.drop_rate)
    if pretrained is False:
        return model
    path = Path(pretrained)
    if not path.is_file():
        raise InputError(f"model.pretrained: state dict not found: {path}")
    try:
        state = _read_state_dict(path)
    except Exception as e:  # torch and safetensors raise several types for a bad file
        # weights_only refuses a pickle that holds code; its message is a paragraph, the first line says why
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise InputError(f"model.pretrained: cannot read {path} as a state dict ({type(e).__name__}: {first})") from None
    if any(k.startswith("backbone.") for k in state):
        target, keys = model, model.state_dict().keys()
    else:  # a bare backbone: drop its own classifier
        target, keys = model.backbone, model.backbone.state_dict().keys()
        state = {k: v for k, v in state.items() if k in keys}
    missing = [k for k in keys if k not in state]
    if len(missing) == len(keys) or (target is model.backbone and missing):
        raise InputError(f"model.pretrained: {path} does not fit {config.backbone!r}: {len(missing)} of {len(keys)} weights missing, e.g. {missing[0]}")
    target.load_state_dict(state, strict=target is model)
    return model
