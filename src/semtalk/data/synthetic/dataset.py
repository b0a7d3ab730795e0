"""Writes a synthetic-speaker dataset in the exact BEAT2 layout.

``generate_dataset(out, SynthConfig(minutes=5, seed=0))`` fills ``out`` with
``smplxflame_30/``, ``wave16k/``, ``textgrid/``, ``sem/``, ``emo/`` and
``train_test_split.csv``, so :class:`semtalk.data.beat2.Beat2Dataset` reads it like BEAT2.
It also writes ``synthetic_speaker.json``: the config, and per clip the emotion, prosody and
beat-stroke times (ground truth for tests and analysis).

Every clip depends only on ``(seed, clip index)``, so output is deterministic and clips can be
built in parallel. Files are written atomically and a rerun with the same config skips the clips
that are complete, so a killed run resumes.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from semtalk.body.motion import Motion
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS, __version__
from semtalk.data.audio import resample, samples_for, write_wav
from semtalk.data.beat2 import MODALITY_LAYOUT, SPLIT_FILE
from semtalk.data.emotion import EMOTIONS, EmotionSegment, first_index_of, write_emotion_csv
from semtalk.data.semantic import write_semantic
from semtalk.data.synthetic.performer import Performer
from semtalk.data.synthetic.script import extend_script, sample_emotion, sample_script
from semtalk.data.synthetic.tts import synthesize
from semtalk.data.textgrid import Interval, Word, write_textgrid
from semtalk.errors import DataError
from semtalk.fileio import write_text_atomic

MANIFEST = "synthetic_speaker.json"
LEAD_SILENCE = (0.4, 0.9)
TAIL_SILENCE = 0.6
NOISE_FLOOR = 10 ** (-60 / 20)
CLIPS_PER_WORKER = 30
"""Clips per extra worker process below which spawning one does not pay off."""


@dataclass(frozen=True)
class SynthConfig:
    """What to generate."""

    minutes: float = 5.0
    seed: int = 0
    clip_seconds: float = 30.0
    speaker_id: int = 2
    speaker_name: str = "synth"
    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.clip_seconds < 5:
            raise ValueError(f"clip_seconds must be at least 5, got {self.clip_seconds}")
        if not self.speaker_name.isalnum():
            raise ValueError(f"speaker_name must be alphanumeric, got {self.speaker_name!r}")

    @property
    def num_clips(self) -> int:
        return max(1, round(self.minutes * 60 / self.clip_seconds))


def assign_splits(num_clips: int, val_fraction: float, test_fraction: float) -> list[str]:
    """Deterministic split per clip index: the last clips are test, those before them val."""
    if num_clips < 3:
        return ["train"] * num_clips
    n_test = max(1, round(num_clips * test_fraction))
    n_val = max(1, round(num_clips * val_fraction))
    n_train = max(1, num_clips - n_test - n_val)
    return (["train"] * n_train + ["val"] * n_val + ["test"] * n_test)[:num_clips]


def clip_id(config: SynthConfig, index: int, emotion: str) -> str:
    """BEAT-style id whose 4th field encodes the emotion (BEAT numbering), the 5th the clip."""
    block = first_index_of(emotion) + (1 if emotion == "neutral" else 0)
    return f"{config.speaker_id}_{config.speaker_name}_0_{block + index % 6}_{index + 1}"


def _clip_plan(config: SynthConfig, index: int) -> tuple[np.random.Generator, str]:
    rng = np.random.default_rng([config.seed, index])
    return rng, sample_emotion(rng)


def _clip_files(root: Path, cid: str) -> list[Path]:
    return [root / folder / f"{cid}{suffix}" for folder, suffix in MODALITY_LAYOUT.values()]


def build_clip(config: SynthConfig, index: int, root: Path) -> dict:
    """Synthesise one clip, write its five files, return its manifest entry."""
    import torch

    torch.set_num_threads(1)
    rng, emotion = _clip_plan(config, index)
    lead = float(rng.uniform(*LEAD_SILENCE))
    target = config.clip_seconds - lead - TAIL_SILENCE
    script = sample_script(rng, target, emotion)
    utterance = synthesize(script.words, script.prosody, pause_after=script.pause_after)
    for _ in range(4):  # the script's length estimate is rough: top up with whole sentences
        if utterance.duration >= target - 1.5:
            break
        script = extend_script(rng, script, target - utterance.duration)
        utterance = synthesize(script.words, script.prosody, pause_after=script.pause_after)
    speech = resample(utterance.audio.astype(np.float32), utterance.sample_rate,
                      AUDIO_SAMPLE_RATE)
    lead_samples = round(lead * AUDIO_SAMPLE_RATE)
    audio = np.concatenate([np.zeros(lead_samples, np.float32), speech,
                            np.zeros(int(TAIL_SILENCE * AUDIO_SAMPLE_RATE), np.float32)])
    audio = (audio + NOISE_FLOOR * rng.standard_normal(audio.shape)).astype(np.float32)
    words = [Word(w.text, w.start + lead, w.end + lead) for w in utterance.words]
    performance = Performer(script, words, audio, rng).perform()
    num_frames = performance.poses.shape[0]
    audio = audio[: samples_for(num_frames)]
    duration = num_frames / MOTION_FPS
    cid = clip_id(config, index, emotion)
    motion_path, audio_path, grid_path, sem_path, emo_path = _clip_files(root, cid)
    phones = [Interval(p.start + lead, p.end + lead, p.text) for p in utterance.phones
              if p.start + lead < duration]
    tiers = {"words": [Interval(w.start, min(w.end, duration), w.text) for w in words
                       if w.start < duration]}
    if phones:
        tiers["phones"] = phones
    write_wav(audio_path, audio)
    write_textgrid(grid_path, tiers, duration)
    write_semantic(sem_path, performance.semantic)
    write_emotion_csv(emo_path, [EmotionSegment(emotion, 0.0, duration)])
    Motion(performance.poses, performance.expressions, performance.trans).save_npz(motion_path)
    return {
        "id": cid, "emotion": emotion, "prosody": asdict(script.prosody),
        "frames": num_frames, "words": len(words), "semantic_gestures": len(performance.semantic),
        "stroke_times": [round(float(s), 4) for s in performance.stroke_times],
    }


def _check_existing(root: Path, config: SynthConfig, overwrite: bool) -> dict:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        if root.exists() and any(root.iterdir()) and not overwrite:
            raise DataError(root, "folder is not empty and holds no synthetic dataset; "
                                  "choose an empty folder or pass --overwrite")
        return {}
    existing = json.loads(manifest_path.read_text())
    if existing.get("config") != asdict(config):
        if not overwrite:
            raise DataError(manifest_path, f"holds a dataset made with {existing.get('config')}; "
                                           f"asked for {asdict(config)}. Use another folder or "
                                           "pass --overwrite")
        return {}
    return {c["id"]: c for c in existing.get("clips", []) if "id" in c}


def generate_dataset(
    out: str | Path, config: SynthConfig, *, workers: int | None = None,
    overwrite: bool = False, progress: bool = True,
) -> dict:
    """Write (or complete) a synthetic dataset in ``out``; returns its manifest.

    Args:
        workers: processes for clip synthesis (default: one per ``CLIPS_PER_WORKER`` clips,
            at most one per CPU core).
        overwrite: replace a dataset made with a different config.
    """
    root = Path(out)
    done = _check_existing(root, config, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    splits = assign_splits(config.num_clips, config.val_fraction, config.test_fraction)
    plans = [(i, clip_id(config, i, _clip_plan(config, i)[1])) for i in range(config.num_clips)]
    todo = [i for i, cid in plans
            if cid not in done or not all(p.is_file() for p in _clip_files(root, cid))]
    entries = {cid: done[cid] for _, cid in plans if cid in done}
    if workers is None:  # a worker process costs ~2 s to start (torch import), a clip ~0.2 s
        workers = min(os.cpu_count() or 1, 1 + len(todo) // CLIPS_PER_WORKER)
    n_workers = max(1, min(workers, len(todo)))
    bar = tqdm(total=config.num_clips, initial=config.num_clips - len(todo), unit="clip",
               desc="synthesising", disable=not progress)
    header = {"semtalk_version": __version__, "config": asdict(config),
              "emotions": list(EMOTIONS)}

    def record(entry: dict) -> None:
        entries[entry["id"]] = entry
        clips = [entries[cid] for _, cid in plans if cid in entries]
        write_text_atomic(root / MANIFEST, json.dumps({**header, "clips": clips}, indent=1))
        bar.update()

    write_text_atomic(root / MANIFEST, json.dumps(
        {**header, "clips": [entries[c] for _, c in plans if c in entries]}, indent=1))
    if n_workers <= 1:
        for i in todo:
            record(build_clip(config, i, root))
    else:
        with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
            for entry in pool.map(build_clip, [config] * len(todo), todo, [root] * len(todo)):
                record(entry)
    bar.close()
    rows = ["id,type"] + [f"{cid},{splits[i]}" for i, cid in plans]
    write_text_atomic(root / SPLIT_FILE, "\n".join(rows) + "\n")
    return json.loads((root / MANIFEST).read_text())
