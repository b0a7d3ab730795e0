"""The bundled ffmpeg binary (imageio-ffmpeg): stream raw frames into H.264, mux audio, probe.

Nothing here holds a whole video in memory: frames go one at a time through a pipe into
ffmpeg's stdin. ffmpeg's stderr goes to a temporary file (a pipe could fill up and block the
encoder) and its tail is quoted in :class:`FFmpegError` when ffmpeg fails. The bundled build has
no ffprobe, so :func:`video_info` parses what ``ffmpeg -i`` prints.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

STDERR_TAIL_CHARS = 2000
"""How much of ffmpeg's stderr an :class:`FFmpegError` quotes."""


class FFmpegError(RuntimeError):
    """ffmpeg failed; the message ends with the tail of its stderr."""


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= STDERR_TAIL_CHARS else "..." + text[-STDERR_TAIL_CHARS:]


def _failure(what: str, returncode: int | None, stderr: str) -> FFmpegError:
    return FFmpegError(f"ffmpeg failed while {what} (exit code {returncode}):\n{_tail(stderr)}")


class H264Writer:
    """Pipes raw ``[H, W, 4]`` RGBA (or ``[H, W, 3]`` RGB) uint8 frames into libx264/yuv420p.

    Use as a context manager: a clean exit closes the pipe and waits for ffmpeg (raising
    :class:`FFmpegError` if it failed); an exception kills ffmpeg. The caller owns ``path`` and
    removes it on failure (see :func:`semtalk.fileio.atomic_path`).
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, *,
                 pix_fmt_in: str = "rgba", crf: int = 20, preset: str = "veryfast") -> None:
        width, height = size
        if width % 2 or height % 2:
            raise ValueError(f"H.264 with yuv420p needs an even frame size, got {width}x{height}")
        self.path = Path(path)
        self.size = (width, height)
        self.frame_bytes = width * height * {"rgba": 4, "rgb24": 3}[pix_fmt_in]
        self.frames_written = 0
        self._command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", pix_fmt_in, "-s", f"{width}x{height}",
            "-framerate", f"{fps:g}", "-i", "pipe:0", "-an",
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-f", "mp4", str(self.path),
        ]
        self._stderr: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> H264Writer:
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(self._command, stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=self._stderr)
        except BaseException:
            self._stderr.close()
            raise
        return self

    def write(self, frame: memoryview | bytes) -> None:
        """Send one frame (``H * W * channels`` bytes, row-major, top row first)."""
        assert self._proc is not None and self._proc.stdin is not None, "use inside 'with'"
        nbytes = memoryview(frame).nbytes
        if nbytes != self.frame_bytes:
            raise ValueError(f"frame has {nbytes} bytes, expected {self.frame_bytes} "
                             f"for size {self.size}")
        try:
            self._proc.stdin.write(frame)
        except BrokenPipeError:
            self._proc.wait()
            raise _failure("encoding video", self._proc.returncode,
                           self._read_stderr()) from None
        self.frames_written += 1

    def _read_stderr(self) -> str:
        assert self._stderr is not None
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            if exc_type is not None:  # abandon the file: the caller removes it
                self._proc.kill()
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
            returncode = self._proc.wait()
            if exc_type is None and returncode != 0:
                raise _failure("encoding video", returncode, self._read_stderr())
        finally:
            assert self._stderr is not None
            self._stderr.close()


def mux_audio(video: str | Path, wav: str | Path, out: str | Path,
              duration: float | None = None) -> Path:
    """Copy ``video``'s H.264 stream and add ``wav`` as AAC into ``out`` (mp4).

    ``duration`` (seconds): the output's length (``-t``); pass the video's own, with audio at
    least that long, to keep every frame (the video is copied, so a shorter ``duration`` cuts
    it at a packet boundary, not an exact frame). None stops at the shorter stream (``-shortest``),
    which may drop the last video frame when both end together (it did, now and then, with
    audio cut to exactly the video's duration).
    """
    length = ["-shortest"] if duration is None else ["-t", f"{duration:.6f}"]
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(video), "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", *length,
        "-movflags", "+faststart", "-f", "mp4", str(out),
    ]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        raise _failure("muxing audio", result.returncode,
                       result.stderr.decode("utf-8", errors="replace"))
    return Path(out)


@dataclass(frozen=True)
class VideoInfo:
    """What ``ffmpeg -i`` reports about a media file."""

    width: int
    height: int
    fps: float
    duration_s: float | None
    video_codec: str
    audio_codec: str | None
    """``None`` when the file has no audio stream."""


_VIDEO_LINE = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d+)x(\d+)[ ,].*?([\d.]+) fps")
_AUDIO_LINE = re.compile(r"Stream #\S+.*?: Audio: (\w+)")
_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")


def video_info(path: str | Path) -> VideoInfo:
    """Size, frame rate, duration and codecs of a video file (parsed from ``ffmpeg -i``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file not found")
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, check=False)
    report = result.stderr.decode("utf-8", errors="replace")
    video = _VIDEO_LINE.search(report)
    if video is None:
        raise FFmpegError(f"{path}: ffmpeg found no video stream:\n{_tail(report)}")
    audio = _AUDIO_LINE.search(report)
    duration = _DURATION.search(report)
    seconds = None
    if duration is not None:
        hours, minutes, secs = duration.groups()
        seconds = 3600 * int(hours) + 60 * int(minutes) + float(secs)
    return VideoInfo(width=int(video.group(2)), height=int(video.group(3)),
                     fps=float(video.group(4)), duration_s=seconds,
                     video_codec=video.group(1), audio_codec=audio.group(1) if audio else None)


def count_frames(path: str | Path) -> int:
    """Number of video frames, counted by decoding the whole file."""
    import imageio_ffmpeg

    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    return int(frames)
