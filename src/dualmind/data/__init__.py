"""Corpus side of dualmind: the hypertrain.jsonl schema, `dualmind corpus build`, packed shards.

Nothing here imports torch: shards are read with numpy; the datamodule (training side) wraps them.
"""
