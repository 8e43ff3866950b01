"""python -m patchwork_tf.visualize's library function writes all three renderings."""
from PIL import Image

from patchwork_tf import visualize


def test_visualize_writes_fig2_fig4_and_gif(tmp_path):
    paths = visualize.visualize(str(tmp_path / "out"), task="backbone", frame_size=64, m=2,
                                n=1, clip_length=6, policy="random")
    assert Image.open(paths["fig2"]).size == (1000, 460)
    assert Image.open(paths["fig4"]).size == (1000, 460)
    with Image.open(paths["gif"]) as gif:
        assert gif.n_frames == 6 and gif.size == (2 * (64 + 4 + 64), 128)
