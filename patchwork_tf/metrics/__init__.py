"""Evaluation metrics (VID mAP, DAVIS J and F) and the Q-learning rewards (Eq. 2, 3)."""
