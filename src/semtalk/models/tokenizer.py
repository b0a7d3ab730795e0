"""The motion tokenizer: one RVQ-VAE per body part, between BEAT2 motion and codes.

``tokenize(motion)`` turns a :class:`~semtalk.body.motion.Motion` into ``{part: [N, Q]}`` codes
(``N = ceil(T / 4)`` tokens; a sequence whose length is not a multiple of 4 is padded by
repeating its last frame); ``detokenize(codes)`` decodes them back into a BEAT2 motion
(poses 165, expressions 100, translation 3), integrating the lower body's root velocity from a
start position. The release is a folder with one RVQ-VAE release per part::

    TOKENIZER/face/{config.json, model.safetensors}
    TOKENIZER/upper/...   TOKENIZER/hands/...   TOKENIZER/lower/...

:meth:`MotionTokenizer.from_pretrained` loads each strictly and checks that the parts agree on
the code layout (number of quantizers, codebook size, code dimension, downsampling), which the
generators depend on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semtalk.body.motion import Motion
from semtalk.body.parts import BodyPart
from semtalk.body.representation import motion_to_tokenizer_parts, tokenizer_parts_to_motion
from semtalk.body.skeleton import BodyModel, BuiltinSkeleton, foot_contacts
from semtalk.errors import DataError
from semtalk.models.generator_common import CodeSpec
from semtalk.models.rvqvae import RVQVAE, RVQVAEConfig


class MotionTokenizer(nn.Module):
    """The four part tokenizers together (any subset for training, all four to detokenize)."""

    def __init__(self, parts: Mapping[BodyPart, RVQVAE]) -> None:
        super().__init__()
        if not parts:
            raise ValueError("MotionTokenizer needs at least one part")
        for part, model in parts.items():
            if model.config.input_dim != part.dim:
                raise ValueError(f"the {part.value} tokenizer takes {model.config.input_dim} "
                                 f"channels, the part has {part.dim}")
        layouts = {part: CodeSpec.from_rvqvae(model.config) for part, model in parts.items()}
        if len(set(layouts.values())) > 1:
            listing = "; ".join(f"{p.value}: {v}" for p, v in layouts.items())
            raise ValueError(f"the part tokenizers disagree on the code layout ({listing})")
        self.code_spec = next(iter(layouts.values()))
        self.models = nn.ModuleDict({part.value: parts[part] for part in BodyPart
                                     if part in parts})

    @property
    def parts(self) -> list[BodyPart]:
        return [BodyPart(name) for name in self.models]

    def __getitem__(self, part: BodyPart) -> RVQVAE:
        return self.models[part.value]  # type: ignore[return-value]

    @classmethod
    def from_configs(cls, configs: Mapping[BodyPart, RVQVAEConfig]) -> MotionTokenizer:
        """Randomly initialised part models from their configs."""
        return cls({part: RVQVAE(config) for part, config in configs.items()})

    @classmethod
    def from_config(cls, config: RVQVAEConfig,
                    parts: Iterable[BodyPart] = tuple(BodyPart)) -> MotionTokenizer:
        """Randomly initialised part models sharing one architecture (its ``input_dim`` is
        set per part), e.g. a preset: ``from_config(load_preset("tokenizer", "tiny"))``."""
        return cls.from_configs({part: config.for_part(part) for part in parts})

    # ----------------------------------------------------------------- release format
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write one ``config.json`` + ``model.safetensors`` folder per part into ``folder``."""
        folder = Path(folder)
        for part in self.parts:
            self[part].save_pretrained(folder / part.value)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: torch.device | str = "cpu",
                        parts: Iterable[BodyPart] = tuple(BodyPart)) -> MotionTokenizer:
        """Load the part releases in ``folder`` strictly (all four by default)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(folder, "not found: a tokenizer release is a folder with face/, "
                                    "upper/, hands/ and lower/ subfolders")
        wanted = list(parts)
        missing = [p.value for p in wanted if not (folder / p.value).is_dir()]
        if missing:
            raise DataError(folder, f"tokenizer release lacks the part folder(s) {missing}; "
                                    f"train them with `semtalk train tokenizer --part ...`")
        models = {part: RVQVAE.from_pretrained(folder / part.value, device) for part in wanted}
        try:
            return cls(models).eval()
        except ValueError as exc:
            raise DataError(folder, str(exc)) from exc

    # ----------------------------------------------------------------- features <-> codes
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode_parts(
        self, features: Mapping[BodyPart, torch.Tensor]
    ) -> dict[BodyPart, torch.Tensor]:
        """``{part: [B, T, dim]}`` (T a multiple of 4) -> ``{part: [B, T/4, Q]}`` codes."""
        return {part: self[part].encode(x.to(self._device())) for part, x in features.items()}

    @torch.no_grad()
    def decode_parts(
        self, codes: Mapping[BodyPart, torch.Tensor]
    ) -> dict[BodyPart, torch.Tensor]:
        """``{part: [B, N, Q]}`` codes -> ``{part: [B, 4N, dim]}`` features."""
        return {part: self[part].decode(c.to(self._device())) for part, c in codes.items()}

    # ----------------------------------------------------------------- motion <-> codes
    @torch.no_grad()
    def tokenize(self, motion: Motion, contacts: np.ndarray | None = None,
                 body_model: BodyModel | None = None) -> dict[BodyPart, torch.Tensor]:
        """Codes ``{part: [N, Q]}`` of every part this tokenizer has.

        Args:
            motion: the sequence (any length >= 1).
            contacts: ``[T, 4]`` foot contacts; computed from the motion with ``body_model``
                (the built-in skeleton by default) when omitted.
        """
        if motion.num_frames == 0:
            raise ValueError("cannot tokenize an empty motion")
        poses = torch.from_numpy(motion.poses)
        trans = torch.from_numpy(motion.trans)
        if contacts is None:
            model = BuiltinSkeleton() if body_model is None else body_model
            contacts_t = foot_contacts(model.joints(poses, trans))
        else:
            contacts_t = torch.as_tensor(contacts, dtype=torch.float32)
        features = motion_to_tokenizer_parts(poses, torch.from_numpy(motion.expressions),
                                             trans, contacts_t)
        total = math.ceil(motion.num_frames / self.code_spec.downsample) * self.code_spec.downsample
        padded = {part: _pad_to(features[part], total).unsqueeze(0) for part in self.parts}
        return {part: codes[0] for part, codes in self.encode_parts(padded).items()}

    @torch.no_grad()
    def detokenize(self, codes: Mapping[BodyPart, torch.Tensor], num_frames: int | None = None,
                   start_xz: torch.Tensor | np.ndarray | None = None,
                   eye_pose: np.ndarray | None = None,
                   betas: np.ndarray | None = None) -> Motion:
        """Decode ``{part: [N, Q]}`` codes of all four parts into a BEAT2 motion.

        Args:
            num_frames: frames to keep (default ``4N``).
            start_xz: horizontal root position of the first frame (default the origin).
            eye_pose: ``[6]`` or ``[T, 6]`` eye axis-angle (eyes are not generated; default rest).
            betas: shape coefficients written into the motion.
        """
        missing = [p.value for p in BodyPart if p not in codes]
        if missing:
            raise ValueError(f"detokenize needs codes of all four parts; missing {missing}")
        features = {part: x[0].float().cpu()
                    for part, x in self.decode_parts({p: c.unsqueeze(0)
                                                      for p, c in codes.items()}).items()}
        length = next(iter(features.values())).shape[0]
        keep = length if num_frames is None else num_frames
        if not 0 < keep <= length:
            raise ValueError(f"num_frames must be in 1..{length}, got {num_frames}")
        features = {part: x[:keep] for part, x in features.items()}
        start = None if start_xz is None else torch.as_tensor(start_xz, dtype=torch.float32)
        eyes = None if eye_pose is None else torch.as_tensor(eye_pose, dtype=torch.float32)
        poses, expressions, trans = tokenizer_parts_to_motion(features, start, eyes)
        if betas is None:
            return Motion(poses.numpy(), expressions.numpy(), trans.numpy())
        return Motion(poses.numpy(), expressions.numpy(), trans.numpy(), betas=betas)


def _pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """``[T, D]`` -> ``[length, D]`` repeating the last frame."""
    if x.shape[0] >= length:
        return x[:length]
    return torch.cat([x, x[-1:].expand(length - x.shape[0], -1)], dim=0)
