"""``python -m cnnlab`` (and ``torchrun -m cnnlab``) runs the command line."""

from cnnlab.cli import main

raise SystemExit(main())
