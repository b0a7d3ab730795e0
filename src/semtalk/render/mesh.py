"""SMPL-X mesh preview: the body as a shaded mesh in the preview layout, by pyrender offscreen.

:class:`MeshView` is a :class:`~semtalk.render.preview.BodyView`: the title, clock, current word
and ψ strip of :mod:`semtalk.render.preview` stay as they are; only the body is drawn
differently. It needs the ``render`` extra (``pip install 'semtalk[render]'``: pyrender and the
``smplx`` package) and an OpenGL context without a screen, which pyrender gets through EGL (Mesa's
``libEGL`` with the llvmpipe software rasteriser, CPU only). ``PYOPENGL_PLATFORM`` is set to
``egl`` before OpenGL is imported unless the user has chosen a platform.

How a frame is made, and why (measured at 1280x720 on 2 cores):

- the vertices come from the body model in chunks of frames, once to find the camera's extent
  and again while drawing (kept in memory instead when the clip is short enough);
- one renderer, scene and camera serve the whole clip; per frame the mesh node is replaced by
  one with the new positions and colours (pyrender's public API). Rewriting pyrender's vertex
  buffer in place instead (its private ``Primitive._buffers``, faces uploaded once) measured
  the same, 11-13 ms per frame either way with 21k faces: on llvmpipe the upload is a memory
  copy and the time goes to rasterising;
- shading is per vertex on the CPU (a key, a fill and a back light plus a soft highlight, in
  numpy: about 1.3 ms for 10k vertices) and the GPU pass is pyrender's unlit ``FLAT`` one:
  pyrender's lit (physically based) shader took 44 ms per frame against 13;
- the camera is orthographic and frames only the box the body moves in, at the pixel size
  that box has in the layout, so the mesh image is composited 1:1 into the frame (no
  resampling) and the rasteriser fills a fraction of the frame;
- pyrender returns the background with alpha 0, so the layout's own background (and floor
  line) shows around the body, whatever colour the GL clear left there.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb

from semtalk.body.parts import EYE_JOINTS, HEAD, NUM_JOINTS, PARENTS, BodyPart
from semtalk.render.preview import draw_floor
from semtalk.render.style import BACKGROUND, PART_COLOURS

if TYPE_CHECKING:
    from matplotlib.backend_bases import RendererBase

RENDER_EXTRA = "pip install 'semtalk[render]'"
DEFAULT_GL_PLATFORM = "egl"
CHUNK_FRAMES = 64
"""Frames of vertices computed per body-model call."""
CACHE_BYTES = 256 * 2**20
"""Clips whose vertices fit in this many bytes (about a minute of SMPL-X at 30 fps) keep them
between the extent pass and drawing; longer ones compute each chunk twice."""
MARGIN_M = 0.03
"""Room around the clip's extent inside the rendered box."""
SURFACE_LIGHTEN = 0.18
"""Part colours are mixed this much with white so shading stays readable on dark parts."""
# Lights as (direction towards the light in the camera frame: x right, y up, z to the viewer,
# strength). The key light comes from the upper left of the viewer.
LIGHTS = (((-0.45, 0.55, 0.70), 0.65), ((0.65, 0.10, 0.75), 0.25), ((0.0, 0.6, -0.8), 0.20))
AMBIENT = 0.30
HIGHLIGHT, SHININESS = 0.12, 24.0

VertexFn = Callable[[int, int], np.ndarray]
"""``vertices(start, stop)`` -> ``[stop - start, V, 3]`` positions (metres) of those frames."""


class MeshRenderError(RuntimeError):
    """The mesh preview cannot render here; the message says what failed and what to do."""


class MeshBodyModel(Protocol):
    """A body model with a surface: what :meth:`MeshView.from_motion` needs."""

    @property
    def faces(self) -> np.ndarray: ...

    @property
    def skinning_weights(self) -> np.ndarray: ...

    def vertices(self, poses: Any, trans: Any = None, betas: Any = None,
                 expressions: Any = None) -> Any: ...


