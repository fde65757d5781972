"""`localcloud up | down [--purge] | status | fault | quota | publish | site`.

    localcloud site up|down|status|launch   the web trigger on this machine, on the local
                                            cloud (make demo; localcloud.site)
    localcloud github rename OLD NEW        the GitHub stand-in's user OLD is renamed NEW (same
                                            account id; OLD is free to take)
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from localcloud import githost, github
from localcloud.baseimage import ensure_base_image
from localcloud.config import Config, from_environment

START_TIMEOUT = 600  # the first start builds the base image


def say(message: str) -> None:
    print(f"localcloud: {message}", flush=True)


def pid_file(config: Config) -> Path:
    return config.var_dir / "service.pid"


def running_pid(config: Config) -> int | None:
    try:
        pid = int(pid_file(config).read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def serving_pid(config: Config) -> int | None:
    """The pid of the local cloud answering on the configured port, if any answers."""
    try:
        return requests.get(f"{config.endpoint}/", timeout=2).json()["localcloud"]["pid"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def healthy(config: Config, pid: int | None = None) -> bool:
    """Our service answers: the one whose pid we started (or recorded), not another one."""
    return pid is not None and serving_pid(config) == pid


def up(config: Config, record: str | None) -> None:
    if healthy(config, running_pid(config)):
        say(f"already running at {config.endpoint}")
        write_clouds_yaml(config)
        return
    other = serving_pid(config)
    if other:
        sys.exit(f"localcloud: another local cloud (pid {other}) serves {config.endpoint}; "
                 "stop it first with `localcloud down` in its checkout")
    config.var_dir.mkdir(parents=True, exist_ok=True)
    from localcloud.machines import Machines
    Machines(config).ensure_networks()
    ensure_base_image(config.var_dir / "cache", log=say)
    from localcloud.baseimage import ensure_notebook_image, export_image
    notebook = ensure_notebook_image(config.var_dir / "cache", log=say)
    export_image(notebook, config.var_dir / "cache" / "notebook-base.tar")
    start_service(config, record)
    write_clouds_yaml(config)
    client_id, _ = github.oauth_app_for(config)
    sample = Path(__file__).resolve().parent / "samples" / "notebook"
    sample_url = githost.publish_repository(config, "ssc", "sample-notebook", sample)
    say(f"up at {config.endpoint}; clouds.yaml: {config.var_dir / 'clouds.yaml'}")
    say(f"GitHub stand-in: {config.github_base_url} (OAuth app {client_id}, callback "
        f"{github.LOCAL_WEB_CALLBACK}); git hosting: {config.git_base_url}")
    say(f"sample repository: {sample_url} (FROM {notebook}, saved for servers in "
        f"{config.var_dir / 'cache' / 'notebook-base.tar'})")


def start_service(config: Config, record: str | None) -> None:
    log_path = config.var_dir / "service.log"
    command = [sys.executable, "-m", "localcloud.service", "--var-dir", str(config.var_dir)]
    if record:
        command += ["--record", str(Path(record).resolve())]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file(config).write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"localcloud: the service stopped at start; see {log_path}:\n" +
                     "\n".join(log_path.read_text().splitlines()[-15:]))
        if healthy(config, process.pid):
            return
        time.sleep(0.3)
    sys.exit(f"localcloud: the service did not answer in {START_TIMEOUT} s; see {log_path}")


def identity(config: Config) -> dict:
    return json.loads((config.var_dir / "identity.json").read_text())


def write_clouds_yaml(config: Config) -> Path:
    """clouds.yaml with `localcloud` (password) and `localcloud-appcred` (app credential)."""
    who = identity(config)
    auth_url = f"{config.endpoint}/identity"
    credential = app_credential(config, who, auth_url)
    clouds = {"clouds": {
        "localcloud": {
            "auth": {"auth_url": auth_url, "username": who["username"],
                     "password": who["password"], "project_name": who["project_name"],
                     "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": config.region, "interface": "public",
            "identity_api_version": 3},
        "localcloud-appcred": {
            "auth_type": "v3applicationcredential",
            "auth": {"auth_url": auth_url, "application_credential_id": credential["id"],
                     "application_credential_secret": credential["secret"]},
            "region_name": config.region, "interface": "public",
            "identity_api_version": 3},
    }}
    path = config.var_dir / "clouds.yaml"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(clouds, sort_keys=False))
    return path


def app_credential(config: Config, who: dict, auth_url: str) -> dict:
    """The application credential for scripts, made once through Keystone's own API."""
    path = config.var_dir / "app-credential.json"
    if path.exists():
        credential = json.loads(path.read_text())
        check = requests.post(f"{auth_url}/v3/auth/tokens", timeout=10, json={"auth": {
            "identity": {"methods": ["application_credential"], "application_credential": {
                "id": credential["id"], "secret": credential["secret"]}}}})
        if check.status_code == 201:
            return credential
    token = password_token(config)
    response = requests.post(
        f"{auth_url}/v3/users/{who['user_id']}/application_credentials", timeout=10,
        headers={"X-Auth-Token": token}, json={"application_credential": {
            "name": f"localcloud-{int(time.time())}", "description": "for scripts and CI"}})
    response.raise_for_status()
    body = response.json()["application_credential"]
    credential = {"id": body["id"], "secret": body["secret"]}
    path.touch(mode=0o600)
    path.write_text(json.dumps(credential))
    return credential


