"""``python -m aftercare.flows.cli``: the console script."""

from aftercare.flows.cli import main

raise SystemExit(main())
