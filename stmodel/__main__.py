import sys

from stmodel.cli import main

sys.exit(main())
