"""The hyperlexicon codec: text <-> units of meaning, one private-use symbol per unit. No torch;
may import nothing of dualmind but the readers (sources/), a codec anyone can use alone."""
