"""Evaluation: metrics (metrics), the scores of a trained model (scores), and its figures (figures), drawn in a
background process during a sweep (figure_worker).

Light on purpose: the figure process imports this package with numpy and matplotlib only."""
