"""Per-step events: JSON lines in the state folder, wandb, and a terminal scoreboard.

Timing keys are stable so dashboards survive upgrades: ``timings/<stage>`` in
seconds for sync, sample, generate_challenge, query, reward (and
``timings/reward/<model>``, ``timings/penalty/<name>``), wait_turn (a concurrent step
waiting for the one before it to commit), weights, save, step; with
``forwards/in_flight`` and ``generate/batch_size`` for concurrent forwards.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger(__name__)
EVENTS_FILE = "events.jsonl"


def step_event(
    step: int,
    challenge,
    neurons: list,
    results: list,
    rewards: list[float],
    components: dict[str, list[float]],
    gauges: dict[str, Any],
) -> dict[str, Any]:
    """One step's event: the challenge, who was asked and what they answered, the
    rewards with every component (``components`` are the reward stack's, for the answers
    that arrived: spread here over all miners, None where a miner did not answer), the
    gates' outcome and the loop's gauges. Timings are added by the caller."""
    answered = [i for i, r in enumerate(results) if r.ok]  # the ones scored
    spread = {}
    for name, values in components.items():
        full = [None] * len(results)
        for j, i in enumerate(answered):
            full[i] = values[j]
        spread[f"reward/{name}"] = full
    return {
        "step": step,
        "time": time.time(),
        "task": challenge.task,
        "challenge_id": challenge.challenge_id,
        "source_id": challenge.source_id,
        "seed": challenge.seed,
        "persona": challenge.meta.get("persona"),
        "mood": challenge.meta.get("mood"),
        "challenge": challenge.prompt_text,
        "reference": challenge.reference,
        "llm_outputs": challenge.llm_outputs,
        "uids": [n.uid for n in neurons],
        "hotkeys": [n.hotkey for n in neurons],
        "completions": [r.completion for r in results],
        "statuses": [r.status for r in results],
        "latencies": [round(r.latency, 4) for r in results],
        "errors": [r.error for r in results],
        "rewards": rewards,
        "reward/mean": sum(rewards) / len(rewards) if rewards else 0.0,
        "responses/ok": sum(r.ok for r in results),
        **gauges,
        **gate_event(challenge),
        **spread,
    }


def gate_event(challenge) -> dict[str, Any]:
    """How the LLM's texts of this challenge fared at the gates, as flat event keys:
    ``gate/outcome`` and ``gate/rejected/<task>/<stage>/<reason>`` counts."""
    out = {"gate/outcome": challenge.meta.get("outcome")}
    for key, count in challenge.meta.get("rejections", {}).items():
        out[f"gate/rejected/{challenge.task}/{key}"] = count
    return out


def startup_fields(startup: dict[str, float], process_start: float, now: float) -> dict:
    """Seconds from the process's start to each start-up stage and to the first step."""
    return {
        **{f"startup/{k}": v for k, v in startup.items()},
        "startup/first_step": now - process_start,
    }


class Telemetry:
    def __init__(
        self,
        state_dir: str,
        wandb_cfg=None,
        run_config: dict | None = None,
        offline_default: bool = True,
        stream=sys.stdout,
        retention_mb: float = 0.0,
    ):
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, EVENTS_FILE)
        self.retention_bytes = int(retention_mb * 1e6)
        self._file = open(self.path, "a", buffering=1)
        self.stream = stream
        self._wandb = None
        if wandb_cfg is not None and not wandb_cfg.off:
            self._wandb = _start_wandb(wandb_cfg, state_dir, run_config or {}, offline_default)

    def log(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, default=str) + "\n")
        if self.retention_bytes and self._file.tell() > self.retention_bytes // 2:
            self._rotate()
        if self._wandb is not None:
            flat = {k: v for k, v in event.items() if isinstance(v, (int, float, str))}
            try:
                self._wandb.log(flat, step=int(event["step"]))
            except Exception as exc:  # noqa: BLE001 - wandb trouble must not stop scoring
                log.warning("wandb log failed (%s); continuing without wandb", exc)
                self._wandb = None

    def _rotate(self) -> None:
        """Keep at most retention_bytes on disk: this file and one older half."""
        self._file.close()
        os.replace(self.path, self.path + ".1")
        self._file = open(self.path, "a", buffering=1)

    def scoreboard(
        self,
        event: dict,
        scores: list[float],
        hotkeys: list[str],
        max_steps: int = 0,
        rows: int = 12,
        labels: dict[int, str] | None = None,
    ) -> None:
        """A compact table of the queried uids: score, last reward, latency, status."""
        step = event["step"]
        progress = ""
        if max_steps:
            done = int(20 * step / max_steps)
            progress = f" [{'#' * done}{'.' * (20 - done)}] {step}/{max_steps}"
        lines = [
            f"step {step}{progress}  task={event['task']}  "
            f"step={event['timings/step']:.2f}s  query={event['timings/query']:.2f}s"
        ]
        labels = labels or {}
        lines.append(
            f"  {'uid':>4} {'hotkey':<10} {'label':<9} {'score':>6} {'reward':>6} "
            f"{'lat(s)':>6} status"
        )
        order = sorted(event["uids"], key=lambda u: -scores[u])[:rows]
        by_uid = {u: i for i, u in enumerate(event["uids"])}
        for uid in order:
            i = by_uid[uid]
            lines.append(
                f"  {uid:>4} {hotkeys[uid][:8] + '..':<10} {labels.get(uid, ''):<9} "
                f"{scores[uid]:6.3f} "
                f"{event['rewards'][i]:6.3f} {event['latencies'][i]:6.2f} "
                f"{event['statuses'][i]}"
            )
        print("\n".join(lines), file=self.stream, flush=True)

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            try:
                self._wandb.finish()
            except Exception:  # noqa: BLE001
                pass


def _start_wandb(cfg, state_dir: str, run_config: dict, offline_default: bool):
    offline = offline_default if cfg.offline is None else cfg.offline
    try:
        import wandb

        return wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            config=run_config,
            dir=state_dir,
            mode="offline" if offline else "online",
            reinit="finish_previous",
        )
    except Exception as exc:  # noqa: BLE001 - no login, no network: keep validating
        log.warning("wandb disabled: %s", exc)
        return None
