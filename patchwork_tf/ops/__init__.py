"""Pure tensor functions on boxes: IoU, box coding, anchor matching, post-processing."""
