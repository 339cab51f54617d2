"""What a run leaves on disk, written atomically and read back without the LightningModule:
checkpoint metadata, the frozen core's loading, export, sharded load, resume. May import model/,
lexicon/, data/ and config/; never train/."""
