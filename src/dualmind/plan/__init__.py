"""`dualmind plan`: the compute planner (FLOPs, GPU-hours, memory, Chinchilla, equivalence).
Pure arithmetic, no torch; may import model/ (config shapes), config/ and lexicon/ only."""
