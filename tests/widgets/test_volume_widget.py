"""Volume widget and the `medseg view` window: geometry shown, labels on the grid, safe saving."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_napari._napari.app import open_viewer, plugin_widget_names
from medseg_napari._napari.layers import geometry_of_layer
from medseg_napari._widgets.volume_io import VolumeWidget
from medseg_napari.core.io import read_volume, write_volume


@pytest.fixture
def viewer_with_phantom(make_napari_viewer):
    viewer = make_napari_viewer()
    image, labels = viewer.open_sample("medseg-napari", "phantom")
    return viewer, image, labels


def test_shows_geometry_in_itk_order(viewer_with_phantom, qtbot):
    viewer, image, _ = viewer_with_phantom
    widget = VolumeWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.image_picker.layer() is image
    assert widget.size_label.text() == "96 x 96 x 40"
    assert widget.spacing_label.text() == "1, 1, 2.5"


def test_new_labels_lie_on_the_oblique_grid_and_save(viewer_with_phantom, qtbot, tmp_path):
    viewer, image, _ = viewer_with_phantom
    widget = VolumeWidget(viewer)
    qtbot.addWidget(widget)
    labels = widget.new_labels()
    np.testing.assert_allclose(labels.affine.affine_matrix, image.affine.affine_matrix)
    assert labels.data.shape == image.data.shape
    labels.data[10:20, 30:40, 30:40] = 2
    assert widget.labels_picker.layer() is labels
    path = tmp_path / "mask.nii.gz"
    assert widget.save_labels(path)
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, labels.data)
    assert back.geometry.is_close(geometry_of_layer(image), atol=1e-6)


def test_save_refuses_labels_of_another_grid_and_keeps_the_file(viewer_with_phantom, qtbot, tmp_path):
    viewer, image, _ = viewer_with_phantom
    path = tmp_path / "mask.nii.gz"
    write_volume(np.ones((2, 2, 2), np.uint8), path, geometry=geometry_of_layer(image))
    before = path.read_bytes()
    other = viewer.add_labels(np.zeros((5, 6, 7), np.uint8), name="other")
    widget = VolumeWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_picker.set_layer(other)
    assert not widget.save_labels(path)
    assert path.read_bytes() == before


def test_medseg_view_docks_every_widget_on_the_phantom(qtbot):
    viewer = open_viewer(show=False)
    try:
        names = plugin_widget_names()
        docked = [name.split(" (")[0] for name in viewer.window.dock_widgets]
        assert docked == names
        assert [layer.name for layer in viewer.layers] == ["phantom", "phantom truth"]
        segment = viewer.window.dock_widgets["Segment (medseg-napari)"]
        assert segment.model_combo.currentText() == "phantom"  # the sample works with one click
    finally:
        viewer.close()
