"""``python -m cnnlab`` (and ``torchrun -m cnnlab``) runs the command line.

May import: cnnlab.cli.
"""

from cnnlab.cli import main

raise SystemExit(main())
