"""MetricWriter: scalars and the figures drawn into `figures/` go to TensorBoard."""

import struct

import ml_collections
import numpy as np
from PIL import Image
from tensorboardX.proto import event_pb2

from attn_research.train import metric_writer
from attn_research.train.metric_writer import MetricWriter


def read_events(workdir) -> list[event_pb2.Event]:
    """Every event in the TFRecord files of `<workdir>/tensorboard` (length, crc, data, crc)."""
    events = []
    for path in sorted((workdir / "tensorboard").glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            events.append(event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length]))
            offset += 12 + length + 4
    return events


def images_by_tag(workdir) -> dict[str, list[tuple[int, int, int]]]:
    """{tag: [(step, height, width), ...]} of the image summaries."""
    out = {}
    for event in read_events(workdir):
        for value in event.summary.value:
            if value.HasField("image"):
                out.setdefault(value.tag, []).append(
                    (event.step, value.image.height, value.image.width)
                )
    return out


def _png(path, height, width):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)


def test_figure_tags_drop_the_step():
    assert metric_writer.figure_tag("attention_0_step_1000.png") == "figures/attention_0"
    assert metric_writer.figure_tag("attention_000030.png") == "figures/attention"
    assert metric_writer.figure_tag("bleu_by_length_30.png") == "figures/bleu_by_length"


def test_new_figures_go_to_tensorboard_at_the_step_of_the_write(tmp_path):
    _png(tmp_path / "figures" / "attention_0_step_5.png", 10, 12)  # from before a resume
    writer = MetricWriter(str(tmp_path), 5)
    writer.write(6, {"train/loss": 1.0})
    _png(tmp_path / "figures" / "attention_0_step_10.png", 20, 30)
    _png(tmp_path / "figures" / "bleu_by_length_10.png", 8, 9)
    writer.write(10, {"eval/bleu": 3.0})
    writer.write(11, {"train/loss": 0.5})
    writer.close()
    assert images_by_tag(tmp_path) == {
        "figures/attention_0": [(10, 20, 30)],
        "figures/bleu_by_length": [(10, 8, 9)],
    }


def test_config_goes_to_hparams_and_signatures_to_text(tmp_path):
    config = ml_collections.ConfigDict(
        {"seed": 3, "mesh": {"data": -1}, "optimizer": {"learning_rate": 1e-3}, "dims": (1, 2)}
    )
    assert metric_writer.flat_hparams(config) == {
        "seed": 3,
        "mesh.data": -1,
        "optimizer.learning_rate": 1e-3,
        "dims": "(1, 2)",
    }
    writer = MetricWriter(str(tmp_path), 0)
    writer.write_config(config, {"eval/bleu": "nrefs:1|tok:13a"})
    writer.close()
    values = [value for event in read_events(tmp_path) for value in event.summary.value]
    hparams = b"".join(
        v.metadata.plugin_data.content
        for v in values
        if v.metadata.plugin_data.plugin_name == "hparams"
    )
    assert b"optimizer.learning_rate" in hparams and b"mesh.data" in hparams
    texts = {v.tag: v.tensor.string_val for v in values if v.tag.startswith("signatures/")}
    assert [b"nrefs:1|tok:13a"] in texts.values() and all("eval/bleu" in t for t in texts)
