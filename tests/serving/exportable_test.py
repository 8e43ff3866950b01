"""The exported SavedModel against the in-process twin, loaded with TensorFlow alone."""
import json
import re
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.core import flops
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import pipeline
from patchwork_tf.data import synthetic
from patchwork_tf.serving import compact_state
from patchwork_tf.serving import exportable
from tests.core import small_models

FRAME = 64
STREAMS = 2
CLIP_LENGTH = 6
WARM_T = 3  # the frame at which the clip has a key frame
POLICY_CELL = "block_6_depthwise"
ALPHA = 0.5

# Runs in a fresh interpreter that may import only TensorFlow and numpy: an import hook
# refuses patchwork_tf (installed in the venv), and the end checks that neither it nor tf_keras
# was loaded. (Keras 3 is not checked: `import tensorflow` itself loads it.)
_LOADER = textwrap.dedent("""
    import importlib.abc, json, sys

    class _Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "patchwork_tf":
                raise ImportError("serving must not import " + name)
            return None

    sys.meta_path.insert(0, _Refuse())
    import numpy as np
    import tensorflow as tf

    export_dir, inputs_path, outputs_path = sys.argv[1:4]
    inputs = np.load(inputs_path)
    frames, first_actions = inputs["frames"], inputs["first_actions"]
    loaded = tf.saved_model.load(export_dir)
    sig = loaded.signatures
    results = {}
    state = sig["initial_state"](batch_size=tf.constant(frames.shape[1]))
    state_keys = sorted(state)
    results["initial_next_action"] = state["next_action"].numpy()
    state["next_action"] = tf.constant(first_actions)
    for t in range(frames.shape[0]):
        if t == int(inputs["warm_t"]):
            out = sig["warm_start"](frames=tf.constant(frames[t]))
        else:
            out = sig["step"](frames=tf.constant(frames[t]), **state)
        for key, value in out.items():
            if key not in state_keys or key == "next_action":
                results[f"batch/{t}/{key}"] = value.numpy()
        state = {key: out[key] for key in state_keys}
    results["stream_reset"] = sig["stream_reset"]()["next_action"].numpy()
    for t in range(frames.shape[0]):
        name = "stream_warm_start" if t == int(inputs["warm_t"]) else "stream_step"
        for key, value in sig[name](frame=tf.constant(frames[t, 0])).items():
            results[f"stream/{t}/{key}"] = value.numpy()

    # A 640x480 frame, then the same frame resized outside to the model's 64x64.
    for size in ("large", "resized"):
        frame = tf.constant(inputs[size])
        sig["stream_reset"]()
        results[f"{size}/warm_start"] = sig["warm_start"](frames=frame[None])["predictions"]
        results[f"{size}/stream_step"] = sig["stream_step"](frame=frame)["predictions"]

    errors = {}
    good_state = sig["initial_state"](batch_size=tf.constant(1))
    bad_frames = {
        "rank": np.zeros((64, 64, 3), np.uint8),
        "channels": np.zeros((1, 64, 64, 1), np.uint8),
        "dtype": np.zeros((1, 64, 64, 3), np.float32),
    }
    for what, bad in bad_frames.items():
        for route in ("signature", "function"):
            try:
                if route == "signature":
                    sig["step"](frames=tf.constant(bad), **good_state)
                else:
                    loaded.step(tf.constant(bad), dict(good_state))
                errors[f"{what}/{route}"] = "no error"
            except Exception as error:  # the message is what the test checks
                errors[f"{what}/{route}"] = f"{type(error).__name__}: {error}"
    bad_states = {
        "state_batch": (2, good_state),
        "state_shape": (1, dict(good_state, action_history=tf.zeros((1, 5)))),
    }
    for what, (batch, state) in bad_states.items():
        try:
            sig["step"](frames=tf.zeros((batch, 480, 640, 3), tf.uint8), **state)
            errors[what] = "no error"
        except Exception as error:
            errors[what] = f"{type(error).__name__}: {error}"

    leaked = sorted({name.split(".")[0] for name in sys.modules}
                    & {"patchwork_tf", "tf_keras"})
    results["leaked"] = np.array(leaked, dtype=str)
    np.savez(outputs_path, **results)
    with open(outputs_path + ".errors.json", "w") as f:
        json.dump(errors, f)
""")


