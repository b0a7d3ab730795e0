"""The generator training config: the two model configs embedded whole, their shared fields
checked, old keys answered with the new ones."""

from __future__ import annotations

import pytest

from semtalk.config import ConfigError, to_dict
from semtalk.configs import PRESETS
from semtalk.models.base_generator import BaseMotionGenerator
from semtalk.models.sparse_generator import SparseMotionGenerator
from semtalk.training.generator import GeneratorTrainConfig, load_generator_config
from semtalk.training.presets import load_preset


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_builds_both_models(name: str) -> None:
    config = load_generator_config(name)
    assert config.base.speech_dim is None and config.base.codes is None  # from the data
    assert config.sparse_model.base_mismatches(config.base) == []
    device = torch_device(name)
    with device:
        base = BaseMotionGenerator(load_preset("base_generator", name, speech_dim=24,
                                               beat_dim=4))
        sparse = SparseMotionGenerator(load_preset("sparse_generator", name, speech_dim=24,
                                                   vocab_size=40, sentence_dim=8,
                                                   emotion_dim=6))
    assert sparse.config.base_mismatches(base.config) == []


def torch_device(name: str):  # paper sizes on the meta device: no memory, no initialisation
    import torch

    return torch.device("meta" if name == "paper" else "cpu")


def test_yaml_alias_writes_the_sizes_once_and_overrides_change_one_section() -> None:
    tiny = load_generator_config("tiny")
    assert tiny.base.sizes == tiny.sparse_model.sizes and tiny.base.sizes.hidden == 64
    wider = load_generator_config("tiny", overrides=["base.sizes.hidden=128"])
    assert wider.base.sizes.hidden == 128 and wider.sparse_model.sizes.hidden == 64


def test_shared_fields_must_agree_one_error_lists_them() -> None:
    with pytest.raises(ConfigError) as error:
        load_generator_config("tiny", overrides=["base.sizes.latent=64",
                                                 "sparse_model.num_speakers=7"])
    message = str(error.value)
    assert "base and sparse_model must agree" in message
    assert "sizes.latent: base 64 vs sparse 32" in message
    assert "num_speakers: base 25 vs sparse 7" in message
    with pytest.raises(ConfigError, match="window: base 64 vs sparse 32"):
        load_generator_config("tiny", overrides=["sparse_model.window=32"])
    # not shared: each model has its own
    c2f = load_generator_config("tiny", overrides=["sparse_model.use_coarse2fine=false"])
    assert c2f.base.use_coarse2fine and not c2f.sparse_model.use_coarse2fine


def test_data_fields_are_left_to_the_data() -> None:
    with pytest.raises(ConfigError, match=r"base\.speech_dim is 20; it comes from the data"):
        load_generator_config("tiny", overrides=["base.speech_dim=20"])
    with pytest.raises(ConfigError, match=r"sparse_model\.vocab_size is 9"):
        load_generator_config("tiny", overrides=["sparse_model.vocab_size=9"])
    data = to_dict(load_generator_config("tiny"))
    assert data["base"]["codes"] is None and data["sparse_model"]["emotion_dim"] is None


@pytest.mark.parametrize(("override", "new"), [
    ("use_coarse2fine=false",
     "use_coarse2fine is now base.use_coarse2fine and sparse_model.use_coarse2fine"),
    ("rhythmic_consistency=false", "rhythmic_consistency is now base.use_rhythmic_projection"),
    ("sizes.hidden=32", "sizes is now base.sizes and sparse_model.sizes"),
    ("dropout=0.0", "dropout is now base.dropout and sparse_model.dropout"),
    ("window=32", "window is now base.window and sparse_model.window"),
    ("num_speakers=7", "num_speakers is now base.num_speakers and sparse_model.num_speakers"),
    ("sparse.gate=random", "sparse.gate is now sparse_model.gate"),
    ("sparse.feature_weighting=false",
     "sparse.feature_weighting is now sparse_model.feature_weighting"),
    ("sparse.blend_base=false", "sparse.blend_base is now sparse_model.blend_base"),
    ("sparse.word_dim=8", "sparse.word_dim is now sparse_model.word_dim"),
])
def test_old_keys_name_the_new_ones(override: str, new: str) -> None:
    with pytest.raises(ConfigError, match=new.replace(".", r"\.")):
        load_generator_config("tiny", overrides=[override])


def test_old_layout_file_is_told_the_new_keys(tmp_path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("sizes:\n  hidden: 64\nuse_coarse2fine: false\n")
    with pytest.raises(ConfigError, match=r"sizes is now base\.sizes and sparse_model\.sizes "
                                          r"\(one model section each\); use_coarse2fine is now"):
        load_generator_config(config=path)


def test_rhythmic_consistency_is_the_base_models_projection_switch() -> None:
    config = load_generator_config("tiny", overrides=["base.use_rhythmic_projection=false"])
    assert not config.base.use_rhythmic_projection
    assert GeneratorTrainConfig().base.use_rhythmic_projection
