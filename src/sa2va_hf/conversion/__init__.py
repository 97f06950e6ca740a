"""Conversion of official Sa2VA checkpoints into the sa2va-hf format: key tables, tensor surgery, configs."""

from .convert_official import (
    OfficialCheckpointConfig,
    check_official_layout,
    convert_official_checkpoint,
    expected_state_dict_shapes,
    load_official_config,
    translate_official_config,
)
from .key_mapping import (
    DROPPED_KEYS,
    KEY_FAMILIES,
    TensorGroup,
    convert_keys,
    find_dropped_keys,
    plan_tensor_groups,
)


__all__ = [
    "DROPPED_KEYS",
    "KEY_FAMILIES",
    "OfficialCheckpointConfig",
    "TensorGroup",
    "check_official_layout",
    "convert_keys",
    "convert_official_checkpoint",
    "expected_state_dict_shapes",
    "find_dropped_keys",
    "load_official_config",
    "plan_tensor_groups",
    "translate_official_config",
]
