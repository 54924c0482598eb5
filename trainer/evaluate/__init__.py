"""Evaluation: metrics (metrics), the scores of a trained model (scores), and its figures (figures), drawn in a
background process during a sweep (figure_worker) or later from what the run logged (deferred).

Light on purpose: the figure process imports this package with numpy and matplotlib only."""
