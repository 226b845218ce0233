"""`up --copy-images`: an image a node lacks is streamed from an endpoint that has it
(`docker save | docker load`), between two real Docker Engines."""

from __future__ import annotations

import io
import tarfile
import uuid
from typing import Any

import pytest

from orchestrator.docker.ops import ensure_image, has_image

pytestmark = pytest.mark.docker


def tiny_image(client: Any) -> str:
    """An image of one file, made with `docker import` (nothing is pulled)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"deploy copy test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tag = uuid.uuid4().hex[:8]
    client.api.import_image_from_data(buffer.getvalue(), repository="deploy-copytest", tag=tag)
    return f"deploy-copytest:{tag}"


def test_an_image_is_copied_to_the_node_that_lacks_it(
    docker_client: Any, second_daemon: str
) -> None:
    import docker

    node_b = docker.DockerClient(base_url=second_daemon, timeout=60)
    image = tiny_image(docker_client)
    notes: list[str] = []
    try:
        assert not has_image(node_b, image)
        ensure_image(node_b, image, "node-b", notes.append, copy_from=("node-a", docker_client))
        assert has_image(node_b, image)
        assert notes[-1] == f"copying {image} from node-a to node-b ..."
        local = docker_client.images.get(image).id
        assert node_b.images.get(image).id == local  # the same image, not a rebuild
    finally:
        for client in (docker_client, node_b):
            if has_image(client, image):
                client.images.remove(image, force=True)
        node_b.close()


def test_a_missing_simulator_image_names_the_command_that_builds_it(docker_client: Any) -> None:
    from orchestrator.errors import RuntimeFailure

    image = f"deploy-sim:absent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeFailure) as caught:
        ensure_image(docker_client, image, "node-a", lambda _: None)
    assert str(caught.value) == (
        f"the simulator image {image} is not on node node-a; build it with `deploy sim image` "
        "(offline); `deploy up --copy-images` copies it to the other nodes"
    )
