"""Every shipped preset (``semtalk/configs/*.yaml``) loads into its dataclasses and builds.

Tiny and demo models are built for real; paper-size ones on the meta device (no memory, no
initialisation), which is enough to check their parameter counts.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import pytest
import torch

from semtalk.body.parts import BodyPart
from semtalk.configs import PRESETS
from semtalk.errors import DataError
from semtalk.metrics.fgd_encoder import FGDAutoencoder
from semtalk.models.base_generator import BaseGeneratorConfig, BaseMotionGenerator
from semtalk.models.generator_common import CodeSpec, GeneratorSizes
from semtalk.models.sparse_generator import SparseGeneratorConfig, SparseMotionGenerator
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.training.fgd_encoder import load_fgd_config
from semtalk.training.generator import load_generator_config
from semtalk.training.presets import PRESET_KINDS, load_preset
from semtalk.training.tokenizer import load_tokenizer_config

STAGES = ("tokenizer", "generator", "fgd_encoder")
SHIPPED = sorted(entry.name.removesuffix(".yaml")
                 for entry in resources.files("semtalk.configs").iterdir()
                 if entry.name.endswith(".yaml"))
DATA = {"speech_dim": 1024, "vocab_size": 2000, "sentence_dim": 512, "emotion_dim": 512}
"""Data sizes of the sparse generator (HuBERT speech, a BEAT2-sized vocabulary)."""
BASE_DATA = {"speech_dim": 1024, "beat_dim": 4}
"""Data sizes of the base generator."""

PAPER_PARAMETERS = {"tokenizer": (4e6, 6e6), "base": (150e6, 250e6), "sparse": (100e6, 200e6)}
"""Parameter ranges of the paper-size models (the tokenizer's per part)."""


def _split(stem: str) -> tuple[str, str]:
    stage, _, name = stem.rpartition("_")
    return stage, name


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _device(name: str) -> torch.device:
    return torch.device("meta" if name == "paper" else "cpu")


def test_every_shipped_yaml_is_a_known_stage_and_preset() -> None:
    assert len(SHIPPED) == 8
    for stem in SHIPPED:
        stage, name = _split(stem)
        assert stage in STAGES and name in PRESETS, stem
    for stage in STAGES:
        assert {f"{stage}_tiny", f"{stage}_paper"} <= set(SHIPPED)


@pytest.mark.parametrize("stem", [s for s in SHIPPED if s.startswith("tokenizer_")])
def test_tokenizer_preset_builds(stem: str) -> None:
    name = _split(stem)[1]
    config = load_preset("tokenizer", name)
    assert config == load_tokenizer_config(name).model and config.input_dim is None
    with _device(name):
        tokenizer = MotionTokenizer.from_config(config)
    assert tokenizer.parts == list(BodyPart)
    for part in BodyPart:
        assert tokenizer[part].config == load_preset("tokenizer", name, input_dim=part.dim)
        if name == "paper":
            low, high = PAPER_PARAMETERS["tokenizer"]
            assert low < _parameters(tokenizer[part]) < high
    assert tokenizer.code_spec == CodeSpec.from_rvqvae(config)


@pytest.mark.parametrize("stem", [s for s in SHIPPED if s.startswith("generator_")])
def test_generator_presets_build_on_their_tokenizer_preset(stem: str) -> None:
    name = _split(stem)[1]
    train = load_generator_config(name)
    codes = CodeSpec.from_rvqvae(load_preset("tokenizer", name))
    base_config = load_preset("base_generator", name, **BASE_DATA)
    sparse_config = load_preset("sparse_generator", name, **DATA)
    # the model sections are the models' configs; training fills in the data and the codes
    assert base_config == replace(train.base, codes=codes, **BASE_DATA)
    assert sparse_config == replace(train.sparse_model, codes=codes, **DATA)
    assert base_config.codes == sparse_config.codes == codes
    assert sparse_config.base_mismatches(base_config) == []
    assert base_config.sizes == sparse_config.sizes
    with _device(name):
        base = BaseMotionGenerator(base_config)
        sparse = SparseMotionGenerator(sparse_config)
    if name == "paper":
        for key, model in (("base", base), ("sparse", sparse)):
            low, high = PAPER_PARAMETERS[key]
            assert low < _parameters(model) < high, key
    else:
        assert base.config.sizes.hidden == 64 and sparse.config.word_dim == 16


TINY_SIZES = GeneratorSizes(hidden=64, latent=32, heads=4, feedforward=128, latent_heads=4,
                            latent_feedforward=64, face_layers=1, self_layers=1, word_layers=1,
                            part_layers=1, coarse2fine_layers=1, semantic_layers=1,
                            residual_layers=1, residual_heads=4, residual_feedforward=64,
                            motion_encoder_layers=1)
MODEL_SECTIONS = {  # (sizes, dropout, word_dim, gate_context, memory_position) as set
    "tiny": (TINY_SIZES, 0.1, 16, (12, 4), True),
    "demo": (TINY_SIZES, 0.0, 16, (12, 4), True),
    "paper": (GeneratorSizes(), 0.1, 300, (0, 0), False),
}


@pytest.mark.parametrize("name", sorted(MODEL_SECTIONS))
def test_generator_presets_build_the_models_they_always_built(name: str) -> None:
    """The models of each preset, field by field, as before the model configs were embedded
    in the training config (when the training config's ``sizes``, ``dropout``, ``window``,
    ``num_speakers``, switches and ``sparse.word_dim`` were mapped into them): the same
    ``config.json``, so the same weights from the same seed; since then the tiny and demo
    sem-gates read a context of tokens (``gate_context``) and their audio memories carry
    positions (``memory_position``, no parameters), the paper's do not."""
    sizes, dropout, word_dim, gate_context, memory_position = MODEL_SECTIONS[name]
    codes = CodeSpec.from_rvqvae(load_preset("tokenizer", name))
    assert load_preset("base_generator", name, **BASE_DATA) == BaseGeneratorConfig(
        **BASE_DATA, motion_dim=337, num_speakers=25, window=64, codes=codes, sizes=sizes,
        dropout=dropout, use_coarse2fine=True, use_rhythmic_projection=True,
        word_query_speaker=True, memory_position=memory_position)
    assert load_preset("sparse_generator", name, **DATA) == SparseGeneratorConfig(
        **DATA, word_dim=word_dim, motion_dim=337, num_speakers=25, window=64, codes=codes,
        sizes=sizes, dropout=dropout, gate="learned", gate_context=gate_context,
        feature_weighting=True, blend_base=True, use_coarse2fine=True, use_emotion=True,
        word_query_speaker=True, memory_position=memory_position)
    train = load_generator_config(name)
    assert train.window == 64 and train.base.use_rhythmic_projection  # windows; the RC loss


@pytest.mark.parametrize("stem", [s for s in SHIPPED if s.startswith("fgd_encoder_")])
def test_fgd_encoder_preset_builds(stem: str) -> None:
    name = _split(stem)[1]
    config = load_preset("fgd_encoder", name)
    assert config == load_fgd_config(name).model
    model = FGDAutoencoder(config)  # ~3M parameters at every preset (the official encoder)
    assert 2e6 < _parameters(model) < 4e6


def test_tiny_presets_values_and_demo_differences() -> None:
    tiny = load_preset("tokenizer", "tiny")
    assert (tiny.width, tiny.code_dim, tiny.depth, tiny.dropout) == (32, 32, 2, 0.0)
    assert (tiny.quantizer.num_quantizers, tiny.quantizer.codebook_size) == (3, 64)
    assert load_preset("tokenizer", "demo") == tiny
    base = load_preset("base_generator", "tiny", speech_dim=20, beat_dim=4)
    demo = load_preset("base_generator", "demo", speech_dim=20, beat_dim=4)
    assert base.dropout == 0.1 and demo.dropout == 0.0
    assert demo.sizes == base.sizes and demo.codes == base.codes == CodeSpec(3, 64, 32, 4)


def test_fields_override_and_bad_requests() -> None:
    config = load_preset("base_generator", "tiny", speech_dim=20, use_coarse2fine=False,
                         codes=CodeSpec(3, 64, 32, 4))
    assert config.speech_dim == 20 and not config.use_coarse2fine
    assert load_preset("tokenizer", "paper", dropout=0.0).dropout == 0.0
    unset = load_preset("base_generator", "tiny")  # the data's sizes left unset: no model
    assert unset.speech_dim is None and unset.beat_dim is None
    with pytest.raises(ValueError, match=r"BaseMotionGenerator needs config speech_dim, "
                                         r"beat_dim set: they come from the data"):
        BaseMotionGenerator(unset)
    with pytest.raises(ValueError, match="SparseMotionGenerator needs config vocab_size"):
        SparseMotionGenerator(load_preset("sparse_generator", "tiny", speech_dim=20))
    with pytest.raises(ValueError, match="unknown preset kind"):
        load_preset("vocoder", "tiny")
    with pytest.raises(DataError):
        load_preset("fgd_encoder", "demo")
    assert set(PRESET_KINDS) == {"tokenizer", "base_generator", "sparse_generator",
                                 "fgd_encoder"}
