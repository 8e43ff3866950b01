"""Video data: the clip format, the synthetic benchmark, fake videos from stills, real readers."""
