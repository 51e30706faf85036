"""`hydra/sweeper=halving` (conf/hydra/sweeper/halving.yaml): the grid of Hydra's basic sweeper, with the runs of a
losing learning rate stopped after their first epochs (the rule: xrobust/sweep/halving.py).

Each rung is one batch for the configured launcher (basic, local_parallel, slurm): every job still in the running is
launched with a rung stop (xrobust/sweep/rung_record.py), its return value (the job's best English dev accuracy so far,
xrobust.train.selection_metric) ranks it, and the kept jobs go on, each resuming from its own last.ckpt. The last batch
runs the kept jobs to the end with exactly the overrides a basic sweep gives them, so they skip, resume and write
results.json as any sweep job does. With `rule: one_seed` (conf/hydra/sweeper/one_seed.yaml, the rule in
xrobust/sweep/one_seed.py) the first batch is every value on each cell's first seed, run to the end, and the second
the other seeds at the value chosen. Hydra imports this module at every start: xrobust is imported in sweep().
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class HalvingSweeper(Sweeper):
    """Successive halving of `key` per cell (every other override but `seed_key`) on the mean dev-en accuracy, or
    (`rule: one_seed`) `key` chosen on each cell's first seed."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        key: str = "optim.lr_scale",
        seed_key: str = "seed",
        rung_epochs: int = 1,
        eta: int = 3,
        rule: str = "halving",
    ) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = params or {}
        self.key, self.seed_key = key, seed_key
        self.rung_epochs, self.eta, self.rule = rung_epochs, eta, rule
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from xrobust.errors import XrobustError

        try:
            return self._sweep(arguments)
        except XrobustError as err:
            print(f"xrobust: error: {err}", file=sys.stderr)
            sys.exit(2)

    def _sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        from xrobust.sweep import halving
        from xrobust.sweep.expand import sweep_jobs

        assert self.config is not None and self.hydra_context is not None
        halving.check_rule(self.rung_epochs, self.eta, self.rule)
        jobs = sweep_jobs(self.params, arguments, self.hydra_context.config_loader)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        grid = halving.points(jobs, self.key, self.seed_key)
        settings = {point: self._job_settings(point.overrides) for point in grid}
        ledger = halving.Ledger(sweep_dir / halving.LEDGER_FILE)
        if self.rule == "one_seed":
            return self._sweep_one_seed(grid, settings, ledger)
        alive = halving.by_cell(grid)
        returns: list[list[JobReturn]] = []
        failure: BaseException | None = None
        rung = 0
        while True:
            epochs = halving.rung_epochs(rung, self.rung_epochs, self.eta)
            selecting = {
                cell: members
                for cell, members in alive.items()
                if len({p.value for p in members}) > 1 and all(self._before_end(epochs, settings[p]) for p in members)
            }
            if not selecting:
                break
            undecided = {c: m for c, m in selecting.items() if ledger.kept(rung, m, epochs, self.eta) is None}
            if undecided:
                log.info("halving: rung %d, %d epoch(s), %d cell(s)", rung + 1, epochs, len(undecided))
                results = self._launch([list(p.overrides) for m in undecided.values() for p in m], epochs)
                returns.append(results)
                failure = failure or self._decide(undecided, results, rung, epochs, ledger, settings)
                ledger.save()
            for cell, members in selecting.items():
                kept = ledger.kept(rung, members, epochs, self.eta)
                if kept is None:  # a job of the cell failed: the cell waits for the sweep to run again
                    del alive[cell]
                else:
                    alive[cell] = [p for p in members if p.value in kept]
            rung += 1
        final = [list(p.overrides) for members in alive.values() for p in members]
        if final:
            returns.append(self._launch(final, None))
        if failure is not None:
            raise failure
        return returns

    def _sweep_one_seed(self, grid, settings, ledger) -> list[list[JobReturn]]:
        """Every value on each cell's first seed, to the end; then the other seeds at the value chosen. A cell whose
        first-seed job failed goes no further until the sweep runs again."""
        from xrobust.sweep import halving, one_seed

        cells = halving.by_cell(grid)
        first = {cell: one_seed.first_seed(members, self.seed_key) for cell, members in cells.items()}

        def chosen(cell: str) -> list[str] | None:
            return ledger.kept(0, first[cell], settings[first[cell][0]][0], None, one_seed.ONE_SEED)

        returns: list[list[JobReturn]] = []
        failure: BaseException | None = None
        undecided = {cell: first[cell] for cell in cells if chosen(cell) is None}
        if undecided:
            log.info("one_seed: every %s on the first seed of %d cell(s)", self.key, len(undecided))
            results = self._launch([list(p.overrides) for m in undecided.values() for p in m], None)
            returns.append(results)
            failure = self._decide(undecided, results, 0, None, ledger, settings)
            ledger.save()
        final = [
            list(p.overrides)
            for cell, members in cells.items()
            if chosen(cell) is not None
            for p in one_seed.on_other_seeds(members, self.seed_key, chosen(cell))
        ]
        if final:
            returns.append(self._launch(final, None))
        if failure is not None:
            raise failure
        return returns

    def _job_settings(self, overrides: tuple[str, ...]) -> tuple[int | None, str]:
        """The job's trainer.max_epochs (None: no epoch limit) and checkpoint.keep_after_success, as it composes."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        max_epochs = OmegaConf.select(cfg, "trainer.max_epochs")
        keep = OmegaConf.select(cfg, "checkpoint.keep_after_success", default="all")
        return (None if max_epochs in (None, -1) else int(max_epochs)), str(keep)

    @staticmethod
    def _before_end(epochs: int, settings: tuple[int | None, str]) -> bool:
        return settings[0] is None or epochs < settings[0]

    def _launch(self, batch: list[list[str]], epochs: int | None) -> list[JobReturn]:
        """One batch through the configured launcher, in chunks of max_batch_size; `epochs`: the rung's stop."""
        from xrobust.sweep.rung_record import rung_overrides

        assert self.launcher is not None
        extra = rung_overrides(epochs) if epochs is not None else []
        results: list[JobReturn] = []
        for chunk in BasicSweeper.split_overrides_to_chunks([job + extra for job in batch], self.max_batch_size):
            self.validate_batch_is_legal(chunk)
            results += list(self.launcher.launch(chunk, initial_job_idx=self.job_idx))
            self.job_idx += len(chunk)
        return results

    def _decide(self, cells, results, rung, epochs, ledger, settings) -> BaseException | None:
        """Rank each cell whose every job returned a score; record the decision in the ledger and in each job's
        rung.json, and cut a stopped job's checkpoints (`epochs` None: one_seed's full runs, the best one kept, no
        checkpoint cut). Returns the first exception a job raised."""
        from xrobust.sweep import halving
        from xrobust.sweep.rung_record import CONTINUED, STOPPED, point_overrides, write_decision

        failure = None
        by_point: dict[tuple[str, ...], JobReturn] = {}
        for result in results:
            by_point[tuple(point_overrides(list(result.overrides)))] = result
            if result.status == JobStatus.FAILED and failure is None:
                failure = result._return_value
        for members in cells.values():
            returned = [by_point.get(p.overrides) for p in members]
            scores = [r.return_value if r is not None and r.status == JobStatus.COMPLETED else None for r in returned]
            if any(score is None for score in scores):
                log.warning("halving: no decision for %s: a job failed (its failed.json says why)", members[0].cell)
                continue
            if epochs is None:  # one_seed: the best value of the full runs on the first seed
                full_epochs = settings[members[0]][0]
                decision = halving.decide(dict(zip(members, scores, strict=True)), max(len(members), 2))
                ledger.record(rung, members, full_epochs, None, decision, rule=self.rule)
            else:
                decision = halving.decide(dict(zip(members, scores, strict=True)), self.eta)
                ledger.record(rung, members, epochs, self.eta, decision)
            for point, result, score in zip(members, returned, scores, strict=True):
                folder = Path(str(result.hydra_cfg.hydra.runtime.output_dir))
                kept = point.value in decision["kept"]
                record = {
                    **({"rule": self.rule} if epochs is None else {}),
                    "rung": rung + 1,
                    "epochs": epochs if epochs is not None else settings[point][0],
                    "decision": CONTINUED if kept else STOPPED,
                    "key": self.key,
                    "value": point.value,
                    "dev_acc": score,
                    "mean_dev_acc": decision["candidates"][point.value],
                    **decision,
                }
                write_decision(folder, record)
                if not kept and epochs is not None:
                    halving.cut_checkpoints(folder, settings[point][1])
        return failure
