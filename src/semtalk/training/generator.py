"""Training stages 1 and 2: the base and the sparse motion generators.

``semtalk train base`` trains :class:`~semtalk.models.base_generator.BaseMotionGenerator` on
the codes of a frozen tokenizer release; ``semtalk train sparse`` trains
:class:`~semtalk.models.sparse_generator.SparseMotionGenerator` with the frozen base model and
tokenizer. Both share the window data, the masking schedule and the per-step recipe (spec §5.4,
§6.4): every step runs three passes on the same batch,

=====  ========================================  ========  =========================
pass   mask                                      words     loss terms
=====  ========================================  ========  =========================
seed   first 4 frames visible, rest hidden       yes       codes + latents (+ RC, base)
self   random, ratio ramping 0 -> 40 %           no        codes + latents
word   the same random mask                      yes       codes + latents
=====  ========================================  ========  =========================

with the sem-gate loss L_cls^G in every pass of the sparse stage (DESIGN §1; the official code
adds it in the "self" pass only). Code losses weigh RVQ layer i by 1/(i+1) over all layers (the
official base trainer's "self" pass uses layer 5 only, a bug). In the sparse stage, W_l weighs
each token's code losses by ψ (``loss_weighting: psi``) so the sparse model learns where it
will be used, or by the ground-truth semantic score (``label``, official), or not at all.

A run folder holds the solver's files; the selected model is released next to the tokenizer:
``OUT/base/`` and ``OUT/sparse/`` (``config.json``, ``model.safetensors`` and the
:class:`~semtalk.release.FeatureSpec` the model was trained on; the sparse release adds the
vocabulary), in the layout of :mod:`semtalk.release`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn
from torch.utils.data import Dataset

from semtalk.body.parts import BodyPart
from semtalk.config import to_dict
from semtalk.configs import load_stage_config
from semtalk.errors import DataError, require_file
from semtalk.features.cache import VOCAB as CACHE_VOCAB
from semtalk.features.cache import FeatureCache
from semtalk.features.text import PAD, read_word_vectors
from semtalk.fileio import file_sha256, write_text_atomic
from semtalk.inference import prepare_for_inference
from semtalk.losses.generator import (
    code_classification_loss,
    gate_classification_loss,
    latent_regression_loss,
    overlapping_windows,
    rhythmic_consistency_loss,
)
from semtalk.metrics.semantic import semantic_accuracy
from semtalk.models.base_generator import BaseAudio, BaseGeneratorConfig, BaseMotionGenerator
from semtalk.models.generator_common import (
    FRAMES_PER_TOKEN,
    CodeSpec,
    GeneratorInputs,
    GeneratorOutput,
)
from semtalk.models.pretrained import write_checksums
from semtalk.models.sparse_generator import (
    SemanticScore,
    SparseGeneratorConfig,
    SparseMotionGenerator,
)
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.release import (
    BASE,
    FEATURES_FILE,
    SPARSE,
    TOKENIZER,
    VOCAB_FILE,
    FeatureSpec,
    check_compatible,
)
from semtalk.training.generator_data import (
    GeneratorWindows,
    batch_inputs,
    batch_parts,
    feature_dims,
    speech_feature_name,
    token_semantic,
)
from semtalk.training.masking import MaskSchedule
from semtalk.training.solver import Solver, SolverConfig, install_release
from semtalk.training.windows import Segment, cut_windows, training_segments

LOSS_WEIGHTINGS = ("psi", "label", "none")
WORD_VECTORS_FILE = "word_vectors.json"
"""In a sparse release trained from a word-vector file: which file, its sha256, coverage."""


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator loss terms (official values).

    Attributes:
        classification: code cross-entropy, summed over parts (c_p = 1).
        latent: latent regression per part (official 3 per part, total divided by 6).
        rhythm: each rhythmic-consistency pair (face, hands), local + global.
        gate: sem-gate classification L_cls^G, counted once per step (the mean over the
            step's passes: ψ does not depend on the pass's mask). 3 keeps the strength of the
            earlier per-pass sum.
    """

    classification: float = 1.0
    latent: float = 0.5
    rhythm: float = 1.0
    gate: float = 3.0


