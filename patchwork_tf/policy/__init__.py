"""Attention policy (paper Sec. 3.1, 3.3): action history, Q-network, environment, DDQN agent."""
