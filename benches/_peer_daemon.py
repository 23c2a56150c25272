"""``panelfast run`` with the remote configuration's ceiling lifted: ``make bench-peers`` only.

The product refuses a remote configuration above 5,000 measurements or 500
samples per minute (the Panel Server's ceiling). The peer benchmark asks both
gateways for the same job, every point delivered every second (1,000 to
100,000 points/s), so the daemon it starts accepts more; everything else is
the daemon as shipped: ``python -m benches._peer_daemon run --config F``.
"""

from __future__ import annotations

from fractions import Fraction

from panelfast.remote_config import _validate

_validate.MAX_MEASUREMENTS = 1_000_000
_validate.MAX_SAMPLES_PER_MINUTE = Fraction(60_000_000)
_validate.MAX_DOCUMENT_BYTES = 256 * 1024 * 1024

if __name__ == "__main__":
    from panelfast.cli import main

    main()
