"""The batch model lives in dse.model.batch (one model for the mapper and `dse model`)."""

from dse.model.batch import BatchModel, BatchResult, rows_from_mappings
from dse.model.multicast import group_translations

__all__ = ["BatchModel", "BatchResult", "group_translations", "rows_from_mappings"]
