"""`dualmind eval`: system bits per byte of core + decoder (or a BPE baseline) on held-out text,
and greedy renderings. May import train/ and everything below it; never bridge/ or viz/."""
