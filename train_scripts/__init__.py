"""Data, training and evaluation scripts of vision_trm (not part of the Hub code)."""
