"""Look inside the two heads: logit lens, attention and cross-attention maps, activation norms."""
