import pytest
from pydantic import BaseModel

from fbp.config import TRUSTED, Knob, TrialConfig, apply_overrides, knobs, load_config, read_yaml, validate_config
from fbp.errors import InputError


def test_defaults_are_the_papers():
    c = TrialConfig()
    assert c.model.backbone == "seresnext50_32x4d"
    assert (c.train.optimizer, c.train.lr, c.train.momentum, c.train.weight_decay) == ("sgd", 0.01, 0.9, 1e-3)
    assert (c.train.batch_size, c.train.epochs) == (64, 200)
    assert (c.train.schedule.name, c.train.schedule.step_size, c.train.schedule.step_gamma) == ("step", 50, 0.1)
    assert c.data.image_size == 224
    assert (c.loss.name, c.loss.alpha, c.loss.beta, c.loss.gamma) == ("combo", 2.0, 1.0, 1.0)
    assert c.loss.discretization.rule == "paper"
    # eq. 3 (divide by N) on the logits, eq. 6 weights, per-sample |e| in SmoothHuber
    assert (c.loss.ce_input, c.loss.ce_weighted, c.loss.ce_reduction, c.loss.class_weights) == ("logits", True, "mean", None)
    assert (c.loss.huber_variant, c.loss.discretization.values, c.published_code) == ("paper", "mean", False)
    # "The network is initialized with ImageNet pretrained weights"
    assert c.model.pretrained is True
    # "resized and randomly cropped to 224x224 patches, color jittering and random rotation":
    # no flip (nor in the published code, whose rotation is RandomRotation(30))
    assert (c.train.augment.hflip, c.train.augment.rotation) == (False, 30.0)
    assert c.train.augment.brightness > 0 and c.train.augment.contrast > 0 and c.train.augment.saturation > 0
    # the paper is silent on evaluation; the published code feeds the whole face resized to 224
    assert c.eval.view == "resize"


@pytest.mark.parametrize("dataset, rule, edges", [
    ("scut-fbp5500", "paper", None),  # "in SCUT-FBP and SCUT-FBP5500 datasets ... ceil(s - 1/2)"
    ("scut-fbp", "paper", None),
    ("hotornot", "intervals", [-1.0, 1.0]),  # "in HotOrNot, the intervals are set to 3 as in [CRNet]"
    ("synthetic", "paper", None),  # rated 1..5 as SCUT-FBP5500
])
def test_the_default_discretization_is_the_datasets_own_and_recorded_resolved(dataset, rule, edges):
    from fbp.config import DiscretizationConfig

    assert DiscretizationConfig().rule == "auto"
    c = validate_config({"data": {"dataset": dataset}})
    assert (c.loss.discretization.rule, c.loss.discretization.edges) == (rule, edges)
    assert c.model_dump()["loss"]["discretization"]["rule"] == rule  # what study.yaml and validate show
    assert validate_config(c.model_dump(mode="json")) == c  # a resolved config reads back as itself
    # a rule given is kept, whatever the dataset
    assert validate_config({"data": {"dataset": dataset}, "loss": {"discretization": {"rule": "round_half_even"}}}).loss.discretization.rule == "round_half_even"


def test_hotornot_default_classes_of_the_reviews_z_scores_by_hand():
    from fbp.discretize import fit_discretization

    z = [-2.0, -0.5, 0.0, 0.7, 1.2, -1.0, 1.0]
    d = validate_config({"data": {"dataset": "hotornot"}}).loss.discretization
    hotornot = fit_discretization(d.rule, z, d.num_classes, d.edges, d.values)
    # s < -1 -> 0; -1 <= s < 1 -> 1; s >= 1 -> 2 (the published code's HotOrNotDataset)
    assert hotornot.classes(z).tolist() == [0, 1, 1, 1, 2, 1, 2]
    # what the paper's rule did with them: every z below 1.5 in class 0
    assert fit_discretization("paper", z).classes(z).tolist() == [0] * 7


