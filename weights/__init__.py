"""Find, verify and load checkpoints; map their keys onto our modules."""
