"""`dualmind corpus build`: documents -> hyperphrases -> hypertrain.jsonl and packed shards,
parallel and resumable. May import sources/, lexicon/ and the rest of data/."""
