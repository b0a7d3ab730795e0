"""Colours, sizes and thresholds shared by the preview video and the plots."""

from __future__ import annotations

from semtalk.body.parts import BodyPart

DPI = 100
"""Figure dots per inch: figure inches = pixels / DPI."""
BACKGROUND = "#f7f7f5"
TEXT_COLOUR = "#222222"
MUTED_COLOUR = "#8a8a8a"
FLOOR_COLOUR = "#cfcfca"
EMPHASIS_COLOUR = "#d1495b"
"""Marks semantic emphasis: ψ above the threshold."""
PSI_THRESHOLD = 0.5
"""ψ above this counts as a semantic frame (the sparse generator's domain)."""
PART_COLOURS: dict[BodyPart, str] = {
    BodyPart.FACE: "#c05299",
    BodyPart.UPPER: "#2f6fb0",
    BodyPart.HANDS: "#e08a1e",
    BodyPart.LOWER: "#3a9a5b",
}
PART_LINE_WIDTHS: dict[BodyPart, float] = {
    BodyPart.FACE: 2.0, BodyPart.UPPER: 4.0, BodyPart.HANDS: 1.4, BodyPart.LOWER: 4.0,
}
"""Bone widths in points at 720 pixels of frame height (scaled with the height)."""
