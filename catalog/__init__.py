"""The catalog: GPUs, priced cloud instances and LLM shapes, read from curated CSVs.

Public API (see :mod:`infersave.catalog.load`): :data:`PRICE_SETS`, :func:`gpus`,
:func:`instances`, :func:`regions`, :func:`models`, :func:`find_model`, :func:`find_instance`,
:func:`find_gpu`, :class:`CatalogError`, and the records :class:`GPU`, :class:`Instance`,
:class:`LLM`.
"""

from infersave.catalog.load import (
    PRICE_SETS,
    CatalogError,
    count_parameters,
    find_gpu,
    find_instance,
    find_model,
    gpus,
    instances,
    llm_from_config,
    models,
    read_records,
    regions,
)
from infersave.catalog.schemas import GPU, LLM, Instance

__all__ = [
    "GPU",
    "LLM",
    "PRICE_SETS",
    "CatalogError",
    "Instance",
    "count_parameters",
    "find_gpu",
    "find_instance",
    "find_model",
    "gpus",
    "instances",
    "llm_from_config",
    "models",
    "read_records",
    "regions",
]
