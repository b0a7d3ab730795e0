"""Stick-figure preview videos: frame count, size, audio, what is drawn, failure handling."""

from __future__ import annotations

import stat
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from semtalk.body.parts import NUM_JOINTS, BodyPart
from semtalk.body.skeleton import BuiltinSkeleton
from semtalk.render import FFmpegError, count_frames, render_video, video_info
from semtalk.render.stick import bone_parts

T = 30
SIZE = (256, 144)
LEFT_SHOULDER = 16
EMPHASIS_RGB = np.array([0xD1, 0x49, 0x5B])


def raised_left_arm(num_frames: int = T) -> np.ndarray:
    """``[T, 55, 3]`` joints: the left arm swings from hanging down to horizontal."""
    poses = torch.zeros(num_frames, NUM_JOINTS, 3, dtype=torch.float64)
    poses[:, LEFT_SHOULDER, 2] = torch.linspace(-1.3, 0.0, num_frames, dtype=torch.float64)
    poses[:, LEFT_SHOULDER + 1, 2] = 1.3  # right arm hangs still
    return BuiltinSkeleton().joints(poses.reshape(num_frames, -1)).numpy()


def decode(path: Path) -> np.ndarray:
    """``[T, H, W, 3]`` uint8 frames of a video."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def ink(frame: np.ndarray) -> np.ndarray:
    """Pixels clearly darker or more colourful than the light background."""
    return (frame.astype(int) < 200).any(axis=-1)


def test_every_bone_has_a_part_and_hands_are_fingers():
    bones = bone_parts()
    assert len(bones) == NUM_JOINTS - 1
    assert {child for _, child, _ in bones} == set(range(1, NUM_JOINTS))
    assert all(part is BodyPart.HANDS for _, child, part in bones if child >= 25)
    assert {part for *_, part in bones} == set(BodyPart)


def test_video_has_exactly_t_frames_at_fps_and_size(tmp_path):
    calls = []
    out = render_video(raised_left_arm(), tmp_path / "clip.mp4", size=SIZE,
                       progress=lambda done, total: calls.append((done, total)))
    info = video_info(out)
    assert (info.width, info.height, info.fps) == (*SIZE, 30.0)
    assert info.video_codec == "h264" and info.audio_codec is None
    assert count_frames(out) == T
    assert calls == [(t + 1, T) for t in range(T)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_audio_is_muxed_and_short_audio_keeps_every_frame(tmp_path):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(8_000)).astype(np.float32)  # 0.5 s for a 1 s clip
    out = render_video(raised_left_arm(), tmp_path / "talk.mp4", size=SIZE, audio=audio)
    info = video_info(out)
    assert info.audio_codec == "aac"
    assert info.duration_s == pytest.approx(T / 30, abs=0.05)
    assert count_frames(out) == T


def test_mux_with_the_video_duration_keeps_every_frame_and_cuts_longer_audio(tmp_path):
    from semtalk.data.audio import write_wav
    from semtalk.render.ffmpeg import mux_audio

    video = render_video(raised_left_arm(), tmp_path / "silent.mp4", size=SIZE)  # T frames
    wav = write_wav(tmp_path / "long.wav", np.zeros(3 * 16_000, np.float32), 16_000)  # 3 s
    out = mux_audio(video, wav, tmp_path / "talk.mp4", duration=T / 30)
    info = video_info(out)
    assert info.audio_codec == "aac"
    assert count_frames(out) == T
    assert info.duration_s == pytest.approx(T / 30, abs=0.05)  # not the audio's 3 s


def test_moving_arm_changes_pixels_on_its_side_only(tmp_path):
    out = render_video(raised_left_arm(), tmp_path / "arm.mp4", size=SIZE)
    frames = decode(out)
    assert frames.shape == (T, SIZE[1], SIZE[0], 3)
    body_rows = slice(int(0.1 * SIZE[1]), SIZE[1])  # skip the clock at the top
    first, last = frames[0, body_rows], frames[-1, body_rows]
    assert 0.005 < ink(first).mean() < 0.5  # a figure, not a blank or flooded frame
    changed = (np.abs(first.astype(int) - last.astype(int)) > 60).any(axis=-1)
    assert changed.sum() > 50
    # the body's midline: the mean column of the static trunk and legs in the first frame
    midline = np.nonzero(ink(first))[1].mean()
    cols = np.nonzero(changed)[1]
    # the subject's left arm appears on the viewer's right in the front view
    assert (cols > midline).mean() > 0.97


def test_psi_bar_and_current_word(tmp_path):
    psi = np.where(np.arange(T) < T // 2, 0.1, 0.9)
    out = render_video(raised_left_arm(), tmp_path / "psi.mp4", size=SIZE, psi=psi,
                       words=[("hello", 0.0, 0.4)], title="test")
    frames = decode(out).astype(int)
    width, height = SIZE
    bar = (slice(int(0.90 * height), int(0.94 * height)), slice(int(0.88 * width),
                                                                int(0.89 * width)))
    low, high = frames[0][bar].reshape(-1, 3).mean(0), frames[-1][bar].reshape(-1, 3).mean(0)
    assert np.abs(high - EMPHASIS_RGB).max() < 30  # highlighted bar above the threshold
    assert low.min() > 200  # empty bar (white) at psi = 0.1
    word = (slice(int(0.77 * height), int(0.86 * height)), slice(int(0.3 * width),
                                                                  int(0.7 * width)))
    assert ink(frames[0][word].astype(np.uint8)).sum() > 20  # "hello" while spoken
    assert ink(frames[-1][word].astype(np.uint8)).sum() == 0  # nothing after the word


def fake_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put a shell script with ``body`` in place of the bundled ffmpeg."""
    script = tmp_path / "bin" / "ffmpeg"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr("semtalk.render.ffmpeg.ffmpeg_exe", lambda: str(script))


