"""tf.data pipelines over clips: per-example resize and padding, batching, stage-1 frames.

Sources yield clips of any frame size and object count (see `patchwork_tf.data.clips`);
`resize_and_pad_clip` brings one to a fixed frame size and object count, `batch_clips` batches
them for stage 3 (paper Sec. 3.4), and `stage1_frames` yields single frames of real clips mixed
with frames of fake videos from still images for the single-frame model (stage 1).
"""
import numpy as np
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import fake_video as fake_video_lib

RESIZE_METHODS = ("letterbox", "stretch")
FRAME_KEYS = ("boxes", "classes", "valid")


def clip_dataset(generator_fn, with_instance_masks=True, with_mask=True):
    """A `tf.data.Dataset` of the clips a Python generator yields (shapes may vary).

    Args:
        generator_fn: callable returning an iterable of numpy clips, e.g.
            `lambda: davis.davis_clips(root, "train", 16)`.
        with_instance_masks, with_mask: whether those clips carry the optional keys.
    """
    signature = clips_lib.clip_signature(
        with_instance_masks=with_instance_masks, with_mask=with_mask)

    def generate():
        for clip in generator_fn():
            yield {key: clip[key] for key in signature}

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def fake_video_dataset(records_fn, seed, num_frames=16, frame_size=(128, 128),
                       with_instance_masks=True, **fake_video_args):
    """Fake video clips (paper Sec. 3.4), one per still record, deterministic in `seed`.

    Args:
        records_fn: callable returning an iterable of still records (COCO, VOC readers).
        seed: seeds the `np.random.Generator` that draws every clip's views and speed.
        num_frames, frame_size: T and (h, w) of the clips.
        with_instance_masks: the records carry `instance_masks` (and clips `mask`).
        **fake_video_args: other arguments of `fake_video.fake_video`.
    """
    def generate():
        rng = np.random.default_rng(seed)
        for record in records_fn():
            yield fake_video_lib.fake_video(record, rng, num_frames, frame_size,
                                            **fake_video_args)

    return clip_dataset(generate, with_instance_masks, with_instance_masks)


