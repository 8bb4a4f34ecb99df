"""The batch model lives in dse.model.batch (one model for the mapper and `dse model`)."""

from dse.model.batch import BatchModel, BatchResult, group_translations, rows_from_mappings

__all__ = ["BatchModel", "BatchResult", "group_translations", "rows_from_mappings"]
