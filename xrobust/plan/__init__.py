"""`xrobust-plan`: what a training config or a whole sweep needs before it runs (docs/planner.md).

Takes the same overrides as `xrobust-train` (plus `plan.*`, conf/plan.yaml), never loads weights, never touches the
hub and never trains. One idea per module, in the order a plan is made:

- options.py      conf/plan.yaml's plan node, typed
- setup.py        the inputs, read from the typed config and the task's kind object (the noise method declares
                  its own step costs)
- strategies.py   the trainer's strategy resolved as Lightning resolves it, one memory model per strategy
- inventory.py    exact parameter counts of the classifier built on the meta device
- activations.py  activation memory of one training step, noise method included
- memory.py       memory per device: the strategy's model states, activations and reserve, the verdict
- search.py       the least disruptive change that makes a job fit, or the largest micro-batch that does
- data.py         examples and tokens per example: recorded figures (task_sizes.py), or measured from local files
- cost.py         steps, tokens, FLOPs, GPU-hours at a stated MFU on a named GPU
- sweep.py        `-m`: every job of the Hydra sweep, expanded as training expands it
- output.py       what is printed; cli.py the command line
"""

from xrobust.plan.cli import main
from xrobust.plan.inventory import Inventory, inventory, seq2seq_parameters
from xrobust.plan.memory import Plan, estimate
from xrobust.plan.output import format_plan, recommended_overrides
from xrobust.plan.search import make_plan, plan_from_config
from xrobust.plan.setup import Setup, setup_from_config

__all__ = [
    "Inventory",
    "Plan",
    "Setup",
    "estimate",
    "format_plan",
    "inventory",
    "main",
    "make_plan",
    "plan_from_config",
    "recommended_overrides",
    "seq2seq_parameters",
    "setup_from_config",
]
