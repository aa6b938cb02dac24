"""prompting: a Bittensor validator plug-in with swappable generation backends."""

__version__ = "0.1.0"
