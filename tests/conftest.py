"""Shared fixtures: the real BEAT2 sample clip (when ../shared is present), tmp roots, a tiny
release and a stand-in SMPL-X model file."""

from __future__ import annotations

import os

# Single-threaded BLAS/OpenMP before numpy and torch load (see torch.set_num_threads below).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from a second thread, and on a loaded 2-core machine torch's
# thread pool makes them 10-50x slower; the suite runs single-threaded.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = Path(os.environ.get("SEMTALK_BEAT2_SAMPLE",
                                 REPO.parent / "shared" / "data" / "beat2-sample"))
SAMPLE_ID = "2_scott_0_1_1"


@pytest.fixture(scope="session")
def beat2_sample() -> Path:
    """Folder with the real BEAT2 clip 2_scott_0_1_1 (npz, wav, TextGrid)."""
    if not (SAMPLE_DIR / f"{SAMPLE_ID}.npz").is_file():
        pytest.skip(f"real BEAT2 sample not found at {SAMPLE_DIR} (it lives in ../shared beside "
                    "the repository; set SEMTALK_BEAT2_SAMPLE to point elsewhere)")
    return SAMPLE_DIR


def make_beat2_root(root: Path, sample: Path, split: str = "test") -> Path:
    """A BEAT2-layout root holding the sample clip (symlinks, so nothing is copied)."""
    layout = {"smplxflame_30": ".npz", "wave16k": ".wav", "textgrid": ".TextGrid"}
    for folder, suffix in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{SAMPLE_ID}{suffix}").symlink_to(sample / f"{SAMPLE_ID}{suffix}")
    (root / "train_test_split.csv").write_text(f"id,type\n{SAMPLE_ID},{split}\n")
    return root


@pytest.fixture()
def beat2_root(tmp_path: Path, beat2_sample: Path) -> Path:
    return make_beat2_root(tmp_path / "beat2", beat2_sample)


@pytest.fixture()
def beat2_root_maker():  # type: ignore[no-untyped-def]
    """:func:`make_beat2_root` (a fixture: ``from conftest import`` is ambiguous once several
    test folders have a conftest.py)."""
    return make_beat2_root


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.5-minute synthetic-speaker dataset (train/val/test clips of 15 s)."""
    from semtalk.data.synthetic.dataset import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("synth") / "data"
    generate_dataset(root, SynthConfig(minutes=1.5, clip_seconds=15.0, seed=3), progress=False)
    return root


@pytest.fixture(scope="session")
def synth_cache(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset prepared with the offline extractors (pooled sentence vectors)."""
    from semtalk.features.cache import prepare_cache
    from semtalk.features.registry import ExtractorChoice, build_extractors

    audio, window = build_extractors(ExtractorChoice(sentence_encoder="pooled"))
    out = tmp_path_factory.mktemp("synth_cache") / "cache"
    prepare_cache(synth_root, out, audio_extractors=audio, window_extractors=window,
                  progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_release(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``RELEASE/`` with an untrained tiny tokenizer, base and sparse model (seeded)."""
    from semtalk.models.tokenizer import MotionTokenizer
    from semtalk.release import assemble_release, cache_speakers
    from semtalk.training.generator import BaseSolver, SparseSolver, load_generator_config
    from semtalk.training.presets import load_preset

    torch.manual_seed(0)
    work = tmp_path_factory.mktemp("tiny_release")
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny"))
    tokenizer.save_pretrained(work / "tokenizer")
    config = load_generator_config("tiny")
    base_solver = BaseSolver(config, synth_cache, work / "tokenizer", work / "base_run")
    base_solver.save_release(base_solver.build_model().eval(), work / "base")
    sparse_solver = SparseSolver(config, synth_cache, work / "tokenizer", work / "base",
                                 work / "sparse_run")
    sparse_solver.save_release(sparse_solver.build_model().eval(), work / "sparse")
    return assemble_release(work / "release", tokenizer=work / "tokenizer", base=work / "base",
                            sparse=work / "sparse", speakers=cache_speakers(synth_cache))


@pytest.fixture(scope="session")
def tiny_smplx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in ``smplx/SMPLX_NEUTRAL_2020.npz``: the built-in skeleton dressed in tubes
    (:mod:`semtalk.data.synthetic.body_model`; ~10.7k vertices, ~21k faces), ``beta[0] = 1``
    scaling the body by 10 % and expression 0 pushing the face forward."""
    pytest.importorskip("smplx")
    from semtalk.data.synthetic.body_model import write_synthetic_smplx

    folder = tmp_path_factory.mktemp("smplx") / "smplx"
    folder.mkdir()
    return write_synthetic_smplx(folder / "SMPLX_NEUTRAL_2020.npz", scale_beta0=0.1)


@pytest.fixture(scope="session")
def tiny_smplx_model(tiny_smplx: Path):  # type: ignore[no-untyped-def]
    """:class:`~semtalk.body.skeleton.SMPLXBodyModel` of :func:`tiny_smplx` (loaded once)."""
    from semtalk.body.skeleton import SMPLXBodyModel

    return SMPLXBodyModel(tiny_smplx)