class TinyQ(tf.Module):
    """Q = [mean over the memory view, history] @ W - 5 * history: a policy that moves."""

    def __init__(self, channels, num_actions, seed=0):
        super().__init__(name="tiny_q")
        rng = np.random.default_rng(seed)
        self.kernel = tf.Variable(
            rng.normal(0, 1, (channels + num_actions, num_actions)).astype(np.float32))

    def __call__(self, observation):
        features = tf.concat([tf.reduce_mean(observation["memory"], axis=[1, 2]),
                              observation["history"]], axis=-1)
        return features @ self.kernel - 5.0 * observation["history"]

    def numpy_q(self, memory, history):
        features = np.concatenate([memory.mean(axis=(1, 2)), history], axis=-1)
        return features @ self.kernel.numpy() - 5.0 * history


def _twin():
    tf_keras.utils.set_random_seed(0)
    model = small_models.calibrate_batch_norm(tf_keras.applications.MobileNetV2(
        input_shape=(FRAME, FRAME, 3), alpha=0.35, include_top=False, weights=None))
    return pw.patchwork_model(model, pw.WindowGrid((FRAME, FRAME), 2, 1))


def _frames():
    """uint8 [T, B, H, W, 3]: one synthetic detection clip per stream."""
    clips = synthetic.synthetic_clips("validation", num_clips=STREAMS, frame_size=FRAME,
                                      clip_length=CLIP_LENGTH)
    return np.stack([clip["frames"] for clip in clips], axis=1)


def _reference(twin, frames, first_actions, choose):
    """The twin's own stateful API, Eq. 1 and the policy in numpy: the expected run."""
    twin.reset_states(STREAMS)
    history = np.zeros((STREAMS, twin.grid.num_actions), np.float32)
    actions = np.asarray(first_actions, np.int32)
    expected = []
    for t in range(frames.shape[0]):
        inputs = clips_lib.preprocess_frames(frames[t])
        if t == WARM_T:
            outputs = twin.warm_start(inputs)
            history = np.zeros_like(history)
            taken = np.full(STREAMS, -1, np.int32)
        else:
            outputs = twin.step(inputs, actions)
            history = np.minimum(ALPHA * history + np.eye(twin.grid.num_actions)[actions], 1.0)
            taken = actions
        actions = choose(taken, history)
        expected.append((outputs.numpy(), taken, actions))
    return expected


def _large_frame(size=(480, 640)):
    """uint8 [H, W, 3]: a synthetic frame rendered at `size` (H, W)."""
    clip = next(iter(synthetic.synthetic_clips("validation", num_clips=1, frame_size=size,
                                               clip_length=1)))
    return np.asarray(clip["frames"][0])


