"""The benchmark behind scripts/bench.py: the harness's training path against a bare PyTorch loop.

bench       the command line: the cases chosen, their table printed, the figures as JSON
table       Row (one line of the table, its goal and verdict) and the table as text
repo        the repository's root, and this package's modules run as child processes
config      the repository's Hydra config, composed as train.py composes it
workload    what both loops train: synthetic problems and the models of conf/model
bare_loop   the loop a researcher writes by hand
epochs      the per-epoch cases (overhead, compute, resnet, digits): the harness's path against the bare loop
sweeps      the sweep case: train.py -m, sequential and through joblib, against a bare script
contention  the contention case: the default run quiet and beside a busy process
startup     the cold-start case: python train.py in a fresh process
memory      the memory case: peak resident memory of the data path
big_sweep   the bigsweep case: a study of thousands of sub-second runs beside one of twenty
big_store   the bigstore case: compare on a store of a whole benchmark study (10,000 runs)

Run as child processes (python -m benchmarks.<name>): bare_sweep (the bare script of the sweep case), busy (the
contention case's busy process) and memory_child (the memory case's measured process).
"""