def test_every_dataset_has_its_own_discretization_and_auto_takes_no_edges():
    from fbp.data import DATASETS, DISCRETIZATION
    from fbp.discretize import RULES

    assert set(DISCRETIZATION) == set(DATASETS) and all(d["rule"] in RULES for d in DISCRETIZATION.values())
    with pytest.raises(InputError, match=r"rule auto is hotornot's own \(intervals with edges \[-1.0, 1.0\]\), which takes no edges \[0, 1\]"):
        validate_config({"data": {"dataset": "hotornot"}, "loss": {"discretization": {"edges": [0, 1]}}})
    explicit = validate_config({"data": {"dataset": "hotornot"}, "loss": {"discretization": {"rule": "intervals", "edges": [0, 1]}}})
    assert explicit.loss.discretization.edges == [0.0, 1.0]


@pytest.mark.parametrize(
    "path",
    "data.dataset data.root data.protocol data.image_size model.backbone model.pretrained loss.name loss.alpha "
    "loss.beta loss.gamma loss.discretization.rule loss.discretization.num_classes train.epochs "
    "train.batch_size train.lr train.schedule.name train.seed eval.select eval.predict".split(),
)
def test_the_named_dotted_paths_exist(path):
    node = TrialConfig()
    for key in path.split("."):
        assert key in type(node).model_fields, path
        node = getattr(node, key)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["loss.alpha=-1"], "loss.alpha: Input should be greater than or equal to 0, got -1"),
        (["loss.alphaa=1"], "loss.alphaa: unknown key, got 1"),
        (["train.epochs=many"], "train.epochs: Input should be a valid integer, unable to parse string as an integer, got 'many'"),
        (["loss.name=huber"], "loss.name: unknown loss 'huber'; valid: combo, l1, mse, smooth_l1, smooth_huber"),
        (["data.dataset=celeba"], "data.dataset: unknown dataset 'celeba'"),
        (["loss.discretization.rule=bins"], "loss.discretization.rule: unknown discretization rule 'bins'"),
        (["train.schedule.name=poly"], "train.schedule.name: Input should be 'step', 'cosine', 'onecycle' or 'constant', got 'poly'"),
        (["loss.alpha=0", "loss.beta=0", "loss.gamma=0"], "loss: combo needs at least one of alpha, beta, gamma > 0"),
        (["loss.name=l1", "eval.predict=exp"], "eval.predict='exp' needs the classification head"),
        (["data.image_size=64", "data.resize=32"], "data: resize (32) must be >= image_size (64)"),
        (["loss.class_weights=[1, 2, 3]"], "loss.class_weights: 3 class weights, but discretization rule 'paper' makes 5 classes, got [1, 2, 3]"),
        (
            ["loss.discretization.rule=uniform", "loss.discretization.num_classes=4", "loss.class_weights=[1, 1, 1, 1, 1]"],
            "loss.class_weights: 5 class weights, but discretization rule 'uniform' makes 4 classes",
        ),
        (["loss.class_weights=[1, -1, 1, 1, 1]"], "loss.class_weights: class weights must be >= 0 with one > 0, got [1.0, -1.0, 1.0, 1.0, 1.0]"),
        (
            ["loss.discretization.rule=intervals", "loss.discretization.edges=[-1, 1]", "loss.discretization.values=[1, 2]"],
            "loss.discretization.values: 2 class values, but rule 'intervals' makes 3 classes, got [1, 2]",
        ),
        (["loss.ce_reduction=sum"], "loss.ce_reduction: Input should be 'mean' or 'weighted_mean', got 'sum'"),
        (["loss.huber_variant=pytorch"], "loss.huber_variant: Input should be 'paper' or 'upstream', got 'pytorch'"),
        (["published_code=maybe"], "published_code: Input should be a valid boolean"),
        (["loss"], "--set 'loss': expected path=value"),
        (["loss.alpha.x=1"], "loss.alpha is a value, not a section"),
    ],
)
def test_bad_values_name_the_path_and_value(tmp_path, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text("loss: {alpha: 2.0}\n")
    with pytest.raises(InputError) as e:
        load_config(path, overrides)
    assert message in str(e.value)


def test_a_wrong_length_is_one_line_naming_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("published_code: true\nloss: {class_weights: [1, 2]}\n")
    with pytest.raises(InputError) as e:
        load_config(path)
    assert "\n" not in str(e.value) and "loss.class_weights: 2 class weights, but discretization rule 'round_half_even' makes 5 classes" in str(e.value)


SIXTY_FORTY = {"dataset": "scut-fbp5500", "protocol": "60-40"}
PUBLISHED = {
    "loss.ce_input": "probs",
    "loss.ce_weighted": True,
    "loss.ce_reduction": "weighted_mean",
    "loss.huber_variant": "upstream",
    "loss.discretization.rule": "round_half_even",
    "loss.discretization.values": [1.0, 2.0, 3.0, 4.0, 5.0],
    "loss.class_weights": [1.88, 1.0, 1.91, 99.38, 99.38],
    "eval.select": "test_oracle",
    # data/data_loaders.py @a3fed65 on the 60/40 split: ColorJitter commented out, RandomRotation(30) fills black
    "train.augment.brightness": 0.0,
    "train.augment.contrast": 0.0,
    "train.augment.saturation": 0.0,
    "train.augment.hue": 0.0,
    "train.augment.fill": "black",
}


def _at(config, dotted):
    for key in dotted.split("."):
        config = getattr(config, key)
    return config


def test_published_code_sets_every_quirk_in_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("published_code: true\ndata: {dataset: scut-fbp5500, protocol: 60-40}\n")
    c = load_config(path)
    assert {k: _at(c, k) for k in PUBLISHED} == PUBLISHED
    # what is not a quirk keeps its default
    assert (c.loss.alpha, c.loss.beta, c.loss.gamma, c.train.lr, c.eval.predict) == (2.0, 1.0, 1.0, 0.01, "reg")
    # the resolved config (study.yaml) says it all and loads back as the same config
    dumped = c.model_dump(mode="json")
    assert dumped["loss"]["ce_reduction"] == "weighted_mean" and dumped["eval"]["select"] == "test_oracle"
    assert TrialConfig.model_validate(dumped, context=TRUSTED) == c


@pytest.mark.parametrize(
    "path, value",
    [
        ("loss.ce_input", "logits"),
        ("loss.ce_weighted", False),
        ("loss.ce_reduction", "mean"),
        ("loss.huber_variant", "paper"),
        ("loss.discretization.values", "mean"),
        ("loss.class_weights", [5.0, 4.0, 3.0, 2.0, 1.0]),
        ("eval.select", "last"),
        ("train.augment.fill", "reflection"),
        ("train.augment.brightness", 0.2),
    ],
)
def test_each_quirk_stays_overridable_under_the_switch(path, value):
    c = validate_config(apply_overrides({"published_code": True, "data": SIXTY_FORTY}, [f"{path}={value}"]))
    assert _at(c, path) == value
    assert all(_at(c, k) == v for k, v in PUBLISHED.items() if k != path)


def test_the_published_weights_go_with_the_published_rule_and_split():
    # the paper's rule instead: its classes differ, so eq. 6 on them
    c = validate_config({"published_code": True, "data": SIXTY_FORTY, "loss": {"discretization": {"rule": "paper"}}})
    assert (c.loss.class_weights, c.loss.discretization.values) == (None, [1.0, 2.0, 3.0, 4.0, 5.0])
    # the 5-fold protocol: the published per-fold lists are eq. 6 to 2 decimals
    c = validate_config({"published_code": True})
    assert (c.loss.class_weights, c.loss.discretization.rule) == (None, "round_half_even")


def test_published_code_on_hotornot_is_three_intervals_valued_1_2_3():
    c = validate_config({"published_code": True, "data": {"dataset": "hotornot", "protocol": "5split"}})
    d = c.loss.discretization
    assert (d.rule, d.edges, d.values, c.loss.class_weights) == ("intervals", [-1.0, 1.0], [1.0, 2.0, 3.0], None)
    # a rule of the user's own gets the class numbers of its K classes
    c = validate_config({"published_code": True, "loss": {"discretization": {"rule": "uniform", "num_classes": 4}}})
    assert (c.loss.discretization.values, c.loss.discretization.edges) == ([1.0, 2.0, 3.0, 4.0], None)


def test_published_code_jitters_colour_on_scut_fbp_only():
    """data/data_loaders.py @a3fed65: ColorJitter(0.1, 0.1, 0.1, 0.1) in load_scutfbp; ColorJitter()
    (no-op) for HotOrNot and the 5 folds; none on the 60/40 split; RandomRotation(30) everywhere."""
    jitter = ("brightness", "contrast", "saturation", "hue")
    for dataset, protocol, amount in (("scut-fbp", "5fold", 0.1), ("hotornot", "5split", 0.0), ("scut-fbp5500", "5fold", 0.0), ("scut-fbp5500", "60-40", 0.0)):
        a = validate_config({"published_code": True, "data": {"dataset": dataset, "protocol": protocol}}).train.augment
        assert [getattr(a, k) for k in jitter] == [amount] * 4 and (a.rotation, a.fill) == (30.0, "black"), dataset
    # the paper's config: its own jitter on every dataset, the rotation's corners mirrored
    a = validate_config({"data": {"dataset": "scut-fbp", "protocol": "5fold"}}).train.augment
    assert ([getattr(a, k) for k in jitter], a.fill) == ([0.2, 0.2, 0.2, 0.0], "reflection")


@pytest.mark.parametrize("loss", ["l1", "mse", "smooth_l1", "smooth_huber"])
def test_published_code_trains_a_regression_only_loss_with_its_adam(loss):
    """main/run_fbp.py:554 @4fc4832: model_type 'regressor' -> optim.Adam(lr=0.001, weight_decay=1e-4);
    'combinator' (ComboLoss) -> SGD(lr=0.01, momentum=0.9, weight_decay=0.001)."""
    t = validate_config({"published_code": True, "loss": {"name": loss}}).train
    assert (t.optimizer, t.lr, t.weight_decay) == ("adam", 0.001, 0.0001)
    t = validate_config({"published_code": True}).train
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay) == ("sgd", 0.01, 0.9, 0.001)
    t = validate_config({"published_code": True, "loss": {"name": loss}, "train": {"lr": 0.05}}).train
    assert (t.optimizer, t.lr, t.weight_decay) == ("adam", 0.05, 0.0001)  # what the config sets stays
    assert validate_config({"loss": {"name": loss}}).train.optimizer == "sgd"  # the paper: SGD for every row


