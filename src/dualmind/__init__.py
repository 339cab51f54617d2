"""dualmind: a hyper-core pretrained on hyperphrases and a language decoder that reads it."""

__version__ = "0.1.0"
