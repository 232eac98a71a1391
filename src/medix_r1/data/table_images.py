"""Images of a table (a ``datasets.Dataset``) by reference: which table, row, column and position.

A 20,000-row image dataset holds gigabytes of encoded images; a training process (one per GPU) that copied
every image's bytes into its samples held all of them in RAM. A :class:`TableImage` holds only where the
image is: the loader reads the text columns and the *number* of images per row (from the Arrow offsets,
without touching the image bytes), and :meth:`TableImage.read_bytes` reads the one image when a batch needs it.
With a memory-mapped table (``save_to_disk`` folders, hub datasets cached by ``load_dataset``) nothing is
read until then; a Parquet file is read into memory by pyarrow, so its images cost RAM once, in Arrow, not
again in every sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def is_image_feature(feature: Any) -> bool:
    """True for an ``Image`` column or a list of them (``datasets.List`` / ``Sequence`` / ``[Image()]``)."""
    import datasets

    if isinstance(feature, datasets.Image):
        return True
    inner = getattr(feature, "feature", None)
    if isinstance(feature, list) and feature:
        inner = feature[0]
    return inner is not None and is_image_feature(inner)


class ImageTable:
    """One table whose image columns are read on demand (shared by all :class:`TableImage` of the table)."""

    def __init__(self, ds: Any, name: str):
        self.ds = ds
        self.name = name

    def image_columns(self) -> list[str]:
        return [name for name, feat in self.ds.features.items() if is_image_feature(feat)]

    def counts(self, column: str) -> list[int]:
        """Images per row of ``column`` (0 for a missing value), read from the Arrow offsets only."""
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self.ds.data.column(column)
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            counts = pc.fill_null(pc.list_value_length(arr), 0)
        else:
            counts = pc.cast(pc.is_valid(arr), pa.int64())
        indices = getattr(self.ds, "_indices", None)  # a selected / shuffled view: map rows to table rows
        if indices is not None:
            counts = pc.take(counts, indices.column(0))
        return counts.to_pylist()

    def text_rows(self) -> Any:
        """The rows without their image columns, as dicts, straight from Arrow (zero-copy column drop).

        Not ``Dataset.remove_columns``: it deep-copies the dataset, which for a table read into memory (a
        Parquet file) is a second copy of every image.
        """
        text = self.ds.data.table.drop_columns(self.image_columns())
        indices = getattr(self.ds, "_indices", None)
        if indices is not None:
            text = text.take(indices.column(0))
        for batch in text.to_batches(max_chunksize=1000):
            yield from batch.to_pylist()

    def is_list(self, column: str) -> bool:
        return not _is_single_image(self.ds.features[column])

    def fetch(self, column: str, row: int, position: int | None) -> Any:
        """The stored image (``{"bytes", "path"}``) at ``row`` of ``column`` (``position`` in a list column).

        Read straight from the Arrow column, undecoded, without casting the table (a cast to
        ``Image(decode=False)`` would rewrite it) and without reading the row's other images.
        """
        indices = getattr(self.ds, "_indices", None)
        table_row = indices.column(0)[row].as_py() if indices is not None else row
        value = self.ds.data.column(column)[table_row]
        if position is not None:
            value = value.values[position]
        return value.as_py()


def _is_single_image(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Image)


class TableImage:
    """A reference to one image in an :class:`ImageTable`; ``read_bytes()`` reads it (the lazy-image protocol
    :func:`medix_r1.data.schema.load_image` decodes)."""

    __slots__ = ("base_dir", "column", "position", "row", "table")

    def __init__(self, table: ImageTable, column: str, row: int, position: int | None,
                 base_dir: Path | None = None):
        self.table = table
        self.column = column
        self.row = row
        self.position = position
        self.base_dir = base_dir

    def cell(self) -> Any:
        """The stored cell, ``{"bytes", "path"}`` as ``datasets`` writes it."""
        return self.table.fetch(self.column, self.row, self.position)

    def read_bytes(self) -> bytes:
        """The encoded image (what :func:`medix_r1.data.schema.load_image` decodes); a stored relative path
        resolves against ``base_dir`` (the data file's folder)."""
        from medix_r1.data.schema import SampleError

        value = self.cell() or {}
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            path = Path(value["path"])
            path = path if path.is_absolute() or self.base_dir is None else self.base_dir / path
            if path.is_file():
                return path.read_bytes()
            raise SampleError("image", f"image file not found: {path}")
        raise SampleError("image", f"{self!r}: the image cell has neither bytes nor a path")

    def __repr__(self) -> str:
        where = f"[{self.position}]" if self.position is not None else ""
        return f"<image {self.table.name} row {self.row} {self.column}{where}>"


def row_references(table: ImageTable, column: str, row: int, count: int) -> Any:
    """What a row's image cell becomes: a list of references (list column) or one reference / None."""
    if table.is_list(column):
        return [TableImage(table, column, row, k) for k in range(count)]
    return TableImage(table, column, row, None) if count else None
