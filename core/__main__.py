import sys

from headswitch.cli import main

sys.exit(main())
