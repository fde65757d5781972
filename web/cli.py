"""``ssc-web``: serve the web trigger, or run the job worker.

    ssc-web serve  --config /etc/ssc-web/ssc-web.toml   the app under waitress
    ssc-web worker --config /etc/ssc-web/ssc-web.toml   the job runner (web.jobs)

Secrets come from the environment (see web.config); the command refuses to start, with a
message saying what to fix and exit status 2, when one is missing or a default.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from web.config import ConfigError, load

log = logging.getLogger("ssc-web")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ssc-web", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, description in (("serve", "serve the web app (waitress)"),
                              ("worker", "run the job runner")):
        command = commands.add_parser(name, help=description, description=description)
        command.add_argument("--config", "-c", type=Path, required=True,
                             help="the TOML configuration file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                                                   "%(message)s")
    try:
        config = load(args.config)
    except ConfigError as error:
        print(f"ssc-web: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(config)
    from web import jobs  # the job runner: imported only by the worker

    return jobs.main(config) or 0


def serve(config) -> int:
    import waitress

    from web.app import make_app

    app = make_app(config)
    # waitress warns "Task queue depth is N" for every request that waits for a thread: under
    # a burst that floods the log and slows the app down; queued requests are still served.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    log.info("serving %s on %s:%s with %d threads", config.base_url, config.host, config.port,
             config.threads)
    waitress.serve(app, host=config.host, port=config.port, threads=config.threads,
                   ident="ssc-web", max_request_body_size=1 << 20,
                   clear_untrusted_proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
