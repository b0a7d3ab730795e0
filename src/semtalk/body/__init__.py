"""Everything about bodies, below every model: SMPL-X tables and body parts (:mod:`.parts`),
rotations (:mod:`.rotation`), forward kinematics and foot contacts (:mod:`.skeleton`), the
:class:`~semtalk.body.motion.Motion` of a clip (:mod:`.motion`) and the tokenizers' per-part
motion features (:mod:`.representation`)."""