def test_published_code_false_changes_nothing():
    assert validate_config({"published_code": False}) == TrialConfig()


def test_broken_yaml_gives_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  dataset: synthetic\n  root: [unclosed\nloss: {}\n")
    with pytest.raises(InputError, match=r"broken.yaml:4:\d+: invalid YAML"):
        read_yaml(path)


@pytest.mark.parametrize("text", ["", "\n  \n", "# a study, to be written\n# name: t\n", "---\n"])
def test_an_empty_file_is_called_empty(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"empty.yaml: the file is empty \(nothing but blank lines or comments\)"):
        read_yaml(path)


def test_overrides_parse_yaml_values_and_leave_the_input_alone():
    raw = {"loss": {"alpha": 2.0}}
    out = apply_overrides(raw, ["loss.alpha=0.5", "data.folds=[1, 2]", "model.pretrained=false", "train.schedule.name=cosine"])
    assert raw == {"loss": {"alpha": 2.0}}
    c = validate_config(out)
    assert (c.loss.alpha, c.data.folds, c.model.pretrained, c.train.schedule.name) == (0.5, [1, 2], False, "cosine")


def test_a_trusted_load_checks_no_registry_and_imports_no_torch(tmp_path):
    """A config this program wrote (study.yaml) loads without the registries, whose modules
    import torch; an untrusted load still refuses an unknown name."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from fbp.config import TRUSTED, TrialConfig\n"
        "c = TrialConfig.model_validate({'loss': {'name': 'combo'}, 'model': {'backbone': 'seresnext50_32x4d'}}, context=TRUSTED)\n"
        "print(c.loss.name, 'torch' in sys.modules, 'timm' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["combo", "False", "False"], run.stderr
    with pytest.raises(Exception, match="unknown loss 'huber'"):
        TrialConfig.model_validate({"loss": {"name": "huber"}})


def _fields(model, prefix=""):
    """(dotted path, field) of every field of `model`, sections and the fields inside them."""
    for name, field in model.model_fields.items():
        yield prefix + name, field
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _fields(field.annotation, prefix + name + ".")


def test_every_field_has_a_docstring():
    """A field added without the string under it fails here: the config is its documentation."""
    undocumented = [path for path, field in _fields(TrialConfig) if not (field.description or "").strip()]
    assert undocumented == []
    assert "Paper: 2." in TrialConfig.model_fields["loss"].annotation.model_fields["alpha"].description


def test_the_defaults_docstrings_quote_the_paper_or_name_the_published_file():
    doc = {path: " ".join((field.description or "").split()) for path, field in _fields(TrialConfig)}
    assert '"The network is initialized with ImageNet pretrained weights"' in doc["model.pretrained"]
    assert '"resized and randomly cropped to 224x224 patches, color jittering and random rotation"' in doc["train.augment.hflip"]
    assert "data/data_loaders.py" in doc["train.augment.hflip"] and "RandomRotation(30)" in doc["train.augment.rotation"]
    assert "The paper is silent" in doc["eval.view"] and "data/data_loaders.py" in doc["eval.view"]
    assert "the intervals are set to 3 as in [CRNet]" in doc["loss.discretization.rule"] and "HotOrNotDataset" in doc["loss.discretization.rule"]
    assert "mean and std of the backbone's own pretrained config in timm" in doc["model.backbone"]


def test_knobs_list_every_dotted_path_with_type_default_allowed_values_and_doc():
    from fbp.data import DATASETS
    from fbp.discretize import RULES
    from fbp.losses import LOSSES

    rows = {k.path: k for k in knobs()}
    assert list(rows) == [path for path, _ in _fields(TrialConfig)]
    assert all(k.doc and "\n" not in k.doc for k in rows.values())
    assert rows["loss.alpha"] == Knob("loss.alpha", "float", 2.0, ">= 0", "combo: weight of L1(regression, score). Paper: 2.")
    assert (rows["loss"].type, rows["loss.discretization"].type) == ("section", "section")
    assert (rows["data.resize"].type, rows["data.resize"].default, rows["data.resize"].allowed) == ("int | None", None, ">= 16, <= 2048")
    assert (rows["train.optimizer"].type, rows["train.optimizer"].allowed) == ("str", "sgd, adam, adamw")
    assert (rows["model.pretrained"].type, rows["train.augment.scale"].type) == ("bool | str", "tuple[float, float]")
    assert rows["data.options"].default == {} and rows["eval.val_fraction"].allowed == "> 0, < 0.5"
    assert rows["data.dataset"].allowed == ", ".join(DATASETS)
    assert rows["loss.name"].allowed == ", ".join(LOSSES)
    assert rows["loss.discretization.rule"].allowed == ", ".join(["auto", *RULES]) and rows["loss.discretization.rule"].default == "auto"
    assert (rows["eval.view"].default, rows["eval.view"].allowed) == ("resize", "resize, center_crop")
    assert rows["model.pretrained"].default is True and rows["train.augment.hflip"].default is False
