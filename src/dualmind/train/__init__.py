"""Training: the LightningModule and its stages (core, lm, align, adapt), their datamodules, the
loop, optimiser, clipping, RNG and run checks. May import every lower folder (sources/, lexicon/,
model/, config/, data/, plan/, checkpoint/, adapters/, distributed/), never evaluate/ or above."""
