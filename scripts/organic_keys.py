"""Issue, list and revoke the organic endpoint's API keys (prompting/organic/keys.py).

python scripts/organic_keys.py add --name alice --rate 60   # prints the key once
python scripts/organic_keys.py list
python scripts/organic_keys.py revoke --name alice
"""

from __future__ import annotations

import sys

from prompting.organic.keys import main

if __name__ == "__main__":
    sys.exit(main())
