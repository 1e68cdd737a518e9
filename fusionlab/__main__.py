"""``python -m fusionlab``: the command line, also as torchrun starts it (``torchrun ... -m fusionlab train``)."""
import sys

from fusionlab.cli import main

sys.exit(main())
