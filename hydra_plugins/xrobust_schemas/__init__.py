"""Registers xrobust's config schemas (xrobust/config/schemas.py) in Hydra's ConfigStore wherever Hydra composes
conf/: Hydra imports every hydra_plugins module before it composes, the compose API included."""

import xrobust.config.schemas  # noqa: F401