def password_token(config: Config) -> str:
    who = identity(config)
    response = requests.post(f"{config.endpoint}/identity/v3/auth/tokens", timeout=10, json={
        "auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": who["username"], "domain": {"id": "default"},
            "password": who["password"]}}},
            "scope": {"project": {"id": who["project_id"]}}}})
    response.raise_for_status()
    return response.headers["X-Subject-Token"]


def down(config: Config, purge: bool) -> None:
    pid = running_pid(config)
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if running_pid(config) is None:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    pid_file(config).unlink(missing_ok=True)
    from localcloud.cloud import Cloud
    from localcloud.machines import Machines
    machines = Machines(config)
    if purge:
        machines.purge()
        remove_tree(config.var_dir)
        say("stopped; everything it made is gone")
        return
    if (config.state_dir / "cloud.json").exists():
        removed = Cloud(config, machines=machines).remove_all_servers()
        say(f"stopped; {removed} server(s) deleted, images and volumes kept")
    for stuck in machines.stop_all():
        say(f"warning: a server container the Docker engine cannot stop is left running: "
            f"{stuck}")


def remove_tree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def status(config: Config) -> int:
    pid = running_pid(config)
    if not healthy(config, pid):
        say("not running")
        return 3
    token = password_token(config)
    counts = {}
    for path, key in (("compute/v2.1/servers", "servers"), ("image/v2/images", "images")):
        response = requests.get(f"{config.endpoint}/{path}", timeout=10,
                                headers={"X-Auth-Token": token})
        counts[key] = len(response.json()[key])
    say(f"running at {config.endpoint} (pid {pid}): {counts['servers']} server(s), "
        f"{counts['images']} image(s); clouds.yaml: {config.var_dir / 'clouds.yaml'}")
    return 0


def control(config: Config, method: str, path: str, body=None) -> dict:
    response = requests.request(method, f"{config.endpoint}/localcloud/{path}", json=body,
                                headers={"X-Auth-Token": password_token(config)}, timeout=10)
    if response.status_code >= 400:
        sys.exit(f"localcloud: {response.status_code} {response.text}")
    return response.json() if response.content else {}


def fault(config: Config, args) -> None:
    if args.clear:
        control(config, "DELETE", "faults")
        say("faults cleared")
        return
    if not args.operation:
        print(json.dumps(control(config, "GET", "faults")["faults"], indent=1))
        return
    rule = {"operation": args.operation, "action": args.action}
    for key in ("status", "message", "delay", "count", "rate"):
        if getattr(args, key) is not None:
            rule[key] = getattr(args, key)
    print(json.dumps(control(config, "POST", "faults", rule)["fault"], indent=1))


def quota(config: Config, settings: list[str]) -> None:
    changes = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if not value.lstrip("-").isdigit():
            sys.exit(f"localcloud: quota settings look like instances=5, not {setting!r}")
        changes[name] = int(value)
    if changes:
        control(config, "PUT", "quotas", changes)
    print(json.dumps(control(config, "GET", "quotas"), indent=1))


def site(config: Config, args) -> int:
    """`localcloud site ACTION`: the web app and its job runner on this machine (the demo's
    site in var/web, or --dir), signing in through the GitHub stand-in. Exit status 1 when
    the site fails, 3 when `status` finds it down."""
    from localcloud.front import FrontError, loopback_names
    from localcloud.site import LocalSite, SiteError  # imports the product (web)

    local = LocalSite(cloud=config, port=args.port, https_port=args.https_port or None)
    if args.dir is not None:
        local.directory = args.dir
    try:
        if args.action == "up":
            local.start()
            say(f"serving {local.url} (logs in {local.directory})")
            say(f"registration link: {local.registration_link}")
            if local.ca:
                say(f"the local certificate authority: {local.ca}")
        elif args.action == "down":
            local.stop()
        elif args.action == "status":
            running = {name: local.pid(name) for name in ("serve", "worker")}
            if local.front:
                running["nginx"] = local.front.pid()
            say(f"{local.url}: {running}, /healthz {local.health() or 'no answer'}")
            return 0 if all(running.values()) else 3
        else:
            with loopback_names():
                return launch(local, local.user(args.login), args.repo or local.sample_repo)
    except (SiteError, FrontError, OSError) as error:
        print(f"localcloud: {error}", file=sys.stderr)
        return 1
    return 0


