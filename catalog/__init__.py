"""The catalog: GPUs, priced cloud instances and LLM shapes, read from curated CSVs.

Public API (see :mod:`infersave.catalog.load`): :data:`PRICE_SETS`, :data:`CATALOGS`,
:data:`PROVIDERS`, :func:`gpus`, :func:`instances`, :func:`instances_for`,
:func:`all_instances`, :func:`providers`, :func:`regions`, :func:`models`, :func:`find_model`,
:func:`find_instance`, :func:`find_gpu`, :func:`apply_price_overrides` (a user's own prices,
see :mod:`infersave.catalog.prices`), :class:`CatalogError`, and the records :class:`GPU`,
:class:`Instance`, :class:`LLM`.
"""

from infersave.catalog.load import (
    CATALOGS,
    PRICE_SETS,
    PROVIDERS,
    CatalogError,
    all_instances,
    count_parameters,
    find_gpu,
    find_instance,
    find_model,
    gpus,
    instances,
    instances_for,
    llm_from_config,
    models,
    providers,
    read_records,
    regions,
)
from infersave.catalog.prices import apply_price_overrides
from infersave.catalog.schemas import GPU, LLM, Instance

__all__ = [
    "CATALOGS",
    "GPU",
    "LLM",
    "PRICE_SETS",
    "PROVIDERS",
    "CatalogError",
    "Instance",
    "all_instances",
    "apply_price_overrides",
    "count_parameters",
    "find_gpu",
    "find_instance",
    "find_model",
    "gpus",
    "instances",
    "instances_for",
    "llm_from_config",
    "models",
    "providers",
    "read_records",
    "regions",
]
