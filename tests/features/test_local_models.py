"""Model options take local folders: hub ids (and downloads) only with SEMTALK_ALLOW_HUB=1."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from semtalk.config import ConfigError
from semtalk.errors import DataError
from semtalk.features import local_models
from semtalk.features.local_models import MODEL_OPTIONS, check_model_option, hub_allowed


@pytest.fixture
def extras_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend every extra is installed, so only the folder rule is tested."""
    monkeypatch.setattr(local_models.importlib.util, "find_spec", lambda name: object())


@pytest.mark.parametrize("option", sorted(MODEL_OPTIONS))
def test_hub_id_is_refused_without_the_opt_in(option: str, extras_installed: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMTALK_ALLOW_HUB", raising=False)
    assert not hub_allowed()
    with pytest.raises(DataError, match=rf"{option}: no such folder; semtalk downloads "
                                        r"nothing at run time.*SEMTALK_ALLOW_HUB=1") as info:
        check_model_option(option, "facebook/hubert-large-ls960-ft")
    assert info.value.path == Path("facebook/hubert-large-ls960-ft")


def test_local_folder_passes_and_a_file_does_not(tmp_path: Path, extras_installed: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMTALK_ALLOW_HUB", raising=False)
    check_model_option("--hubert", tmp_path)
    check_model_option("--hubert", None)
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="--whisper-model: is not a folder"):
        check_model_option("--whisper-model", tmp_path / "model.bin")


def test_opt_in_allows_hub_ids_but_not_missing_paths(extras_installed: None, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMTALK_ALLOW_HUB", "1")
    check_model_option("--sentence-model", "openai/clip-vit-base-patch32")
    with pytest.raises(DataError, match="no such folder"):
        check_model_option("--sentence-model", str(tmp_path / "a" / "b"))


def test_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "funasr" else real(name, *args)

    monkeypatch.setattr(local_models.importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"pip install 'semtalk\[emotion2vec\]'"):
        check_model_option("--emotion-model", tmp_path)


def test_hubert_never_downloads_without_the_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    from semtalk.features.hubert import ModelUnavailableError, download_snapshot

    monkeypatch.delenv("SEMTALK_ALLOW_HUB", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was tried")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_session", no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(ModelUnavailableError, match="SEMTALK_ALLOW_HUB=1"):
        download_snapshot("facebook/definitely-not-here", 1.0)
