"""`ctiserver asterisk up|down|status|restart|build` (also `python -m ctiserver.sandbox ...`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import chroot as sandbox
from .chroot import SandboxError, down, ensure_chroot, restart, root_dir, status, up


def run(action: str, root: str | None = None, sounds: str | None = None) -> int:
    """Do one sandbox action and print its outcome; a failure is one line on stderr and exit code 1."""
    try:
        if action == "build":
            print(ensure_chroot(root))
        elif action == "up":
            info = up(root, sounds_dir=Path(sounds) if sounds else None)
            print(f"asterisk up (pid {info.pid}); AMI {info.ami_host}:{info.ami_port} user {info.ami_user}; "
                  f"log {info.log_path}")
        elif action == "down":
            down(root)
            print("asterisk down")
        elif action == "restart":
            info = restart(root)
            print(f"asterisk restarted (pid {info.pid})")
        else:
            print(json.dumps(status(root), indent=2))
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the root's folder cannot be created
        print(f"error: sandbox folder {root_dir(root)}: {exc.strerror}"
              + (f" ({exc.filename})" if exc.filename else ""), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctiserver asterisk", description=(sandbox.__doc__ or "").split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "restart", "build"])
    parser.add_argument("--root", help="chroot folder (default $CTISERVER_ASTERISK_ROOT or /var/cache/ctiserver/"
                                       "asterisk-root)")
    parser.add_argument("--sounds", help="host folder of TTS prompts to show Asterisk as sounds/cti")
    args = parser.parse_args(argv)
    return run(args.action, args.root, args.sounds)


if __name__ == "__main__":
    sys.exit(main())
