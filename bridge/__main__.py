"""`python -m bridge` runs the qlik2mqtt command line."""

from bridge.cli import main

raise SystemExit(main())
