import sys

from rt3d_tune.cli import main

sys.exit(main())
