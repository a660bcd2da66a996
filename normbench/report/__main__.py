"""python -m normbench.report RESULTS_DIR [--out DIR] [options]"""

import sys

from normbench.report.cli import main

sys.exit(main())
