"""Readers of the user's input files (txt / jsonl / json / parquet), their problem reports, and the
embedded demo corpus. No torch; imports nothing else of dualmind."""
