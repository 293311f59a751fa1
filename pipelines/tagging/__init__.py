"""Part-of-speech tagging of CoNLL-U sentences (being built)."""
