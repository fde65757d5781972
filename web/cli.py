"""``ssc-web``: serve the web trigger, or run the job worker.

    ssc-web serve  --config /etc/ssc-web/ssc-web.toml   the app under waitress
    ssc-web worker --config /etc/ssc-web/ssc-web.toml   the job runner (web.jobs)
    ssc-web local up|down|status|launch                 both on this machine, on the local
                                                        cloud (make demo; web.localsite)

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
    local = commands.add_parser(
        "local", help="the app and its runner on this machine, on the local cloud",
        description="The app and its job runner on this machine, with the local cloud's "
                    "GitHub stand-in (make demo). launch: sign in as LOGIN, register, start "
                    "REPO and wait for Jupyter.")
    local.add_argument("action", choices=("up", "down", "status", "launch"))
    local.add_argument("--port", type=int, default=8080)
    local.add_argument("--dir", type=Path, help="the site's directory (default var/web)")
    local.add_argument("--login", default="demo", help="launch: who signs in")
    local.add_argument("--repo", help="launch: the repository (default the sample)")
    args = parser.parse_args(argv)
    if args.command == "local":
        return run_local(args)
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


def run_local(args) -> int:
    from web.localsite import LocalSite, SiteError, SiteUser

    site = LocalSite(port=args.port) if args.dir is None else LocalSite(args.dir, args.port)
    try:
        if args.action == "up":
            site.start()
            print(f"ssc-web: serving {site.url} (logs in {site.directory})\n"
                  f"ssc-web: registration link: {site.registration_link}")
        elif args.action == "down":
            site.stop()
        elif args.action == "status":
            running = {name: site.pid(name) for name in ("serve", "worker")}
            print(f"ssc-web: {site.url}: {running}, /healthz {site.health() or 'no answer'}")
            return 0 if all(running.values()) else 3
        else:
            return launch(site, SiteUser(site.url, args.login), args.repo or site.sample_repo)
    except (SiteError, OSError) as error:
        print(f"ssc-web: {error}", file=sys.stderr)
        return 1
    return 0


def launch(site, user, repo: str) -> int:
    """Sign `user` in, register them, start `repo` and follow the job to its end."""
    user.sign_in()
    user.register(site.registration_link)
    print(f"ssc-web: {user.login} signed in and registered; starting {repo}", flush=True)
    job = user.follow(user.start(repo), on_phase=lambda job: print(
        f"ssc-web:   {job['phase']}", flush=True))
    if job["state"] != "succeeded":
        print(f"ssc-web: the job {job['state']}: {job['message']}", file=sys.stderr)
        return 1
    print(f"ssc-web: {job['message']}\n  {job['jupyter_url']}")
    return 0


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
