"""The HyperBridge: a question in text, the frozen core thinking in hyperphrase symbols, the
decoder rendering the answer, with retrieval; `dualmind generate | chat | index`. May import
every folder but viz/ (see docs/bridge.md)."""
