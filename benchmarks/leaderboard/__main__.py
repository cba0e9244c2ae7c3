"""`python -m benchmarks.leaderboard`: the same as `offrl leaderboard`."""

import sys

from benchmarks.leaderboard.command import main

sys.exit(main(sys.argv[1:]))
