"""Environment doctor: run before starting a validator, with the validator's flags.

    python scripts/check_env.py --neuron.llm_backend vllm --chain.network finney
    python scripts/check_env.py --json

Prints one row per check (ok / warn / fail) with a one-line fix; exits 1 if any fails.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prompting.config import parse_config  # noqa: E402


def extra(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--offline", action="store_true", help="do not contact the chain")


def main(argv=None) -> int:
    config = parse_config(
        "check_env", argv, prog="check_env.py", description=__doc__.split("\n")[0], extra=extra
    )
    from prompting import doctor

    rows = doctor.run_all(config, offline=config.offline)
    if config.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
    else:
        print(doctor.render(rows, color=sys.stdout.isatty()))
    return 1 if any(r.status == doctor.FAIL for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
