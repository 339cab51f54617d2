"""`dualmind viz`: logit lens, attention and cross-attention maps, activation norms and how far
an adapted core moved, as one offline HTML report. May import every other folder."""
