"""The version policy (--version-policy latest:N | all | specific:V,...): the versions a
server serves after a start and after a reload are the same, and a pin to any other
version gets NOT_FOUND naming the served ones."""

import shutil

import grpc
import pytest

from client import GenerativeClient, GenserveError
from helpers import served, wait_until


@pytest.fixture
def repository(tmp_path, tiny_repository):
    """The tiny models at versions 3, 4 and 5 (as three exports write them) instead of 1."""
    repository = tmp_path / "models"
    shutil.copytree(tiny_repository, repository)
    for model in repository.iterdir():
        if model.is_dir():
            for number in (3, 4, 5):
                shutil.copytree(model / "1", model / str(number))
            shutil.rmtree(model / "1")
    return repository


def gan_versions(server) -> list[int]:
    with GenerativeClient(server.target, retries=0) as client:
        return sorted(m.version for m in client.list_models() if m.name == "gan_generator")


def pin(server, version: int) -> grpc.StatusCode | int:
    """The version that answered a call pinned to ``version``, or the error's code."""
    with GenerativeClient(server.target, retries=0) as client:
        try:
            client.sample_digits(n=1, seed=1, version=version)
            return version
        except GenserveError as error:
            assert error.code != grpc.StatusCode.NOT_FOUND or "it serves" in error.message, error.message
            return error.code


@pytest.mark.parametrize("policy, expected", [("latest:2", [4, 5]), ("latest:1", [5]), ("all", [3, 4, 5]),
                                              ("specific:3,5", [3, 5]), ("specific:4,9", [4])])
def test_a_started_server_serves_what_the_policy_names(repository, policy, expected):
    with served(repository, "--version-policy", policy) as server:
        assert gan_versions(server) == expected
        for number in (3, 4, 5):
            assert pin(server, number) == (number if number in expected else grpc.StatusCode.NOT_FOUND)


def test_a_reload_serves_what_a_start_would(repository):
    with served(repository, "--poll-interval", "0.2") as server:  # latest:2 by default
        assert gan_versions(server) == [4, 5]
        shutil.copytree(repository / "gan_generator" / "5", repository / "gan_generator" / ".stage-6")
        (repository / "gan_generator" / ".stage-6").rename(repository / "gan_generator" / "6")
        wait_until(lambda: "retired gan_generator version 4" in server.log, what="version 4 retired")
        assert gan_versions(server) == [5, 6]
        assert pin(server, 4) == grpc.StatusCode.NOT_FOUND and pin(server, 5) == 5
    with served(repository) as restarted:
        assert gan_versions(restarted) == [5, 6]


def test_no_version_under_the_policy_stops_the_start_with_one_line(repository):
    from helpers import ServerProcess

    server = ServerProcess(repository, "--version-policy", "specific:7")
    assert server.wait_exit(60) == 1
    assert "no version of" in server.log and "specific:7" in server.log and "Traceback" not in server.log
