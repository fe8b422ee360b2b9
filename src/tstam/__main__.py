import sys

from tstam.cli import main

sys.exit(main())
