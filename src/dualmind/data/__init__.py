"""The corpus: the hypertrain.jsonl schema, `dualmind corpus build` (build/), packed shards, the
text tokenizer. No torch; may import sources/ and lexicon/ only."""
