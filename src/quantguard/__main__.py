import sys

from quantguard.cli.main import main

sys.exit(main())
