"""Declared ClientIntents held against observed edges (shadow mode).

Data flows one way: `load` finds ClientIntents documents (files or the cluster) and `parse` reads each,
whatever its apiVersion, into the version-free records of `model`; `match` decides which declared target
covers an observed edge, with the intents operator's semantics; `diff` sorts edges and declarations into
covered, uncovered and unused, naming targets as export does; `report` prints that, `write` brings a
directory of intents files up to date, `signals` posts a webhook per newly seen uncovered call
(`duration` reads `--since`). Everything but load, write and signals is pure.
"""
