"""``semtalk inspect ROOT``: summary of a BEAT2-layout (or SHOW) dataset and everything wrong
with it."""

from __future__ import annotations

import argparse
from collections import defaultdict

from tqdm import tqdm

from semtalk.constants import MOTION_FPS
from semtalk.data.beat2 import MODALITY_LAYOUT, SPLITS, Beat2Dataset, ClipCheck
from semtalk.errors import Severity


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="summarise and validate a BEAT2-layout dataset",
        description="Print clips and hours per split and speaker, missing modalities, and "
                    "every problem found (errors stop a clip from loading; warnings do not).")
    parser.add_argument("root", help="dataset root (holds train_test_split.csv)")
    parser.add_argument("--speakers", type=int, nargs="+", default=None,
                        help="only these speaker ids (default: all)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="splits to include (default: all four)")
    parser.add_argument("--decode-audio", action="store_true",
                        help="decode every audio file (slower; also finds NaNs in audio)")
    parser.add_argument("--split-file", default=None, metavar="F",
                        help="SHOW root: TalkSHOW's train_val_test.json")
    parser.add_argument("--max-issues", type=int, default=50,
                        help="print at most this many problems (default 50)")
    parser.set_defaults(run=run)


def format_summary(checks: list[ClipCheck]) -> str:
    """The summary table: one row per (split, speaker), then totals."""
    groups: dict[tuple[str, int, str], list[ClipCheck]] = defaultdict(list)
    for check in checks:
        info = check.info
        groups[(info.split, info.speaker_id, info.speaker_name)].append(check)
    modalities = list(MODALITY_LAYOUT)
    header = ["split", "speaker", "clips", "ok", "hours"] + [f"no {m}" for m in modalities]
    rows = []
    order = {s: i for i, s in enumerate(SPLITS)}
    for (split, speaker, name), group in sorted(groups.items(),
                                                key=lambda kv: (order[kv[0][0]], kv[0][1])):
        rows.append(_row(split, f"{speaker} {name}", group, modalities))
    rows.append(_row("all", "", checks, modalities))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(split: str, speaker: str, group: list[ClipCheck], modalities: list[str]) -> list:
    hours = sum(c.num_frames for c in group) / MOTION_FPS / 3600
    missing = [sum(m in c.missing for c in group) for m in modalities]
    return [split, speaker, len(group), sum(c.ok for c in group), f"{hours:.3f}", *missing]


def run_show(args: argparse.Namespace) -> int:
    """Inspect a SHOW root: clips and hours per speaker and split, and every problem."""
    from semtalk.data.show import ShowDataset

    dataset = ShowDataset(args.root, split_file=args.split_file)
    checks = [dataset.check(info)
              for info in tqdm(dataset, desc="checking clips", unit="clip", leave=False)]
    print(f"dataset: {dataset.root} (SHOW layout)")
    for warning in dataset.warnings:
        print(f"warning: {warning}")
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for check in checks:
        groups[(check.info.split, check.info.speaker)].append(check)
    print(f"{'split':>6}  {'speaker':>10}  {'clips':>6}  {'ok':>6}  {'hours':>7}")
    for (split, speaker), group in [*sorted(groups.items()), (("all", ""), checks)]:
        hours = sum(c.num_frames for c in group) / MOTION_FPS / 3600
        print(f"{split:>6}  {speaker:>10}  {len(group):>6}  {sum(c.ok for c in group):>6}  "
              f"{hours:>7.3f}")
    issues = [i for c in checks for i in c.issues]
    errors = [i for i in issues if i.severity is Severity.ERROR]
    print(f"\n{len(errors)} error(s), {len(issues) - len(errors)} warning(s)")
    for issue in sorted(issues, key=lambda i: i.severity is not Severity.ERROR)[: args.max_issues]:
        print(f"  {issue.severity.value}: {issue}")
    return 1 if errors else 0


def run(args: argparse.Namespace) -> int:
    from semtalk.data.show import is_show_root

    if is_show_root(args.root):
        return run_show(args)
    dataset = Beat2Dataset(args.root, speakers=args.speakers, splits=args.splits,
                           max_duration_mismatch=2.0)
    checks = [dataset.check(info, decode_audio=args.decode_audio)
              for info in tqdm(dataset, desc="checking clips", unit="clip", leave=False)]
    print(f"dataset: {dataset.root}")
    if not checks:
        print("no clips match the chosen speakers and splits")
        return 1
    print(format_summary(checks))
    issues = [i for c in checks for i in c.issues]
    errors = [i for i in issues if i.severity is Severity.ERROR]
    print(f"\n{len(errors)} error(s), {len(issues) - len(errors)} warning(s)")
    for issue in sorted(issues, key=lambda i: i.severity is not Severity.ERROR)[: args.max_issues]:
        print(f"  {issue.severity.value}: {issue}")
    if len(issues) > args.max_issues:
        print(f"  ... and {len(issues) - args.max_issues} more (--max-issues)")
    return 1 if errors else 0
