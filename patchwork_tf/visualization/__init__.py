"""Figures of the paper regenerated on the synthetic benchmark: Fig. 2, Fig. 4 and clip GIFs."""
