"""Experiments that rerun the papers' claims: many trainings with one recipe, their results and figures.

:mod:`.runner` (trials in worker processes, per-trial results and summaries), :mod:`.spec` (an ablation as data,
from a YAML file), :mod:`.ablation` (a grid of variants of one family) and :mod:`.degradation` (plain against
residual nets, He et al. 2016).

May import: cnnlab.analysis, cnnlab.data, cnnlab.errors, cnnlab.machine, cnnlab.models, cnnlab.plotting,
cnnlab.registry, cnnlab.train.
"""
