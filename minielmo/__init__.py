"""minielmo: ELMo (Peters et al. 2018) from scratch, loading the original options.json + hdf5."""
