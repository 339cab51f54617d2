"""The Hydra configuration of a run (compose + validate), the messages of a wrong override, and
the numeric precision rule. May import model/ (its config classes) only."""
