"""The HA rig by hand: two CTI nodes and two Asterisks in network namespaces (see tests/ha/rig.py).

    sudo .venv/bin/python scripts/harig.py up       # build it and leave it running; prints the addresses
    sudo .venv/bin/python scripts/harig.py status   # what of it exists
    sudo .venv/bin/python scripts/harig.py down     # remove all of it

Names and addresses: CTISERVER_HARIG_PREFIX (default harig), CTISERVER_HARIG_SUBNET (default 10.231.0),
CTISERVER_HARIG_PORT (the PostgreSQL relay, default 7399). Logs in /tmp/ctiserver-rig-<prefix>/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ha.rig import Rig, RigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    rig = Rig()
    try:
        if args.action == "up":
            rig.up()
            for node in rig.nodes:
                print(f"{node}: {rig.http(node)} (namespace {rig.ns(node)}, log {rig.log_path(node)})")
            for pbx in rig.pbxs:
                print(f"{pbx}: AMI {rig.addr(pbx)}:5038 (namespace {rig.ns(pbx)}, log {rig.log_path(pbx)})")
            print(f"database: {rig.db_url}")
            print("the rig keeps running: `scripts/harig.py down` removes it")
        elif args.action == "down":
            rig.down()
            print("rig down")
        else:
            left = rig.leftovers()
            print("\n".join(left) if left else "nothing of the rig exists")
    except RigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
