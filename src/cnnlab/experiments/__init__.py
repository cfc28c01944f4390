"""Experiments that rerun the papers' claims and judge them.

:mod:`.spec` (an experiment file: claim, source, variants, recipe, seeds, expected comparisons, pretraining and
probes), :mod:`.runner` (the runs: here in worker processes, or as ``cnnlab train`` commands for any launcher),
:mod:`.cluster` (the runs as tasks of a Ray cluster), :mod:`.progress` (each run's state and the time left, live,
while they train), :mod:`.collect` (per-run metrics from the run folders alone, failed runs, the judgement),
:mod:`.probes` (lesions), :mod:`.stats` (one-sided Welch, Fisher and exact log-rank tests, their power, the level
of each look), :mod:`.report` (``results.json``, ``summary.md`` rendered from it, plots), :mod:`.experiment` (file
to folder, and rounds of seeds until decided), :mod:`.ledger` (every committed claim with its verdict: ``cnnlab
claims``) and :mod:`.figures` (every figure of a page about them traced to the results).

May import: cnnlab.analysis, cnnlab.data, cnnlab.errors, cnnlab.layers, cnnlab.machine, cnnlab.models,
cnnlab.plotting, cnnlab.registry, cnnlab.train.
"""