@dataclass(frozen=True)
class SparseOptions:
    """Sparse-stage training switches (paper Table 2 variants, DESIGN §1).

    The sparse model's architecture switches (Table 2's gate modes, W_f, the Eq. 5 blend, the
    word width) are fields of the model config, ``sparse_model`` (``sparse_model.gate``,
    ``sparse_model.feature_weighting``, ``sparse_model.blend_base``,
    ``sparse_model.word_dim``). Table 2's W_l is ``gate_supervision`` (the classification loss
    L_cls^G on ψ); "w/o W" turns both W_f and W_l off. ``loss_weighting`` (weighing the code
    losses per token) is a separate switch, not what Table 2 calls W_l.
    """

    gate_supervision: bool = True
    """W_l: supervise ψ with L_cls^G against the frame-level semantic labels (counted once per
    step: the mean over the step's three passes, times ``losses.gate``)."""
    loss_weighting: str = "psi"
    """Code-loss weighting per token: by ``psi`` (detached), by the GT score (``label``, as the
    official code) or ``none``. Not Table 2's W_l."""
    word_dropout: float = 0.1
    """Probability that a spoken word's id is replaced by UNK in a training step, so the UNK
    embedding (what unseen words get at inference) is trained."""
    word_vectors: str | None = None
    """A text word-vector file (fastText ``.vec``, e.g. ``cc.en.300.vec`` as the paper;
    ``word v1 .. vD`` per line) to initialise the word embedding from; D must equal
    ``sparse_model.word_dim``. Vocabulary words it lacks start random. Recorded in the release
    (``word_vectors.json``)."""
    gate_class_weights: tuple[float, float] | None = None
    """Cross-entropy weights (non-semantic, semantic); null = 1, 1 (official)."""
    batch_size: int | None = None
    """The sparse stage's batch size (null: ``solver.batch_size``, the one both stages share).
    The sem-gate learns from few labelled spans per window: the demo preset doubles its batch
    (held-out ψ balanced accuracy 0.87 -> 0.91 on 40 minutes of the synthetic speaker)."""

    renamed_keys: ClassVar[dict[str, str]] = {
        "gate": "sparse_model.gate", "feature_weighting": "sparse_model.feature_weighting",
        "blend_base": "sparse_model.blend_base", "word_dim": "sparse_model.word_dim"}
    """Keys that moved to the model config (what a config or override naming them is told)."""


@dataclass
class _SharedEncoding:
    """What a sparse training step's passes share (:meth:`SparseSolver._shared`)."""

    score: SemanticScore
    base_audio: BaseAudio


