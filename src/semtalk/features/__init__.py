"""Speech and text features on the motion frame grid, word alignment, and the feature cache."""
