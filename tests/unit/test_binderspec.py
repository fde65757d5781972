"""Binder links read as launch requests (web/binderspec.py): BinderHub's gh, gist, gl and git specs
map to the repository URL and ref the start form would take, the query fields to the path
BinderHub's client opens, and hostile links are refused."""

import pytest
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    LaunchRequestError,
)

from web.binderspec import (
    BinderSpecError,
    badge_markdown,
    launch,
    link_for,
    open_path,
    parse,
    same_repo,
)

HOSTS = ("github.com", "gist.github.com", "gitlab.com", "codeberg.org",
         "git.example.org:8443/git")
SHA = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
HTTP_HOSTS = ("10.89.0.1:8770",)


@pytest.mark.parametrize(("provider", "spec", "repo", "ref"), [
    ("gh", "binder-examples/requirements/HEAD",
     "https://github.com/binder-examples/requirements", ""),
    ("gh", "binder-examples/requirements/main",
     "https://github.com/binder-examples/requirements", "main"),
    ("gh", "binder-examples/requirements.git/v1.0",
     "https://github.com/binder-examples/requirements", "v1.0"),
    ("gh", "owner/repo/refs/pull/12/head", "https://github.com/owner/repo", "refs/pull/12/head"),
    ("gh", "owner/repo/0a1b2c3d4e5f60718293a4b5c6d7e8f901234567/",
     "https://github.com/owner/repo", "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"),
    # BinderHub's GistRepoProvider: no ref, HEAD, master or main is the latest revision
    ("gist", "ada/4f2c9e", "https://gist.github.com/ada/4f2c9e", ""),
    ("gist", "ada/4f2c9e/HEAD", "https://gist.github.com/ada/4f2c9e", ""),
    ("gist", "ada/4f2c9e/master/", "https://gist.github.com/ada/4f2c9e", ""),
    ("gist", "ada/4f2c9e/main", "https://gist.github.com/ada/4f2c9e", ""),
    ("gist", f"ada/4f2c9e/{SHA}", "https://gist.github.com/ada/4f2c9e", SHA),
    ("gist", "ada/4f2c9e.git/HEAD", "https://gist.github.com/ada/4f2c9e", ""),
    ("gl", "group%2Fproject/main", "https://gitlab.com/group/project", "main"),
    ("gl", "group%2Fproject/HEAD", "https://gitlab.com/group/project", ""),
    ("gl", "group%2Fproject/feature%2Fx", "https://gitlab.com/group/project", "feature/x"),
    ("git", "https%3A%2F%2Fcodeberg.org%2Fowner%2Frepo/HEAD",
     "https://codeberg.org/owner/repo", ""),
    ("git", "https%3A%2F%2Fcodeberg.org%2Fowner%2Frepo.git/v2",
     "https://codeberg.org/owner/repo", "v2"),
    ("git", "https%3A%2F%2Fgithub.com%2Fowner%2Frepo/release%2F1.x",
     "https://github.com/owner/repo", "release/1.x"),
    ("git", "https%3A%2F%2Fgit.example.org%3A8443%2Fgit%2Fa%2Fb/main",
     "https://git.example.org:8443/git/a/b", "main"),
    ("git", "http%3A%2F%2F10.89.0.1%3A8770%2Fgit%2Fsamples%2Fr/HEAD",
     None, None),  # http only where the site allows it, and only for an allowed host
])
def test_specs_map_to_repository_and_ref(provider, spec, repo, ref):
    if repo is None:
        with pytest.raises(LaunchRequestError):
            parse(provider, spec, HOSTS, HTTP_HOSTS)
        return
    assert parse(provider, spec, HOSTS, HTTP_HOSTS) == (repo, ref)


def test_http_git_host_the_site_allows():
    hosts = (*HOSTS, "10.89.0.1:8770/git")
    assert parse("git", "http%3A%2F%2F10.89.0.1%3A8770%2Fgit%2Fsamples%2Fr/HEAD", hosts,
                 HTTP_HOSTS) == ("http://10.89.0.1:8770/git/samples/r", "")


