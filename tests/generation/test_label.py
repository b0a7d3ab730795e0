"""``semtalk label``: sem-gate pseudo-labels against known ``sem/`` truth, resume, SHOW roots,
and ``semtalk prepare --labels``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from show_fixtures import write_show_clip

from semtalk.cli import main
from semtalk.data.audio import load_audio, resample
from semtalk.data.beat2 import Beat2Dataset
from semtalk.data.pseudo_labels import (
    LABELS_FILE,
    PseudoLabels,
    beat2_label_key,
    label_path,
)
from semtalk.errors import DataError
from semtalk.features.cache import FeatureCache
from semtalk.generation.engine import SemTalk
from semtalk.generation.label import label_dataset, sparse_sha256
from semtalk.metrics.semantic import semantic_accuracy
from semtalk.models.generator_common import FRAMES_PER_TOKEN, GeneratorInputs

MARGIN = 0.05
"""Label agreement may fall this far below the gate's accuracy on cached features (the labels'
features are recomputed from audio, the cache stores wide features as float16)."""


@pytest.fixture(scope="module")
def engine(tiny_release: Path) -> SemTalk:
    return SemTalk.from_pretrained(tiny_release, fast=False)


@pytest.fixture(scope="module")
def labels(synth_root: Path, tiny_release: Path, engine: SemTalk,
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labels") / "labels"
    label_dataset(synth_root, tiny_release, out, progress=False, model=engine)
    return out


def _token_truth(semantic: np.ndarray) -> np.ndarray:
    tokens = len(semantic) // FRAMES_PER_TOKEN
    return semantic[:tokens * FRAMES_PER_TOKEN].reshape(tokens, -1).mean(1) > 0


def _measured_gate(engine: SemTalk, cache: FeatureCache, clip_id: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """ψ and truth per token of the clip's whole 64-frame windows, from the cached features
    (how training validates the gate)."""
    clip = cache.load(clip_id)
    sparse = engine.release.sparse
    window, hop = engine.window, cache.hop
    starts = list(range(0, clip.num_frames - window + 1, window))
    speech_name = engine.release.features.speech_feature

    def stack(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(array[s:s + window], np.float32)
                                          for s in starts]))

    dim = sparse.config.motion_dim
    batch = GeneratorInputs(
        speech=stack(clip.audio[speech_name]), beat=stack(clip.audio["beat"]),
        motion=torch.zeros(len(starts), window, dim),
        mask=torch.ones(len(starts), window, dim, dtype=torch.bool),
        speaker=torch.full((len(starts),), int(clip.speaker_class)),
        word_ids=torch.from_numpy(np.stack([np.asarray(clip.word_ids[s:s + window], np.int64)
                                            for s in starts])),
        sentence=torch.from_numpy(np.stack([clip.windows["sentence"][s // hop]
                                            for s in starts]).astype(np.float32)),
        emotion=torch.from_numpy(np.stack([clip.windows["emotion"][s // hop]
                                           for s in starts]).astype(np.float32)))
    with torch.inference_mode():
        psi = sparse.score(batch).psi.float().numpy().reshape(-1)
    assert clip.semantic is not None
    truth = _token_truth(np.asarray(clip.semantic)[:len(starts) * window])
    return psi, truth


def test_labels_agree_with_sem_truth_as_well_as_the_gate(
        labels: Path, synth_root: Path, synth_cache: Path, engine: SemTalk) -> None:
    cache = FeatureCache(synth_cache)
    held_out = cache.ids("test") + cache.ids("val")
    assert held_out
    dataset = Beat2Dataset(synth_root, splits=None)
    gate_psi, gate_truth, label_hard, label_truth = [], [], [], []
    for clip_id in held_out:
        info = dataset.info(clip_id)
        psi = np.load(label_path(labels, beat2_label_key(info)))
        audio_frames = len(load_audio(info.path("audio"))) * 30 // 16000
        assert psi.dtype == np.float32 and psi.ndim == 1 and abs(len(psi) - audio_frames) <= 1
        assert psi.min() >= 0.0 and psi.max() <= 1.0
        assert np.ptp(psi) > 1e-4, "labels are constant"
        truth = np.asarray(cache.load(clip_id).semantic)
        psi_g, truth_g = _measured_gate(engine, cache, clip_id)
        tokens = len(truth_g)  # the same tokens as the measurement
        label_hard.append(psi[:tokens * FRAMES_PER_TOKEN:FRAMES_PER_TOKEN])
        label_truth.append(_token_truth(truth[:tokens * FRAMES_PER_TOKEN]))
        gate_psi.append(psi_g)
        gate_truth.append(truth_g)
    truth_all = np.concatenate(label_truth)
    assert 0 < truth_all.mean() < 1  # both classes present: agreement can fail
    agreement = semantic_accuracy(np.concatenate(label_hard), truth_all).accuracy
    accuracy = semantic_accuracy(np.concatenate(gate_psi), np.concatenate(gate_truth)).accuracy
    assert agreement >= accuracy - MARGIN, (agreement, accuracy)


def test_labels_record(labels: Path, tiny_release: Path, synth_root: Path) -> None:
    record = json.loads((labels / LABELS_FILE).read_text())
    assert record["sparse_sha256"] == sparse_sha256(tiny_release)
    assert record["beta"] == 0.5 and record["kind"] == "beat2"
    ids = Beat2Dataset(synth_root, splits=None).ids
    assert len(record["clips"]) == len(ids)
    assert {c["words_source"] for c in record["clips"].values()} == {"textgrid"}


def test_resume_skips_done_clips(labels: Path, tmp_path: Path, synth_root: Path,
                                 tiny_release: Path, engine: SemTalk) -> None:
    import shutil

    out = tmp_path / "labels"
    shutil.copytree(labels, out)
    keys = sorted(json.loads((out / LABELS_FILE).read_text())["clips"])
    before = np.load(label_path(out, keys[0]))
    label_path(out, keys[0]).unlink()
    seen: list[str] = []
    summary = label_dataset(synth_root, tiny_release, out, progress=False, model=engine,
                            on_clip=seen.append)
    assert seen == [keys[0]] and summary.labelled == [keys[0]]
    assert sorted(summary.skipped) == keys[1:]
    np.testing.assert_allclose(np.load(label_path(out, keys[0])), before, atol=1e-6)
    with pytest.raises(DataError, match="another release or beta"):
        label_dataset(synth_root, tiny_release, out, beta=0.7, progress=False, model=engine)


def test_prepare_consumes_labels(labels: Path, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    assert main(["prepare", str(synth_root), "--out", str(out), "--splits", "test",
                 "--sentence", "pooled", "--labels", str(labels), "--labels-mode", "hard"]) == 0
    cache = FeatureCache(out)
    pseudo = PseudoLabels(labels, "hard")
    dataset = Beat2Dataset(synth_root, splits=["test"])
    assert cache.ids()
    for clip_id in cache.ids():
        semantic = np.asarray(cache.load(clip_id).semantic)
        psi = np.load(label_path(labels, beat2_label_key(dataset.info(clip_id))))
        np.testing.assert_array_equal(semantic, (psi[:len(semantic)] > 0.5).astype(np.float32))
    assert cache.manifest["semantic_labels"]["mode"] == "hard"
    soft = PseudoLabels(labels, "soft")
    key = beat2_label_key(dataset.info(cache.ids()[0]))
    assert np.ptp(soft.scores(key, 100)) > 0 and set(np.unique(pseudo.scores(key, 100))) <= {0, 1}


def test_label_cli_on_a_show_root(synth_root: Path, tiny_release: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    clip_id = Beat2Dataset(synth_root, splits=["test"]).ids[0]
    speech = load_audio(synth_root / "wave16k" / f"{clip_id}.wav")[:16000 * 4]
    stereo = np.stack([speech, 0.8 * speech], 1)
    root = tmp_path / "show"
    write_show_clip(root, "seth", "Video-abc.webm", "1-00_00_00-00_00_04", frames=120,
                    audio=resample(stereo, 16000, 22000))
    out = tmp_path / "labels"
    assert main(["label", str(root), "--model", str(tiny_release), "--out", str(out)]) == 0
    assert "1 clip(s) labelled" in capsys.readouterr().out
    psi = np.load(out / "seth" / "Video-abc.webm" / "1-00_00_00-00_00_04.npy")
    assert psi.dtype == np.float32 and psi.shape == (120,)
    record = json.loads((out / LABELS_FILE).read_text())
    assert record["kind"] == "show"
    (entry,) = record["clips"].values()
    assert entry["words_source"] in ("recognition", "none")
    assert main(["label", str(root), "--model", str(tiny_release), "--out", str(out)]) == 0
    assert "0 clip(s) labelled, 1 already done" in capsys.readouterr().out


def test_pseudo_labels_refuse_missing_and_short_labels(labels: Path) -> None:
    pseudo = PseudoLabels(labels, "soft")
    with pytest.raises(DataError, match="no pseudo-label for clip"):
        pseudo.scores("nobody/beat2/0_nobody_0_0_0", 10)
    key = sorted(pseudo.record["clips"])[0]
    frames = len(np.load(label_path(labels, key)))
    assert len(pseudo.scores(key, frames + 2)) == frames + 2  # a frame or two of rounding
    with pytest.raises(DataError, match="other audio"):
        pseudo.scores(key, frames + 30)
    with pytest.raises(ValueError, match="labels mode"):
        PseudoLabels(labels, "fuzzy")
