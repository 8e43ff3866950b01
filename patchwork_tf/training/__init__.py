"""Training stages of Patchwork (Sec. 3.4): stage 1, single-frame models with BN."""
