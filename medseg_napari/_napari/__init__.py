"""napari glue: reader, writer, sample data and layer <-> Volume conversion."""
