"""Training: the loop (loop), its checkpoints (checkpoint) and the background writer (writer), and the path that
joins them (persist)."""
