"""Model file format, registry and network building."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_napari.core.errors import MedsegError
from medseg_napari.core.model.format import (
    FORMAT_VERSION,
    ModelFormatError,
    SegmentationModel,
    load_model,
    save_model,
)
from medseg_napari.core.model.network import build_network, default_network_kwargs, network_of
from medseg_napari.core.model.registry import MAX_MODEL_BYTES, list_models, resolve_model


def _tiny_model() -> SegmentationModel:
    kwargs = default_network_kwargs(2, 3, channels=(4, 8), num_res_units=1)
    torch.manual_seed(0)
    net = build_network("monai.networks.nets.UNet", kwargs)
    return SegmentationModel(
        network_class="monai.networks.nets.UNet",
        network_kwargs=kwargs,
        state_dict=net.state_dict(),
        labels={1: "left", 2: "right"},
        channels=["T1", "FLAIR"],
        spacing=(3.0, 1.0, 1.0),
        orientation="RAS",
        normalization={"method": "ct_window", "window": [-160.0, 240.0]},
        patch_size=(16, 32, 32),
        training={"data": "x", "iterations": 7, "val_dice": {1: 0.5, 2: 0.25}, "parent": None},
    )


def test_round_trip_plain_weights_only(tmp_path):
    model = _tiny_model()
    path = save_model(model, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # plain types and tensors only
    assert raw["format"] == "medseg-napari-model" and raw["version"] == FORMAT_VERSION
    assert raw["network"]["class"] == "monai.networks.nets.UNet"
    assert raw["preprocessing"] == {
        "spacing": [3.0, 1.0, 1.0],
        "orientation": "RAS",
        "normalization": {"method": "ct_window", "window": [-160.0, 240.0]},
    }
    assert set(raw["versions"]) == {"medseg_napari", "torch", "monai"}
    loaded = load_model(path)
    assert loaded.name == "m"
    assert loaded.labels == {1: "left", 2: "right"} and loaded.channels == ["T1", "FLAIR"]
    assert loaded.patch_size == (16, 32, 32) and loaded.spacing == (3.0, 1.0, 1.0)
    assert loaded.training["val_dice"] == {1: 0.5, 2: 0.25}
    for key, value in model.state_dict.items():
        assert torch.equal(value, loaded.state_dict[key])
    # The weights rebuild the same network: identical outputs.
    x = torch.randn(1, 2, 16, 32, 32)
    with torch.no_grad():
        a = network_of(model)(x)
        b = network_of(loaded)(x)
    assert torch.equal(a, b)


def test_half_precision_storage(tmp_path):
    model = _tiny_model()
    full = save_model(model, tmp_path / "full.pt")
    half = save_model(model, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded = load_model(half)
    for key, value in model.state_dict.items():
        got = loaded.state_dict[key]
        assert got.dtype == value.dtype
        if value.is_floating_point():
            np.testing.assert_allclose(got.numpy(), value.numpy(), rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("key", ["network", "state_dict", "labels", "channels", "preprocessing", "patch_size"])
def test_missing_key_is_named(tmp_path, key):
    data = _tiny_model().to_dict()
    del data[key]
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(ModelFormatError, match=f"lacks '{key}'"):
        load_model(tmp_path / "m.pt")


def test_missing_preprocessing_entry(tmp_path):
    data = _tiny_model().to_dict()
    del data["preprocessing"]["orientation"]
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(ModelFormatError, match=r"preprocessing\.orientation"):
        load_model(tmp_path / "m.pt")


def test_newer_version_refused(tmp_path):
    data = _tiny_model().to_dict()
    data["version"] = FORMAT_VERSION + 1
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(ModelFormatError, match="newer medseg-napari"):
        load_model(tmp_path / "m.pt")


def test_corrupt_truncated_empty_and_foreign_files(tmp_path):
    good = save_model(_tiny_model(), tmp_path / "good.pt")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, pattern in [
        (truncated, "corrupt"),
        (garbage, "corrupt"),
        (empty, "empty"),
        (foreign, "not a medseg-napari model"),
        (tmp_path / "missing.pt", "no such model file"),
    ]:
        with pytest.raises(ModelFormatError, match=pattern) as info:
            load_model(path)
        assert "\n" not in str(info.value)


def test_malicious_pickle_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "medseg-napari-model", "x": Evil()}, path)
    with pytest.raises(ModelFormatError, match="corrupt"):
        load_model(path)


def test_only_monai_networks_are_built():
    with pytest.raises(ModelFormatError, match=r"not a monai\.networks\.nets class"):
        build_network("os.system", {})
    with pytest.raises(ModelFormatError, match="no network class"):
        build_network("monai.networks.nets.NoSuchNet", {})


def test_weights_that_do_not_fit_the_network(tmp_path):
    model = _tiny_model()
    model.network_kwargs = default_network_kwargs(2, 3, channels=(8, 16), num_res_units=1)
    with pytest.raises(ModelFormatError, match="do not fit"):
        network_of(model)


def test_shipped_models_have_cards_and_fit_the_size_limit():
    models = list_models()
    assert "phantom" in [m.name for m in models]
    for info in models:
        assert info.size_bytes <= MAX_MODEL_BYTES
        assert info.card is not None and info.summary
        card = info.card.read_text()
        for needed in ("medseg train", "Licence", "Iterations", "Device", "Dice"):
            assert needed in card, f"{info.name}.md lacks {needed}"
        model = load_model(info.path)
        # The card's numbers are the file's numbers.
        for value, dice in model.training["val_dice"].items():
            assert f"{dice:.3f}" in card, (value, dice)
    assert resolve_model("phantom").name == "phantom.pt"


def test_resolve_unknown_model():
    with pytest.raises(MedsegError, match=r"unknown model 'nope'.*phantom"):
        resolve_model("nope")
    with pytest.raises(MedsegError, match="no such model file"):
        resolve_model("missing/model.pt")
