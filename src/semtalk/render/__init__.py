"""Previews: stick-figure videos with words and semantic scores, and semantic-score plots."""

from __future__ import annotations

from semtalk.render.ffmpeg import FFmpegError, VideoInfo, count_frames, video_info
from semtalk.render.plots import plot_semantic_score
from semtalk.render.stick import render_video

__all__ = [
    "FFmpegError",
    "VideoInfo",
    "count_frames",
    "plot_semantic_score",
    "render_video",
    "video_info",
]
