"""``semtalk export MOTION.npz --format glb``: a BEAT2 motion file for Blender, Unity, Unreal.

Writes the motion as glTF binary (.glb), USD (.usd), FBX (.fbx) or BVH (.bvh): the SMPL-X
skeleton and its animation, and with --body-model the skinned SMPL-X mesh shaped by the file's
betas, with the expressions as animated blendshapes (GLB, USD, FBX). Without a body model a
GLB also holds a stick figure skinned to the joints, for viewers that draw meshes only (turn it
off with --no-stick). Metres; Y up unless --up z.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("glb", "usd", "fbx", "bvh")
"""--format choices (semtalk.export.FORMATS, without importing it here)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a BEAT2 motion .npz to GLB, USD, FBX or BVH",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("motion", type=Path, metavar="MOTION.npz",
                        help="BEAT2 motion file (poses, trans, expressions, betas), e.g. one "
                             "`semtalk generate` wrote")
    parser.add_argument("--format", "-f", dest="fmt", choices=FORMATS, default=None,
                        help="output format (default: from --out's suffix, else glb)")
    parser.add_argument("--body-model", type=Path, default=None, metavar="SMPLX_FILE",
                        help="SMPLX_NEUTRAL_2020.npz (or its folder): exact skeleton shaped by "
                             "the betas and the skinned mesh with expression blendshapes "
                             "(needs the smplx extra; default: built-in skeleton, no mesh)")
    parser.add_argument("--out", "-o", type=Path, default=None, metavar="FILE",
                        help="file to write (default: MOTION with the format's suffix, next "
                             "to it)")
    parser.add_argument("--up", choices=("y", "z"), default="y",
                        help="up axis of GLB and USD files: y (default; glTF's own, what "
                             "importers convert) or z (raw Z-up coordinates)")
    parser.add_argument("--no-stick", dest="stick", action="store_false", default=None,
                        help="GLB without a body model: leave out the stick-figure mesh (by "
                             "default there, so that viewers that draw meshes only show the "
                             "motion)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Parse -> :func:`semtalk.export.export_motion`."""
    from semtalk.body.motion import read_motion_npz
    from semtalk.body.skeleton import BodyModel, load_body_model
    from semtalk.config import ConfigError
    from semtalk.errors import DataError
    from semtalk.export import FORMATS as SPECS
    from semtalk.export import check_export, export_format, export_motion

    try:
        if args.fmt is None and args.out is not None:
            spec = export_format(args.out)
        else:
            spec = export_format(args.out or "motion", args.fmt or "glb")
        check_export(spec.name, up=args.up)
    except ValueError as exc:
        raise ConfigError(f"--format/--out/--up: {exc}") from exc
    out = args.out if args.out is not None else args.motion.with_suffix(SPECS[spec.name].suffix)
    if out.exists() and not args.overwrite:
        raise DataError(out, "already exists; pass --overwrite to replace it, or --out "
                             "elsewhere")
    motion, issues = read_motion_npz(args.motion)
    for issue in issues:
        print(f"semtalk export: warning: {issue}", file=sys.stderr)
    body: BodyModel | None = None
    if args.body_model is not None:
        try:
            body = load_body_model(args.body_model)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise DataError(args.body_model, f"cannot use this SMPL-X body model: {exc}") from exc
    path = export_motion(motion, out, spec.name, body_model=body, up=args.up, stick=args.stick)
    what = "skinned SMPL-X mesh" if body is not None and spec.name != "bvh" else "skeleton"
    if spec.name == "glb" and (body is None if args.stick is None else args.stick):
        what += " + stick figure"
    print(f"{args.motion.name}: {motion.num_frames} frames ({motion.duration:.2f} s) -> {path} "
          f"({spec.name}, {what}, {path.stat().st_size / 1e6:.2f} MB)")
    return 0