def resize_frames(frames, size):
    """Resizes uint8 frames `[..., h, w, 3]` to `size` (H, W) as training reads them: bilinear
    on each side on its own, rounded back to uint8. Evaluation resizes frames with it too."""
    resized = tf.image.resize(tf.cast(frames, tf.float32), size, method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def resize_and_pad_clip(clip, frame_size, max_objects, clip_length=None, method="letterbox"):
    """Brings one clip of tensors to `frame_size` and `max_objects` slots.

    "letterbox" scales the frames by one factor so that they fit, keeping the aspect ratio,
    and pads the bottom and right with zeros; "stretch" resizes each side on its own. Frames
    are resized bilinearly, masks by nearest neighbour; boxes follow the frames.

    Args:
        clip: dict of tensors, `frames` uint8 [T, h, w, 3], K objects.
        frame_size: (H, W) of the output.
        max_objects: K_out >= K; extra slots are padding (class and track id -1).
        clip_length: if given, T must equal it (checked when the dataset runs).
        method: "letterbox" or "stretch".

    Returns:
        dict of tensors with static shapes [T, H, W, 3], [T, K_out, 4], ... (see clips.py).
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"method must be one of {RESIZE_METHODS}, got {method!r}.")
    out_h, out_w = (int(v) for v in frame_size)
    frames = clip[clips_lib.FRAMES]
    shape = tf.shape(frames)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    num_objects = tf.shape(clip[clips_lib.CLASSES])[1]
    checks = [tf.debugging.assert_less_equal(
        num_objects, max_objects,
        message=f"a clip has more objects than max_objects={max_objects}; raise max_objects")]
    if clip_length is not None:
        checks.append(tf.debugging.assert_equal(
            shape[0], clip_length, message=f"a clip's length differs from clip_length="
                                           f"{clip_length}; cut clips to it in the reader"))
    # Every tensor of the clip waits for the checks, so that no op on it (the objects' padding
    # fails on too many objects) raises before the check's message.
    with tf.control_dependencies(checks):
        clip = {key: tf.identity(value) for key, value in clip.items()}
    frames = clip[clips_lib.FRAMES]
    if method == "letterbox":
        scale = tf.minimum(out_h / height, out_w / width)
        inner = (tf.cast(tf.round(height * scale), tf.int32),
                 tf.cast(tf.round(width * scale), tf.int32))
        inner = (tf.minimum(inner[0], out_h), tf.minimum(inner[1], out_w))
    else:
        inner = (tf.constant(out_h), tf.constant(out_w))

    def fit(images, resize_method):
        resized = tf.image.resize(images, inner, method=resize_method)
        return tf.image.pad_to_bounding_box(resized, 0, 0, out_h, out_w)

    out = {clips_lib.FRAMES: tf.image.pad_to_bounding_box(resize_frames(frames, inner), 0, 0,
                                                          out_h, out_w)}
    box_scale = tf.stack([tf.cast(inner[0], tf.float32) / out_h,
                          tf.cast(inner[1], tf.float32) / out_w] * 2)
    pad = [[0, 0], [0, max_objects - num_objects]]
    out[clips_lib.BOXES] = tf.pad(clip[clips_lib.BOXES] * box_scale, pad + [[0, 0]])
    out[clips_lib.CLASSES] = tf.pad(clip[clips_lib.CLASSES], pad, constant_values=-1)
    out[clips_lib.TRACK_IDS] = tf.pad(clip[clips_lib.TRACK_IDS], pad, constant_values=-1)
    out[clips_lib.VALID] = tf.pad(clip[clips_lib.VALID], pad)
    if clips_lib.MASK in clip:
        out[clips_lib.MASK] = fit(clip[clips_lib.MASK][..., None], "nearest")[..., 0]
    if clips_lib.INSTANCE_MASKS in clip:
        masks = tf.transpose(clip[clips_lib.INSTANCE_MASKS], [0, 2, 3, 1])
        masks = tf.transpose(fit(masks, "nearest"), [0, 3, 1, 2])
        out[clips_lib.INSTANCE_MASKS] = tf.pad(masks, pad + [[0, 0], [0, 0]])
    out[clips_lib.CLIP_ID] = clip[clips_lib.CLIP_ID]
    length = clip_length if clip_length is not None else frames.shape[0]
    for key, value in out.items():
        if key != clips_lib.CLIP_ID:
            value.set_shape([length] + value.shape[1:].as_list())
    out[clips_lib.BOXES].set_shape([length, max_objects, 4])
    for key in (clips_lib.CLASSES, clips_lib.TRACK_IDS, clips_lib.VALID):
        out[key].set_shape([length, max_objects])
    if clips_lib.INSTANCE_MASKS in out:
        out[clips_lib.INSTANCE_MASKS].set_shape([length, max_objects, out_h, out_w])
    return out


def batch_clips(dataset, batch_size, frame_size, clip_length, max_objects, method="letterbox",
                drop_remainder=True):
    """Resizes and pads every clip, then batches: frames uint8 [B, T, H, W, 3], etc."""
    dataset = dataset.map(
        lambda clip: resize_and_pad_clip(clip, frame_size, max_objects, clip_length, method),
        num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _frames(dataset, keys):
    """Splits fixed-shape clips into single frames: `image` [H, W, 3] plus `keys` per frame."""
    def split(clip):
        frames = {"image": clip[clips_lib.FRAMES]}
        frames.update({key: clip[key] for key in keys})
        return tf.data.Dataset.from_tensor_slices(frames)

    return dataset.flat_map(split)


def stage1_frames(clips, fake_clips, fake_fraction, frame_size, max_objects, seed,
                  keys=FRAME_KEYS, method="letterbox"):
    """Single frames of real clips mixed with frames of fake videos (stage 1, Sec. 3.4).

    Args:
        clips: dataset of clips (any source).
        fake_clips: dataset of fake-video clips (see `fake_video_dataset`).
        fake_fraction: share of the output frames drawn from `fake_clips`, in [0, 1].
        frame_size: (H, W) of the output frames.
        max_objects: object slots per frame.
        seed: seed of the mixing draw.
        keys: per-frame labels to keep; both sources must carry them.
        method: resize method of `resize_and_pad_clip`.

    Returns:
        Dataset of dicts: `image` uint8 [H, W, 3], and `keys` (e.g. `boxes` [K, 4], `classes`
        [K], `valid` [K], `mask` [H, W]). Shuffle and batch it downstream.
    """
    if not 0.0 <= fake_fraction <= 1.0:
        raise ValueError(f"fake_fraction must be in [0, 1], got {fake_fraction}.")
    sources = [
        _frames(d.map(lambda clip: resize_and_pad_clip(clip, frame_size, max_objects,
                                                       method=method)), keys)
        for d in (clips, fake_clips)]
    return tf.data.Dataset.sample_from_datasets(
        sources, weights=[1.0 - fake_fraction, fake_fraction], seed=seed,
        stop_on_empty_dataset=False)
