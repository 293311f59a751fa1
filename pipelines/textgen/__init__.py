"""Text generation: a character-level language model (being built)."""
