"""Data: the canonical sample, loaders for the MediX and canonical layouts, validation, the bundled demo set."""

from medix_r1.data.loaders import (
    BUNDLED_DIR,
    DataError,
    LoadResult,
    RowIssue,
    iter_samples,
    load_samples,
    row_to_sample,
    validate,
)
from medix_r1.data.schema import ANSWER_TYPES, Sample, SampleError, load_image

__all__ = ["ANSWER_TYPES", "BUNDLED_DIR", "DataError", "LoadResult", "RowIssue", "Sample", "SampleError",
           "iter_samples", "load_image", "load_samples", "row_to_sample", "validate"]