def launch(local, user, repo: str) -> int:
    """Sign `user` in, register them, start `repo` and follow the job to its end."""
    user.sign_in()
    user.register(local.registration_link)
    say(f"{user.login} signed in and registered; starting {repo}")
    job = user.follow(user.start(repo), on_phase=lambda job: say(f"  {job['phase']}"))
    if job["state"] != "succeeded":
        print(f"localcloud: the job {job['state']}: {job['message']}", file=sys.stderr)
        return 1
    say(f"{job['message']}\n  {job['jupyter_url']}")
    return 0


def github_command(config: Config, args) -> int:
    """`localcloud github rename OLD NEW`: exit status 1 with GitHub's reason if refused."""
    try:
        user = github.rename_user(config, args.old, args.new)
    except ValueError as error:
        print(f"localcloud: {error}", file=sys.stderr)
        return 1
    say(f"the GitHub user {args.old} (id {user['id']}) is now {user['login']}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__)
    parser.add_argument("--var-dir", type=Path, default=None,
                        help="where the cloud keeps its state (default var/localcloud)")
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the cloud (builds what it needs once)")
    up_parser.add_argument("--record", default=os.environ.get("LOCALCLOUD_RECORD"),
                           help="append every API exchange to this JSON-lines file")
    down_parser = commands.add_parser("down", help="stop the cloud and its servers")
    down_parser.add_argument("--purge", action="store_true",
                             help="also remove its images, volumes, networks and state")
    commands.add_parser("status", help="is it running, and what does it hold")
    fault_parser = commands.add_parser("fault", help="inject, list or clear faults")
    fault_parser.add_argument("operation", nargs="?", help="e.g. server.create, "
                              "server.build, volume.create, token.issue")
    fault_parser.add_argument("--action", choices=["http", "error", "delay"], default="http")
    fault_parser.add_argument("--status", type=int)
    fault_parser.add_argument("--message")
    fault_parser.add_argument("--delay", type=float)
    fault_parser.add_argument("--count", type=int)
    fault_parser.add_argument("--rate", type=float)
    fault_parser.add_argument("--clear", action="store_true")
    quota_parser = commands.add_parser("quota", help="show or set quotas (instances=5 ...)")
    quota_parser.add_argument("settings", nargs="*")
    publish_parser = commands.add_parser("publish", help="serve a local repository over git")
    publish_parser.add_argument("name", help="owner/name")
    publish_parser.add_argument("source", type=Path)
    site_parser = commands.add_parser(
        "site", help="the web app and its runner on this machine, on this cloud",
        description="The web app and its job runner on this machine, with the cloud's "
                    "GitHub stand-in (make demo). launch: sign in as LOGIN, register, start "
                    "REPO and wait for Jupyter.")
    site_parser.add_argument("action", choices=("up", "down", "status", "launch"))
    site_parser.add_argument("--port", type=int, default=8080, help="the app's own port")
    site_parser.add_argument("--https-port", type=int, default=8443,
                             help="the TLS front's port (https://ssc.localhost:PORT/); "
                             "0: no front, the app alone on plain HTTP")
    site_parser.add_argument("--dir", type=Path, help="the site's directory (default var/web)")
    site_parser.add_argument("--login", default="demo", help="launch: who signs in")
    site_parser.add_argument("--repo", help="launch: the repository (default the sample)")
    github_parser = commands.add_parser("github", help="the GitHub stand-in's accounts")
    github_actions = github_parser.add_subparsers(dest="action", required=True)
    rename_parser = github_actions.add_parser(
        "rename", help="rename a user (same account id, new login)",
        description="Rename the user OLD to NEW, as GitHub does when an account is renamed: "
                    "the account id stays, OLD is free for another account to take.")
    rename_parser.add_argument("old")
    rename_parser.add_argument("new")
    args = parser.parse_args(argv)
    config = from_environment(args.var_dir)
    if args.command == "up":
        up(config, args.record)
    elif args.command == "down":
        down(config, args.purge)
    elif args.command == "status":
        return status(config)
    elif args.command == "fault":
        fault(config, args)
    elif args.command == "quota":
        quota(config, args.settings)
    elif args.command == "publish":
        owner, _, name = args.name.partition("/")
        print(githost.publish_repository(config, owner, name, args.source))
    elif args.command == "site":
        return site(config, args)
    elif args.command == "github":
        return github_command(config, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
