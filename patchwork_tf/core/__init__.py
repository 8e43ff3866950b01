"""Window geometry and the Patchwork Cell (Sec. 3.1, 3.2)."""
