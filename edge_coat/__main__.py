import sys

from edge_coat.cli import main

sys.exit(main())