def _run_loader(export_dir, frames, first_actions, tmp_path):
    inputs = os.path.join(tmp_path, "inputs.npz")
    outputs = os.path.join(tmp_path, "outputs.npz")
    large = _large_frame()
    np.savez(inputs, frames=frames, first_actions=np.asarray(first_actions, np.int32),
             warm_t=WARM_T, large=large,
             resized=pipeline.resize_frames(large, (FRAME, FRAME)).numpy())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    completed = subprocess.run(
        [sys.executable, "-c", _LOADER, export_dir, inputs, outputs], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    with open(outputs + ".errors.json") as f:
        errors = json.load(f)
    return dict(np.load(outputs)), errors


def _assert_close(actual, expected):
    scale = max(float(np.max(np.abs(expected))), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)


@pytest.fixture(scope="module")
def twin():
    return _twin()


@pytest.fixture(scope="module")
def module(twin):
    return exportable.ExportableModule(twin)


@pytest.mark.slow
@pytest.mark.parametrize("with_policy", [False, True])
def test_saved_model_runs_without_patchwork_and_matches_twin(twin, with_policy, tmp_path):
    frames = _frames()
    num_actions = twin.grid.num_actions
    if with_policy:
        channels = twin.state_spec()[POLICY_CELL].shape[-1]
        policy = TinyQ(channels, num_actions)
        module = exportable.ExportableModule(twin, policy=policy, policy_cell=POLICY_CELL,
                                             alpha=ALPHA)
    else:
        module = exportable.ExportableModule(twin, alpha=ALPHA, scan_order=[2, 0, 3, 1])
    export_dir = exportable.export_saved_model(module, str(tmp_path / "saved_model"))

    # Stream 0 starts where initial_state says; stream 1 is sent to another window.
    if with_policy:
        twin.reset_states(STREAMS)
        zero_view = twin.memory(POLICY_CELL).numpy()
        initial = policy.numpy_q(zero_view, np.zeros((STREAMS, num_actions))).argmax(-1)

        def choose(taken, history):
            return policy.numpy_q(twin.memory(POLICY_CELL).numpy(), history).argmax(-1)
    else:
        order = [2, 0, 3, 1]
        initial = np.full(STREAMS, order[0])

        def choose(taken, history):
            return np.array([order[(order.index(a) + 1) % 4] if a >= 0 else order[0]
                             for a in taken])
    first_actions = [initial[0], (initial[1] + 1) % num_actions]
    results, errors = _run_loader(export_dir, frames, first_actions, str(tmp_path))
    expected = _reference(twin, frames, first_actions, choose)

    assert results["leaked"].size == 0, results["leaked"]
    np.testing.assert_array_equal(results["initial_next_action"], initial)
    np.testing.assert_array_equal(results["stream_reset"], initial[:1])
    taken_actions = set()
    for t, (outputs, taken, next_actions) in enumerate(expected):
        _assert_close(results[f"batch/{t}/predictions"], outputs)
        np.testing.assert_array_equal(results[f"batch/{t}/action"], taken)
        np.testing.assert_array_equal(results[f"batch/{t}/next_action"], next_actions)
        taken_actions.update(taken.tolist())
        _assert_close(results[f"stream/{t}/predictions"], outputs[:1])
        np.testing.assert_array_equal(results[f"stream/{t}/action"], taken[:1])
        np.testing.assert_array_equal(results[f"stream/{t}/next_action"], next_actions[:1])
    assert len(taken_actions - {-1}) >= 2, "the run should visit several windows"

    for size in ("warm_start", "stream_step"):
        np.testing.assert_array_equal(results[f"large/{size}"], results[f"resized/{size}"])
    for what, given in (("rank", "[64 64 3]"), ("channels", "[1 64 64 1]"), ("dtype", "float")):
        for route in ("signature", "function"):
            message = errors[f"{what}/{route}"]
            assert message != "no error", (what, route)
            if what == "dtype":
                assert "uint8" in message and given in message, message
            else:
                assert "step: frames must be uint8 [B, H, W, 3] RGB" in message, message
                assert f"got uint8 shape] {given}" in message, message
    assert "step: frames hold a batch of] [2] [but state" in errors["state_batch"], errors
    assert ("step: state action_history must be float32 [B, 4] as initial_state, step and "
            "warm_start return it; got shape] [1 5]") in errors["state_shape"], errors


@pytest.mark.parametrize("compact", [True, False])
def test_state_specs_of_both_layouts(twin, module, compact):
    if not compact:
        module = exportable.ExportableModule(twin, compact_state=False)
    spec = module.state_spec()
    assert list(spec) == module.state_keys
    assert spec["next_action"].shape.as_list() == [None]
    assert spec["action_history"].shape.as_list() == [None, 4]
    for cell, memory_spec in twin.state_spec().items():
        if compact and cell in twin.halo_cells:
            points = compact_state.halo_points(twin.halo_cells[cell])
            assert spec["halo_" + cell].shape.as_list() == [None, len(points),
                                                            memory_spec.shape[-1]]
        else:
            assert spec["memory_" + cell].shape.as_list() == memory_spec.shape.as_list()
    # Every state tensor is batched along dim 0, what a server batching streams relies on.
    initial = module.initial_state(tf.constant(3))
    assert set(initial) == set(spec)
    for key, value in initial.items():
        assert spec[key].shape[0] is None and value.shape[0] == 3, key
        assert value.shape[1:] == spec[key].shape[1:], key
    assert module.state_bytes() == sum(
        int(np.prod(s.shape[1:])) * s.dtype.size for s in spec.values())


def test_step_outputs(module):
    frames = tf.constant(_frames()[0])
    result = module.step(frames, module.initial_state(tf.constant(STREAMS)))
    assert set(result) == set(module.state_keys) | {"predictions", "action"}
    np.testing.assert_array_equal(result["action"], [0, 0])
    np.testing.assert_array_equal(result["next_action"], [1, 1])
    np.testing.assert_allclose(result["action_history"], [[1, 0, 0, 0], [1, 0, 0, 0]])


def test_constructor_refuses_bad_arguments(twin):
    with pytest.raises(ValueError, match="policy_cell"):
        exportable.ExportableModule(twin, policy=TinyQ(96, 4), policy_cell="nope")
    with pytest.raises(ValueError, match="permutation of range\\(4\\)"):
        exportable.ExportableModule(twin, scan_order=[0, 1, 1, 2])
    with pytest.raises(ValueError, match="alpha"):
        exportable.ExportableModule(twin, alpha=1.5)
    with pytest.raises(ValueError, match="not both"):
        exportable.ExportableModule(twin, policy=TinyQ(96, 4), policy_cell=POLICY_CELL,
                                    scan_order=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="Q-values of shape"):
        exportable.ExportableModule(
            twin, policy=lambda obs: tf.zeros([tf.shape(obs["history"])[0], 3]),
            policy_cell=POLICY_CELL)
    bands = pw.patchwork_model(twin.keras_model, twin.grid, write="bands")
    with pytest.raises(ValueError, match="full_memory_cells"):
        exportable.ExportableModule(bands, policy=TinyQ(96, 4), policy_cell=POLICY_CELL)
    with pytest.raises(TypeError, match="PatchworkModel"):
        exportable.ExportableModule(twin.keras_model)
    with pytest.raises(ValueError, match="clash"):
        exportable.ExportableModule(
            twin, postprocess=lambda out, image_size: {"next_action": out})


@pytest.mark.slow
@pytest.mark.parametrize("change_cue", [False, True])
def test_attention_q_network_exports_and_picks_greedy_windows(twin, change_cue, tmp_path):
    from tf_agents.specs import tensor_spec
    from patchwork_tf.policy import observation as observation_lib
    from patchwork_tf.policy import q_network

    grid = twin.grid
    memory_shape = twin.memory_shape(POLICY_CELL)
    (top, bottom), (left, right) = twin.halo_cells[POLICY_CELL].geometry.pad
    view_shape = (memory_shape[0] - top - bottom, memory_shape[1] - left - right,
                  memory_shape[2])
    action_spec = tensor_spec.BoundedTensorSpec((), tf.int32, 0, grid.num_actions - 1)
    tf_keras.utils.set_random_seed(3)
    network = q_network.AttentionQNetwork(
        q_network.observation_spec(view_shape, grid.num_actions, change_cue), action_spec,
        q_network.windows_in_memory(grid, view_shape))
    module = exportable.ExportableModule(twin, policy=network, policy_cell=POLICY_CELL,
                                         alpha=ALPHA, change_cue=change_cue)
    loaded = tf.saved_model.load(
        exportable.export_saved_model(module, str(tmp_path / "saved_model")))

    frames = _frames()
    twin.reset_states(STREAMS)
    state = loaded.signatures["initial_state"](batch_size=tf.constant(STREAMS))
    history = np.zeros((STREAMS, grid.num_actions), np.float32)
    observer = observation_lib.AttentionObservation(grid, ALPHA, change_cue)
    observer_state = observer.initial_state(STREAMS)
    for t in range(3):
        expected_next, _ = network(observer.observation(twin.memory(POLICY_CELL),
                                                        observer_state))
        np.testing.assert_array_equal(state["next_action"], np.argmax(expected_next, -1))
        actions = state["next_action"].numpy()
        outputs = twin.step(clips_lib.preprocess_frames(frames[t]), actions)
        history = np.minimum(ALPHA * history + np.eye(grid.num_actions)[actions], 1.0)
        observer_state = observer.advance(
            observer_state, clips_lib.preprocess_frames(frames[t]), actions)
        state = loaded.signatures["step"](frames=tf.constant(frames[t]), **{
            k: state[k] for k in module.state_keys})
        _assert_close(state["predictions"], outputs)
        np.testing.assert_allclose(state["action_history"], history)
        if change_cue:
            np.testing.assert_allclose(state["change"], observer_state["change"], atol=1e-6)

    record = json.loads(loaded.metadata().numpy())
    assert record["policy"] == "dqn" and record["policy_cell"] == POLICY_CELL
    assert record["scan_order"] is None and record["history_alpha"] == ALPHA
    assert (record["m"], record["n"], record["num_actions"]) == (grid.m, grid.n, 4)
    assert record["flops"]["step"] == flops.step_flops(twin).flops
    assert record["flops"]["full_frame"] == flops.model_flops(twin.keras_model).flops
    assert record["flops"]["policy"] > 0
    assert record["change_cue"] == change_cue
    assert record["fold_batch_norm"] is False


def _frames_message(signature, given):
    return (re.escape(f"{signature}: frames must be uint8 [B, H, W, 3] RGB with H, W >= 1; got "
                      f"uint8 shape] [{given}]"))


def _frame_message(signature, given):
    return (re.escape(f"{signature}: frame must be uint8 [H, W, 3] RGB with H, W >= 1; got "
                      f"uint8 shape] [{given}]"))


def _zeros(shape, dtype=tf.uint8):
    return tf.zeros(shape, dtype)


def _step(frames, **changes):
    """Calls `step` on `frames` with a state of two streams changed as `changes` says."""
    def call(module):
        state = dict(module.initial_state(tf.constant(2)))
        state.update({key: change(state[key]) for key, change in changes.items()})
        return module.step(frames, state)
    return call


_DTYPE = r"float32.*uint8"  # TensorFlow's own refusal: given, then the signature's dtype
_WRONG_INPUTS = {
    "initial_state/rank": (lambda m: m.initial_state(tf.constant([2])), re.escape(
        "initial_state: batch_size must be an int32 scalar >= 1 (the number of streams); got "
        "shape] [1] [values] [2]")),
    "initial_state/value": (lambda m: m.initial_state(tf.constant(0)), re.escape(
        "got shape] [] [values] [0]")),
    "initial_state/dtype": (lambda m: m.initial_state(tf.constant(2, tf.int64)), r"int64.*int32"),
    "step/rank": (_step(_zeros((64, 64, 3))), _frames_message("step", "64 64 3")),
    "step/channels": (_step(_zeros((2, 48, 80, 1))), _frames_message("step", "2 48 80 1")),
    "step/dtype": (_step(_zeros((2, 64, 64, 3), tf.float32)), _DTYPE),
    "step/batch": (_step(_zeros((3, 48, 80, 3))), re.escape(
        "step: frames hold a batch of] [3] [but state halo_expanded_conv_depthwise holds] [2] "
        "[streams; give one frame per stream of the state (initial_state(batch_size=B))]")),
    # block_6_depthwise: a 9 x 9 memory (8 x 8 map, padded after); halos of the 4 x 4
    # windows read row 4 and column 4 of the map: 15 pixels.
    "step/state_shape": (
        _step(_zeros((2, 48, 80, 3)), halo_block_6_depthwise=lambda t: t[:, 1:]),
        re.escape("step: state halo_block_6_depthwise must be float32 [B, 15, 96] as "
                  "initial_state, step and warm_start return it; got shape] [2 14 96]")),
    "step/global_state_shape": (
        _step(_zeros((2, 48, 80, 3)), memory_out_relu_global=lambda t: t[:, 1:]),
        re.escape("step: state memory_out_relu_global must be float32 [B, 2, 2, 1280] as "
                  "initial_state, step and warm_start return it; got shape] [2 1 2 1280]")),
    "step/state_rank": (_step(_zeros((2, 48, 80, 3)), next_action=lambda t: t[:, None]),
                        re.escape("step: state next_action must be int32 [B] as initial_state, "
                                  "step and warm_start return it; got shape] [2 1]")),
    "step/state_dtype": (_step(_zeros((2, 48, 80, 3)), next_action=lambda t: tf.cast(
        t, tf.float32)), _DTYPE.replace("uint8", "int32")),
    "warm_start/rank": (lambda m: m.warm_start(_zeros((1, 1, 64, 64, 3))),
                        _frames_message("warm_start", "1 1 64 64 3")),
    "warm_start/channels": (lambda m: m.warm_start(_zeros((1, 64, 64, 4))),
                            _frames_message("warm_start", "1 64 64 4")),
    "warm_start/size": (lambda m: m.warm_start(_zeros((1, 0, 64, 3))),
                        _frames_message("warm_start", "1 0 64 3")),
    "warm_start/dtype": (lambda m: m.warm_start(_zeros((1, 64, 64, 3), tf.float32)), _DTYPE),
    "stream_step/rank": (lambda m: m.stream_step(_zeros((1, 64, 64, 3))),
                         _frame_message("stream_step", "1 64 64 3")),
    "stream_step/channels": (lambda m: m.stream_step(_zeros((100, 100, 1))),
                             _frame_message("stream_step", "100 100 1")),
    "stream_step/dtype": (lambda m: m.stream_step(_zeros((100, 100, 3), tf.float32)), _DTYPE),
    "stream_warm_start/rank": (lambda m: m.stream_warm_start(_zeros((64, 64))),
                               _frame_message("stream_warm_start", "64 64")),
    "stream_warm_start/channels": (lambda m: m.stream_warm_start(_zeros((64, 64, 1))),
                                   _frame_message("stream_warm_start", "64 64 1")),
    "stream_warm_start/dtype": (lambda m: m.stream_warm_start(_zeros((64, 64, 3), tf.int32)),
                                r"int32.*uint8"),
}


@pytest.mark.parametrize("case", sorted(_WRONG_INPUTS))
def test_each_signature_refuses_each_wrong_input_by_name(module, case):
    call, message = _WRONG_INPUTS[case]
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError), match=message):
        call(module)


def test_signatures_declare_unknown_ranks_so_that_their_checks_run(module):
    spec = module.step.input_signature
    assert spec[0].shape.rank is None and spec[0].dtype == tf.uint8
    assert all(s.shape.rank is None for s in spec[1].values())
    assert module.stream_step.input_signature[0].shape.rank is None


@pytest.mark.parametrize("size", [(480, 640), (720, 1280)])
def test_frames_of_any_size_match_frames_resized_outside(module, size):
    large = _large_frame(size)
    resized = pipeline.resize_frames(large, (FRAME, FRAME))
    state = module.initial_state(tf.constant(1))
    results = {}
    for name, frame in (("large", tf.constant(large)), ("resized", resized)):
        warm = module.warm_start(frame[None])
        step = module.step(frame[None], state)
        module.stream_reset()
        stream = [module.stream_warm_start(frame), module.stream_step(frame)]
        results[name] = [warm, step] + stream
    for got, expected in zip(results["large"], results["resized"]):
        np.testing.assert_array_equal(got["predictions"], expected["predictions"])
        np.testing.assert_array_equal(got["next_action"], expected["next_action"])