@pytest.mark.parametrize(("provider", "spec"), [
    ("gh", "../../etc/HEAD"),
    ("gh", "owner/../HEAD"),
    ("gh", "owner/repo/../../HEAD"),
    ("gh", "owner/repo/%2e%2e"),
    ("gh", "owner%0Aevil/repo/HEAD"),
    ("gh", "owner/repo/main%0Aecho"),
    ("gh", "owner/repo"),
    ("gh", "owner/repo/ma in"),
    ("gist", "ada"),
    ("gist", "ada/4f2c9e/main/extra"),
    ("gist", "../4f2c9e/HEAD"),
    ("gist", "ada/..%2F..%2Fetc/HEAD"),
    ("gist", "ada/4f2c9e/main%0Aecho"),
    ("gl", "group%2F..%2Fproject/main"),
    ("gl", "group%2Fproject/main%0A"),
    ("gl", "group%2Fproject/main%0D%0Ax"),
    ("gl", "group%252Fproject/main"),  # escaped twice
    ("gl", "group%2Fproject/%"),
    ("git", "https%3A%2F%2Fevil.example.com%2Fa%2Fb/HEAD"),
    ("git", "https%3A%2F%2Fgithub.com.evil.example%2Fa%2Fb/HEAD"),
    ("git", "https%3A%2F%2Fuser%40github.com%2Fa%2Fb/HEAD"),
    ("git", "file%3A%2F%2F%2Fetc%2Fpasswd/HEAD"),
    ("git", "ext%3A%3Ash%20-c%20id/HEAD"),
    ("git", "https%3A%2F%2Fgithub.com%2Fa%2Fb%0A/HEAD"),
    ("git", "https%3A%2F%2Fgithub.com%2Fa%2F..%2Fb/HEAD"),
    ("git", "https%3A%2F%2Fgithub.com%2Fa%2Fb/-upload-pack=x"),
    ("git", "https%3A%2F%2Fgithub.com%2Fa%2Fb"),
    ("git", "https%3A%2F%2Fgithub.com%2Fa%2Fb/%C3%A9"),
    ("git", "https%3A%2F%2Fgithub.com%2Fa%2Fb/%FF"),
    ("zenodo", "10.5281/zenodo.1/HEAD"),
])
def test_hostile_specs_are_refused(provider, spec):
    with pytest.raises(ValueError) as refused:
        parse(provider, spec, HOSTS, HTTP_HOSTS)
    assert isinstance(refused.value, (BinderSpecError, LaunchRequestError))
    assert "\n" not in str(refused.value)


def test_a_github_link_is_refused_where_github_is_not_allowed():
    with pytest.raises(LaunchRequestError, match="not one of the allowed hosts"):
        parse("gh", "owner/repo/HEAD", ("codeberg.org",))
    with pytest.raises(LaunchRequestError, match=r"'gist\.github\.com' is not one of the allowed"):
        parse("gist", "ada/4f2c9e", ("github.com",))


@pytest.mark.parametrize(("query", "path"), [
    ({}, "/"),
    ({"urlpath": "lab"}, "/lab"),
    ({"urlpath": "/lab/tree/intro.ipynb"}, "/lab/tree/intro.ipynb"),
    ({"urlpath": "//evil.example.com/"}, "/evil.example.com/"),  # a path: slashes stripped
    ({"urlpath": "git-pull?repo=https://github.com/a/b&branch=main"},
     "/git-pull?repo=https://github.com/a/b&branch=main"),
    ({"labpath": "notebooks/intro.ipynb"}, "/doc/tree/notebooks/intro.ipynb"),
    ({"labpath": "a b/", "urlpath": "lab"}, "/doc/tree/a%20b"),
    ({"filepath": "index.ipynb", "urlpath": "lab"}, "/tree/index.ipynb"),
    ({"labpath": "x.ipynb", "filepath": "y.ipynb"}, "/doc/tree/x.ipynb"),
])
def test_paths_map_as_binderhub_maps_them(query, path):
    assert open_path(**query) == path


@pytest.mark.parametrize("query", [
    {"urlpath": "lab/../../x"},
    {"urlpath": "lab/%2e%2e/x"},
    {"urlpath": "lab%0Ax"},
    {"urlpath": "lab\\x"},
    {"urlpath": "lab#x"},
    {"urlpath": "lab/tree/é"},
    {"urlpath": "lab//x"},
    {"labpath": "../x"},
    {"filepath": "a/./b"},
])
def test_hostile_paths_are_refused(query):
    with pytest.raises(BinderSpecError):
        open_path(**query)


def test_launch_gathers_it_all():
    wanted = launch("gh", "owner/repo/main/", {"urlpath": "lab", "other": "x"}, HOSTS)
    assert (wanted.repo, wanted.ref, wanted.path) == ("https://github.com/owner/repo", "main",
                                                      "/lab")
    assert wanted.binder_request == "v2/gh/owner/repo/main"


def test_link_and_badge_for_a_repository_round_trip():
    link = link_for("https://binder.example.org", "https://codeberg.org/owner/repo", "",
                    "lab")
    assert link == ("https://binder.example.org/v2/git/"
                    "https%3A%2F%2Fcodeberg.org%2Fowner%2Frepo/HEAD?urlpath=lab")
    spec = link.split("/v2/git/", 1)[1].split("?")[0]
    assert parse("git", spec, HOSTS) == ("https://codeberg.org/owner/repo", "")
    assert badge_markdown("https://binder.example.org", link) == (
        f"[![Binder](https://binder.example.org/badge_logo.svg)]({link})")


def test_same_repo():
    assert same_repo("https://github.com/a/b", "https://GitHub.com/a/b.git")
    assert not same_repo("https://github.com/a/b", "https://github.com/a/c")
    assert not same_repo("", "")
