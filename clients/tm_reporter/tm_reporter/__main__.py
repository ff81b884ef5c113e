import sys

from tm_reporter.machine import main

sys.exit(main())
