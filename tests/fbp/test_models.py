import pickle
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from fbp.config import ModelConfig
from fbp.errors import InputError
from fbp.models import build_model, check_model, save_weights


class Payload:
    """Unpickling this would create the file its path names."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_heads_on_a_timm_backbone():
    model = build_model(ModelConfig(backbone="test_resnet", pretrained=False), num_classes=5).eval()
    reg, logits = model(torch.randn(3, 3, 32, 32))
    assert reg.shape == (3,) and logits.shape == (3, 5)


@pytest.mark.parametrize("backbone", ["test_vit", "test_vit2", "test_resnet", "test_convnext"])
def test_a_vit_is_built_for_the_input_size_and_a_cnn_for_any(backbone):
    """timm's test ViTs are made for 160 px; the rehearsal feeds 48 and a study may feed any
    data.image_size: the ViT gets a patch grid for that size, a CNN takes no size argument."""
    model = build_model(ModelConfig(backbone=backbone, pretrained=False), 5, 48).eval()
    reg, logits = model(torch.zeros(2, 3, 48, 48))
    assert reg.shape == (2,) and logits.shape == (2, 5)


def test_pretrained_is_on_by_default_as_in_the_paper():
    # paper 3.2: "The network is initialized with ImageNet pretrained weights"
    assert ModelConfig().pretrained is True


@pytest.mark.parametrize("backbone, mean, std", [
    ("test_resnet", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # timm's config of the tiny test model
    ("test_efficientnet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's
])
def test_inputs_are_normalized_as_the_backbones_own_pretrained_config_says(backbone, mean, std):
    cfg = timm.models.get_pretrained_cfg(backbone)
    assert (cfg.mean, cfg.std) == (mean, std)  # two backbones whose statistics differ
    model = build_model(ModelConfig(backbone=backbone, pretrained=False), 5)
    assert (model.mean, model.std) == (mean, std)
    assert f"mean={mean}, std={std}" in repr(model)  # printed with the model
    assert not any("mean" in k or "std" in k for k in model.state_dict() if not k.startswith("backbone."))  # not in the weights


def test_a_tagged_backbone_takes_its_tags_statistics():
    # the same architecture, CLIP's pretrained weights: CLIP's mean and std, not ImageNet's
    clip = timm.models.get_pretrained_cfg("vit_base_patch16_clip_224.openai")
    backbone = timm.create_model("vit_base_patch16_clip_224.openai", pretrained=False, num_classes=0, depth=1)  # one block: cheap
    from fbp.models import FBPNet

    model = FBPNet(backbone, 5)
    assert (model.mean, model.std) == (clip.mean, clip.std) and model.mean != (0.485, 0.456, 0.406)


# --- pretrained: true -----------------------------------------------------------------------


def test_pretrained_true_offline_without_the_weights_is_one_clear_line(offline_hub):
    config = ModelConfig(backbone="test_resnet", pretrained=True)
    for check in (lambda: build_model(config, 5), lambda: check_model(config, [32])):
        start = time.perf_counter()
        with pytest.raises(InputError) as caught:
            check()
        assert time.perf_counter() - start < 1.0  # offline: the network is not even tried
        message = str(caught.value)
        assert message.startswith("model.pretrained: true, but timm's weights for 'test_resnet' are not in the local cache")
        assert "HF_HUB_OFFLINE=1" in message and "\n" not in message
        assert "fbp-search weights test_resnet --out weights/test_resnet.safetensors" in message
        assert "then set model.pretrained to that file (or fill HF_HOME" in message


def test_pretrained_true_for_a_backbone_timm_has_no_weights_for(offline_hub):
    with pytest.raises(InputError, match=r"^model.pretrained: true, but timm has no pretrained weights for 'botnet50ts_256'; set model.pretrained: false"):
        check_model(ModelConfig(backbone="botnet50ts_256", pretrained=True), [256])


def test_pretrained_true_loads_timm_weights_from_the_hub_cache_offline(offline_hub):
    torch.manual_seed(1)
    imagenet = timm.create_model("test_resnet")  # as timm publishes it: with its 1000-class fc
    repo = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    offline_hub.put(repo, "model.safetensors", imagenet.state_dict())
    config = ModelConfig(backbone="test_resnet", pretrained=True)

    check_model(config, [32, 64])
    model = build_model(config, 5)
    expected = {k: v for k, v in imagenet.state_dict().items() if not k.startswith("fc.")}
    assert _equal_states(model.backbone.state_dict(), expected)


# --- pretrained: a weights file -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_pretrained_from_a_weights_file_of_an_fbpnet_or_a_bare_backbone(tmp_path, suffix):
    def write(state: dict, path: Path) -> str:
        save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
        return str(path)

    torch.manual_seed(0)
    source = build_model(ModelConfig(backbone="test_resnet", pretrained=False), 5)
    fbpnet = write(source.state_dict(), tmp_path / f"fbpnet{suffix}")
    loaded = build_model(ModelConfig(backbone="test_resnet", pretrained=fbpnet), 5)
    assert _equal_states(loaded.state_dict(), source.state_dict())

    bare = timm.create_model("test_resnet", num_classes=10)  # an ImageNet-style checkpoint, its own classifier
    path = write(bare.state_dict(), tmp_path / f"bare{suffix}")
    config = ModelConfig(backbone="test_resnet", pretrained=path)
    check_model(config, [32])
    model = build_model(config, 5)
    expected = {k: v for k, v in bare.state_dict().items() if not k.startswith("fc.")}
    assert _equal_states(model.backbone.state_dict(), expected)


def test_save_weights_writes_what_model_pretrained_reads(tmp_path):
    backbone = timm.create_model("test_resnet", num_classes=0)
    out = tmp_path / "deep" / "test_resnet.safetensors"
    assert save_weights(backbone, out) == out.stat().st_size
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # the temporary name is gone
    assert _equal_states(load_file(str(out)), backbone.state_dict())
    model = build_model(ModelConfig(backbone="test_resnet", pretrained=str(out)), 5)
    assert _equal_states(model.backbone.state_dict(), backbone.state_dict())


def test_a_weights_file_whose_pickle_would_run_code_is_refused_by_the_preflight(tmp_path):
    marker = tmp_path / "ran"
    weights = tmp_path / "weights.pt"
    torch.save({"backbone.conv1.weight": Payload(marker)}, weights)
    with pytest.raises(InputError, match=rf"^model.pretrained: cannot read {weights} as a state dict \(UnpicklingError") as caught:
        check_model(ModelConfig(backbone="test_resnet", pretrained=str(weights)), [32])
    assert "\n" not in str(caught.value) and not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # what the message stands for
        torch.load(weights, weights_only=True)


def test_weights_files_that_do_not_fit_are_refused_naming_the_key(tmp_path):
    def refused(path: Path, num_classes: int = 5) -> str:
        config = ModelConfig(backbone="test_resnet", pretrained=str(path))
        with pytest.raises(InputError) as by_build:
            build_model(config, num_classes)
        message = str(by_build.value)
        assert message.startswith("model.pretrained: ") and "\n" not in message
        return message

    torch.save({"something.else": torch.zeros(1)}, tmp_path / "x.pt")
    assert f"{tmp_path / 'x.pt'} does not fit model.backbone 'test_resnet': " in refused(tmp_path / "x.pt")
    assert refused(tmp_path / "none.pt") == f"model.pretrained: {tmp_path / 'none.pt'} does not exist"
    assert refused(tmp_path) == f"model.pretrained: {tmp_path} is not a file"
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    assert refused(tmp_path / "junk.safetensors").startswith(f"model.pretrained: cannot read {tmp_path / 'junk.safetensors'} as a state dict (")

    # another backbone's weights: the preflight refuses them too, before anything trains
    save_file(timm.create_model("test_vit", num_classes=0).state_dict(), str(tmp_path / "vit.safetensors"))
    assert "does not fit model.backbone 'test_resnet': " in refused(tmp_path / "vit.safetensors")
    with pytest.raises(InputError, match=r"^model.pretrained: .*vit.safetensors does not fit model.backbone 'test_resnet'"):
        check_model(ModelConfig(backbone="test_resnet", pretrained=str(tmp_path / "vit.safetensors")), [32])

    # the same keys in other shapes: an FBPNet trained with 5 classes, loaded for 7
    save_file(build_model(ModelConfig(backbone="test_resnet", pretrained=False), 5).state_dict(), str(tmp_path / "k5.safetensors"))
    assert "weights of another shape, e.g. classifier.weight: (5, 96) in the file, (7, 96) in the model" in refused(tmp_path / "k5.safetensors", 7)


# --- image sizes ----------------------------------------------------------------------------


def test_an_image_size_the_backbone_cannot_take_is_found_before_training():
    # a ViT is built for the input size (fbp.models.create_backbone), but its patches must tile it
    with pytest.raises(InputError) as caught:
        check_model(ModelConfig(backbone="test_vit", pretrained=False), [32, 20])
    assert str(caught.value) == (
        "data.image_size: 20 does not fit model.backbone 'test_vit' (AssertionError: Input height (20) should be divisible by patch size (16).)"
    )
    check_model(ModelConfig(backbone="vit_tiny_patch16_224", pretrained=False), [224, 64])
    check_model(ModelConfig(backbone="test_resnet", pretrained=False), [16, 32, 64])


def test_a_size_that_fits_is_built_once_a_process_and_one_that_does_not_every_time(monkeypatch):
    """A set of studies, or validate of each, checks a few backbones many times: the forward
    pass that shows a size fits runs once for the architecture, whatever its weights."""
    import fbp.models

    built, build = [], fbp.models._new_model
    monkeypatch.setattr(fbp.models, "_FITTED", set())
    monkeypatch.setattr(fbp.models, "_new_model", lambda config, **kw: built.append(kw["image_size"]) or build(config, **kw))
    for _ in range(2):
        check_model(ModelConfig(backbone="test_vit", pretrained=False), [32, 48])
    assert built == [32, 48]
    for _ in range(2):
        with pytest.raises(InputError, match="data.image_size: 20 does not fit"):
            check_model(ModelConfig(backbone="test_vit", pretrained=False), [20])
    check_model(ModelConfig(backbone="test_vit", pretrained=False, drop_rate=0.5), [32])  # another model: checked
    assert built == [32, 48, 20, 20, 32]


def test_an_unknown_backbone_is_named_with_similar_ones():
    from fbp.errors import InputError
    from fbp.models import check_backbone_name

    with pytest.raises(InputError, match=r"^unknown timm backbone 'resnet_nope'; similar: .*resnet"):
        check_backbone_name("resnet_nope")
    check_backbone_name("test_resnet")  # known: no error


@pytest.mark.parametrize("name, first", [
    ("resnet_does_not_exist", ["resnet18", "resnet26", "resnet34", "resnet50"]),  # a family, no size: its plain sizes
    ("resnt50", ["resnet50"]),  # a typo in the family: the size and the spelling
    ("ResNet50", ["resnet50"]),
    ("seresnext50_32x4", ["seresnext50_32x4d"]),
    ("efficientnet_b9", ["efficientnet_b0", "efficientnet_b1"]),
])
def test_an_unknown_backbone_suggests_names_that_share_its_parts(name, first):
    """Against timm's own list: the nearest names by their parts. The old hint listed timm's
    names containing the first six letters, alphabetically: cspresnet50 first for resnet_*."""
    from fbp.errors import InputError
    from fbp.models import check_backbone_name

    with pytest.raises(InputError) as e:
        check_backbone_name(name)
    message = str(e.value)
    assert message.startswith(f"unknown timm backbone {name!r}; similar: ")
    suggested = message.split("; similar: ")[1].split(", ")
    assert suggested[: len(first)] == first and len(suggested) == 8
    assert all(timm.is_model(s) for s in suggested)


def test_name_parts_split_letters_from_digits():
    from fbp.models import name_parts

    assert name_parts("seresnext50_32x4d") == {"seresnext", "50", "32", "x", "4", "d"}
    assert name_parts("vit_base_patch16_224") == {"vit", "base", "patch", "16", "224"}
