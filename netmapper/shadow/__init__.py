"""Declared ClientIntents held against observed edges (shadow mode).

Data flows one way: `load` reads ClientIntents documents (files or the cluster, every apiVersion of the
CRD) into the version-free records of `model`; `match` decides which declared target covers an observed
edge, with the intents operator's semantics; `diff` sorts edges and declarations into covered, uncovered
and unused; `report` prints that, `write` brings a directory of intents files up to date, `signals`
posts a webhook per newly seen uncovered call. Everything but load, write and signals is pure.
"""
