import sys

from tickflow.cli import main

sys.exit(main())
