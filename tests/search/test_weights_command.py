import time

import pytest
import timm
import torch
from safetensors import safe_open

from fbp.config import ModelConfig
from fbp.models import build_model
from search.cli import main


def test_weights_offline_ends_with_one_line_and_writes_nothing(offline_hub, tmp_path, capsys):
    out = tmp_path / "weights" / "test_resnet.safetensors"
    start = time.perf_counter()
    assert main(["weights", "test_resnet", "--out", str(out)]) == 2
    assert time.perf_counter() - start < 2.0  # the hub is not tried
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: weights test_resnet: timm's weights for 'test_resnet' are not in the local cache")
    assert "HF_HUB_OFFLINE=1" in err and "\n" not in err and "Traceback" not in err
    assert not out.parent.exists()


def test_weights_from_the_hub_cache_writes_the_bare_backbone(offline_hub, tmp_path, capsys):
    torch.manual_seed(2)
    imagenet = timm.create_model("test_resnet")  # as timm publishes it: with its 1000-class fc
    offline_hub.put(timm.models.get_pretrained_cfg("test_resnet").hf_hub_id, "model.safetensors", imagenet.state_dict())
    out = tmp_path / "weights" / "test_resnet.safetensors"

    assert main(["weights", "test_resnet", "--out", str(out)]) == 0
    assert f"model.pretrained: {out.resolve()}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # written under a temporary name, then renamed
    with safe_open(str(out), "pt") as f:
        assert f.metadata() == {"backbone": "test_resnet", "source": "timm"}
        assert not any(k.startswith("fc.") for k in f.keys())  # the bare backbone

    model = build_model(ModelConfig(backbone="test_resnet", pretrained=str(out)), 5)
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, imagenet.state_dict()[name]), name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["weights", "test_resnet", "--out", "{tmp}/w.pt"], "error: --out {tmp}/w.pt: must end in .safetensors"),
        (["weights", "test_resnet", "--out", "{tmp}/taken.safetensors"], "error: --out {tmp}/taken.safetensors exists; remove it or choose another file"),
        (["weights", "seresnext", "--out", "{tmp}/w.safetensors"], "error: weights: unknown timm backbone 'seresnext'; similar: "),
        (["weights", "botnet50ts_256", "--out", "{tmp}/w.safetensors"], "error: weights botnet50ts_256: timm has no pretrained weights for 'botnet50ts_256'"),
    ],
)
def test_weights_bad_input(offline_hub, tmp_path, capsys, argv, message):
    (tmp_path / "taken.safetensors").write_bytes(b"keep")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message.format(tmp=tmp_path)) and "\n" not in err
    assert (tmp_path / "taken.safetensors").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["taken.safetensors"]  # nothing written
