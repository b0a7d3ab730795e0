"""``semtalk serve``: the gradio API through ``gradio_client`` and the page in headless Chromium,
against a real server (a subprocess on a free port) serving the tiny release."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semtalk.cli import main
from semtalk.data.audio import num_frames_for, resample, write_wav

pytest.importorskip("gradio", reason="the app needs gradio: pip install 'semtalk[app]'")
pytest.importorskip("pocketsphinx", reason="word alignment needs pocketsphinx")

SR = 16_000
TEXT = "so i never said that my dream job was easy"
SCREENSHOT_COPY = Path("/tmp/semtalk-app-screenshot.png")
SERVER_START_S = 180.0


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """``speech.wav`` (16 kHz synthetic speech of TEXT, about 3 s) and its motion frames."""
    from semtalk.data.synthetic.tts import Prosody, synthesize

    utterance = synthesize(TEXT.split(), Prosody())
    audio = resample(utterance.audio, utterance.sample_rate, SR)
    path = write_wav(tmp_path_factory.mktemp("speech") / "speech.wav", audio)
    return path, num_frames_for(len(audio), SR, 30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of ``semtalk serve --model TINY_RELEASE`` running in a subprocess."""
    port = _free_port()
    work = tmp_path_factory.mktemp("serve")
    log = (work.parent / "serve.log").open("w")
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH",
                                                                                 "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "semtalk.cli", "serve", "--model", str(tiny_release),
         "--port", str(port), "--work", str(work / "work")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"semtalk serve exited with {process.returncode}:\n"
                            f"{Path(log.name).read_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"semtalk serve did not answer in {SERVER_START_S:.0f} s:\n"
                            f"{Path(log.name).read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _frames(npz: str | Path) -> int:
    with np.load(npz) as data:
        return int(data["poses"].shape[0])


# --- the API -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A ``gradio_client.Client`` of the server (offline, patient on a loaded machine)."""
    gradio_client = pytest.importorskip("gradio_client", reason="pip install gradio_client")
    return gradio_client.Client(server, verbose=False, analytics_enabled=False,
                                httpx_kwargs={"timeout": 120},
                                download_files=str(tmp_path_factory.mktemp("client")))


def test_the_api_generates_motion(client: Any, speech: tuple[Path, int],
                                  tiny_release: Path) -> None:
    from gradio_client import handle_file

    path, frames = speech
    video, plot, view, downloads, summary = client.predict(
        handle_file(str(path)), TEXT, None, "never", "", 1.0, str(tiny_release),
        api_name="/generate")
    files = {Path(f).suffix: Path(f) for f in downloads}
    assert {".npz", ".json", ".bvh", ".png", ".mp4"} <= set(files)
    assert _frames(files[".npz"]) == frames
    assert Path(video["video"] if isinstance(video, dict) else video).suffix == ".mp4"
    assert Path(plot).suffix == ".png"
    assert f"{frames} frames" in summary
    if isinstance(view, dict):  # the 3D view comes as an update (shown or hidden)
        view = view["value"] if view.get("visible", True) else None
    if ".glb" in files:
        assert Path(view).suffix == ".glb"
    else:  # no exporter here: no 3D view, and the page says why
        assert view is None
        assert "no GLB" in summary


def test_the_api_shows_the_clis_error(client: Any, speech: tuple[Path, int],
                                      tmp_path: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    not_a_release = tmp_path / "empty"
    not_a_release.mkdir()
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(speech[0])), "", None, "", "", 1.0,
                                str(not_a_release), api_name="/generate")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["generate", str(speech[0]), "--model", str(not_a_release),
                     "--out", str(tmp_path / "out")])
    assert code == 2
    assert str(caught.value).startswith(f"{not_a_release}: release lacks")
    assert err.getvalue().strip() == f"semtalk generate: error: {caught.value}"


