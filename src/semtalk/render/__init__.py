"""Previews: body videos (stick figure or SMPL-X mesh) with words and semantic scores, and
semantic-score plots."""

from __future__ import annotations

from semtalk.render.ffmpeg import FFmpegError, VideoInfo, count_frames, video_info
from semtalk.render.mesh import MeshRenderError, MeshView
from semtalk.render.plots import plot_semantic_score
from semtalk.render.preview import BodyView, render_preview
from semtalk.render.stick import StickView, render_video

__all__ = [
    "BodyView",
    "FFmpegError",
    "MeshRenderError",
    "MeshView",
    "StickView",
    "VideoInfo",
    "count_frames",
    "plot_semantic_score",
    "render_preview",
    "render_video",
    "video_info",
]
