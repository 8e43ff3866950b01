"""Stream evaluation: accuracy and latency of single-frame and Patchwork models (Sec. 4)."""
