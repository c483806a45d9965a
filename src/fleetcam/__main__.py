"""``python -m fleetcam``."""
import sys

from fleetcam.cli import main

sys.exit(main())
