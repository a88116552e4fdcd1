"""`python -m tests.chaos`: inject the faults, check recovery, write RELIABILITY.md."""

from tests.chaos.run import main

raise SystemExit(main())
