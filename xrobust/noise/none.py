"""`noise=none`: plain fine-tuning on the clean English batch."""

import dataclasses

from xrobust.noise.base import NoiseMethod


@dataclasses.dataclass(kw_only=True, eq=False)
class NoNoise(NoiseMethod):
    """The base behaviour: the loss on the clean batch, the clean classifier's predictions, no hyper-parameter."""
