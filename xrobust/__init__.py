"""xrobust: zero-shot cross-lingual transfer, robust training, and size comparisons under Hydra."""

from xrobust.config.resolvers import register as _register_resolvers

_register_resolvers()