def has_mesh(body_model: object) -> bool:
    """Whether ``body_model`` can give a mesh (an SMPL-X model, not the built-in skeleton)."""
    return all(hasattr(body_model, name) for name in ("vertices", "faces", "skinning_weights"))


# --- pyrender and the OpenGL context -------------------------------------------------------------
def import_pyrender() -> Any:
    """``pyrender``, with ``PYOPENGL_PLATFORM`` defaulting to ``egl`` (headless).

    Raises:
        ImportError: pyrender (or PyOpenGL) is missing or cannot load; says what to install.
    """
    os.environ.setdefault("PYOPENGL_PLATFORM", DEFAULT_GL_PLATFORM)
    try:
        import pyrender
    except ImportError as exc:
        reason = " ".join(str(exc).split())
        raise ImportError(f"the mesh preview needs pyrender, which cannot be imported "
                          f"({reason}); install it with: {RENDER_EXTRA}") from exc
    return pyrender


def _platform() -> str:
    return os.environ.get("PYOPENGL_PLATFORM", DEFAULT_GL_PLATFORM)


def open_renderer(width: int, height: int) -> Any:
    """A pyrender ``OffscreenRenderer`` of ``width`` x ``height`` pixels.

    Raises:
        ImportError: pyrender is missing.
        MeshRenderError: no OpenGL context could be created (names the platform and error).
    """
    pyrender = import_pyrender()
    try:
        return pyrender.OffscreenRenderer(width, height)
    except Exception as exc:  # EGL/OSMesa failures surface as many exception types
        reason = " ".join(str(exc).split())  # one line
        raise MeshRenderError(
            f"the mesh preview could not create an OpenGL context through "
            f"PYOPENGL_PLATFORM={_platform()} ({type(exc).__name__}: {reason}); it renders "
            f"headless with EGL, which needs Mesa's libEGL (Debian: libegl1 and "
            f"libgl1-mesa-dri); {RENDER_EXTRA} installs the Python side") from exc


@functools.cache
def mesh_support_error() -> ImportError | MeshRenderError | None:
    """``None`` when the mesh preview can render here, else the error saying what is missing.

    Imports pyrender and opens a 16x16 context once per process (about 0.4 s).
    """
    try:
        open_renderer(16, 16).delete()
    except (ImportError, MeshRenderError) as exc:
        return exc
    return None


# --- colours, normals, shading -------------------------------------------------------------------
def joint_parts() -> list[BodyPart]:
    """The part each joint's surface is coloured as, matching the stick figure's bones.

    A stick bone takes its child joint's part, so a joint's surface (the segment it moves)
    takes its children's part when they agree (wrist -> hands, head -> face) and its own
    otherwise (pelvis -> lower body; finger tips, feet and eyes keep theirs).
    """
    own = {j: part for part in BodyPart for j in part.joints}
    own.update(dict.fromkeys(EYE_JOINTS, BodyPart.FACE))
    out = []
    for joint in range(NUM_JOINTS):
        kids = {own[c] for c in range(NUM_JOINTS) if PARENTS[c] == joint}
        out.append(kids.pop() if len(kids) == 1 else own[joint])
    out[HEAD] = BodyPart.FACE
    return out


def vertex_colours(skinning_weights: np.ndarray) -> np.ndarray:
    """``[V, 3]`` RGB in [0, 1]: each vertex in the colour of its main joint's part."""
    weights = np.asarray(skinning_weights)
    if weights.ndim != 2 or weights.shape[1] != NUM_JOINTS:
        raise ValueError(f"skinning weights must be [V, {NUM_JOINTS}], got {weights.shape}")
    palette = np.array([to_rgb(PART_COLOURS[p]) for p in joint_parts()])
    rgb = palette[weights.argmax(axis=1)]
    return (1 - SURFACE_LIGHTEN) * rgb + SURFACE_LIGHTEN