@pytest.mark.parametrize(("body", "audio"), [
    ("echo 'simulated encoder failure' >&2; exit 3", None),
    # encoding works, muxing the audio fails
    (f"case \"$*\" in *-c:a*) echo 'simulated mux failure' >&2; exit 1;; esac\n"
     f"exec {imageio_ffmpeg.get_ffmpeg_exe()} \"$@\"", np.zeros(16_000, np.float32)),
], ids=["encode", "mux"])
def test_ffmpeg_failure_reports_stderr_and_leaves_no_file(tmp_path, monkeypatch, body, audio):
    fake_ffmpeg(tmp_path, monkeypatch, body)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.mp4").write_bytes(b"old video")
    with pytest.raises(FFmpegError, match=r"simulated (encoder|mux) failure"):
        render_video(raised_left_arm(), out_dir / "keep.mp4", size=SIZE, audio=audio)
    assert [p.name for p in out_dir.iterdir()] == ["keep.mp4"]
    assert (out_dir / "keep.mp4").read_bytes() == b"old video"


def test_error_while_rendering_leaves_no_file(tmp_path):
    def stop(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_video(raised_left_arm(), tmp_path / "x.mp4", size=SIZE, progress=stop,
                     audio=np.zeros(16_000, np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"size": (255, 144)}, "even"),
    ({"psi": np.zeros(T + 1)}, "psi must be"),
    ({"audio": np.zeros((2, 100))}, "mono"),
    ({"fps": 0}, "fps"),
    ({"words": [("late", 1.0, 0.5)]}, "before it starts"),
])
def test_bad_arguments_fail_before_writing(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_video(raised_left_arm(), tmp_path / "bad.mp4", **{"size": SIZE, **kwargs})
    with pytest.raises(ValueError, match="joints must be"):
        render_video(np.zeros((T, 24, 3)), tmp_path / "bad.mp4", size=SIZE)
    with pytest.raises(ValueError, match=r"\.mp4"):
        render_video(raised_left_arm(), tmp_path / "bad.avi", size=SIZE)
    assert list(tmp_path.iterdir()) == []