def _both(key: str) -> str:
    return f"base.{key} and sparse_model.{key} (one model section each)"


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """Everything ``semtalk train base`` / ``train sparse`` need besides data and releases.

    The two models' architectures are their own configs, embedded whole: ``base`` (a
    :class:`~semtalk.models.base_generator.BaseGeneratorConfig`) and ``sparse_model`` (a
    :class:`~semtalk.models.sparse_generator.SparseGeneratorConfig`), with the fields the data
    and the tokenizer decide left unset (``speech_dim``, ``beat_dim``, ``vocab_size``,
    ``sentence_dim``, ``emotion_dim``, ``codes``; training fills them in). The fields the two
    models share (``sizes.latent``, ``window``, ``num_speakers``, ``motion_dim``) must agree.
    Everything else here is training.

    The rhythmic consistency loss (paper ablation RC) is on exactly when the base model has
    its projection heads, ``base.use_rhythmic_projection``: "w/o RC" is
    ``base.use_rhythmic_projection=false``. The C2F ablation switches
    ``base.use_coarse2fine`` and ``sparse_model.use_coarse2fine``.

    Attributes:
        base: the base generator's architecture.
        sparse_model: the sparse generator's architecture.
        rhythm_local, rhythm_global: the two terms of the rhythmic consistency loss.
        temperature: InfoNCE temperature τ.
        speech_feature: ``auto`` (HuBERT when cached, else spectral), ``hubert``, ``spectral``.
        stride, val_stride, holdout_fraction: training windows (see the tokenizer) of
            ``base.window`` frames.
        masking: the random-mask schedule and seed length.
        losses: loss weights.
        sparse: sparse-stage training switches.
        solver: optimisation and bookkeeping.
    """

    base: BaseGeneratorConfig = field(default_factory=BaseGeneratorConfig)
    sparse_model: SparseGeneratorConfig = field(default_factory=SparseGeneratorConfig)
    rhythm_local: bool = True
    rhythm_global: bool = True
    temperature: float = 0.1
    speech_feature: str = "auto"
    stride: int = 20
    val_stride: int = 32
    holdout_fraction: float = 0.1
    masking: MaskSchedule = field(default_factory=MaskSchedule)
    losses: LossWeights = field(default_factory=LossWeights)
    sparse: SparseOptions = field(default_factory=SparseOptions)
    solver: SolverConfig = field(default_factory=SolverConfig)

    renamed_keys: ClassVar[dict[str, str]] = {
        "sizes": _both("sizes"), "dropout": _both("dropout"),
        "use_coarse2fine": _both("use_coarse2fine"), "num_speakers": _both("num_speakers"),
        "window": _both("window"),
        "rhythmic_consistency": "base.use_rhythmic_projection (the rhythmic consistency loss "
                                "is on exactly when the base model has its projection heads)"}
    """Keys that moved to the model configs (what a config or override naming them is told)."""

    def __post_init__(self) -> None:
        problems = [f"{name}.{key} is {getattr(model, key)!r}; it comes from the data and "
                    f"the tokenizer: leave it out"
                    for name, model in (("base", self.base), ("sparse_model", self.sparse_model))
                    for key in model.data_fields if getattr(model, key) is not None]
        mismatches = self.sparse_model.base_mismatches(self.base)
        if mismatches:
            problems.append("base and sparse_model must agree on the fields the two models "
                            "share: " + "; ".join(mismatches))
        if self.sparse.batch_size is not None and self.sparse.batch_size < 1:
            problems.append(f"sparse.batch_size must be >= 1 or null, got "
                            f"{self.sparse.batch_size}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def window(self) -> int:
        """Frames per training window: the models' ``window``."""
        return self.base.window

    def base_config(self, codes: CodeSpec, **fields: Any) -> BaseGeneratorConfig:
        """``base`` with the tokenizer's ``codes`` and the data's sizes (``speech_dim``,
        ``beat_dim``) filled in: the model the base stage builds."""
        return replace(self.base, codes=codes, **fields)

    def sparse_config(self, codes: CodeSpec, **fields: Any) -> SparseGeneratorConfig:
        """``sparse_model`` with the tokenizer's ``codes`` and the data's sizes
        (``speech_dim``, ``vocab_size``, ``sentence_dim``, ``emotion_dim``) filled in: the
        model the sparse stage builds."""
        return replace(self.sparse_model, codes=codes, **fields)


def load_generator_config(preset: str = "tiny", config: str | Path | None = None,
                          overrides: tuple[str, ...] | list[str] = ()) -> GeneratorTrainConfig:
    """The packaged preset (``tiny`` or ``paper``) or a YAML file, then overrides."""
    return load_stage_config(GeneratorTrainConfig, "generator", preset, config, overrides)


class _GeneratorSolver(Solver):
    """What both generator stages share: data, tokenizer targets, masks, code losses."""

    find_unused_parameters = True  # the "self" pass skips the word-hints decoder
    validate_prepared = True

    def __init__(self, config: GeneratorTrainConfig, data: str | Path, tokenizer: str | Path,
                 out: str | Path,
                 segments: tuple[list[Segment], list[Segment]] | None = None) -> None:
        super().__init__(config.solver, out)
        if config.stride % 4 or config.val_stride % 4:
            raise DataError(Path(out), "stride and val_stride must be multiples of 4")
        self.config = config
        self.cache = FeatureCache(data)
        self.tokenizer_path = Path(tokenizer)
        self.tokenizer = MotionTokenizer.from_pretrained(tokenizer)
        self.speech = speech_feature_name(self.cache, config.speech_feature)
        self.dims = feature_dims(self.cache, self.speech)
        self._train, self._val = segments or training_segments(
            self.cache, config.holdout_fraction, config.window)

    def _tokenizer_identity(self) -> dict[str, Any]:
        return {part.value: to_dict(self.tokenizer[part].config)
                for part in self.tokenizer.parts}

    def _windows(self, segments: list[Segment], stride: int) -> GeneratorWindows:
        return GeneratorWindows(self.cache, cut_windows(segments, self.config.window, stride),
                                self.speech)

    def train_dataset(self) -> Dataset:
        return self._windows(self._train, self.config.stride)

    def val_dataset(self) -> Dataset | None:
        return self._windows(self._val, self.config.val_stride) if self._val else None

    def _targets(self, batch: dict[str, torch.Tensor]) -> tuple[dict[BodyPart, torch.Tensor],
                                                                 dict[BodyPart, torch.Tensor]]:
        """Tokenizer codes ``{part: [B, N, Q]}`` and code vectors ``{part: [B, Q, N, D]}``."""
        with torch.no_grad():
            codes = self.tokenizer.encode_parts(batch_parts(batch))
            vectors = {part: self.tokenizer[part].codes_to_vectors(c).permute(1, 0, 2, 3)
                       for part, c in codes.items()}
        return codes, vectors

    def _masks(self, batch: dict[str, torch.Tensor], step: int) -> list[tuple[str, Any, bool]]:
        schedule = self.config.masking
        shape = batch["motion"].shape
        ratio = schedule.ratio(step, self.solver_config.max_steps)
        random_mask = schedule.random_mask(shape, ratio, self.device)
        return [("seed", schedule.seed_mask(shape, self.device), True),
                ("self", random_mask, False), ("word", random_mask, True)]

    def _code_losses(self, out: GeneratorOutput, codes: dict[BodyPart, torch.Tensor],
                     vectors: dict[BodyPart, torch.Tensor],
                     weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        cls = sum(code_classification_loss(out.logits[p], codes[p], weights)
                  for p in out.logits)
        lat = sum(latent_regression_loss(out.latents[p], vectors[p], weights)
                  for p in out.latents)
        return cls, lat  # type: ignore[return-value]

    @staticmethod
    def _code_accuracy(out: GeneratorOutput, codes: dict[BodyPart, torch.Tensor]) -> float:
        """Top-1 accuracy of the first RVQ layer's codes, mean over parts."""
        predicted = out.codes()
        return float(sum((predicted[p][..., 0] == codes[p][..., 0]).float().mean().item()
                         for p in predicted) / len(predicted))

    def _release_extras(self, folder: Path) -> None:
        FeatureSpec.from_cache(self.cache, self.speech).save(folder / FEATURES_FILE)


class BaseSolver(_GeneratorSolver):
    """Stage 1: the base motion generator."""

    stage = "base"

    def model_config(self) -> BaseGeneratorConfig:
        return self.config.base_config(self.tokenizer.code_spec, speech_dim=self.dims["speech"],
                                       beat_dim=self.dims["beat"])

    def identity(self) -> dict[str, Any]:
        """The run's settings: the config without the solver and the sparse stage's sections
        (in the layout with the model configs embedded: the checkpoint of a run made with the
        earlier flat layout is refused as another run's, so such a run retrains once)."""
        c = to_dict(self.config)
        for key in ("solver", "sparse", "sparse_model"):
            c.pop(key)
        return {"config": c, "cache": self.cache.fingerprint,
                "tokenizer": self._tokenizer_identity(),
                "train_segments": [[s.clip_id, s.start, s.stop] for s in self._train]}

    def build_model(self) -> nn.Module:
        # the frozen tokenizer only encodes targets: it runs prepared for inference
        prepare_for_inference(self.tokenizer.to(self.device))  # in place
        return BaseMotionGenerator(self.model_config())

    def _rhythm(self, out: GeneratorOutput, batch: dict[str, torch.Tensor]
                ) -> dict[str, torch.Tensor]:
        c = self.config
        terms: dict[str, Any] = {"local": 0.0, "global": 0.0}  # tensors once a pair is added
        # overlapping windows of one clip share frames: no negatives of each other
        same_source = overlapping_windows(batch["clip"], batch["start"],
                                          batch["motion"].shape[1])
        for motion, audio in out.rhythm.values():
            loss = rhythmic_consistency_loss(motion, audio, c.temperature, c.rhythm_local,
                                             c.rhythm_global, same_source)
            terms["local"] = terms["local"] + loss["local"]
            terms["global"] = terms["global"] + loss["global"]
        return terms

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                      step: int) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.config.losses
        codes, vectors = self._targets(batch)
        total = torch.zeros((), device=self.device)
        values: dict[str, float] = {}
        for name, mask, use_word in self._masks(batch, step):
            out = model(batch_inputs(batch, mask), use_word=use_word)
            cls, lat = self._code_losses(out, codes, vectors, None)
            total = total + w.classification * cls + w.latent * lat
            values[f"cls_{name}"], values[f"lat_{name}"] = cls.item(), lat.item()
            if name == "seed":
                values["code_acc"] = self._code_accuracy(out, codes)
                if self.config.base.use_rhythmic_projection:  # RC: the heads and the loss
                    rhythm = self._rhythm(out, batch)
                    total = total + w.rhythm * (rhythm["local"] + rhythm["global"])
                    values.update(rhythm_local=float(rhythm["local"].detach()),
                                  rhythm_global=float(rhythm["global"].detach()))
        return total, values

    def validation_metrics(self, model: nn.Module,
                           batch: dict[str, torch.Tensor]) -> dict[str, float]:
        codes, vectors = self._targets(batch)
        mask = self.config.masking.seed_mask(batch["motion"].shape, self.device)
        out = model(batch_inputs(batch, mask))
        cls, lat = self._code_losses(out, codes, vectors, None)
        w = self.config.losses
        rhythm = self._rhythm(out, batch)
        return {"loss": (w.classification * cls + w.latent * lat).item(), "cls": cls.item(),
                "lat": lat.item(), "code_acc": self._code_accuracy(out, codes),
                "rhythm_local": float(rhythm["local"]),
                "rhythm_global": float(rhythm["global"])}

    def save_release(self, model: nn.Module, folder: Path) -> None:
        model.save_pretrained(folder)  # type: ignore[operator]
        self._release_extras(folder)
        write_checksums(folder)


class SparseSolver(_GeneratorSolver):
    """Stage 2: the sparse motion generator with the sem-gate, on a frozen base model.

    The release is the validation step with the best balanced accuracy of ψ against the
    semantic labels (ties: the better first-layer code accuracy); with a random or no gate, the
    lowest validation loss. (A loss-selected model favours a low ψ: most tokens are not
    semantic.)
    """

    stage = "sparse"
    selection_metric = "selection"

    def __init__(self, config: GeneratorTrainConfig, data: str | Path, tokenizer: str | Path,
                 base: str | Path, out: str | Path,
                 segments: tuple[list[Segment], list[Segment]] | None = None) -> None:
        if config.sparse.batch_size is not None:
            config = replace(config, solver=replace(config.solver,
                                                    batch_size=config.sparse.batch_size))
            self.batch_size_key = "sparse.batch_size"
        super().__init__(config, data, tokenizer, out, segments)
        options = config.sparse
        if options.loss_weighting not in LOSS_WEIGHTINGS:
            raise DataError(Path(out), f"sparse.loss_weighting must be one of "
                                       f"{LOSS_WEIGHTINGS}, got {options.loss_weighting!r}")
        self.base_path = Path(base)
        self.base = BaseMotionGenerator.from_pretrained(base)
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)
        self._check_compatible()

    def _check_compatible(self) -> None:
        base_features = self.base_path / FEATURES_FILE
        check_compatible(self.base_path, "the base model, the tokenizer and this sparse stage",
                         codes=self.tokenizer.code_spec, base=self.base.config,
                         sparse=self.model_config(),
                         base_features=FeatureSpec.load(base_features)
                         if base_features.is_file() else None,
                         features=FeatureSpec.from_cache(self.cache, self.speech))

    def model_config(self) -> SparseGeneratorConfig:
        return self.config.sparse_config(
            self.tokenizer.code_spec, speech_dim=self.dims["speech"],
            vocab_size=len(self.cache.vocab), sentence_dim=self.dims["sentence"],
            emotion_dim=self.dims["emotion"])

    def identity(self) -> dict[str, Any]:
        """The run's settings (the config's layout as :meth:`BaseSolver.identity`)."""
        c = to_dict(self.config)
        c.pop("solver")
        return {"config": c, "cache": self.cache.fingerprint,
                "tokenizer": self._tokenizer_identity(),
                "base": to_dict(self.base.config),
                "base_weights": _weights_digest(self.base),
                "train_segments": [[s.clip_id, s.start, s.stop] for s in self._train],
                "word_vectors": self._word_vectors_record()}

    def _word_vectors_record(self) -> dict[str, Any] | None:
        """The word-vector file's identity (name and sha256), or None without one."""
        path = self.config.sparse.word_vectors
        if path is None:
            return None
        require_file(path, "word-vector file")
        return {"file": Path(path).name, "sha256": file_sha256(path)}

    def build_model(self) -> nn.Module:
        # The frozen stages move to the training device once, here, not on every step, and run
        # prepared for inference (they only encode: targets, and the base features to blend).
        prepare_for_inference(self.tokenizer.to(self.device))  # in place
        prepare_for_inference(self.base.to(self.device))  # in place
        model = SparseMotionGenerator(self.model_config())
        path = self.config.sparse.word_vectors
        if path is not None:
            vectors, covered = read_word_vectors(path, self.cache.vocab,
                                                 seed=self.solver_config.seed)
            if vectors.shape[1] != model.config.word_dim:
                raise DataError(Path(path), f"word vectors have {vectors.shape[1]} dimensions "
                                            f"but sparse_model.word_dim is "
                                            f"{model.config.word_dim}; set "
                                            f"sparse_model.word_dim={vectors.shape[1]}")
            model.init_word_embedding(torch.from_numpy(vectors))
            self._vectors_covered = covered
        return model

    def _forward(self, model: nn.Module, batch: dict[str, torch.Tensor], mask: torch.Tensor,
                 use_word: bool, shared: _SharedEncoding | None = None) -> GeneratorOutput:
        """One pass. ``shared``: what the step's passes have in common (see
        :meth:`_shared`); None computes it for this pass alone."""
        inputs = batch_inputs(batch, mask)
        if shared is None:
            shared = self._shared(model, inputs)
        with torch.no_grad():  # the frozen base's features only: its code heads are not needed
            base_features = self.base.encode(inputs, use_word=use_word,
                                             audio=shared.base_audio).features
        return cast(SparseMotionGenerator, model).predict(
            inputs, shared.score, base_features=base_features, use_word=use_word)

    def _shared(self, model: nn.Module, inputs: GeneratorInputs) -> _SharedEncoding:
        """The parts of a pass that do not read the masked motion: the frozen base's audio
        latents and the sparse model's score (ψ, f_t, gate logits, from words, sentence,
        emotion and speech). A step's three passes differ only in the mask and ``use_word``,
        so they share these, computed once: the same values and gradients as computing them
        per pass (with dropout, one draw instead of three), at about 10 % less time per step.
        """
        with torch.no_grad():
            base_audio = self.base.encode_audio(inputs)
        return _SharedEncoding(cast(SparseMotionGenerator, model).score(inputs), base_audio)

    def _labels(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token scores ŝ ``[B, N]`` and which batch rows have labels ``[B]``."""
        return token_semantic(batch["semantic"], FRAMES_PER_TOKEN), batch["has_semantic"]

    def _pass_loss(self, out: GeneratorOutput, codes: dict[BodyPart, torch.Tensor],
                   vectors: dict[BodyPart, torch.Tensor], score: torch.Tensor,
                   labelled: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
        """One pass's code losses (weighted), its L_cls^G (None when not supervised or no
        labels) and the logged values."""
        options, w = self.config.sparse, self.config.losses
        weights = {"psi": out.psi.detach() if out.psi is not None else None,
                   "label": score, "none": None}[options.loss_weighting]
        cls, lat = self._code_losses(out, codes, vectors, weights)
        total = w.classification * cls + w.latent * lat
        values = {"cls": cls.item(), "lat": lat.item()}
        gate = None
        if out.gate_logits is not None and bool(labelled.any()):
            gate = gate_classification_loss(out.gate_logits[labelled],
                                            (score[labelled] > 0).long(),
                                            options.gate_class_weights)
            values["gate"] = gate.item()
        return total, gate if options.gate_supervision else None, values

    def _drop_words(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch`` with each spoken word id replaced by UNK with ``word_dropout``."""
        rate = self.config.sparse.word_dropout
        if rate <= 0:
            return batch
        vocab = self.cache.vocab
        ids = batch["word_ids"]
        spoken = (ids != PAD) & (ids != vocab.sil_id) & (ids != vocab.unk_id)
        dropped = spoken & (torch.rand(ids.shape, device=ids.device) < rate)
        return {**batch, "word_ids": torch.where(dropped, torch.full_like(ids, vocab.unk_id),
                                                 ids)}

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                      step: int) -> tuple[torch.Tensor, dict[str, float]]:
        codes, vectors = self._targets(batch)
        body = {p: codes[p] for p in SparseMotionGenerator.parts}
        body_vectors = {p: vectors[p] for p in SparseMotionGenerator.parts}
        score, labelled = self._labels(batch)
        batch = self._drop_words(batch)
        total = torch.zeros((), device=self.device)
        gates: list[torch.Tensor] = []
        values: dict[str, float] = {}
        passes = self._masks(batch, step)
        shared = self._shared(model, batch_inputs(batch, passes[0][1]))
        for name, mask, use_word in passes:
            out = self._forward(model, batch, mask, use_word, shared)
            loss, gate, terms = self._pass_loss(out, body, body_vectors, score, labelled)
            total = total + loss
            if gate is not None:
                gates.append(gate)
            values.update({f"{k}_{name}": v for k, v in terms.items()})
            if name == "seed" and out.psi is not None:
                values["psi_mean"] = out.psi.mean().item()
        if gates:  # L_cls^G once per step: the mean over the passes
            total = total + self.config.losses.gate * torch.stack(gates).mean()
        return total, values

    def validation_metrics(self, model: nn.Module,
                           batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        codes, vectors = self._targets(batch)
        body = {p: codes[p] for p in SparseMotionGenerator.parts}
        body_vectors = {p: vectors[p] for p in SparseMotionGenerator.parts}
        score, labelled = self._labels(batch)
        mask = self.config.masking.seed_mask(batch["motion"].shape, self.device)
        out = self._forward(model, batch, mask, True)
        loss, gate, values = self._pass_loss(out, body, body_vectors, score, labelled)
        if gate is not None:
            loss = loss + self.config.losses.gate * gate
        metrics: dict[str, Any] = {"loss": loss.item(), **values,
                                   "code_acc": self._code_accuracy(out, body)}
        if out.psi is not None:
            metrics["psi"] = out.psi[labelled].flatten()
            metrics["label"] = score[labelled].flatten()
        return metrics

    def summarize_validation(self, means: dict[str, float],
                             arrays: dict[str, torch.Tensor]) -> dict[str, float]:
        means["selection"] = means["loss"]
        if "psi" in arrays and arrays["psi"].numel():
            scores = semantic_accuracy(arrays["psi"], arrays["label"])
            means.update(sem_accuracy=scores.accuracy,
                         sem_balanced_accuracy=scores.balanced_accuracy,
                         sem_precision=scores.precision, sem_recall=scores.recall)
            if self.config.sparse_model.gate == "learned":
                # the best ψ first (balanced accuracy), ties broken by the codes
                means["selection"] = ((1.0 - scores.balanced_accuracy)
                                      + 1e-3 * (1.0 - means.get("code_acc", 0.0)))
        return means

    def save_release(self, model: nn.Module, folder: Path) -> None:
        model.save_pretrained(folder)  # type: ignore[operator]
        self._release_extras(folder)
        shutil.copyfile(self.cache.path / CACHE_VOCAB, folder / VOCAB_FILE)
        record = self._word_vectors_record()
        if record is not None:
            record.update(dim=self.config.sparse_model.word_dim, vocabulary=len(self.cache.vocab),
                          covered=getattr(self, "_vectors_covered", None))
            write_text_atomic(folder / WORD_VECTORS_FILE, json.dumps(record, indent=1) + "\n")
        write_checksums(folder)


def _weights_digest(model: nn.Module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def train_base(config: GeneratorTrainConfig, data: str | Path, out: str | Path,
               tokenizer: str | Path | None = None, *, progress: bool = True) -> Path:
    """Train (or resume) the base generator; returns ``OUT/base`` (the release).

    ``tokenizer`` defaults to ``OUT/tokenizer`` (where ``semtalk train tokenizer`` puts it).
    """
    out = Path(out)
    solver = BaseSolver(config, data, tokenizer or out / TOKENIZER, out / "base_run")
    return install_release(solver.fit(progress=progress), out / BASE)


def train_sparse(config: GeneratorTrainConfig, data: str | Path, out: str | Path,
                 tokenizer: str | Path | None = None, base: str | Path | None = None, *,
                 progress: bool = True) -> Path:
    """Train (or resume) the sparse generator on the frozen base; returns ``OUT/sparse``."""
    out = Path(out)
    solver = SparseSolver(config, data, tokenizer or out / TOKENIZER, base or out / BASE,
                          out / "sparse_run")
    return install_release(solver.fit(progress=progress), out / SPARSE)