class Shader:
    """Per-vertex lighting on the CPU: smooth normals and a fixed set of camera-space lights."""

    def __init__(self, faces: np.ndarray, num_vertices: int, albedo: np.ndarray) -> None:
        from scipy.sparse import csr_matrix

        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        f = len(self.faces)
        # [V, F] incidence: vertex normal = sum of its faces' (area-weighted) normals
        self._incidence = csr_matrix(
            (np.ones(3 * f, np.float32), (self.faces.ravel(), np.repeat(np.arange(f), 3))),
            shape=(num_vertices, f))
        dirs = np.array([d for d, _ in LIGHTS], np.float32)
        self._lights = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)  # [L, 3]
        self._strength = np.array([s for _, s in LIGHTS], np.float32)
        half = self._lights[0] + np.array([0.0, 0.0, 1.0], np.float32)
        self._half = half / np.linalg.norm(half)
        self.albedo = np.asarray(albedo, np.float32)

    def normals(self, vertices: np.ndarray) -> np.ndarray:
        """``[V, 3]`` unit vertex normals (outwards for counter-clockwise faces)."""
        a, b, c = (vertices[self.faces[:, k]] for k in range(3))
        face_normals = np.cross(b - a, c - a)
        normals = np.asarray(self._incidence @ face_normals, dtype=np.float32)
        length = np.sqrt(np.einsum("ij,ij->i", normals, normals))
        normals /= np.maximum(length, 1e-12)[:, None]
        return normals

    def colours(self, vertices: np.ndarray) -> np.ndarray:
        """``[V, 3]`` lit RGB in [0, 1] for the surface at ``vertices``."""
        normals = self.normals(vertices)
        light = AMBIENT + np.clip(normals @ self._lights.T, 0, None) @ self._strength
        shine = HIGHLIGHT * np.clip(normals @ self._half, 0, None) ** SHININESS
        return np.clip(self.albedo * light[:, None] + shine[:, None], 0, 1)


# --- the vertices over the clip ------------------------------------------------------------------
class ClipVertices:
    """The clip's vertices by chunk; bounds from one pass; chunks kept when they fit."""

    def __init__(self, vertices: VertexFn, num_frames: int, num_vertices: int,
                 chunk_frames: int = CHUNK_FRAMES, cache_bytes: int = CACHE_BYTES) -> None:
        self._fn = vertices
        self.num_frames = num_frames
        self.num_vertices = num_vertices
        self.chunk = max(1, int(chunk_frames))
        self._keep = num_frames * num_vertices * 3 * 4 <= cache_bytes
        self._chunks: dict[int, np.ndarray] = {}

    def _compute(self, index: int) -> np.ndarray:
        start = index * self.chunk
        stop = min(start + self.chunk, self.num_frames)
        verts = np.asarray(self._fn(start, stop), dtype=np.float32)
        if verts.shape != (stop - start, self.num_vertices, 3):
            raise ValueError(f"vertices({start}, {stop}) must be "
                             f"[{stop - start}, {self.num_vertices}, 3], got {verts.shape}")
        if not np.isfinite(verts).all():
            raise ValueError(f"vertices of frames {start}..{stop - 1} contain NaN or infinite "
                             "values")
        return verts

    def bounds(self, used: np.ndarray | None = None) -> np.ndarray:
        """``[2, 3]`` min and max over the clip of the vertices ``used`` (all when None)."""
        low = np.full(3, np.inf)
        high = np.full(3, -np.inf)
        for index in range(math.ceil(self.num_frames / self.chunk)):
            verts = self._compute(index)
            if self._keep:
                self._chunks[index] = verts
            part = verts if used is None else verts[:, used]
            low = np.minimum(low, part.min(axis=(0, 1)))
            high = np.maximum(high, part.max(axis=(0, 1)))
        return np.stack([low, high])

    def frame(self, t: int) -> np.ndarray:
        """``[V, 3]`` float32 vertices of frame ``t``."""
        index = t // self.chunk
        if index not in self._chunks:
            if not self._keep:
                self._chunks.clear()
            self._chunks[index] = self._compute(index)
        return self._chunks[index][t - index * self.chunk]


