import pytest
import timm
import torch

from fbp.config import ModelConfig
from fbp.errors import InputError
from fbp.models import build_model


def test_two_heads_on_a_timm_backbone():
    model = build_model(ModelConfig(backbone="test_resnet"), num_classes=5).eval()
    reg, logits = model(torch.randn(3, 3, 32, 32))
    assert reg.shape == (3,) and logits.shape == (3, 5)


def test_pretrained_true_without_weights_on_disk_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InputError, match="model.pretrained: true, but timm's weights for 'resnet18' are not on disk"):
        build_model(ModelConfig(backbone="resnet18", pretrained=True), 5)


def test_pretrained_from_a_state_dict_file(tmp_path):
    torch.manual_seed(0)
    source = build_model(ModelConfig(backbone="test_resnet"), 5).eval()
    torch.save(source.state_dict(), tmp_path / "fbp.pt")
    loaded = build_model(ModelConfig(backbone="test_resnet", pretrained=str(tmp_path / "fbp.pt")), 5).eval()
    x = torch.randn(2, 3, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(source(x), loaded(x)))

    bare = timm.create_model("test_resnet", num_classes=10)  # an ImageNet-style checkpoint
    torch.save(bare.state_dict(), tmp_path / "bare.pth")
    model = build_model(ModelConfig(backbone="test_resnet", pretrained=str(tmp_path / "bare.pth")), 5)
    assert torch.equal(model.backbone.conv1[0].weight, bare.conv1[0].weight)


def test_pretrained_file_that_does_not_fit(tmp_path):
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(InputError, match=r"model.pretrained: .*x.pt does not fit 'test_resnet'"):
        build_model(ModelConfig(backbone="test_resnet", pretrained=str(tmp_path / "x.pt")), 5)
    with pytest.raises(InputError, match="model.pretrained: state dict not found"):
        build_model(ModelConfig(backbone="test_resnet", pretrained=str(tmp_path / "none.pt")), 5)