def test_the_api_refuses_two_word_sources(client: Any, speech: tuple[Path, int],
                                          tmp_path: Path, tiny_release: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    grid = tmp_path / "speech.TextGrid"
    grid.write_text("not used")
    with pytest.raises(AppError, match="either a transcript or a TextGrid, not both"):
        client.predict(handle_file(str(speech[0])), TEXT, handle_file(str(grid)), "",
                                "", 1.0, str(tiny_release), api_name="/generate")


def test_concurrent_requests_wait_in_the_queue(client: Any, speech: tuple[Path, int],
                                               tiny_release: Path) -> None:
    from gradio_client import handle_file

    jobs = [client.submit(handle_file(str(speech[0])), "", None, "", "", scale,
                          str(tiny_release), api_name="/generate") for scale in (0.5, 2.0)]
    for job in jobs:
        downloads = job.result(timeout=240)[3]
        npz = next(Path(f) for f in downloads if f.endswith(".npz"))
        assert _frames(npz) == speech[1]


def test_files_outside_the_work_folder_are_not_served(server: str, tiny_release: Path) -> None:
    outside = next(p for p in tiny_release.rglob("*.json"))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{server}gradio_api/file={outside}", timeout=10)
    assert caught.value.code in (403, 404)


def test_launch_keeps_to_the_work_folder(tmp_path: Path) -> None:
    from semtalk.app.page import MAX_FILE_SIZE, AppConfig, launch_options

    options = launch_options(AppConfig((), tmp_path / "work"))
    assert options["allowed_paths"] == [str((tmp_path / "work").resolve())]
    assert options["max_file_size"] == MAX_FILE_SIZE
    assert options["share"] is False


def test_serve_stops_on_a_missing_release(tmp_path: Path) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["serve", "--model", str(tmp_path / "nowhere")])
    assert code == 2
    assert f"semtalk serve: error: {tmp_path / 'nowhere'}: release folder not found" in (
        err.getvalue())


def test_exports_degrade_gracefully(tiny_release: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """GLB/USD come from semtalk.export.export_motion when it is there; a missing exporter or a
    failing format is a note, never an error."""
    import semtalk.export
    from semtalk.app.session import export_files
    from semtalk.body.motion import Motion
    from semtalk.generation.engine import SemTalk

    npz = tmp_path / "silence.npz"
    SemTalk.from_pretrained(tiny_release).generate(np.zeros(SR, dtype=np.float32), SR,
                                                   []).save_npz(npz)
    monkeypatch.delattr(semtalk.export, "export_motion", raising=False)
    notes: list[str] = []
    assert set(export_files(npz, tmp_path, "a", notes)) == {"bvh"}
    assert "no GLB/USD export" in notes[0]

    def fake_export(motion: Motion, path: Path, fmt: str, *, body_model: object = None) -> Path:
        if fmt == "usd":
            raise ImportError("the USD writer needs usd-core")
        Path(path).write_bytes(b"glTF")
        return Path(path)

    monkeypatch.setattr(semtalk.export, "export_motion", fake_export, raising=False)
    notes = []
    files = export_files(npz, tmp_path, "b", notes)
    assert set(files) == {"bvh", "glb"} and files["glb"].read_bytes() == b"glTF"
    assert notes == ["no USD export: the USD writer needs usd-core"]


def test_missing_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from semtalk.app.page import import_gradio

    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(ImportError, match=r"pip install 'semtalk\[app\]'"):
        import_gradio()


# --- the page in a browser -----------------------------------------------------------------------
@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium (Debian's chromium + chromedriver) downloading into tmp_path."""
    pytest.importorskip("selenium", reason="the browser test needs selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("the browser test needs chromium and chromedriver "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--enable-unsafe-swiftshader", "--window-size=1400,2000"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_download(folder: Path, suffix: str, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.suffix == suffix]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {list(folder.iterdir())}")


def test_the_page_in_a_browser(server: str, browser: Any, speech: tuple[Path, int],
                               tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.perf_counter()
    path, frames = speech
    wait = WebDriverWait(browser, 240)
    browser.get(server)
    upload = wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, "#speech input[type=file]")))
    upload.send_keys(str(path))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#speech audio, #speech "
                                                                "[data-testid=waveform-Speech]")))
    browser.find_element(By.CSS_SELECTOR, "#transcript textarea").send_keys(TEXT)
    browser.find_element(By.CSS_SELECTOR, "#emphasize input, #emphasize textarea").send_keys(
        "dream job")
    browser.find_element(By.CSS_SELECTOR, "#generate").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video video[src]"))
    wait.until(lambda d: "frames" in d.find_element(By.CSS_SELECTOR, "#summary").text)
    assert "words (alignment)" in browser.find_element(By.CSS_SELECTOR, "#summary").text
    summary = browser.find_element(By.CSS_SELECTOR, "#summary").text
    if "no GLB/USD export" not in summary and "no GLB export" not in summary:
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#view canvas"))
    links = browser.find_elements(By.CSS_SELECTOR, "#downloads a")
    npz_links = [a for a in links if a.text.strip().endswith(".npz")
                 or (a.get_attribute("href") or "").split("?")[0].endswith(".npz")]
    assert npz_links, [a.text for a in links]
    browser.execute_script("arguments[0].scrollIntoView()", npz_links[0])
    npz_links[0].click()
    assert _frames(_wait_for_download(tmp_path / "downloads", ".npz")) == frames
    screenshot = tmp_path / "semtalk-app.png"
    browser.save_screenshot(str(screenshot))
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
    print(f"\nbrowser test: {time.perf_counter() - started:.1f} s; screenshot {screenshot} "
          f"(copy: {SCREENSHOT_COPY}); page says: {summary}")