# --- drawing into the layout ---------------------------------------------------------------------
class PixelImage(Artist):
    """An RGBA image drawn 1:1 with its lower left corner at display pixel ``(x, y)``."""

    def __init__(self, x: int, y: int, width: int, height: int) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.rgba = np.zeros((height, width, 4), np.uint8)  # top row first

    def draw(self, renderer: RendererBase) -> None:
        if not self.get_visible():
            return
        gc = renderer.new_gc()
        renderer.draw_image(gc, self.x, self.y, self.rgba[::-1])  # Agg wants the bottom row first
        gc.restore()


def pixel_box(ax: Axes, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """``(x0, y0, width, height)``: whole display pixels covering data ``box``, inside ``ax``."""
    xmin, xmax, ymin, ymax = box
    (px0, py0), (px1, py1) = ax.transData.transform([(xmin, ymin), (xmax, ymax)])
    frame = ax.bbox
    x0, y0 = max(math.floor(px0), math.ceil(frame.x0)), max(math.floor(py0), math.ceil(frame.y0))
    x1, y1 = min(math.ceil(px1), math.floor(frame.x1)), min(math.ceil(py1), math.floor(frame.y1))
    return x0, y0, max(x1 - x0, 1), max(y1 - y0, 1)


class MeshView:
    """Front view (x right, y up) of a body mesh, shaded and coloured by body part.

    Args:
        vertices: ``vertices(start, stop)`` -> ``[n, V, 3]`` positions of frames
            ``start..stop-1`` in metres (y up, x towards the body's left, z forwards).
        num_frames: ``T``.
        faces: ``[F, 3]`` triangles, counter-clockwise seen from outside.
        colours: ``[V, 3]`` surface RGB in [0, 1] (see :func:`vertex_colours`).
        chunk_frames, cache_bytes: see :class:`ClipVertices`.
    """

    def __init__(self, vertices: VertexFn, num_frames: int, faces: np.ndarray,
                 colours: np.ndarray, *, chunk_frames: int = CHUNK_FRAMES,
                 cache_bytes: int = CACHE_BYTES) -> None:
        faces = np.asarray(faces, dtype=np.int64)
        colours = np.asarray(colours, dtype=np.float32)
        if num_frames < 1:
            raise ValueError(f"the mesh view needs at least one frame, got {num_frames}")
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise ValueError(f"faces must be [F, 3] with F >= 1, got {faces.shape}")
        if colours.ndim != 2 or colours.shape[1] != 3:
            raise ValueError(f"colours must be [V, 3], got {colours.shape}")
        num_vertices = len(colours)
        if faces.min() < 0 or faces.max() >= num_vertices:
            raise ValueError(f"face indices must lie in [0, {num_vertices}), got "
                             f"[{faces.min()}, {faces.max()}]")
        self.num_frames = int(num_frames)
        self.faces = faces
        self.clip = ClipVertices(vertices, self.num_frames, num_vertices, chunk_frames,
                                 cache_bytes)
        self.shader = Shader(faces, num_vertices, colours)
        used = np.unique(faces)
        self._bounds = self.clip.bounds(None if len(used) == num_vertices else used)
        self._pyrender: Any = None
        self._renderer: Any = None
        self._scene: Any = None
        self._node: Any = None
        self._material: Any = None
        self._image: PixelImage | None = None
        self._flags = 0

    @classmethod
    def from_motion(cls, body: MeshBodyModel, poses: np.ndarray, trans: np.ndarray | None = None,
                    betas: np.ndarray | None = None, expressions: np.ndarray | None = None,
                    **kwargs: Any) -> MeshView:
        """The mesh of a BEAT2 motion through ``body`` (e.g. :class:`~semtalk.body.skeleton.
        SMPLXBodyModel`), honouring ``trans``, ``betas`` and ``expressions``.

        Args:
            poses: ``[T, 165]``; trans: ``[T, 3]``; betas: ``[B]``; expressions: ``[T, 100]``.
        """
        import torch

        poses = np.asarray(poses, dtype=np.float32)
        if poses.ndim != 2 or poses.shape[0] < 1:
            raise ValueError(f"poses must be [T, 165] with T >= 1, got {poses.shape}")
        num_frames = poses.shape[0]
        arrays = {"trans": trans, "expressions": expressions}
        for name, value in arrays.items():
            if value is not None and np.shape(value)[0] != num_frames:
                raise ValueError(f"{name} must have one row per frame ({num_frames}), got "
                                 f"shape {np.shape(value)}")

        def rows(value: np.ndarray | None, start: int, stop: int) -> torch.Tensor | None:
            return None if value is None else torch.as_tensor(
                np.asarray(value[start:stop], dtype=np.float32))

        betas_t = None if betas is None else torch.as_tensor(np.asarray(betas, np.float32))

        def vertices(start: int, stop: int) -> np.ndarray:
            with torch.no_grad():
                out = body.vertices(torch.from_numpy(poses[start:stop]),
                                    rows(trans, start, stop), betas_t,
                                    rows(expressions, start, stop))
            return out.detach().cpu().numpy()

        return cls(vertices, num_frames, body.faces, vertex_colours(body.skinning_weights),
                   **kwargs)

    def extent(self) -> tuple[float, float, float, float]:
        (xmin, ymin, _), (xmax, ymax, _) = self._bounds
        return float(xmin), float(xmax), float(ymin), float(ymax)

    def setup(self, ax: Axes, scale: float) -> list[Artist]:
        extent = self.extent()
        draw_floor(ax, extent, scale)
        xmin, xmax, ymin, ymax = extent
        x0, y0, width, height = pixel_box(
            ax, (xmin - MARGIN_M, xmax + MARGIN_M, ymin - MARGIN_M, ymax + MARGIN_M))
        (dx0, dy0), (dx1, dy1) = ax.transData.inverted().transform(
            [(x0, y0), (x0 + width, y0 + height)])  # the data box of those whole pixels
        self._image = PixelImage(x0, y0, width, height)
        ax.figure.add_artist(self._image)
        self._open(width, height, (dx0, dx1, dy0, dy1))
        return [self._image]

    def _open(self, width: int, height: int, box: tuple[float, float, float, float]) -> None:
        pyrender = self._pyrender = import_pyrender()
        self._renderer = open_renderer(width, height)
        xmin, xmax, ymin, ymax = box
        zmin, zmax = float(self._bounds[0, 2]), float(self._bounds[1, 2])
        bg = (*to_rgb(BACKGROUND), 0.0)  # transparent: the floor line shows through
        # (nothing here asks pyrender for mesh or scene bounds: 0.1.45 computes them with
        # np.infty, which numpy 2 removed)
        self._scene = pyrender.Scene(bg_color=bg)
        camera = pyrender.OrthographicCamera(
            xmag=(xmax - xmin) / 2, ymag=(ymax - ymin) / 2, znear=0.5,
            zfar=zmax - zmin + 1.5)
        pose = np.eye(4)
        pose[:3, 3] = ((xmin + xmax) / 2, (ymin + ymax) / 2, zmax + 1.0)
        self._scene.add(camera, pose=pose)
        self._material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0))
        # unlit: the vertex colours already hold the shading; RGBA: alpha 0 off the body
        self._flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.RGBA

    def update(self, frame: int) -> None:
        assert self._renderer is not None and self._image is not None, "call setup first"
        positions = self.clip.frame(frame)
        colours = np.ones((len(positions), 4), np.float32)
        colours[:, :3] = self.shader.colours(positions)
        primitive = self._pyrender.Primitive(positions=positions, indices=self.faces,
                                             color_0=colours, material=self._material)
        if self._node is not None:
            self._scene.remove_node(self._node)
        self._node = self._scene.add(self._pyrender.Mesh([primitive]))
        colour, _ = self._renderer.render(self._scene, flags=self._flags)
        self._image.rgba = colour

    def close(self) -> None:
        """Free the OpenGL context."""
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None
