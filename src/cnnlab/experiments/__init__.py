"""Experiments that rerun the papers' claims and judge them.

:mod:`.spec` (an experiment file: claim, source, variants, recipe, seeds, expected comparisons, pretraining and
probes), :mod:`.runner` (the runs: here in worker processes, or as ``cnnlab train`` commands for any launcher),
:mod:`.collect` (per-run metrics from the run folders alone), :mod:`.probes` (lesions), :mod:`.stats` (one-sided
Welch tests and the verdict), :mod:`.report` (``results.json``, ``summary.md``, plots), :mod:`.experiment` (file to
folder) and :mod:`.ledger` (every committed claim with its verdict: ``cnnlab claims``).

May import: cnnlab.analysis, cnnlab.data, cnnlab.errors, cnnlab.layers, cnnlab.machine, cnnlab.models,
cnnlab.plotting, cnnlab.registry, cnnlab.train.
"""
