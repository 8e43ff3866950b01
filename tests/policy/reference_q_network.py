"""The attention Q-network as it was before the replay buffer stored pooled memories, in numpy.

An independent computation of `Q(S_t, a; Theta)` (Sec. 3.1, Fig. 3) from a full observation
(`memory` [B, Hl, Wl, C]) and the weights of an `AttentionQNetwork`: window means of the
memory, the shared ReLU projection, the concatenation with `F_t` (Eq. 1) and the change cue,
the hidden ReLU layers, the Q-value layer, and with the cue the shared per-window scorer.
"""
import numpy as np

CHANGE_FLOOR = 1e-3


def _dense(layer, x, relu=False):
    y = x @ layer.kernel.numpy() + layer.bias.numpy()
    return np.maximum(y, 0.0) if relu else y


def q_values(network, observation):
    """float64 [B, num_actions]: the Q-values of `network`'s weights on a full observation,
    dict of arrays `memory` [B, Hl, Wl, C], `history` [B, A] and optionally `change` [B, A]."""
    memory = np.asarray(observation["memory"], np.float64)
    history = np.asarray(observation["history"], np.float64)
    pooled = np.stack([memory[:, y:y + h, x:x + w].mean(axis=(1, 2))
                       for y, x, h, w in network.windows], axis=1)
    per_window = _dense(network._projection, pooled, relu=True)  # pylint: disable=protected-access
    inputs = [per_window.reshape(len(memory), -1), history]
    change = None
    if "change" in observation:
        change = np.log1p(np.asarray(observation["change"], np.float64) / CHANGE_FLOOR)
        inputs.append(change)
    features = np.concatenate(inputs, axis=-1)
    for layer in network._fc_layers:  # pylint: disable=protected-access
        features = _dense(layer, features, relu=True)
    values = _dense(network._q_value_layer, features)  # pylint: disable=protected-access
    if change is not None:
        window_inputs = np.concatenate([per_window, change[..., None], history[..., None]], -1)
        values += _dense(network._window_scorer, window_inputs)[..., 0]  # pylint: disable=W0212
    return values
